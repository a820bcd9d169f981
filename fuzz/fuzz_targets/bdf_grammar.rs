// SPDX-License-Identifier: GPL-2.0

//! The slot, exact, xenstore BDF, quirk and hide= grammars.
//! The properties are in `drivers/xenpci_common/fuzzing.rs` (`bdf_grammar`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xenpci_common::fuzzing::bdf_grammar(data));
