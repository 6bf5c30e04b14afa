//! The plugin's `log` logger: records logged through the `log` facade by
//! code inside a plugin library (the SDK's own device-buffer code, or the
//! plugin author's `log::warn!`) reach the host's log, tagged with the
//! block whose call is running.
//!
//! A plugin `cdylib` holds its own copy of the `log` crate, with no logger
//! and a max level of `Off`, so without this every record would be lost.
//! [`install`] (run once per library, by
//! [`runtime::plugin_module`](crate::runtime::plugin_module) when the host
//! loads it) sets [`PluginLogger`] as that copy's logger. While the SDK
//! runtime runs one of a block's calls that carries a
//! [`SubcontrollerFfi`](crate::ffi::SubcontrollerFfi) (a route, a pulse,
//! signal-update or manual-event handler, a delayed action), that block is
//! the thread's current one ([`call`](crate::call)), and the logger
//! forwards each record to the subcontroller's `log` function. With no
//! current block (creating a block, applying constants, a thread the
//! plugin spawned) a record at INFO or above goes to stderr, prefixed with
//! the plugin's name.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Once, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::call::{self, BlockLog};
use crate::ffi::LogLevel;

thread_local! {
    /// Set while a record is being handed to the host: a record logged in
    /// the meantime goes to stderr instead of looping.
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

/// The most detailed level written to stderr when no block is current (the
/// host's default log level); inside a block the host's filter decides.
const FALLBACK_LEVEL: Level = Level::Info;

/// The plugin's name, for records written to stderr.
static PLUGIN_NAME: OnceLock<&'static str> = OnceLock::new();

/// The logger [`install`] sets.
pub(crate) struct PluginLogger;

static LOGGER: PluginLogger = PluginLogger;

/// Sets [`PluginLogger`] as this library's `log` logger and lets every
/// level through to it, once. If a logger is already set (the plugin
/// author installed one first), it is left in place, and so is its level.
pub(crate) fn install(plugin_name: &'static str) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = PLUGIN_NAME.set(plugin_name);
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(LevelFilter::Trace);
        }
    });
}

