//! The engine at its own layer: packages built from the fixture plugins
//! (mostly the `probe`, whose blocks record every event in their `log`),
//! loaded in-process with [`Emulator::load`] and driven through the engine's
//! public API, without HTTP. `http_api.rs` tests the same behaviour through
//! the binary.
//!
//! Every emulator here runs without real-time pulses unless a test starts
//! them, so pulses come only from `run_pulses` (synchronous) and every
//! assertion on a log is exact. Work the driver does by itself (delayed
//! actions, injections, propagation) is awaited by polling with
//! [`PATIENCE`]; delays are checked as lower bounds only.

mod support;

use std::ops::Deref;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bitstream_host::engine::block_buffer::BufferMode;
use bitstream_host::engine::events::{EventData, EventKind, Filter, Received, Subscription};
use bitstream_host::engine::{
    CallError, Emulator, EngineOptions, InjectError, PulseRun, RunState, RunStateError,
    StartupError, MAX_INJECTION_DELAY,
};
use bitstream_host::model::{
    ManualEvent, ManualEventSubtype, ParamKind, ParamLocation, PluginErrorKind, RouteRequest,
    RouteResponse, Severity,
};
use bitstream_sdk::{Value as SdkValue, ValueMap};
use serde_json::{json, Value};
use support::{lines, package, probe_package, wait_for, PATIENCE};
use tempfile::TempDir;

/// The handler timeout of emulators that are not meant to hang: long
/// enough that a loaded machine never trips it.
const CALM_TIMEOUT: Duration = Duration::from_secs(10);

/// The handler timeout of emulators whose handlers hang on purpose.
const HANG_TIMEOUT: Duration = Duration::from_millis(500);

/// The default generated signal, as the probe logs it.
const DEFAULT_SIGNAL_LINE: &str = r#"signal [{"packet_rate":1000000}]"#;

/// The options every test uses: no real-time pulses, stopped, heap buffers.
fn options(handler_timeout: Duration) -> EngineOptions {
    EngineOptions {
        pulse_period: None,
        start_running: false,
        buffers: BufferMode::Local,
        handler_timeout,
        ..Default::default()
    }
}

/// A loaded emulator and the package it came from; terminated when dropped.
struct Probe {
    emu: Emulator,
    _package: TempDir,
}

impl Deref for Probe {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.emu.terminate();
    }
}

impl Probe {
    /// Loads a `probe`-only package of `config`, not hanging on purpose.
    fn load(config: &Value) -> Probe {
        Self::load_with(config, options(CALM_TIMEOUT))
    }

    /// Loads a `probe`-only package of `config` with `options`.
    fn load_with(config: &Value, options: EngineOptions) -> Probe {
        let package = probe_package(config);
        let emu = Emulator::load(package.path(), options)
            .unwrap_or_else(|e| panic!("loading {config}: {e}"));
        Probe {
            emu,
            _package: package,
        }
    }

    /// The index of block `id`.
    #[track_caller]
    fn index(&self, id: &str) -> usize {
        self.block_index(id)
            .unwrap_or_else(|| panic!("no block {id}"))
    }

    /// The index of route `name` in block `id`'s route table.
    #[track_caller]
    fn route_id(&self, id: &str, name: &str) -> u32 {
        let plugin = self.blocks()[self.index(id)].plugin();
        let routes = &plugin.routes;
        let position = routes
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_else(|| panic!("no route {name} in {routes:?}"));
        position as u32
    }

    /// A request for route `name` of block `id` as the HTTP layer builds
    /// one: the `given` query values, every other declared query parameter
    /// at its default.
    #[track_caller]
    fn request(
        &self,
        id: &str,
        name: &str,
        path: Option<&str>,
        given: &[(&str, SdkValue)],
        body: Option<Value>,
    ) -> RouteRequest {
        let plugin = self.blocks()[self.index(id)].plugin();
        let desc = &plugin.routes[self.route_id(id, name) as usize];
        let mut query = ValueMap::new();
        for param in desc
            .params
            .iter()
            .filter(|p| p.location == ParamLocation::Query)
        {
            let value = given
                .iter()
                .find(|(k, _)| *k == param.name)
                .map(|(_, v)| v.clone())
                .or_else(|| param.default.clone());
            if let Some(value) = value {
                query.insert(param.name.as_str(), value);
            }
        }
        for (key, _) in given {
            assert!(query.contains_key(key), "route {name} declares no {key}");
        }
        RouteRequest {
            path: path.map(str::to_owned),
            query,
            body: body.map(SdkValue::from),
        }
    }

    /// Calls route `name` of block `id` with `request`.
    #[track_caller]
    fn call(
        &self,
        id: &str,
        name: &str,
        request: &RouteRequest,
    ) -> Result<RouteResponse, CallError> {
        self.call_route(self.index(id), self.route_id(id, name), request)
    }

    /// Calls route `name` of block `id` with its defaults and no body.
    #[track_caller]
    fn call_plain(&self, id: &str, name: &str) -> Result<RouteResponse, CallError> {
        let request = self.request(id, name, None, &[], None);
        self.call(id, name, &request)
    }

    /// The block as JSON (its snapshot).
    #[track_caller]
    fn snapshot(&self, id: &str) -> Value {
        let value = self
            .block_snapshot(self.index(id))
            .unwrap_or_else(|e| panic!("snapshot of {id}: {e}"));
        serde_json::to_value(&value).expect("a snapshot is JSON")
    }

    /// The probe block's `log`.
    #[track_caller]
    fn log(&self, id: &str) -> Vec<String> {
        lines(&self.snapshot(id)["log"])
    }

    /// The probe block's pulse count.
    #[track_caller]
    fn pulses(&self, id: &str) -> u64 {
        self.snapshot(id)["pulses"].as_u64().expect("pulses")
    }

    /// Empties the probe block's `log` (`GET status?clear=true`).
    #[track_caller]
    fn clear_log(&self, id: &str) {
        let request = self.request(id, "status", None, &[("clear", true.into())], None);
        let reply = self
            .call(id, "status", &request)
            .unwrap_or_else(|e| panic!("status of {id}: {e}"));
        assert_eq!(reply.status, 200);
        assert!(self.log(id).is_empty());
    }

    /// The current state of block `id`.
    #[track_caller]
    fn state(&self, id: &str) -> String {
        self.block_state(self.index(id))
            .unwrap_or_else(|e| panic!("state of {id}: {e}"))
    }

    /// Runs `count` pulses, which must all run.
    #[track_caller]
    fn pulse(&self, count: u64) {
        let run = self
            .run_pulses(count)
            .unwrap_or_else(|e| panic!("{count} pulses: {e}"));
        assert_eq!(run.pulses, count);
    }

