//! One block instance and the host side of its subcontroller.
//!
//! A block's mutable state (the plugin's instance, its FSM state, its last
//! signal lists) sits behind one mutex: holding it is what makes
//! calls on a block serial. During a call the plugin reaches back through a
//! [`CallCtx`] (the engine's [`BlockHost`]); work that would re-enter the
//! block (`force_signal_update`, `delay_action`) is recorded and done after
//! the call returns.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitstream_sdk::ValueMap;
use parking_lot::{ArcMutexGuard, Mutex, MutexGuard, RawMutex, RwLock};

use super::block_buffer::BlockBuffer;
use super::events::{EventBus, EventData, EventKind};
use crate::fsm::{Machine, StateId};
use crate::model::{PluginError, TriggerFailure, TriggerFailureKind, TriggerMode};
use crate::plugin::{BlockHost, BlockInstance, DelayedCall, Plugin};

pub use super::signal::SignalList;

/// One block of the bitstream.
pub struct Block {
    /// Its id in the config (and URL).
    pub id: String,
    /// Its position in the config.
    pub index: usize,
    /// The plugin of its type (replaced by a swap; calls read the cell's).
    plugin: RwLock<Arc<Plugin>>,
    /// Its cell. A swap that recovers a hung block puts a new cell here and
    /// leaves the old one to the thread stuck in it.
    cell: RwLock<Arc<Mutex<BlockCell>>>,
    /// Bumped each time `cell` is replaced: a driver's cached copy of the
    /// slot is good while this has not changed.
    cell_version: AtomicU64,
    /// Bumped by every swap of the block; delayed actions carry the value
    /// they were scheduled under and are dropped when it changed.
    epoch: AtomicU64,
    /// Set when one of its handlers did not return in time (why, and
    /// since when); the thread that ran it may still hold `cell`. Cleared
    /// when that handler returns after all, or when a swap replaces the
    /// cell. `is_hung` is the fast check.
    hung: Mutex<Option<(String, Instant)>>,
    /// Why it faulted, if it did; outside `cell`, so it can be read while
    /// another call holds the block.
    fault: Mutex<Option<String>>,
    is_hung: AtomicBool,
    /// Its device buffer now, when its plugin ships a catalog (replaced by
    /// a swap that changes the buffer type; each cell holds the buffer its
    /// code knows). Declared after `cell`, so the plugin's instance (which
    /// may hold a handle to the buffer) is dropped first.
    buffer: RwLock<Option<Arc<BlockBuffer>>>,
    /// The emulator's event bus (state changes and faults are emitted here).
    events: Arc<EventBus>,
}

/// A locked cell (it keeps the cell alive).
pub(crate) type CellGuard = ArcMutexGuard<RawMutex, BlockCell>;

/// What one call on a block may change.
pub(crate) struct BlockCell {
    /// The plugin whose code `instance` is: the block's plugin when the
    /// call started, whatever a swap does meanwhile.
    pub plugin: Arc<Plugin>,
    /// The block's epoch when this cell was made or last swapped.
    pub epoch: u64,
    pub instance: BlockInstance,
    /// The device buffer `instance` knows (its plugin's layout): kept
    /// mapped for as long as the cell lives.
    pub buffer: Option<Arc<BlockBuffer>>,
    pub state: StateId,
    /// The last signal-update list it received.
    pub last_input: SignalList,
    /// The list it last sent downstream.
    pub last_output: SignalList,
}

impl BlockCell {
    /// A fresh cell for `instance` of `plugin`, in the machine's initial state.
    pub(crate) fn new(
        plugin: Arc<Plugin>,
        epoch: u64,
        instance: BlockInstance,
        buffer: Option<Arc<BlockBuffer>>,
    ) -> Self {
        let state = plugin.machine.initial();
        BlockCell {
            plugin,
            epoch,
            instance,
            buffer,
            state,
            last_input: SignalList::default(),
            last_output: SignalList::default(),
        }
    }
}

/// Work a call asked for that runs after the call returns.
pub(crate) enum Deferred {
    ForceSignalUpdate,
    Delay(Duration, DelayedCall),
}

impl Block {
    pub(crate) fn new(
        id: String,
        index: usize,
        plugin: Arc<Plugin>,
        instance: BlockInstance,
        buffer: Option<BlockBuffer>,
        events: Arc<EventBus>,
    ) -> Self {
        let buffer = buffer.map(Arc::new);
        let cell = BlockCell::new(plugin.clone(), 0, instance, buffer.clone());
        Block {
            id,
            index,
            plugin: RwLock::new(plugin),
            cell: RwLock::new(Arc::new(Mutex::new(cell))),
            cell_version: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            hung: Mutex::new(None),
            fault: Mutex::new(None),
            is_hung: AtomicBool::new(false),
            buffer: RwLock::new(buffer),
            events,
        }
    }

    /// The plugin of this block's type now.
    pub fn plugin(&self) -> Arc<Plugin> {
        self.plugin.read().clone()
    }

    /// The machine of this block's type now.
    pub fn machine(&self) -> Arc<Machine> {
        self.plugin.read().machine.clone()
    }

