//! The plugin module (the host's one FFI edge) against real plugin
//! libraries (the fixtures `cargo build --workspace` produces): loading,
//! per-library modules, private copies, calls into every component through
//! the safe wrappers, the subcontroller called back from plugin code, and
//! panics caught inside the plugin.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bitstream_host::model::{
    LogLevel, PluginErrorKind, PulseEvent, RouteRequest, TriggerFailure, TriggerMode,
};
use bitstream_host::plugin::loader::{self, LoadError};
use bitstream_host::plugin::{BlockHost, BlockInstance, Components, DelayedCall};
use bitstream_sdk::{Value, ValueMap};

/// `target/<profile>`: the test binary lives in `target/<profile>/deps`.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn fixture(name: &str) -> PathBuf {
    let path = build_dir().join(format!("libfixture_{name}.so"));
    assert!(
        path.exists(),
        "{} missing: run `cargo build --workspace` first (ci/test.sh does)",
        path.display()
    );
    path
}

fn components(name: &str) -> Components {
    let library = loader::load_library(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
    Components::from_library(&library).unwrap_or_else(|missing| panic!("missing {missing:?}"))
}

/// What the fake host records of the plugin's calls back into it.
#[derive(Default)]
struct FakeHost {
    calls: Mutex<Vec<String>>,
    delayed: Mutex<Vec<(Duration, DelayedCall)>>,
}

impl BlockHost for FakeHost {
    fn block_id(&self) -> &str {
        "fake"
    }

    fn state_name(&self) -> String {
        self.calls.lock().unwrap().push("get_state".into());
        "FAULT".into()
    }

    fn trigger(
        &self,
        trigger: &str,
        args: &ValueMap,
        mode: TriggerMode,
    ) -> Result<bool, TriggerFailure> {
        let args = Value::Map(args.clone());
        self.calls
            .lock()
            .unwrap()
            .push(format!("trigger {trigger} {args} {mode:?}"));
        Ok(true)
    }

    fn force_signal_update(&self) {
        self.calls
            .lock()
            .unwrap()
            .push("force_signal_update".into());
    }

    fn delay_action(&self, delay: Duration, action: DelayedCall) {
        self.delayed.lock().unwrap().push((delay, action));
    }

    fn buffer(&self) -> Option<(*mut u8, usize)> {
        None
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("log {level:?} {message}"));
    }
}

