// SPDX-License-Identifier: GPL-2.0

//! The xenbus frontend driver: the connection to the backend and its states.
//!
//! - Probe: grant the shared page, allocate the event channel for the backend, publish both
//!   (with the protocol version) in one transaction, switch to `Initialised`.
//! - Backend `Connected`: create a root bus for every root the backend exports, which adds the
//!   devices on it; switch to `Connected`. Only the device/function numbers the backend lists
//!   (`vdev-N`) are probed, each probe being a round trip to the backend; every number when the
//!   list is missing or unusable ([`scan`]).
//! - Backend `Reconfiguring` (`xl pci-detach`): remove the devices whose `state-N` is `Closing`;
//!   switch to `Reconfiguring`. Backend `Reconfigured`: rescan the roots (at the numbers listed
//!   then); switch to `Connected`.
//! - Backend `Closing` or `Closed`: remove the buses; switch to `Closed`.

use kernel::{
    device::Core,
    new_mutex,
    pci::DevfnSet,
    prelude::*,
    sync::Mutex,
    time::{
        Instant,
        Monotonic, //
    },
    xen::{
        evtchn::{
            LocalPort,
            Port, //
        },
        grant::GrantRef,
        xenbus::{
            self,
            OtherendAction,
            XenbusState, //
        },
        xenstore::{
            self,
            Nil,
            Store, //
        },
    },
};

use crate::{
    aer::AerJob,
    bus::{
        Roots,
        Scan, //
    },
    common::{
        bdf::{
            Bdf,
            BusAddr, //
        },
        pciif,
        scan::{
            self,
            Fallback,
            Listed,
            Read, //
        },
        xs, //
    },
    ops::{
        Channel,
        OpChannel, //
    },
    stats::{
        self,
        StatsFile, //
    },
};

/// The `pcifront` xenbus driver.
pub(crate) struct PcifrontDriver;

kernel::xenbus_device_table!(PCIFRONT_IDS, (), [(xenbus::DeviceId::new(c"pci"), ())]);

/// How far the connection got, as far as the PCI buses go.
enum Link {
    /// The shared page and event channel are published; the backend has not connected yet.
    Waiting,
    /// Connected: the root buses the backend exports, with their devices.
    Connected(Roots),
    /// Disconnected: the buses are gone, for good (the backend does not reconnect).
    Closed,
}

/// The driver data of a bound device: one connection to a backend.
#[pin_data]
pub(crate) struct Front {
    /// The buses, whose operations hold references to the channel.
    #[pin]
    link: Mutex<Link>,
    /// The connection's statistics file in debugfs (see [`stats`]), which holds a reference to
    /// the channel: removed before `chan` is dropped.
    _stats: Option<StatsFile>,
    /// The shared page and the event channel. After `link` and `_stats`: dropped (detaching the
    /// AER job, and freeing the channel with the last reference) once the buses and the file
    /// are gone.
    chan: Channel,
}

impl xenbus::Driver for PcifrontDriver {
    type IdInfo = ();
    type Data<'bound> = Front;
    const ID_TABLE: xenbus::IdTable<()> = &PCIFRONT_IDS;

    fn probe<'bound>(
        dev: &'bound xenbus::Device<Core<'_>>,
        _id_info: &'bound (),
    ) -> impl PinInit<Front, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            let ring = OpChannel::alloc_ring(dev)?;
            let gref = OpChannel::grant_ref(&ring)?;
            let port = LocalPort::alloc(dev)?;
            let evtchn = port.port();
            let aer = AerJob::new()?;
            let chan = Channel::new(ring, port, aer)?;
            let stats = stats::file(dev, chan.get());

            Ok(try_pin_init!(Front {
                link <- new_mutex!(Link::Waiting, "pcifront_link"),
                _stats: stats,
                chan,
                _: {
                    publish(dev, gref, evtchn)?;
                    dev.switch_state(XenbusState::Initialised)?;
                },
            }))
        })
    }

    fn otherend_changed<'bound>(
        dev: &'bound xenbus::Device<Core<'_>>,
        this: Pin<&Front>,
        state: XenbusState,
    ) -> OtherendAction {
        match state {
            XenbusState::Connected => this.connect(dev, XenbusState::Connected),
            XenbusState::Reconfiguring => this.detach_devices(dev),
            XenbusState::Reconfigured => this.attach_devices(dev),
            XenbusState::Closed if dev.state() == XenbusState::Closed => {}
            XenbusState::Closing | XenbusState::Closed => this.disconnect(dev),
            _ => {}
        }
        // A frontend's device goes when the toolstack removes its node.
        OtherendAction::Keep
    }

    fn unbind<'bound>(dev: &'bound xenbus::Device<Core<'_>>, this: Pin<&Front>) {
        // The buses go first, while the channel their accesses use is still there.
        let old = core::mem::replace(&mut *this.link.lock(), Link::Closed);
        if let Link::Connected(roots) = old {
            dev_info!(dev.as_ref(), "removing {} PCI root bus(es)\n", roots.len());
        }
        // Not left for a frontend bound to the node later (a C one sets no watching bit); the
        // node may be gone already.
        let _ = Nil.remove(dev.nodename(), xs::FEATURE_QUIET_ANSWERS);
    }
}

