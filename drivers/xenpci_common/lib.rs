// SPDX-License-Identifier: GPL-2.0

//! Host build of the code shared by `pciback` and `pcifront`.
//!
//! The kernel drivers include `mod.rs` with `#[path]`; this root only exists so
//! that `cargo test` and the fuzz targets compile the very same files on the
//! build machine. Nothing here may depend on `std` outside `#[cfg(test)]`.

#![no_std]

#[cfg(test)]
extern crate std;

#[allow(dead_code)]
#[path = "mod.rs"]
mod common;
