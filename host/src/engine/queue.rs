//! An emulator's work queue: commands in order, timers by deadline (equal
//! deadlines in scheduling order), and the real-time pulse tick; and its
//! place on the runtime (idle, queued for a worker, or running on one).

use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::swap::SwapJob;
use super::{CallError, Inner, PulseRun, RunState};
use crate::model::ManualEvent;
use crate::plugin::DelayedCall;

pub(super) struct Queue {
    pub(super) run_state: RunState,
    pub(super) commands: VecDeque<Command>,
    pub(super) timers: BinaryHeap<Timer>,
    pub(super) timer_seq: u64,
    pub(super) next_tick: Option<Instant>,
    /// Injected events not yet taken by the driver, and their weight
    /// (bytes of the requests that brought them).
    pub(super) injections: usize,
    pub(super) injection_bytes: usize,
    /// Where the emulator is on its runtime.
    pub(super) sched: Sched,
    /// The deadline of its entry in the runtime's timers, if it has one.
    pub(super) wake_at: Option<Instant>,
}

/// An emulator's place on its runtime. Changed under the queue lock only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sched {
    /// No work ready; at most a timer entry for its next deadline.
    Idle,
    /// On the runtime's ready queue (once).
    Queued,
    /// A worker runs it.
    Running,
}

pub(super) enum Command {
    Pulses {
        count: u64,
        done: Option<mpsc::SyncSender<PulseRun>>,
        /// Set when the batch's caller has gone.
        cancel: Option<Arc<AtomicBool>>,
        /// The stop epoch the batch belongs to: `stop` and `terminate` end
        /// every batch of an older epoch.
        epoch: u64,
        /// Pulses run so far, and when the batch started (a batch yields
        /// its worker to other emulators and continues later).
        ran: u64,
        started: Option<Instant>,
    },
    Propagate {
        from: usize,
    },
    Delayed {
        block: usize,
        epoch: u64,
        action: DelayedCall,
    },
    Manual {
        block: usize,
        event: ManualEvent,
        /// An injection's share of its request's bytes (counted against
        /// the injection bounds until the driver takes it).
        weight: usize,
    },
    /// Swap the plugin of one type between two driver steps.
    Swap(Box<SwapJob>),
}

pub(super) struct Timer {
    pub(super) deadline: Instant,
    pub(super) seq: u64,
    pub(super) command: Command,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    /// Reversed: the earliest deadline is the heap's top.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// `now + delay`, saturated at a century from now (a deadline that never
/// comes) instead of overflowing `Instant`.
pub(super) fn deadline_after(delay: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    Instant::now() + delay.min(CENTURY)
}

impl Inner {
    pub(super) fn push(&self, command: Command) -> Result<(), CallError> {
        let mut queue = self.queue.lock();
        if queue.run_state == RunState::Terminated {
            return Err(CallError::Terminated);
        }
        queue.commands.push_back(command);
        self.kick(&mut queue);
        Ok(())
    }

    pub(super) fn schedule(&self, delay: Duration, command: Command) -> Result<(), CallError> {
        let mut queue = self.queue.lock();
        if queue.run_state == RunState::Terminated {
            return Err(CallError::Terminated);
        }
        queue.timer_seq += 1;
        let seq = queue.timer_seq;
        queue.timers.push(Timer {
            deadline: deadline_after(delay),
            seq,
            command,
        });
        self.kick(&mut queue);
        Ok(())
    }

    /// The next piece of work ready now: due timers join the commands (in
    /// deadline order), the first command, else a due real-time tick.
    pub(super) fn take_ready(&self, queue: &mut Queue, now: Instant) -> Option<Command> {
        if queue.run_state == RunState::Terminated {
            return None;
        }
        while queue.timers.peek().is_some_and(|t| t.deadline <= now) {
            let timer = queue.timers.pop().expect("peeked");
            queue.commands.push_back(timer.command);
        }
        if let Some(command) = queue.commands.pop_front() {
            if let Command::Manual { weight, .. } = &command {
                queue.injections = queue.injections.saturating_sub(1);
                queue.injection_bytes = queue.injection_bytes.saturating_sub(*weight);
            }
            return Some(command);
        }
        if let (RunState::Running, Some(tick), Some(period)) =
            (queue.run_state, queue.next_tick, self.options.pulse_period)
        {
            if tick <= now {
                // A late tick is not made up for: the next is a period away.
                queue.next_tick = Some((tick + period).max(now));
                return Some(Command::Pulses {
                    count: 1,
                    done: None,
                    cancel: None,
                    epoch: self.batch_epoch.load(std::sync::atomic::Ordering::Acquire),
                    ran: 0,
                    started: None,
                });
            }
        }
        None
    }

