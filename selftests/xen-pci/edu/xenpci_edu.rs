// SPDX-License-Identifier: GPL-2.0

//! Test driver for QEMU's `edu` device in a Xen PV guest: do interrupts from a passed-through
//! device reach an ordinary PCI driver?
//!
//! On probe it enables the device, maps BAR0, checks the identification and liveness registers,
//! turns bus mastering on (an MSI is a memory write of the device), allocates exactly one
//! interrupt vector of the type asked for with `irq_type=` (`intx`, the default, or `msi`),
//! requests it with a handler that reads the interrupt status, acknowledges it and counts, then
//! raises [`RAISES`] interrupts one at a time, waiting up to [`WAIT_MS`] for each. It logs one
//! summary line, which the guest selftest parses:
//!
//! ```text
//! xenpci_edu 0000:00:00.0: 5/5 interrupts via MSI (irq 58)
//! xenpci_edu 0000:00:00.0: 0/5 interrupts via MSI (no vector: error -38)
//! ```
//!
//! Probe fails only when the device is not a working `edu` (identification, liveness, BAR0,
//! enabling); an interrupt test that went wrong is reported in that line and probe succeeds, so
//! that the test unloads the module the same way in every case. The vector and the handler live
//! only during probe; the driver then keeps BAR0 and the device enabled until it is unbound.
//!
//! QEMU's `edu` (`hw/misc/edu.c`): BAR0 is 1 MiB of 32-bit registers; `0x00` reads `0x010000ed`,
//! `0x04` reads back the complement of what was written, `0x24` is the interrupt status, a write
//! to `0x60` ORs the value into it and raises the interrupt (MSI if enabled, else INTx pin A), a
//! write to `0x64` clears those bits (INTx is lowered when the status reaches 0). One MSI vector,
//! no MSI-X.

use kernel::{
    device::{
        Bound,
        Core, //
    },
    driver,
    io::Io,
    irq::{
        self,
        IrqRequest,
        IrqReturn, //
    },
    pci,
    prelude::*,
    str::BStr,
    sync::{
        new_condvar,
        new_spinlock_irq,
        CondVar,
        CondVarTimeoutResult,
        SpinLockIrq, //
    },
    time::msecs_to_jiffies,
};

/// The `edu` registers this driver uses.
mod regs {
    /// Identification: `0xRRrr00ed`, major and minor version and `0xed`.
    pub(super) const IDENT: usize = 0x00;
    /// Liveness check: reads back the complement of the last value written.
    pub(super) const LIVENESS: usize = 0x04;
    /// Interrupt status: the bits raised and not yet acknowledged.
    pub(super) const IRQ_STATUS: usize = 0x24;
    /// Interrupt raise: ORs the value into the status and raises the interrupt.
    pub(super) const IRQ_RAISE: usize = 0x60;
    /// Interrupt acknowledge: clears the bits of the value from the status.
    pub(super) const IRQ_ACK: usize = 0x64;
    /// Past the last register used: the compile-time bound of the BAR0 accesses.
    pub(super) const END: usize = 0x100;

    /// What QEMU's `edu` reads at [`IDENT`] (version 1.0).
    pub(super) const IDENT_EDU: u32 = 0x010000ed;
}

/// The PCI IDs of QEMU's `edu`. The kernel crate's `pci::Vendor` has no constructor for a raw
/// vendor ID and no name for QEMU's `0x1234`, so the ID table matches its class and probe checks
/// these.
const EDU_VENDOR: u16 = 0x1234;
const EDU_DEVICE: u16 = 0x11e8;
/// The class code of `edu`: QEMU gives it `PCI_CLASS_OTHERS` (`0xff`) as a 16-bit class and
/// subclass, so it reads as class `0x00`, subclass `0xff`, programming interface `0x00`.
const EDU_CLASS: u32 = 0x00_ff00;

/// Interrupts raised per probe.
const RAISES: u32 = 5;
/// How long to wait for each one, in milliseconds.
const WAIT_MS: u32 = 2000;
/// The status bit raised (any bit works; `edu` itself uses 0x1 and 0x100 for its computations).
const TEST_BIT: u32 = 0x1000;

type Bar0<'bound> = pci::Bar<'bound, { regs::END }>;

/// The interrupt type asked for with `irq_type=`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IrqKind {
    Intx,
    Msi,
}

impl IrqKind {
    /// Parses `irq_type=`: `intx` or `0` (also when not given), `msi` or `1`.
    fn parse(value: &[u8]) -> Option<Self> {
        match value {
            b"" | b"intx" | b"0" => Some(Self::Intx),
            b"msi" | b"1" => Some(Self::Msi),
            _ => None,
        }
    }

