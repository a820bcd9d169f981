// SPDX-License-Identifier: GPL-2.0

//! Which device/function numbers the frontend probes on each root bus.
//!
//! Probing a device/function number is one configuration read over the shared page, a round
//! trip to the backend. C's `pcifront` probes all 256 numbers of every root (and the PCI core's
//! own scan probes function 0 of the 32 slots before it). Both backends, the C `xen-pciback`
//! and the Rust `pciback`, publish where each exported function is in the guest (`vdev-N`, for
//! every `dev-N`, in both modes: the virtual address on the virtual bus, the host address in
//! passthrough mode), so the frontend reads them and probes only those numbers.
//!
//! The rules, for one root bus:
//!
//! - every `vdev-N` on the root names a device/function number to probe; a `vdev-N` on another
//!   bus is a device behind an exported bridge (passthrough mode), which the PCI core finds
//!   when it scans the bus behind the bridge, or on another root;
//! - an index whose `vdev-N` is missing is skipped when the backend has not exported it: no
//!   `state-N` (the toolstack removed the entry), `state-N` Initialising (not exported yet: the
//!   backend reconfigures again for it), Closing (being detached; an exported device would
//!   still have its `vdev-N`) or Closed (the Rust backend's refusal of one device). Both
//!   backends write `vdev-N` before they set `state-N` to Initialised. With any other state (a
//!   backend that exports without `vdev-N`), or a read that failed, the root is scanned in
//!   full;
//! - a `vdev-N` that does not parse, and a `num_devs` that is missing, does not parse or is
//!   above [`LISTED_MAX`], mean a full scan: whatever the keys say, the frontend finds at least
//!   what the full scan would have found from a backend that publishes them as both do, and
//!   never fails a connection over them.

use super::{
    bdf::{
        Bdf,
        BusAddr, //
    },
    xs::{
        self,
        XenbusState, //
    },
};
use core::fmt;

/// The most `vdev-N` the frontend reads (`num_devs` above it means a full scan): each read is
/// one xenstore round trip on the `xenwatch` thread, and one root's full scan probes 256
/// numbers.
pub(crate) const LISTED_MAX: u32 = 256;

/// A set of device/function numbers of one bus (bit `devfn`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Devfns([u64; 4]);

impl Devfns {
    /// The empty set.
    pub(crate) const EMPTY: Devfns = Devfns([0; 4]);

    /// Adds `devfn`.
    pub(crate) fn insert(&mut self, devfn: u8) {
        let (word, bit) = (usize::from(devfn / 64), devfn % 64);
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    /// Whether `devfn` is in the set.
    pub(crate) fn contains(&self, devfn: u8) -> bool {
        let (word, bit) = (usize::from(devfn / 64), devfn % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// The number of device/function numbers in the set.
    pub(crate) fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device/function numbers in the set, in increasing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=u8::MAX).filter(|d| self.contains(*d))
    }
}

impl fmt::Debug for Devfns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As `slot.function`, the form of a `vdev-N`'s end.
        let mut set = f.debug_set();
        for d in self.iter() {
            let b = Bdf::from_devfn(0, 0, d);
            set.entry(&format_args!("{:02x}.{}", b.slot(), b.func()));
        }
        set.finish()
    }
}

/// Why a root is scanned in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// The backend published no `num_devs` (or it could not be read).
    NoCount,
    /// `num_devs` does not parse.
    BadCount,
    /// `num_devs` is above [`LISTED_MAX`].
    TooMany(u32),
    /// `vdev-N` does not parse.
    BadVdev(u32),
    /// No `vdev-N` (or it could not be read) for a device the backend may have exported.
    Unlisted(u32),
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCount => write!(f, "no num_devs"),
            Self::BadCount => write!(f, "bad num_devs"),
            Self::TooMany(n) => write!(f, "num_devs {n} above {LISTED_MAX}"),
            Self::BadVdev(i) => write!(f, "bad vdev-{i}"),
            Self::Unlisted(i) => write!(f, "no vdev-{i} for an exported device"),
        }
    }
}

