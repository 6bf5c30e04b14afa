//! The engine: one emulator instance per bitstream package.
//!
//! All of an emulator's state lives in [`Emulator`] (no process-wide state
//! beyond loaded libraries), so one process can host many.
//!
//! # Threads and order
//! - The **driver** thread runs everything the engine does by itself, one
//!   command at a time: real-time and accelerated pulses, downstream
//!   propagation after `force_signal_update`, delayed actions and manual
//!   events (injections and events forwarded downstream). Timed work waits in
//!   a deadline heap; equal deadlines run in the order they were scheduled.
//! - A pulse visits the blocks in [`SignalChain::order`]: upstream before
//!   downstream, config order among the rest. Each block gets the
//!   concatenation of what its upstream blocks returned in this pulse (in
//!   config order; `first` blocks get the generated signal first), runs its
//!   signal-update handler, then its pulse handler.
//! - HTTP routes run on the caller's thread. Every call on a block holds that
//!   block's lock, so no two calls on one block overlap.
//! - The **watchdog** thread notices a driver call that has not returned
//!   within the handler timeout: it marks that block hung, logs it, and
//!   starts a new driver, so the other blocks keep receiving events.

pub mod block;
pub mod block_buffer;
pub mod chain;
pub mod signal;

use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitstream_sdk::{Value, ValueMap};
use parking_lot::{Condvar, Mutex};

use crate::checks::plugin::{check_plugin, BlockConstants, PluginCheck};
use crate::config::{self, BitstreamConfig, CONFIG_FILE};
use crate::model::{ManualEvent, PluginError, PulseEvent, RouteRequest, RouteResponse};
use crate::plugin::Plugin;
use crate::plugin::{loader, DelayedCall};
use block::{Block, BlockCell, Deferred, SignalList};
use block_buffer::{BlockBuffer, BufferMode};
pub use chain::SignalChain;

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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            id: "bitstream-emulator".to_owned(),
            pulse_period: Some(Duration::from_millis(1000)),
            handler_timeout: Duration::from_secs(10),
            start_running: true,
            buffers: BufferMode::Shared,
        }
    }
}

/// Why an emulator could not start. Each names the file, type or block.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The package has no `emulators/` folder.
    #[error("{0}: no emulators/ folder; give the bitstream package folder")]
    NotAPackage(std::path::PathBuf),
    /// Plugin folders could not be listed.
    #[error(transparent)]
    Load(#[from] loader::LoadError),
    /// The config failed its checks.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A plugin failed its checks.
    #[error("plugin \"{ip_block_type}\" is not valid:\n{}", problems.join("\n"))]
    Plugin {
        /// The type.
        ip_block_type: String,
        /// Each failed check's problems, as `[check] message`.
        problems: Vec<String>,
    },
    /// A block could not be created.
    #[error("block \"{block}\": {message}")]
    Block {
        /// The block id.
        block: String,
        /// What failed.
        message: String,
    },
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
}

/// Counts from a batch of accelerated pulses.
#[derive(Debug, Clone, Copy)]
pub struct PulseRun {
    /// Pulses run.
    pub pulses: u64,
    /// Wall time they took.
    pub elapsed: Duration,
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
    plugins: Vec<Arc<Plugin>>,
    signal: Mutex<(ValueMap, SignalList)>,
    queue: Mutex<Queue>,
    queue_changed: Condvar,
    pulses: AtomicU64,
    /// Which driver generation is current; older drivers stop.
    generation: AtomicU64,
    /// The block the driver is calling (`usize::MAX`: none) and a counter of
    /// finished calls, for the watchdog.
    in_flight: AtomicUsize,
    progress: AtomicU64,
    /// The block the watchdog declared hung last (`NO_BLOCK`: none).
    last_declared_hung: AtomicUsize,
    /// Set by `terminate`: a batch of pulses stops after the pulse in flight.
    terminating: AtomicBool,
    terminated: (Mutex<bool>, Condvar),
}

struct Queue {
    run_state: RunState,
    commands: VecDeque<Command>,
    timers: BinaryHeap<Timer>,
    timer_seq: u64,
    next_tick: Option<Instant>,
}

enum Command {
    Pulses {
        count: u64,
        done: Option<mpsc::SyncSender<PulseRun>>,
    },
    Propagate {
        from: usize,
    },
    Delayed {
        block: usize,
        action: DelayedCall,
    },
    Manual {
        block: usize,
        event: ManualEvent,
    },
}

