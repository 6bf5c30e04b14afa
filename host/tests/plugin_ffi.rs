//! The host side of the FFI boundary against real plugin libraries (the
//! fixtures `cargo build --workspace` produces): loading, per-library
//! modules, private copies, calls into every component, the subcontroller
//! called back from plugin code, and panics caught inside the plugin.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RDuration, ROption, RResult, RStr, RString, RVec};
use bitstream_host::loader::{self, LoadError};
use bitstream_host::plugin::Components;
use bitstream_sdk::ffi::{
    BufferRegion, DelayedAction, FfiResult, LogLevel, PluginErrorKind, PulseEvent, RouteRequest,
    SubcontrollerFfi, SubcontrollerVTable, TriggerFailure, TriggerMode,
};
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
    Components::from_module(library.module).unwrap_or_else(|missing| panic!("missing {missing:?}"))
}

/// What the fake host records of the plugin's calls back into it.
#[derive(Default)]
struct FakeHost {
    calls: Mutex<Vec<String>>,
    delayed: Mutex<Vec<(Duration, DelayedAction)>>,
}

// SAFETY (for the functions below): `context` is always the `&FakeHost`
// that `FakeHost::subcontroller` put in the `SubcontrollerFfi`, alive for the
// whole call.
fn host<'a>(context: *const c_void) -> &'a FakeHost {
    // SAFETY: see above.
    unsafe { &*context.cast::<FakeHost>() }
}

extern "C" fn get_state(context: *const c_void) -> RString {
    host(context).calls.lock().unwrap().push("get_state".into());
    RString::from("FAULT")
}

extern "C" fn trigger(
    context: *const c_void,
    trigger: RStr<'_>,
    args: &ValueMap,
    mode: TriggerMode,
) -> RResult<bool, TriggerFailure> {
    let args = Value::Map(args.clone());
    host(context)
        .calls
        .lock()
        .unwrap()
        .push(format!("trigger {trigger} {args} {mode:?}"));
    RResult::ROk(true)
}

extern "C" fn force_signal_update(context: *const c_void) -> FfiResult<()> {
    host(context)
        .calls
        .lock()
        .unwrap()
        .push("force_signal_update".into());
    RResult::ROk(())
}

extern "C" fn delay_action(
    context: *const c_void,
    delay: RDuration,
    action: DelayedAction,
) -> FfiResult<()> {
    host(context)
        .delayed
        .lock()
        .unwrap()
        .push((delay.into(), action));
    RResult::ROk(())
}

extern "C" fn log(context: *const c_void, level: LogLevel, message: RStr<'_>) {
    host(context)
        .calls
        .lock()
        .unwrap()
        .push(format!("log {level:?} {message}"));
}

extern "C" fn no_buffer(_context: *const c_void) -> BufferRegion {
    BufferRegion::NONE
}

impl FakeHost {
    fn subcontroller(&self) -> SubcontrollerFfi {
        SubcontrollerFfi {
            context: (self as *const FakeHost).cast(),
            vtable: SubcontrollerVTable {
                get_state,
                trigger,
                force_signal_update,
                delay_action,
                log,
                buffer: no_buffer,
            }
            .leak_into_prefix(),
        }
    }

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
        path: ROption::RNone,
        query: [("clear", false)].into(),
        body: body.into(),
    }
}

#[test]
fn every_library_gets_its_own_module() {
    let minimal = loader::load_library(&fixture("minimal")).unwrap();
    let again = loader::load_library(&fixture("minimal")).unwrap();
    let other = loader::load_library(&fixture("unreachable_state")).unwrap();
    assert_eq!(minimal.module.plugin_name().as_str(), "fixture-minimal");
    assert_eq!(
        other.module.plugin_name().as_str(),
        "fixture-unreachable_state"
    );
    let states = |lib: &loader::LoadedLibrary| {
        let desc = Components::from_module(lib.module)
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
        !std::ptr::eq(minimal.module.0.to_raw_ptr(), again.module.0.to_raw_ptr()),
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
    let components = Components::from_module(library.module).ok().unwrap();
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
    let ctx = host.subcontroller();
    let mut block = components.create_block().unwrap();
    let call =
        |block: &mut bitstream_host::plugin::BlockInstance, name: &str, body: Option<Value>| {
            (components.api.call())(
                block.ptr(),
                route_index(&components, name),
                &request(body),
                &ctx,
            )
            .into_result()
        };

    let status = call(&mut block, "status", None).unwrap();
    assert_eq!(status.status, 200);
    assert_eq!(
        status.body.into_option().unwrap().to_string(),
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
        fault.body.into_option().unwrap().to_string(),
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
    let ctx = host.subcontroller();
    let mut block = components.create_block().unwrap();
    let later = route_index(&components, "later");
    for _ in 0..2 {
        let response = (components.api.call())(block.ptr(), later, &request(None), &ctx)
            .into_result()
            .unwrap();
        assert_eq!(response.status, 202);
    }
    let mut delayed = std::mem::take(&mut *host.delayed.lock().unwrap());
    assert_eq!(delayed.len(), 2);
    assert_eq!(delayed[0].0, Duration::from_millis(10));
    let (_, discarded) = delayed.pop().unwrap();
    (discarded.discard)(discarded.data);
    let (_, action) = delayed.pop().unwrap();
    (action.run)(action.data, block.ptr(), &ctx)
        .into_result()
        .unwrap();
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
    let ctx = host.subcontroller();
    let overrides = components.overrides();
    assert!(overrides.pulse && !overrides.signal_update && !overrides.manual_event);

    let mut block = components.create_block().unwrap();
    let pulse = PulseEvent {
        sequence: 0,
        timestamp_ns: 1,
    };
    for _ in 0..3 {
        (components.event_handler.pulse())(block.ptr(), &ctx, &pulse)
            .into_result()
            .unwrap();
    }
    assert_eq!(
        block.snapshot().unwrap().get("pulses"),
        Some(&Value::Int(3))
    );

    // Not overridden: the plugin's entry point still answers with the default.
    let events: RVec<Value> = vec![Value::from_iter([("packet_rate", 5)])].into();
    let out = (components.event_handler.signal_update())(block.ptr(), &ctx, events.clone())
        .into_result()
        .unwrap();
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

    let err = (components.state_machine.eval_condition())(99, &ValueMap::new())
        .into_result()
        .unwrap_err();
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