/// How many `vdev-N` to read, from the value of `num_devs` (`None`: not there, or not read).
pub(crate) fn listed_count(num_devs: Option<&[u8]>) -> Result<u32, Fallback> {
    let value = num_devs.ok_or(Fallback::NoCount)?;
    let n = xs::parse_u32(value).map_err(|_| Fallback::BadCount)?;
    if n > LISTED_MAX {
        return Err(Fallback::TooMany(n));
    }
    Ok(n)
}

/// What the backend's keys say about one index `N` below `num_devs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listed {
    /// `vdev-N`: the function is there in the guest.
    At(Bdf),
    /// No `vdev-N`, and the backend did not export the device.
    NotExported,
    /// No usable `vdev-N` (see [`Fallback`]).
    Unknown(Fallback),
}

/// What the store answered for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Read<'a> {
    /// The value.
    Value(&'a [u8]),
    /// No such key.
    Missing,
    /// The read failed otherwise.
    Failed,
}

/// Classifies index `n` from its `vdev-N` and its `state-N`, which is only looked at (and only
/// needs to be read) when `vdev-N` is [`Read::Missing`].
pub(crate) fn listed(n: u32, vdev: Read<'_>, state: Read<'_>) -> Listed {
    match vdev {
        Read::Value(v) => match xs::parse_vdev(v) {
            Ok(bdf) => Listed::At(bdf),
            Err(_) => Listed::Unknown(Fallback::BadVdev(n)),
        },
        Read::Failed => Listed::Unknown(Fallback::Unlisted(n)),
        Read::Missing => match state {
            Read::Missing => Listed::NotExported,
            Read::Value(s) => match XenbusState::parse(s) {
                Ok(XenbusState::Initialising | XenbusState::Closing | XenbusState::Closed) => {
                    Listed::NotExported
                }
                _ => Listed::Unknown(Fallback::Unlisted(n)),
            },
            Read::Failed => Listed::Unknown(Fallback::Unlisted(n)),
        },
    }
}

