//! The plugin side of the boundary: the `extern "C"` functions behind the
//! four component tables, and the panic guard around every one of them.
//!
//! Used through [`export_plugin!`](crate::export_plugin); not meant to be
//! called directly.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Once, OnceLock};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{ROption, RResult, RStr, RVec};

use crate::api::{Api, Handler, Request};
use crate::call::{self, BlockLog};
use crate::events::EventHandler;
use crate::ffi::{
    ApiVTable, BlockPtr, EventHandlerVTable, FfiResult, HostExtensionsRef, IpBlockVTable,
    MachineDesc, ManualEvent, PluginError, PluginModule, PulseEvent, RouteDesc, RouteRequest,
    RouteResponse, StateMachineVTable, SubcontrollerFfi,
};
use crate::logging;
use crate::machine::{Condition, StateMachine};
use crate::subcontroller::Subcontroller;
use crate::value::{Value, ValueMap};
use crate::IpBlock;

thread_local! {
    /// Where the last guarded panic happened.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that records where a guarded panic
/// happened and stays quiet about it; other panics go to the previous hook.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // Inside a guard panics are reported through the returned
            // error, not printed.
            if call::in_guard() {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    match PANIC_LOCATION.with(|slot| slot.borrow_mut().take()) {
        Some(location) => format!("{text} (at {location})"),
        None => text,
    }
}

/// Runs plugin code, turning a panic into a [`PluginError`] so that nothing
/// unwinds across the boundary.
pub fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> FfiResult<T> {
    guarded(None, f)
}

/// [`guard`] for a call on a block: while `f` runs, records logged through
/// the `log` facade on this thread go to the block's subcontroller (see
/// [`logging`](crate::logging)).
pub(crate) fn guard_block<T>(
    ctx: &SubcontrollerFfi,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> FfiResult<T> {
    guarded(Some(BlockLog::of(ctx)), f)
}

/// The one guard: `block`, if given, is the current block while `f` runs.
/// Inlined into each entry point, where the thread-local it sets and the
/// guard depth are looked up once (`call`).
#[inline(always)]
fn guarded<T>(block: Option<BlockLog>, f: impl FnOnce() -> Result<T, PluginError>) -> FfiResult<T> {
    install_panic_hook();
    let entered = call::enter(block);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    call::leave(entered);
    match outcome {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(PluginError::panicked(panic_message(payload))),
    }
}

/// The machine as data and its condition predicates, by condition id.
type MachinePart = (MachineDesc, Vec<Condition>);

/// The routes as data and their handlers, by route index.
type RoutesPart<B> = (Vec<RouteDesc>, Vec<Handler<B>>);

/// What the plugin's component functions built, each part on first use and
/// independently: a panic while building one component fails the calls of
/// that component only.
pub struct Runtime<B> {
    machine: OnceLock<Result<MachinePart, PluginError>>,
    routes: OnceLock<Result<RoutesPart<B>, PluginError>>,
    events: OnceLock<Result<EventHandler<B>, PluginError>>,
}

impl<B> Runtime<B> {
    /// Nothing built yet.
    pub const fn new() -> Self {
        Runtime {
            machine: OnceLock::new(),
            routes: OnceLock::new(),
            events: OnceLock::new(),
        }
    }
}

impl<B> Default for Runtime<B> {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a component once, catching a panic in the author's function.
fn built<T>(
    cell: &OnceLock<Result<T, PluginError>>,
    build: impl FnOnce() -> T,
) -> Result<&T, PluginError> {
    cell.get_or_init(|| guard(|| Ok(build())).into_result())
        .as_ref()
        .map_err(Clone::clone)
}

/// Implemented by the marker type [`export_plugin!`](crate::export_plugin)
/// defines: ties the four component functions to one ip_block type.
pub trait PluginDefinition: 'static {
    /// The ip_block type.
    type Block: IpBlock;
    /// The state_machine component function.
    fn state_machine() -> StateMachine;
    /// The api component function.
    fn api() -> Api<Self::Block>;
    /// The event_handler component function.
    fn event_handler() -> EventHandler<Self::Block>;
    /// The plugin's one runtime.
    fn runtime() -> &'static Runtime<Self::Block>;
    /// The device-buffer catalog (JSON) the plugin declares, if any.
    fn catalog() -> Option<&'static str> {
        None
    }
    /// Builds a block from a snapshot of a block of another version
    /// (`from_version`) when the engine swaps the plugin while it runs.
    /// The default is [`restore_fields`]: every field the snapshot and the
    /// block type share, through serde; `export_plugin!`'s `restore:` entry
    /// overrides it to migrate.
    fn restore(snapshot: &Value, from_version: &str) -> Result<Self::Block, String> {
        let _ = from_version;
        restore_fields(snapshot)
    }
}

/// The default restore of a block after a swap: starts from `B::default()`
/// and assigns every field of `snapshot` that `B` also has, through serde.
/// Fields `B` no longer has are left out; fields it gained keep their
/// defaults; a field whose type changed is an error naming it. (A type with
/// `#[serde(deny_unknown_fields)]` that lost a field gets only the fields
/// its default serializes.)
///
/// ```
/// use bitstream_sdk::prelude::*;
/// use bitstream_sdk::runtime::restore_fields;
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct V2 { gain: f64, offset: i64 }
///
/// let old = Value::from_serialize(&serde_json::json!({"gain": 0.5, "removed": true})).unwrap();
/// let block: V2 = restore_fields(&old).unwrap();
/// assert_eq!((block.gain, block.offset), (0.5, 0));
/// ```
pub fn restore_fields<B: IpBlock>(snapshot: &Value) -> Result<B, String> {
    let type_name = std::any::type_name::<B>();
    let Value::Map(old) = snapshot else {
        return Err(format!(
            "the snapshot is a {}, not a map of fields, so it cannot be restored into `{type_name}`",
            snapshot.kind_name()
        ));
    };
    let mut current = serde_json::to_value(B::default())
        .map_err(|e| format!("ip_block type `{type_name}` cannot be serialized: {e}"))?;
    let fields = current.as_object_mut().ok_or_else(|| {
        format!("ip_block type `{type_name}` does not serialize to a map of fields")
    })?;
    // Every field of the snapshot first (a field the default leaves out of
    // its serialization, `skip_serializing_if`, is still one of `B`'s);
    // when `B` refuses some (`deny_unknown_fields`), only the shared ones.
    let mut everything = fields.clone();
    for (name, value) in old.iter() {
        everything.insert(name.to_owned(), value.clone().into());
    }
    if let Ok(block) = serde_json::from_value(serde_json::Value::Object(everything)) {
        return Ok(block);
    }
    for (name, value) in old.iter() {
        if fields.contains_key(name) {
            fields.insert(name.to_owned(), value.clone().into());
        }
    }
    serde_path_to_error::deserialize(current).map_err(|err| {
        format!(
            "field `{}` of the old version does not fit ip_block type `{type_name}`: {}; \
             give export_plugin! a `restore:` function to migrate it",
            err.path(),
            err.inner()
        )
    })
}

fn machine_of<P: PluginDefinition>() -> Result<&'static (MachineDesc, Vec<Condition>), PluginError>
{
    built(&P::runtime().machine, || P::state_machine().into_parts())
}

fn routes_of<P: PluginDefinition>() -> Result<&'static RoutesPart<P::Block>, PluginError> {
    built(&P::runtime().routes, || P::api().into_parts())
}

