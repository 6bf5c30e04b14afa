//! Injections: manual events delivered to a block later, within bounds on
//! how many may wait, how much of their requests they hold, and how far
//! ahead they may be scheduled, so that no client can make the queue grow
//! without bound.

use std::time::Duration;

use super::queue::{deadline_after, Command, Timer};
use super::{CallError, Emulator, RunState};
use crate::model::ManualEvent;

/// Injected events that may wait for delivery at once.
pub const MAX_QUEUED_INJECTIONS: usize = 10_000;
/// Bytes of request bodies that waiting injections may hold at once.
pub const MAX_QUEUED_INJECTION_BYTES: usize = 16 * 1024 * 1024;
/// How far ahead an injection may be scheduled (24 h).
pub const MAX_INJECTION_DELAY: Duration = Duration::from_secs(24 * 3600);

/// One event to inject.
#[derive(Debug)]
pub struct Injection {
    /// The block (its index).
    pub block: usize,
    /// The event, delivered to the block's manual-event handler.
    pub event: ManualEvent,
    /// When, from now.
    pub delay: Duration,
}

/// Why injections were refused; nothing of the refused request is queued.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// An event is scheduled further ahead than [`MAX_INJECTION_DELAY`].
    #[error(
        "injection {index}: offset {delay_ms} ms is beyond the limit of {max_ms} ms (24 h) ahead"
    )]
    TooFarAhead {
        /// Its position in the request.
        index: usize,
        /// Its delay, in milliseconds.
        delay_ms: u128,
        /// The limit, in milliseconds.
        max_ms: u128,
    },
    /// The request alone is over the bounds: it can never be queued.
    #[error(
        "the request holds {events} events ({bytes} bytes); at most {max_events} events \
         and {max_bytes} bytes of injections may wait at once: split it"
    )]
    TooLarge {
        /// Events in the request.
        events: usize,
        /// The request's bytes.
        bytes: usize,
        /// [`MAX_QUEUED_INJECTIONS`].
        max_events: usize,
        /// [`MAX_QUEUED_INJECTION_BYTES`].
        max_bytes: usize,
    },
    /// The queue has no room for the request now.
    #[error(
        "the injection queue is full: {queued} events ({queued_bytes} bytes) wait for \
         delivery and this request adds {events} ({bytes} bytes), over the limit of \
         {max_events} events and {max_bytes} bytes; retry once some are delivered"
    )]
    QueueFull {
        /// Events waiting.
        queued: usize,
        /// Bytes they hold.
        queued_bytes: usize,
        /// Events in the request.
        events: usize,
        /// The request's bytes.
        bytes: usize,
        /// [`MAX_QUEUED_INJECTIONS`].
        max_events: usize,
        /// [`MAX_QUEUED_INJECTION_BYTES`].
        max_bytes: usize,
    },
    /// No such block, or the emulator has terminated.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl Emulator {
    /// Schedules every injection of one request, or none: each event goes
    /// to its block's manual-event handler after its delay. `bytes` is the
    /// size of the request that brought them (shared among its events).
    ///
    /// Refused when an event is more than [`MAX_INJECTION_DELAY`] ahead, or
    /// when the events waiting would exceed [`MAX_QUEUED_INJECTIONS`] or
    /// [`MAX_QUEUED_INJECTION_BYTES`]. An event counts until the driver
    /// takes it for delivery.
    pub fn inject_all(&self, injections: Vec<Injection>, bytes: usize) -> Result<(), InjectError> {
        let inner = &self.inner;
        for (index, injection) in injections.iter().enumerate() {
            inner.block(injection.block)?;
            if injection.delay > MAX_INJECTION_DELAY {
                return Err(InjectError::TooFarAhead {
                    index,
                    delay_ms: injection.delay.as_millis(),
                    max_ms: MAX_INJECTION_DELAY.as_millis(),
                });
            }
        }
        let events = injections.len();
        if events == 0 {
            return Ok(());
        }
        if events > MAX_QUEUED_INJECTIONS || bytes > MAX_QUEUED_INJECTION_BYTES {
            return Err(InjectError::TooLarge {
                events,
                bytes,
                max_events: MAX_QUEUED_INJECTIONS,
                max_bytes: MAX_QUEUED_INJECTION_BYTES,
            });
        }
        let mut queue = inner.queue.lock();
        if queue.run_state == RunState::Terminated {
            return Err(CallError::Terminated.into());
        }
        if queue.injections + events > MAX_QUEUED_INJECTIONS
            || queue.injection_bytes + bytes > MAX_QUEUED_INJECTION_BYTES
        {
            return Err(InjectError::QueueFull {
                queued: queue.injections,
                queued_bytes: queue.injection_bytes,
                events,
                bytes,
                max_events: MAX_QUEUED_INJECTIONS,
                max_bytes: MAX_QUEUED_INJECTION_BYTES,
            });
        }
        // Each event's share of the bytes; the first takes the remainder,
        // so that the shares add up to `bytes`.
        let share = bytes / events;
        let mut first_share = bytes - share * (events - 1);
        queue.injections += events;
        queue.injection_bytes += bytes;
        for Injection {
            block,
            event,
            delay,
        } in injections
        {
            let weight = std::mem::replace(&mut first_share, share);
            queue.timer_seq += 1;
            let seq = queue.timer_seq;
            queue.timers.push(Timer {
                deadline: deadline_after(delay),
                seq,
                command: Command::Manual {
                    block,
                    event,
                    weight,
                },
            });
        }
        inner.kick(&mut queue);
        Ok(())
    }

    /// Injected events waiting for delivery, and the bytes they hold.
    pub fn queued_injections(&self) -> (usize, usize) {
        let queue = self.inner.queue.lock();
        (queue.injections, queue.injection_bytes)
    }
}
