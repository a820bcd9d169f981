// SPDX-License-Identifier: GPL-2.0

//! What `pciback` remembers of a seized device's resets, the `resets` attribute's line, and the
//! decision to reset the secondary bus of a device whose function reset finds no method.
//!
//! The kernel resets a function with the first of its reset methods (the device's
//! `reset_method` file, `pdev->reset_methods[]`) that does not answer "not supported"
//! (`ENOTTY`); a device without any that applies (QEMU's `edu`) cannot be reset alone. When
//! such a function sits below a bridge, a secondary bus reset resets it together with every
//! other function on that bus: `pciback` does that only when every one of them is its own and
//! no guest holds any ([`bus_reset_blocker`]). A reset that fails, as opposed to one that is not
//! available, leaves the device refused for assignment until a later reset succeeds
//! ([`Record::refused`]).

use core::fmt;

use super::bdf::Bdf;

/// The name [`Outcome::Done`] gives `pciback`'s own secondary bus reset, to tell it from the
/// kernel's `bus` method (which resets a function alone on its bus).
pub(crate) const SBR: &str = "sbr";

/// Why a secondary bus reset is not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocker {
    /// The function is on a root bus: no bridge above it to reset the bus.
    RootBus,
    /// The function is a virtual function (its bus is the physical function's).
    VirtFn,
    /// This function on the bus is a bridge: the reset would reach the buses below it.
    Bridge(Bdf),
    /// This function on the bus is not bound to `pciback`.
    NotSeized(Bdf),
    /// This function on the bus is held by a guest (the domain).
    Held(Bdf, u16),
    /// The PCI core cannot reset the bus: asked before the reset (`pci_probe_reset_slot()`,
    /// `pci_probe_reset_bus()`), a device on it, or its slot, does not allow a bus reset.
    NotResettable,
    /// The bus stayed locked by someone else through every attempt (`EAGAIN`): nothing was
    /// reset.
    Busy,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Blocker::RootBus => f.write_str("on a root bus"),
            Blocker::VirtFn => f.write_str("a virtual function"),
            Blocker::Bridge(b) => write!(f, "{b} on the bus is a bridge"),
            Blocker::NotSeized(b) => write!(f, "{b} on the bus is not seized by pciback"),
            Blocker::Held(b, d) => write!(f, "{b} on the bus is held by guest {d}"),
            Blocker::NotResettable => f.write_str("the bus cannot be reset"),
            Blocker::Busy => f.write_str("the bus stayed busy"),
        }
    }
}

/// A function on the bus a secondary bus reset would reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sibling {
    /// Its address.
    pub(crate) bdf: Bdf,
    /// It is a bridge (has a bus below it).
    pub(crate) bridge: bool,
    /// It is bound to `pciback`.
    pub(crate) seized: bool,
    /// The guest holding it, if any.
    pub(crate) held_by: Option<u16>,
}

/// Whether a secondary bus reset may reset every function in `bus` (the functions on the bus,
/// the device to reset among them): `None` if each is a non-bridge function bound to `pciback`
/// and held by no guest, else the first that is not.
///
/// A bridge is refused outright: the reset would go on to every bus below it.
pub(crate) fn bus_reset_blocker(bus: &[Sibling]) -> Option<Blocker> {
    bus.iter().find_map(|s| {
        if s.bridge {
            Some(Blocker::Bridge(s.bdf))
        } else if !s.seized {
            Some(Blocker::NotSeized(s.bdf))
        } else {
            s.held_by.map(|d| Blocker::Held(s.bdf, d))
        }
    })
}

/// The outcome of one reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not reset yet (no release or `do_flr` since the seize).
    NotYet,
    /// No reset method: the function has none and no secondary bus reset was possible
    /// (`Some`: why not, when a bus reset was considered).
    NoMethod(Option<Blocker>),
    /// `method` ran: `errno` 0 if it succeeded, else its (negative) error.
    Done {
        /// The kernel's name of the method (`flr`, `pm`, ...), or [`SBR`].
        method: &'static str,
        /// 0, or the negative errno of the reset.
        errno: i32,
    },
}

/// The outcome of a secondary bus reset that returned `errno` (0 or a negative errno), tried
/// after the PCI core said it could reset the bus (a bus it cannot reset is
/// [`Blocker::NotResettable`], found before).
///
/// `EAGAIN` (the bus stayed locked by someone else; the caller retries first) reset nothing:
/// no failure, and the functions stay assignable. Any other error is a reset that ran and
/// failed, `ENOTTY` included: after a successful probe the PCI core answers it when a function
/// did not come back (the link below a PCIe port did not train again).
pub(crate) fn bus_reset_outcome(errno: i32) -> Outcome {
    const EAGAIN: i32 = 11;
    match errno {
        e if e == -EAGAIN => Outcome::NoMethod(Some(Blocker::Busy)),
        errno => Outcome::Done { method: SBR, errno },
    }
}