    /// The value of the module parameter (checked when the module was loaded).
    fn from_param() -> Result<Self> {
        let value = module_parameters::irq_type.value_ref().as_bytes();
        Self::parse(value).ok_or_else(|| {
            pr_err!(
                "irq_type={}: not intx, msi, 0 or 1\n",
                BStr::from_bytes(value)
            );
            EINVAL
        })
    }

    fn types(self) -> pci::IrqTypes {
        pci::IrqTypes::default().with(match self {
            Self::Intx => pci::IrqType::Intx,
            Self::Msi => pci::IrqType::Msi,
        })
    }

    fn flags(self) -> irq::Flags {
        match self {
            // A GSI may be shared with other devices of the guest (as pirqs >= 16 are).
            Self::Intx => irq::Flags::SHARED,
            Self::Msi => irq::Flags::TRIGGER_NONE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Intx => "INTx",
            Self::Msi => "MSI",
        }
    }
}

/// The interrupt handler and what it shares with the probe that waits for it.
#[pin_data]
struct EduIrq<'a> {
    bar: &'a Bar0<'a>,
    /// Interrupts handled so far.
    #[pin]
    count: SpinLockIrq<u32>,
    /// Notified by the handler after each one.
    #[pin]
    handled: CondVar,
}

impl irq::Handler for EduIrq<'_> {
    fn handle(&self) -> IrqReturn {
        let status = self.bar.read32(regs::IRQ_STATUS);
        // Nothing pending: another device on a shared INTx line. All ones: the device does not
        // answer (memory decoding off, or gone).
        if status == 0 || status == u32::MAX {
            return IrqReturn::None;
        }
        self.bar.write32(status, regs::IRQ_ACK);
        *self.count.lock() += 1;
        self.handled.notify_all();
        IrqReturn::Handled
    }
}

/// How an interrupt test ended, for the summary line.
enum Outcome {
    /// All raises were counted, or the first that was not (its number, from 1).
    Counted { irq: u32, timed_out: Option<u32> },
    /// Interrupted by a signal while waiting.
    Interrupted { irq: u32 },
    /// No vector of the type asked for.
    NoVector(Error),
    /// A vector, but `request_irq` failed.
    NoHandler { irq: u32, err: Error },
}

/// Allocates one vector of `kind`, requests it, raises [`RAISES`] interrupts one at a time and
/// returns how many the handler counted. The handler and the vector are released on return.
fn interrupt_test(pdev: &pci::Device<Bound>, bar: &Bar0<'_>, kind: IrqKind) -> (u32, Outcome) {
    let vectors = match pdev.alloc_irq_vectors(1, 1, kind.types()) {
        Ok(vectors) => vectors,
        Err(e) => return (0, Outcome::NoVector(e)),
    };
    let request: IrqRequest<'_> = match vectors.index(0) {
        Ok(vector) => vector.into(),
        Err(e) => return (0, Outcome::NoVector(e)),
    };
    let irq = request.irq();
    // SAFETY: The registration is owned by `registration` below and dropped (the handler freed)
    // when this function returns; it is never forgotten.
    let init = unsafe {
        irq::Registration::new(
            request,
            kind.flags(),
            c"xenpci_edu",
            try_pin_init!(EduIrq {
                bar,
                count <- new_spinlock_irq!(0, "xenpci_edu::count"),
                handled <- new_condvar!("xenpci_edu::handled"),
            }? Error),
        )
    };
    let registration = match KBox::pin_init(init, GFP_KERNEL) {
        Ok(registration) => registration,
        Err(err) => return (0, Outcome::NoHandler { irq, err }),
    };
    let handler = registration.handler();

    for n in 1..=RAISES {
        let mut count = handler.count.lock();
        let before = *count;
        // Raised with the lock held (local interrupts off): the handler cannot count this one
        // before the wait below has put this task on the wait queue.
        bar.write32(TEST_BIT, regs::IRQ_RAISE);
        let mut left = msecs_to_jiffies(WAIT_MS);
        while *count == before {
            match handler.handled.wait_interruptible_timeout(&mut count, left) {
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                CondVarTimeoutResult::Timeout => break,
                CondVarTimeoutResult::Signal { .. } => {
                    let counted = *count;
                    drop(count);
                    bar.write32(TEST_BIT, regs::IRQ_ACK);
                    return (counted, Outcome::Interrupted { irq });
                }
            }
        }
        if *count == before {
            let counted = *count;
            drop(count);
            // Lower the line ourselves (INTx stays asserted until the status is 0).
            bar.write32(TEST_BIT, regs::IRQ_ACK);
            return (
                counted,
                Outcome::Counted {
                    irq,
                    timed_out: Some(n),
                },
            );
        }
    }
    let counted = *handler.count.lock();
    (
        counted,
        Outcome::Counted {
            irq,
            timed_out: None,
        },
    )
}

