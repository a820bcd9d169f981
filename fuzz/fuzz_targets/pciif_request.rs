// SPDX-License-Identifier: GPL-2.0

//! Request decoding and validation, responses, frontend result parsers, MSI-X vectors, the AER op.
//! The properties are in `drivers/xenpci_common/fuzzing.rs` (`pciif_request`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xenpci_common::fuzzing::pciif_request(data));