    /// `run_pulses(count)` on another thread, giving up after [`PATIENCE`]
    /// (a batch that never answers fails the test instead of hanging it).
    #[track_caller]
    fn run_pulses_within(&self, count: u64) -> Result<PulseRun, CallError> {
        let (sent, received) = mpsc::channel();
        let handle = self.emu.clone();
        thread::spawn(move || {
            let _ = sent.send(handle.run_pulses(count));
        });
        received
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("{count} pulses did not answer within {PATIENCE:?}"))
    }

    /// Waits until block `id`'s log is not empty, and answers it.
    #[track_caller]
    fn wait_log(&self, id: &str) -> Vec<String> {
        wait_for(&format!("a log line at {id}"), PATIENCE, || {
            let log = self.log(id);
            (!log.is_empty()).then_some(log)
        })
    }
}

/// `constants` with `name` set to `id`.
fn named(id: &str, constants: Value) -> Value {
    let mut constants = constants;
    constants["name"] = json!(id);
    constants
}

/// `a -> b`, `first: [a]`.
fn pair(a: Value, b: Value) -> Value {
    json!({
        "id": "probe_pair",
        "version": "0.0.1",
        "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": named("a", a)},
            {"id": "b", "type": "probe", "constants": named("b", b)},
        ],
    })
}

fn plain_pair() -> Value {
    pair(json!({}), json!({}))
}

/// The ids of blocks given by index.
fn ids(emu: &Emulator, blocks: &[usize]) -> Vec<String> {
    blocks.iter().map(|&b| emu.blocks()[b].id.clone()).collect()
}

/// An injection of `value` with `severity`.
fn injection(severity: Severity, value: Value) -> ManualEvent {
    ManualEvent::injection(severity, SdkValue::from(value))
}

