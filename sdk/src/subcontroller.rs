//! The subcontroller: the per-block handle every route and handler receives.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::time::Duration;

use abi_stable::std_types::{RDuration, RStr};

use crate::error::{Error, TriggerError};
use crate::ffi::{BlockPtr, DelayedAction, FfiResult, LogLevel, SubcontrollerFfi, TriggerMode};
use crate::runtime::{guard, guard_block};
use crate::value::ValueMap;
use crate::IpBlock;

/// A delayed action: runs later on the block's own executor.
type DelayedFn<B> = Box<dyn FnOnce(&mut B, &Subcontroller<'_, B>) -> Result<(), Error> + Send>;

/// The block's handle to the engine: its state machine, the signal chain,
/// delayed work and logging.
///
/// ```
/// use std::time::Duration;
/// use bitstream_sdk::prelude::*;
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Ethernet { rx_loopback: bool }
///
/// let api = Api::<Ethernet>::new()
///     .route(Route::post("start", |_block: &mut Ethernet, ctx, _req| {
///         if !ctx.may_trigger("START", ()) {
///             return Err(Error::conflict(format!("Cannot start while in state {}", ctx.get_state())));
///         }
///         ctx.trigger("START", ())?;
///         ctx.force_signal_update()?; // reach LINK without waiting for the next pulse
///         ctx.log_info("started");
///         Ok(Response::ok())
///     }))
///     .route(Route::post("reset_later", |_block: &mut Ethernet, ctx, _req| {
///         ctx.delay_action(Duration::from_millis(500), |block: &mut Ethernet, ctx| {
///             block.rx_loopback = false;
///             ctx.trigger_if_allowed("RESET", ());
///             Ok(())
///         })?;
///         Ok(Response::accepted())
///     }));
/// assert_eq!(api.describe().len(), 2);
/// ```
///
/// The engine never runs two calls for one block at the same time, and it
/// never calls back into the block while one of its handlers runs:
/// [`force_signal_update`](Self::force_signal_update) and
/// [`delay_action`](Self::delay_action) are queued on the block's executor
/// and run after the current call returns.
pub struct Subcontroller<'a, B> {
    ffi: &'a SubcontrollerFfi,
    _block: PhantomData<fn(&mut B)>,
}

impl<'a, B: IpBlock> Subcontroller<'a, B> {
    /// Wraps the host's handle.
    pub fn new(ffi: &'a SubcontrollerFfi) -> Self {
        Subcontroller {
            ffi,
            _block: PhantomData,
        }
    }

    /// The block's device buffer: its parameters in the layout of the
    /// catalog the plugin ships (`catalog.json` in its emulator folder, or
    /// `catalog:` in [`export_plugin!`](crate::export_plugin)), shared with
    /// the host's HTTP API and with other processes.
    ///
    /// The handle borrows the host's mapping: use it during the call (or
    /// keep it in the block, which the host drops before the buffer).
    ///
    /// ```
    /// use bitstream_sdk::prelude::*;
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Meter;
    ///
    /// let api = Api::<Meter>::new().route(Route::post("sample", |_block: &mut Meter, ctx, _req| {
    ///     let buffer = ctx.buffer()?;
    ///     buffer.set("power", 0.75)?;
    ///     Ok(Response::json(&buffer.to_json()?))
    /// }));
    /// # assert_eq!(api.describe().len(), 1);
    /// ```
    ///
    /// Needs the SDK's `buffer` feature (on by default).
    #[cfg(feature = "buffer")]
    pub fn buffer(
        &self,
    ) -> Result<crate::buffer::device::Buffer, crate::buffer::device::BufferError> {
        use crate::buffer::device::{Buffer, BufferError};
        let Some(buffer) = self.ffi.vtable.buffer() else {
            return Err(BufferError::Unavailable {
                reason: "this host predates SDK 1.1 and offers no device buffers".to_owned(),
            });
        };
        let region = buffer(self.ffi.context);
        if region.len == 0 || region.base.is_null() {
            return Err(BufferError::Unavailable {
                reason: "the block's plugin ships no catalog: put catalog.json beside the \
                         library or declare `catalog:` in export_plugin!"
                    .to_owned(),
            });
        }
        // SAFETY: the host hands out the segment it maps for this block and
        // keeps it mapped for as long as the block exists (FFI contract of
        // `SubcontrollerVTable::buffer`).
        unsafe { Buffer::from_region(region.base, region.len) }
    }

    /// The id of the block being called, as in the bitstream's config
    /// (`ip_blocks[].id`), for messages and per-block state. `None` when
    /// the host did not tell it: a host older than SDK 1.2 (which refuses
    /// plugins built with a newer SDK, so a plugin rarely meets one), or a
    /// subcontroller made outside a host; the plugin must then do without.
    ///
    /// ```
    /// use bitstream_sdk::prelude::*;
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Block;
    /// let route = Route::get("whoami", |_b: &mut Block, ctx, _req: Request| {
    ///     let id = ctx.block_id().unwrap_or_default();
    ///     Ok(Response::ok().with_body(Value::from(id)))
    /// });
    /// # let _ = route;
    /// ```
    pub fn block_id(&self) -> Option<String> {
        let block_id = crate::runtime::host_extensions()?.block_id();
        Some(block_id(self.ffi.context).into_string())
    }

