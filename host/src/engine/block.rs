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
use std::time::Duration;

use bitstream_sdk::ValueMap;
use parking_lot::{ArcMutexGuard, Mutex, RawMutex, RwLock};

use super::block_buffer::BlockBuffer;
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
    /// Bumped by every swap of the block; delayed actions carry the value
    /// they were scheduled under and are dropped when it changed.
    epoch: AtomicU64,
    /// Set when one of its handlers did not return in time; the thread that
    /// ran it may still hold `cell`. `is_hung` is the fast check.
    hung: Mutex<Option<String>>,
    /// Why it faulted, if it did; outside `cell`, so it can be read while
    /// another call holds the block.
    fault: Mutex<Option<String>>,
    is_hung: AtomicBool,
    /// Its device buffer, when its plugin ships a catalog. Declared after
    /// `cell`, so the plugin's instance (which may hold a handle to the
    /// buffer) is dropped first.
    pub buffer: Option<BlockBuffer>,
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
    pub state: StateId,
    /// The last signal-update list it received.
    pub last_input: SignalList,
    /// The list it last sent downstream.
    pub last_output: SignalList,
}

impl BlockCell {
    /// A fresh cell for `instance` of `plugin`, in the machine's initial state.
    pub(crate) fn new(plugin: Arc<Plugin>, epoch: u64, instance: BlockInstance) -> Self {
        let state = plugin.machine.initial();
        BlockCell {
            plugin,
            epoch,
            instance,
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
    ) -> Self {
        let cell = BlockCell::new(plugin.clone(), 0, instance);
        Block {
            id,
            index,
            plugin: RwLock::new(plugin),
            cell: RwLock::new(Arc::new(Mutex::new(cell))),
            epoch: AtomicU64::new(0),
            hung: Mutex::new(None),
            fault: Mutex::new(None),
            is_hung: AtomicBool::new(false),
            buffer,
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

    /// The block's cell now (a hung block's may be held forever).
    #[inline]
    pub(crate) fn cell(&self) -> Arc<Mutex<BlockCell>> {
        self.cell.read().clone()
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
            ..
        } = cell;
        let ctx = CallCtx {
            block_id: &self.id,
            plugin,
            buffer: self.buffer.as_ref(),
            state: Cell::new(*state),
            deferred: RefCell::new(Vec::new()),
        };
        let result = call(instance, &ctx);
        *state = ctx.state.get();
        (result, ctx.deferred.into_inner())
    }

    /// Marks the block faulted: its FAULT state when its machine has one.
    pub(crate) fn fault(&self, cell: &mut BlockCell, what: &str, err: &PluginError) {
        let reason = format!("{what} failed: {err}");
        tracing::error!(block = %self.id, "{reason}; the block is marked faulted");
        if let Some(fault) = cell.plugin.machine.state_id("FAULT") {
            cell.state = fault;
        }
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
        self.hung.lock().clone()
    }

    /// Marks the block hung: it gets no more events, calls on it fail.
    pub(crate) fn set_hung(&self, reason: String) {
        *self.hung.lock() = Some(reason);
        self.is_hung.store(true, Ordering::Release);
    }
}

/// The host's side of one call: what the plugin's subcontroller reaches.
struct CallCtx<'a> {
    block_id: &'a str,
    plugin: &'a Plugin,
    buffer: Option<&'a BlockBuffer>,
    state: Cell<StateId>,
    deferred: RefCell<Vec<Deferred>>,
}

impl BlockHost for CallCtx<'_> {
    fn block_id(&self) -> &str {
        self.block_id
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
                        block = self.block_id,
                        trigger,
                        "{} -> {}",
                        machine.state_name(from),
                        machine.state_name(outcome.to)
                    );
                }
                if mode != TriggerMode::MayTrigger && outcome.fired {
                    self.state.set(outcome.to);
                }
                Ok(outcome.fired)
            }
            Err(failure) => {
                if failure.kind == TriggerFailureKind::ConditionFailed {
                    tracing::error!(block = self.block_id, "{}", failure.message);
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
