// SPDX-License-Identifier: GPL-2.0

//! The xenbus frontend driver: the connection to the backend and its states.
//!
//! - Probe: grant the shared page, allocate the event channel for the backend, publish both
//!   (with the protocol version) in one transaction, switch to `Initialised`.
//! - Backend `Connected`: create a root bus for every root the backend exports, which adds the
//!   devices on it; switch to `Connected`.
//! - Backend `Reconfiguring` (`xl pci-detach`): remove the devices whose `state-N` is `Closing`;
//!   switch to `Reconfiguring`. Backend `Reconfigured`: rescan the roots; switch to `Connected`.
//! - Backend `Closing` or `Closed`: remove the buses; switch to `Closed`.

use kernel::{
    device::Core,
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
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
        bdf::BusAddr,
        pciif,
        xs, //
    },
    ops::OpChannel,
};

/// The `pcifront` xenbus driver.
pub(crate) struct PcifrontDriver;

kernel::xenbus_device_table!(PCIFRONT_IDS, (), [(xenbus::DeviceId::new(c"pci"), ())]);

/// How far the connection got, as far as the PCI buses go.
enum Link<'bound> {
    /// The shared page and event channel are published; the backend has not connected yet.
    Waiting,
    /// Connected: the root buses the backend exports, with their devices.
    Connected(Roots<'bound>),
    /// Disconnected: the buses are gone, for good (the backend does not reconnect).
    Closed,
}

/// The driver data of a bound device: one connection to a backend.
#[pin_data]
pub(crate) struct Front<'bound> {
    /// The buses, whose operations hold references to the channel.
    #[pin]
    link: Mutex<Link<'bound>>,
    /// The shared page and the event channel.
    chan: Arc<OpChannel<'bound>>,
}

impl xenbus::Driver for PcifrontDriver {
    type IdInfo = ();
    type Data<'bound> = Front<'bound>;
    const ID_TABLE: xenbus::IdTable<()> = &PCIFRONT_IDS;

    fn probe<'bound>(
        dev: &'bound xenbus::Device<Core<'_>>,
        _id_info: &'bound (),
    ) -> impl PinInit<Front<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            let ring = OpChannel::alloc_ring(dev)?;
            let gref = OpChannel::grant_ref(&ring)?;
            let port = LocalPort::alloc(dev)?;
            let evtchn = port.port();
            let aer = AerJob::new()?;

            Ok(try_pin_init!(Front {
                link <- new_mutex!(Link::Waiting, "pcifront_link"),
                chan: Arc::pin_init(OpChannel::new(ring, port, aer), GFP_KERNEL)?,
                _: {
                    publish(dev, gref, evtchn)?;
                    dev.switch_state(XenbusState::Initialised)?;
                },
            }))
        })
    }

    fn otherend_changed<'bound>(
        dev: &'bound xenbus::Device<Core<'_>>,
        this: Pin<&Front<'bound>>,
        state: XenbusState,
    ) -> OtherendAction {
        match state {
            XenbusState::Connected => this.connect(dev),
            XenbusState::Reconfiguring => this.detach_devices(dev),
            XenbusState::Reconfigured => this.attach_devices(dev),
            XenbusState::Closed if dev.state() == XenbusState::Closed => {}
            XenbusState::Closing | XenbusState::Closed => this.disconnect(dev),
            _ => {}
        }
        // A frontend's device goes when the toolstack removes its node.
        OtherendAction::Keep
    }

    fn unbind<'bound>(dev: &'bound xenbus::Device<Core<'_>>, this: Pin<&Front<'bound>>) {
        // The buses go first, while the channel their accesses use is still there.
        let old = core::mem::replace(&mut *this.link.lock(), Link::Closed);
        if let Link::Connected(roots) = old {
            dev_info!(dev.as_ref(), "removing {} PCI root bus(es)\n", roots.len());
        }
    }
}

