//! The engine's event bus: what happens in an emulator (state changes,
//! faults, hangs, recoveries, injections, signal changes, plugin swaps and a
//! periodic summary), fanned out to any number of listeners.
//!
//! # Costs and bounds
//! - Nobody listening: an emit is one relaxed atomic load; the event is not
//!   even built (emitters pass a closure).
//! - Someone listening: the event is built once (one `Arc`) and pushed into
//!   each matching listener's queue under that queue's own short lock. A
//!   queue is allocated once, at its capacity, when the listener subscribes,
//!   and never grows: when it is full, its **oldest** event is dropped and
//!   counted. The listener's next read yields [`Received::Missed`] with that
//!   count before anything newer, so every event is either delivered or
//!   counted, and the emitter never waits for a listener.
//! - Waking a listener is [`tokio::sync::Notify::notify_one`]: it never
//!   blocks and never allocates.
//!
//! A
//! [`EventKind::Recovery`] is a block leaving its `FAULT` state, or a hung
//! block healthy again once the call that hung returns.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use super::Inner;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A block's state changed: `from`, `to`, `trigger` (`null` when a fault
    /// moved it).
    State,
    /// A handler or route of a block failed: `reason`.
    Fault,
    /// A block is hung (a handler did not return in time): `reason`.
    Hang,
    /// A block left its `FAULT` state (`from`, `to`, `trigger`), or a hung
    /// block is healthy again because its call returned (`reason`).
    Recovery,
    /// A manual event reached a block's manual-event handler: `subtype`,
    /// `severity`, `value`.
    Injection,
    /// The generated signal changed: `values`.
    Signal,
    /// Every second while someone listens: `pulses`, `pulses_per_second`,
    /// `run_state`.
    Summary,
    /// A block's plugin was replaced while running: `block_type`, `library`.
    PluginSwapped,
}

impl EventKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [EventKind; 8] = [
        EventKind::State,
        EventKind::Fault,
        EventKind::Hang,
        EventKind::Recovery,
        EventKind::Injection,
        EventKind::Signal,
        EventKind::Summary,
        EventKind::PluginSwapped,
    ];

    /// The name clients see (the SSE `event:` field).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::State => "state",
            EventKind::Fault => "fault",
            EventKind::Hang => "hang",
            EventKind::Recovery => "recovery",
            EventKind::Injection => "injection",
            EventKind::Signal => "signal",
            EventKind::Summary => "summary",
            EventKind::PluginSwapped => "plugin_swapped",
        }
    }

    /// The kind called `name`, if any.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// What an event says besides its kind and block (flattened into the
/// event's JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    /// [`EventKind::State`] and [`EventKind::Recovery`].
    Transition {
        /// The state before.
        from: String,
        /// The state after.
        to: String,
        /// The trigger that fired; `None` when a fault moved the block.
        trigger: Option<String>,
    },
    /// [`EventKind::Fault`], [`EventKind::Hang`] and a hung block's
    /// [`EventKind::Recovery`].
    Reason {
        /// What failed, as logged.
        reason: String,
    },
    /// [`EventKind::Injection`].
    Manual {
        /// `INJECTION` or `GENERAL` (forwarded from upstream).
        subtype: String,
        /// `GENERAL`, `WARNING` or `FATAL_ERROR`.
        severity: String,
        /// The event's payload.
        value: serde_json::Value,
    },
    /// [`EventKind::Signal`].
    Signal {
        /// The generated signal's new values.
        values: serde_json::Value,
    },
    /// [`EventKind::Summary`].
    Summary {
        /// Pulses run so far.
        pulses: u64,
        /// Pulses per second since the previous summary.
        pulses_per_second: f64,
        /// `RUNNING`, `STOPPED` or `TERMINATED`.
        run_state: &'static str,
    },
    /// [`EventKind::PluginSwapped`].
    Swap {
        /// The ip_block type whose plugin was replaced.
        block_type: String,
        /// The library now serving it.
        library: String,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// 1, 2, 3, ... in emit order, across kinds (a gap in what one listener
    /// sees is either filtered out or announced as missed).
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What it is about.
    pub kind: EventKind,
    /// The block it concerns, if one.
    pub block: Option<String>,
    /// The block's index in the config (not serialized; for filters).
    #[serde(skip)]
    pub block_index: Option<usize>,
    /// The rest.
    #[serde(flatten)]
    pub data: EventData,
}