/// Publishes the grant reference of the shared page, the event channel and the protocol version
/// for the backend, and that this frontend may set `_XEN_PCIF_watching`
/// (`feature-quiet-answers`), in one transaction.
fn publish(dev: &xenbus::Device<Core<'_>>, gref: GrantRef, port: Port) -> Result {
    let node = dev.nodename();

    xenstore::transaction(|tx| {
        tx.write_fmt(node, xs::PCI_OP_REF, fmt!("{}", gref))?;
        tx.write_fmt(node, xs::EVENT_CHANNEL, fmt!("{}", port))?;
        tx.write_bytes(node, xs::FEATURE_QUIET_ANSWERS, b"1")?;
        tx.write_bytes(node, xs::MAGIC, pciif::XEN_PCI_MAGIC.as_bytes())
    })
    .inspect_err(|e| dev.dev_fatal(*e, fmt!("publishing the shared page and event channel")))
}

/// Reads the roots the backend exports (`root_num`, `root-N`).
///
/// Without `root_num`, the one root `0000:00` is assumed, as the C driver does.
fn exported_roots(dev: &xenbus::Device<Core<'_>>, backend: &CStr) -> Result<KVec<BusAddr>> {
    let mut roots = KVec::new();

    let num = match Nil.read(backend, xs::ROOT_NUM) {
        Ok(value) => xs::parse_count(&value, xs::ROOT_NUM_MAX).map_err(|e| {
            dev_err!(dev.as_ref(), "bad root_num: {}\n", format_args!("{e}"));
            EINVAL
        })?,
        Err(e) if e == ENOENT => {
            dev_err!(
                dev.as_ref(),
                "no root_num from the backend: scanning 0000:00\n"
            );
            roots.push(BusAddr::new(0, 0), GFP_KERNEL)?;
            return Ok(roots);
        }
        Err(e) => return Err(e),
    };

    for i in 0..num {
        let key = xs::root_key(i);
        let key = key.as_cstr().ok_or(EINVAL)?;
        let value = Nil.read(backend, key)?;
        let root = xs::parse_root(&value).map_err(|e| {
            dev_err!(
                dev.as_ref(),
                "bad {}: {}\n",
                key.to_str().unwrap_or("root"),
                format_args!("{e}")
            );
            EINVAL
        })?;
        roots.push(root, GFP_KERNEL)?;
    }

    Ok(roots)
}

