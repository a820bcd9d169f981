// SPDX-License-Identifier: GPL-2.0

//! The system work queues that replace `system_wq` and `system_unbound_wq`.
//!
//! Linux 7.3 marks `system_wq` and `system_unbound_wq` deprecated: the first work item queued on
//! either logs "enqueued on deprecated workqueue" (once per boot). [`system`](super::system) and
//! [`system_unbound`](super::system_unbound) still return them; these functions return the
//! queues that replace them.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use super::Queue;
use crate::bindings;

/// Returns the per-CPU system work queue (`system_percpu_wq`), which replaces `system_wq` (the
/// queue of `schedule_work()`).
///
/// A work item runs on the CPU that queued it. Multi-CPU multi-threaded. There are users which
/// expect relatively short queue flush time: callers shouldn't queue work items which can run
/// for too long.
pub fn system_percpu() -> &'static Queue {
    // SAFETY: `system_percpu_wq` is a C global, allocated by `workqueue_init_early()` before any
    // initcall runs and never freed.
    unsafe { Queue::from_raw(bindings::system_percpu_wq) }
}

/// Returns the default unbound system work queue (`system_dfl_wq`), which replaces
/// `system_unbound_wq`.
///
/// Workers are not bound to any specific CPU, not concurrency managed, and all queued work items
/// are executed immediately as long as the `max_active` limit is not reached and resources are
/// available.
pub fn system_dfl() -> &'static Queue {
    // SAFETY: `system_dfl_wq` is a C global, allocated by `workqueue_init_early()` before any
    // initcall runs and never freed.
    unsafe { Queue::from_raw(bindings::system_dfl_wq) }
}

#[cfg(CONFIG_RUST_KUNIT_TESTS)]
#[macros::kunit_tests(rust_workqueue_queues)]
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
        workqueue::{
            self,
            Work,
            WorkItem, //
        },
    };

    #[pin_data]
    struct Count {
        runs: Atomic<u32>,
        #[pin]
        work: Work<Count>,
    }

    crate::impl_has_work! {
        impl HasWork<Self> for Count { self.work }
    }

    impl WorkItem for Count {
        type Pointer = Arc<Count>;

        fn run(this: Arc<Count>) {
            this.runs.fetch_add(1, Release);
        }
    }

    #[test]
    fn items_run_on_both_queues() -> Result {
        let count = Arc::pin_init(
            pin_init!(Count {
                runs: Atomic::new(0),
                work <- crate::new_work!("rust_workqueue_queues"),
            }),
            GFP_KERNEL,
        )?;

        assert!(workqueue::system_percpu().enqueue(count.clone()).is_ok());
        count.work.flush();
        assert_eq!(count.runs.load(Acquire), 1);

        assert!(workqueue::system_dfl().enqueue(count.clone()).is_ok());
        count.work.flush();
        assert_eq!(count.runs.load(Acquire), 2);
        Ok(())
    }
}