    /// The earliest deadline in the queue: `now` or earlier when work is
    /// ready, `None` when nothing is ahead.
    fn next_deadline(&self, queue: &Queue) -> Option<Instant> {
        if queue.run_state == RunState::Terminated {
            return None;
        }
        if !queue.commands.is_empty() {
            return Some(Instant::now());
        }
        let tick = queue.next_tick.filter(|_| {
            queue.run_state == RunState::Running && self.options.pulse_period.is_some()
        });
        match (queue.timers.peek().map(|t| t.deadline), tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// After the queue changed (under its lock): an idle emulator with work
    /// ready goes on the runtime's ready queue; one with a deadline ahead
    /// gets its timer entry moved there. Queued and running emulators are
    /// left alone (their worker looks at the queue again before it lets
    /// them go).
    pub(super) fn kick(&self, queue: &mut Queue) {
        if queue.sched != Sched::Idle {
            return;
        }
        self.settle(queue);
    }

    /// Places an emulator no worker holds: queued if work is ready, else
    /// idle with a timer entry at its next deadline (or none).
    pub(super) fn settle(&self, queue: &mut Queue) {
        let shared = self.runtime.shared();
        let next = self.next_deadline(queue);
        if next.is_some_and(|d| d <= Instant::now()) {
            queue.sched = Sched::Queued;
            shared.enqueue(self.me.clone());
            return;
        }
        queue.sched = Sched::Idle;
        if queue.wake_at != next {
            shared.set_timer(self.key, queue.wake_at, next, &self.me);
            queue.wake_at = next;
        }
    }

    /// The runtime's timer reached `deadline`, this emulator's entry.
    pub(super) fn timer_due(&self, deadline: Instant) {
        let mut queue = self.queue.lock();
        if queue.wake_at == Some(deadline) {
            queue.wake_at = None;
        }
        self.kick(&mut queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(deadline: Instant, seq: u64) -> Timer {
        Timer {
            deadline,
            seq,
            command: Command::Propagate { from: 0 },
        }
    }

    /// The `seq`s of `timers` in the order the heap gives them back.
    fn popped(timers: impl IntoIterator<Item = Timer>) -> Vec<u64> {
        let mut heap: BinaryHeap<Timer> = timers.into_iter().collect();
        std::iter::from_fn(|| heap.pop()).map(|t| t.seq).collect()
    }

    #[test]
    fn earliest_deadline_first_and_equal_deadlines_in_scheduling_order() {
        let now = Instant::now();
        let later = now + Duration::from_millis(5);
        let schedule = [(later, 1), (now, 2), (later, 3), (now, 4), (now, 5)];
        let expected = [2, 4, 5, 1, 3];
        assert_eq!(popped(schedule.map(|(d, s)| timer(d, s))), expected);
        // Whatever order they were pushed in.
        let mut reversed = schedule;
        reversed.reverse();
        assert_eq!(popped(reversed.map(|(d, s)| timer(d, s))), expected);
    }

    #[test]
    fn the_heap_top_is_the_next_timer_due() {
        let now = Instant::now();
        let a = timer(now + Duration::from_millis(1), 7);
        let b = timer(now + Duration::from_millis(2), 1);
        assert!(a > b, "reversed order: the earlier deadline is greater");
        let c = timer(now, 3);
        let d = timer(now, 4);
        assert!(c > d, "equal deadlines: the earlier scheduled is greater");
        assert!(c == timer(now, 3) && c != d, "equal by deadline and seq");
    }

    #[test]
    fn deadline_after_saturates_instead_of_overflowing() {
        const NINETY_NINE_YEARS: Duration = Duration::from_secs(99 * 365 * 24 * 3600);
        let before = Instant::now();
        for huge in [
            Duration::MAX,
            Duration::from_secs(u64::MAX / 2),
            Duration::from_secs(200 * 365 * 24 * 3600),
        ] {
            let never = deadline_after(huge);
            assert!(never > before + NINETY_NINE_YEARS, "{huge:?}");
            assert!(
                never <= Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
                "{huge:?}: capped at a century"
            );
        }
        let soon = deadline_after(Duration::from_millis(10));
        assert!(soon >= before + Duration::from_millis(10));
        assert!(soon <= Instant::now() + Duration::from_millis(10));
        assert!(deadline_after(Duration::ZERO) <= Instant::now());
    }
}
