//! The raw ABI between the host and a plugin: every type that crosses the
//! boundary, all `#[repr(C)]` and checked by abi_stable at load.
//!
//! Plugin authors do not use this module directly; [`export_plugin!`]
//! builds a [`PluginModule`] from the typed API. The host and the
//! validator read plugins only through these types.
//!
//! # Evolution
//! The root module and the four component tables are abi_stable *prefix
//! types*: a minor SDK release may append fields after the
//! `last_prefix_field`, and a host reading an older plugin sees them as
//! absent (`None`). Every other type here is frozen for a major version.
//!
//! [`export_plugin!`]: crate::export_plugin

use std::ffi::c_void;

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RDuration, ROption, RResult, RStr, RString, RVec};
use abi_stable::{declare_root_module_statics, StableAbi};

use crate::value::{Value, ValueMap};

/// The result of every call into a plugin.
pub type FfiResult<T> = RResult<T, PluginError>;

/// An error returned by plugin code: a caught panic, or an error value.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginError {
    /// Whether the plugin panicked or returned an error.
    pub kind: PluginErrorKind,
    /// The HTTP status the error maps to when it ends a route call.
    pub status: u16,
    /// What went wrong, in words.
    pub message: RString,
}

/// How plugin code failed.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PluginErrorKind {
    /// The plugin code panicked; the panic was caught inside the plugin.
    Panicked,
    /// The plugin code returned an error.
    Failed,
}

impl PluginError {
    /// A caught panic, reported as HTTP 500.
    pub fn panicked(message: impl Into<String>) -> Self {
        PluginError {
            kind: PluginErrorKind::Panicked,
            status: 500,
            message: RString::from(message.into()),
        }
    }

    /// An error value with an HTTP status.
    pub fn failed(status: u16, message: impl Into<String>) -> Self {
        PluginError {
            kind: PluginErrorKind::Failed,
            status,
            message: RString::from(message.into()),
        }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            PluginErrorKind::Panicked => write!(f, "plugin panicked: {}", self.message),
            PluginErrorKind::Failed => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PluginError {}

/// An opaque pointer to one ip_block instance, owned by the plugin that
/// created it. The host only hands it back to that same plugin.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct BlockPtr(pub *mut c_void);

// ---------------------------------------------------------------------------
// Root module

/// The root module every plugin exports: one optional table per component.
///
/// A component is `RNone` only in a broken plugin; the validator names each
/// missing one.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    /// The plugin crate's name (`CARGO_PKG_NAME`).
    pub plugin_name: RStr<'static>,
    /// The plugin crate's version (`CARGO_PKG_VERSION`).
    pub plugin_version: RStr<'static>,
    /// The ip_block component.
    pub ip_block: ROption<IpBlockVTableRef>,
    /// The state_machine component.
    pub state_machine: ROption<StateMachineVTableRef>,
    /// The api component.
    pub api: ROption<ApiVTableRef>,
    /// The event_handler component.
    #[sabi(last_prefix_field)]
    pub event_handler: ROption<EventHandlerVTableRef>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "bitstream_plugin";
    const NAME: &'static str = "bitstream_plugin";
    /// The SDK version the plugin was built with; the host applies the
    /// version policy in `ARCHITECTURE.md` to it before anything else.
    const VERSION_STRINGS: VersionStrings = abi_stable::package_version_strings!();
}

/// The symbol abi_stable looks up in every plugin library.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

// ---------------------------------------------------------------------------
// ip_block

/// Functions of the ip_block component.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = IpBlockVTableRef)))]
#[sabi(missing_field(option))]
pub struct IpBlockVTable {
    /// The Rust type name of the ip_block, for messages.
    pub type_name: extern "C" fn() -> RStr<'static>,
    /// Constructs an instance with `Default`.
    pub create: extern "C" fn() -> FfiResult<BlockPtr>,
    /// Drops an instance made by `create`.
    pub destroy: extern "C" fn(block: BlockPtr),
    /// Assigns config constants over the instance's current values.
    pub apply_constants: extern "C" fn(block: BlockPtr, constants: &ValueMap) -> FfiResult<()>,
    /// The instance's current state, serialized.
    #[sabi(last_prefix_field)]
    pub snapshot: extern "C" fn(block: BlockPtr) -> FfiResult<Value>,
    /// The device-buffer catalog the plugin declares for its blocks (JSON;
    /// empty for none). Since SDK 1.1.
    pub catalog: extern "C" fn() -> RStr<'static>,
}

// ---------------------------------------------------------------------------
// state_machine

/// Functions of the state_machine component.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = StateMachineVTableRef)))]
#[sabi(missing_field(option))]
pub struct StateMachineVTable {
    /// The machine as data.
    pub describe: extern "C" fn() -> FfiResult<MachineDesc>,
    /// Evaluates condition `condition` (an id from [`ConditionDesc`]) on the
    /// arguments given to the trigger.
    #[sabi(last_prefix_field)]
    pub eval_condition: extern "C" fn(condition: u32, args: &ValueMap) -> FfiResult<bool>,
}

/// A state machine as data, readable without running plugin code.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct MachineDesc {
    /// Every state, in declaration order.
    pub states: RVec<RString>,
    /// Every trigger, in declaration order.
    pub triggers: RVec<RString>,
    /// The state a new instance starts in.
    pub initial: RString,
    /// The transitions, in the order they are tried.
    pub transitions: RVec<TransitionDesc>,
}