    /// The block's current state.
    pub fn get_state(&self) -> String {
        (self.ffi.vtable.get_state())(self.ffi.context).into_string()
    }

    /// Fires `trigger` with `args` (passed to every condition of the
    /// candidate transitions). Not allowed from the current state: an error,
    /// which becomes 409 when returned from a route.
    ///
    /// `args` is `()` for none, or pairs: `[("packet_rate", 100)]`.
    pub fn trigger(&self, trigger: &str, args: impl Into<ValueMap>) -> Result<(), TriggerError> {
        self.call_trigger(trigger, args.into(), TriggerMode::Trigger)
            .map(drop)
    }

    /// Whether `trigger` with `args` would fire now.
    pub fn may_trigger(&self, trigger: &str, args: impl Into<ValueMap>) -> bool {
        self.call_trigger(trigger, args.into(), TriggerMode::MayTrigger)
            .unwrap_or(false)
    }

    /// Fires `trigger` if it is allowed now; answers whether it fired.
    pub fn trigger_if_allowed(&self, trigger: &str, args: impl Into<ValueMap>) -> bool {
        self.call_trigger(trigger, args.into(), TriggerMode::IfAllowed)
            .unwrap_or(false)
    }

    fn call_trigger(
        &self,
        trigger: &str,
        args: ValueMap,
        mode: TriggerMode,
    ) -> Result<bool, TriggerError> {
        (self.ffi.vtable.trigger())(self.ffi.context, RStr::from(trigger), &args, mode)
            .into_result()
            .map_err(TriggerError::from)
    }

    /// Re-runs this block's signal-update handler on the last list it
    /// received and sends the result downstream, right after the current
    /// call returns.
    pub fn force_signal_update(&self) -> Result<(), Error> {
        (self.ffi.vtable.force_signal_update())(self.ffi.context)
            .into_result()
            .map_err(|e| Error::with_status(e.status, e.message.into_string()))
    }

    /// Runs `action` on this block after `delay`, on the block's own
    /// executor, without blocking the caller. A route that uses it usually
    /// answers [`Response::accepted`](crate::Response::accepted). An error
    /// or panic inside the action is logged and affects nothing else.
    pub fn delay_action(
        &self,
        delay: Duration,
        action: impl FnOnce(&mut B, &Subcontroller<'_, B>) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        let boxed: Box<DelayedFn<B>> = Box::new(Box::new(action));
        let action = DelayedAction {
            data: Box::into_raw(boxed).cast::<c_void>(),
            run: run_delayed::<B>,
            discard: discard_delayed::<B>,
        };
        (self.ffi.vtable.delay_action())(self.ffi.context, RDuration::from(delay), action)
            .into_result()
            .map_err(|e| Error::with_status(e.status, e.message.into_string()))
    }

    /// Logs at `level`, tagged with the block id.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        (self.ffi.vtable.log())(self.ffi.context, level, RStr::from(message.as_ref()));
    }

    /// Logs at TRACE.
    pub fn log_trace(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Trace, message);
    }

    /// Logs at DEBUG.
    pub fn log_debug(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Debug, message);
    }

    /// Logs at INFO.
    pub fn log_info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at WARNING.
    pub fn log_warning(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Warning, message);
    }

    /// Logs at ERROR.
    pub fn log_error(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Error, message);
    }

    /// Logs at CRITICAL.
    pub fn log_critical(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Critical, message);
    }
}

extern "C" fn run_delayed<B: IpBlock>(
    data: *mut c_void,
    block: BlockPtr,
    ctx: &SubcontrollerFfi,
) -> FfiResult<()> {
    guard_block(ctx, || {
        // SAFETY: `data` was made by `Box::into_raw` in `delay_action` for this
        // same `B`, and the host calls `run` or `discard` exactly once.
        let action = unsafe { Box::from_raw(data.cast::<DelayedFn<B>>()) };
        // SAFETY: the host passes the block the action was scheduled on, made
        // by this plugin's `create` for `B`, with no other call running on it.
        let block = unsafe { &mut *block.0.cast::<B>() };
        action(block, &Subcontroller::new(ctx)).map_err(Into::into)
    })
}

extern "C" fn discard_delayed<B: IpBlock>(data: *mut c_void) {
    // Dropping a closure may run arbitrary drop code; keep a panic inside.
    let _ = guard(|| {
        // SAFETY: as in `run_delayed`; `discard` is the only call for `data`.
        drop(unsafe { Box::from_raw(data.cast::<DelayedFn<B>>()) });
        Ok(())
    });
}
