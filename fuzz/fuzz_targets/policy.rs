// SPDX-License-Identifier: GPL-2.0

//! Virtual bus, passthrough roots, AER outcomes and wait, the frontend round trip,
//! the log rate limit.
//! The properties are in `drivers/xenpci_common/fuzzing.rs` (`policy`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xenpci_common::fuzzing::policy(data));
