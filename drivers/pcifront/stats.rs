// SPDX-License-Identifier: GPL-2.0

//! The statistics of each connection in debugfs: `pcifront/<device>` (`pcifront/pci-0` for the
//! guest's usual one), which shows how this connection's round trips ended and how they waited
//! ([`roundtrip::Report`]: answered in the spin or after polls, preempted spins by their longest
//! gap, yields, the yield rule's trials and where it stands, and the spin budget now). Writing
//! anything to it clears the counts.

use kernel::{
    debugfs::{
        self,
        Dir, //
    },
    device::Core,
    prelude::*,
    sync::Arc,
    uaccess::UserSliceReader,
    xen::xenbus, //
};

use crate::{
    common::roundtrip,
    ops::OpChannel, //
};

kernel::sync::global_lock! {
    // SAFETY: Initialised in `PcifrontModule::init` (by `Debugfs::create`) before the driver is
    // registered, so before anything else uses it.
    unsafe(uninit) static DEBUGFS: Mutex<Option<Dir>> = None;
}

/// The `pcifront` directory in debugfs, removed when dropped (once the driver, and with it
/// every connection's file, is gone). The module holds it; only [`Debugfs::create`] makes one.
pub(crate) struct Debugfs(());

impl Debugfs {
    /// Creates the directory (an empty handle if debugfs is off or fails).
    ///
    /// # Safety
    ///
    /// Called once, before the driver is registered.
    pub(crate) unsafe fn create() -> Self {
        // SAFETY: The caller calls this once, before any connection (the only other user of
        // `DEBUGFS`) can exist.
        unsafe { DEBUGFS.init() };
        *DEBUGFS.lock() = Some(Dir::new(c"pcifront"));
        Self(())
    }
}

impl Drop for Debugfs {
    fn drop(&mut self) {
        *DEBUGFS.lock() = None;
    }
}

/// A connection's statistics file, which holds a reference to its channel.
pub(crate) type StatsFile = Pin<KBox<debugfs::File<Arc<OpChannel>>>>;

/// Creates the statistics file of the connection `dev`, on `chan`. None if debugfs is off or
/// the file could not be made (the connection works without it).
pub(crate) fn file(dev: &xenbus::Device<Core<'_>>, chan: &Arc<OpChannel>) -> Option<StatsFile> {
    let dir = DEBUGFS.lock().clone()?;
    KBox::pin_init(
        dir.read_write_callback_file(dev.as_ref().name(), chan.clone(), &print, &clear),
        GFP_KERNEL,
    )
    .ok()
}

/// Reading the file: one snapshot.
fn print(chan: &Arc<OpChannel>, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
    let report: roundtrip::Report = chan.report();
    write!(f, "{report}")
}

/// Writing the file, whatever is written: clears the counts.
fn clear(chan: &Arc<OpChannel>, _input: &mut UserSliceReader) -> Result {
    chan.clear_counts();
    Ok(())
}