fn events_of<P: PluginDefinition>() -> Result<&'static EventHandler<P::Block>, PluginError> {
    built(&P::runtime().events, P::event_handler)
}

/// The host functions added after SDK 1.1, once the host has handed them
/// over (see [`crate::ffi::HostExtensions`]).
static HOST_EXTENSIONS: OnceLock<HostExtensionsRef> = OnceLock::new();

/// Keeps the host's extension table; called by the host through the
/// symbol `export_plugin!` exports. A second call changes nothing.
pub fn set_host_extensions(extensions: HostExtensionsRef) {
    let _ = HOST_EXTENSIONS.set(extensions);
}

/// The host's extension table, when the host handed one over.
pub(crate) fn host_extensions() -> Option<HostExtensionsRef> {
    HOST_EXTENSIONS.get().copied()
}

/// How the SDK inside this plugin was compiled: the profile (`debug`,
/// `release`, ...), the opt-level, and whether debug assertions are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildProfile {
    /// Cargo's profile name, as cargo tells build scripts (`debug` or
    /// `release`; custom profiles report the one they inherit from).
    pub profile: &'static str,
    /// The opt-level (`0`, `1`, `2`, `3`, `s`, `z`).
    pub opt_level: &'static str,
    /// Whether debug assertions are on (in the plugin crate).
    pub debug_assertions: bool,
}

