//! The host's own types for what a plugin declares and exchanges: its state
//! machine and routes as data, events, route requests and replies, errors.
//!
//! They mirror the ABI types of `bitstream_sdk::ffi` field for field, with
//! standard-library containers instead of abi_stable's. Only
//! [`crate::plugin`] converts between the two, so the engine, the FSM, the
//! checks and the HTTP server never see an ABI type. This module depends on
//! no other module of the crate.

use bitstream_sdk::{Value, ValueMap};

/// A state machine as data, as a plugin declares it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MachineDesc {
    /// Every state, in declaration order.
    pub states: Vec<String>,
    /// Every trigger, in declaration order.
    pub triggers: Vec<String>,
    /// The state a new instance starts in.
    pub initial: String,
    /// The transitions, in the order they are tried.
    pub transitions: Vec<TransitionDesc>,
}

/// One transition of a [`MachineDesc`].
#[derive(Clone, Debug, PartialEq)]
pub struct TransitionDesc {
    /// The trigger that fires it.
    pub trigger: String,
    /// The states it leaves from: named states, or `FromAny` alone.
    pub sources: Vec<StateRef>,
    /// The state it enters: a named state or `ToSame`.
    pub dest: StateRef,
    /// Labelled conditions, all of which must hold.
    pub conditions: Vec<ConditionDesc>,
}

/// A state named in a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateRef {
    /// A declared state.
    State(String),
    /// Any state (valid only as the sole source).
    FromAny,
    /// The state the machine is in (valid only as a destination).
    ToSame,
}

/// A labelled condition; the plugin evaluates it by `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionDesc {
    /// The label shown on state diagrams, for example `packet rate > 0`.
    pub label: String,
    /// The plugin's identifier for the predicate.
    pub id: u32,
}

/// One HTTP route of a block, served at `/<block>/<name>`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteDesc {
    /// The URL segment (and the name of the route).
    pub name: String,
    /// The HTTP method, upper case.
    pub method: String,
    /// One sentence for listings and OpenAPI.
    pub summary: String,
    /// Path, query and body parameters.
    pub params: Vec<ParamDesc>,
}

/// One parameter of a route.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDesc {
    /// The parameter's name (the query key; for a body, a label).
    pub name: String,
    /// Where it comes from.
    pub location: ParamLocation,
    /// Its type; the host parses and checks it before calling the plugin.
    pub kind: ParamKind,
    /// Whether a request without it is refused with 400.
    pub required: bool,
    /// The value used when the request omits it.
    pub default: Option<Value>,
    /// For a body: a JSON Schema it must satisfy, if the route declares one.
    pub schema: Option<Value>,
}

/// Where a route parameter is taken from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamLocation {
    /// The segment after the route name: `/<block>/<route>/<value>`.
    Path,
    /// A query-string parameter.
    Query,
    /// The JSON request body.
    Body,
}

/// The type of a route parameter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
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

/// A route call, parsed and type-checked by the host.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RouteRequest {
    /// The path parameter's value, if the route has one and it was given.
    pub path: Option<String>,
    /// Query parameters by name, typed, with defaults filled in.
    pub query: ValueMap,
    /// The JSON body, if one was sent.
    pub body: Option<Value>,
}

/// What a route answers.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// Which event handlers a plugin overrides; the host applies the default
/// behaviour of the others (pulse: nothing; signal update: pass-through;
/// manual event: forward nothing) without calling the plugin.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HandlerOverrides {
    /// `pulse` is defined.
    pub pulse: bool,
    /// `signal_update` is defined.
    pub signal_update: bool,
    /// `manual_event` is defined.
    pub manual_event: bool,
}

/// One pulse (the firmware's pulse-per-second).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PulseEvent {
    /// Pulses since the emulator started, from 0.
    pub sequence: u64,
    /// When the pulse was generated, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
}

/// A manual event: an injection or a general event from upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct ManualEvent {
    /// `General` or `Injection`.
    pub subtype: ManualEventSubtype,
    /// `General`, `Warning` or `FatalError`.
    pub severity: Severity,
    /// The event's payload, usually a map.
    pub value: Value,
}

/// The subtype of a [`ManualEvent`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ManualEventSubtype {
    /// An event produced by a block.
    General,
    /// An event injected through `POST /inject`.
    Injection,
}

/// The severity of a [`ManualEvent`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Informational.
    General,
    /// Something degraded.
    Warning,
    /// The block should fault.
    FatalError,
}

/// How plugin code failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PluginErrorKind {
    /// The plugin code panicked; the panic was caught inside the plugin.
    Panicked,
    /// The plugin code returned an error.
    Failed,
}

/// An error returned by plugin code: a caught panic, or an error value with
/// the HTTP status it maps to.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginError {
    /// Whether the plugin panicked or returned an error.
    pub kind: PluginErrorKind,
    /// The HTTP status the error maps to when it ends a route call.
    pub status: u16,
    /// What went wrong, in words.
    pub message: String,
}