/// Which events a listener wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events of these blocks (by index); `None`: every event, also
    /// those about no block.
    pub blocks: Option<Vec<usize>>,
    /// Only these kinds; `None`: every kind.
    pub kinds: Option<Vec<EventKind>>,
}

impl Filter {
    fn compile(&self) -> CompiledFilter {
        CompiledFilter {
            blocks: self.blocks.clone(),
            kinds: match &self.kinds {
                None => u16::MAX,
                Some(kinds) => kinds.iter().fold(0, |mask, k| mask | k.bit()),
            },
        }
    }
}

struct CompiledFilter {
    blocks: Option<Vec<usize>>,
    kinds: u16,
}

impl CompiledFilter {
    fn wants(&self, kind: EventKind, block: Option<usize>) -> bool {
        if self.kinds & kind.bit() == 0 {
            return false;
        }
        match (&self.blocks, block) {
            (None, _) => true,
            (Some(blocks), Some(b)) => blocks.contains(&b),
            (Some(_), None) => false,
        }
    }
}

/// What a listener reads next.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// An event.
    Event(Arc<Event>),
    /// This many events (that its filter wanted) were dropped because its
    /// queue was full; they came before every event still queued.
    Missed(u64),
}

/// The smallest and largest queue a listener may ask for.
pub const MIN_CAPACITY: usize = 1;
/// See [`MIN_CAPACITY`].
pub const MAX_CAPACITY: usize = 65_536;
/// A listener's queue when it asks for none.
pub const DEFAULT_CAPACITY: usize = 1024;

struct Listener {
    id: u64,
    filter: CompiledFilter,
    queue: Mutex<ListenerQueue>,
    wake: tokio::sync::Notify,
}

struct ListenerQueue {
    events: VecDeque<Arc<Event>>,
    capacity: usize,
    missed: u64,
}

/// The fan-out. One per emulator ([`super::Emulator::events`]).
pub struct EventBus {
    /// How many listeners there are: the one thing an emit reads when there
    /// are none.
    listening: AtomicUsize,
    listeners: Mutex<Vec<Arc<Listener>>>,
    /// Set by [`close`](Self::close): listeners end.
    closed: AtomicBool,
    next_seq: AtomicU64,
    next_listener: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EventBus {
    /// A bus with no listener.
    pub fn new() -> Self {
        EventBus {
            listening: AtomicUsize::new(0),
            listeners: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            next_seq: AtomicU64::new(1),
            next_listener: AtomicU64::new(0),
        }
    }

    /// Whether anyone listens (one relaxed load).
    #[inline]
    pub fn has_listeners(&self) -> bool {
        self.listening.load(Ordering::Relaxed) != 0
    }

    /// How many listeners there are.
    pub fn listeners(&self) -> usize {
        self.listening.load(Ordering::Relaxed)
    }

    /// Emits the event `make` builds, to every listener whose filter wants
    /// `kind` about `block` (an index). `make` runs only when someone
    /// listens; it answers the block's id and the event's data.
    #[inline]
    pub fn emit(
        &self,
        kind: EventKind,
        block: Option<usize>,
        make: impl FnOnce() -> (Option<String>, EventData),
    ) {
        if !self.has_listeners() {
            return;
        }
        self.emit_slow(kind, block, make);
    }

    #[cold]
    #[inline(never)]
    fn emit_slow(
        &self,
        kind: EventKind,
        block_index: Option<usize>,
        make: impl FnOnce() -> (Option<String>, EventData),
    ) {
        // The listener list's lock also orders emits, so `seq` is the order
        // every listener sees.
        let listeners = self.listeners.lock();
        if !listeners.iter().any(|l| l.filter.wants(kind, block_index)) {
            return;
        }
        let (block, data) = make();
        let event = Arc::new(Event {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            time_ms: now_ms(),
            kind,
            block,
            block_index,
            data,
        });
        for listener in listeners.iter() {
            if !listener.filter.wants(kind, block_index) {
                continue;
            }
            {
                let mut queue = listener.queue.lock();
                if queue.events.len() == queue.capacity {
                    queue.events.pop_front();
                    queue.missed += 1;
                }
                queue.events.push_back(event.clone());
            }
            listener.wake.notify_one();
        }
    }

    /// Ends every listener (the emulator terminated): after what is queued,
    /// [`Subscription::next`] answers `None`, now and for later listeners.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for listener in self.listeners.lock().iter() {
            listener.wake.notify_one();
        }
    }

    /// A new listener with `filter` and a queue of `capacity` events
    /// (clamped to [`MIN_CAPACITY`]..=[`MAX_CAPACITY`]). It is removed when
    /// the [`Subscription`] is dropped.
    pub fn subscribe(self: &Arc<Self>, filter: &Filter, capacity: usize) -> Subscription {
        let capacity = capacity.clamp(MIN_CAPACITY, MAX_CAPACITY);
        let listener = Arc::new(Listener {
            id: self.next_listener.fetch_add(1, Ordering::Relaxed),
            filter: filter.compile(),
            queue: Mutex::new(ListenerQueue {
                events: VecDeque::with_capacity(capacity),
                capacity,
                missed: 0,
            }),
            wake: tokio::sync::Notify::new(),
        });
        let mut listeners = self.listeners.lock();
        listeners.push(listener.clone());
        self.listening.store(listeners.len(), Ordering::Relaxed);
        Subscription {
            bus: self.clone(),
            listener,
        }
    }
}

