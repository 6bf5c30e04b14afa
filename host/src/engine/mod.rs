//! The engine: one emulator instance per bitstream package.
//!
//! All of an emulator's state lives in [`Emulator`] (no process-wide state
//! beyond loaded libraries), so one process can host many.
//!
//! # Threads and order
//! - An emulator's threads are its [`Runtime`]'s: a pool of worker threads,
//!   one timer thread and one watchdog thread, shared by every emulator
//!   given the same runtime in [`EngineOptions::runtime`] (or a private
//!   runtime of one worker when none is given, ended by
//!   [`Emulator::terminate`]). Threads are bounded by the runtime, not by
//!   emulators.
//! - A worker's turn on an emulator (the *driver*) runs everything the
//!   engine does by itself, one command at a time: real-time and
//!   accelerated pulses, downstream propagation after `force_signal_update`,
//!   delayed actions and manual events (injections and events forwarded
//!   downstream). An emulator is run by at most one worker at a time, so
//!   its commands keep their order. Timed work waits in the emulator's
//!   deadline heap; equal deadlines run in the order they were scheduled.
//!   An idle emulator's next deadline (timer or real-time tick) sits in the
//!   runtime's timer thread, which hands the emulator to a worker when it
//!   comes.
//! - Fairness: a turn ends after a time slice of about 1 ms when other
//!   emulators wait for a worker; a batch of accelerated pulses then yields
//!   between two pulses and goes on, first in its emulator's line, at its
//!   next turn.
//! - A pulse visits the blocks in [`SignalChain::order`]: upstream before
//!   downstream, config order among the rest. Each block gets the
//!   concatenation of what its upstream blocks returned in this pulse (in
//!   config order; `first` blocks get the generated signal first), runs its
//!   signal-update handler, then its pulse handler.
//! - HTTP routes run on the caller's thread. Every call on a block holds that
//!   block's lock, so no two calls on one block overlap.
//! - The runtime's **watchdog** notices a driver call that has not returned
//!   within its emulator's handler timeout: it marks that block hung, logs
//!   it, hands the emulator to another worker (so its other blocks keep
//!   receiving events) and starts a worker in place of the stuck one, which
//!   is counted ([`Runtime::stuck_workers`]) and ends if it ever comes back.
//! - The timer thread also emits each emulator's summary on its
//!   [`events::EventBus`] every second while someone listens. Everything
//!   else on the bus is emitted by the thread that did it, without waiting
//!   for any listener.

mod driver;
mod inject;
mod pulse;
mod queue;
mod runtime;
mod startup;
mod swap;
mod watchdog;

pub mod block;
pub mod block_buffer;
pub mod chain;
pub mod events;
pub mod signal;

pub use inject::{
    InjectError, Injection, MAX_INJECTION_DELAY, MAX_QUEUED_INJECTIONS, MAX_QUEUED_INJECTION_BYTES,
};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::time::{Duration, Instant};

use std::path::PathBuf;

use bitstream_sdk::{Value, ValueMap};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::config::{self, BitstreamConfig};
use crate::model::{ManualEvent, PluginError, RouteRequest, RouteResponse};
use crate::plugin::Plugin;
use block::Block;
use block_buffer::BufferMode;
pub use chain::SignalChain;
use queue::{Command, Queue};
pub use runtime::Runtime;
use signal::SignalList;
pub use startup::{Libraries, Package, StartupError};
pub use swap::{
    check_complete_elf, sha256_hex, BlockSwap, BufferCarry, CheckRequest, IsolatedCheck,
    ParamChange, PluginSource, PluginStatus, ReloadOptions, SwapError, SwapReport,
};

/// How an emulator runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The emulator id (`bitstream_emulator_id` in injections).
    pub id: String,
    /// Time between real-time pulses; `None` for accelerated pulses only.
    pub pulse_period: Option<Duration>,
    /// How long a handler or route may run before it counts as hung.
    pub handler_timeout: Duration,
    /// Whether real-time pulses start at once.
    pub start_running: bool,
    /// Where block device buffers live.
    pub buffers: BufferMode,
    /// Types served from a given library file instead of the one in their
    /// `emulators/<type>/emulator/` folder (`--plugin <type>=<path>`).
    pub plugin_files: Vec<(String, PathBuf)>,
    /// The threads that run it: a [`Runtime`] shared with other emulators
    /// (their number bounded by its workers, not by emulators), or `None`
    /// for a private runtime of one worker, ended by
    /// [`Emulator::terminate`].
    pub runtime: Option<Runtime>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            id: "bitstream-emulator".to_owned(),
            pulse_period: Some(Duration::from_millis(1000)),
            handler_timeout: Duration::from_secs(10),
            start_running: true,
            buffers: BufferMode::Shared,
            plugin_files: Vec::new(),
            runtime: None,
        }
    }
}