/// The device/function numbers to probe on the root bus `root`, given what every index below
/// `num_devs` says; `Err` when the root is to be scanned in full.
pub(crate) fn devfns(root: BusAddr, listed: &[Listed]) -> Result<Devfns, Fallback> {
    let mut set = Devfns::EMPTY;
    for l in listed {
        match l {
            Listed::At(bdf) if bdf.bus_addr() == root => set.insert(bdf.devfn()),
            Listed::At(_) | Listed::NotExported => {}
            Listed::Unknown(why) => return Err(*why),
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn at(domain: u16, bus: u8, slot: u8, func: u8) -> Listed {
        Listed::At(Bdf::new(domain, bus, slot, func).unwrap())
    }

    fn set(devfns: &[u8]) -> Devfns {
        let mut s = Devfns::EMPTY;
        for d in devfns {
            s.insert(*d);
        }
        s
    }

    #[test]
    fn devfn_set() {
        let mut s = Devfns::EMPTY;
        assert!(s.is_empty());
        for d in [0, 63, 64, 127, 128, 255, 0x10, 0x10] {
            s.insert(d);
        }
        assert_eq!(s.len(), 7);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [0, 0x10, 63, 64, 127, 128, 255]
        );
        assert!(s.contains(255) && !s.contains(254) && !s.contains(1));
        assert_eq!(
            std::format!("{:?}", set(&[0, 0x11, 0xff])),
            "{00.0, 02.1, 1f.7}"
        );
        assert_eq!((0..=u8::MAX).filter(|d| s.contains(*d)).count(), 7);
        let mut all = Devfns::EMPTY;
        (0..=u8::MAX).for_each(|d| all.insert(d));
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn count() {
        assert_eq!(listed_count(Some(b"3")), Ok(3));
        assert_eq!(listed_count(Some(b" 0\n")), Ok(0));
        assert_eq!(listed_count(Some(b"256")), Ok(256));
        assert_eq!(listed_count(Some(b"257")), Err(Fallback::TooMany(257)));
        assert_eq!(listed_count(Some(b"99999999999")), Err(Fallback::BadCount));
        assert_eq!(listed_count(Some(b"-1")), Err(Fallback::BadCount));
        assert_eq!(listed_count(Some(b"")), Err(Fallback::BadCount));
        assert_eq!(listed_count(None), Err(Fallback::NoCount));
    }

    #[test]
    fn classify() {
        // Not looked at when there is a vdev.
        let never = Read::Value(b"3");
        assert_eq!(
            listed(0, Read::Value(b"0000:00:02.01"), never),
            at(0, 0, 2, 1)
        );
        // C's spelling and a one-digit function both parse.
        assert_eq!(
            listed(0, Read::Value(b"0001:03:1f.7"), never),
            at(1, 3, 0x1f, 7)
        );
        assert_eq!(
            listed(4, Read::Value(b"0000:00:20.0"), never),
            Listed::Unknown(Fallback::BadVdev(4))
        );
        assert_eq!(
            listed(4, Read::Value(b"junk"), never),
            Listed::Unknown(Fallback::BadVdev(4))
        );
        assert_eq!(
            listed(5, Read::Failed, never),
            Listed::Unknown(Fallback::Unlisted(5))
        );
        // Removed by the toolstack, or refused by the backend.
        assert_eq!(listed(1, Read::Missing, Read::Missing), Listed::NotExported);
        // Not exported yet, being detached, refused.
        for state in [&b"1"[..], b"5", b"6\n"] {
            assert_eq!(
                listed(1, Read::Missing, Read::Value(state)),
                Listed::NotExported
            );
        }
        // The backend may have it, but says nowhere where.
        for state in [&b"2"[..], b"3", b"4", b"7", b"8", b"0", b"x", b""] {
            assert_eq!(
                listed(2, Read::Missing, Read::Value(state)),
                Listed::Unknown(Fallback::Unlisted(2))
            );
        }
        assert_eq!(
            listed(2, Read::Missing, Read::Failed),
            Listed::Unknown(Fallback::Unlisted(2))
        );
    }

    #[test]
    fn virtual_bus() {
        // The devices boot's view: slots 0-4, two functions in slot 2.
        let l = [
            at(0, 0, 0, 0),
            at(0, 0, 1, 0),
            at(0, 0, 2, 0),
            at(0, 0, 2, 1),
            at(0, 0, 3, 0),
            Listed::NotExported,
            at(0, 0, 4, 0),
        ];
        let s = devfns(BusAddr::new(0, 0), &l).unwrap();
        assert_eq!(s, set(&[0x00, 0x08, 0x10, 0x11, 0x18, 0x20]));
        // Function 1 alone: only it is probed (the PCI core would not look past function 0).
        let s = devfns(BusAddr::new(0, 0), &[at(0, 0, 7, 1)]).unwrap();
        assert_eq!(s, set(&[0x39]));
        // Nothing exported: nothing to probe.
        assert_eq!(devfns(BusAddr::new(0, 0), &[]), Ok(Devfns::EMPTY));
    }

    #[test]
    fn passthrough() {
        // Host addresses, one root per bus; a device behind an exported bridge (bus 5, below
        // 0000:04:00.0) is on no root: the scan behind the bridge finds it.
        let l = [
            at(0, 0, 2, 0),
            at(0, 2, 0, 0),
            at(0, 0, 5, 0),
            at(0, 0, 5, 1),
            at(0, 4, 0, 0),
            at(0, 5, 0, 0),
            at(1, 0, 3, 0),
        ];
        assert_eq!(devfns(BusAddr::new(0, 0), &l), Ok(set(&[0x10, 0x28, 0x29])));
        assert_eq!(devfns(BusAddr::new(0, 2), &l), Ok(set(&[0])));
        assert_eq!(devfns(BusAddr::new(0, 4), &l), Ok(set(&[0])));
        assert_eq!(devfns(BusAddr::new(1, 0), &l), Ok(set(&[0x18])));
        assert_eq!(devfns(BusAddr::new(0, 3), &l), Ok(Devfns::EMPTY));
    }

    #[test]
    fn unknown_means_full_scan() {
        let l = [
            at(0, 0, 0, 0),
            Listed::Unknown(Fallback::BadVdev(1)),
            at(0, 0, 1, 0),
        ];
        // Whichever root: an index that may be anywhere could be on it.
        assert_eq!(devfns(BusAddr::new(0, 0), &l), Err(Fallback::BadVdev(1)));
        assert_eq!(devfns(BusAddr::new(0, 9), &l), Err(Fallback::BadVdev(1)));
    }
}
