// SPDX-License-Identifier: GPL-2.0

//! Protocol and policy code shared by the Rust `pciback` and `pcifront` drivers.
//!
//! Rules for every file in this directory (they are compiled both by kbuild,
//! included with `#[path]` from each driver crate, and by `cargo test` on the
//! build machine):
//!
//! - `core` only: no `kernel::`, no `alloc`, no `std` outside `#[cfg(test)]`;
//! - no `crate::`-absolute paths (the including crate differs), use `super::`;
//! - items are `pub(crate)`;
//! - anything that came from the other domain is checked with `checked_*`
//!   arithmetic (kernel builds have overflow checks on);
//! - I/O goes through small traits the drivers implement over the real device
//!   and the tests implement over a fake one.

pub(crate) mod aer;
pub(crate) mod bdf;
pub(crate) mod conf;
pub(crate) mod fastpath;
pub(crate) mod isolation;
pub(crate) mod msi;
pub(crate) mod pciif;
pub(crate) mod ratelimit;
pub(crate) mod reset;
pub(crate) mod roundtrip;
pub(crate) mod scan;
pub(crate) mod stats;
pub(crate) mod vbus;
pub(crate) mod xs;
pub(crate) mod yieldtrial;
