//! The threads that run emulators: a pool of worker threads, one timer
//! thread and one watchdog thread, shared by every emulator registered on
//! the [`Runtime`].
//!
//! - An emulator with work ready (a command, a due timer, a due real-time
//!   tick) is *queued* once on the pool's ready queue; a worker takes it,
//!   runs its ready work for a time slice (one command at a time, in
//!   order), then puts it back at the end of the queue if it has more, or
//!   leaves it *idle*. An emulator is queued at most once and run by at
//!   most one worker at a time, so its commands keep their order.
//! - An idle emulator with a future deadline (its next timer or tick) has
//!   one entry in the timer thread's map; at that deadline the timer
//!   thread queues it. The timer thread also emits every emulator's
//!   summary event once a second.
//! - The watchdog polls every emulator's call in flight; a call that makes
//!   no progress within its emulator's handler timeout marks the block
//!   hung, hands the emulator to another worker, and starts a replacement
//!   for the worker left stuck in the call, so the pool keeps its size.
//!
//! The pool holds emulators weakly: dropping every handle of an emulator
//! ends its work. The threads end when the last [`Runtime`] handle goes
//! (emulators hold one), or, for an emulator's private runtime, when it
//! terminates.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::events::SUMMARY_PERIOD;
use super::Inner;

/// How long a worker runs one emulator before it lets another one waiting
/// have a turn (a batch of accelerated pulses yields between two pulses).
pub(super) const TIME_SLICE: Duration = Duration::from_millis(1);

/// The threads that run emulators: `workers` worker threads, one timer
/// thread and one watchdog thread, whatever the number of emulators
/// registered. Cheap to clone (a handle); the threads end when the last
/// handle and the last emulator using it are gone.
///
/// Give it to many emulators through [`EngineOptions::runtime`]:
///
/// ```no_run
/// # use bitstream_host::engine::{Emulator, EngineOptions, Runtime};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = Runtime::new(4);
/// let mut emulators = Vec::new();
/// for i in 0..200 {
///     let options = EngineOptions {
///         id: format!("vcc-{i}"),
///         runtime: Some(runtime.clone()),
///         ..EngineOptions::default()
///     };
///     emulators.push(Emulator::load("fixtures/vcc_processing".as_ref(), options)?);
/// }
/// # Ok(()) }
/// ```
///
/// [`EngineOptions::runtime`]: super::EngineOptions::runtime
#[derive(Clone)]
pub struct Runtime {
    handle: Arc<Handle>,
}

/// Shuts the threads down when the last [`Runtime`] handle goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.handle.shared;
        f.debug_struct("Runtime")
            .field("name", &shared.name)
            .field("workers", &shared.size)
            .field("stuck_workers", &self.stuck_workers())
            .finish()
    }
}