/// The build record a plugin exports (see
/// [`PLUGIN_INFO_SYMBOL`](crate::ffi::PLUGIN_INFO_SYMBOL)): a
/// NUL-terminated JSON object, made once per library.
pub fn plugin_info(debug_assertions: bool) -> *const std::ffi::c_char {
    static INFO: OnceLock<std::ffi::CString> = OnceLock::new();
    INFO.get_or_init(|| {
        let build = BuildProfile {
            profile: env!("BITSTREAM_SDK_PROFILE"),
            opt_level: env!("BITSTREAM_SDK_OPT_LEVEL"),
            debug_assertions,
        };
        let json = serde_json::json!({
            "sdk_version": crate::SDK_VERSION,
            "profile": build.profile,
            "opt_level": build.opt_level,
            "debug_assertions": build.debug_assertions,
        });
        std::ffi::CString::new(json.to_string()).unwrap_or_default()
    })
    .as_ptr()
}

/// The root module with all four components of plugin `P`.
///
/// Also installs, once per library, the logger that sends the plugin's
/// `log` records to the host (see the crate's "Logging" section).
pub fn plugin_module<P: PluginDefinition>(
    name: &'static str,
    version: &'static str,
) -> PluginModule {
    logging::install(name);
    PluginModule {
        plugin_name: RStr::from(name),
        plugin_version: RStr::from(version),
        ip_block: ROption::RSome(
            IpBlockVTable {
                catalog: plugin_catalog::<P>,
                ..ip_block_vtable::<P::Block>()
            }
            .leak_into_prefix(),
        ),
        state_machine: ROption::RSome(
            StateMachineVTable {
                describe: describe_machine::<P>,
                eval_condition: eval_condition::<P>,
            }
            .leak_into_prefix(),
        ),
        api: ROption::RSome(
            ApiVTable {
                describe: describe_routes::<P>,
                call: call_route::<P>,
            }
            .leak_into_prefix(),
        ),
        event_handler: ROption::RSome(event_handler_vtable::<P>().leak_into_prefix()),
    }
}

/// Ties an ip_block type to the plugin definition `P` that exports it, so
/// that a test kit running the plugin in-process (`bitstream-testkit`'s
/// `Harness::<MyBlock>::new()`) finds the plugin from the block type alone.
/// Implemented by [`define_plugin!`](crate::define_plugin) (and so by
/// [`export_plugin!`](crate::export_plugin)); not meant to be implemented by
/// hand.
///
/// ```
/// use bitstream_sdk::prelude::*;
/// use bitstream_sdk::runtime::InProcess;
///
/// #[derive(Default, Serialize, Deserialize)]
/// pub struct Lamp { on: bool }
///
/// bitstream_sdk::define_plugin!(LampPlugin,
///     ip_block: Lamp,
///     state_machine: || StateMachine::new(["OFF"], "OFF"),
///     api: Api::<Lamp>::new,
///     event_handler: EventHandler::<Lamp>::new);
///
/// // The same root module every time, without loading a library.
/// let module = <Lamp as InProcess<LampPlugin>>::root_module();
/// assert_eq!(module.plugin_name().as_str(), env!("CARGO_PKG_NAME"));
/// ```
#[doc(hidden)]
pub trait InProcess<P: PluginDefinition<Block = Self>>: IpBlock {
    /// The plugin's root module, built once per process, as a loaded
    /// library would hand it to the host.
    fn root_module() -> crate::ffi::PluginModuleRef;
}

