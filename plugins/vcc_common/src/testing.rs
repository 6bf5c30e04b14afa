//! For the plugins' unit tests (feature `testing`): a stand-in engine that
//! runs a plugin's real state machine, and small builders and checks.
//!
//! A plugin enables it in its dev-dependencies only:
//!
//! ```toml
//! [dev-dependencies]
//! vcc-common = { path = "../vcc_common", features = ["testing"] }
//! ```

use std::cell::{Cell, RefCell};

use bitstream_sdk::api::RouteDesc;
use bitstream_sdk::machine::{Condition, MachineDesc, StateRef};
use bitstream_sdk::prelude::*;
use serde::de::DeserializeOwned;

use crate::Control;

/// A stand-in engine: runs a plugin's real [`StateMachine`] (split with
/// [`StateMachine::into_parts`]) with the engine's rules (the first
/// transition in declaration order whose source matches and whose
/// conditions all hold fires) and records what the handlers do: the
/// triggers fired, the forced signal updates and the log lines.
pub struct Fake {
    desc: MachineDesc,
    conditions: Vec<Condition>,
    state: RefCell<String>,
    fired: RefCell<Vec<String>>,
    forced: Cell<usize>,
    logs: RefCell<Vec<(LogLevel, String)>>,
}

impl Fake {
    /// An engine running `machine`, in its initial state.
    pub fn new(machine: StateMachine) -> Self {
        let (desc, conditions) = machine.into_parts();
        let state = RefCell::new(desc.initial.to_string());
        Fake {
            desc,
            conditions,
            state,
            fired: RefCell::default(),
            forced: Cell::new(0),
            logs: RefCell::default(),
        }
    }

    /// An engine running `machine`, put in `state` (which must be one of
    /// the machine's states) without firing anything.
    #[track_caller]
    pub fn in_state(machine: StateMachine, state: &str) -> Self {
        let fake = Fake::new(machine);
        assert!(fake.desc.has_state(state), "{state}");
        *fake.state.borrow_mut() = state.to_owned();
        fake
    }

    /// The current state.
    pub fn state(&self) -> String {
        self.state.borrow().clone()
    }

    /// The triggers that fired, in order.
    pub fn fired(&self) -> Vec<String> {
        self.fired.borrow().clone()
    }

    /// How many signal updates were forced.
    pub fn forced(&self) -> usize {
        self.forced.get()
    }

