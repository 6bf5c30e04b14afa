//! The watchdog: notices a driver call that makes no progress within the
//! handler timeout, marks its block hung and starts a new driver.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Inner, NO_BLOCK};

impl Inner {
    pub(super) fn enter(&self, block: usize) {
        self.in_flight.store(block, Ordering::Release);
    }

    /// Ends the call on `block`. A driver replaced while it was in a call
    /// (its block declared hung) may come back later: by then `in_flight`
    /// belongs to the new driver and is left alone.
    pub(super) fn leave(&self, block: usize) {
        if self
            .in_flight
            .compare_exchange(block, NO_BLOCK, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.progress.fetch_add(1, Ordering::Release);
        }
    }

    /// The watchdog loop: a driver call that makes no progress for the
    /// handler timeout marks its block hung and is replaced.
    pub(super) fn watch(self: Arc<Self>) {
        let timeout = self.options.handler_timeout;
        let poll = (timeout / 10).clamp(Duration::from_millis(5), Duration::from_millis(200));
        let mut seen: Option<(usize, u64, Instant)> = None;
        loop {
            {
                let (flag, changed) = &self.terminated;
                let mut done = flag.lock();
                if !*done {
                    changed.wait_for(&mut done, poll);
                }
                if *done {
                    return;
                }
            }
            let block = self.in_flight.load(Ordering::Acquire);
            let progress = self.progress.load(Ordering::Acquire);
            if block == NO_BLOCK {
                seen = None;
                continue;
            }
            match seen {
                Some((b, p, since)) if b == block && p == progress => {
                    if since.elapsed() >= timeout {
                        self.declare_hung(block, since.elapsed());
                        seen = None;
                    }
                }
                _ => seen = Some((block, progress, Instant::now())),
            }
        }
    }

    pub(super) fn declare_hung(self: &Arc<Self>, index: usize, for_how_long: Duration) {
        let block = &self.blocks[index];
        let reason = format!(
            "a handler has not returned for {:.1} s (handler timeout {} s); the block no longer receives events",
            for_how_long.as_secs_f64(),
            self.options.handler_timeout.as_secs_f64()
        );
        tracing::error!(block = %block.id, "{reason}");
        block.set_hung(reason);
        self.last_declared_hung.store(index, Ordering::Release);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.in_flight.store(NO_BLOCK, Ordering::Release);
        self.spawn_driver(generation);
        self.queue_changed.notify_all();
    }
}
