//! The watchdog's look at one emulator: a driver call that makes no
//! progress within the handler timeout marks its block hung, and the
//! emulator goes on with another worker (the runtime replaces the stuck
//! one).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queue::Sched;
use super::runtime::Shared;
use super::{Inner, NO_BLOCK};

impl Inner {
    pub(super) fn enter(&self, block: usize) {
        self.in_flight.store(block, Ordering::Release);
    }

    /// Ends the call on `block`. A worker replaced while it was in a call
    /// (its block declared hung) may come back later: by then `in_flight`
    /// belongs to the new worker and is left alone.
    pub(super) fn leave(&self, block: usize) {
        if self
            .in_flight
            .compare_exchange(block, NO_BLOCK, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.progress.fetch_add(1, Ordering::Release);
        }
    }

    /// How often the runtime's watchdog looks at this emulator's call in
    /// flight: a tenth of its handler timeout, within 5 ms and 200 ms.
    pub(super) fn watchdog_poll(&self) -> Duration {
        (self.options.handler_timeout / 10)
            .clamp(Duration::from_millis(5), Duration::from_millis(200))
    }

    /// One look of the runtime's watchdog: a call that has made no progress
    /// for the handler timeout marks its block hung and moves the emulator
    /// to another worker.
    pub(super) fn check_progress(self: &Arc<Self>, runtime: &Arc<Shared>) {
        let timeout = self.options.handler_timeout;
        let block = self.in_flight.load(Ordering::Acquire);
        let progress = self.progress.load(Ordering::Acquire);
        let mut seen = self.watched.lock();
        if block == NO_BLOCK {
            *seen = None;
            return;
        }
        match *seen {
            Some((b, p, since)) if b == block && p == progress => {
                if since.elapsed() >= timeout {
                    *seen = None;
                    drop(seen);
                    self.declare_hung(block, progress, since.elapsed(), runtime);
                }
            }
            _ => *seen = Some((block, progress, Instant::now())),
        }
    }

    /// Marks block `index` hung; if the worker running this emulator is
    /// still in that call, hands the emulator to another worker and has
    /// the runtime replace the stuck one.
    pub(super) fn declare_hung(
        self: &Arc<Self>,
        index: usize,
        progress: u64,
        for_how_long: Duration,
        runtime: &Arc<Shared>,
    ) {
        let block = &self.blocks[index];
        let reason = format!(
            "a handler has not returned for {:.1} s (handler timeout {} s); the block no longer receives events",
            for_how_long.as_secs_f64(),
            self.options.handler_timeout.as_secs_f64()
        );
        tracing::error!(block = %block.id, "{reason}");
        block.set_hung(reason);
        self.last_declared_hung.store(index, Ordering::Release);
        let mut queue = self.queue.lock();
        let stuck = queue.sched == Sched::Running
            && self.in_flight.load(Ordering::Acquire) == index
            && self.progress.load(Ordering::Acquire) == progress;
        if !stuck {
            // The call returned meanwhile (its block recovered in
            // `set_hung` or as the call ended): nobody to replace.
            return;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.in_flight.store(NO_BLOCK, Ordering::Release);
        queue.sched = Sched::Queued;
        runtime.enqueue(self.me.clone());
        drop(queue);
        runtime.replace_stuck_worker();
    }
}