/// One transition.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct TransitionDesc {
    /// The trigger that fires it.
    pub trigger: RString,
    /// The states it leaves from: named states, or `FromAny` alone.
    pub sources: RVec<StateRef>,
    /// The state it enters: a named state or `ToSame`.
    pub dest: StateRef,
    /// Labelled conditions, all of which must hold.
    pub conditions: RVec<ConditionDesc>,
}

/// A state named in a transition.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub enum StateRef {
    /// A declared state.
    State(RString),
    /// Any state (valid only as the sole source).
    FromAny,
    /// The state the machine is in (valid only as a destination).
    ToSame,
}

/// A labelled condition; `id` is passed back to `eval_condition`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct ConditionDesc {
    /// The label shown on state diagrams, for example `packet rate > 0`.
    pub label: RString,
    /// The plugin's identifier for the predicate.
    pub id: u32,
}

// ---------------------------------------------------------------------------
// api

/// Functions of the api component.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ApiVTableRef)))]
#[sabi(missing_field(option))]
pub struct ApiVTable {
    /// The routes as data.
    pub describe: extern "C" fn() -> FfiResult<RVec<RouteDesc>>,
    /// Calls route number `route` (its index in `describe`).
    #[sabi(last_prefix_field)]
    pub call: extern "C" fn(
        block: BlockPtr,
        route: u32,
        request: &RouteRequest,
        ctx: &SubcontrollerFfi,
    ) -> FfiResult<RouteResponse>,
}

/// One HTTP route of a block, served at `/<block>/<name>`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct RouteDesc {
    /// The URL segment (and the name of the route).
    pub name: RString,
    /// The HTTP method, upper case (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`).
    pub method: RString,
    /// One sentence for listings and OpenAPI.
    pub summary: RString,
    /// Path, query and body parameters.
    pub params: RVec<ParamDesc>,
}

/// One parameter of a route.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ParamDesc {
    /// The parameter's name (the query key; for a body, a label).
    pub name: RString,
    /// Where it comes from.
    pub location: ParamLocation,
    /// Its type; the host parses and checks it before calling the plugin.
    pub kind: ParamKind,
    /// Whether a request without it is refused with 400.
    pub required: bool,
    /// The value used when the request omits it.
    pub default: ROption<Value>,
    /// For a body: a JSON Schema it must satisfy, if the route declares one.
    pub schema: ROption<Value>,
}

/// Where a route parameter is taken from.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamLocation {
    /// The segment after the route name: `/<block>/<route>/<value>`.
    Path,
    /// A query-string parameter.
    Query,
    /// The JSON request body.
    Body,
}

/// The type of a route parameter.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// `true`/`false` (also `1`/`0`, `yes`/`no` in query strings).
    Bool,
    /// A signed integer.
    Int,
    /// A number.
    Float,
    /// Any string.
    String,
    /// Any JSON value (bodies).
    Json,
}

/// A route call, already parsed and type-checked by the host.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct RouteRequest {
    /// The path parameter's value, if the route has one and it was given.
    pub path: ROption<RString>,
    /// Query parameters by name, typed, with defaults filled in.
    pub query: ValueMap,
    /// The JSON body, if one was sent.
    pub body: ROption<Value>,
}

