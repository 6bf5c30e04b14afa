//! [`Harness`]: one block, run in-process with the host's semantics.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bitstream_host::catalog::catalog_from_text;
use bitstream_host::checks::api::check_routes;
use bitstream_host::engine::block_buffer::{BlockBuffer, BufferMode};
use bitstream_host::fsm::{Machine, StateId};
use bitstream_host::model::{
    HandlerOverrides, LogLevel, ManualEvent, PluginError, TriggerFailure, TriggerMode,
};
use bitstream_host::plugin::{BlockInstance, Components, DelayedCall, RootModuleFn};
use bitstream_host::report::Severity as ProblemSeverity;
use bitstream_host::route::Route;
use bitstream_sdk::runtime::{InProcess, PluginDefinition};
use bitstream_sdk::{Value, ValueMap};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::dispatch::dispatch;
use crate::host::{fire, Deferred, KitCtx, Records};
use crate::{LogLine, Response};

/// The default block id of a harness (see [`Harness::with_id`]).
///
/// ```
/// # use bitstream_testkit::{example::Lamp, Harness, DEFAULT_BLOCK_ID};
/// assert_eq!(Harness::<Lamp>::new().block_id(), DEFAULT_BLOCK_ID);
/// ```
pub const DEFAULT_BLOCK_ID: &str = "block";

/// Something waiting on the virtual clock.
pub(crate) enum Timer {
    Delayed(DelayedCall),
    Manual(ManualEvent),
}

pub(crate) struct Scheduled {
    pub(crate) due: Duration,
    pub(crate) seq: u64,
    pub(crate) timer: Timer,
}

/// One block of plugin `B`, run in-process with the host's own code: the
/// host's state machine ([`bitstream_host::fsm::Machine`]), its plugin
/// wrapper ([`Components`], [`BlockInstance`]) over the plugin's own root
/// module, its route checks and parameter parsing, and the engine's rules
/// for events (a block's signal update before its pulse; default handlers
/// applied without calling the plugin; `force_signal_update` and
/// `delay_action` done after the call that asked; a failing handler faults
/// the block). Time is virtual: delayed actions run when the test
/// [`advance`](Harness::advance)s the clock. Log lines are captured, the
/// device buffer (when the plugin has a catalog) lives in process memory.
///
/// ```
/// use std::time::Duration;
/// use bitstream_testkit::example::Lamp;
/// use bitstream_testkit::Harness;
/// use serde_json::json;
///
/// let mut h = Harness::<Lamp>::new();
/// let r = h.post("on", json!({"brightness": 30}));
/// assert_eq!(r.status(), 200);
/// assert_eq!(h.state(), "ON");
/// h.pulse();
/// assert_eq!(h.get("status").json()["hours"], 1);
/// assert_eq!(h.post("off?after_ms=50", json!({})).status(), 202);
/// h.advance(Duration::from_millis(49));
/// assert_eq!(h.state(), "ON");
/// h.advance(Duration::from_millis(1));
/// assert_eq!(h.state(), "OFF");
/// assert_eq!(h.logged(bitstream_sdk::LogLevel::Info), ["on at 30", "off"]);
/// assert_eq!(h.buffer().get("hours").unwrap().to_json(), json!(1));
/// ```
pub struct Harness<B> {
    pub(crate) block_id: String,
    pub(crate) components: Components,
    pub(crate) machine: Arc<Machine>,
    pub(crate) routes: Vec<Route>,
    pub(crate) overrides: HandlerOverrides,
    // Declared before `buffer`: the instance (which may hold a handle on
    // the buffer) is dropped first, as in the engine.
    pub(crate) instance: BlockInstance,
    pub(crate) buffer: Option<BlockBuffer>,
    pub(crate) state: StateId,
    pub(crate) records: Records,
    pub(crate) signal: ValueMap,
    pub(crate) last_input: Vec<Value>,
    pub(crate) last_output: Vec<Value>,
    pub(crate) pulses: u64,
    pub(crate) now: Duration,
    pub(crate) timers: Vec<Scheduled>,
    pub(crate) next_seq: u64,
    pub(crate) fault: Option<String>,
    _block: PhantomData<fn() -> B>,
}