/// What `do_flr` answers (0 or a negative errno) for a function whose own reset found no
/// method, after its secondary bus reset ended with `outcome`: 0 if the bus was reset, the
/// reset's error if it failed (`-EIO` for an `ENOTTY`, which a writer would take for "no
/// method"), `-EBUSY` if it could not run now (the bus stayed locked, or another reset of the
/// bus is running and has not finished), else `-ENOTTY` (no method: no bus reset applies).
pub(crate) fn doflr_errno(outcome: Outcome) -> i32 {
    const ENOTTY: i32 = 25;
    const EBUSY: i32 = 16;
    const EIO: i32 = 5;
    match outcome {
        Outcome::Done { errno, .. } if errno == -ENOTTY => -EIO,
        Outcome::Done { errno, .. } => errno,
        Outcome::NotYet | Outcome::NoMethod(Some(Blocker::Busy)) => -EBUSY,
        Outcome::NoMethod(_) => -ENOTTY,
    }
}

impl Outcome {
    /// A reset that ran and failed.
    pub(crate) fn failed(&self) -> bool {
        matches!(self, Outcome::Done { errno, .. } if *errno != 0)
    }
}

/// The `resets` form: `-`, `none`, `none:<blocker BDF or reason>`, `<method>:ok` or
/// `<method>:err<errno>` (e.g. `flr:err-5`). No blanks, so that the line splits on them.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Outcome::NotYet => f.write_str("-"),
            Outcome::NoMethod(None) => f.write_str("none"),
            Outcome::NoMethod(Some(b)) => match b {
                Blocker::RootBus => f.write_str("none:root-bus"),
                Blocker::VirtFn => f.write_str("none:virtfn"),
                Blocker::Bridge(d) => write!(f, "none:bridge-{d}"),
                Blocker::NotSeized(d) => write!(f, "none:not-seized-{d}"),
                Blocker::Held(d, g) => write!(f, "none:held-{d}-guest-{g}"),
                Blocker::NotResettable => f.write_str("none:not-resettable"),
                Blocker::Busy => f.write_str("none:busy"),
            },
            Outcome::Done { method, errno: 0 } => write!(f, "{method}:ok"),
            Outcome::Done { method, errno } => write!(f, "{method}:err{errno}"),
        }
    }
}

/// When a reset ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    /// When the device was seized.
    Seize,
    /// When a guest released it.
    Release,
    /// At a `do_flr` write.
    DoFlr,
}

/// The resets of one seized device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// At seize time.
    pub(crate) seize: Outcome,
    /// At the last release by a guest.
    pub(crate) release: Outcome,
    /// At the last `do_flr`.
    pub(crate) do_flr: Outcome,
    /// The last reset that ran failed: the device is not exported until one succeeds.
    refused: Option<(When, Outcome)>,
}

impl Default for Record {
    fn default() -> Self {
        Self::new()
    }
}

impl Record {
    /// A device just seized, not reset yet.
    pub(crate) const fn new() -> Self {
        Self {
            seize: Outcome::NotYet,
            release: Outcome::NotYet,
            do_flr: Outcome::NotYet,
            refused: None,
        }
    }

    /// Notes the outcome of a reset at `when`. A failed reset refuses the device; a successful
    /// one (whenever it ran) accepts it again; no reset at all changes nothing: a device
    /// without any reset method stays assignable, as with C `xen-pciback`.
    pub(crate) fn note(&mut self, when: When, outcome: Outcome) {
        *match when {
            When::Seize => &mut self.seize,
            When::Release => &mut self.release,
            When::DoFlr => &mut self.do_flr,
        } = outcome;
        match outcome {
            Outcome::Done { errno: 0, .. } => self.refused = None,
            Outcome::Done { .. } => self.refused = Some((when, outcome)),
            Outcome::NotYet | Outcome::NoMethod(_) => {}
        }
    }

    /// The failed reset that keeps the device from being exported, if any.
    pub(crate) fn refused(&self) -> Option<(When, Outcome)> {
        self.refused
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            When::Seize => "seize",
            When::Release => "release",
            When::DoFlr => "do_flr",
        })
    }
}