    /// Its device buffer now, when its plugin ships a catalog.
    pub fn buffer(&self) -> Option<Arc<BlockBuffer>> {
        self.buffer.read().clone()
    }

    /// Points the block at its new buffer (a swap changed its type).
    pub(crate) fn set_buffer(&self, buffer: Option<Arc<BlockBuffer>>) {
        *self.buffer.write() = buffer;
    }

    /// The block's cell now (a hung block's may be held forever).
    #[inline]
    pub(crate) fn cell(&self) -> Arc<Mutex<BlockCell>> {
        self.cell.read().clone()
    }

    /// Locks the block's cell if it is free now, under the read lock of
    /// the cell's slot (the pulse path: one `Arc` clone, for the guard,
    /// instead of two).
    #[inline]
    pub(crate) fn try_lock_cell(&self) -> Option<CellGuard> {
        self.cell.read().try_lock_arc()
    }

    /// Locks the block's cell if it is free now and the block is not hung,
    /// through `cache` (the driver's copy of the cell's slot, refreshed when
    /// the slot changed): no lock on the slot and no reference count on the
    /// pulse path. `None`: take [`Block::cell`]'s way.
    #[inline]
    pub(crate) fn try_lock_cached<'c>(
        &self,
        cache: &'c mut Option<(u64, Arc<Mutex<BlockCell>>)>,
    ) -> Option<MutexGuard<'c, BlockCell>> {
        if self.is_hung.load(Ordering::Acquire) {
            return None;
        }
        let version = self.cell_version.load(Ordering::Acquire);
        if cache.as_ref().is_none_or(|(v, _)| *v != version) {
            *cache = Some((version, self.cell()));
        }
        let (_, cell) = cache.as_ref().expect("just filled");
        let guard = cell.try_lock()?;
        // Replaced since the version was read: the cached cell is not the
        // block's any more.
        (self.cell_version.load(Ordering::Acquire) == version).then_some(guard)
    }

    /// The block's swap epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Points the block at `plugin` after a swap committed its cell.
    pub(crate) fn set_plugin(&self, plugin: Arc<Plugin>, epoch: u64) {
        *self.plugin.write() = plugin;
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Replaces the cell of a hung block (its old cell stays with the
    /// thread stuck in it) and clears the hang.
    pub(crate) fn replace_cell(&self, cell: BlockCell) {
        *self.cell.write() = Arc::new(Mutex::new(cell));
        self.cell_version.fetch_add(1, Ordering::AcqRel);
        *self.hung.lock() = None;
        self.is_hung.store(false, Ordering::Release);
    }

    /// Forgets a fault (a swap replaced the block's code).
    pub(crate) fn clear_fault(&self) {
        *self.fault.lock() = None;
    }

    /// Runs `call` on the locked cell with a subcontroller; applies the FSM
    /// state the call left and returns the deferred work it asked for.
    pub(crate) fn call<R>(
        &self,
        cell: &mut BlockCell,
        call: impl FnOnce(&mut BlockInstance, &dyn BlockHost) -> R,
    ) -> (R, Vec<Deferred>) {
        let BlockCell {
            plugin,
            instance,
            state,
            epoch,
            buffer,
            ..
        } = cell;
        let ctx = CallCtx {
            block: self,
            plugin,
            buffer: buffer.as_deref(),
            state: Cell::new(*state),
            deferred: RefCell::new(Vec::new()),
        };
        let result = call(instance, &ctx);
        *state = ctx.state.get();
        if self.is_hung.load(Ordering::Acquire) && *epoch == self.epoch() {
            // Calls on a hung block are refused before they start, so this
            // is the call it was declared hung for, returning after all (on
            // the block's current cell: a swap did not replace it meanwhile).
            self.recovered("its handler returned");
        }
        (result, ctx.deferred.into_inner())
    }

    /// Marks the block faulted: its FAULT state when its machine has one.
    pub(crate) fn fault(&self, cell: &mut BlockCell, what: &str, err: &PluginError) {
        let reason = format!("{what} failed: {err}");
        tracing::error!(block = %self.id, "{reason}; the block is marked faulted");
        let machine = &cell.plugin.machine;
        if let Some(fault) = machine.state_id("FAULT") {
            let from = cell.state;
            cell.state = fault;
            if from != fault {
                emit_transition(
                    &self.events,
                    self.index,
                    &self.id,
                    machine,
                    from,
                    fault,
                    None,
                );
            }
        }
        self.events.emit(EventKind::Fault, Some(self.index), || {
            (
                Some(self.id.clone()),
                EventData::Reason {
                    reason: reason.clone(),
                },
            )
        });
        *self.fault.lock() = Some(reason);
    }

    /// Why the block faulted, if it did.
    pub fn fault_reason(&self) -> Option<String> {
        self.fault.lock().clone()
    }

    /// Why the block is hung, if it is.
    #[inline]
    pub fn hung_reason(&self) -> Option<String> {
        if !self.is_hung.load(Ordering::Acquire) {
            return None;
        }
        self.hung.lock().as_ref().map(|(reason, _)| reason.clone())
    }

    /// Marks the block hung: it gets no more events, calls on it fail,
    /// until the call that hung returns ([`Block::call`] then makes it
    /// healthy again). A call that returned just before is noticed here.
    pub(crate) fn set_hung(&self, reason: String) {
        // The watchdog and a route's timeout may both notice one hang:
        // listeners hear of it once.
        let mut hung = self.hung.lock();
        if hung.is_none() {
            self.events.emit(EventKind::Hang, Some(self.index), || {
                (
                    Some(self.id.clone()),
                    EventData::Reason {
                        reason: reason.clone(),
                    },
                )
            });
        }
        *hung = Some((reason, Instant::now()));
        drop(hung);
        self.is_hung.store(true, Ordering::Release);
        if let Some(_cell) = self.cell().try_lock() {
            // Nothing holds the block: the call returned before it was
            // declared hung.
            self.recovered("its handler had returned as it was declared hung");
        }
    }

    /// Clears the hung mark (the call that hung has returned: the caller
    /// holds the cell it held), logging how long the block was hung.
    pub(crate) fn recovered(&self, how: &str) {
        let Some((reason, since)) = self.hung.lock().take() else {
            return;
        };
        self.is_hung.store(false, Ordering::Release);
        let hung_for = since.elapsed().as_secs_f64();
        self.events.emit(EventKind::Recovery, Some(self.index), || {
            (
                Some(self.id.clone()),
                EventData::Reason {
                    reason: format!("recovered after {hung_for:.1} s hung: {how}"),
                },
            )
        });
        tracing::warn!(
            block = %self.id,
            "block {} recovered after {:.1} s hung: {how}; it receives events again (it was \
             hung because {reason})",
            self.id,
            hung_for
        );
    }
}

/// Emits a state change of block `index` (and a recovery when it leaves
/// `FAULT`).
fn emit_transition(
    events: &EventBus,
    index: usize,
    block_id: &str,
    machine: &Machine,
    from: StateId,
    to: StateId,
    trigger: Option<&str>,
) {
    if !events.has_listeners() {
        return;
    }
    let data = || EventData::Transition {
        from: machine.state_name(from).to_owned(),
        to: machine.state_name(to).to_owned(),
        trigger: trigger.map(str::to_owned),
    };
    events.emit(EventKind::State, Some(index), || {
        (Some(block_id.to_owned()), data())
    });
    if machine.state_id("FAULT") == Some(from) {
        events.emit(EventKind::Recovery, Some(index), || {
            (Some(block_id.to_owned()), data())
        });
    }
}

/// The host's side of one call: what the plugin's subcontroller reaches.
struct CallCtx<'a> {
    /// The block being called (building a context per call stays cheap on
    /// the pulse path: two pointers).
    block: &'a Block,
    /// The plugin whose code the call runs (the cell's: a swap may have
    /// moved the block on meanwhile).
    plugin: &'a Plugin,
    /// The cell's buffer (the layout the call's code knows).
    buffer: Option<&'a BlockBuffer>,
    state: Cell<StateId>,
    deferred: RefCell<Vec<Deferred>>,
}

