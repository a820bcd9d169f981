// SPDX-License-Identifier: GPL-2.0

//! Isolation before export: whether the devices that a function can reach by peer-to-peer DMA
//! without the IOMMU (its DMA peers) let it go to a guest.
//!
//! A guest that gets a function can program it to read and write whatever the function reaches.
//! The IOMMU confines the function's requests that go upstream to the root complex; requests
//! that a bridge or a multi-function device routes directly to a peer never get there, unless
//! ACS redirects them (the kernel's IOMMU groups are built on the same rule). The backend finds
//! the peers (`pciback`'s `isolation.rs`); this decides, from what holds each of them, whether
//! the export may go on: a peer that a dom0 driver uses, or that another guest holds, stops it.
//! Bridges forward and are not peers in that sense; a peer with no driver, or one that
//! `pciback` holds for no guest (or for the same guest), runs nothing the guest could corrupt
//! or spy on. The check is made at export time, as the kernel's own is made when a device is
//! bound.

use core::fmt;

use super::bdf::Bdf;

/// What holds a DMA peer of a function about to be exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// The peer is a bridge: it forwards requests, whatever drives it.
    Bridge,
    /// No driver is bound to the peer.
    Nothing,
    /// `pciback` holds the peer, for no guest.
    Pciback,
    /// `pciback` holds the peer for the domain.
    Guest(u16),
    /// A dom0 driver other than `pciback` is bound to the peer.
    Dom0Driver,
}

/// Why a peer keeps a function from going to a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// A dom0 driver uses the peer.
    Dom0Driver,
    /// Another guest holds the peer.
    OtherGuest(u16),
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dom0Driver => f.write_str("used by a dom0 driver"),
            Self::OtherGuest(domain) => write!(f, "assigned to domain {domain}"),
        }
    }
}

/// Returns why a peer held by `holder` keeps a function from going to the domain `guest`, or
/// [`None`] if it does not.
pub(crate) fn conflict(holder: Holder, guest: u16) -> Option<Conflict> {
    match holder {
        Holder::Bridge | Holder::Nothing | Holder::Pciback => None,
        Holder::Guest(domain) if domain == guest => None,
        Holder::Guest(domain) => Some(Conflict::OtherGuest(domain)),
        Holder::Dom0Driver => Some(Conflict::Dom0Driver),
    }
}

/// How many conflicting peers a [`Conflicts`] names; the others are counted.
pub(crate) const NAMED: usize = 4;

/// The peers that keep a function from going to a guest: the first [`NAMED`] of them by
/// address and reason, and how many there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conflicts {
    guest: u16,
    named: [Option<(Bdf, Conflict)>; NAMED],
    count: usize,
}

impl Conflicts {
    /// An empty set, for an export to the domain `guest`.
    pub(crate) fn new(guest: u16) -> Self {
        Self {
            guest,
            named: [None; NAMED],
            count: 0,
        }
    }

    /// Looks at the peer `peer`, held by `holder`: records it if it conflicts.
    pub(crate) fn add(&mut self, peer: Bdf, holder: Holder) {
        let Some(conflict) = conflict(holder, self.guest) else {
            return;
        };
        if let Some(slot) = self.named.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some((peer, conflict));
        }
        self.count = self.count.saturating_add(1);
    }

    /// Whether no peer conflicts: the function may go to the guest.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The number of conflicting peers.
    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

/// The list of conflicting peers, for a log line or a XenStore error: "0000:00:05.0 (used by a
/// dom0 driver), 0000:03:02.0 (assigned to domain 4) and 3 more".
impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bdf, conflict) in self.named.iter().flatten() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{bdf} ({conflict})")?;
        }
        let shown = self.named.iter().flatten().count();
        if self.count > shown {
            write!(f, " and {} more", self.count - shown)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn bdf(bus: u8, slot: u8, func: u8) -> Bdf {
        Bdf::new(0, bus, slot, func).unwrap()
    }

    #[test]
    fn what_conflicts() {
        assert_eq!(conflict(Holder::Bridge, 3), None);
        assert_eq!(conflict(Holder::Nothing, 3), None);
        assert_eq!(conflict(Holder::Pciback, 3), None);
        assert_eq!(conflict(Holder::Guest(3), 3), None);
        assert_eq!(conflict(Holder::Guest(4), 3), Some(Conflict::OtherGuest(4)));
        // dom0 itself holding a claimed device (domain 0) is another domain for a guest.
        assert_eq!(conflict(Holder::Guest(0), 3), Some(Conflict::OtherGuest(0)));
        assert_eq!(conflict(Holder::Dom0Driver, 3), Some(Conflict::Dom0Driver));
    }

    #[test]
    fn isolated_when_nothing_conflicts() {
        let mut c = Conflicts::new(3);
        c.add(bdf(0, 5, 1), Holder::Guest(3));
        c.add(bdf(3, 2, 0), Holder::Nothing);
        c.add(bdf(3, 0, 0), Holder::Bridge);
        c.add(bdf(3, 3, 0), Holder::Pciback);
        assert!(c.is_empty());
        assert_eq!(c.count(), 0);
        assert_eq!(c.to_string(), "");
    }

    #[test]
    fn names_the_conflicting_peers() {
        let mut c = Conflicts::new(3);
        c.add(bdf(0, 5, 0), Holder::Dom0Driver);
        c.add(bdf(0, 5, 2), Holder::Guest(3));
        c.add(bdf(0, 5, 3), Holder::Guest(7));
        assert!(!c.is_empty());
        assert_eq!(c.count(), 2);
        assert_eq!(
            c.to_string(),
            "0000:00:05.0 (used by a dom0 driver), 0000:00:05.3 (assigned to domain 7)"
        );
    }

    #[test]
    fn counts_the_peers_beyond_those_named() {
        let mut c = Conflicts::new(1);
        for slot in 1..=(NAMED as u8 + 3) {
            c.add(bdf(3, slot, 0), Holder::Dom0Driver);
        }
        assert_eq!(c.count(), NAMED + 3);
        let s = c.to_string();
        assert!(
            s.starts_with("0000:03:01.0 (used by a dom0 driver), 0000:03:02.0"),
            "{s}"
        );
        assert!(
            s.ends_with("0000:03:04.0 (used by a dom0 driver) and 3 more"),
            "{s}"
        );
    }
}
