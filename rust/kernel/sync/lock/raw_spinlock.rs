// SPDX-License-Identifier: GPL-2.0

//! A kernel raw spinlock, held with local interrupts disabled.
//!
//! A `raw_spinlock_t` never sleeps, not even with `PREEMPT_RT`, where `spinlock_t` becomes a
//! sleeping lock. It is the lock for code that runs under another raw spinlock, such as the
//! configuration accessors of a PCI host bridge, which the PCI core may call with its raw
//! `pci_lock` held (around user space's accesses, and around all of them without
//! `CONFIG_PCI_LOCKLESS_CONFIG`): taking a `spinlock_t` there is invalid nesting (lockdep reports it with
//! `CONFIG_PROVE_RAW_LOCK_NESTING`) and sleeps in atomic context with `PREEMPT_RT`. Keep its
//! critical sections short and bounded: they delay interrupts on this CPU, real-time kernel or
//! not.
use super::*;

/// Creates a [`RawSpinLockIrq`] initialiser with the given name and a newly-created lock class.
///
/// It uses the name if one is given, otherwise it generates one based on the file name and line
/// number.
#[macro_export]
macro_rules! new_raw_spinlock_irq {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::sync::RawSpinLockIrq::new(
            $inner, $crate::optional_name!($($name)?), $crate::static_lock_class!())
    };
}
pub use new_raw_spinlock_irq;

/// A raw spinlock held with local interrupts disabled (`raw_spin_lock_irqsave()`).
///
/// The interrupt state is saved when the lock is taken and restored when the guard is dropped,
/// so it may be taken whether or not interrupts are already disabled, from any context.
///
/// # Examples
///
/// ```
/// use kernel::sync::{new_raw_spinlock_irq, RawSpinLockIrq};
///
/// #[pin_data]
/// struct Counter {
///     #[pin]
///     value: RawSpinLockIrq<u32>,
/// }
///
/// let c = KBox::pin_init(
///     pin_init!(Counter { value <- new_raw_spinlock_irq!(0) }),
///     GFP_KERNEL,
/// )?;
/// {
///     let mut v = c.value.lock();
///     *v += 1;
///     // Held: a second attempt fails rather than spinning.
///     assert!(c.value.try_lock().is_none());
/// }
/// assert_eq!(*c.value.lock(), 1);
/// # Ok::<(), Error>(())
/// ```
pub type RawSpinLockIrq<T> = Lock<T, RawSpinLockIrqBackend>;

/// A kernel `raw_spinlock_t` lock backend, taken with `raw_spin_lock_irqsave()`.
pub struct RawSpinLockIrqBackend;

/// A [`Guard`] acquired from locking a [`RawSpinLockIrq`]: unlocks it and restores the interrupt
/// state when dropped.
pub type RawSpinLockIrqGuard<'a, T> = Guard<'a, T, RawSpinLockIrqBackend>;

// SAFETY: The underlying kernel `raw_spinlock_t` object ensures mutual exclusion. `relock` uses
// the default implementation, which calls `lock` again.
unsafe impl Backend for RawSpinLockIrqBackend {
    type State = bindings::raw_spinlock_t;
    /// The interrupt state saved by `raw_spin_lock_irqsave()`.
    type GuardState = crate::ffi::c_ulong;

    #[inline]
    unsafe fn init(
        ptr: *mut Self::State,
        name: *const crate::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: The safety requirements ensure that `ptr` is valid for writes, and `name` and
        // `key` are valid for read indefinitely.
        unsafe { bindings::raw_spin_lock_init_named(ptr, name, key) }
    }

    #[inline]
    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The safety requirements of this function ensure that `ptr` points to valid
        // memory, and that it has been initialised before.
        unsafe { bindings::raw_spin_lock_irqsave(ptr) }
    }

    #[inline]
    unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
        // SAFETY: The safety requirements of this function ensure that `ptr` is valid and that the
        // caller is the owner of the lock; `guard_state` is what `lock` saved.
        unsafe { bindings::raw_spin_unlock_irqrestore(ptr, *guard_state) }
    }

    #[inline]
    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags = 0;
        // SAFETY: The `ptr` pointer is guaranteed to be valid and initialised before use;
        // `flags` is a valid place for the saved interrupt state.
        if unsafe { bindings::raw_spin_trylock_irqsave(ptr, &mut flags) } {
            Some(flags)
        } else {
            None
        }
    }

    #[inline]
    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: The `ptr` pointer is guaranteed to be valid and initialised before use.
        unsafe { bindings::raw_spin_assert_is_held(ptr) }
    }
}

#[cfg(CONFIG_RUST_KUNIT_TESTS)]
#[macros::kunit_tests(rust_raw_spinlock_irq)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[pin_data]
    struct Holder {
        #[pin]
        lock: RawSpinLockIrq<u32>,
    }

    #[test]
    fn disables_interrupts_while_held() -> Result {
        let h = KBox::pin_init(
            pin_init!(Holder { lock <- new_raw_spinlock_irq!(7, "rust_raw_spinlock_test") }),
            GFP_KERNEL,
        )?;
        // SAFETY: Reading this CPU's interrupt state has no requirement.
        let before = unsafe { bindings::irqs_disabled() };
        {
            let mut g = h.lock.lock();
            *g += 1;
            // SAFETY: As above.
            assert!(unsafe { bindings::irqs_disabled() });
            assert!(h.lock.try_lock().is_none());
        }
        // SAFETY: As above.
        assert_eq!(unsafe { bindings::irqs_disabled() }, before);
        let g = h.lock.try_lock();
        assert_eq!(g.as_deref().copied(), Some(8));
        Ok(())
    }
}