    /// The messages logged at `level`, in order.
    pub fn logged(&self, level: LogLevel) -> Vec<String> {
        self.logs
            .borrow()
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Where `trigger` would lead now, if it may fire. An undeclared
    /// trigger is a bug of the test or the plugin: it panics.
    fn target(&self, trigger: &str, args: &ValueMap) -> Option<String> {
        assert!(self.desc.has_trigger(trigger), "undeclared {trigger}");
        let state = self.state();
        self.desc
            .transitions
            .iter()
            .filter(|t| t.trigger.as_str() == trigger && t.leaves_from(&state))
            .find(|t| {
                t.conditions
                    .iter()
                    .all(|c| (self.conditions[c.id as usize])(args))
            })
            .map(|t| match &t.dest {
                StateRef::State(dest) => dest.to_string(),
                _ => state.clone(),
            })
    }
}

impl Control for Fake {
    fn get_state(&self) -> String {
        self.state()
    }
    fn may_trigger(&self, trigger: &str, args: impl Into<ValueMap>) -> bool {
        self.target(trigger, &args.into()).is_some()
    }
    fn trigger(&self, trigger: &str, args: impl Into<ValueMap>) -> Result<(), Error> {
        if self.trigger_if_allowed(trigger, args) {
            Ok(())
        } else {
            Err(Error::conflict(format!(
                "{trigger} not allowed in {}",
                self.state()
            )))
        }
    }
    fn trigger_if_allowed(&self, trigger: &str, args: impl Into<ValueMap>) -> bool {
        match self.target(trigger, &args.into()) {
            Some(dest) => {
                *self.state.borrow_mut() = dest;
                self.fired.borrow_mut().push(trigger.to_owned());
                true
            }
            None => false,
        }
    }
    fn force_signal_update(&self) -> Result<(), Error> {
        self.forced.set(self.forced.get() + 1);
        Ok(())
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}

/// A request with `body` as its JSON body, as the host builds it.
pub fn request(body: serde_json::Value) -> Request {
    Request::new(None, ValueMap::new(), Some(Value::from(body)))
}

/// `body` (JSON text) checked against `schema` and read as a `T`, as a
/// route built with [`checked_route`](crate::checked_route) does.
pub fn checked<T: DeserializeOwned>(schema: serde_json::Value, body: &str) -> Result<T, Error> {
    let body: serde_json::Value = serde_json::from_str(body).expect("test bodies are JSON");
    crate::checked_body(&request(body), &crate::schema(schema))
}

/// A signal-update event carrying `packet_rate`.
pub fn rate(packet_rate: f64) -> Value {
    [("packet_rate", packet_rate)].into_iter().collect()
}

/// An injected event of severity WARNING carrying `value`.
pub fn injection(value: serde_json::Value) -> ManualEvent {
    ManualEvent::injection(Severity::Warning, Value::from(value))
}

/// The routes every VCC block serves, as (method, name), in the order the
/// plugins declare them.
pub const COMMON_ROUTES: [(&str, &str); 6] = [
    ("POST", "configure"),
    ("POST", "deconfigure"),
    ("POST", "recover"),
    ("POST", "start"),
    ("POST", "stop"),
    ("GET", "status"),
];

/// Asserts that `routes` (an api's `describe()`) are exactly
/// [`COMMON_ROUTES`], in order.
#[track_caller]
pub fn assert_common_routes(routes: &[RouteDesc]) {
    let names: Vec<(&str, &str)> = routes
        .iter()
        .map(|r| (r.method.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(names, COMMON_ROUTES);
}

/// The JSON Schema `route` publishes for its body, if it has a body
/// parameter with one.
pub fn published_schema(route: &RouteDesc) -> Option<serde_json::Value> {
    let body = route.params.iter().find(|p| p.name.as_str() == "body")?;
    body.schema
        .clone()
        .into_option()
        .map(serde_json::Value::from)
        .map(|mut schema| {
            // The marker of a schema the handler checks itself is not part
            // of the reference's schema.
            if let Some(map) = schema.as_object_mut() {
                map.remove(bitstream_sdk::schema::CHECKED_IN_HANDLER);
            }
            schema
        })
}

/// Whether the route's handler checks its body itself (its schema was
/// published with `Route::body_with_schema_checked_in_handler`), so that
/// the host does not refuse a body first.
pub fn checked_in_handler(route: &RouteDesc) -> bool {
    route
        .params
        .iter()
        .find(|p| p.name.as_str() == "body")
        .and_then(|body| body.schema.clone().into_option())
        .map(serde_json::Value::from)
        .is_some_and(|schema| schema[bitstream_sdk::schema::CHECKED_IN_HANDLER] == true)
}

/// The transitions of `machine`, one line each in declaration order:
/// `TRIGGER: SOURCE, SOURCE -> DEST [label] [label]`, with `*` for any
/// state (`FROM_ANY`) and `=` for the same state (`TO_SAME`).
pub fn transition_lines(machine: &StateMachine) -> Vec<String> {
    let name = |state: &StateRef| match state {
        StateRef::State(name) => name.to_string(),
        StateRef::FromAny => "*".to_owned(),
        StateRef::ToSame => "=".to_owned(),
    };
    machine
        .describe()
        .transitions
        .iter()
        .map(|t| {
            let sources: Vec<String> = t.sources.iter().map(name).collect();
            let labels: String = t
                .conditions
                .iter()
                .map(|c| format!(" [{}]", c.label))
                .collect();
            format!(
                "{}: {} -> {}{labels}",
                t.trigger,
                sources.join(", "),
                name(&t.dest)
            )
        })
        .collect()
}

/// The keys of a JSON object, in order (`value` must be an object).
#[track_caller]
pub fn keys(value: &serde_json::Value) -> Vec<&str> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// The states of `machine`, in declaration order.
pub fn state_names(machine: &StateMachine) -> Vec<String> {
    let desc = machine.describe();
    desc.states.iter().map(|s| s.to_string()).collect()
}

/// The labels of `machine`'s conditions, in declaration order (their
/// position is their id).
pub fn condition_labels(machine: &StateMachine) -> Vec<String> {
    let desc = machine.describe();
    desc.transitions
        .iter()
        .flat_map(|t| t.conditions.iter().map(|c| c.label.to_string()))
        .collect()
}
