// SPDX-License-Identifier: GPL-2.0

//! Where exported devices appear in the guest: the topology policy of the
//! backend.
//!
//! - Virtual-bus mode (pciback `passthrough=0`, the default, C `vpci.c`):
//!   everything is placed on guest bus `0000:00`, which has 32 slots. All
//!   exported functions of one host slot share one virtual slot and keep
//!   their function number. [`VirtualBus`] implements it with fixed arrays.
//! - Passthrough mode (`passthrough=1`, C `passthrough.c`): the guest sees the
//!   host addresses; the roots it must scan are the buses of the exported
//!   devices that have no exported bridge above them. [`RootSet`] and
//!   [`collect_passthrough_roots`] compute them without allocating.

use core::fmt;

use super::bdf::{Bdf, BusAddr, FUNC_MAX, SLOT_MAX};

/// Number of slots on the virtual bus.
pub(crate) const VBUS_SLOTS: usize = SLOT_MAX as usize + 1;
/// Functions per slot.
pub(crate) const FUNCS_PER_SLOT: usize = FUNC_MAX as usize + 1;
/// The one root bus of the virtual-bus mode.
pub(crate) const VBUS_ROOT: BusAddr = BusAddr::new(0, 0);
/// Capacity of a [`RootSet`].
pub(crate) const ROOTS_MAX: usize = 256;

/// What kind of PCI function is being exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DevKind {
    /// An ordinary function (including SR-IOV physical functions).
    Normal,
    /// A PCI-to-PCI bridge (base class 0x06). Refused on the virtual bus.
    Bridge,
    /// An SR-IOV virtual function.
    SriovVf,
}

/// Why a topology operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VbusError {
    /// Bridges cannot be exported on the virtual bus. (The C driver intends
    /// this too, but its check can never fire; we enforce it.)
    Bridge,
    /// All 32 virtual slots are in use (C: "No more space on root virtual
    /// PCI bus", `-ENOMEM`).
    Full,
    /// This host function is already exported.
    Duplicate,
    /// A [`RootSet`] already holds [`ROOTS_MAX`] roots.
    RootsFull,
}

impl fmt::Display for VbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VbusError::Bridge => "can't export bridges on the virtual PCI bus",
            VbusError::Full => "no more space on root virtual PCI bus",
            VbusError::Duplicate => "device already exported",
            VbusError::RootsFull => "too many PCI root buses",
        })
    }
}

/// One exported function: where the guest sees it and what it is on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Export {
    /// Guest address.
    pub(crate) guest: Bdf,
    /// Host address.
    pub(crate) host: Bdf,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct VSlot {
    /// Host function at each virtual function number (they are equal).
    funcs: [Option<Bdf>; FUNCS_PER_SLOT],
    /// Holds an SR-IOV VF at function 0: nothing else may join.
    isolated: bool,
}

impl VSlot {
    fn is_empty(&self) -> bool {
        self.funcs.iter().all(Option::is_none)
    }

    /// Any occupant (they all share host domain, bus and slot).
    fn any(&self) -> Option<Bdf> {
        self.funcs.iter().flatten().next().copied()
    }
}

/// The virtual PCI bus `0000:00` of one guest (pciback `passthrough=0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VirtualBus {
    slots: [VSlot; VBUS_SLOTS],
    len: usize,
}

impl Default for VirtualBus {
    fn default() -> VirtualBus {
        VirtualBus::new()
    }
}

fn guest_addr(slot: usize, func: u8) -> Option<Bdf> {
    Bdf::new(0, 0, u8::try_from(slot).ok()?, func)
}

impl VirtualBus {
    /// An empty bus.
    pub(crate) const fn new() -> VirtualBus {
        VirtualBus {
            slots: [VSlot {
                funcs: [None; FUNCS_PER_SLOT],
                isolated: false,
            }; VBUS_SLOTS],
            len: 0,
        }
    }