struct Timer {
    deadline: Instant,
    seq: u64,
    command: Command,
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

const NO_BLOCK: usize = usize::MAX;

/// `now + delay`, saturated at a century from now (a deadline that never
/// comes) instead of overflowing `Instant`.
fn deadline_after(delay: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    Instant::now() + delay.min(CENTURY)
}

/// The generated signal when the config sets none.
pub fn default_signal() -> ValueMap {
    [("packet_rate", 1_000_000)].into()
}

impl Emulator {
    /// Loads and checks a package (config and plugins, with the same checks
    /// as `validate-bitstream`), creates every block, and starts the driver
    /// and watchdog threads. Nothing half-starts: any problem is an error.
    /// An empty `options.id` takes the config's id.
    pub fn load(package: &Path, mut options: EngineOptions) -> Result<Emulator, StartupError> {
        let emulators = package.join("emulators");
        if !emulators.is_dir() {
            return Err(StartupError::NotAPackage(package.to_path_buf()));
        }
        let folders = loader::find_plugin_folders(&emulators)?;
        let types: Vec<String> = folders.iter().map(|f| f.ip_block_type.clone()).collect();
        let config = config::load_config(&emulators.join(CONFIG_FILE), Some(&types))?;
        if options.id.is_empty() {
            options.id = config.id.clone();
        }

        let mut plugins: Vec<Arc<Plugin>> = Vec::new();
        for ip_block_type in config.block_types() {
            let folder = folders
                .iter()
                .find(|f| f.ip_block_type == ip_block_type)
                .expect("the config's emulators check found a folder for every type");
            let blocks: Vec<BlockConstants> = config
                .blocks_of_type(ip_block_type)
                .map(|b| BlockConstants {
                    block_id: b.id.clone(),
                    constants: b.constants.clone(),
                })
                .collect();
            let input = PluginCheck {
                ip_block_type,
                folder: &folder.folder,
                blocks: Some(&blocks),
            };
            let (plugin, report) = check_plugin(input, &mut |_| {});
            let plugin = plugin.ok_or_else(|| StartupError::Plugin {
                ip_block_type: ip_block_type.to_owned(),
                problems: report
                    .checks
                    .iter()
                    .filter(|c| c.failed())
                    .flat_map(|c| {
                        c.problems
                            .iter()
                            .map(move |p| format!("  [{}] {}", c.name, p.message))
                    })
                    .collect(),
            })?;
            for check in report
                .checks
                .iter()
                .filter(|c| c.status == crate::report::CheckStatus::Warning)
            {
                for problem in &check.problems {
                    tracing::warn!(ip_block_type, "[{}] {}", check.name, problem.message);
                }
            }
            plugins.push(Arc::new(plugin));
        }

        let mut blocks = Vec::with_capacity(config.ip_blocks.len());
        for (index, block) in config.ip_blocks.iter().enumerate() {
            let plugin = plugins
                .iter()
                .find(|p| p.ip_block_type == block.block_type)
                .expect("every type was loaded")
                .clone();
            let block_error = |message: String| StartupError::Block {
                block: block.id.clone(),
                message,
            };
            let mut instance = plugin
                .components
                .create_block()
                .map_err(|e| block_error(format!("constructing its ip_block failed: {e}")))?;
            instance.apply_constants(&block.constants).map_err(|e| {
                block_error(format!("its constants were not accepted: {}", e.message))
            })?;
            let buffer = match &plugin.catalog {
                None => None,
                Some(catalog) => Some(
                    BlockBuffer::create(
                        &catalog.buffer_type,
                        options.buffers,
                        &options.id,
                        &block.id,
                    )
                    .map_err(|e| {
                        block_error(format!(
                            "its device buffer (type \"{}\" from {}) cannot be created: {e}",
                            catalog.buffer_type.name(),
                            catalog.source()
                        ))
                    })?,
                ),
            };
            blocks.push(Block::new(
                block.id.clone(),
                index,
                plugin,
                instance,
                buffer,
            ));
        }
        Ok(Self::launch(options, config, plugins, blocks))
    }