/// The ip_block table for `B`.
pub fn ip_block_vtable<B: IpBlock>() -> IpBlockVTable {
    IpBlockVTable {
        type_name: block_type_name::<B>,
        create: create_block::<B>,
        destroy: destroy_block::<B>,
        apply_constants: apply_constants_ffi::<B>,
        snapshot: snapshot_block::<B>,
        catalog: no_catalog,
    }
}

/// The plugin's [`RestoreFn`](crate::ffi::RestoreFn), exported by
/// `export_plugin!` as [`RESTORE_SYMBOL`](crate::ffi::RESTORE_SYMBOL).
#[doc(hidden)]
pub extern "C" fn restore_ffi<P: PluginDefinition>(
    block: BlockPtr,
    snapshot: &Value,
    from_version: RStr<'_>,
) -> FfiResult<()> {
    guard(|| {
        // SAFETY: host contract of `block_mut`.
        let block = unsafe { block_mut::<P::Block>(block) };
        *block = P::restore(snapshot, from_version.as_str())
            .map_err(|message| PluginError::failed(409, message))?;
        Ok(())
    })
}

extern "C" fn no_catalog() -> RStr<'static> {
    RStr::from("")
}

extern "C" fn plugin_catalog<P: PluginDefinition>() -> RStr<'static> {
    RStr::from(P::catalog().unwrap_or(""))
}

/// The event_handler table of `P`, with its overrides.
pub fn event_handler_vtable<P: PluginDefinition>() -> EventHandlerVTable {
    // A runtime that fails to build is reported by every other call; here
    // it just means no handler is overridden.
    let overrides = events_of::<P>()
        .map(EventHandler::overrides)
        .unwrap_or_default();
    EventHandlerVTable {
        overrides,
        pulse: handle_pulse::<P>,
        signal_update: handle_signal_update::<P>,
        manual_event: handle_manual_event::<P>,
    }
}

/// # Safety
/// `block` must come from `create_block::<B>` of this plugin, not yet
/// destroyed, with no other call using it at the same time (the host's
/// per-block serial executor guarantees this).
unsafe fn block_mut<'a, B>(block: BlockPtr) -> &'a mut B {
    // SAFETY: guaranteed by the caller, see above.
    unsafe { &mut *block.0.cast::<B>() }
}

extern "C" fn block_type_name<B: IpBlock>() -> RStr<'static> {
    RStr::from(std::any::type_name::<B>())
}

extern "C" fn create_block<B: IpBlock>() -> FfiResult<BlockPtr> {
    guard(|| Ok(BlockPtr(Box::into_raw(Box::new(B::default())).cast())))
}

extern "C" fn destroy_block<B: IpBlock>(block: BlockPtr) {
    let _ = guard(|| {
        // SAFETY: the host destroys each block it created exactly once, after
        // its last call.
        drop(unsafe { Box::from_raw(block.0.cast::<B>()) });
        Ok(())
    });
}

extern "C" fn apply_constants_ffi<B: IpBlock>(
    block: BlockPtr,
    constants: &ValueMap,
) -> FfiResult<()> {
    guard(|| {
        // SAFETY: host contract of `block_mut`.
        let block = unsafe { block_mut::<B>(block) };
        apply_constants(block, constants).map_err(|message| PluginError::failed(400, message))
    })
}

