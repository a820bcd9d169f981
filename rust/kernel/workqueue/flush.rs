// SPDX-License-Identifier: GPL-2.0

//! Waiting for a work item to finish: `flush_work()`.
//!
//! A driver that queues work items must make sure none is queued or running once the object
//! the item uses goes away, and at the latest before its module is unloaded: the item's function
//! is module code. [`Work::flush`] waits for that.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use super::Work;
use crate::bindings;

impl<T: ?Sized, const ID: u64> Work<T, ID> {
    /// Waits until the work item is neither queued nor running, and returns `true` if it had to
    /// wait (the item was queued or running), `false` if it was idle.
    ///
    /// On return the item is idle unless it was queued again after this started waiting (by
    /// itself, or by someone else): callers that need it idle for good first stop whatever
    /// queues it.
    ///
    /// This may sleep. Calling it from the work item itself, or while holding a lock the work
    /// item takes, deadlocks.
    #[inline]
    pub fn flush(&self) -> bool {
        // SAFETY: A `Work` is only created by `Work::new`, which initialises the `work_struct` in
        // place; it is `!Unpin`, so it has not moved since, and it stays valid while `self` is
        // borrowed. `flush_work()` only waits for the item, it does not take ownership of it.
        unsafe { bindings::flush_work(Self::raw_get(self)) }
    }
}

#[cfg(CONFIG_RUST_KUNIT_TESTS)]
#[macros::kunit_tests(rust_workqueue_flush)]
mod tests {
    use crate::{
        prelude::*,
        sync::{
            atomic::{
                Acquire,
                Atomic,
                Release, //
            },
            Arc,
        },
        time::{
            delay::fsleep,
            Delta, //
        },
        workqueue::{
            self,
            Work,
            WorkItem, //
        },
    };

    #[pin_data]
    struct Slow {
        runs: Atomic<u32>,
        #[pin]
        work: Work<Slow>,
    }

    crate::impl_has_work! {
        impl HasWork<Self> for Slow { self.work }
    }

    impl WorkItem for Slow {
        type Pointer = Arc<Slow>;

        fn run(this: Arc<Slow>) {
            // Long enough for the test to reach `flush` while the item is still running.
            fsleep(Delta::from_millis(50));
            this.runs.fetch_add(1, Release);
        }
    }

    #[test]
    fn flush_waits_for_the_queued_item() -> Result {
        let slow = Arc::pin_init(
            pin_init!(Slow {
                runs: Atomic::new(0),
                work <- crate::new_work!("rust_workqueue_flush"),
            }),
            GFP_KERNEL,
        )?;

        // Idle: nothing to wait for.
        assert!(!slow.work.flush());

        // `system()` is deprecated in 7.3 (`system_wq` warns once); `system_long()` is not.
        assert!(workqueue::system_long().enqueue(slow.clone()).is_ok());
        assert!(slow.work.flush());
        assert_eq!(slow.runs.load(Acquire), 1);

        // Idle again, and the queue dropped its reference.
        assert!(!slow.work.flush());
        assert_eq!(slow.runs.load(Acquire), 1);
        Ok(())
    }
}