/// The plugin error of a route call that must have failed with one.
#[track_caller]
fn plugin_error(result: Result<RouteResponse, CallError>) -> bitstream_host::model::PluginError {
    match result {
        Err(CallError::Plugin(err)) => err,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

// 1. Pulse order and signal lists ---------------------------------------------

#[test]
fn pulses_visit_upstream_first_and_fan_in_concatenates_in_config_order() {
    // Config order: sink, y, src, x. src lists x before y, but y comes first
    // in the config.
    let config = json!({
        "id": "shuffled", "version": "0.0.1", "first": ["src"],
        "ip_blocks": [
            {"id": "sink", "type": "probe", "constants": {"name": "sink"}},
            {"id": "y", "type": "probe", "downstream_block_ids": ["sink"], "constants": {"name": "y", "add_signal": true}},
            {"id": "src", "type": "probe", "downstream_block_ids": ["x", "y"], "constants": {"name": "src"}},
            {"id": "x", "type": "probe", "downstream_block_ids": ["sink"], "constants": {"name": "x", "add_signal": true}},
        ],
    });
    let emu = Probe::load(&config);
    assert_eq!(ids(&emu, emu.chain().order()), ["src", "y", "x", "sink"]);
    assert_eq!(
        ids(&emu, emu.chain().upstream(emu.index("sink"))),
        ["y", "x"]
    );
    assert_eq!(emu.pulse_count(), 0);
    for id in ["src", "x", "y", "sink"] {
        assert!(emu.log(id).is_empty(), "{id}: nothing before a pulse");
    }

    emu.pulse(1);
    assert_eq!(emu.pulse_count(), 1);
    assert_eq!(emu.log("src"), [DEFAULT_SIGNAL_LINE, "pulse 0"]);
    assert_eq!(emu.log("x"), [DEFAULT_SIGNAL_LINE, "pulse 0"]);
    assert_eq!(emu.log("y"), [DEFAULT_SIGNAL_LINE, "pulse 0"]);
    // In its very first pulse the sink already gets what x and y returned
    // in that pulse (it would get `[]` had it run before them), y's first
    // (config order), then its pulse.
    assert_eq!(
        emu.log("sink"),
        [
            r#"signal [{"packet_rate":1000000},{"from":"y"},{"packet_rate":1000000},{"from":"x"}]"#,
            "pulse 0"
        ]
    );

    // A new generated signal reaches the end of the chain in the same pulse.
    emu.set_signal([("packet_rate", 7)].into())
        .expect("a valid signal");
    for id in ["src", "x", "y", "sink"] {
        emu.clear_log(id);
    }
    emu.pulse(2);
    assert_eq!(
        emu.log("sink"),
        [
            r#"signal [{"packet_rate":7},{"from":"y"},{"packet_rate":7},{"from":"x"}]"#,
            "pulse 1",
            r#"signal [{"packet_rate":7},{"from":"y"},{"packet_rate":7},{"from":"x"}]"#,
            "pulse 2"
        ]
    );
    assert_eq!(
        emu.log("src"),
        [
            r#"signal [{"packet_rate":7}]"#,
            "pulse 1",
            r#"signal [{"packet_rate":7}]"#,
            "pulse 2"
        ]
    );
    for id in ["src", "x", "y", "sink"] {
        assert_eq!(emu.pulses(id), 3, "{id}");
    }
    assert_eq!(emu.pulse_count(), 3);
}

#[test]
fn first_blocks_get_the_generated_signal_before_their_upstream_lists() {
    // m is `first` and downstream of a; lone is neither; the config sets
    // the generated signal.
    let config = json!({
        "id": "firsts", "version": "0.0.1", "first": ["a", "m"],
        "signal": {"packet_rate": 5},
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["m"], "constants": {"name": "a", "add_signal": true}},
            {"id": "m", "type": "probe", "constants": {"name": "m"}},
            {"id": "lone", "type": "probe", "constants": {"name": "lone"}},
        ],
    });
    let emu = Probe::load(&config);
    assert!(emu.chain().is_first(emu.index("m")));
    assert!(!emu.chain().is_first(emu.index("lone")));
    assert_eq!(
        serde_json::to_value(emu.signal()).unwrap(),
        json!({"packet_rate": 5})
    );
    emu.pulse(1);
    assert_eq!(emu.log("a"), [r#"signal [{"packet_rate":5}]"#, "pulse 0"]);
    assert_eq!(
        emu.log("m"),
        [
            r#"signal [{"packet_rate":5},{"packet_rate":5},{"from":"a"}]"#,
            "pulse 0"
        ]
    );
    assert_eq!(emu.log("lone"), ["signal []", "pulse 0"]);
}

#[test]
fn set_signal_checks_values_and_changes_nothing_when_refused() {
    let emu = Probe::load(&plain_pair());
    assert_eq!(
        serde_json::to_value(emu.signal()).unwrap(),
        json!({"packet_rate": 1000000})
    );
    let unknown = emu
        .set_signal([("packet_rate", 5), ("colour", 1)].into())
        .expect_err("an unknown field");
    assert!(unknown.to_string().contains("colour"), "{unknown}");
    let negative = emu
        .set_signal([("packet_rate", -1)].into())
        .expect_err("a negative rate");
    assert!(negative.to_string().contains("packet_rate"), "{negative}");
    assert_eq!(
        serde_json::to_value(emu.signal()).unwrap(),
        json!({"packet_rate": 1000000})
    );
    emu.pulse(1);
    assert_eq!(emu.log("a"), [DEFAULT_SIGNAL_LINE, "pulse 0"]);

    emu.set_signal([("packet_rate", 0)].into())
        .expect("a valid signal");
    assert_eq!(
        serde_json::to_value(emu.signal()).unwrap(),
        json!({"packet_rate": 0})
    );
    emu.pulse(1);
    assert_eq!(
        emu.log("b"),
        [
            DEFAULT_SIGNAL_LINE,
            "pulse 0",
            r#"signal [{"packet_rate":0}]"#,
            "pulse 1"
        ]
    );
}

// 2. State transitions driven by signal updates --------------------------------

#[test]
fn signal_updates_drive_state_transitions() {
    let emu = Probe::load(&plain_pair());
    for id in ["a", "b"] {
        assert_eq!(emu.state(id), "RESET", "{id}");
    }
    // While RESET, a packet-rate update is not allowed and changes nothing.
    emu.pulse(1);
    assert_eq!(emu.state("a"), "RESET");
    assert_eq!(emu.snapshot("a")["last_packet_rate"], 1000000.0);

    // START answers READY; its forced signal update (on the last signal,
    // rate 1000000) has moved a on to LINK by the time the call returns.
    let start = emu.call_plain("a", "start").expect("start");
    assert_eq!(start.status, 200);
    assert_eq!(
        serde_json::to_value(start.body.expect("a body")).unwrap(),
        json!({"current_state": "READY"})
    );
    assert_eq!(emu.state("a"), "LINK");
    assert_eq!(emu.state("b"), "RESET", "b was not started");

    emu.set_signal([("packet_rate", 0)].into()).unwrap();
    emu.pulse(1);
    assert_eq!(emu.state("a"), "READY");
    assert_eq!(emu.snapshot("a")["last_packet_rate"], 0.0);
    emu.set_signal([("packet_rate", 3)].into()).unwrap();
    emu.pulse(1);
    assert_eq!(emu.state("a"), "LINK");
    assert_eq!(emu.snapshot("a")["last_packet_rate"], 3.0);

    // STOP goes back to RESET, where pulses leave it.
    let stop = emu.call_plain("a", "stop").expect("stop");
    assert_eq!(
        serde_json::to_value(stop.body.expect("a body")).unwrap(),
        json!({"current_state": "RESET"})
    );
    emu.pulse(2);
    assert_eq!(emu.state("a"), "RESET");
    assert_eq!(emu.state("b"), "RESET");
    for id in ["a", "b"] {
        assert_eq!(emu.block_fault(emu.index(id)), None, "{id}");
    }
}

// 3. force_signal_update ------------------------------------------------------

#[test]
fn force_signal_update_propagates_downstream_without_a_pulse() {
    // a -> b -> c; d is first too but not downstream of a.
    let config = json!({
        "id": "chain", "version": "0.0.1", "first": ["a", "d"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": {"name": "a", "add_signal": true}},
            {"id": "b", "type": "probe", "downstream_block_ids": ["c"], "constants": {"name": "b"}},
            {"id": "c", "type": "probe", "constants": {"name": "c"}},
            {"id": "d", "type": "probe", "constants": {"name": "d"}},
        ],
    });
    let emu = Probe::load(&config);
    emu.pulse(1);
    for id in ["a", "b", "c", "d"] {
        emu.clear_log(id);
    }

    emu.call_plain("a", "start").expect("start");
    // a re-ran its signal-update handler on the last signal it received,
    // during the call.
    assert_eq!(emu.log("a"), [DEFAULT_SIGNAL_LINE]);
    // b and c get a's new output on the driver thread.
    let propagated = r#"signal [{"packet_rate":1000000},{"from":"a"}]"#;
    assert_eq!(emu.wait_log("c"), [propagated]);
    // One propagation covers the whole downstream closure, so by now b has
    // it and d (not downstream) has nothing.
    assert_eq!(emu.log("b"), [propagated]);
    assert!(emu.log("d").is_empty(), "{:?}", emu.log("d"));
    // And no pulse ran.
    assert_eq!(emu.pulse_count(), 1);
    for id in ["a", "b", "c", "d"] {
        assert_eq!(emu.pulses(id), 1, "{id}");
    }
    assert_eq!(emu.state("b"), "RESET");

    // Starting again is refused by the block (409), which is no fault.
    let again = plugin_error(emu.call_plain("a", "start"));
    assert_eq!(again.status, 409);
    assert!(again.message.contains("LINK"), "{}", again.message);
    assert_eq!(emu.block_fault(emu.index("a")), None);
    assert_eq!(emu.state("a"), "LINK");
}

// 4. Routes -------------------------------------------------------------------

#[test]
fn routes_take_typed_queries_with_defaults_and_bodies() {
    let emu = Probe::load(&plain_pair());

    // The route table declares the defaults the request is built with.
    let plugin = emu.blocks()[emu.index("a")].plugin();
    let echo = &plugin.routes[emu.route_id("a", "echo") as usize];
    let params: Vec<(&str, ParamLocation, ParamKind, Option<Value>)> = echo
        .params
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.location,
                p.kind,
                p.default.as_ref().map(|d| serde_json::to_value(d).unwrap()),
            )
        })
        .collect();
    assert_eq!(
        params,
        [
            ("item", ParamLocation::Path, ParamKind::String, None),
            (
                "count",
                ParamLocation::Query,
                ParamKind::Int,
                Some(json!(1))
            ),
            (
                "ratio",
                ParamLocation::Query,
                ParamKind::Float,
                Some(json!(0.5))
            ),
            (
                "flag",
                ParamLocation::Query,
                ParamKind::Bool,
                Some(json!(false))
            ),
        ]
    );

    let defaults = emu.request("a", "echo", Some("hello"), &[], None);
    let reply = emu.call("a", "echo", &defaults).expect("echo");
    assert_eq!(reply.status, 200);
    assert_eq!(
        serde_json::to_value(reply.body.unwrap()).unwrap(),
        json!({"item": "hello", "count": 1, "ratio": 0.5, "flag": false})
    );
    let given = emu.request(
        "b",
        "echo",
        Some("x y"),
        &[("count", (-2).into()), ("flag", true.into())],
        None,
    );
    let reply = emu.call("b", "echo", &given).expect("echo");
    assert_eq!(
        serde_json::to_value(reply.body.unwrap()).unwrap(),
        json!({"item": "x y", "count": -2, "ratio": 0.5, "flag": true})
    );

    // status answers the block; clear=true empties the log afterwards.
    emu.pulse(1);
    let status = emu.call_plain("a", "status").expect("status");
    let status = serde_json::to_value(status.body.unwrap()).unwrap();
    assert_eq!(status["name"], "a");
    assert_eq!(status["pulses"], 1);
    assert_eq!(lines(&status["log"]), [DEFAULT_SIGNAL_LINE, "pulse 0"]);
    assert_eq!(emu.log("a").len(), 2, "clear defaults to false");
    let clearing = emu.request("a", "status", None, &[("clear", true.into())], None);
    let cleared = emu.call("a", "status", &clearing).expect("status");
    let cleared = serde_json::to_value(cleared.body.unwrap()).unwrap();
    assert_eq!(lines(&cleared["log"]).len(), 2, "answered before clearing");
    assert!(emu.log("a").is_empty());

    // configure takes a JSON body.
    let body = json!({"name": "renamed", "pulse_sleep_ms": 1});
    let configure = emu.request("a", "configure", None, &[], Some(body));
    let reply = emu.call("a", "configure", &configure).expect("configure");
    assert_eq!(reply.status, 200);
    assert_eq!(
        serde_json::to_value(reply.body.unwrap()).unwrap(),
        json!({})
    );
    let snapshot = emu.snapshot("a");
    assert_eq!(snapshot["name"], "renamed");
    assert_eq!(snapshot["pulse_sleep_ms"], 1);
    assert_eq!(emu.snapshot("b")["name"], "b", "only a changed");
}