/// Assigns `constants` over the fields of `block`, like the original's
/// attribute assignment: every key must be a field of the ip_block, and
/// each value must fit that field's type.
pub fn apply_constants<B: IpBlock>(block: &mut B, constants: &ValueMap) -> Result<(), String> {
    if constants.is_empty() {
        return Ok(());
    }
    let type_name = std::any::type_name::<B>();
    let mut current = serde_json::to_value(&*block)
        .map_err(|e| format!("ip_block type `{type_name}` cannot be serialized: {e}"))?;
    let fields = current.as_object_mut().ok_or_else(|| {
        format!("ip_block type `{type_name}` does not serialize to a map, so it takes no constants")
    })?;
    for name in constants.keys() {
        if !fields.contains_key(name) {
            let mut known: Vec<&str> = fields.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(format!(
                "unknown constant `{name}`: ip_block type `{type_name}` has no such field (fields: {})",
                known.join(", ")
            ));
        }
    }
    for (name, value) in constants.iter() {
        fields.insert(name.to_owned(), value.clone().into());
    }
    *block = serde_path_to_error::deserialize(current).map_err(|err| {
        format!(
            "constant `{}` does not fit ip_block type `{type_name}`: {}",
            err.path(),
            err.inner()
        )
    })?;
    Ok(())
}

extern "C" fn snapshot_block<B: IpBlock>(block: BlockPtr) -> FfiResult<Value> {
    guard(|| {
        // SAFETY: host contract of `block_mut`.
        let block = unsafe { block_mut::<B>(block) };
        Value::from_serialize(&*block)
            .map_err(|e| PluginError::failed(500, format!("ip_block cannot be serialized: {e}")))
    })
}

extern "C" fn describe_machine<P: PluginDefinition>() -> FfiResult<MachineDesc> {
    guard(|| Ok(machine_of::<P>()?.0.clone()))
}

extern "C" fn eval_condition<P: PluginDefinition>(
    condition: u32,
    args: &ValueMap,
) -> FfiResult<bool> {
    guard(|| {
        let predicate = machine_of::<P>()?
            .1
            .get(condition as usize)
            .ok_or_else(|| PluginError::failed(500, format!("no condition with id {condition}")))?;
        Ok(predicate(args))
    })
}

extern "C" fn describe_routes<P: PluginDefinition>() -> FfiResult<RVec<RouteDesc>> {
    guard(|| Ok(routes_of::<P>()?.0.iter().cloned().collect()))
}

extern "C" fn call_route<P: PluginDefinition>(
    block: BlockPtr,
    route: u32,
    request: &RouteRequest,
    ctx: &SubcontrollerFfi,
) -> FfiResult<RouteResponse> {
    guard_block(ctx, || {
        let handler = routes_of::<P>()?
            .1
            .get(route as usize)
            .ok_or_else(|| PluginError::failed(404, format!("no route with index {route}")))?;
        // SAFETY: host contract of `block_mut`.
        let block = unsafe { block_mut::<P::Block>(block) };
        let response = handler(
            block,
            &Subcontroller::new(ctx),
            Request::from(request.clone()),
        )?;
        Ok(response.into())
    })
}

extern "C" fn handle_pulse<P: PluginDefinition>(
    block: BlockPtr,
    ctx: &SubcontrollerFfi,
    pulse: &PulseEvent,
) -> FfiResult<()> {
    guard_block(ctx, || {
        let Some(handler) = &events_of::<P>()?.pulse else {
            return Ok(());
        };
        // SAFETY: host contract of `block_mut`.
        let block = unsafe { block_mut::<P::Block>(block) };
        handler(block, &Subcontroller::new(ctx), pulse).map_err(Into::into)
    })
}

extern "C" fn handle_signal_update<P: PluginDefinition>(
    block: BlockPtr,
    ctx: &SubcontrollerFfi,
    events: RVec<Value>,
) -> FfiResult<RVec<Value>> {
    guard_block(ctx, || {
        let Some(handler) = &events_of::<P>()?.signal_update else {
            return Ok(events);
        };
        // SAFETY: host contract of `block_mut`.
        let block = unsafe { block_mut::<P::Block>(block) };
        let out = handler(block, &Subcontroller::new(ctx), events.into_vec())?;
        Ok(RVec::from(out))
    })
}