/// What a route answers.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct RouteResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body, if any.
    pub body: ROption<Value>,
}

// ---------------------------------------------------------------------------
// event_handler

/// Functions of the event_handler component.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = EventHandlerVTableRef)))]
#[sabi(missing_field(option))]
pub struct EventHandlerVTable {
    /// Which handlers the plugin defines; the host applies the default
    /// behaviour of the others without calling into the plugin.
    pub overrides: HandlerOverrides,
    /// Handles a pulse.
    pub pulse:
        extern "C" fn(block: BlockPtr, ctx: &SubcontrollerFfi, pulse: &PulseEvent) -> FfiResult<()>,
    /// Handles a signal-update list, returning the list for downstream.
    pub signal_update: extern "C" fn(
        block: BlockPtr,
        ctx: &SubcontrollerFfi,
        events: RVec<Value>,
    ) -> FfiResult<RVec<Value>>,
    /// Handles a manual event, optionally returning events for downstream.
    #[sabi(last_prefix_field)]
    pub manual_event: extern "C" fn(
        block: BlockPtr,
        ctx: &SubcontrollerFfi,
        event: &ManualEvent,
    ) -> FfiResult<ROption<RVec<ManualEvent>>>,
}

/// Which event handlers a plugin overrides.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HandlerOverrides {
    /// `pulse` is defined (default: do nothing).
    pub pulse: bool,
    /// `signal_update` is defined (default: pass the list through).
    pub signal_update: bool,
    /// `manual_event` is defined (default: forward nothing).
    pub manual_event: bool,
}

/// One pulse (the firmware's pulse-per-second).
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct PulseEvent {
    /// Pulses since the emulator started, from 0.
    pub sequence: u64,
    /// When the pulse was generated, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
}

/// A manual event: an injection or a general event from upstream.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ManualEvent {
    /// `General` or `Injection`.
    pub subtype: ManualEventSubtype,
    /// `General`, `Warning` or `FatalError`.
    pub severity: Severity,
    /// The event's payload, usually a map.
    pub value: Value,
}

/// The subtype of a [`ManualEvent`].
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ManualEventSubtype {
    /// An event produced by a block.
    General,
    /// An event injected through `POST /inject`.
    Injection,
}

/// The severity of a [`ManualEvent`].
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Informational.
    General,
    /// Something degraded.
    Warning,
    /// The block should fault.
    FatalError,
}

// ---------------------------------------------------------------------------
// subcontroller (implemented by the host)

/// The host's per-block handle, passed to every plugin call that may act on
/// the block. `context` is opaque to the plugin.
#[repr(C)]
#[derive(StableAbi)]
pub struct SubcontrollerFfi {
    /// Host data identifying the block; only passed back to `vtable`.
    pub context: *const c_void,
    /// The host's functions.
    pub vtable: SubcontrollerVTableRef,
}