    fn launch(
        options: EngineOptions,
        config: BitstreamConfig,
        plugins: Vec<Arc<Plugin>>,
        blocks: Vec<Block>,
    ) -> Self {
        let chain = SignalChain::new(&config);
        let signal = config.signal.clone().unwrap_or_else(default_signal);
        let list = SignalList::from_values(vec![Value::Map(signal.clone())]);
        let run_state = if options.start_running {
            RunState::Running
        } else {
            RunState::Stopped
        };
        // The first pulse comes at once, as a PPS tick would.
        let next_tick = options
            .pulse_period
            .filter(|_| options.start_running)
            .map(|_| Instant::now());
        let inner = Arc::new(Inner {
            options,
            config,
            chain,
            blocks,
            plugins,
            signal: Mutex::new((signal, list)),
            queue: Mutex::new(Queue {
                run_state,
                commands: VecDeque::new(),
                timers: BinaryHeap::new(),
                timer_seq: 0,
                next_tick,
            }),
            queue_changed: Condvar::new(),
            pulses: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            in_flight: AtomicUsize::new(NO_BLOCK),
            progress: AtomicU64::new(0),
            last_declared_hung: AtomicUsize::new(NO_BLOCK),
            terminating: AtomicBool::new(false),
            terminated: (Mutex::new(false), Condvar::new()),
        });
        Inner::spawn_driver(&inner, 0);
        let watchdog = inner.clone();
        thread::Builder::new()
            .name(format!("{}-watchdog", watchdog.options.id))
            .spawn(move || watchdog.watch())
            .expect("spawning the watchdog thread");
        Emulator { inner }
    }

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

    /// The plugins, one per type.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.inner.plugins
    }

    /// The block with this id.
    pub fn block_index(&self, id: &str) -> Option<usize> {
        self.inner.blocks.iter().position(|b| b.id == id)
    }

    /// The options it was started with.
    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
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
    pub fn start(&self) -> Result<(), String> {
        let mut queue = self.inner.queue.lock();
        match queue.run_state {
            RunState::Running => Err("the emulator is already running".to_owned()),
            RunState::Terminated => Err("the emulator has terminated".to_owned()),
            RunState::Stopped => {
                queue.run_state = RunState::Running;
                // The first pulse comes at once, as a PPS tick would.
                queue.next_tick = self.inner.options.pulse_period.map(|_| Instant::now());
                self.inner.queue_changed.notify_all();
                Ok(())
            }
        }
    }

    /// Stops real-time pulses; the pulse in flight finishes.
    pub fn stop(&self) -> Result<(), String> {
        let mut queue = self.inner.queue.lock();
        match queue.run_state {
            RunState::Running => {
                queue.run_state = RunState::Stopped;
                queue.next_tick = None;
                self.inner.queue_changed.notify_all();
                Ok(())
            }
            RunState::Stopped => Err("the emulator is not running".to_owned()),
            RunState::Terminated => Err("the emulator has terminated".to_owned()),
        }
    }

