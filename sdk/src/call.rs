//! What the plugin call running on this thread has set: how many panic
//! guards are open (the runtime's panic hook stays quiet inside one) and
//! which block's subcontroller receives `log` records (the logger reads
//! it).
//!
//! Both live in one thread-local, so that an entry point looks it up once
//! on the way in and once on the way out: in a `cdylib` each lookup is a
//! call into the dynamic linker, and this runs around every handler.

use std::cell::Cell;
use std::ptr::NonNull;

use abi_stable::std_types::{RStr, RString};

use crate::ffi::{LogLevel, SubcontrollerFfi};
use crate::value::Value;

/// The subcontroller of the block whose call runs: the host's handle,
/// borrowed by the plugin's entry point for the whole call.
#[derive(Clone, Copy)]
pub(crate) struct BlockLog(NonNull<SubcontrollerFfi>);

impl BlockLog {
    /// The block of a call that carries `ctx`.
    #[inline]
    pub(crate) fn of(ctx: &SubcontrollerFfi) -> BlockLog {
        BlockLog(NonNull::from(ctx))
    }

    /// Hands `message` to the host's `log`, tagged with the block.
    pub(crate) fn log(self, level: LogLevel, message: &str) {
        // SAFETY: a `BlockLog` is current only between `enter` and `leave`
        // in the entry point that borrowed the `SubcontrollerFfi` for the
        // whole call (`runtime::guard_block`), and only on its thread.
        let ctx = unsafe { self.0.as_ref() };
        (ctx.vtable.log())(ctx.context, level, RStr::from(message));
    }

    /// Asks the host to check `value` against `schema`; `None` when the
    /// host handed over no validator (an SDK 1.1 host, or no host).
    pub(crate) fn check_json(self, schema: &Value, value: &Value) -> Option<Result<(), String>> {
        // SAFETY: as in `log`: the `SubcontrollerFfi` is borrowed by the
        // running entry point for the whole call, on this thread.
        let ctx = unsafe { self.0.as_ref() };
        let check = crate::runtime::host_extensions()?.check_json()?;
        Some(
            check(ctx.context, schema, value)
                .into_result()
                .map_err(RString::into_string),
        )
    }
}

/// The thread's state of the running call.
struct Call {
    /// Open guards.
    depth: Cell<u32>,
    /// The block whose call runs, if any.
    block: Cell<Option<BlockLog>>,
}

thread_local! {
    static CALL: Call = const {
        Call {
            depth: Cell::new(0),
            block: Cell::new(None),
        }
    };
}

/// What [`leave`] puts back.
#[must_use = "pass it to `leave`"]
pub(crate) struct Entered {
    /// The block before [`enter`], when it set one.
    previous: Option<Option<BlockLog>>,
}

/// Opens a guard and, with `Some(block)`, makes `block` the current one
/// (with `None` the current block stays: a call nested in a block's call,
/// such as a condition the host evaluates during a trigger, is still that
/// block's).
#[inline]
pub(crate) fn enter(block: Option<BlockLog>) -> Entered {
    let previous = CALL.try_with(|call| {
        call.depth.set(call.depth.get() + 1);
        block.map(|block| call.block.replace(Some(block)))
    });
    Entered {
        previous: previous.ok().flatten(),
    }
}

/// Closes the guard [`enter`] opened and puts the previous block back.
#[inline]
pub(crate) fn leave(entered: Entered) {
    let _ = CALL.try_with(|call| {
        call.depth.set(call.depth.get().saturating_sub(1));
        if let Some(previous) = entered.previous {
            call.block.set(previous);
        }
    });
}

/// Whether a guard is open on this thread.
pub(crate) fn in_guard() -> bool {
    CALL.try_with(|call| call.depth.get() > 0).unwrap_or(false)
}

/// The block whose call runs on this thread, if any.
pub(crate) fn current_block() -> Option<BlockLog> {
    CALL.try_with(|call| call.block.get()).ok().flatten()
}