impl Log for PluginLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= FALLBACK_LEVEL || current_block().is_some()
    }

    fn log(&self, record: &Record<'_>) {
        // A `Display` that panics must not unwind out of a logging call;
        // what it printed so far is dropped with it.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| write_record(record)));
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// The current block, unless a record is already being forwarded.
fn current_block() -> Option<BlockLog> {
    let forwarding = FORWARDING.try_with(Cell::get).unwrap_or(true);
    if forwarding {
        return None;
    }
    call::current_block()
}

fn write_record(record: &Record<'_>) {
    match current_block() {
        Some(block) => forward(block, record),
        None if record.level() <= FALLBACK_LEVEL => {
            let line = fallback_line(PLUGIN_NAME.get().copied().unwrap_or("?"), record);
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        None => {}
    }
}

/// Hands `record` to the host as `<target>: <message>` at its level.
fn forward(block: BlockLog, record: &Record<'_>) {
    /// Clears the forwarding flag when dropped.
    struct Forwarding;
    impl Drop for Forwarding {
        fn drop(&mut self) {
            let _ = FORWARDING.try_with(|f| f.set(false));
        }
    }
    let message = message_text(record);
    let _ = FORWARDING.try_with(|f| f.set(true));
    let _forwarding = Forwarding;
    block.log(level_of(record.level()), &message);
}

/// `<target>: <message>`.
fn message_text(record: &Record<'_>) -> String {
    let mut text = String::new();
    // A `Display` that fails leaves what it wrote so far.
    let _ = write!(text, "{}: {}", record.target(), record.args());
    text
}

/// `<LEVEL> plugin <name> (no block) <target>: <message>` and a newline.
fn fallback_line(plugin_name: &str, record: &Record<'_>) -> String {
    format!(
        "{:>5} plugin {plugin_name} (no block) {}\n",
        record.level(),
        message_text(record)
    )
}

fn level_of(level: Level) -> LogLevel {
    match level {
        Level::Error => LogLevel::Error,
        Level::Warn => LogLevel::Warning,
        Level::Info => LogLevel::Info,
        Level::Debug => LogLevel::Debug,
        Level::Trace => LogLevel::Trace,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_void;
    use std::sync::Mutex;

    use abi_stable::prefix_type::PrefixTypeTrait;
    use abi_stable::std_types::{RDuration, RResult, RStr, RString};

    use super::*;
    use crate::ffi::{
        BufferRegion, DelayedAction, FfiResult, SubcontrollerVTable, SubcontrollerVTableRef,
        TriggerFailure, TriggerMode,
    };
    use crate::ffi::{PluginError, SubcontrollerFfi};
    use crate::runtime::{guard, guard_block};
    use crate::value::ValueMap;

    /// Runs `f` as the runtime runs a call on `ctx`'s block.
    fn in_block(ctx: &SubcontrollerFfi, f: impl FnOnce()) -> Result<(), PluginError> {
        guard_block(ctx, || {
            f();
            Ok(())
        })
        .into_result()
    }

    /// What the fake host's `log` received: (context, level, message).
    static RECEIVED: Mutex<Vec<(usize, LogLevel, String)>> = Mutex::new(Vec::new());

    extern "C" fn get_state(_: *const c_void) -> RString {
        RString::from("ACTIVE")
    }
    extern "C" fn trigger(
        _: *const c_void,
        _: RStr<'_>,
        _: &ValueMap,
        _: TriggerMode,
    ) -> RResult<bool, TriggerFailure> {
        RResult::ROk(false)
    }
    extern "C" fn force_signal_update(_: *const c_void) -> FfiResult<()> {
        RResult::ROk(())
    }
    thread_local! {
        /// Delayed actions the fake host was given on this thread.
        static DELAYED: std::cell::RefCell<Vec<DelayedAction>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    extern "C" fn delay_action(
        _: *const c_void,
        _: RDuration,
        action: DelayedAction,
    ) -> FfiResult<()> {
        DELAYED.with(|d| d.borrow_mut().push(action));
        RResult::ROk(())
    }
    extern "C" fn buffer(_: *const c_void) -> BufferRegion {
        BufferRegion::NONE
    }

    /// Records the message; a message `loop` logs again from inside.
    extern "C" fn host_log(context: *const c_void, level: LogLevel, message: RStr<'_>) {
        RECEIVED
            .lock()
            .unwrap()
            .push((context as usize, level, message.as_str().to_owned()));
        if message.as_str().ends_with(": loop") {
            log::warn!("logged while forwarding");
        }
    }

    fn fake_table() -> SubcontrollerVTableRef {
        SubcontrollerVTable {
            get_state,
            trigger,
            force_signal_update,
            delay_action,
            log: host_log,
            buffer,
        }
        .leak_into_prefix()
    }

    /// A subcontroller whose context is `id`, so that tests running in
    /// parallel each see their own records.
    fn fake(id: usize) -> SubcontrollerFfi {
        SubcontrollerFfi {
            context: id as *const c_void,
            vtable: fake_table(),
        }
    }

    fn received(id: usize) -> Vec<(LogLevel, String)> {
        RECEIVED
            .lock()
            .unwrap()
            .iter()
            .filter(|(context, ..)| *context == id)
            .map(|(_, level, message)| (*level, message.clone()))
            .collect()
    }

    #[test]
    fn records_in_a_block_reach_its_subcontroller_with_level_and_target() {
        install("test-plugin");
        let ctx = fake(0x1001);
        in_block(&ctx, || {
            log::error!("e {}", 1);
            log::warn!(target: "my_plugin::meter", "w");
            log::info!("i");
            log::debug!("d");
            log::trace!("t");
        })
        .unwrap();
        let here = module_path!();
        assert_eq!(
            received(0x1001),
            [
                (LogLevel::Error, format!("{here}: e 1")),
                (LogLevel::Warning, "my_plugin::meter: w".to_owned()),
                (LogLevel::Info, format!("{here}: i")),
                (LogLevel::Debug, format!("{here}: d")),
                (LogLevel::Trace, format!("{here}: t")),
            ]
        );
        // Outside the block nothing more reaches it.
        log::warn!("after the block");
        assert_eq!(received(0x1001).len(), 5);
    }

    #[test]
    fn the_previous_block_comes_back_after_a_nested_call_and_a_panic() {
        install("test-plugin");
        let (outer, inner) = (fake(0x2001), fake(0x2002));
        in_block(&outer, || {
            let nested = in_block(&inner, || {
                log::warn!("inner");
                panic!("handler panicked");
            });
            assert!(nested.is_err());
            log::warn!("outer");
            // A guarded call without a block (a condition evaluated during
            // a trigger) is still the running block's.
            guard(|| {
                log::warn!("condition");
                Ok(())
            })
            .unwrap();
        })
        .unwrap();
        let here = module_path!();
        assert_eq!(
            received(0x2002),
            [(LogLevel::Warning, format!("{here}: inner"))]
        );
        assert_eq!(
            received(0x2001),
            [
                (LogLevel::Warning, format!("{here}: outer")),
                (LogLevel::Warning, format!("{here}: condition")),
            ]
        );
        assert!(call::current_block().is_none());
        assert!(!call::in_guard());
    }

    #[test]
    fn a_record_logged_while_forwarding_does_not_loop() {
        install("test-plugin");
        let ctx = fake(0x3001);
        in_block(&ctx, || log::warn!("loop")).unwrap();
        let here = module_path!();
        // Only the first record reached the host; the one logged from
        // inside went to stderr.
        assert_eq!(
            received(0x3001),
            [(LogLevel::Warning, format!("{here}: loop"))]
        );
        assert!(!FORWARDING.with(Cell::get));
    }

    #[test]
    fn without_a_block_records_name_the_plugin_and_skip_debug() {
        install("test-plugin");
        let metadata = |level| Metadata::builder().level(level).build();
        assert!(LOGGER.enabled(&metadata(Level::Info)));
        assert!(!LOGGER.enabled(&metadata(Level::Debug)));
        let ctx = fake(0x4001);
        in_block(&ctx, || assert!(LOGGER.enabled(&metadata(Level::Trace)))).unwrap();

        let line = fallback_line(
            "my-plugin",
            &Record::builder()
                .level(Level::Warn)
                .target("bitstream_sdk::buffer::device")
                .args(format_args!("buffer `b`: clamped"))
                .build(),
        );
        assert_eq!(
            line,
            " WARN plugin my-plugin (no block) bitstream_sdk::buffer::device: buffer `b`: clamped\n"
        );
    }

    #[test]
    fn a_panicking_display_is_contained() {
        struct Bad;
        impl std::fmt::Display for Bad {
            fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                panic!("display panicked")
            }
        }
        install("test-plugin");
        let ctx = fake(0x5001);
        in_block(&ctx, || log::warn!("{}", Bad)).unwrap();
        assert!(received(0x5001).is_empty());
        assert!(!FORWARDING.with(Cell::get));
    }

    #[derive(Default, serde::Serialize, serde::Deserialize)]
    pub struct Meter {}

    crate::define_plugin!(MeterPlugin,
        ip_block: Meter,
        state_machine: || crate::StateMachine::new(["ACTIVE"], "ACTIVE"),
        api: || crate::Api::new().route(crate::Route::post("sample", |_: &mut Meter, ctx, _req| {
            log::warn!("from the route");
            ctx.delay_action(std::time::Duration::ZERO, |_: &mut Meter, _ctx| {
                log::warn!("from the delayed action");
                Ok(())
            })?;
            Ok(crate::Response::ok())
        })),
        event_handler: || crate::EventHandler::<Meter>::new().on_pulse(|_, _ctx, _pulse| {
            log::info!("from the pulse handler");
            Ok(())
        }),
    );

    #[test]
    fn the_runtime_sets_the_block_for_routes_handlers_and_delayed_actions() {
        use crate::ffi::{PulseEvent, RouteRequest};
        use abi_stable::std_types::ROption;

        let module = crate::runtime::plugin_module::<MeterPlugin>("meter", "0.1.0");
        let ip_block = module.ip_block.unwrap();
        let block = (ip_block.create())().unwrap();
        let ctx = fake(0x6001);
        let request = RouteRequest {
            path: ROption::RNone,
            query: ValueMap::new(),
            body: ROption::RNone,
        };
        let api = module.api.unwrap();
        (api.call())(block, 0, &request, &ctx).unwrap();
        let pulse = PulseEvent {
            sequence: 0,
            timestamp_ns: 0,
        };
        (module.event_handler.unwrap().pulse())(block, &ctx, &pulse).unwrap();
        let action = DELAYED
            .with(|d| d.borrow_mut().pop())
            .expect("a delayed action");
        log::warn!("between calls"); // no block: stderr
        (action.run)(action.data, block, &ctx).unwrap();
        (ip_block.destroy())(block);

        let here = module_path!();
        assert_eq!(
            received(0x6001),
            [
                (LogLevel::Warning, format!("{here}: from the route")),
                (LogLevel::Info, format!("{here}: from the pulse handler")),
                (
                    LogLevel::Warning,
                    format!("{here}: from the delayed action")
                ),
            ]
        );
    }

    #[test]
    fn levels_map_one_to_one() {
        assert_eq!(level_of(Level::Error), LogLevel::Error);
        assert_eq!(level_of(Level::Warn), LogLevel::Warning);
        assert_eq!(level_of(Level::Info), LogLevel::Info);
        assert_eq!(level_of(Level::Debug), LogLevel::Debug);
        assert_eq!(level_of(Level::Trace), LogLevel::Trace);
    }
}