/// Reads what the backend says about each device it exports (`num_devs`, `vdev-N`, and
/// `state-N` where `vdev-N` is missing) in `store`: the list the scan probes, or why it cannot
/// be used.
///
/// Read in one transaction (see [`scan_roots`]): the toolstack renumbers the entries after a
/// detach, and a device moved between two reads would be missed.
///
/// Fails only when out of memory: any key that is missing or unusable means a full scan.
fn listed_devices(store: &impl Store, backend: &CStr) -> Result<Result<KVec<Listed>, Fallback>> {
    let num = match store.read(backend, xs::NUM_DEVS) {
        Ok(value) => scan::listed_count(Some(&value)),
        Err(_) => scan::listed_count(None),
    };
    let num = match num {
        Ok(num) => num,
        Err(why) => return Ok(Err(why)),
    };

    let mut listed = KVec::with_capacity(usize::try_from(num)?, GFP_KERNEL)?;
    for i in 0..num {
        let vdev_key = xs::vdev_key(i);
        let vdev = store.read(backend, vdev_key.as_cstr().ok_or(EINVAL)?);
        let vdev = match &vdev {
            Ok(value) => Read::Value(value),
            Err(e) if *e == ENOENT => Read::Missing,
            Err(_) => Read::Failed,
        };

        // Read only when there is no `vdev-N`.
        let state_value;
        let state = if vdev == Read::Missing {
            let state_key = xs::state_key(i);
            state_value = store.read(backend, state_key.as_cstr().ok_or(EINVAL)?);
            match &state_value {
                Ok(value) => Read::Value(value),
                Err(e) if *e == ENOENT => Read::Missing,
                Err(_) => Read::Failed,
            }
        } else {
            Read::Failed
        };

        listed.push(scan::listed(i, vdev, state), GFP_KERNEL)?;
    }

    Ok(Ok(listed))
}

/// Creates (or rescans) the bus of every root the backend exports, probing the device/function
/// numbers the backend lists on it (every number if the list is unusable), and logs one line:
/// the roots, the numbers probed, the configuration space accesses made and the time taken,
/// of which the time reading the backend's keys and the time of the answered round trips.
fn scan_roots(dev: &xenbus::Device<Core<'_>>, backend: &CStr, roots: &mut Roots) -> Result {
    let start = Instant::<Monotonic>::now();
    let accesses = roots.accesses();
    let exported = exported_roots(dev, backend)?;
    let listed = xenstore::transaction(|tx| listed_devices(tx, backend))?;
    let keys_ms = start.elapsed().as_millis();
    let trips_ns = roots.answered_ns();
    let mut fallback = None;
    let mut probes = 0usize;

    for &root in &exported {
        let devfns = match listed.as_deref().map_err(|why| *why) {
            Ok(listed) => scan::devfns(root, listed),
            Err(why) => Err(why),
        };
        let devfns = match devfns {
            Ok(devfns) => devfns.iter().collect::<DevfnSet>(),
            Err(why) => {
                fallback.get_or_insert(why);
                DevfnSet::all()
            }
        };
        probes += devfns.len();

        match roots.scan(dev.as_ref(), root, &devfns) {
            Ok(Scan::Created) => {
                dev_info!(
                    dev.as_ref(),
                    "PCI root bus {} added\n",
                    format_args!("{root}")
                );
            }
            Ok(Scan::Rescanned(0)) => {}
            Ok(Scan::Rescanned(n)) => {
                dev_info!(
                    dev.as_ref(),
                    "{} new device(s) on {}\n",
                    n,
                    format_args!("{root}")
                );
            }
            Err(e) => {
                dev_err!(
                    dev.as_ref(),
                    "cannot add PCI root bus {}: {:?}\n",
                    format_args!("{root}"),
                    e
                );
                return Err(e);
            }
        }
    }

    let accesses = roots.accesses().wrapping_sub(accesses);
    let ms = start.elapsed().as_millis();
    // The time of the answered round trips on this connection meanwhile: the scan's accesses
    // and those of the guest drivers that bound to the devices found (the rest of the time
    // after the keys is the PCI core's and those drivers' own work). Wrong if the statistics
    // file was cleared meanwhile.
    let trips_ms = roots.answered_ns().saturating_sub(trips_ns) / 1_000_000;
    match fallback {
        None => dev_info!(
            dev.as_ref(),
            "scanned {} root(s) at the listed numbers: {} probe(s), {} config access(es) in {} ms (keys {} ms, round trips {} ms)\n",
            exported.len(),
            probes,
            accesses,
            ms,
            keys_ms,
            trips_ms
        ),
        Some(why) => dev_info!(
            dev.as_ref(),
            "scanned {} root(s) in full ({}): {} probe(s), {} config access(es) in {} ms (keys {} ms, round trips {} ms)\n",
            exported.len(),
            format_args!("{why}"),
            probes,
            accesses,
            ms,
            keys_ms,
            trips_ms
        ),
    }

    Ok(())
}