impl<B> Harness<B> {
    /// A harness for one block of the plugin that exports ip_block `B`
    /// (with `export_plugin!` or `define_plugin!`), in its initial state,
    /// with default constants. Panics, naming every problem, when the host
    /// would refuse the plugin (an ill-formed machine or route table, a bad
    /// catalog).
    ///
    /// ```
    /// use bitstream_testkit::{example::Lamp, Harness};
    /// let h = Harness::<Lamp>::new();
    /// assert_eq!(h.state(), "OFF");
    /// ```
    #[track_caller]
    pub fn new<P>() -> Self
    where
        P: PluginDefinition<Block = B>,
        B: InProcess<P>,
    {
        let components = Components::in_process::<B, P>()
            .unwrap_or_else(|missing| panic!("the plugin misses components {missing:?}"));
        Self::from_components(components)
    }

    /// A harness for one block of a plugin, built from the module the
    /// plugin exports: `root_module` is the function `export_plugin!`
    /// defines at the plugin crate's root, `__bitstream_root_module`, the
    /// one the library hands the host's loader. The block runs through the
    /// same component tables a loaded `.so` would give the engine (the
    /// plugin's name and version, its catalog, every route and handler as
    /// exported), in this process, with the same rules as
    /// [`new`](Self::new). Use it to test what the crate exports rather than
    /// its definition, or a plugin that assembles its module itself.
    ///
    /// `B` must be the plugin's ip_block type: the harness panics, naming
    /// both, when the module exports another (and, as `new`, when the host
    /// would refuse the plugin).
    ///
    /// ```
    /// use bitstream_sdk::prelude::*;
    /// use bitstream_testkit::Harness;
    /// use serde_json::json;
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// pub struct Counter {
    ///     count: u64,
    /// }
    ///
    /// bitstream_sdk::export_plugin! {
    ///     ip_block: Counter,
    ///     state_machine: || StateMachine::new(["IDLE"], "IDLE"),
    ///     api: || Api::new().route(Route::post("add", |b: &mut Counter, _ctx, _req| {
    ///         b.count += 1;
    ///         Ok(Response::json(&b.count))
    ///     })),
    ///     event_handler: || EventHandler::<Counter>::new().on_pulse(|b, _ctx, _pulse| {
    ///         b.count += 10;
    ///         Ok(())
    ///     }),
    /// }
    ///
    /// # fn main() {
    /// // In a plugin crate's tests: `my_plugin::__bitstream_root_module`.
    /// let mut h = Harness::<Counter>::for_plugin(__bitstream_root_module);
    /// assert_eq!(h.post("add", json!({})).json(), json!(1));
    /// h.pulse();
    /// assert_eq!(h.block().count, 11);
    /// # }
    /// ```
    #[track_caller]
    pub fn for_plugin(root_module: RootModuleFn) -> Self {
        let components = Components::from_root_module(root_module)
            .unwrap_or_else(|missing| panic!("the plugin misses components {missing:?}"));
        let exported = components.ip_block_type_name();
        let wanted = std::any::type_name::<B>();
        assert!(
            exported == wanted,
            "the plugin's module exports ip_block `{exported}`, not `{wanted}`: \
             make the harness with Harness::<{}>::for_plugin",
            short_name(exported)
        );
        Self::from_components(components)
    }

