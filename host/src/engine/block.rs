//! One block instance and the host side of its subcontroller.
//!
//! A block's mutable state (the plugin's instance, its FSM state, its last
//! signal lists, its fault) sits behind one mutex: holding it is what makes
//! calls on a block serial. During a call the plugin reaches back through a
//! [`CallCtx`]; work that would re-enter the block (`force_signal_update`,
//! `delay_action`) is recorded and done after the call returns.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RDuration, RResult, RStr, RString};
use bitstream_sdk::ffi::{
    BufferRegion, DelayedAction, FfiResult, LogLevel, PluginError, PluginErrorKind,
    SubcontrollerFfi, SubcontrollerVTable, SubcontrollerVTableRef, TriggerFailure,
    TriggerFailureKind, TriggerMode,
};
use bitstream_sdk::ValueMap;
use parking_lot::Mutex;

use crate::buffers::BlockBuffer;
use crate::fsm::{Machine, StateId};
use crate::plugin::{BlockInstance, Plugin};

pub use super::signal::SignalList;

/// One block of the bitstream.
pub struct Block {
    /// Its id in the config (and URL).
    pub id: String,
    /// Its position in the config.
    pub index: usize,
    /// The plugin of its type.
    pub plugin: Arc<Plugin>,
    pub(crate) cell: Mutex<BlockCell>,
    /// Set when one of its handlers did not return in time; the thread that
    /// ran it may still hold `cell`. `is_hung` is the fast check.
    hung: Mutex<Option<String>>,
    is_hung: AtomicBool,
    /// Its device buffer, when its plugin ships a catalog. Declared after
    /// `cell`, so the plugin's instance (which may hold a handle to the
    /// buffer) is dropped first.
    pub buffer: Option<BlockBuffer>,
}

/// What one call on a block may change.
pub(crate) struct BlockCell {
    pub instance: BlockInstance,
    pub state: StateId,
    /// The last signal-update list it received.
    pub last_input: SignalList,
    /// The list it last sent downstream.
    pub last_output: SignalList,
    /// Why it faulted, if it did.
    pub fault: Option<String>,
}

/// Work a call asked for that runs after the call returns.
pub(crate) enum Deferred {
    ForceSignalUpdate,
    Delay(Duration, PendingAction),
}

impl Block {
    pub(crate) fn new(
        id: String,
        index: usize,
        plugin: Arc<Plugin>,
        instance: BlockInstance,
        buffer: Option<BlockBuffer>,
    ) -> Self {
        let state = plugin.machine.initial();
        let empty = SignalList::default();
        Block {
            id,
            index,
            plugin,
            cell: Mutex::new(BlockCell {
                instance,
                state,
                last_input: empty.clone(),
                last_output: empty,
                fault: None,
            }),
            hung: Mutex::new(None),
            is_hung: AtomicBool::new(false),
            buffer,
        }
    }

    /// The machine of this block's type.
    pub fn machine(&self) -> &Machine {
        &self.plugin.machine
    }

    /// Runs `call` on the locked cell with a subcontroller; applies the FSM
    /// state the call left and returns the deferred work it asked for.
    pub(crate) fn call<R>(
        &self,
        cell: &mut BlockCell,
        call: impl FnOnce(&mut BlockInstance, &SubcontrollerFfi) -> R,
    ) -> (R, Vec<Deferred>) {
        let ctx = CallCtx {
            block_id: &self.id,
            plugin: &self.plugin,
            buffer: self.buffer.as_ref(),
            state: Cell::new(cell.state),
            deferred: RefCell::new(Vec::new()),
        };
        let ffi = ctx.ffi();
        let result = call(&mut cell.instance, &ffi);
        cell.state = ctx.state.get();
        (result, ctx.deferred.into_inner())
    }

    /// Marks the block faulted: its FAULT state when its machine has one.
    pub(crate) fn fault(&self, cell: &mut BlockCell, what: &str, err: &PluginError) {
        let reason = format!("{what} failed: {err}");
        tracing::error!(block = %self.id, "{reason}; the block is marked faulted");
        if let Some(fault) = self.plugin.machine.state_id("FAULT") {
            cell.state = fault;
        }
        cell.fault = Some(reason);
    }

