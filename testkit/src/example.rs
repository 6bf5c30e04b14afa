//! A tiny block for the examples of this crate's documentation: a lamp.
//!
//! It uses each thing the kit runs: a state machine with a condition
//! (`OFF -> ON` only with a brightness above 0), a route with a body schema
//! (`POST on {"brightness": 1..=100}`), a query parameter (`POST off?after_ms=N`
//! switches off later, through `delay_action`), a path parameter
//! (`POST dim/<level>`), `force_signal_update` (`POST refresh`), a pulse
//! handler (counts the hours it was on, also in its device buffer), a
//! signal-update handler (sends its brightness downstream), a manual-event
//! handler (a `FatalError` faults it) and a constant (`max_brightness`).
//!
//! ```
//! use bitstream_testkit::example::Lamp;
//! use bitstream_testkit::Harness;
//! use serde_json::json;
//!
//! let mut h = Harness::<Lamp>::new();
//! assert_eq!(h.post("on", json!({"brightness": 40})).status(), 200);
//! assert_eq!(h.state(), "ON");
//! ```

use std::time::Duration;

use bitstream_sdk::prelude::*;

/// The lamp's data: its brightness, the hours (pulses) it was on, and a
/// constant.
///
/// ```
/// let lamp = bitstream_testkit::example::Lamp::default();
/// assert_eq!((lamp.brightness, lamp.max_brightness), (0, 100));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lamp {
    /// 0 when off, else 1 to `max_brightness`.
    pub brightness: u32,
    /// Pulses seen while on.
    pub hours: u64,
    /// A config constant: the largest brightness `dim` accepts.
    pub max_brightness: u32,
}

impl Default for Lamp {
    fn default() -> Self {
        Lamp {
            brightness: 0,
            hours: 0,
            max_brightness: 100,
        }
    }
}

/// The device-buffer catalog the lamp declares: one `hours` register.
///
/// ```
/// # use bitstream_testkit::{example::Lamp, Harness};
/// assert!(Harness::<Lamp>::new().buffer().get("hours").is_ok());
/// ```
pub const CATALOG: &str = r#"{"lamp": {"params": [{"name": "hours", "type": "uint64"}]}}"#;

/// `OFF`, `ON`, `FAULT`; `SWITCH_ON` needs a brightness above 0.
///
/// ```
/// let machine = bitstream_testkit::example::state_machine();
/// assert_eq!(machine.describe().initial.as_str(), "OFF");
/// ```
pub fn state_machine() -> StateMachine {
    StateMachine::new(["OFF", "ON", "FAULT"], "OFF")
        .triggers(["SWITCH_ON", "SWITCH_OFF", "CRITICAL_FAULT"])
        .transition(
            Transition::on("SWITCH_ON")
                .from(["OFF", "ON"])
                .to("ON")
                .when("brightness > 0", |args| {
                    args.get("brightness")
                        .and_then(Value::as_f64)
                        .is_some_and(|b| b > 0.0)
                }),
        )
        .transition(Transition::on("SWITCH_OFF").from(["ON", "OFF"]).to("OFF"))
        .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
}

fn switch_off(lamp: &mut Lamp, ctx: &Subcontroller<'_, Lamp>) -> Result<(), Error> {
    ctx.trigger("SWITCH_OFF", ())?;
    lamp.brightness = 0;
    ctx.log_info("off");
    Ok(())
}

/// `POST on`, `POST off[?after_ms=N]`, `POST dim/<level>`, `POST refresh`,
/// `GET status`.
///
/// ```
/// assert_eq!(bitstream_testkit::example::api().describe().len(), 5);
/// ```
pub fn api() -> Api<Lamp> {
    Api::new()
        .route(
            Route::post("on", |lamp: &mut Lamp, ctx, req| {
                let body: serde_json::Value = req.json()?;
                let brightness = body["brightness"].as_u64().unwrap_or(0);
                ctx.trigger("SWITCH_ON", [("brightness", brightness)])?;
                lamp.brightness = brightness as u32;
                ctx.log_info(format!("on at {brightness}"));
                Ok(Response::ok())
            })
            .summary("Switches the lamp on at a brightness from 1 to 100.")
            .body_with_schema(serde_json::json!({
                "type": "object",
                "properties": {"brightness": {"type": "integer", "minimum": 1, "maximum": 100}},
                "required": ["brightness"]
            })),
        )
        .route(
            Route::post("off", |lamp: &mut Lamp, ctx, req| {
                let after_ms = req.query("after_ms").and_then(Value::as_i64).unwrap_or(0);
                if after_ms <= 0 {
                    switch_off(lamp, ctx)?;
                    return Ok(Response::ok());
                }
                ctx.delay_action(Duration::from_millis(after_ms as u64), switch_off)?;
                Ok(Response::accepted())
            })
            .summary("Switches the lamp off, now or after `after_ms` milliseconds.")
            .query("after_ms", ParamKind::Int, 0),
        )
        .route(
            Route::post("dim", |lamp: &mut Lamp, _ctx, req| {
                let level: u32 = req
                    .path_param()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| Error::bad_request("dim needs a level: POST dim/<level>"))?;
                if level > lamp.max_brightness {
                    return Err(Error::bad_request(format!(
                        "level {level} is above max_brightness {}",
                        lamp.max_brightness
                    )));
                }
                lamp.brightness = level;
                Ok(Response::json(&*lamp))
            })
            .summary("Sets the brightness.")
            .path_param("level", ParamKind::Int),
        )
        .route(
            Route::post("refresh", |_lamp: &mut Lamp, ctx, _req| {
                ctx.force_signal_update()?;
                Ok(Response::ok())
            })
            .summary("Sends the brightness downstream now."),
        )
        .route(
            Route::get("status", |lamp: &mut Lamp, ctx, _req| {
                Ok(Response::json(&serde_json::json!({
                    "state": ctx.get_state(),
                    "brightness": lamp.brightness,
                    "hours": lamp.hours,
                })))
            })
            .summary("The state, brightness and hours."),
        )
}

/// Pulses count hours while on; signal updates send the brightness; a
/// fatal manual event faults the lamp.
///
/// ```
/// let overrides = bitstream_testkit::example::event_handler().overrides();
/// assert!(overrides.pulse && overrides.signal_update && overrides.manual_event);
/// ```
pub fn event_handler() -> EventHandler<Lamp> {
    EventHandler::<Lamp>::new()
        .on_pulse(|lamp, ctx, _pulse| {
            if ctx.get_state() == "ON" {
                lamp.hours += 1;
                ctx.buffer()?.set("hours", lamp.hours)?;
            }
            Ok(())
        })
        .on_signal_update(|lamp, _ctx, _events| {
            Ok(vec![
                serde_json::json!({"brightness": lamp.brightness}).into()
            ])
        })
        .on_manual_event(|_lamp, ctx, event| {
            if event.severity == Severity::FatalError {
                ctx.log_warning("fatal event: faulting");
                ctx.trigger_if_allowed("CRITICAL_FAULT", ());
            }
            Ok(None)
        })
}

bitstream_sdk::define_plugin!(LampPlugin,
    ip_block: Lamp,
    state_machine: state_machine,
    api: api,
    event_handler: event_handler,
    catalog: CATALOG,
);
