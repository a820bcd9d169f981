// SPDX-License-Identifier: GPL-2.0

//! Host build of the code shared by `pciback` and `pcifront`.
//!
//! The kernel drivers include `mod.rs` with `#[path]`; this root only exists so
//! that `cargo test` and the fuzz targets compile the very same files on the
//! build machine. Nothing in `mod.rs` and its files may depend on `std`
//! outside `#[cfg(test)]`; `fuzzing.rs` is host-only (the kernel never
//! includes it) and may.

#![no_std]

#[cfg(any(test, feature = "fuzzing"))]
extern crate std;

#[allow(dead_code)]
#[path = "mod.rs"]
mod common;

/// The entry points of the `cargo fuzz` targets in `fuzz/` (with the
/// `fuzzing` feature), also replayed over the committed corpus by `cargo test`.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