/// The emulator-level state (`GET /state`).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Real-time pulses flow.
    Running,
    /// No real-time pulses; routes and accelerated pulses still work.
    Stopped,
    /// Events have ended for good.
    Terminated,
}

impl RunState {
    /// The name clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "RUNNING",
            RunState::Stopped => "STOPPED",
            RunState::Terminated => "TERMINATED",
        }
    }
}

/// Why a call on a block did not reach the plugin or did not come back.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin answered with an error (a panic, or an error value).
    #[error("{0}")]
    Plugin(PluginError),
    /// The route the caller resolved was removed by a swap meanwhile.
    #[error("block \"{block}\" has no route \"{route}\" any more: its plugin was swapped to a version without it")]
    RouteGone {
        /// The block id.
        block: String,
        /// The route.
        route: String,
    },
    /// A handler of the block never returned.
    #[error("block \"{block}\" is not responding: {reason}")]
    Hung {
        /// The block id.
        block: String,
        /// Which handler hung, since when.
        reason: String,
    },
    /// Another call held the block for longer than the handler timeout.
    #[error("block \"{block}\" is busy: another call has held it for more than {timeout_s} s")]
    Busy {
        /// The block id.
        block: String,
        /// The handler timeout.
        timeout_s: f64,
    },
    /// The emulator has terminated.
    #[error("the emulator has terminated")]
    Terminated,
    /// No block has this index.
    #[error("no block number {index}: the emulator has {blocks} blocks")]
    NoSuchBlock {
        /// The index asked for.
        index: usize,
        /// How many blocks there are.
        blocks: usize,
    },
}

/// Why `start` or `stop` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RunStateError {
    /// `start` while real-time pulses already flow.
    #[error("the emulator is already running")]
    AlreadyRunning,
    /// `stop` while no real-time pulses flow.
    #[error("the emulator is not running")]
    NotRunning,
    /// Either, after `terminate`.
    #[error("the emulator has terminated")]
    Terminated,
}

/// Counts from a batch of accelerated pulses.
#[derive(Debug, Clone, Copy)]
pub struct PulseRun {
    /// Pulses run.
    pub pulses: u64,
    /// Wall time they took.
    pub elapsed: Duration,
    /// Whether the batch ended before `count` pulses: `stop`, `terminate`,
    /// its caller gone, or a hung handler.
    pub cancelled: bool,
}

/// One bitstream emulator. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    options: EngineOptions,
    config: BitstreamConfig,
    chain: SignalChain,
    blocks: Vec<Block>,
    plugins: RwLock<Vec<Arc<Plugin>>>,
    swaps: swap::Swaps,
    signal: Mutex<(ValueMap, SignalList)>,
    queue: Mutex<Queue>,
    pulses: AtomicU64,
    /// Bumped when the watchdog takes the emulator from a worker stuck in
    /// a call; that worker, if it comes back, stops.
    generation: AtomicU64,
    /// The block a worker is calling for this emulator (`usize::MAX`:
    /// none) and a counter of finished calls, for the watchdog.
    in_flight: AtomicUsize,
    progress: AtomicU64,
    /// The block the watchdog declared hung last (`NO_BLOCK`: none).
    last_declared_hung: AtomicUsize,
    /// Set by `terminate`: a batch of pulses stops after the pulse in flight.
    terminating: AtomicBool,
    /// Raised by `stop` and `terminate`: a batch of accelerated pulses of an
    /// older epoch stops after the pulse in flight.
    batch_epoch: AtomicU64,
    /// Batches of accelerated pulses asked for and not yet answered.
    batches: AtomicUsize,
    terminated: (Mutex<bool>, Condvar),
    /// Run once by `terminate` (see `Emulator::when_terminated`).
    terminate_hooks: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// Set by `terminate` (also readable without a lock).
    is_terminated: AtomicBool,
    /// What happens, for whoever listens (`GET /events`).
    events: Arc<events::EventBus>,
    /// The threads that run it, and whether they are its own.
    runtime: Runtime,
    private_runtime: bool,
    /// Its key on the runtime (its timer entry's).
    key: u64,
    /// Itself, as the runtime holds it.
    me: Weak<Inner>,
    /// What the watchdog saw last: the call in flight, the progress count,
    /// since when.
    watched: Mutex<Option<(usize, u64, Instant)>>,
    /// When the last summary was measured, and the pulse count then.
    summarized: Mutex<(Instant, u64)>,
}