    /// Exports host function `host`; returns its guest address.
    ///
    /// - bridges are refused ([`VbusError::Bridge`]);
    /// - a host function already present is refused ([`VbusError::Duplicate`]);
    /// - a function joins the virtual slot that already holds functions of
    ///   the same host domain/bus/slot, at its own function number, unless
    ///   that slot holds an SR-IOV VF at function 0;
    /// - an SR-IOV VF at function 0 always takes a slot of its own, and
    ///   nothing ever joins it (guests would not scan further functions);
    /// - otherwise the lowest free slot is taken; [`VbusError::Full`] when
    ///   none is left.
    pub(crate) fn add(&mut self, host: Bdf, kind: DevKind) -> Result<Bdf, VbusError> {
        if kind == DevKind::Bridge {
            return Err(VbusError::Bridge);
        }
        if self.guest_of(host).is_some() {
            return Err(VbusError::Duplicate);
        }
        let func = host.func();
        let fi = usize::from(func);
        let vf0 = kind == DevKind::SriovVf && func == 0;
        if !vf0 {
            for (i, s) in self.slots.iter_mut().enumerate() {
                if s.isolated || !s.any().is_some_and(|o| o.same_slot(host)) {
                    continue;
                }
                // Same host slot and a different function (duplicates were
                // refused above), so this position is free.
                let Some(pos) = s.funcs.get_mut(fi) else {
                    continue;
                };
                if pos.is_some() {
                    continue;
                }
                *pos = Some(host);
                self.len += 1;
                return guest_addr(i, func).ok_or(VbusError::Full);
            }
        }
        for (i, s) in self.slots.iter_mut().enumerate() {
            if !s.is_empty() {
                continue;
            }
            let Some(pos) = s.funcs.get_mut(fi) else {
                continue;
            };
            *pos = Some(host);
            s.isolated = vf0;
            self.len += 1;
            return guest_addr(i, func).ok_or(VbusError::Full);
        }
        Err(VbusError::Full)
    }

    /// Removes the function at guest address `guest`; returns its host address.
    pub(crate) fn remove(&mut self, guest: Bdf) -> Option<Bdf> {
        if guest.bus_addr() != VBUS_ROOT {
            return None;
        }
        let s = self.slots.get_mut(usize::from(guest.slot()))?;
        let host = s.funcs.get_mut(usize::from(guest.func()))?.take()?;
        if s.is_empty() {
            s.isolated = false;
        }
        self.len -= 1;
        Some(host)
    }

    /// Removes host function `host`; returns the guest address it had.
    pub(crate) fn remove_host(&mut self, host: Bdf) -> Option<Bdf> {
        let guest = self.guest_of(host)?;
        self.remove(guest).map(|_| guest)
    }

    /// The host function behind guest address `guest` (only bus `0000:00`
    /// exists).
    pub(crate) fn host_of(&self, guest: Bdf) -> Option<Bdf> {
        if guest.bus_addr() != VBUS_ROOT {
            return None;
        }
        let s = self.slots.get(usize::from(guest.slot()))?;
        *s.funcs.get(usize::from(guest.func()))?
    }

    /// The guest address of host function `host`, if exported.
    pub(crate) fn guest_of(&self, host: Bdf) -> Option<Bdf> {
        self.iter().find(|e| e.host == host).map(|e| e.guest)
    }

    /// Number of exported functions.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is exported.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of virtual slots in use.
    pub(crate) fn slots_used(&self) -> usize {
        self.slots.iter().filter(|s| !s.is_empty()).count()
    }

    /// Exported functions in guest address order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Export> + '_ {
        self.slots.iter().enumerate().flat_map(|(i, s)| {
            s.funcs.iter().enumerate().filter_map(move |(f, h)| {
                let host = (*h)?;
                let guest = guest_addr(i, u8::try_from(f).ok()?)?;
                Some(Export { guest, host })
            })
        })
    }

    /// The root to publish: `0000:00` once anything is exported.
    pub(crate) fn root(&self) -> Option<BusAddr> {
        if self.is_empty() {
            None
        } else {
            Some(VBUS_ROOT)
        }
    }
}

// ---------------------------------------------------------------------------
// Passthrough mode
// ---------------------------------------------------------------------------

/// Guest address of a host function in passthrough mode: the same.
pub(crate) const fn passthrough_guest_of(host: Bdf) -> Bdf {
    host
}

/// A set of root buses in insertion order (the order of `root-N`), without
/// allocation. Capacity [`ROOTS_MAX`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RootSet {
    roots: [BusAddr; ROOTS_MAX],
    len: usize,
}

impl Default for RootSet {
    fn default() -> RootSet {
        RootSet::new()
    }
}

