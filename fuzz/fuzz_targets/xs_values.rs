// SPDX-License-Identifier: GPL-2.0

//! The xenstore value parsers, keys and value formatters.
//! The properties are in `drivers/xenpci_common/fuzzing.rs` (`xs_values`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xenpci_common::fuzzing::xs_values(data));