/// Functions the host offers to plugin code.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = SubcontrollerVTableRef)))]
#[sabi(missing_field(option))]
pub struct SubcontrollerVTable {
    /// The block's current state.
    pub get_state: extern "C" fn(context: *const c_void) -> RString,
    /// Fires, tests or conditionally fires a trigger.
    pub trigger: extern "C" fn(
        context: *const c_void,
        trigger: RStr<'_>,
        args: &ValueMap,
        mode: TriggerMode,
    ) -> RResult<bool, TriggerFailure>,
    /// Re-runs the block's signal-update handler on its last input and sends
    /// the result downstream.
    pub force_signal_update: extern "C" fn(context: *const c_void) -> FfiResult<()>,
    /// Runs `action` on the block's own executor after `delay`.
    pub delay_action: extern "C" fn(
        context: *const c_void,
        delay: RDuration,
        action: DelayedAction,
    ) -> FfiResult<()>,
    /// Logs a message tagged with the block.
    #[sabi(last_prefix_field)]
    pub log: extern "C" fn(context: *const c_void, level: LogLevel, message: RStr<'_>),
    /// The block's device-buffer segment (a `bitstream_buffer::segment`);
    /// `len == 0` when the block has none. Since SDK 1.1.
    pub buffer: extern "C" fn(context: *const c_void) -> BufferRegion,
}

// ---------------------------------------------------------------------------
// Since SDK 1.2: outside the root module's layout

/// Host functions added after SDK 1.1.
///
/// abi_stable's layout check refuses a library whose prefix types have
/// *fewer* fields than the loader's, so no field may be appended to a type
/// reachable from [`PluginModule`] without breaking older plugins. New host
/// functions therefore travel outside the root module: after a plugin
/// passes the layout check, the host looks up
/// [`SET_HOST_EXTENSIONS_SYMBOL`] (exported by `export_plugin!` since 1.2)
/// and, when the plugin has it, hands it this table once. Fields may be
/// appended here in later minor versions: a `PrefixRef` reader sees a
/// field the table lacks as absent.
///
/// Every function takes the `context` of the [`SubcontrollerFfi`] the
/// running call carries.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = HostExtensionsRef)))]
#[sabi(missing_field(option))]
pub struct HostExtensions {
    /// The id of the block whose call carries `context`.
    #[sabi(last_prefix_field)]
    pub block_id: extern "C" fn(context: *const c_void) -> RString,
    /// Checks `value` against the JSON Schema `schema` with the host's
    /// validator: `Ok`, or the 400 message listing every violation (or
    /// saying the schema is invalid).
    pub check_json: extern "C" fn(
        context: *const c_void,
        schema: &Value,
        value: &Value,
    ) -> RResult<(), RString>,
}

/// `extern "C" fn(HostExtensionsRef)`, exported by plugins built with SDK
/// 1.2 or later: the host calls it once, after the layout check.
pub const SET_HOST_EXTENSIONS_SYMBOL: &str = "bitstream_sdk_set_host_extensions";

/// `extern "C" fn() -> *const c_char`, exported by plugins built with SDK
/// 1.2 or later: a NUL-terminated, `'static` JSON object describing the
/// build, readable without the layout check:
/// `{"sdk_version": "1.2.0", "profile": "release", "opt_level": "3",
/// "debug_assertions": false}`.
pub const PLUGIN_INFO_SYMBOL: &str = "bitstream_sdk_plugin_info";

/// Where a block's device-buffer segment is mapped in this process: a
/// `bitstream_buffer::segment` header followed by the buffer's struct. The
/// host keeps it mapped for as long as the block exists.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct BufferRegion {
    /// The segment's first byte (its header); null when `len` is 0.
    pub base: *mut u8,
    /// The segment's length in bytes; 0 when the block has no buffer.
    pub len: usize,
}

impl BufferRegion {
    /// No buffer.
    pub const NONE: BufferRegion = BufferRegion {
        base: std::ptr::null_mut(),
        len: 0,
    };
}

/// What `SubcontrollerVTable::trigger` does.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub enum TriggerMode {
    /// Fire, failing when not allowed. Answers `true`.
    Trigger,
    /// Only answer whether it would be allowed.
    MayTrigger,
    /// Fire when allowed; answer whether it fired.
    IfAllowed,
}

/// Why a trigger failed.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct TriggerFailure {
    /// The kind of failure.
    pub kind: TriggerFailureKind,
    /// A message naming the trigger, the state and the conditions.
    pub message: RString,
}

/// The kind of a [`TriggerFailure`].
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub enum TriggerFailureKind {
    /// The trigger is not declared by the machine.
    UnknownTrigger,
    /// No transition for this trigger leaves the current state, or none of
    /// their conditions hold.
    NotAllowed,
    /// A condition predicate panicked or failed.
    ConditionFailed,
}

/// A closure to run later on the block, owned by the plugin that made it.
///
/// The host calls exactly one of `run` (which consumes `data`) or
/// `discard` (when the action is cancelled, for example at shutdown).
#[repr(C)]
#[derive(StableAbi)]
pub struct DelayedAction {
    /// The plugin's boxed closure.
    pub data: *mut c_void,
    /// Runs the closure on the block and frees it.
    pub run:
        extern "C" fn(data: *mut c_void, block: BlockPtr, ctx: &SubcontrollerFfi) -> FfiResult<()>,
    /// Frees the closure without running it.
    pub discard: extern "C" fn(data: *mut c_void),
}

/// Log levels, as in the original engine.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the block handled.
    Warning,
    /// Something failed.
    Error,
    /// The block cannot go on.
    Critical,
}