extern "C" fn handle_manual_event<P: PluginDefinition>(
    block: BlockPtr,
    ctx: &SubcontrollerFfi,
    event: &ManualEvent,
) -> FfiResult<ROption<RVec<ManualEvent>>> {
    guard_block(ctx, || {
        let Some(handler) = &events_of::<P>()?.manual_event else {
            return Ok(ROption::RNone);
        };
        // SAFETY: host contract of `block_mut`.
        let block = unsafe { block_mut::<P::Block>(block) };
        let out = handler(block, &Subcontroller::new(ctx), event)?;
        Ok(out.map(RVec::from).into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Eth {
        num_fibres: u32,
        rx_loopback: bool,
    }

    #[test]
    fn guard_turns_panics_into_errors_with_location() {
        let err = guard::<()>(|| panic!("boom {}", 7))
            .into_result()
            .unwrap_err();
        assert_eq!(err.kind, crate::ffi::PluginErrorKind::Panicked);
        assert!(err.message.starts_with("boom 7 (at "), "{}", err.message);
        assert!(err.message.contains("runtime.rs"), "{}", err.message);
    }

    #[test]
    fn constants_override_defaults() {
        let mut block = Eth::default();
        apply_constants(&mut block, &[("num_fibres", 4)].into()).unwrap();
        assert_eq!(
            block,
            Eth {
                num_fibres: 4,
                rx_loopback: false
            }
        );
    }

    #[test]
    fn unknown_constant_names_field_and_type() {
        let mut block = Eth::default();
        let err = apply_constants(&mut block, &[("num_lanes", 4)].into()).unwrap_err();
        assert!(err.contains("unknown constant `num_lanes`"), "{err}");
        assert!(err.contains("Eth"), "{err}");
        assert!(err.contains("num_fibres, rx_loopback"), "{err}");
    }

    #[test]
    fn wrong_type_names_field_and_type() {
        let mut block = Eth::default();
        let err = apply_constants(&mut block, &[("num_fibres", "four")].into()).unwrap_err();
        assert!(
            err.starts_with("constant `num_fibres` does not fit ip_block type"),
            "{err}"
        );
        assert!(err.contains("Eth") && err.contains("invalid type"), "{err}");
        assert_eq!(block, Eth::default(), "a failed assignment changes nothing");
    }

    /// Version 2 of `Eth`: one field gone, one new, one that its default
    /// leaves out of its serialization.
    #[derive(Default, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct EthV2 {
        num_fibres: u32,
        lanes: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    fn snapshot(json: serde_json::Value) -> Value {
        Value::from_serialize(&json).unwrap()
    }

    #[test]
    fn restore_carries_shared_fields_and_defaults_the_new_ones() {
        let old = snapshot(serde_json::json!({"num_fibres": 4, "rx_loopback": true, "note": "n"}));
        let block: EthV2 = restore_fields(&old).unwrap();
        assert_eq!(
            block,
            EthV2 {
                num_fibres: 4,
                lanes: 0,
                note: Some("n".into())
            }
        );
        // Back to version 1: the new fields are left out.
        let back = snapshot(serde_json::json!({"num_fibres": 4, "lanes": 2}));
        let block: Eth = restore_fields(&back).unwrap();
        assert_eq!(block.num_fibres, 4);
        // A type that refuses unknown fields gets the fields its default
        // serializes.
        #[derive(Default, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            num_fibres: u32,
        }
        let block: Strict = restore_fields(&old).unwrap();
        assert_eq!(block, Strict { num_fibres: 4 });
    }

    #[test]
    fn restore_names_a_field_whose_type_changed() {
        let old = snapshot(serde_json::json!({"num_fibres": "four"}));
        let err = restore_fields::<EthV2>(&old).unwrap_err();
        assert!(
            err.starts_with("field `num_fibres` of the old version does not fit"),
            "{err}"
        );
        assert!(err.contains("restore:"), "{err}");
        let err = restore_fields::<Eth>(&Value::from(3)).unwrap_err();
        assert!(err.contains("not a map of fields"), "{err}");
    }
}