    /// Ends event processing: the command in flight finishes (a batch of
    /// accelerated pulses stops after the pulse in flight), pending work is
    /// discarded, the driver and watchdog exit.
    pub fn terminate(&self) {
        self.inner.terminating.store(true, Ordering::Release);
        // Other processes see the buffers invalid at once, and their names
        // go: a process exit right after this leaves nothing in /dev/shm.
        for block in &self.inner.blocks {
            if let Some(buffer) = &block.buffer {
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
            self.inner.queue_changed.notify_all();
            dropped
        };
        drop(dropped);
        let (flag, changed) = &self.inner.terminated;
        *flag.lock() = true;
        changed.notify_all();
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
    pub fn run_pulses(&self, count: u64) -> Result<PulseRun, CallError> {
        let (done, finished) = mpsc::sync_channel(1);
        let generation = self.inner.generation.load(Ordering::Acquire);
        self.inner.push(Command::Pulses {
            count,
            done: Some(done),
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
        let block = &self.inner.blocks[index];
        tracing::error!(block = %block.id, "{reason}");
        block.set_hung(reason);
    }

    /// The generated signal's values.
    pub fn signal(&self) -> ValueMap {
        self.inner.signal.lock().0.clone()
    }

    /// Replaces the generated signal's values (checked like the config's
    /// `signal` section).
    pub fn set_signal(&self, values: ValueMap) -> Result<(), String> {
        config::check_signal(&values)?;
        let list = SignalList::from_values(vec![Value::Map(values.clone())]);
        *self.inner.signal.lock() = (values, list);
        Ok(())
    }

    /// The current state name of block `index`.
    pub fn block_state(&self, index: usize) -> Result<String, CallError> {
        let block = &self.inner.blocks[index];
        let cell = self.inner.lock_cell(block)?;
        Ok(block.machine().state_name(cell.state).to_owned())
    }

    /// Block `index`'s ip_block, serialized.
    pub fn block_snapshot(&self, index: usize) -> Result<Value, CallError> {
        let block = &self.inner.blocks[index];
        let mut cell = self.inner.lock_cell(block)?;
        cell.instance.snapshot().map_err(CallError::Plugin)
    }

    /// Why block `index` faulted, if it did.
    pub fn block_fault(&self, index: usize) -> Option<String> {
        self.inner.blocks[index]
            .cell
            .try_lock()
            .and_then(|c| c.fault.clone())
    }

    /// Calls route `route` (its index in the plugin's table) of block `index`.
    pub fn call_route(
        &self,
        index: usize,
        route: u32,
        request: &RouteRequest,
    ) -> Result<RouteResponse, CallError> {
        let inner = &self.inner;
        let block = &inner.blocks[index];
        let mut cell = inner.lock_cell(block)?;
        let (result, deferred) = block.call(&mut cell, |instance, host| {
            instance.call_route(host, route, request)
        });
        if let Err(err) = &result {
            let name = block
                .plugin
                .routes
                .get(route as usize)
                .map_or("?", |r| r.name.as_str());
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

    /// Delivers `event` to block `index`'s manual-event handler after `delay`.
    pub fn inject(
        &self,
        index: usize,
        event: ManualEvent,
        delay: Duration,
    ) -> Result<(), CallError> {
        self.inner.schedule(
            delay,
            Command::Manual {
                block: index,
                event,
            },
        )
    }
}

impl Inner {
    fn push(&self, command: Command) -> Result<(), CallError> {
        let mut queue = self.queue.lock();
        if queue.run_state == RunState::Terminated {
            return Err(CallError::Terminated);
        }
        queue.commands.push_back(command);
        self.queue_changed.notify_all();
        Ok(())
    }

    fn schedule(&self, delay: Duration, command: Command) -> Result<(), CallError> {
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
        self.queue_changed.notify_all();
        Ok(())
    }

    /// Locks a block's cell, unless the block is hung or stays busy past
    /// the handler timeout.
    fn lock_cell<'b>(
        &self,
        block: &'b Block,
    ) -> Result<parking_lot::MutexGuard<'b, BlockCell>, CallError> {
        if let Some(reason) = block.hung_reason() {
            return Err(CallError::Hung {
                block: block.id.clone(),
                reason,
            });
        }
        block
            .cell
            .try_lock_for(self.options.handler_timeout)
            .ok_or_else(|| CallError::Busy {
                block: block.id.clone(),
                timeout_s: self.options.handler_timeout.as_secs_f64(),
            })
    }

    fn spawn_driver(self: &Arc<Self>, generation: u64) {
        let inner = self.clone();
        thread::Builder::new()
            .name(format!("{}-driver-{generation}", inner.options.id))
            .spawn(move || inner.drive(generation))
            .expect("spawning the driver thread");
    }

    /// The driver loop: waits for the next command, due timer or tick.
    fn drive(&self, generation: u64) {
        let mut outputs: Vec<Option<SignalList>> = vec![None; self.blocks.len()];
        while let Some(command) = self.next_command(generation) {
            match command {
                Command::Pulses { count, done } => {
                    let started = Instant::now();
                    let mut ran = 0;
                    while ran < count
                        && self.current(generation)
                        && !self.terminating.load(Ordering::Acquire)
                    {
                        self.pulse(generation, &mut outputs);
                        ran += 1;
                    }
                    if let Some(done) = done {
                        let _ = done.send(PulseRun {
                            pulses: ran,
                            elapsed: started.elapsed(),
                        });
                    }
                }
                Command::Propagate { from } => self.propagate(generation, from),
                Command::Delayed { block, action } => self.run_delayed(generation, block, action),
                Command::Manual { block, event } => self.deliver_manual(generation, block, event),
            }
        }
    }

    fn current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }

    fn next_command(&self, generation: u64) -> Option<Command> {
        let mut queue = self.queue.lock();
        loop {
            if queue.run_state == RunState::Terminated || !self.current(generation) {
                return None;
            }
            let now = Instant::now();
            while queue.timers.peek().is_some_and(|t| t.deadline <= now) {
                let timer = queue.timers.pop().expect("peeked");
                queue.commands.push_back(timer.command);
            }
            if let Some(command) = queue.commands.pop_front() {
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
                    });
                }
            }
            let next_timer = queue.timers.peek().map(|t| t.deadline);
            let wake = match (
                next_timer,
                queue
                    .next_tick
                    .filter(|_| queue.run_state == RunState::Running),
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake {
                Some(deadline) => {
                    self.queue_changed.wait_until(&mut queue, deadline);
                }
                None => self.queue_changed.wait(&mut queue),
            }
        }
    }

    fn enter(&self, block: usize) {
        self.in_flight.store(block, Ordering::Release);
    }

    /// Ends the call on `block`. A driver replaced while it was in a call
    /// (its block declared hung) may come back later: by then `in_flight`
    /// belongs to the new driver and is left alone.
    fn leave(&self, block: usize) {
        if self
            .in_flight
            .compare_exchange(block, NO_BLOCK, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.progress.fetch_add(1, Ordering::Release);
        }
    }

    /// One pulse through the whole chain.
    fn pulse(&self, generation: u64, outputs: &mut [Option<SignalList>]) {
        let sequence = self.pulses.fetch_add(1, Ordering::Relaxed);
        let timestamp_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let event = PulseEvent {
            sequence,
            timestamp_ns,
        };
        let generated = self.signal.lock().1.clone();
        outputs.iter_mut().for_each(|o| *o = None);
        for &b in self.chain.order() {
            if !self.current(generation) {
                return;
            }
            let input = self.input_of(b, outputs, &generated);
            let block = &self.blocks[b];
            let output = match self.lock_cell(block) {
                Ok(mut cell) => {
                    self.enter(b);
                    let output = self.signal_then_pulse(block, &mut cell, input, &event);
                    self.leave(b);
                    output
                }
                Err(err) => {
                    tracing::warn!(block = %block.id, "skipped in pulse {sequence}: {err}");
                    SignalList::default()
                }
            };
            outputs[b] = Some(output);
        }
    }

    /// What block `b` receives: the generated signal (for `first` blocks)
    /// then each upstream block's output, in config order.
    fn input_of(
        &self,
        b: usize,
        outputs: &[Option<SignalList>],
        generated: &SignalList,
    ) -> SignalList {
        let upstream = self.chain.upstream(b);
        let first = self.chain.is_first(b);
        let empty = SignalList::default();
        let upstream_output = |u: usize| outputs[u].as_ref().unwrap_or(&empty);
        match (first, upstream) {
            (true, []) => generated.clone(),
            (false, [only]) => upstream_output(*only).clone(),
            _ => {
                let generated = first.then_some(generated);
                SignalList::concat(
                    generated
                        .into_iter()
                        .chain(upstream.iter().map(|&u| upstream_output(u))),
                )
            }
        }
    }

    fn signal_then_pulse(
        &self,
        block: &Block,
        cell: &mut BlockCell,
        input: SignalList,
        event: &PulseEvent,
    ) -> SignalList {
        cell.last_input = input.clone();
        cell.last_output = self.run_signal(block, cell, input);
        if block.plugin.overrides.pulse {
            let (result, deferred) = block.call(cell, |instance, host| instance.pulse(host, event));
            if let Err(err) = result {
                block.fault(cell, "pulse handler", &err);
            }
            // Downstream blocks have not run yet in this pulse: a forced
            // update just replaces this block's output.
            self.finish_call(block, cell, deferred);
        }
        cell.last_output.clone()
    }

    /// Runs the signal-update handler (or passes the list through).
    fn run_signal(&self, block: &Block, cell: &mut BlockCell, input: SignalList) -> SignalList {
        if !block.plugin.overrides.signal_update {
            return input;
        }
        let owned = input.to_vec();
        let (result, deferred) =
            block.call(cell, |instance, host| instance.signal_update(host, owned));
        for work in deferred {
            match work {
                Deferred::ForceSignalUpdate => {
                    tracing::debug!(block = %block.id, "force_signal_update inside a signal-update handler is ignored")
                }
                Deferred::Delay(delay, action) => self.schedule_delayed(block, delay, action),
            }
        }
        match result {
            Ok(list) => SignalList::from_values(list),
            Err(err) => {
                block.fault(cell, "signal-update handler", &err);
                input
            }
        }
    }

    /// Does what a call deferred; answers whether downstream blocks need the
    /// block's new output.
    fn finish_call(&self, block: &Block, cell: &mut BlockCell, deferred: Vec<Deferred>) -> bool {
        let mut propagate = false;
        for work in deferred {
            match work {
                Deferred::ForceSignalUpdate => {
                    let input = cell.last_input.clone();
                    cell.last_output = self.run_signal(block, cell, input);
                    propagate = true;
                }
                Deferred::Delay(delay, action) => self.schedule_delayed(block, delay, action),
            }
        }
        propagate
    }

    fn schedule_delayed(&self, block: &Block, delay: Duration, action: DelayedCall) {
        let command = Command::Delayed {
            block: block.index,
            action,
        };
        if self.schedule(delay, command).is_err() {
            tracing::debug!(block = %block.id, "delayed action discarded: the emulator has terminated");
        }
    }

    /// Re-runs the signal-update handlers downstream of `from` on their
    /// upstream blocks' latest outputs.
    fn propagate(&self, generation: u64, from: usize) {
        let generated = self.signal.lock().1.clone();
        for &b in self.chain.downstream_closure(from).iter().skip(1) {
            if !self.current(generation) {
                return;
            }
            let mut parts: Vec<SignalList> = Vec::new();
            if self.chain.is_first(b) {
                parts.push(generated.clone());
            }
            for &u in self.chain.upstream(b) {
                if let Ok(cell) = self.lock_cell(&self.blocks[u]) {
                    parts.push(cell.last_output.clone());
                }
            }
            let block = &self.blocks[b];
            let Ok(mut cell) = self.lock_cell(block) else {
                continue;
            };
            self.enter(b);
            cell.last_input = SignalList::concat(&parts);
            let input = cell.last_input.clone();
            cell.last_output = self.run_signal(block, &mut cell, input);
            self.leave(b);
        }
    }

    fn run_delayed(&self, generation: u64, index: usize, action: DelayedCall) {
        let block = &self.blocks[index];
        let mut cell = match self.lock_cell(block) {
            Ok(cell) => cell,
            Err(err) => {
                tracing::error!(block = %block.id, "delayed action dropped: {err}");
                return;
            }
        };
        self.enter(index);
        let (result, deferred) = block.call(&mut cell, |instance, host| {
            instance.run_delayed(host, action)
        });
        self.leave(index);
        if let Err(err) = result {
            tracing::error!(block = %block.id, "delayed action failed: {err}");
        }
        let propagate = self.finish_call(block, &mut cell, deferred);
        drop(cell);
        if propagate {
            self.propagate(generation, index);
        }
    }

    fn deliver_manual(&self, generation: u64, index: usize, event: ManualEvent) {
        let block = &self.blocks[index];
        if !self.current(generation) {
            tracing::debug!(block = %block.id, "manual event dropped: its driver was replaced");
            return;
        }
        if !block.plugin.overrides.manual_event {
            tracing::debug!(block = %block.id, "manual event ignored: the block has no manual-event handler");
            return;
        }
        let mut cell = match self.lock_cell(block) {
            Ok(cell) => cell,
            Err(err) => {
                tracing::error!(block = %block.id, "manual event dropped: {err}");
                return;
            }
        };
        self.enter(index);
        let (result, deferred) = block.call(&mut cell, |instance, host| {
            instance.manual_event(host, &event)
        });
        self.leave(index);
        let forwarded = match result {
            Ok(events) => events,
            Err(err) => {
                block.fault(&mut cell, "manual-event handler", &err);
                Vec::new()
            }
        };
        let propagate = self.finish_call(block, &mut cell, deferred);
        drop(cell);
        if propagate {
            self.propagate(generation, index);
        }
        for &d in self.chain.downstream(index) {
            for event in &forwarded {
                self.deliver_manual(generation, d, event.clone());
            }
        }
    }

    /// The watchdog loop: a driver call that makes no progress for the
    /// handler timeout marks its block hung and is replaced.
    fn watch(self: Arc<Self>) {
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

    fn declare_hung(self: &Arc<Self>, index: usize, for_how_long: Duration) {
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
