// SPDX-License-Identifier: GPL-2.0

//! The config-space engine against a model function.
//! The properties are in `drivers/xenpci_common/fuzzing.rs` (`conf_engine`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xenpci_common::fuzzing::conf_engine(data));