impl PluginError {
    /// A caught panic, reported as HTTP 500.
    pub fn panicked(message: impl Into<String>) -> Self {
        PluginError {
            kind: PluginErrorKind::Panicked,
            status: 500,
            message: message.into(),
        }
    }

    /// An error value with an HTTP status.
    pub fn failed(status: u16, message: impl Into<String>) -> Self {
        PluginError {
            kind: PluginErrorKind::Failed,
            status,
            message: message.into(),
        }
    }

    /// Whether the error should fault the block: panics and server errors
    /// do; a route's 4xx answer is a normal reply.
    pub fn is_fault(&self) -> bool {
        self.kind == PluginErrorKind::Panicked || self.status >= 500
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

/// What firing a trigger does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TriggerMode {
    /// Fire, failing when not allowed. Answers `true`.
    Trigger,
    /// Only answer whether it would be allowed.
    MayTrigger,
    /// Fire when allowed; answer whether it fired.
    IfAllowed,
}

/// Why a trigger failed.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerFailure {
    /// The kind of failure.
    pub kind: TriggerFailureKind,
    /// A message naming the trigger, the state and the conditions.
    pub message: String,
}

/// The kind of a [`TriggerFailure`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TriggerFailureKind {
    /// The trigger is not declared by the machine.
    UnknownTrigger,
    /// No transition for this trigger leaves the current state, or none of
    /// their conditions hold.
    NotAllowed,
    /// A condition predicate panicked or failed.
    ConditionFailed,
}

/// Log levels of messages from plugin code, as in the original engine.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// A name that is not a log level (see [`LogLevel`]'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a log level; use DEBUG, INFO, WARNING, ERROR or CRITICAL (any case), or TRACE"
)]
pub struct UnknownLogLevel(pub String);

impl std::str::FromStr for LogLevel {
    type Err = UnknownLogLevel;

    /// The names of Python's `logging` (the original engine's), in any
    /// case; also `TRACE`, and the aliases `WARN` and `FATAL`.
    fn from_str(text: &str) -> Result<Self, UnknownLogLevel> {
        match text.to_ascii_uppercase().as_str() {
            "TRACE" => Ok(LogLevel::Trace),
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARNING" | "WARN" => Ok(LogLevel::Warning),
            "ERROR" => Ok(LogLevel::Error),
            "CRITICAL" | "FATAL" => Ok(LogLevel::Critical),
            _ => Err(UnknownLogLevel(text.to_owned())),
        }
    }
}

impl std::fmt::Display for StateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateRef::State(name) => f.write_str(name),
            StateRef::FromAny => f.write_str("FROM_ANY"),
            StateRef::ToSame => f.write_str("TO_SAME"),
        }
    }
}

impl ManualEvent {
    /// An injected event.
    pub fn injection(severity: Severity, value: impl Into<Value>) -> Self {
        ManualEvent {
            subtype: ManualEventSubtype::Injection,
            severity,
            value: value.into(),
        }
    }
}

impl ManualEventSubtype {
    /// The name used on the wire: `GENERAL`, `INJECTION`.
    pub fn as_str(self) -> &'static str {
        match self {
            ManualEventSubtype::General => "GENERAL",
            ManualEventSubtype::Injection => "INJECTION",
        }
    }
}

impl Severity {
    /// The name used on the wire: `GENERAL`, `WARNING`, `FATAL_ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::General => "GENERAL",
            Severity::Warning => "WARNING",
            Severity::FatalError => "FATAL_ERROR",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "GENERAL" => Some(Severity::General),
            "WARNING" => Some(Severity::Warning),
            "FATAL_ERROR" => Some(Severity::FatalError),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_level_names_in_any_case() {
        for (text, level) in [
            ("DEBUG", LogLevel::Debug),
            ("debug", LogLevel::Debug),
            ("Info", LogLevel::Info),
            ("WARNING", LogLevel::Warning),
            ("warning", LogLevel::Warning),
            ("warn", LogLevel::Warning),
            ("ERROR", LogLevel::Error),
            ("critical", LogLevel::Critical),
            ("CRITICAL", LogLevel::Critical),
            ("fatal", LogLevel::Critical),
            ("trace", LogLevel::Trace),
        ] {
            assert_eq!(text.parse::<LogLevel>(), Ok(level), "{text}");
        }
        let err = "verbose".parse::<LogLevel>().unwrap_err().to_string();
        assert!(err.contains("\"verbose\" is not a log level"), "{err}");
        assert!(err.contains("WARNING") && err.contains("CRITICAL"), "{err}");
        assert!("".parse::<LogLevel>().is_err());
        assert!("info,plugin=debug".parse::<LogLevel>().is_err());
    }
}