/// Publishes the grant reference of the shared page, the event channel and the protocol version
/// for the backend, in one transaction.
fn publish(dev: &xenbus::Device<Core<'_>>, gref: GrantRef, port: Port) -> Result {
    let node = dev.nodename();

    xenstore::transaction(|tx| {
        tx.write_fmt(node, xs::PCI_OP_REF, fmt!("{}", gref))?;
        tx.write_fmt(node, xs::EVENT_CHANNEL, fmt!("{}", port))?;
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

/// Creates (or rescans) the bus of every root the backend exports.
fn scan_roots(dev: &xenbus::Device<Core<'_>>, backend: &CStr, roots: &mut Roots<'_>) -> Result {
    for root in exported_roots(dev, backend)? {
        match roots.scan(dev.as_ref(), root) {
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

    Ok(())
}

impl Front<'_> {
    /// The backend is connected: adds the buses and switches to `Connected`.
    ///
    /// Only done once, from `Initialised`.
    fn connect(self: Pin<&Self>, dev: &xenbus::Device<Core<'_>>) {
        if dev.state() != XenbusState::Initialised {
            return;
        }

        let mut link = self.link.lock();
        if !matches!(*link, Link::Waiting) {
            return;
        }

        let Some(backend) = dev.otherend() else {
            dev.dev_fatal(ENODEV, fmt!("the backend's directory is unknown"));
            return;
        };

        // SAFETY: `roots` is kept in `self.link`, in the driver data, which the driver core
        // drops (never leaks) at unbind, or dropped below.
        let mut roots = unsafe { Roots::new(self.chan.clone()) };

        if let Err(e) = scan_roots(dev, backend, &mut roots) {
            drop(roots);
            *link = Link::Closed;
            dev.dev_fatal(e, fmt!("adding the exported PCI roots"));
            return;
        }

        *link = Link::Connected(roots);
        drop(link);

        if let Err(e) = dev.switch_state(XenbusState::Connected) {
            dev_err!(dev.as_ref(), "cannot switch to Connected: {:?}\n", e);
        }
    }

    /// The backend asks for devices to be detached (`state-N` is `Closing`): removes them, then
    /// switches to `Reconfiguring`.
    fn detach_devices(self: Pin<&Self>, dev: &xenbus::Device<Core<'_>>) {
        // A connection whose backend `Connected` was missed: connect first.
        if dev.state() == XenbusState::Initialised {
            self.connect(dev);
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
        step: impl FnOnce(&CStr, &mut Roots<'_>) -> Result,
        what: core::fmt::Arguments<'_>,
        next: XenbusState,
    ) {
        let mut link = self.link.lock();
        let Link::Connected(roots) = &mut *link else {
            return;
        };
        let Some(backend) = dev.otherend() else {
            return;
        };

        if let Err(e) = step(backend, roots) {
            drop(link);
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

/// Removes the devices whose `state-N` the toolstack set to `Closing`, found by their `vdev-N`.
fn remove_closing_devices(
    dev: &xenbus::Device<Core<'_>>,
    backend: &CStr,
    roots: &Roots<'_>,
) -> Result {
    // Bounded before the loop: each index costs a xenstore read on the xenwatch thread.
    let value = Nil.read(backend, xs::NUM_DEVS)?;
    let num = xs::parse_count(&value, xs::NUM_DEVS_MAX).map_err(|e| {
        dev_err!(dev.as_ref(), "bad num_devs: {}\n", format_args!("{e}"));
        EINVAL
    })?;

    for i in 0..num {
        let key = xs::state_key(i);
        let Ok(value) = Nil.read(backend, key.as_cstr().ok_or(EINVAL)?) else {
            // Entries may be renumbered by the toolstack while we look.
            continue;
        };
        if xs::XenbusState::parse(&value) != Ok(xs::XenbusState::Closing) {
            continue;
        }

        let key = xs::vdev_key(i);
        let value = match Nil.read(backend, key.as_cstr().ok_or(EINVAL)?) {
            Ok(value) => value,
            // A device the backend refused (it publishes no `vdev-N` for it) is detached: there
            // is nothing to remove. (C's frontend fails the whole connection here.)
            Err(e) if e == ENOENT => {
                dev_info!(dev.as_ref(), "{} detached, never exported\n", key.as_str());
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

        match roots.remove_device(vdev.bus_addr(), vdev.devfn()) {
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
        }
    }

    Ok(())
}