impl Front {
    /// The backend is connected: adds the buses and switches to `Connected`; or, with `next`
    /// `Reconfiguring` (a backend `Connected` missed, the backend reconfiguring already), switches
    /// to `Reconfiguring` with no bus yet, which the scan at `Reconfigured` adds.
    ///
    /// Only done once, from `Initialised`.
    fn connect(self: Pin<&Self>, dev: &xenbus::Device<Core<'_>>, next: XenbusState) {
        if dev.state() != XenbusState::Initialised {
            return;
        }

        let mut link = self.link.lock();
        if !matches!(*link, Link::Waiting) {
            return;
        }

        let backend = match dev.otherend() {
            Ok(backend) => backend,
            Err(e) => {
                dev.dev_fatal(e, fmt!("reading the backend's directory"));
                return;
            }
        };
        let backend = &*backend;

        // Before the scan, whose round trips then ask for no event too.
        let quiet = Nil
            .read(backend, xs::FEATURE_QUIET_ANSWERS)
            .is_ok_and(|v| xs::feature_on(&v));
        self.chan.get().set_quiet_offered(quiet);

        let mut roots = Roots::new(self.chan.get().clone());

        if next == XenbusState::Connected {
            if let Err(e) = scan_roots(dev, backend, &mut roots) {
                drop(roots);
                *link = Link::Closed;
                dev.dev_fatal(e, fmt!("adding the exported PCI roots"));
                return;
            }
        }

        *link = Link::Connected(roots);
        drop(link);

        if let Err(e) = dev.switch_state(next) {
            dev_err!(dev.as_ref(), "cannot switch to {:?}: {:?}\n", next, e);
        }
    }

    /// The backend asks for devices to be detached (`state-N` is `Closing`): removes them, then
    /// switches to `Reconfiguring`.
    fn detach_devices(self: Pin<&Self>, dev: &xenbus::Device<Core<'_>>) {
        // A connection whose backend `Connected` was missed: as C, straight to `Reconfiguring`,
        // with nothing to remove and no bus yet. Scanning and switching to `Connected` first
        // would bind guest drivers to devices being detached, and a C backend, which follows
        // the frontend back to `Connected`, would then ignore this reconfiguration: the detach
        // would never reach it.
        if dev.state() == XenbusState::Initialised {
            self.connect(dev, XenbusState::Reconfiguring);
            return;
        }
        if dev.state() != XenbusState::Connected {
            return;
        }

        self.reconfigure(
            dev,
            |backend, roots| remove_closing_devices(dev, backend, roots),
            fmt!("removing detached PCI devices"),
            XenbusState::Reconfiguring,
        );
    }

    /// The backend finished reconfiguring: adds the new devices, then switches back to
    /// `Connected`.
    fn attach_devices(self: Pin<&Self>, dev: &xenbus::Device<Core<'_>>) {
        if dev.state() != XenbusState::Reconfiguring {
            return;
        }

        self.reconfigure(
            dev,
            |backend, roots| scan_roots(dev, backend, roots),
            fmt!("rescanning the exported PCI roots"),
            XenbusState::Connected,
        );
    }

    /// One step of a reconfiguration: runs `step` on the connected roots, then switches to
    /// `next`. A failed step is fatal for the connection (`what` says what failed).
    fn reconfigure(
        self: Pin<&Self>,
        dev: &xenbus::Device<Core<'_>>,
        step: impl FnOnce(&CStr, &mut Roots) -> Result,
        what: core::fmt::Arguments<'_>,
        next: XenbusState,
    ) {
        let mut link = self.link.lock();
        let Link::Connected(roots) = &mut *link else {
            return;
        };
        if let Err(e) = dev.otherend().and_then(|backend| step(&backend, roots)) {
            // The buses go now, while the backend still answers: after `dev_fatal` (Closing) it
            // unmaps the page, and each access of their removal would wait out its deadline.
            let old = core::mem::replace(&mut *link, Link::Closed);
            drop(link);
            drop(old);
            dev.dev_fatal(e, what);
            return;
        }
        drop(link);

        if let Err(e) = dev.switch_state(next) {
            dev_err!(dev.as_ref(), "cannot switch to {:?}: {:?}\n", next, e);
        }
    }