impl RootSet {
    /// An empty set.
    pub(crate) const fn new() -> RootSet {
        RootSet {
            roots: [BusAddr::new(0, 0); ROOTS_MAX],
            len: 0,
        }
    }

    /// The roots, in insertion order.
    pub(crate) fn as_slice(&self) -> &[BusAddr] {
        self.roots.get(..self.len).unwrap_or(&[])
    }

    /// True when `root` is in the set.
    pub(crate) fn contains(&self, root: BusAddr) -> bool {
        self.as_slice().contains(&root)
    }

    /// Adds `root`; `Ok(true)` if it was new (publish it as `root-<len-1>`),
    /// `Ok(false)` if already present, [`VbusError::RootsFull`] if new but
    /// there is no room.
    pub(crate) fn insert(&mut self, root: BusAddr) -> Result<bool, VbusError> {
        if self.contains(root) {
            return Ok(false);
        }
        let slot = self.roots.get_mut(self.len).ok_or(VbusError::RootsFull)?;
        *slot = root;
        self.len += 1;
        Ok(true)
    }

    /// Number of roots.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every root.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Iterates over the roots in insertion order.
    pub(crate) fn iter(&self) -> core::slice::Iter<'_, BusAddr> {
        self.as_slice().iter()
    }
}

/// Adds to `roots` the bus of every exported device that has no exported
/// upstream bridge, as the C passthrough backend publishes them.
///
/// `exported` yields the exported host functions; `has_exported_upstream_bridge`
/// answers, for one of them, whether any bridge on its path to the root
/// complex is also exported (the kernel glue walks `bus->self` upwards).
/// Returns how many roots were new. Stops at the first error.
pub(crate) fn collect_passthrough_roots<I, F>(
    exported: I,
    mut has_exported_upstream_bridge: F,
    roots: &mut RootSet,
) -> Result<usize, VbusError>
where
    I: IntoIterator<Item = Bdf>,
    F: FnMut(Bdf) -> bool,
{
    let mut added = 0usize;
    for dev in exported {
        if has_exported_upstream_bridge(dev) {
            continue;
        }
        if roots.insert(dev.bus_addr())? {
            added = added.saturating_add(1);
        }
    }
    Ok(added)
}

/// True when any of `upstream_bridges` is in `exported`.
pub(crate) fn any_exported(upstream_bridges: &[Bdf], exported: &[Bdf]) -> bool {
    upstream_bridges.iter().any(|b| exported.contains(b))
}