impl FakeHost {
    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

fn route_index(components: &Components, name: &str) -> u32 {
    let routes = components.describe_routes().unwrap();
    routes.iter().position(|r| r.name.as_str() == name).unwrap() as u32
}

fn request(body: Option<Value>) -> RouteRequest {
    RouteRequest {
        path: None,
        query: [("clear", false)].into(),
        body,
    }
}

#[test]
fn every_library_gets_its_own_module() {
    let minimal = loader::load_library(&fixture("minimal")).unwrap();
    let again = loader::load_library(&fixture("minimal")).unwrap();
    let other = loader::load_library(&fixture("unreachable_state")).unwrap();
    assert_eq!(minimal.plugin_name(), "fixture-minimal");
    assert_eq!(other.plugin_name(), "fixture-unreachable_state");
    let states = |lib: &loader::LoadedLibrary| {
        let desc = Components::from_library(lib)
            .ok()
            .unwrap()
            .describe_machine()
            .unwrap();
        desc.states
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(states(&minimal), ["ACTIVE", "FAULT"]);
    assert_eq!(states(&other), ["ACTIVE", "FAULT", "ORPHAN"]);
    assert!(
        !minimal.same_module(&again),
        "a second load of the same file is a separate library"
    );
}

#[test]
fn overwriting_a_loaded_file_does_not_disturb_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libcounter.so");
    std::fs::copy(fixture("minimal"), &path).unwrap();
    let library = loader::load_library(&path).unwrap();
    std::fs::write(&path, b"overwritten by a new build in progress").unwrap();
    let components = Components::from_library(&library).ok().unwrap();
    let mut block = components.create_block().unwrap();
    assert_eq!(
        block.snapshot().unwrap().get("pulses"),
        Some(&Value::Int(0))
    );
    assert!(matches!(
        loader::load_library(&path),
        Err(LoadError::Unloadable { .. })
    ));
}

#[test]
fn routes_run_with_the_subcontroller_and_panics_come_back_as_errors() {
    let components = components("minimal");
    let host = FakeHost::default();
    let mut block = components.create_block().unwrap();
    let call = |block: &mut BlockInstance, name: &str, body: Option<Value>| {
        block.call_route(&host, route_index(&components, name), &request(body))
    };

    let status = call(&mut block, "status", None).unwrap();
    assert_eq!(status.status, 200);
    assert_eq!(
        status.body.unwrap().to_string(),
        r#"{"pulses":0,"label":""}"#
    );

    let configured = call(
        &mut block,
        "configure",
        Some([("label", "x")].into_iter().collect()),
    )
    .unwrap();
    assert_eq!(configured.status, 200);
    assert_eq!(
        block
            .snapshot()
            .unwrap()
            .get("label")
            .and_then(Value::as_str),
        Some("x")
    );

    let bad = call(
        &mut block,
        "configure",
        Some([("label", 5)].into_iter().collect()),
    )
    .unwrap_err();
    assert_eq!((bad.kind, bad.status), (PluginErrorKind::Failed, 400));
    assert!(
        bad.message
            .contains("label: invalid type: integer `5`, expected a string"),
        "{}",
        bad.message
    );

    let fault = call(&mut block, "fault", None).unwrap();
    assert_eq!(
        fault.body.unwrap().to_string(),
        r#"{"current_state":"FAULT"}"#
    );
    assert_eq!(
        host.calls(),
        [
            "log Warning faulting on request",
            r#"trigger CRITICAL_FAULT {"reason":"requested"} Trigger"#,
            "get_state"
        ]
    );

    let panicked = call(&mut block, "panic", None).unwrap_err();
    assert_eq!(panicked.kind, PluginErrorKind::Panicked);
    assert!(
        panicked
            .message
            .starts_with("route panicked on purpose (at fixtures/plugins/common/src/lib.rs:"),
        "{}",
        panicked.message
    );
    // The block and the plugin are still usable after the panic.
    assert_eq!(call(&mut block, "status", None).unwrap().status, 200);
}

#[test]
fn delayed_actions_run_on_the_block_later_or_are_discarded() {
    let components = components("minimal");
    let host = FakeHost::default();
    let mut block = components.create_block().unwrap();
    let later = route_index(&components, "later");
    for _ in 0..2 {
        let response = block.call_route(&host, later, &request(None)).unwrap();
        assert_eq!(response.status, 202);
    }
    let mut delayed = std::mem::take(&mut *host.delayed.lock().unwrap());
    assert_eq!(delayed.len(), 2);
    assert_eq!(delayed[0].0, Duration::from_millis(10));
    let (_, discarded) = delayed.pop().unwrap();
    drop(discarded);
    let (_, action) = delayed.pop().unwrap();
    block.run_delayed(&host, action).unwrap();
    assert_eq!(
        block
            .snapshot()
            .unwrap()
            .get("label")
            .and_then(Value::as_str),
        Some("set later")
    );
    assert_eq!(host.calls(), ["log Info delayed action ran"]);
}

#[test]
fn event_handlers_and_their_defaults() {
    let components = components("minimal");
    let host = FakeHost::default();
    let overrides = components.overrides();
    assert!(overrides.pulse && !overrides.signal_update && !overrides.manual_event);

    let mut block = components.create_block().unwrap();
    let pulse = PulseEvent {
        sequence: 0,
        timestamp_ns: 1,
    };
    for _ in 0..3 {
        block.pulse(&host, &pulse).unwrap();
    }
    assert_eq!(
        block.snapshot().unwrap().get("pulses"),
        Some(&Value::Int(3))
    );

    // Not overridden: the plugin's entry point still answers with the default.
    let events: Vec<Value> = vec![Value::from_iter([("packet_rate", 5)])];
    let out = block.signal_update(&host, events.clone()).unwrap();
    assert_eq!(out, events);
}

#[test]
fn constants_and_conditions_cross_the_boundary_with_clear_errors() {
    let components = components("minimal");
    let mut block = components.create_block().unwrap();
    block
        .apply_constants(&[("label", "from config")].into())
        .unwrap();
    assert_eq!(
        block
            .snapshot()
            .unwrap()
            .get("label")
            .and_then(Value::as_str),
        Some("from config")
    );

    let err = block.apply_constants(&[("lanes", 4)].into()).unwrap_err();
    assert!(
        err.message
            .starts_with("unknown constant `lanes`: ip_block type `fixture_common::Counter`"),
        "{}",
        err.message
    );

    let err = components.eval_condition(99, &ValueMap::new()).unwrap_err();
    assert_eq!(err.message.as_str(), "no condition with id 99");
}

#[test]
fn panicking_constructor_is_an_error_not_a_crash() {
    let components = components("panicking_constructor");
    let err = components
        .create_block()
        .err()
        .expect("the constructor panics");
    assert_eq!(err.kind, PluginErrorKind::Panicked);
    assert!(
        err.message
            .starts_with("constructor panicked on purpose (at "),
        "{}",
        err.message
    );
}
