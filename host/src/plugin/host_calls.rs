//! The host's side of the subcontroller: the functions plugin code calls
//! back during a call on one of its blocks, over [`BlockHost`].
//!
//! The plugin receives a `SubcontrollerFfi` whose context points at the
//! caller's `&dyn BlockHost` and whose table holds the `extern "C"`
//! functions below. Each of them runs inside [`host_guard`], so a host bug
//! never unwinds into plugin frames.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::LazyLock;
use std::time::Duration;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RDuration, RResult, RStr, RString};
use bitstream_sdk::ffi::{
    self, BufferRegion, FfiResult, HostExtensions, HostExtensionsRef, SubcontrollerFfi,
    SubcontrollerVTable, SubcontrollerVTableRef,
};
use bitstream_sdk::ValueMap;

use crate::model::{LogLevel, PluginError, TriggerFailure, TriggerFailureKind, TriggerMode};

/// What plugin code can ask of the host while one of its calls on a block
/// runs. The engine implements it for the block being called.
pub trait BlockHost {
    /// The block's id, for log lines.
    fn block_id(&self) -> &str;
    /// The block's current state.
    fn state_name(&self) -> String;
    /// Fires, tests or conditionally fires `trigger`; answers whether it
    /// fired (would fire, for [`TriggerMode::MayTrigger`]).
    fn trigger(
        &self,
        trigger: &str,
        args: &ValueMap,
        mode: TriggerMode,
    ) -> Result<bool, TriggerFailure>;
    /// Asks for the block's signal-update handler to run again on its last
    /// input once the call returns, and the result to go downstream.
    fn force_signal_update(&self);
    /// Asks for `action` to run on the block after `delay`.
    fn delay_action(&self, delay: Duration, action: DelayedCall);
    /// The block's device-buffer segment, if it has one: its first byte and
    /// its length. It stays mapped for as long as the block exists.
    fn buffer(&self) -> Option<(*mut u8, usize)>;
    /// Logs a message from the block's plugin code.
    fn log(&self, level: LogLevel, message: &str) {
        let block = self.block_id();
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
    }
}

/// A plugin's delayed closure held by the host: run once on its block with
/// [`super::BlockInstance::run_delayed`], or discarded when dropped.
pub struct DelayedCall(pub(super) Option<ffi::DelayedAction>);

// SAFETY: the SDK only builds a `DelayedAction` from a `Send` closure
// (`Subcontroller::delay_action` requires `Send + 'static`), and the host
// runs or discards it exactly once.
unsafe impl Send for DelayedCall {}

impl Drop for DelayedCall {
    fn drop(&mut self) {
        if let Some(action) = self.0.take() {
            (action.discard)(action.data);
        }
    }
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

/// The host functions added after SDK 1.1, handed to each plugin that
/// takes them once it is loaded (see `bitstream_sdk::ffi::HostExtensions`).
pub(super) static HOST_EXTENSIONS: LazyLock<HostExtensionsRef> = LazyLock::new(|| {
    HostExtensions {
        block_id,
        check_json,
    }
    .leak_into_prefix()
});

/// Runs `call` with a subcontroller that reaches `host`.
pub(super) fn with_subcontroller<R>(
    host: &dyn BlockHost,
    call: impl FnOnce(&SubcontrollerFfi) -> R,
) -> R {
    let host_ref: &dyn BlockHost = host;
    let ffi = SubcontrollerFfi {
        context: (&host_ref as *const &dyn BlockHost).cast(),
        vtable: *HOST_VTABLE,
    };
    call(&ffi)
}

/// # Safety
/// `context` must be the pointer [`with_subcontroller`] stored, which is
/// valid for the whole plugin call that passes it back.
unsafe fn host<'a>(context: *const c_void) -> &'a dyn BlockHost {
    // SAFETY: guaranteed by the caller, see above.
    unsafe { *context.cast::<&'a dyn BlockHost>() }
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
        // SAFETY: the host passes its own context (see `with_subcontroller`).
        RString::from(unsafe { host(context) }.state_name())
    })
}

extern "C" fn trigger(
    context: *const c_void,
    trigger: RStr<'_>,
    args: &ValueMap,
    mode: ffi::TriggerMode,
) -> RResult<bool, ffi::TriggerFailure> {
    host_guard(
        |message| {
            RResult::RErr(
                TriggerFailure {
                    kind: TriggerFailureKind::ConditionFailed,
                    message,
                }
                .into(),
            )
        },
        || {
            // SAFETY: the host passes its own context (see `with_subcontroller`).
            let host = unsafe { host(context) };
            match host.trigger(trigger.as_str(), args, mode.into()) {
                Ok(fired) => RResult::ROk(fired),
                Err(failure) => RResult::RErr(failure.into()),
            }
        },
    )
}

extern "C" fn force_signal_update(context: *const c_void) -> FfiResult<()> {
    host_guard(
        |message| RResult::RErr(PluginError::failed(500, message).into()),
        || {
            // SAFETY: the host passes its own context (see `with_subcontroller`).
            unsafe { host(context) }.force_signal_update();
            RResult::ROk(())
        },
    )
}

extern "C" fn delay_action(
    context: *const c_void,
    delay: RDuration,
    action: ffi::DelayedAction,
) -> FfiResult<()> {
    // Owned from here on: dropped (discarded) if anything below fails.
    let action = DelayedCall(Some(action));
    host_guard(
        |message| RResult::RErr(PluginError::failed(500, message).into()),
        move || {
            // SAFETY: the host passes its own context (see `with_subcontroller`).
            unsafe { host(context) }.delay_action(delay.into(), action);
            RResult::ROk(())
        },
    )
}

extern "C" fn log(context: *const c_void, level: ffi::LogLevel, message: RStr<'_>) {
    host_guard(drop, || {
        // SAFETY: the host passes its own context (see `with_subcontroller`).
        unsafe { host(context) }.log(level.into(), message.as_str());
    })
}

extern "C" fn buffer(context: *const c_void) -> BufferRegion {
    host_guard(
        |_| BufferRegion::NONE,
        || {
            // SAFETY: the host passes its own context (see `with_subcontroller`).
            match unsafe { host(context) }.buffer() {
                Some((base, len)) => BufferRegion { base, len },
                None => BufferRegion::NONE,
            }
        },
    )
}

extern "C" fn block_id(context: *const c_void) -> RString {
    host_guard(
        |_| RString::new(),
        // SAFETY: `context` is the `&dyn BlockHost` that `with_subcontroller`
        // lent for the duration of the call into the plugin.
        || RString::from(unsafe { host(context) }.block_id()),
    )
}

extern "C" fn check_json(
    _context: *const c_void,
    schema: &bitstream_sdk::Value,
    value: &bitstream_sdk::Value,
) -> RResult<(), RString> {
    host_guard(
        |message| RResult::RErr(RString::from(message)),
        || match crate::route::check_value(schema, value) {
            Ok(()) => RResult::ROk(()),
            Err(message) => RResult::RErr(RString::from(message)),
        },
    )
}
