//! The engine's rules as the kit applies them, on a block made to break
//! them: panics fault the block, `log` records reach the captured logs,
//! delayed actions run in due order on the virtual clock, a forced signal
//! update inside a signal update is ignored, default handlers never reach
//! the plugin.

use std::time::Duration;

use bitstream_sdk::prelude::*;
use bitstream_testkit::Harness;
use serde_json::json;

#[derive(Default, Serialize, Deserialize)]
pub struct Probe {
    order: Vec<String>,
    signal_updates: u32,
}

fn machine() -> StateMachine {
    StateMachine::new(["IDLE", "FAULT"], "IDLE")
}

fn api() -> Api<Probe> {
    Api::new()
        .route(Route::post(
            "panic",
            |_b: &mut Probe, _ctx, _req| -> Result<Response, Error> { panic!("on purpose") },
        ))
        .route(Route::get("id", |_b: &mut Probe, ctx, _req| {
            Ok(Response::json(&ctx.block_id()))
        }))
        .route(Route::post("warn", |_b: &mut Probe, _ctx, _req| {
            log::warn!("through the log crate");
            Ok(Response::ok())
        }))
        .route(Route::post("later", |_b: &mut Probe, ctx, _req| {
            for (ms, name) in [(20, "twenty"), (10, "ten"), (10, "ten again")] {
                ctx.delay_action(Duration::from_millis(ms), move |b: &mut Probe, ctx| {
                    b.order.push(name.to_owned());
                    if name == "ten" {
                        // Scheduled from a delayed action: due at 15 ms.
                        ctx.delay_action(Duration::from_millis(5), |b: &mut Probe, _| {
                            b.order.push("fifteen".to_owned());
                            Ok(())
                        })?;
                    }
                    Ok(())
                })?;
            }
            Ok(Response::accepted())
        }))
}

/// Only a signal-update handler: pulses and manual events keep the
/// engine's defaults.
fn events() -> EventHandler<Probe> {
    EventHandler::<Probe>::new().on_signal_update(|b, ctx, list| {
        b.signal_updates += 1;
        ctx.force_signal_update()?;
        Ok(list)
    })
}

bitstream_sdk::define_plugin!(ProbePlugin,
    ip_block: Probe,
    state_machine: machine,
    api: api,
    event_handler: events);

#[test]
fn a_panicking_route_answers_500_and_faults_the_block() {
    let mut h = Harness::<Probe>::new();
    let r = h.post("panic", json!({}));
    assert_eq!(r.status(), 500);
    assert!(r.error().unwrap().contains("on purpose"), "{r:?}");
    assert_eq!(h.state(), "FAULT");
    assert!(h.fault().unwrap().contains("route \"panic\""));
    // The block still answers.
    assert_eq!(h.post("warn", json!({})).status(), 200);
}

#[test]
fn log_crate_records_are_captured_with_their_level() {
    let mut h = Harness::<Probe>::new();
    h.post("warn", json!({}));
    let warnings = h.logged(LogLevel::Warning);
    assert_eq!(warnings.len(), 1, "{:?}", h.logs());
    assert!(
        warnings[0].ends_with("through the log crate"),
        "{warnings:?}"
    );
}

#[test]
fn delayed_actions_run_in_due_order_when_the_clock_reaches_them() {
    let mut h = Harness::<Probe>::new();
    assert_eq!(h.post("later", json!({})).status(), 202);
    assert_eq!(h.pending(), 3);
    h.advance(Duration::from_millis(9));
    assert!(h.block().order.is_empty());
    h.advance(Duration::from_millis(11));
    assert_eq!(h.block().order, ["ten", "ten again", "fifteen", "twenty"]);
    assert_eq!((h.pending(), h.now()), (0, Duration::from_millis(20)));
}

#[test]
fn defaults_never_reach_the_plugin_and_forcing_inside_a_signal_update_is_ignored() {
    let mut h = Harness::<Probe>::new();
    let out = h.pulse();
    assert_eq!(out, h.input());
    assert_eq!(h.block().signal_updates, 1);
    assert_eq!(h.forced_updates(), 1);
    assert_eq!(
        h.logged(LogLevel::Debug),
        ["force_signal_update inside a signal-update handler is ignored"]
    );
    // No manual-event handler: nothing is forwarded, nothing changes.
    let forwarded = h.inject(ManualEvent::injection(Severity::FatalError, json!({})));
    assert!(forwarded.is_empty());
    assert_eq!(h.state(), "IDLE");
}

#[test]
fn plugin_code_sees_the_harness_block_id() {
    let mut h = Harness::<Probe>::new();
    assert_eq!(h.get("id").json(), json!("block"));
    let mut h = Harness::<Probe>::new().with_id("probe_7");
    assert_eq!(h.get("id").json(), json!("probe_7"));
}