#[test]
fn a_4xx_route_error_is_a_reply_not_a_fault() {
    let emu = Probe::load(&plain_pair());
    for (body, what) in [
        (Some(json!({"colour": "red"})), "an unknown field"),
        (Some(json!({"pulse_sleep_ms": "slow"})), "a wrong type"),
        (None, "no body"),
    ] {
        let request = emu.request("a", "configure", None, &[], body);
        let err = plugin_error(emu.call("a", "configure", &request));
        assert_eq!(err.status, 400, "{what}: {err}");
        assert_eq!(err.kind, PluginErrorKind::Failed, "{what}");
        assert!(!err.is_fault(), "{what}");
    }
    // A route index beyond the table is the plugin's 404.
    let routes = emu.blocks()[0].plugin().routes.len() as u32;
    let err = plugin_error(emu.call_route(0, routes, &RouteRequest::default()));
    assert_eq!(err.status, 404, "{err}");

    assert_eq!(emu.block_fault(emu.index("a")), None);
    assert_eq!(emu.state("a"), "RESET");
    assert_eq!(emu.snapshot("a")["name"], "a", "nothing changed");
    assert_eq!(emu.snapshot("a")["pulse_sleep_ms"], 0);
}

#[test]
fn a_failing_route_faults_its_block_and_the_rest_goes_on() {
    let emu = Probe::load(&plain_pair());
    let err = plugin_error(emu.call_plain("a", "fail"));
    assert_eq!(err.status, 500);
    assert_eq!(err.kind, PluginErrorKind::Failed);
    assert_eq!(err.message, "probe route failed");
    assert_eq!(emu.state("a"), "FAULT");
    let fault = emu.block_fault(emu.index("a")).expect("a is faulted");
    assert!(
        fault.contains("route \"fail\"") && fault.contains("probe route failed"),
        "{fault}"
    );
    assert_eq!(emu.state("b"), "RESET");
    assert_eq!(emu.block_fault(emu.index("b")), None);
    // A faulted block still answers and receives pulses.
    emu.pulse(1);
    assert_eq!(emu.pulses("a"), 1);
    assert_eq!(emu.pulses("b"), 1);
    assert_eq!(emu.state("a"), "FAULT", "a pulse does not lift a fault");
}

#[test]
fn a_panicking_route_faults_its_block_and_the_rest_goes_on() {
    let emu = Probe::load(&plain_pair());
    emu.pulse(2);
    let err = plugin_error(emu.call_plain("a", "panic"));
    assert_eq!(err.kind, PluginErrorKind::Panicked);
    assert_eq!(err.status, 500);
    assert!(err.message.contains("probe route panicked"), "{err}");
    assert_eq!(emu.state("a"), "FAULT");
    let fault = emu.block_fault(emu.index("a")).expect("a is faulted");
    assert!(
        fault.contains("route \"panic\"") && fault.contains("probe route panicked"),
        "{fault}"
    );

    let echo = emu.request("b", "echo", Some("still"), &[("count", 2.into())], None);
    let reply = emu.call("b", "echo", &echo).expect("b still answers");
    assert_eq!(
        serde_json::to_value(reply.body.unwrap()).unwrap()["count"],
        2
    );
    assert_eq!(emu.state("b"), "RESET");
    emu.pulse(3);
    assert_eq!(emu.pulses("a"), 5);
    assert_eq!(emu.pulses("b"), 5);
    // The panic was caught inside the plugin: it can panic again.
    let again = plugin_error(emu.call_plain("a", "panic"));
    assert_eq!(again.kind, PluginErrorKind::Panicked);
    assert_eq!(emu.run_state(), RunState::Stopped);
}

#[test]
fn a_panicking_pulse_handler_faults_its_block_and_the_pulse_goes_on() {
    let emu = Probe::load(&pair(json!({"panic_on_pulse": true}), json!({})));
    emu.pulse(2);
    assert_eq!(emu.state("a"), "FAULT");
    let fault = emu.block_fault(emu.index("a")).expect("a is faulted");
    assert!(
        fault.contains("pulse handler") && fault.contains("probe pulse panicked"),
        "{fault}"
    );
    // a recorded both pulses before panicking, and b downstream got both.
    assert_eq!(
        emu.log("a"),
        [
            DEFAULT_SIGNAL_LINE,
            "pulse 0",
            DEFAULT_SIGNAL_LINE,
            "pulse 1"
        ]
    );
    assert_eq!(
        emu.log("b"),
        [
            DEFAULT_SIGNAL_LINE,
            "pulse 0",
            DEFAULT_SIGNAL_LINE,
            "pulse 1"
        ]
    );
    assert_eq!(emu.state("b"), "RESET");
    assert_eq!(emu.block_fault(emu.index("b")), None);
}

// 5. Delayed actions ------------------------------------------------------------