/// One listener's end. Dropping it unsubscribes.
pub struct Subscription {
    bus: Arc<EventBus>,
    listener: Arc<Listener>,
}

impl Subscription {
    /// The next thing to read, if there is one: first a [`Received::Missed`]
    /// when events were dropped, then the oldest queued event.
    pub fn try_next(&self) -> Option<Received> {
        let mut queue = self.listener.queue.lock();
        if queue.missed > 0 {
            return Some(Received::Missed(std::mem::take(&mut queue.missed)));
        }
        queue.events.pop_front().map(Received::Event)
    }

    /// Waits for the next thing to read; `None` once the bus is closed and
    /// the queue read up.
    pub async fn next(&self) -> Option<Received> {
        loop {
            // A wake-up between this check and the wait is kept as a
            // permit by `notify_one`, so it is not lost.
            if let Some(received) = self.try_next() {
                return Some(received);
            }
            if self.bus.closed.load(Ordering::Acquire) {
                return None;
            }
            self.listener.wake.notified().await;
        }
    }

    /// How many events wait in the queue (not counting missed ones).
    pub fn queued(&self) -> usize {
        self.listener.queue.lock().events.len()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut listeners = self.bus.listeners.lock();
        listeners.retain(|l| l.id != self.listener.id);
        self.bus.listening.store(listeners.len(), Ordering::Relaxed);
    }
}

/// How often the runtime's timer thread emits each emulator's summary
/// while someone listens.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(1);