/// [`collect_passthrough_roots`] over a slice of (device, its upstream
/// bridges) pairs; the exported set is the devices of the slice.
pub(crate) fn passthrough_roots_from_chains(
    devices: &[(Bdf, &[Bdf])],
    roots: &mut RootSet,
) -> Result<usize, VbusError> {
    collect_passthrough_roots(
        devices.iter().map(|(d, _)| *d),
        |d| {
            devices
                .iter()
                .filter(|(x, _)| *x == d)
                .any(|(_, up)| up.iter().any(|b| devices.iter().any(|(e, _)| e == b)))
        },
        roots,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    fn b(d: u16, bus: u8, s: u8, f: u8) -> Bdf {
        Bdf::new(d, bus, s, f).unwrap()
    }

    fn g(s: u8, f: u8) -> Bdf {
        b(0, 0, s, f)
    }

    #[test]
    fn first_device_gets_slot_zero_and_keeps_function() {
        let mut v = VirtualBus::new();
        assert!(v.is_empty());
        assert_eq!(v.root(), None);
        assert_eq!(v.add(b(0, 6, 1, 3), DevKind::Normal), Ok(g(0, 3)));
        assert_eq!(v.len(), 1);
        assert_eq!(v.root(), Some(BusAddr::new(0, 0)));
        assert_eq!(v.root().unwrap().to_string(), "0000:00");
        assert_eq!(v.host_of(g(0, 3)), Some(b(0, 6, 1, 3)));
        assert_eq!(v.host_of(g(0, 0)), None);
        assert_eq!(v.guest_of(b(0, 6, 1, 3)), Some(g(0, 3)));
        assert_eq!(v.guest_of(b(0, 6, 1, 0)), None);
    }

    #[test]
    fn functions_of_one_host_slot_share_a_virtual_slot() {
        let mut v = VirtualBus::new();
        assert_eq!(v.add(b(0, 6, 1, 0), DevKind::Normal), Ok(g(0, 0)));
        assert_eq!(v.add(b(0, 7, 0, 0), DevKind::Normal), Ok(g(1, 0)));
        assert_eq!(v.add(b(0, 6, 1, 2), DevKind::Normal), Ok(g(0, 2)));
        assert_eq!(v.add(b(0, 7, 0, 7), DevKind::Normal), Ok(g(1, 7)));
        // Same bus and slot number but another domain is another device.
        assert_eq!(v.add(b(1, 6, 1, 1), DevKind::Normal), Ok(g(2, 1)));
        // Same slot number on another bus too.
        assert_eq!(v.add(b(0, 8, 1, 1), DevKind::Normal), Ok(g(3, 1)));
        assert_eq!(v.slots_used(), 4);
        let all: Vec<_> = v.iter().map(|e| (e.guest, e.host)).collect();
        assert_eq!(
            all,
            [
                (g(0, 0), b(0, 6, 1, 0)),
                (g(0, 2), b(0, 6, 1, 2)),
                (g(1, 0), b(0, 7, 0, 0)),
                (g(1, 7), b(0, 7, 0, 7)),
                (g(2, 1), b(1, 6, 1, 1)),
                (g(3, 1), b(0, 8, 1, 1)),
            ]
        );
    }

    #[test]
    fn all_eight_functions_fit_in_one_slot() {
        let mut v = VirtualBus::new();
        for f in (0..8).rev() {
            assert_eq!(v.add(b(0, 3, 4, f), DevKind::Normal), Ok(g(0, f)));
        }
        assert_eq!(v.slots_used(), 1);
        assert_eq!(v.len(), 8);
    }

    #[test]
    fn bridges_are_refused() {
        let mut v = VirtualBus::new();
        assert_eq!(
            v.add(b(0, 0, 1, 0), DevKind::Bridge),
            Err(VbusError::Bridge)
        );
        assert!(v.is_empty());
        assert_eq!(
            VbusError::Bridge.to_string(),
            "can't export bridges on the virtual PCI bus"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let mut v = VirtualBus::new();
        v.add(b(0, 6, 1, 0), DevKind::Normal).unwrap();
        assert_eq!(
            v.add(b(0, 6, 1, 0), DevKind::Normal),
            Err(VbusError::Duplicate)
        );
        assert_eq!(
            v.add(b(0, 6, 1, 0), DevKind::SriovVf),
            Err(VbusError::Duplicate)
        );
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn thirty_two_slots_then_full() {
        let mut v = VirtualBus::new();
        for i in 0..32u8 {
            assert_eq!(v.add(b(0, 1, i, 0), DevKind::Normal), Ok(g(i, 0)));
        }
        assert_eq!(v.add(b(0, 2, 0, 0), DevKind::Normal), Err(VbusError::Full));
        assert_eq!(v.add(b(0, 2, 0, 0), DevKind::SriovVf), Err(VbusError::Full));
        assert_eq!(v.len(), 32);
        // Another function of an exported host slot still fits.
        assert_eq!(v.add(b(0, 1, 5, 1), DevKind::Normal), Ok(g(5, 1)));
        assert_eq!(v.len(), 33);
        // Freeing a slot makes room at that slot.
        assert_eq!(v.remove(g(7, 0)), Some(b(0, 1, 7, 0)));
        assert_eq!(v.add(b(0, 2, 0, 0), DevKind::Normal), Ok(g(7, 0)));
    }

    #[test]
    fn vf_at_function_zero_is_alone() {
        let mut v = VirtualBus::new();
        // A VF at function 0 never joins an existing slot of its host slot...
        assert_eq!(v.add(b(0, 5, 0, 1), DevKind::SriovVf), Ok(g(0, 1)));
        assert_eq!(v.add(b(0, 5, 0, 0), DevKind::SriovVf), Ok(g(1, 0)));
        // ...and nothing joins it.
        assert_eq!(v.add(b(0, 5, 0, 2), DevKind::SriovVf), Ok(g(0, 2)));
        assert_eq!(v.add(b(0, 5, 0, 3), DevKind::Normal), Ok(g(0, 3)));
        let mut v = VirtualBus::new();
        assert_eq!(v.add(b(0, 5, 0, 0), DevKind::SriovVf), Ok(g(0, 0)));
        assert_eq!(v.add(b(0, 5, 0, 1), DevKind::SriovVf), Ok(g(1, 1)));
        assert_eq!(v.add(b(0, 5, 0, 2), DevKind::Normal), Ok(g(1, 2)));
        assert_eq!(v.slots_used(), 2);
    }

    #[test]
    fn vf_at_other_functions_group_like_normal() {
        let mut v = VirtualBus::new();
        assert_eq!(v.add(b(0, 5, 0, 0), DevKind::Normal), Ok(g(0, 0)));
        assert_eq!(v.add(b(0, 5, 0, 4), DevKind::SriovVf), Ok(g(0, 4)));
        // A normal function 0 slot is joinable.
        assert_eq!(v.slots_used(), 1);
    }

    #[test]
    fn isolation_ends_when_slot_is_emptied() {
        let mut v = VirtualBus::new();
        assert_eq!(v.add(b(0, 5, 0, 0), DevKind::SriovVf), Ok(g(0, 0)));
        assert_eq!(v.remove(g(0, 0)), Some(b(0, 5, 0, 0)));
        assert!(v.is_empty());
        assert_eq!(v.root(), None);
        assert_eq!(v.add(b(0, 9, 9, 1), DevKind::Normal), Ok(g(0, 1)));
        assert_eq!(v.add(b(0, 9, 9, 2), DevKind::Normal), Ok(g(0, 2)));
    }

    #[test]
    fn remove_and_lookup_edges() {
        let mut v = VirtualBus::new();
        v.add(b(0, 6, 1, 0), DevKind::Normal).unwrap();
        v.add(b(0, 6, 1, 1), DevKind::Normal).unwrap();
        // Only 0000:00 exists on the virtual bus.
        assert_eq!(v.host_of(b(1, 0, 0, 0)), None);
        assert_eq!(v.host_of(b(0, 1, 0, 0)), None);
        assert_eq!(v.remove(b(0, 1, 0, 0)), None);
        assert_eq!(v.remove(g(0, 2)), None);
        assert_eq!(v.remove(g(31, 7)), None);
        assert_eq!(v.remove(g(0, 0)), Some(b(0, 6, 1, 0)));
        assert_eq!(v.remove(g(0, 0)), None);
        assert_eq!(v.len(), 1);
        // The slot still belongs to host 06:01: function 0 rejoins it.
        assert_eq!(v.add(b(0, 6, 1, 0), DevKind::Normal), Ok(g(0, 0)));
        assert_eq!(v.remove_host(b(0, 6, 1, 1)), Some(g(0, 1)));
        assert_eq!(v.remove_host(b(0, 6, 1, 1)), None);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn random_add_remove_keeps_invariants() {
        let mut seed: u64 = 11;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let mut v = VirtualBus::default();
        let mut model: Vec<Bdf> = Vec::new();
        for _ in 0..20_000 {
            // Few buses and slots so that grouping and exhaustion both happen.
            let host = b(
                0,
                (next() % 3) as u8,
                (next() % 16) as u8,
                (next() % 8) as u8,
            );
            let kind = match next() % 10 {
                0 => DevKind::Bridge,
                1 | 2 => DevKind::SriovVf,
                _ => DevKind::Normal,
            };
            if next() % 3 == 0 {
                let expect = model.iter().position(|&h| h == host);
                let got = v.remove_host(host);
                assert_eq!(got.is_some(), expect.is_some());
                if let Some(i) = expect {
                    model.swap_remove(i);
                }
            } else {
                match v.add(host, kind) {
                    Ok(guest) => {
                        assert!(!model.contains(&host));
                        assert_eq!(guest.func(), host.func());
                        assert_eq!(guest.bus_addr(), VBUS_ROOT);
                        model.push(host);
                    }
                    Err(VbusError::Duplicate) => assert!(model.contains(&host)),
                    Err(VbusError::Bridge) => assert_eq!(kind, DevKind::Bridge),
                    Err(VbusError::Full) => assert_eq!(v.slots_used(), 32),
                    Err(VbusError::RootsFull) => panic!("not a vbus error"),
                }
            }
            assert_eq!(v.len(), model.len());
            assert!(v.slots_used() <= 32);
        }
        // Every slot holds functions of a single host slot, at their own
        // function number, and the maps are inverse.
        for e in v.iter() {
            assert_eq!(v.host_of(e.guest), Some(e.host));
            assert_eq!(v.guest_of(e.host), Some(e.guest));
            assert_eq!(e.guest.func(), e.host.func());
            for o in v.iter().filter(|o| o.guest.slot() == e.guest.slot()) {
                assert!(o.host.same_slot(e.host));
            }
        }
    }

    #[test]
    fn root_set_dedups_and_fills() {
        let mut r = RootSet::new();
        assert!(r.is_empty());
        assert_eq!(r.insert(BusAddr::new(0, 0)), Ok(true));
        assert_eq!(r.insert(BusAddr::new(0, 0)), Ok(false));
        assert_eq!(r.insert(BusAddr::new(1, 0)), Ok(true));
        assert_eq!(r.as_slice(), [BusAddr::new(0, 0), BusAddr::new(1, 0)]);
        assert!(r.contains(BusAddr::new(1, 0)));
        assert!(!r.contains(BusAddr::new(0, 1)));
        r.clear();
        assert_eq!(r.len(), 0);
        for bus in 0..=255u8 {
            assert_eq!(r.insert(BusAddr::new(3, bus)), Ok(true));
        }
        assert_eq!(r.len(), 256);
        assert_eq!(r.insert(BusAddr::new(3, 7)), Ok(false));
        assert_eq!(r.insert(BusAddr::new(4, 0)), Err(VbusError::RootsFull));
        assert_eq!(r.iter().count(), 256);
    }

    #[test]
    fn passthrough_roots_skip_devices_below_exported_bridges() {
        let bridge = b(0, 0, 1, 0); // bridge to bus 2
        let below = b(0, 2, 0, 0); // behind `bridge`
        let deeper = b(0, 3, 0, 0); // behind a non-exported bridge 02:01.0, under `bridge`
        let other = b(0, 5, 0, 0); // behind a non-exported bridge 00:02.0
        let other2 = b(0, 5, 0, 1);
        let seg1 = b(1, 0, 3, 0);
        let nb1 = [bridge];
        let nb2 = [b(0, 2, 1, 0), bridge];
        let nb3 = [b(0, 0, 2, 0)];
        let devices: [(Bdf, &[Bdf]); 6] = [
            (bridge, &[]),
            (below, &nb1),
            (deeper, &nb2),
            (other, &nb3),
            (other2, &nb3),
            (seg1, &[]),
        ];
        let mut roots = RootSet::new();
        assert_eq!(passthrough_roots_from_chains(&devices, &mut roots), Ok(3));
        assert_eq!(
            roots.as_slice(),
            [BusAddr::new(0, 0), BusAddr::new(0, 5), BusAddr::new(1, 0)]
        );
        // Publishing again adds nothing.
        assert_eq!(passthrough_roots_from_chains(&devices, &mut roots), Ok(0));
        // Without the bridge exported, bus 2 and bus 3 become roots.
        let mut roots = RootSet::new();
        let rest = &devices[1..];
        assert_eq!(passthrough_roots_from_chains(rest, &mut roots), Ok(4));
        assert!(roots.contains(BusAddr::new(0, 2)));
        assert!(roots.contains(BusAddr::new(0, 3)));
        assert!(!roots.contains(BusAddr::new(0, 0)));
    }

    #[test]
    fn passthrough_closure_form_and_helpers() {
        let exported = [b(0, 0, 1, 0), b(0, 2, 0, 0)];
        let mut roots = RootSet::new();
        let n = collect_passthrough_roots(
            exported.iter().copied(),
            |d| d.bus() == 2 && any_exported(&[b(0, 0, 1, 0)], &exported),
            &mut roots,
        );
        assert_eq!(n, Ok(1));
        assert_eq!(roots.as_slice(), [BusAddr::new(0, 0)]);
        assert!(!any_exported(&[], &exported));
        assert!(!any_exported(&[b(0, 0, 2, 0)], &exported));
        assert_eq!(passthrough_guest_of(b(2, 3, 4, 5)), b(2, 3, 4, 5));
        // Full set propagates the error.
        let mut full = RootSet::new();
        for bus in 0..=255u8 {
            full.insert(BusAddr::new(9, bus)).unwrap();
        }
        assert_eq!(
            collect_passthrough_roots([b(0, 0, 0, 0)], |_| false, &mut full),
            Err(VbusError::RootsFull)
        );
    }
}
