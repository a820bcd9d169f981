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

/// Host-only checks that tie the shared code to files of this repository
/// outside the kernel tree (so they stay out of the files the kernel includes).
#[cfg(test)]
mod repository {
    use super::common;

    const WATCHING_BIT: u32 = common::pciif::XEN_PCIF_WATCHING_BIT;

    /// The extension's bit and key are the ones proposed for Xen's `pciif.h`
    /// (`scripts/xen-patches/`): the drivers and the proposal name the same bit and key.
    #[test]
    fn watching_matches_the_proposal() {
        // Read at run time from the repository, as the fuzz corpus is.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "scripts/xen-patches/0001-public-io-pciif.h-let-a-frontend-that-spins-on-_XEN_.patch",
        );
        let patch =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Whatever the alignment: the added lines' words, one space apart.
        let words = |l: &str| l.split_whitespace().collect::<std::vec::Vec<_>>().join(" ");
        let added = |what: &str| {
            patch
                .lines()
                .filter(|l| !l.starts_with("+++"))
                .filter_map(|l| l.strip_prefix('+'))
                .any(|l| words(l).contains(what))
        };
        let bit = std::format!("#define _XEN_PCIF_watching ({WATCHING_BIT})");
        assert!(added(&bit), "{bit}");
        assert!(added("#define XEN_PCIF_watching (1<<_XEN_PCIF_watching)"));
        let key = common::xs::FEATURE_QUIET_ANSWERS.to_str().unwrap();
        assert!(added(&std::format!("\"{key}\" = \"1\"")), "{key}");
    }
}