/// Maps BAR0 and checks that it is a working `edu`: identification and liveness registers.
fn map_bar0<'a>(pdev: &'a pci::Device<Bound>) -> Result<Bar0<'a>> {
    let bar = pdev.iomap_region_sized::<{ regs::END }>(0, c"xenpci_edu")?;

    let ident = bar.read32(regs::IDENT);
    if ident != regs::IDENT_EDU {
        dev_err!(
            pdev,
            "identification 0x{:08x}, want 0x{:08x}\n",
            ident,
            regs::IDENT_EDU
        );
        return Err(ENODEV);
    }
    let probe_value: u32 = 0x5aa5_0ff0;
    bar.write32(probe_value, regs::LIVENESS);
    let back = bar.read32(regs::LIVENESS);
    if back != !probe_value {
        dev_err!(
            pdev,
            "liveness: wrote 0x{:08x}, read 0x{:08x}, want 0x{:08x}\n",
            probe_value,
            back,
            !probe_value
        );
        return Err(EIO);
    }
    // Nothing pending from an earlier user.
    bar.write32(u32::MAX, regs::IRQ_ACK);
    Ok(bar)
}

/// What the driver keeps while bound: BAR0 (its region stays requested). The device stays
/// enabled, as bus master, until it is unbound.
struct EduData<'bound> {
    pdev: &'bound pci::Device,
    _bar: Bar0<'bound>,
}

struct EduDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <EduDriver as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_class(EDU_CLASS, 0xff_ffff), ())]
);

impl pci::Driver for EduDriver {
    type IdInfo = ();
    type Data<'bound> = EduData<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        if pdev.vendor_id().as_raw() != EDU_VENDOR || pdev.device_id() != EDU_DEVICE {
            return Err(ENODEV);
        }
        let kind = IrqKind::from_param()?;

        pdev.enable_device_mem()?;
        let bar = match map_bar0(pdev) {
            Ok(bar) => bar,
            Err(e) => {
                pdev.disable_device();
                return Err(e);
            }
        };
        // MSI is a memory write by the device: without bus mastering it is dropped.
        pdev.set_master();

        let (counted, outcome) = interrupt_test(pdev, &bar, kind);
        let name = kind.name();
        match outcome {
            Outcome::Counted {
                irq,
                timed_out: None,
            } => {
                dev_info!(
                    pdev,
                    "{}/{} interrupts via {} (irq {})\n",
                    counted,
                    RAISES,
                    name,
                    irq
                )
            }
            Outcome::Counted {
                irq,
                timed_out: Some(n),
            } => dev_info!(
                pdev,
                "{}/{} interrupts via {} (irq {}; none within {} ms of raise {})\n",
                counted,
                RAISES,
                name,
                irq,
                WAIT_MS,
                n
            ),
            Outcome::Interrupted { irq } => dev_info!(
                pdev,
                "{}/{} interrupts via {} (irq {}; interrupted by a signal)\n",
                counted,
                RAISES,
                name,
                irq
            ),
            Outcome::NoVector(e) => dev_info!(
                pdev,
                "{}/{} interrupts via {} (no vector: error {})\n",
                counted,
                RAISES,
                name,
                e.to_errno()
            ),
            Outcome::NoHandler { irq, err } => dev_info!(
                pdev,
                "{}/{} interrupts via {} (irq {}; request_irq: error {})\n",
                counted,
                RAISES,
                name,
                irq,
                err.to_errno()
            ),
        }

        Ok(EduData { pdev, _bar: bar })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, _this: Pin<&Self::Data<'bound>>) {
        // Balances the enable of probe: bus mastering and decoding off (BAR0 is unmapped after
        // this, when the data is dropped; nothing uses it any more).
        pdev.disable_device();
    }
}

impl Drop for EduData<'_> {
    fn drop(&mut self) {
        dev_info!(self.pdev, "removed\n");
    }
}

#[pin_data]
struct EduModule {
    #[pin]
    _driver: driver::Registration<pci::Adapter<EduDriver>>,
}

impl kernel::InPlaceModule for EduModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // A bad value fails the load, not only the probe.
            IrqKind::from_param()?;
            Ok(try_pin_init!(EduModule {
                _driver <- driver::Registration::new(c"xenpci_edu", module),
            }))
        })
    }
}

module! {
    type: EduModule,
    name: "xenpci_edu",
    authors: ["The xen-rust-pci authors"],
    description: "Interrupt test driver for QEMU's edu device behind Xen pcifront",
    license: "GPL",
    params: {
        irq_type: StringParam {
            default: StringParam::EMPTY,
            description: "Interrupt type to test: intx (default) or msi (also 0 or 1)",
        },
    },
}