    /// Why the block is hung, if it is.
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

/// Whether an error from plugin code should fault the block: panics and
/// server errors do; a route's 4xx answer is a normal reply.
pub(crate) fn is_fault(err: &PluginError) -> bool {
    err.kind == PluginErrorKind::Panicked || err.status >= 500
}

/// A plugin's delayed closure held by the host; discarded if never run.
pub(crate) struct PendingAction(Option<DelayedAction>);

// SAFETY: the SDK only builds a `DelayedAction` from a `Send` closure
// (`Subcontroller::delay_action` requires `Send + 'static`), and the host
// runs or discards it exactly once.
unsafe impl Send for PendingAction {}

impl PendingAction {
    /// Runs the action on `instance` and consumes it.
    pub(crate) fn run(
        mut self,
        instance: &mut BlockInstance,
        ctx: &SubcontrollerFfi,
    ) -> Result<(), PluginError> {
        let action = self
            .0
            .take()
            .expect("a PendingAction holds its action until run or dropped");
        (action.run)(action.data, instance.ptr(), ctx).into_result()
    }
}

impl Drop for PendingAction {
    fn drop(&mut self) {
        if let Some(action) = self.0.take() {
            (action.discard)(action.data);
        }
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

static HOST_VTABLE: LazyLock<SubcontrollerVTableRef> = LazyLock::new(|| {
    SubcontrollerVTable {
        get_state,
        trigger,
        force_signal_update,
        delay_action,
        log,
        buffer,
    }
    .leak_into_prefix()
});

impl CallCtx<'_> {
    fn ffi(&self) -> SubcontrollerFfi {
        SubcontrollerFfi {
            context: (self as *const Self).cast(),
            vtable: *HOST_VTABLE,
        }
    }
}

/// # Safety
/// `context` must be the `CallCtx` that `CallCtx::ffi` stored, which lives
/// for the whole plugin call that passes it back.
unsafe fn ctx<'a>(context: *const c_void) -> &'a CallCtx<'a> {
    // SAFETY: guaranteed by the caller, see above.
    unsafe { &*context.cast::<CallCtx<'a>>() }
}

/// Runs host code called from a plugin, so that a host bug cannot unwind
/// into plugin frames.
fn host_guard<T>(fallback: impl FnOnce(String) -> T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".to_owned());
        tracing::error!("host panicked in a subcontroller call: {message}");
        fallback(message)
    })
}

extern "C" fn get_state(context: *const c_void) -> RString {
    host_guard(RString::from, || {
        // SAFETY: the host passes its own CallCtx as context (see `ctx`).
        let ctx = unsafe { ctx(context) };
        RString::from(ctx.plugin.machine.state_name(ctx.state.get()))
    })
}

extern "C" fn trigger(
    context: *const c_void,
    trigger: RStr<'_>,
    args: &ValueMap,
    mode: TriggerMode,
) -> RResult<bool, TriggerFailure> {
    host_guard(
        |message| {
            RResult::RErr(TriggerFailure {
                kind: TriggerFailureKind::ConditionFailed,
                message: RString::from(message),
            })
        },
        || {
            // SAFETY: the host passes its own CallCtx as context (see `ctx`).
            let ctx = unsafe { ctx(context) };
            let machine = &ctx.plugin.machine;
            let eval_condition = ctx.plugin.components.state_machine.eval_condition();
            let mut eval = |id: u32, args: &ValueMap| eval_condition(id, args).into_result();
            let from = ctx.state.get();
            let outcome = machine.fire(from, trigger.as_str(), args, mode, &mut eval);
            match outcome {
                Ok(outcome) => {
                    if outcome.fired && mode != TriggerMode::MayTrigger && outcome.to != from {
                        tracing::debug!(
                            block = ctx.block_id,
                            trigger = trigger.as_str(),
                            "{} -> {}",
                            machine.state_name(from),
                            machine.state_name(outcome.to)
                        );
                    }
                    if mode != TriggerMode::MayTrigger && outcome.fired {
                        ctx.state.set(outcome.to);
                    }
                    RResult::ROk(outcome.fired)
                }
                Err(failure) => {
                    if failure.kind == TriggerFailureKind::ConditionFailed {
                        tracing::error!(block = ctx.block_id, "{}", failure.message);
                    }
                    RResult::RErr(failure)
                }
            }
        },
    )
}

extern "C" fn force_signal_update(context: *const c_void) -> FfiResult<()> {
    host_guard(
        |message| RResult::RErr(PluginError::failed(500, message)),
        || {
            // SAFETY: the host passes its own CallCtx as context (see `ctx`).
            let ctx = unsafe { ctx(context) };
            ctx.deferred.borrow_mut().push(Deferred::ForceSignalUpdate);
            RResult::ROk(())
        },
    )
}

extern "C" fn delay_action(
    context: *const c_void,
    delay: RDuration,
    action: DelayedAction,
) -> FfiResult<()> {
    // Owned from here on: dropped (discarded) if anything below fails.
    let action = PendingAction(Some(action));
    host_guard(
        |message| RResult::RErr(PluginError::failed(500, message)),
        move || {
            // SAFETY: the host passes its own CallCtx as context (see `ctx`).
            let ctx = unsafe { ctx(context) };
            ctx.deferred
                .borrow_mut()
                .push(Deferred::Delay(delay.into(), action));
            RResult::ROk(())
        },
    )
}

extern "C" fn log(context: *const c_void, level: LogLevel, message: RStr<'_>) {
    host_guard(drop, || {
        // SAFETY: the host passes its own CallCtx as context (see `ctx`).
        let block = unsafe { ctx(context) }.block_id;
        let message = message.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(target: "plugin", block, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", block, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", block, "{message}"),
            LogLevel::Warning => tracing::warn!(target: "plugin", block, "{message}"),
            LogLevel::Error => tracing::error!(target: "plugin", block, "{message}"),
            LogLevel::Critical => {
                tracing::error!(target: "plugin", block, critical = true, "CRITICAL: {message}")
            }
        }
    })
}

extern "C" fn buffer(context: *const c_void) -> BufferRegion {
    host_guard(
        |_| BufferRegion::NONE,
        || {
            // SAFETY: the host passes its own CallCtx as context (see `ctx`).
            let ctx = unsafe { ctx(context) };
            ctx.buffer.map_or(BufferRegion::NONE, BlockBuffer::region)
        },
    )
}