/// The `resets` attribute's line of a device without its address and methods:
/// `seize=O release=O do_flr=O assignable=yes|no`.
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seize={} release={} do_flr={} assignable={}",
            self.seize,
            self.release,
            self.do_flr,
            if self.refused.is_some() { "no" } else { "yes" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    fn bdf(func: u8) -> Bdf {
        Bdf::new(0, 3, 0, func).unwrap()
    }

    fn free(func: u8) -> Sibling {
        Sibling {
            bdf: bdf(func),
            bridge: false,
            seized: true,
            held_by: None,
        }
    }

    #[test]
    fn bus_reset_needs_every_function_seized_and_free() {
        assert_eq!(bus_reset_blocker(&[free(0), free(1)]), None);
        let held = Sibling {
            held_by: Some(7),
            ..free(1)
        };
        assert_eq!(
            bus_reset_blocker(&[free(0), held]),
            Some(Blocker::Held(bdf(1), 7))
        );
        let other = Sibling {
            seized: false,
            ..free(1)
        };
        assert_eq!(
            bus_reset_blocker(&[free(0), other]),
            Some(Blocker::NotSeized(bdf(1)))
        );
        let bridge = Sibling {
            bridge: true,
            ..free(0)
        };
        assert_eq!(
            bus_reset_blocker(&[bridge, free(1)]),
            Some(Blocker::Bridge(bdf(0)))
        );
        // The first blocker is named.
        assert_eq!(
            bus_reset_blocker(&[other, held]),
            Some(Blocker::NotSeized(bdf(1)))
        );
    }

    #[test]
    fn failed_reset_refuses_until_one_succeeds() {
        let mut r = Record::new();
        assert_eq!(format!("{r}"), "seize=- release=- do_flr=- assignable=yes");
        r.note(When::Seize, Outcome::NoMethod(None));
        assert_eq!(r.refused(), None);
        let failed = Outcome::Done {
            method: "flr",
            errno: -5,
        };
        r.note(When::Release, failed);
        assert_eq!(r.refused(), Some((When::Release, failed)));
        assert_eq!(
            format!("{r}"),
            "seize=none release=flr:err-5 do_flr=- assignable=no"
        );
        // Not reset at all: still refused.
        r.note(When::DoFlr, Outcome::NoMethod(Some(Blocker::RootBus)));
        assert!(r.refused().is_some());
        r.note(
            When::DoFlr,
            Outcome::Done {
                method: SBR,
                errno: 0,
            },
        );
        assert_eq!(r.refused(), None);
        assert_eq!(
            format!("{r}"),
            "seize=none release=flr:err-5 do_flr=sbr:ok assignable=yes"
        );
    }

    #[test]
    fn doflr_answers() {
        let done = |errno| Outcome::Done { method: SBR, errno };
        assert_eq!(doflr_errno(done(0)), 0);
        assert_eq!(doflr_errno(done(-5)), -5);
        // A reset that ran and lost a function: not "no method" either.
        assert_eq!(doflr_errno(done(-25)), -5);
        // Busy or another reset of the bus running: not "no method".
        assert_eq!(doflr_errno(Outcome::NoMethod(Some(Blocker::Busy))), -16);
        assert_eq!(doflr_errno(Outcome::NotYet), -16);
        for b in [
            None,
            Some(Blocker::RootBus),
            Some(Blocker::NotResettable),
            Some(Blocker::Held(bdf(1), 3)),
            Some(Blocker::NotSeized(bdf(1))),
        ] {
            assert_eq!(doflr_errno(Outcome::NoMethod(b)), -25, "{b:?}");
        }
    }

    #[test]
    fn bus_reset_outcomes() {
        assert_eq!(
            bus_reset_outcome(0),
            Outcome::Done {
                method: SBR,
                errno: 0
            }
        );
        assert_eq!(
            bus_reset_outcome(-5),
            Outcome::Done {
                method: SBR,
                errno: -5
            }
        );
        assert!(bus_reset_outcome(-5).failed());
        // The bus stayed locked: nothing ran, nothing failed.
        assert_eq!(
            bus_reset_outcome(-11),
            Outcome::NoMethod(Some(Blocker::Busy))
        );
        let mut r = Record::new();
        r.note(
            When::Release,
            Outcome::NoMethod(Some(Blocker::NotResettable)),
        );
        r.note(When::DoFlr, bus_reset_outcome(-11));
        assert_eq!(r.refused(), None);
        assert_eq!(
            format!("{r}"),
            "seize=- release=none:not-resettable do_flr=none:busy assignable=yes"
        );
        // After the probe said the bus could be reset, `ENOTTY` is a reset that ran and a
        // function that did not come back: a failure, which refuses the functions.
        let lost = bus_reset_outcome(-25);
        assert_eq!(
            lost,
            Outcome::Done {
                method: SBR,
                errno: -25
            }
        );
        assert!(lost.failed());
        r.note(When::Release, lost);
        assert_eq!(r.refused(), Some((When::Release, lost)));
        assert_eq!(
            format!("{r}"),
            "seize=- release=sbr:err-25 do_flr=none:busy assignable=no"
        );
    }

    #[test]
    fn outcomes_have_no_blanks() {
        let all = [
            Outcome::NotYet,
            Outcome::NoMethod(None),
            Outcome::NoMethod(Some(Blocker::RootBus)),
            Outcome::NoMethod(Some(Blocker::VirtFn)),
            Outcome::NoMethod(Some(Blocker::Bridge(bdf(0)))),
            Outcome::NoMethod(Some(Blocker::NotSeized(bdf(1)))),
            Outcome::NoMethod(Some(Blocker::Held(bdf(1), 3))),
            Outcome::NoMethod(Some(Blocker::NotResettable)),
            Outcome::NoMethod(Some(Blocker::Busy)),
            Outcome::Done {
                method: "pm",
                errno: 0,
            },
            Outcome::Done {
                method: "pm",
                errno: -110,
            },
        ];
        for o in all {
            let s = format!("{o}");
            assert!(!s.contains(' '), "{s}");
            assert_eq!(o.failed(), s.contains(":err-"), "{s}");
        }
        assert_eq!(
            format!("{}", Outcome::NoMethod(Some(Blocker::Held(bdf(1), 3)))),
            "none:held-0000:03:00.1-guest-3"
        );
    }
}
