// SPDX-License-Identifier: GPL-2.0

//! Atomic bitwise operations on 32-bit atomics: fetch-or and fetch-and.
//!
//! Setting or clearing flags in a word that another party (another CPU, or another domain
//! through shared memory) also updates is one atomic read-modify-write in C (`atomic_fetch_or()`,
//! `atomic_fetch_and()`, `set_bit()`, `clear_bit()`). With only [`Atomic::cmpxchg`] it becomes a
//! retry loop that the other party can keep failing by writing the word all the time. These
//! operations complete in one step, whatever the other party does.
//!
//! C header: [`include/linux/atomic/atomic-instrumented.h`](srctree/include/linux/atomic/atomic-instrumented.h)

use super::{
    ordering::{
        self,
        OrderingType, //
    },
    Atomic,
};
use crate::bindings;

macro_rules! impl_atomic_bitwise {
    ($($t:ty),* $(,)?) => {
        $(
        impl Atomic<$t> {
            /// Atomic fetch and bitwise or.
            ///
            /// Atomically updates `*self` to `*self | v` and returns the value of `*self` before
            /// the update.
            ///
            /// # Examples
            ///
            /// ```
            /// use kernel::sync::atomic::{Atomic, Full, Relaxed};
            ///
            #[doc = concat!("let x = Atomic::<", stringify!($t), ">::new(0b1010);")]
            /// assert_eq!(0b1010, x.fetch_or(0b0101, Full));
            /// assert_eq!(0b1111, x.load(Relaxed));
            /// ```
            #[inline(always)]
            pub fn fetch_or<Ordering: ordering::Ordering>(&self, v: $t, _: Ordering) -> $t {
                let ptr = self.as_ptr().cast::<bindings::atomic_t>();
                let v = i32::from_ne_bytes(v.to_ne_bytes());

                // SAFETY: `ptr` is valid and aligned for as long as `self` is borrowed (guarantee
                // of `Atomic::as_ptr`), and `atomic_t` is a `struct` with a single `int`, which
                // has the size and alignment of `$t`; every access to it is atomic.
                let old = unsafe {
                    match Ordering::TYPE {
                        OrderingType::Full => bindings::atomic_fetch_or(v, ptr),
                        OrderingType::Acquire => bindings::atomic_fetch_or_acquire(v, ptr),
                        OrderingType::Release => bindings::atomic_fetch_or_release(v, ptr),
                        OrderingType::Relaxed => bindings::atomic_fetch_or_relaxed(v, ptr),
                    }
                };

                <$t>::from_ne_bytes(old.to_ne_bytes())
            }

            /// Atomic fetch and bitwise and.
            ///
            /// Atomically updates `*self` to `*self & v` and returns the value of `*self` before
            /// the update. `fetch_and(!bits, ..)` clears `bits`.
            ///
            /// # Examples
            ///
            /// ```
            /// use kernel::sync::atomic::{Atomic, Full, Relaxed};
            ///
            #[doc = concat!("let x = Atomic::<", stringify!($t), ">::new(0b1011);")]
            /// assert_eq!(0b1011, x.fetch_and(!0b0001, Full));
            /// assert_eq!(0b1010, x.load(Relaxed));
            /// ```
            #[inline(always)]
            pub fn fetch_and<Ordering: ordering::Ordering>(&self, v: $t, _: Ordering) -> $t {
                let ptr = self.as_ptr().cast::<bindings::atomic_t>();
                let v = i32::from_ne_bytes(v.to_ne_bytes());

                // SAFETY: As in `fetch_or`.
                let old = unsafe {
                    match Ordering::TYPE {
                        OrderingType::Full => bindings::atomic_fetch_and(v, ptr),
                        OrderingType::Acquire => bindings::atomic_fetch_and_acquire(v, ptr),
                        OrderingType::Release => bindings::atomic_fetch_and_release(v, ptr),
                        OrderingType::Relaxed => bindings::atomic_fetch_and_relaxed(v, ptr),
                    }
                };

                <$t>::from_ne_bytes(old.to_ne_bytes())
            }
        }
        )*
    };
}

impl_atomic_bitwise!(i32, u32);

#[cfg(CONFIG_RUST_KUNIT_TESTS)]
#[macros::kunit_tests(rust_atomic_bitwise)]
mod tests {
    use super::super::{
        Acquire,
        Full,
        Relaxed,
        Release, //
    };
    use super::*;

    #[test]
    fn fetch_or_sets_only_the_given_bits() {
        let x = Atomic::<u32>::new(0x8000_0004);
        assert_eq!(x.fetch_or(1, Full), 0x8000_0004);
        assert_eq!(x.load(Relaxed), 0x8000_0005);
        // Setting a set bit changes nothing and still reports the old value.
        assert_eq!(x.fetch_or(1, Acquire), 0x8000_0005);
        assert_eq!(x.fetch_or(0x10, Release), 0x8000_0005);
        assert_eq!(x.fetch_or(0, Relaxed), 0x8000_0015);
        assert_eq!(x.load(Relaxed), 0x8000_0015);

        let y = Atomic::<i32>::new(-8);
        assert_eq!(y.fetch_or(3, Full), -8);
        assert_eq!(y.load(Relaxed), -5);
    }

    #[test]
    fn fetch_and_clears_only_the_given_bits() {
        let x = Atomic::<u32>::new(0x8000_0007);
        assert_eq!(x.fetch_and(!1, Full), 0x8000_0007);
        assert_eq!(x.load(Relaxed), 0x8000_0006);
        // Clearing a clear bit changes nothing.
        assert_eq!(x.fetch_and(!1, Acquire), 0x8000_0006);
        assert_eq!(x.fetch_and(!0x8000_0000, Release), 0x8000_0006);
        assert_eq!(x.fetch_and(u32::MAX, Relaxed), 0x0000_0006);
        assert_eq!(x.load(Relaxed), 0x0000_0006);

        let y = Atomic::<i32>::new(-1);
        assert_eq!(y.fetch_and(0x7fff_ffff, Full), -1);
        assert_eq!(y.load(Relaxed), i32::MAX);
    }
}