impl Default for Runtime {
    /// A runtime with one worker per available core.
    fn default() -> Self {
        Runtime::new(thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Runtime {
    /// A runtime of `workers` worker threads (at least 1), one timer thread
    /// and one watchdog thread, started now.
    pub fn new(workers: usize) -> Runtime {
        Runtime::named("engine", workers)
    }

    /// [`Runtime::new`] with threads named `<name>-worker-<n>`,
    /// `<name>-timer` and `<name>-watchdog` (Linux shows 15 bytes of a
    /// thread's name).
    pub fn named(name: &str, workers: usize) -> Runtime {
        let size = workers.max(1);
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            size,
            shut: AtomicBool::new(false),
            ready: Mutex::new(VecDeque::new()),
            ready_changed: Condvar::new(),
            waiting: AtomicUsize::new(0),
            timers: Mutex::new(BTreeMap::new()),
            timers_changed: Condvar::new(),
            emulators: Mutex::new(Vec::new()),
            watch_changed: Condvar::new(),
            watch_lock: Mutex::new(()),
            next_key: AtomicU64::new(0),
            spawned: AtomicU64::new(0),
            stuck: AtomicUsize::new(0),
        });
        for _ in 0..size {
            shared.spawn_worker();
        }
        let timer = shared.clone();
        thread::Builder::new()
            .name(format!("{name}-timer"))
            .spawn(move || timer.time())
            .expect("spawning the runtime's timer thread");
        let watchdog = shared.clone();
        thread::Builder::new()
            .name(format!("{name}-watchdog"))
            .spawn(move || watchdog.watch())
            .expect("spawning the runtime's watchdog thread");
        Runtime {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// How many worker threads serve (not counting stuck ones).
    pub fn workers(&self) -> usize {
        self.handle.shared.size
    }

    /// Worker threads left stuck in a hung handler (each was replaced); one
    /// that comes back after all ends and is no longer counted.
    pub fn stuck_workers(&self) -> usize {
        self.handle.shared.stuck.load(Ordering::Acquire)
    }

    /// Emulators registered and not terminated.
    pub fn emulators(&self) -> usize {
        let emulators = self.handle.shared.emulators.lock();
        emulators
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|e| !e.is_terminated())
            .count()
    }

    /// Ends the threads (each once out of its current work); emulators on
    /// it get no more work done. Used by an emulator's private runtime when
    /// it terminates.
    pub(super) fn shutdown(&self) {
        self.handle.shared.shutdown();
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }
}

/// What the runtime's threads share.
pub(super) struct Shared {
    name: String,
    size: usize,
    shut: AtomicBool,
    /// Emulators with work ready, each at most once, in turn.
    ready: Mutex<VecDeque<Weak<Inner>>>,
    ready_changed: Condvar,
    /// `ready.len()`, readable without the lock.
    waiting: AtomicUsize,
    /// Each idle emulator's next deadline, keyed by (deadline, its key).
    timers: Mutex<BTreeMap<(Instant, u64), Weak<Inner>>>,
    timers_changed: Condvar,
    /// Every emulator registered (for the watchdog and the summaries).
    emulators: Mutex<Vec<Weak<Inner>>>,
    watch_lock: Mutex<()>,
    watch_changed: Condvar,
    next_key: AtomicU64,
    /// Workers started so far (names them).
    spawned: AtomicU64,
    /// Workers stuck in a hung call.
    stuck: AtomicUsize,
}

impl Shared {
    fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    fn shutdown(&self) {
        self.shut.store(true, Ordering::Release);
        // Under each lock, so no thread misses the wake-up between its
        // check and its wait.
        drop(self.ready.lock());
        self.ready_changed.notify_all();
        drop(self.timers.lock());
        self.timers_changed.notify_all();
        drop(self.watch_lock.lock());
        self.watch_changed.notify_all();
    }

    /// A new emulator's key (orders its timer entry among equal deadlines).
    pub(super) fn new_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Puts an emulator under the watchdog and the summaries.
    pub(super) fn register(&self, emulator: Weak<Inner>) {
        let mut emulators = self.emulators.lock();
        emulators.retain(|e| e.strong_count() > 0);
        emulators.push(emulator);
        drop(emulators);
        // A new emulator may have a shorter handler timeout: the watchdog
        // recomputes its poll.
        self.watch_changed.notify_all();
    }

    /// Whether another emulator waits for a worker.
    #[inline]
    pub(super) fn others_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Queues an emulator for a worker (its caller made it `Queued`).
    pub(super) fn enqueue(&self, emulator: Weak<Inner>) {
        let mut ready = self.ready.lock();
        ready.push_back(emulator);
        self.waiting.store(ready.len(), Ordering::Release);
        drop(ready);
        self.ready_changed.notify_one();
    }

    /// Moves an emulator's timer entry from `old` to `new`.
    pub(super) fn set_timer(
        &self,
        key: u64,
        old: Option<Instant>,
        new: Option<Instant>,
        emulator: &Weak<Inner>,
    ) {
        let mut timers = self.timers.lock();
        if let Some(old) = old {
            timers.remove(&(old, key));
        }
        if let Some(new) = new {
            timers.insert((new, key), emulator.clone());
            if timers.keys().next() == Some(&(new, key)) {
                self.timers_changed.notify_one();
            }
        }
    }

    fn spawn_worker(self: &Arc<Self>) {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let shared = self.clone();
        thread::Builder::new()
            .name(format!("{}-worker-{n}", self.name))
            .spawn(move || shared.work())
            .expect("spawning a runtime worker thread");
    }

    /// A worker: runs ready emulators, one time slice each, in turn.
    fn work(self: Arc<Self>) {
        while let Some(emulator) = self.next_ready() {
            let Some(emulator) = emulator.upgrade() else {
                continue;
            };
            if !emulator.run_slice(&self) {
                // The watchdog handed the emulator to another worker while
                // this one was stuck in a call, and started a replacement:
                // this worker, back at last, ends.
                self.stuck.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }

    fn next_ready(&self) -> Option<Weak<Inner>> {
        let mut ready = self.ready.lock();
        loop {
            if self.is_shut() {
                return None;
            }
            if let Some(emulator) = ready.pop_front() {
                self.waiting.store(ready.len(), Ordering::Release);
                return Some(emulator);
            }
            self.ready_changed.wait(&mut ready);
        }
    }

    /// The watchdog took an emulator from a worker stuck in a call: count
    /// that worker and start one in its place.
    pub(super) fn replace_stuck_worker(self: &Arc<Self>) {
        self.stuck.fetch_add(1, Ordering::AcqRel);
        if !self.is_shut() {
            self.spawn_worker();
        }
    }

    /// Every registered emulator still alive and not terminated.
    fn live_emulators(&self) -> Vec<Arc<Inner>> {
        let mut emulators = self.emulators.lock();
        emulators.retain(|e| e.upgrade().is_some_and(|e| !e.is_terminated()));
        emulators.iter().filter_map(Weak::upgrade).collect()
    }

    /// The timer thread: queues each idle emulator at its deadline, and
    /// emits summaries every second.
    fn time(self: Arc<Self>) {
        let mut next_summary = Instant::now() + SUMMARY_PERIOD;
        let mut timers = self.timers.lock();
        loop {
            if self.is_shut() {
                return;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let ((deadline, _), emulator) = entry.remove_entry();
                due.push((deadline, emulator));
            }
            if !due.is_empty() {
                // Without the timers lock: waking takes the emulator's
                // queue lock, under which emulators set their timers.
                drop(timers);
                for (deadline, emulator) in due {
                    if let Some(emulator) = emulator.upgrade() {
                        emulator.timer_due(deadline);
                    }
                }
                timers = self.timers.lock();
                continue;
            }
            if now >= next_summary {
                drop(timers);
                for emulator in self.live_emulators() {
                    emulator.summarize();
                }
                next_summary = (next_summary + SUMMARY_PERIOD).max(now);
                timers = self.timers.lock();
                continue;
            }
            let wake = timers
                .keys()
                .next()
                .map_or(next_summary, |(deadline, _)| next_summary.min(*deadline));
            self.timers_changed.wait_until(&mut timers, wake);
        }
    }

    /// The watchdog thread: every poll, each emulator's call in flight.
    fn watch(self: Arc<Self>) {
        loop {
            let emulators = self.live_emulators();
            let poll = emulators
                .iter()
                .map(|e| e.watchdog_poll())
                .min()
                .unwrap_or(Duration::from_millis(200));
            for emulator in &emulators {
                emulator.check_progress(&self);
            }
            drop(emulators);
            let mut guard = self.watch_lock.lock();
            if self.is_shut() {
                return;
            }
            self.watch_changed.wait_for(&mut guard, poll);
            if self.is_shut() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count()
    }

    #[test]
    fn a_runtime_starts_its_workers_a_timer_and_a_watchdog_and_ends_them_when_dropped() {
        let runtime = Runtime::named("rt-unit-a", 3);
        assert_eq!(runtime.workers(), 3);
        assert_eq!(runtime.stuck_workers(), 0);
        assert_eq!(runtime.emulators(), 0);
        let start = Instant::now();
        while threads_named("rt-unit-a") < 5 {
            assert!(start.elapsed() < Duration::from_secs(10), "threads start");
            thread::sleep(Duration::from_millis(5));
        }
        let clone = runtime.clone();
        drop(runtime);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(threads_named("rt-unit-a"), 5, "a clone keeps them");
        drop(clone);
        while threads_named("rt-unit-a") > 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "threads end");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn zero_workers_means_one() {
        let runtime = Runtime::named("rt-unit-b", 0);
        assert_eq!(runtime.workers(), 1);
        assert!(format!("{runtime:?}").contains("workers: 1"));
    }
}