impl Inner {
    /// Called by the runtime's timer thread every [`SUMMARY_PERIOD`]: an
    /// [`EventKind::Summary`] when someone listens (the rate is measured
    /// since the previous call either way).
    pub(super) fn summarize(&self) {
        let now = (Instant::now(), self.pulses.load(Ordering::Relaxed));
        let last = std::mem::replace(&mut *self.summarized.lock(), now);
        let seconds = now.0.duration_since(last.0).as_secs_f64();
        let rate = if seconds > 0.0 {
            now.1.saturating_sub(last.1) as f64 / seconds
        } else {
            0.0
        };
        if !self.events.has_listeners() {
            return;
        }
        let run_state = self.queue.lock().run_state.as_str();
        self.events.emit(EventKind::Summary, None, || {
            (
                None,
                EventData::Summary {
                    pulses: now.1,
                    pulses_per_second: (rate * 10.0).round() / 10.0,
                    run_state,
                },
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(bus: &EventBus, n: u64) {
        bus.emit(EventKind::Signal, None, || {
            (
                None,
                EventData::Signal {
                    values: serde_json::json!({ "n": n }),
                },
            )
        });
    }

    fn fault(bus: &EventBus, block: usize) {
        bus.emit(EventKind::Fault, Some(block), || {
            (
                Some(format!("b{block}")),
                EventData::Reason {
                    reason: "broken".into(),
                },
            )
        });
    }

    fn drain(sub: &Subscription) -> Vec<Received> {
        std::iter::from_fn(|| sub.try_next()).collect()
    }

    #[test]
    fn nobody_listening_builds_nothing() {
        let bus = EventBus::new();
        bus.emit(EventKind::State, Some(0), || {
            panic!("built an event nobody listens to")
        });
        assert!(!bus.has_listeners());
    }

    #[test]
    fn a_listener_that_never_reads_keeps_a_bounded_queue_and_a_count() {
        let bus = Arc::new(EventBus::new());
        let slow = bus.subscribe(&Filter::default(), 8);
        let fast = bus.subscribe(&Filter::default(), 8);
        let mut fast_got = 0;
        for n in 0..100_000 {
            signal(&bus, n);
            // The fast listener keeps up; the slow one never reads.
            fast_got += drain(&fast).len();
            assert!(slow.queued() <= 8);
        }
        assert_eq!(fast_got, 100_000);
        let got = drain(&slow);
        assert_eq!(got.len(), 9, "one missed notice then the 8 newest: {got:?}");
        assert_eq!(got[0], Received::Missed(100_000 - 8));
        let Received::Event(last) = &got[8] else {
            panic!("{got:?}")
        };
        assert_eq!(last.seq, 100_000);
        assert_eq!(
            serde_json::to_value(&**last).unwrap(),
            serde_json::json!({"seq": 100_000, "time_ms": last.time_ms, "kind": "signal", "block": null, "values": {"n": 99_999}})
        );
        // Read up: nothing more is missed.
        signal(&bus, 0);
        assert!(matches!(drain(&slow)[..], [Received::Event(_)]));
    }

    #[test]
    fn filters_by_block_and_kind() {
        let bus = Arc::new(EventBus::new());
        let block1 = bus.subscribe(
            &Filter {
                blocks: Some(vec![1]),
                kinds: None,
            },
            16,
        );
        let signals = bus.subscribe(
            &Filter {
                blocks: None,
                kinds: Some(vec![EventKind::Signal]),
            },
            16,
        );
        fault(&bus, 0);
        fault(&bus, 1);
        signal(&bus, 7);
        let got = drain(&block1);
        assert_eq!(got.len(), 1);
        assert!(
            matches!(&got[0], Received::Event(e) if e.block.as_deref() == Some("b1") && e.kind == EventKind::Fault)
        );
        let got = drain(&signals);
        assert!(matches!(&got[..], [Received::Event(e)] if e.kind == EventKind::Signal));
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let bus = Arc::new(EventBus::new());
        let a = bus.subscribe(&Filter::default(), 4);
        let b = bus.subscribe(&Filter::default(), 4);
        assert_eq!(bus.listeners(), 2);
        drop(a);
        assert_eq!(bus.listeners(), 1);
        drop(b);
        assert!(!bus.has_listeners());
    }

    #[test]
    fn capacity_is_clamped() {
        let bus = Arc::new(EventBus::new());
        let sub = bus.subscribe(&Filter::default(), 0);
        signal(&bus, 1);
        signal(&bus, 2);
        assert_eq!(drain(&sub).len(), 2, "missed notice and the newest event");
    }

    #[tokio::test]
    async fn next_waits_for_an_emit_from_another_thread() {
        let bus = Arc::new(EventBus::new());
        let sub = bus.subscribe(&Filter::default(), 4);
        let emitter = bus.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            signal(&emitter, 5);
        });
        let got = sub.next().await;
        assert!(matches!(got, Some(Received::Event(e)) if e.kind == EventKind::Signal));
        thread.join().unwrap();
        signal(&bus, 6);
        bus.close();
        assert!(
            matches!(sub.next().await, Some(Received::Event(_))),
            "queued events are still read"
        );
        assert_eq!(sub.next().await, None);
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(EventKind::parse("nope"), None);
    }
}