/// No block: the value of `in_flight` and `last_declared_hung` when unset.
const NO_BLOCK: usize = usize::MAX;

/// The generated signal when the config sets none.
pub fn default_signal() -> ValueMap {
    [("packet_rate", 1_000_000)].into()
}

impl Inner {
    /// Whether `terminate` has been called.
    fn is_terminated(&self) -> bool {
        self.is_terminated.load(Ordering::Acquire)
    }

    /// Block `index`, or the error that names the range.
    fn block(&self, index: usize) -> Result<&Block, CallError> {
        self.blocks.get(index).ok_or(CallError::NoSuchBlock {
            index,
            blocks: self.blocks.len(),
        })
    }
}

impl Emulator {
    /// The emulator id.
    pub fn id(&self) -> &str {
        &self.inner.options.id
    }

    /// The config it runs.
    pub fn config(&self) -> &BitstreamConfig {
        &self.inner.config
    }

    /// The signal chain.
    pub fn chain(&self) -> &SignalChain {
        &self.inner.chain
    }

    /// Every block, in config order.
    pub fn blocks(&self) -> &[Block] {
        &self.inner.blocks
    }

    /// The plugins serving now, one per type.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        self.inner.plugins.read().clone()
    }

    /// The block with this id.
    pub fn block_index(&self, id: &str) -> Option<usize> {
        self.inner.blocks.iter().position(|b| b.id == id)
    }

    /// The options it was started with.
    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    /// The runtime whose threads run it (its own when the options gave
    /// none).
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The event bus: subscribe to see state changes, faults, hangs,
    /// recoveries, injections, signal changes and a summary every second.
    pub fn events(&self) -> &Arc<events::EventBus> {
        &self.inner.events
    }

    /// Tells listeners that the plugin of `block_type` was replaced while
    /// running, now served by `library`: one
    /// [`plugin_swapped`](events::EventKind::PluginSwapped) event per block
    /// of that type. The hot-swap code calls this once the new plugin serves
    /// the blocks. Costs one atomic load when nobody listens.
    pub fn plugin_swapped(&self, block_type: &str, library: &std::path::Path) {
        for block in self
            .blocks()
            .iter()
            .filter(|b| b.plugin().ip_block_type == block_type)
        {
            self.inner
                .events
                .emit(events::EventKind::PluginSwapped, Some(block.index), || {
                    (
                        Some(block.id.clone()),
                        events::EventData::Swap {
                            block_type: block_type.to_owned(),
                            library: library.display().to_string(),
                        },
                    )
                });
        }
    }

    /// Pulses run so far.
    pub fn pulse_count(&self) -> u64 {
        self.inner.pulses.load(Ordering::Relaxed)
    }

    /// The emulator-level state.
    pub fn run_state(&self) -> RunState {
        self.inner.queue.lock().run_state
    }

    /// Starts real-time pulses; an error when already running or terminated.
    pub fn start(&self) -> Result<(), RunStateError> {
        let mut queue = self.inner.queue.lock();
        match queue.run_state {
            RunState::Running => Err(RunStateError::AlreadyRunning),
            RunState::Terminated => Err(RunStateError::Terminated),
            RunState::Stopped => {
                queue.run_state = RunState::Running;
                // The first pulse comes at once, as a PPS tick would.
                queue.next_tick = self.inner.options.pulse_period.map(|_| Instant::now());
                self.inner.kick(&mut queue);
                Ok(())
            }
        }
    }

    /// Stops real-time pulses and cancels every batch of accelerated pulses
    /// (`run_pulses`) running or waiting; the pulse in flight finishes. An
    /// error when there was neither.
    pub fn stop(&self) -> Result<(), RunStateError> {
        let mut queue = self.inner.queue.lock();
        self.inner.batch_epoch.fetch_add(1, Ordering::AcqRel);
        match queue.run_state {
            RunState::Running => {
                queue.run_state = RunState::Stopped;
                queue.next_tick = None;
                self.inner.kick(&mut queue);
                Ok(())
            }
            RunState::Stopped if self.inner.batches.load(Ordering::Acquire) > 0 => Ok(()),
            RunState::Stopped => Err(RunStateError::NotRunning),
            RunState::Terminated => Err(RunStateError::Terminated),
        }
    }

    /// Ends event processing: the command in flight finishes (a batch of
    /// accelerated pulses stops after the pulse in flight), pending work is
    /// discarded; the runtime does no more work for it (a private runtime's
    /// threads end).
    pub fn terminate(&self) {
        self.inner.terminating.store(true, Ordering::Release);
        self.inner.batch_epoch.fetch_add(1, Ordering::AcqRel);
        // Other processes see the buffers invalid at once, and their names
        // go: a process exit right after this leaves nothing in /dev/shm.
        for block in &self.inner.blocks {
            if let Some(buffer) = block.buffer() {
                buffer.release();
            }
        }
        let dropped = {
            let mut queue = self.inner.queue.lock();
            queue.run_state = RunState::Terminated;
            queue.next_tick = None;
            let dropped = (
                std::mem::take(&mut queue.commands),
                std::mem::take(&mut queue.timers),
            );
            queue.injections = 0;
            queue.injection_bytes = 0;
            self.inner.is_terminated.store(true, Ordering::Release);
            if queue.sched == queue::Sched::Idle {
                // Drops its timer entry.
                self.inner.settle(&mut queue);
            }
            dropped
        };
        drop(dropped);
        if self.inner.private_runtime {
            self.inner.runtime.shutdown();
        }
        self.inner.events.close();
        let (flag, changed) = &self.inner.terminated;
        let hooks = {
            let mut done = flag.lock();
            *done = true;
            std::mem::take(&mut *self.inner.terminate_hooks.lock())
        };
        changed.notify_all();
        for hook in hooks {
            hook();
        }
    }

    /// Runs `hook` once the emulator has terminated: at once (on this
    /// thread) when it already has, else on the thread that calls
    /// [`terminate`](Self::terminate). For waiting without a thread (the
    /// HTTP server's shutdown).
    pub fn when_terminated(&self, hook: impl FnOnce() + Send + 'static) {
        let (flag, _) = &self.inner.terminated;
        let done = flag.lock();
        if *done {
            drop(done);
            hook();
        } else {
            self.inner.terminate_hooks.lock().push(Box::new(hook));
        }
    }

    /// Blocks until [`terminate`](Self::terminate) has been called.
    pub fn wait_terminated(&self) {
        let (flag, changed) = &self.inner.terminated;
        let mut done = flag.lock();
        while !*done {
            changed.wait(&mut done);
        }
    }

    /// Runs `count` pulses as fast as possible and waits for them. If a
    /// handler hangs meanwhile, answers with that error instead of waiting.
    /// `stop` and `terminate` cancel the batch after the pulse in flight
    /// ([`PulseRun::cancelled`]).
    pub fn run_pulses(&self, count: u64) -> Result<PulseRun, CallError> {
        self.run_pulses_cancellable(count, Arc::new(AtomicBool::new(false)))
    }

    /// [`run_pulses`](Self::run_pulses), also cancelled once `cancel` is
    /// set (for example when the client that asked has gone).
    pub fn run_pulses_cancellable(
        &self,
        count: u64,
        cancel: Arc<AtomicBool>,
    ) -> Result<PulseRun, CallError> {
        let (done, finished) = mpsc::sync_channel(1);
        let generation = self.inner.generation.load(Ordering::Acquire);
        let batches = &self.inner.batches;
        batches.fetch_add(1, Ordering::AcqRel);
        struct Answered<'a>(&'a AtomicUsize);
        impl Drop for Answered<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _answered = Answered(batches);
        self.inner.push(Command::Pulses {
            count,
            done: Some(done),
            cancel: Some(cancel),
            epoch: self.inner.batch_epoch.load(Ordering::Acquire),
            ran: 0,
            started: None,
        })?;
        loop {
            let received = finished.recv_timeout(Duration::from_millis(50));
            // A hang during the batch replaces the driver; the new driver may
            // finish the batch before this poll notices, so the generation is
            // checked whatever arrived.
            let hung = self.inner.generation.load(Ordering::Acquire) != generation;
            match received {
                Ok(run) if !hung => return Ok(run),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(CallError::Terminated),
                Err(mpsc::RecvTimeoutError::Timeout) if !hung => continue,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            // The block whose hang replaced the driver, not the first of the
            // blocks hung so far.
            let index = self.inner.last_declared_hung.load(Ordering::Acquire);
            let (block, reason) = self
                .inner
                .blocks
                .get(index)
                .map(|b| (b.id.clone(), b.hung_reason().unwrap_or_default()))
                .unwrap_or_default();
            return Err(CallError::Hung { block, reason });
        }
    }

    /// Marks block `index` hung (a route call on it never returned): it gets
    /// no more events and calls on it fail at once.
    pub fn mark_hung(&self, index: usize, reason: String) {
        if let Some(block) = self.inner.blocks.get(index) {
            tracing::error!(block = %block.id, "{reason}");
            block.set_hung(reason);
        }
    }

    /// The generated signal's values.
    pub fn signal(&self) -> ValueMap {
        self.inner.signal.lock().0.clone()
    }

    /// Replaces the generated signal's values (checked like the config's
    /// `signal` section).
    pub fn set_signal(&self, values: ValueMap) -> Result<(), config::SignalError> {
        config::check_signal(&values)?;
        let list = SignalList::from_values(vec![Value::Map(values.clone())]);
        self.inner.events.emit(events::EventKind::Signal, None, || {
            (
                None,
                events::EventData::Signal {
                    values: Value::Map(values.clone()).into(),
                },
            )
        });
        *self.inner.signal.lock() = (values, list);
        Ok(())
    }

    /// The current state name of block `index`.
    pub fn block_state(&self, index: usize) -> Result<String, CallError> {
        let block = self.inner.block(index)?;
        let cell = self.inner.lock_cell(block)?;
        Ok(cell.plugin.machine.state_name(cell.state).to_owned())
    }

    /// Block `index`'s ip_block, serialized.
    pub fn block_snapshot(&self, index: usize) -> Result<Value, CallError> {
        let block = self.inner.block(index)?;
        let mut cell = self.inner.lock_cell(block)?;
        cell.instance.snapshot().map_err(CallError::Plugin)
    }

    /// Why block `index` faulted, if it did (also while another call holds
    /// the block).
    pub fn block_fault(&self, index: usize) -> Option<String> {
        self.inner.blocks.get(index)?.fault_reason()
    }

    /// Calls route `route` (its index in the plugin's table) of block `index`.
    pub fn call_route(
        &self,
        index: usize,
        route: u32,
        request: &RouteRequest,
    ) -> Result<RouteResponse, CallError> {
        self.call_route_of(index, None, route, request)
    }

    /// Calls route `route` of block `index` as `resolved_in` numbers it
    /// (the plugin the caller looked the route up in). If a swap replaced
    /// that plugin meanwhile, the route of the same name and method in the
    /// new version is called, or [`CallError::RouteGone`] answered.
    pub fn call_route_as(
        &self,
        index: usize,
        resolved_in: &Arc<Plugin>,
        route: u32,
        request: &RouteRequest,
    ) -> Result<RouteResponse, CallError> {
        self.call_route_of(index, Some(resolved_in), route, request)
    }

    fn call_route_of(
        &self,
        index: usize,
        resolved_in: Option<&Arc<Plugin>>,
        mut route: u32,
        request: &RouteRequest,
    ) -> Result<RouteResponse, CallError> {
        let inner = &self.inner;
        let block = inner.block(index)?;
        let mut cell = inner.lock_cell(block)?;
        if let Some(old) = resolved_in.filter(|p| !Arc::ptr_eq(p, &cell.plugin)) {
            let desc = &old.routes[route as usize];
            route = cell
                .plugin
                .routes
                .iter()
                .position(|r| r.name == desc.name && r.method == desc.method)
                .ok_or_else(|| CallError::RouteGone {
                    block: block.id.clone(),
                    route: desc.name.to_string(),
                })? as u32;
        }
        let (result, deferred) = block.call(&mut cell, |instance, host| {
            instance.call_route(host, route, request)
        });
        if let Err(err) = &result {
            let name = cell
                .plugin
                .routes
                .get(route as usize)
                .map_or_else(|| "?".to_owned(), |r| r.name.to_string());
            if err.is_fault() {
                block.fault(&mut cell, &format!("route \"{name}\""), err);
            }
        }
        let propagate = inner.finish_call(block, &mut cell, deferred);
        drop(cell);
        if propagate {
            // Downstream propagation runs on the driver, in order with pulses.
            let _ = inner.push(Command::Propagate { from: index });
        }
        result.map_err(CallError::Plugin)
    }

    /// Delivers `event` to block `index`'s manual-event handler after `delay`
    /// (see [`inject_all`](Self::inject_all) for the bounds).
    pub fn inject(
        &self,
        index: usize,
        event: ManualEvent,
        delay: Duration,
    ) -> Result<(), InjectError> {
        self.inject_all(
            vec![Injection {
                block: index,
                event,
                delay,
            }],
            0,
        )
    }
}