#[test]
fn delayed_actions_run_on_the_driver_after_their_delay() {
    let emu = Probe::load(&plain_pair());
    let later = emu.request("a", "later", None, &[("ms", 150.into())], None);
    let sent = Instant::now();
    let reply = emu.call("a", "later", &later).expect("later");
    assert_eq!(reply.status, 202);
    assert_eq!(reply.body, None);
    let log = emu.wait_log("a");
    let seen = sent.elapsed();
    assert_eq!(log, ["delayed later"]);
    assert!(
        seen >= Duration::from_millis(150),
        "ran {seen:?} after the call"
    );
    assert!(emu.log("b").is_empty());
    assert_eq!(emu.pulse_count(), 0, "no pulse was needed");

    // The declared default delay (10 ms) applies to a request without `ms`.
    emu.clear_log("a");
    emu.call_plain("a", "later").expect("later");
    assert_eq!(emu.wait_log("a"), ["delayed later"]);
}

// 6. Manual events ---------------------------------------------------------------

#[test]
fn injections_reach_the_block_and_forward_downstream() {
    // a forwards, b does not, c is downstream of b.
    let config = json!({
        "id": "probe_chain", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": {"name": "a", "forward_manual": true}},
            {"id": "b", "type": "probe", "downstream_block_ids": ["c"], "constants": {"name": "b"}},
            {"id": "c", "type": "probe", "constants": {"name": "c"}},
        ],
    });
    let emu = Probe::load(&config);
    let (a, c) = (emu.index("a"), emu.index("c"));
    emu.inject(
        a,
        injection(Severity::Warning, json!({"injection_type": "x"})),
        Duration::ZERO,
    )
    .expect("inject");
    assert_eq!(
        emu.wait_log("b"),
        [r#"manual INJECTION WARNING {"injection_type":"x","via":"a"}"#]
    );
    assert_eq!(
        emu.log("a"),
        [r#"manual INJECTION WARNING {"injection_type":"x"}"#]
    );

    // b does not forward: once a later event to c has arrived, c has
    // nothing else. A GENERAL subtype is delivered as such.
    let marker = ManualEvent {
        subtype: ManualEventSubtype::General,
        severity: Severity::General,
        value: SdkValue::from(json!({"marker": 1})),
    };
    emu.inject(c, marker, Duration::ZERO).expect("inject");
    assert_eq!(
        emu.wait_log("c"),
        [r#"manual GENERAL GENERAL {"marker":1}"#]
    );
    for id in ["a", "b", "c"] {
        assert_eq!(emu.state(id), "RESET", "{id}");
    }
    assert_eq!(emu.pulse_count(), 0);
}

#[test]
fn a_fatal_error_faults_blocks_with_fault_on_fatal() {
    // a forwards to b (which faults on FATAL_ERROR, the default) and to n
    // (which does not).
    let config = json!({
        "id": "fatal", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b", "n"], "constants": {"name": "a", "forward_manual": true}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
            {"id": "n", "type": "probe", "constants": {"name": "n", "fault_on_fatal": false}},
        ],
    });
    let emu = Probe::load(&config);
    emu.inject(
        emu.index("a"),
        injection(Severity::FatalError, json!({"injection_type": "die"})),
        Duration::ZERO,
    )
    .expect("inject");
    // n is the last block the event reaches.
    assert_eq!(
        emu.wait_log("n"),
        [r#"manual INJECTION FATAL_ERROR {"injection_type":"die","via":"a"}"#]
    );
    assert_eq!(
        emu.log("b"),
        [r#"manual INJECTION FATAL_ERROR {"injection_type":"die","via":"a"}"#]
    );
    assert_eq!(emu.state("a"), "FAULT");
    assert_eq!(emu.state("b"), "FAULT");
    assert_eq!(emu.state("n"), "RESET");
    // The blocks chose to fault through their machines: no handler failed.
    for id in ["a", "b", "n"] {
        assert_eq!(emu.block_fault(emu.index(id)), None, "{id}");
    }
}

#[test]
fn injections_wait_for_their_delay_and_keep_their_order() {
    let emu = Probe::load(&plain_pair());
    let a = emu.index("a");
    // The undelayed events are injected long before this one is due, even
    // on a loaded machine.
    let delay = Duration::from_millis(500);
    let sent = Instant::now();
    emu.inject(a, injection(Severity::Warning, json!({"n": "late"})), delay)
        .expect("inject");
    for n in 0..5 {
        emu.inject(
            a,
            injection(Severity::Warning, json!({"n": n})),
            Duration::ZERO,
        )
        .expect("inject");
    }
    let late = r#"manual INJECTION WARNING {"n":"late"}"#;
    let log = wait_for("the delayed injection", PATIENCE, || {
        let log = emu.log("a");
        log.iter().any(|l| l == late).then_some(log)
    });
    let seen = sent.elapsed();
    assert!(seen >= delay, "delivered {seen:?} after it was injected");
    // Undelayed events in the order they were injected, then the late one.
    let expected: Vec<String> = (0..5)
        .map(|n| format!(r#"manual INJECTION WARNING {{"n":{n}}}"#))
        .chain([late.to_owned()])
        .collect();
    assert_eq!(log, expected);
    assert!(emu.log("b").is_empty(), "a does not forward");
}

#[test]
fn an_injection_beyond_the_horizon_is_refused_and_the_rest_goes_on() {
    let emu = Probe::load(&plain_pair());
    let b = emu.index("b");
    for delay in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 4),
        MAX_INJECTION_DELAY + Duration::from_millis(1),
    ] {
        let refused = emu.inject(
            b,
            injection(Severity::Warning, json!({"never": true})),
            delay,
        );
        assert!(
            matches!(refused, Err(InjectError::TooFarAhead { .. })),
            "{delay:?}: {refused:?}"
        );
    }
    // At the horizon: accepted, and it does not come during this test.
    emu.inject(
        b,
        injection(Severity::Warning, json!({"never": 2})),
        MAX_INJECTION_DELAY,
    )
    .expect("a delay at the horizon");
    assert_eq!(emu.queued_injections().0, 1);
    // Later events with no delay still come, and come alone.
    emu.inject(
        b,
        injection(Severity::General, json!({"marker": true})),
        Duration::ZERO,
    )
    .expect("inject");
    assert_eq!(
        emu.wait_log("b"),
        [r#"manual INJECTION GENERAL {"marker":true}"#]
    );
    assert!(emu.log("a").is_empty());
    emu.pulse(1);
    assert_eq!(emu.pulses("b"), 1, "the driver still runs");
}

#[test]
fn an_injection_to_no_block_leaves_the_driver_running() {
    let emu = Probe::load(&plain_pair());
    let blocks = emu.blocks().len();
    // Refused at once (an error, or a panic on this thread) or dropped
    // later: either way the emulator must go on.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        emu.inject(
            blocks,
            injection(Severity::General, json!({})),
            Duration::ZERO,
        )
    }));
    let run = emu
        .run_pulses_within(1)
        .expect("a pulse after the injection");
    assert_eq!(run.pulses, 1);
    assert_eq!(emu.pulses("b"), 1);
}

// 7. Hangs ---------------------------------------------------------------------