    #[track_caller]
    fn from_components(components: Components) -> Self {
        let name = components.ip_block_type_name();
        let desc = components
            .describe_machine()
            .unwrap_or_else(|e| panic!("{name}: its state machine cannot be described: {e}"));
        let machine = Machine::new(desc).unwrap_or_else(|problems| {
            panic!("{name}: the host refuses its state machine: {problems:#?}")
        });
        let routes = components
            .describe_routes()
            .unwrap_or_else(|e| panic!("{name}: its routes cannot be described: {e}"));
        let problems: Vec<_> = check_routes(&routes)
            .into_iter()
            .filter(|p| p.severity == ProblemSeverity::Error)
            .collect();
        assert!(
            problems.is_empty(),
            "{name}: the host refuses its routes: {problems:#?}"
        );
        let routes = Route::compile_all(routes).unwrap_or_else(|invalid| {
            let messages: Vec<String> = invalid.iter().map(ToString::to_string).collect();
            panic!(
                "{name}: the host refuses its routes: {}",
                messages.join("; ")
            )
        });
        let buffer = components.declared_catalog().map(|text| {
            let catalog = catalog_from_text(&text, None, short_name(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            BlockBuffer::create(
                &catalog.buffer_type,
                BufferMode::Local,
                "testkit",
                DEFAULT_BLOCK_ID,
            )
            .unwrap_or_else(|e| panic!("{name}: its device buffer cannot be made: {e}"))
        });
        let instance = components
            .create_block()
            .unwrap_or_else(|e| panic!("{name}: creating the block failed: {e}"));
        let overrides = components.overrides();
        let state = machine.initial();
        Harness {
            block_id: DEFAULT_BLOCK_ID.to_owned(),
            components,
            machine: Arc::new(machine),
            routes,
            overrides,
            instance,
            buffer,
            state,
            records: Records::default(),
            signal: default_signal(),
            last_input: Vec::new(),
            last_output: Vec::new(),
            pulses: 0,
            now: Duration::ZERO,
            timers: Vec::new(),
            next_seq: 0,
            fault: None,
            _block: PhantomData,
        }
    }

    /// The same harness with block id `id` (what plugin code sees in its
    /// log lines and errors; default [`DEFAULT_BLOCK_ID`]).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let h = Harness::<Lamp>::new().with_id("lamp_1");
    /// assert_eq!(h.block_id(), "lamp_1");
    /// ```
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.block_id = id.into();
        self
    }

    /// The block id.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(Harness::<Lamp>::new().block_id(), "block");
    /// ```
    pub fn block_id(&self) -> &str {
        &self.block_id
    }

    /// Assigns config `constants` (a JSON object) over the block's current
    /// values, as the engine does when it creates a block; the error names
    /// the field and the type, as the engine's would.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use serde_json::json;
    /// let mut h = Harness::<Lamp>::new();
    /// h.apply_constants(json!({"max_brightness": 10})).unwrap();
    /// assert_eq!(h.post("dim/20", json!({})).status(), 400);
    /// assert!(h.apply_constants(json!({"nope": 1})).is_err());
    /// ```
    pub fn apply_constants(&mut self, constants: Json) -> Result<(), String> {
        let map = match Value::from(constants) {
            Value::Map(map) => map,
            other => return Err(format!("constants must be a JSON object, not {other}")),
        };
        self.instance
            .apply_constants(&map)
            .map_err(|e| e.to_string())
    }

    /// [`apply_constants`](Self::apply_constants) that panics on an error,
    /// for building a harness in one expression.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new().with_constants(serde_json::json!({"max_brightness": 5}));
    /// assert_eq!(h.snapshot()["max_brightness"], 5);
    /// ```
    #[track_caller]
    pub fn with_constants(mut self, constants: Json) -> Self {
        if let Err(e) = self.apply_constants(constants) {
            panic!("constants refused: {e}");
        }
        self
    }

    // -- state ------------------------------------------------------------

    /// The block's current state.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(Harness::<Lamp>::new().state(), "OFF");
    /// ```
    pub fn state(&self) -> String {
        self.machine.state_name(self.state).to_owned()
    }

    /// Puts the block in `state` without firing anything (test setup; the
    /// host itself never does this). Panics on a state the machine lacks.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.set_state("FAULT");
    /// assert_eq!(h.state(), "FAULT");
    /// ```
    #[track_caller]
    pub fn set_state(&mut self, state: &str) {
        self.state = self.machine.state_id(state).unwrap_or_else(|| {
            let states: Vec<&str> = self.machine.states().map(|(_, s)| s).collect();
            panic!("no state {state:?}; the machine has {states:?}")
        });
    }

    /// Fires `trigger` with `args` from outside, as plugin code's
    /// `ctx.trigger` would (conditions run in the plugin): `Err` when not
    /// allowed, unknown, or a condition failed.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert!(h.trigger("SWITCH_ON", [("brightness", 0)]).is_err());
    /// h.trigger("SWITCH_ON", [("brightness", 5)]).unwrap();
    /// assert_eq!(h.state(), "ON");
    /// ```
    pub fn trigger(
        &mut self,
        trigger: &str,
        args: impl Into<ValueMap>,
    ) -> Result<(), TriggerFailure> {
        self.fire(trigger, args.into(), TriggerMode::Trigger)
            .map(drop)
    }

    /// Whether `trigger` with `args` would fire now.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert!(!h.may_trigger("SWITCH_ON", ()));
    /// assert!(h.may_trigger("SWITCH_ON", [("brightness", 1)]));
    /// ```
    pub fn may_trigger(&mut self, trigger: &str, args: impl Into<ValueMap>) -> bool {
        self.fire(trigger, args.into(), TriggerMode::MayTrigger)
            .unwrap_or(false)
    }

    fn fire(
        &mut self,
        trigger: &str,
        args: ValueMap,
        mode: TriggerMode,
    ) -> Result<bool, TriggerFailure> {
        let state = Cell::new(self.state);
        let fired = fire(
            &self.machine,
            &self.components,
            &state,
            trigger,
            &args,
            mode,
        )?;
        if fired && mode != TriggerMode::MayTrigger {
            self.records.fired.borrow_mut().push(trigger.to_owned());
        }
        self.state = state.get();
        Ok(fired)
    }

    /// The triggers that fired so far, in order (by plugin code or by
    /// [`trigger`](Self::trigger)).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.post("on", serde_json::json!({"brightness": 3}));
    /// assert_eq!(h.fired(), ["SWITCH_ON"]);
    /// ```
    pub fn fired(&self) -> Vec<String> {
        self.records.fired.borrow().clone()
    }

    /// Why the block faulted (a handler failed or panicked), if it did.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(Harness::<Lamp>::new().fault(), None);
    /// ```
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    /// The block's data, serialized (what its ip_block serializes to).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.post("dim/7", serde_json::json!({}));
    /// assert_eq!(h.snapshot()["brightness"], 7);
    /// ```
    #[track_caller]
    pub fn snapshot(&mut self) -> Json {
        match self.instance.snapshot() {
            Ok(value) => value.into(),
            Err(e) => panic!("the block's data cannot be serialized: {e}"),
        }
    }

    /// The block's data as a `B` (its [`snapshot`](Self::snapshot) read
    /// back; fields the type skips when serializing come back as their
    /// defaults).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.post("dim/7", serde_json::json!({}));
    /// assert_eq!(h.block().brightness, 7);
    /// ```
    #[track_caller]
    pub fn block(&mut self) -> B
    where
        B: DeserializeOwned,
    {
        let snapshot = self.snapshot();
        serde_json::from_value(snapshot)
            .unwrap_or_else(|e| panic!("the block's snapshot does not read back: {e}"))
    }

    // -- calls --------------------------------------------------------------

    /// Runs `call` on the block with a subcontroller; keeps the state the
    /// call left and answers the work it deferred.
    pub(crate) fn call<R>(
        &mut self,
        call: impl FnOnce(&mut BlockInstance, &KitCtx<'_>) -> R,
    ) -> (R, Vec<Deferred>) {
        let ctx = KitCtx {
            block_id: &self.block_id,
            machine: &self.machine,
            components: &self.components,
            buffer: self.buffer.as_ref().map(BlockBuffer::region),
            records: &self.records,
            state: Cell::new(self.state),
            deferred: Default::default(),
        };
        let result = call(&mut self.instance, &ctx);
        self.state = ctx.state.get();
        (result, ctx.deferred.into_inner())
    }

    /// Marks the block faulted, as the engine does: its FAULT state when
    /// its machine has one.
    pub(crate) fn mark_fault(&mut self, what: &str, err: &PluginError) {
        let reason = format!("{what} failed: {err}");
        self.host_log(
            LogLevel::Error,
            &format!("{reason}; the block is marked faulted"),
        );
        if let Some(fault) = self.machine.state_id("FAULT") {
            self.state = fault;
        }
        self.fault = Some(reason);
    }

    pub(crate) fn host_log(&self, level: LogLevel, message: &str) {
        self.records.logs.borrow_mut().push(LogLine {
            level,
            message: message.to_owned(),
        });
    }

    /// Does what a call deferred (the engine's order: a forced signal
    /// update re-runs the handler on the last input; delays are scheduled).
    pub(crate) fn finish(&mut self, deferred: Vec<Deferred>) {
        for work in deferred {
            match work {
                Deferred::ForceSignalUpdate => {
                    let input = self.last_input.clone();
                    self.last_output = self.run_signal(input);
                }
                Deferred::Delay(delay, action) => self.schedule(delay, Timer::Delayed(action)),
            }
        }
    }

    pub(crate) fn schedule(&mut self, delay: Duration, timer: Timer) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.timers.push(Scheduled {
            due: self.now + delay,
            seq,
            timer,
        });
    }

    // -- routes -------------------------------------------------------------

    /// Calls a route as the HTTP API would: `target` is
    /// `<route>[/<path value>][?<query>]`, `body` the raw request body.
    /// Unknown routes answer 404, a wrong method 405, a bad parameter or
    /// body 400 (naming it), a failing handler its error's status, all as
    /// `{"error": "..."}`. What the call deferred is done before this
    /// returns.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert_eq!(h.request("POST", "on", b"{not json").status(), 400);
    /// assert_eq!(h.request("GET", "on", b"").status(), 405);
    /// ```
    pub fn request(&mut self, method: &str, target: &str, body: &[u8]) -> Response {
        let (index, request) = match dispatch(&self.block_id, &self.routes, method, target, body) {
            Ok(found) => found,
            Err(response) => return response,
        };
        let (result, deferred) =
            self.call(|instance, host| instance.call_route(host, index as u32, &request));
        if let Err(err) = &result {
            if err.is_fault() {
                let name = self.routes[index].name.clone();
                self.mark_fault(&format!("route \"{name}\""), err);
            }
        }
        self.finish(deferred);
        match result {
            Ok(response) => Response::new(response.status, response.body.map(Json::from)),
            Err(err) => Response::error_with(err.status, err.to_string()),
        }
    }

    /// `GET target` (see [`request`](Self::request)).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert_eq!(h.get("status").json()["state"], "OFF");
    /// ```
    pub fn get(&mut self, target: &str) -> Response {
        self.request("GET", target, b"")
    }

    /// `POST target` with `body` as JSON (see [`request`](Self::request)).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use serde_json::json;
    /// let mut h = Harness::<Lamp>::new();
    /// assert_eq!(h.post("on", json!({"brightness": 9})).status(), 200);
    /// assert_eq!(h.post("dim/x", json!({})).status(), 400);
    /// ```
    pub fn post(&mut self, target: &str, body: Json) -> Response {
        self.request("POST", target, body.to_string().as_bytes())
    }

    /// `PUT target` with `body` as JSON.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert_eq!(h.put("on", serde_json::json!({})).status(), 405);
    /// ```
    pub fn put(&mut self, target: &str, body: Json) -> Response {
        self.request("PUT", target, body.to_string().as_bytes())
    }

    /// `DELETE target`.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert_eq!(h.delete("status").status(), 405);
    /// ```
    pub fn delete(&mut self, target: &str) -> Response {
        self.request("DELETE", target, b"")
    }
}

fn short_name(type_name: &str) -> &str {
    type_name.rsplit("::").next().unwrap_or(type_name)
}

/// The generated signal when a test sets none: what the engine sends
/// `first` blocks by default.
///
/// ```
/// assert_eq!(
///     bitstream_sdk::Value::Map(bitstream_testkit::default_signal()),
///     bitstream_sdk::Value::from(serde_json::json!({"packet_rate": 1_000_000}))
/// );
/// ```
pub fn default_signal() -> ValueMap {
    bitstream_host::engine::default_signal()
}