impl BlockHost for CallCtx<'_> {
    fn block_id(&self) -> &str {
        &self.block.id
    }

    fn state_name(&self) -> String {
        self.plugin.machine.state_name(self.state.get()).to_owned()
    }

    fn trigger(
        &self,
        trigger: &str,
        args: &ValueMap,
        mode: TriggerMode,
    ) -> Result<bool, TriggerFailure> {
        let machine = &self.plugin.machine;
        let components = &self.plugin.components;
        let mut eval = |id: u32, args: &ValueMap| components.eval_condition(id, args);
        let from = self.state.get();
        match machine.fire(from, trigger, args, mode, &mut eval) {
            Ok(outcome) => {
                if outcome.fired && mode != TriggerMode::MayTrigger && outcome.to != from {
                    tracing::debug!(
                        block = self.block.id.as_str(),
                        trigger,
                        "{} -> {}",
                        machine.state_name(from),
                        machine.state_name(outcome.to)
                    );
                }
                if mode != TriggerMode::MayTrigger && outcome.fired {
                    self.state.set(outcome.to);
                    if outcome.to != from {
                        emit_transition(
                            &self.block.events,
                            self.block.index,
                            &self.block.id,
                            machine,
                            from,
                            outcome.to,
                            Some(trigger),
                        );
                    }
                }
                Ok(outcome.fired)
            }
            Err(failure) => {
                if failure.kind == TriggerFailureKind::ConditionFailed {
                    tracing::error!(block = self.block.id.as_str(), "{}", failure.message);
                }
                Err(failure)
            }
        }
    }

    fn force_signal_update(&self) {
        self.deferred.borrow_mut().push(Deferred::ForceSignalUpdate);
    }

    fn delay_action(&self, delay: Duration, action: DelayedCall) {
        self.deferred
            .borrow_mut()
            .push(Deferred::Delay(delay, action));
    }

    fn buffer(&self) -> Option<(*mut u8, usize)> {
        self.buffer.map(BlockBuffer::region)
    }
}