#[test]
fn a_hanging_pulse_handler_is_reported_and_the_others_keep_their_pulses() {
    let config = json!({
        "id": "hang", "version": "0.0.1", "first": ["h", "b"],
        "ip_blocks": [
            {"id": "h", "type": "probe", "constants": {"name": "h", "hang_on_pulse": true}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
        ],
    });
    let emu = Probe::load_with(&config, options(HANG_TIMEOUT));
    let (h, b) = (emu.index("h"), emu.index("b"));
    match emu.run_pulses_within(1) {
        Err(CallError::Hung { block, reason }) => {
            assert_eq!(block, "h");
            assert!(reason.contains("handler timeout"), "{reason}");
        }
        other => panic!("expected h to hang, got {other:?}"),
    }
    let reason = emu.blocks()[h].hung_reason().expect("h is hung");
    assert!(reason.contains("no longer receives events"), "{reason}");
    assert!(emu.blocks()[b].hung_reason().is_none());
    assert!(matches!(
        emu.block_state(h),
        Err(CallError::Hung { ref block, .. }) if block == "h"
    ));
    assert!(matches!(emu.block_snapshot(h), Err(CallError::Hung { .. })));
    assert!(matches!(
        emu.call_route(h, emu.route_id("h", "status"), &RouteRequest::default()),
        Err(CallError::Hung { .. })
    ));

    // h hung in pulse 0 before b's turn; b gets every later pulse.
    emu.pulse(2);
    assert_eq!(emu.pulse_count(), 3);
    assert_eq!(emu.pulses("b"), 2);
    assert_eq!(
        emu.log("b"),
        [
            DEFAULT_SIGNAL_LINE,
            "pulse 1",
            DEFAULT_SIGNAL_LINE,
            "pulse 2"
        ]
    );
    assert_eq!(emu.state("b"), "RESET");
    // Injections to b still come (a new driver runs them).
    emu.inject(b, injection(Severity::General, json!({})), Duration::ZERO)
        .expect("inject");
    wait_for("the injection at b", PATIENCE, || {
        emu.log("b")
            .last()
            .is_some_and(|l| l.starts_with("manual"))
            .then_some(())
    });
}

#[test]
fn a_second_hang_after_a_slow_handler_is_still_detected() {
    // s's pulse (1.6 s) outlasts the handler timeout (1 s): s is declared
    // hung after ~1 s and a new driver takes over. s's pulse then returns
    // while the new driver is stuck in h's pulse (entered at ~1.2 s,
    // declared hung at ~2.2 s). The old driver coming back must not make
    // the watchdog lose track of h, and each failed batch names its own
    // block. (On a machine so loaded that h is entered after s returns,
    // the test passes without exercising that case.)
    let timeout = Duration::from_secs(1);
    let slow_ms = 1600;
    let config = json!({
        "id": "two_hangs", "version": "0.0.1", "first": ["s", "h", "b"],
        "ip_blocks": [
            {"id": "s", "type": "probe", "constants": {"name": "s", "pulse_sleep_ms": slow_ms}},
            {"id": "h", "type": "probe", "constants": {"name": "h", "hang_on_pulse": true}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
        ],
    });
    let emu = Probe::load_with(&config, options(timeout));
    let hung_block = |result| match result {
        Err(CallError::Hung { block, .. }) => block,
        other => panic!("expected a hang, got {other:?}"),
    };
    assert_eq!(hung_block(emu.run_pulses_within(1)), "s");
    // s is skipped; h hangs while s's old pulse is still sleeping.
    assert_eq!(hung_block(emu.run_pulses_within(1)), "h");
    assert!(emu.blocks()[emu.index("h")].hung_reason().is_some());
    // s's slow pulse has returned (or soon does): s is healthy again, h,
    // whose pulse never returns, stays hung.
    wait_for("s to recover", PATIENCE, || {
        emu.blocks()[emu.index("s")]
            .hung_reason()
            .is_none()
            .then_some(())
    });
    assert!(emu.blocks()[emu.index("h")].hung_reason().is_some());
    // (Pulsing again would hang s again: its pulse still outlasts the
    // handler timeout.)
}

#[test]
fn a_block_held_by_a_hung_route_is_busy_until_marked_hung() {
    let emu = Probe::load_with(&plain_pair(), options(HANG_TIMEOUT));
    let a = emu.index("a");
    // The route never returns: its thread holds a for good (as an HTTP
    // request's worker would).
    let handle = emu.emu.clone();
    let hang = emu.route_id("a", "hang");
    thread::spawn(move || {
        let _ = handle.call_route(a, hang, &RouteRequest::default());
    });
    // Calls on a wait the handler timeout for it, then give up.
    let busy = wait_for("a to be held by the hung route", PATIENCE, || {
        match emu.block_state(a) {
            Err(err @ CallError::Busy { .. }) => Some(err),
            Ok(_) => None,
            Err(other) => panic!("expected busy, got {other}"),
        }
    });
    match busy {
        CallError::Busy { block, timeout_s } => {
            assert_eq!(block, "a");
            assert_eq!(timeout_s, HANG_TIMEOUT.as_secs_f64());
        }
        other => panic!("{other}"),
    }
    // b is untouched; pulses skip the busy a after waiting for it.
    assert_eq!(emu.state("b"), "RESET");

    emu.mark_hung(a, "route \"hang\" did not return".to_owned());
    match emu.block_state(a) {
        Err(CallError::Hung { block, reason }) => {
            assert_eq!(block, "a");
            assert_eq!(reason, "route \"hang\" did not return");
        }
        other => panic!("expected a hung, got {other:?}"),
    }
    // A hung block is skipped at once; b gets its pulses.
    emu.pulse(2);
    assert_eq!(emu.pulses("b"), 2);
}

#[test]
fn a_fault_stays_visible_while_the_block_is_held() {
    let emu = Probe::load_with(&plain_pair(), options(HANG_TIMEOUT));
    let a = emu.index("a");
    plugin_error(emu.call_plain("a", "fail"));
    let fault = emu.block_fault(a).expect("a is faulted");
    let handle = emu.emu.clone();
    let hang = emu.route_id("a", "hang");
    thread::spawn(move || {
        let _ = handle.call_route(a, hang, &RouteRequest::default());
    });
    wait_for("a to be held by the hung route", PATIENCE, || {
        matches!(emu.block_state(a), Err(CallError::Busy { .. })).then_some(())
    });
    assert_eq!(emu.block_fault(a), Some(fault.clone()), "while busy");
    emu.mark_hung(a, "route \"hang\" did not return".to_owned());
    assert_eq!(emu.block_fault(a), Some(fault), "once hung");
}

// 8. Start, stop, terminate -------------------------------------------------------

#[test]
fn start_and_stop_refuse_what_does_not_apply() {
    let emu = Probe::load(&plain_pair());
    assert_eq!(emu.run_state(), RunState::Stopped);
    assert_eq!(emu.stop(), Err(RunStateError::NotRunning));
    assert_eq!(emu.start(), Ok(()));
    assert_eq!(emu.run_state(), RunState::Running);
    assert_eq!(emu.start(), Err(RunStateError::AlreadyRunning));
    assert_eq!(emu.stop(), Ok(()));
    assert_eq!(emu.run_state(), RunState::Stopped);
    assert_eq!(emu.stop(), Err(RunStateError::NotRunning));
    // Without a pulse period, running starts no pulses; batches still run.
    assert_eq!(emu.pulse_count(), 0);
    emu.pulse(1);

    emu.terminate();
    assert_eq!(emu.run_state(), RunState::Terminated);
    assert_eq!(emu.start(), Err(RunStateError::Terminated));
    assert_eq!(emu.stop(), Err(RunStateError::Terminated));
    assert_eq!(
        RunStateError::AlreadyRunning.to_string(),
        "the emulator is already running"
    );
    assert_eq!(
        RunStateError::NotRunning.to_string(),
        "the emulator is not running"
    );
}

#[test]
fn real_time_pulses_flow_while_running_and_stop_after_the_pulse_in_flight() {
    let realtime = EngineOptions {
        pulse_period: Some(Duration::from_millis(20)),
        ..options(CALM_TIMEOUT)
    };
    let emu = Probe::load_with(&plain_pair(), realtime);
    assert_eq!(emu.run_state(), RunState::Stopped);
    emu.start().expect("start");
    wait_for("real-time pulses", PATIENCE, || {
        (emu.pulses("b") >= 3).then_some(())
    });
    emu.stop().expect("stop");
    // The pulse in flight reaches the end of the chain...
    let count = wait_for("the last pulse to finish", PATIENCE, || {
        let count = emu.pulse_count();
        (emu.pulses("b") == count).then_some(count)
    });
    // ...and no other follows (ten periods later).
    thread::sleep(Duration::from_millis(200));
    assert_eq!(emu.pulse_count(), count);
    assert_eq!(emu.pulses("a"), count);
    assert_eq!(emu.pulses("b"), count);
    assert_eq!(
        emu.log("b").last().map(String::as_str),
        Some(format!("pulse {}", count - 1).as_str())
    );

    emu.start().expect("start again");
    wait_for("pulses after the restart", PATIENCE, || {
        (emu.pulses("b") > count).then_some(())
    });

    // An emulator may start running at once.
    let running = Probe::load_with(
        &plain_pair(),
        EngineOptions {
            pulse_period: Some(Duration::from_millis(20)),
            start_running: true,
            ..options(CALM_TIMEOUT)
        },
    );
    assert_eq!(running.run_state(), RunState::Running);
    wait_for("real-time pulses", PATIENCE, || {
        (running.pulses("b") >= 1).then_some(())
    });
}

#[test]
fn terminate_discards_pending_work_and_refuses_later_calls() {
    let emu = Probe::load(&plain_pair());
    let b = emu.index("b");
    emu.pulse(1);
    emu.clear_log("a");
    emu.clear_log("b");
    // Due a second from now: long enough that terminate comes first even
    // on a loaded machine.
    let delay = Duration::from_secs(1);
    let scheduled = Instant::now();
    let ms = SdkValue::from(delay.as_millis() as u64);
    let later = emu.request("a", "later", None, &[("ms", ms)], None);
    emu.call("a", "later", &later).expect("later");
    emu.inject(
        b,
        injection(Severity::Warning, json!({"late": true})),
        delay,
    )
    .expect("inject");
    emu.terminate();
    emu.wait_terminated();
    assert_eq!(emu.run_state(), RunState::Terminated);

    assert!(matches!(emu.run_pulses(1), Err(CallError::Terminated)));
    assert!(matches!(
        emu.inject(b, injection(Severity::General, json!({})), Duration::ZERO),
        Err(InjectError::Call(CallError::Terminated))
    ));
    assert_eq!(emu.pulse_count(), 1);

    // Well past both deadlines, neither came.
    thread::sleep(
        (scheduled + delay + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    );
    assert!(emu.log("a").is_empty(), "{:?}", emu.log("a"));
    assert!(emu.log("b").is_empty(), "{:?}", emu.log("b"));
    // Blocks still answer; the delayed action a route asks for now is
    // dropped.
    let later = emu.request("a", "later", None, &[("ms", 0.into())], None);
    assert_eq!(emu.call("a", "later", &later).expect("later").status, 202);
    thread::sleep(Duration::from_millis(100));
    assert!(emu.log("a").is_empty(), "{:?}", emu.log("a"));
    assert_eq!(emu.state("a"), "RESET");
}

#[test]
fn terminate_stops_a_long_pulse_batch() {
    let emu = Probe::load(&plain_pair());
    let handle = emu.emu.clone();
    let (sent, received) = mpsc::channel();
    thread::spawn(move || {
        let _ = sent.send(handle.run_pulses(u64::MAX));
    });
    wait_for("the batch to start", PATIENCE, || {
        (emu.pulse_count() > 0).then_some(())
    });
    emu.terminate();
    let run = received
        .recv_timeout(PATIENCE)
        .expect("the batch never ended")
        .expect("the batch answers the pulses that ran");
    // The pulse in flight finished; no other started.
    assert_eq!(run.pulses, emu.pulse_count());
    assert!(run.pulses < u64::MAX);
    assert_eq!(emu.pulses("b"), run.pulses);
}

// 9. Startup ---------------------------------------------------------------------

#[test]
fn load_takes_the_config_id_when_none_is_given() {
    let emu = Probe::load_with(
        &plain_pair(),
        EngineOptions {
            id: String::new(),
            ..options(CALM_TIMEOUT)
        },
    );
    assert_eq!(emu.id(), "probe_pair");
    assert_eq!(
        emu.blocks()
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(emu.plugins().len(), 1);
    assert_eq!(emu.plugins()[0].ip_block_type, "probe");
    let named = Probe::load(&plain_pair());
    assert_eq!(named.id(), "bitstream-emulator");
}

/// Loads `package`, which must fail.
#[track_caller]
fn load_error(package: &TempDir) -> StartupError {
    match Emulator::load(package.path(), options(CALM_TIMEOUT)) {
        Ok(_) => panic!("{} loaded", package.path().display()),
        Err(err) => err,
    }
}

#[test]
fn a_folder_without_emulators_is_not_a_package() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), plain_pair().to_string()).unwrap();
    match load_error(&dir) {
        StartupError::NotAPackage(path) => assert_eq!(path, dir.path()),
        other => panic!("expected NotAPackage, got {other}"),
    }
    let message = load_error(&dir).to_string();
    assert!(message.contains("no emulators/ folder"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn a_bad_config_stops_startup_naming_the_problem() {
    let cycle = json!({
        "id": "cycle", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"]},
            {"id": "b", "type": "probe", "downstream_block_ids": ["c"]},
            {"id": "c", "type": "probe", "downstream_block_ids": ["b"]},
        ],
    });
    let unknown_type = json!({
        "id": "t", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [{"id": "a", "type": "vcc", "downstream_block_ids": []}],
    });
    let mut bad_signal = plain_pair();
    bad_signal["signal"] = json!({"packet_rate": -5});
    for (config, expected) in [
        (cycle, "cycle in the signal chain: b -> c -> b"),
        (unknown_type, "\"vcc\""),
        (bad_signal, "field \"signal\""),
    ] {
        let err = load_error(&probe_package(&config));
        assert!(matches!(err, StartupError::Config(_)), "{config}: {err:?}");
        let message = err.to_string();
        assert!(message.contains(expected), "{expected:?} in: {message}");
    }
    let syntax = package(&[("probe", "probe")], "{\"id\": ");
    let err = load_error(&syntax);
    assert!(matches!(err, StartupError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn a_bad_constant_stops_startup_naming_the_block() {
    let config = pair(json!({}), json!({"pulse_sleep_ms": "slow"}));
    match load_error(&probe_package(&config)) {
        StartupError::Plugin {
            ip_block_type,
            problems,
        } => {
            assert_eq!(ip_block_type, "probe");
            assert_eq!(problems.len(), 1, "{problems:?}");
            let problem = &problems[0];
            assert!(
                problem.contains("[constants]")
                    && problem.contains("block \"b\"")
                    && problem.contains("pulse_sleep_ms"),
                "{problem}"
            );
        }
        other => panic!("expected a plugin error, got {other}"),
    }
}

#[test]
fn a_broken_plugin_stops_startup_naming_its_type() {
    let config = json!({
        "id": "broken", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["m"]},
            {"id": "m", "type": "broken"},
        ],
    });
    let package = package(
        &[("probe", "probe"), ("broken", "missing_api")],
        &config.to_string(),
    );
    let err = load_error(&package);
    let message = err.to_string();
    match err {
        StartupError::Plugin {
            ip_block_type,
            problems,
        } => {
            assert_eq!(ip_block_type, "broken");
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("missing component `api`")),
                "{problems:?}"
            );
        }
        other => panic!("expected a plugin error, got {other}"),
    }
    assert!(
        message.contains("plugin \"broken\" is not valid"),
        "{message}"
    );
}

/// `a -> b`, both probes.
fn probe_pair_config() -> Value {
    json!({
        "id": "events_engine",
        "version": "0.0.1",
        "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": {"name": "a"}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
        ],
    })
}

fn drain(subscription: &Subscription) -> Vec<Received> {
    std::iter::from_fn(|| subscription.try_next()).collect()
}

fn transitions(received: &[Received]) -> Vec<(String, String, String, Option<String>)> {
    received
        .iter()
        .filter_map(|r| match r {
            Received::Event(event) => match &event.data {
                EventData::Transition { from, to, trigger } => Some((
                    event.block.clone().unwrap_or_default(),
                    from.clone(),
                    to.clone(),
                    trigger.clone(),
                )),
                _ => None,
            },
            Received::Missed(n) => panic!("missed {n}"),
        })
        .collect()
}

#[test]
fn state_changes_from_routes_and_pulses_reach_listeners_in_order() {
    let probe = Probe::load(&probe_pair_config());
    let a = probe.index("a");
    let subscription = probe.events().subscribe(
        &Filter {
            blocks: Some(vec![a]),
            kinds: Some(vec![EventKind::State]),
        },
        64,
    );
    let start = probe.request("a", "start", None, &[], None);
    probe
        .call_route(a, probe.route_id("a", "start"), &start)
        .unwrap();
    probe.run_pulses(1).unwrap();
    let s = |text: &str| text.to_owned();
    assert_eq!(
        transitions(&drain(&subscription)),
        vec![
            (s("a"), s("RESET"), s("READY"), Some(s("START"))),
            (s("a"), s("READY"), s("LINK"), Some(s("PACKET_RATE_UPDATE"))),
        ]
    );
}

#[test]
fn plugin_swapped_tells_listeners_once_per_block_of_the_type() {
    let probe = Probe::load(&probe_pair_config());
    let subscription = probe.events().subscribe(&Filter::default(), 16);
    probe.plugin_swapped("probe", std::path::Path::new("/plugins/libprobe-2.so"));
    probe.plugin_swapped("no_such_type", std::path::Path::new("/x.so"));
    let got = drain(&subscription);
    let swaps: Vec<(Option<String>, EventData)> = got
        .iter()
        .map(|r| match r {
            Received::Event(e) => {
                assert_eq!(e.kind, EventKind::PluginSwapped);
                (e.block.clone(), e.data.clone())
            }
            Received::Missed(n) => panic!("missed {n}"),
        })
        .collect();
    let data = EventData::Swap {
        block_type: "probe".to_owned(),
        library: "/plugins/libprobe-2.so".to_owned(),
    };
    assert_eq!(
        swaps,
        vec![
            (Some("a".to_owned()), data.clone()),
            (Some("b".to_owned()), data)
        ]
    );
}

#[test]
fn nobody_listening_means_no_event_is_kept() {
    let probe = Probe::load(&probe_pair_config());
    let a = probe.index("a");
    assert!(!probe.events().has_listeners());
    let start = probe.request("a", "start", None, &[], None);
    probe
        .call_route(a, probe.route_id("a", "start"), &start)
        .unwrap();
    probe.run_pulses(10).unwrap();
    // A listener that comes later sees only what happens after it came.
    let subscription = probe.events().subscribe(&Filter::default(), 16);
    assert!(drain(&subscription).is_empty());
    let stop = probe.request("a", "stop", None, &[], None);
    probe
        .call_route(a, probe.route_id("a", "stop"), &stop)
        .unwrap();
    assert_eq!(
        transitions(&drain(&subscription)),
        vec![(
            "a".to_owned(),
            "LINK".to_owned(),
            "RESET".to_owned(),
            Some("STOP".to_owned())
        )]
    );
}

#[test]
fn terminate_runs_each_hook_once_and_a_late_hook_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let emu = Probe::load(&plain_pair());
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    emu.when_terminated(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(runs.load(Ordering::SeqCst), 0, "not before terminate");
    emu.terminate();
    emu.terminate();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "once, however often terminate is called"
    );
    let counter = runs.clone();
    emu.when_terminated(move || {
        counter.fetch_add(10, Ordering::SeqCst);
    });
    assert_eq!(
        runs.load(Ordering::SeqCst),
        11,
        "a hook given after terminate runs at once"
    );
}