    /// The backend is going away: removes the buses and switches to `Closed`.
    fn disconnect(self: Pin<&Self>, dev: &xenbus::Device<Core<'_>>) {
        let old = core::mem::replace(&mut *self.link.lock(), Link::Closed);
        if let Link::Connected(roots) = old {
            dev_info!(
                dev.as_ref(),
                "backend closing: removing {} PCI root bus(es)\n",
                roots.len()
            );
        }

        if let Err(e) = dev.switch_state(XenbusState::Closed) {
            dev_err!(dev.as_ref(), "cannot switch to Closed: {:?}\n", e);
        }
    }
}

/// A device whose `state-N` the toolstack set to `Closing`.
enum Detaching {
    /// Exported at this address (its `vdev-N`).
    At(Bdf),
    /// Index `N` has no `vdev-N`: a device the backend refused, which has nothing to remove.
    NeverExported(u32),
}

/// Reads which devices the toolstack is detaching (`num_devs`, `state-N`, and `vdev-N` where
/// `state-N` is `Closing`) in `store`.
///
/// Read in one transaction (see [`remove_closing_devices`]): libxl renumbers the entries once a
/// detach completes, so an overlapping detach can move an entry between the reads of its
/// `state-N` and its `vdev-N`, whose address would then be another device's, removed from the
/// guest in its place. At most 513 reads ([`scan::LISTED_MAX`] bounds `num_devs`), within
/// `xenstored`'s default quota of nodes per transaction (1024).
fn detaching_devices(
    dev: &xenbus::Device<Core<'_>>,
    store: &impl Store,
    backend: &CStr,
) -> Result<KVec<Detaching>> {
    // Bounded before the loop as for the scan: each index costs a xenstore read or two on the
    // xenwatch thread.
    let value = store.read(backend, xs::NUM_DEVS)?;
    let num = scan::listed_count(Some(&value)).map_err(|why| {
        dev_err!(
            dev.as_ref(),
            "cannot look for detached devices: {}\n",
            format_args!("{why}")
        );
        EINVAL
    })?;

    let mut detaching = KVec::new();
    for i in 0..num {
        let key = xs::state_key(i);
        let value = match store.read(backend, key.as_cstr().ok_or(EINVAL)?) {
            Ok(value) => value,
            // No such entry: nothing to detach.
            Err(e) if e == ENOENT => continue,
            Err(e) => return Err(e),
        };
        if xs::XenbusState::parse(&value) != Ok(xs::XenbusState::Closing) {
            continue;
        }

        let key = xs::vdev_key(i);
        let value = match store.read(backend, key.as_cstr().ok_or(EINVAL)?) {
            Ok(value) => value,
            // A device the backend refused (it publishes no `vdev-N` for it) is detached: there
            // is nothing to remove. (C's frontend fails the whole connection here.)
            Err(e) if e == ENOENT => {
                detaching.push(Detaching::NeverExported(i), GFP_KERNEL)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let vdev = xs::parse_vdev(&value).map_err(|e| {
            dev_err!(
                dev.as_ref(),
                "bad {}: {}\n",
                key.as_str(),
                format_args!("{e}")
            );
            EINVAL
        })?;
        detaching.push(Detaching::At(vdev), GFP_KERNEL)?;
    }

    Ok(detaching)
}

/// Removes the devices whose `state-N` the toolstack set to `Closing`, found by their `vdev-N`.
fn remove_closing_devices(dev: &xenbus::Device<Core<'_>>, backend: &CStr, roots: &Roots) -> Result {
    let detaching = xenstore::transaction(|tx| detaching_devices(dev, tx, backend))?;

    for device in &detaching {
        match *device {
            Detaching::NeverExported(i) => {
                dev_info!(
                    dev.as_ref(),
                    "{} detached, never exported\n",
                    xs::vdev_key(i).as_str()
                );
            }
            Detaching::At(vdev) => match roots.remove_device(vdev.bus_addr(), vdev.devfn()) {
                Ok(()) => dev_info!(
                    dev.as_ref(),
                    "removed {}\n",
                    format_args!("{}", vdev.vdev())
                ),
                Err(_) => dev_warn!(
                    dev.as_ref(),
                    "detached device {} not found\n",
                    format_args!("{}", vdev.vdev())
                ),
            },
        }
    }

    Ok(())
}
