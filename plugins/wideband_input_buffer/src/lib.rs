//! `wideband_input_buffer`: the VCC bitstream's wideband input buffer, as
//! described in `docs/vcc-ip-blocks.md`.
//!
//! - `configure` (from `RESET` or `READY`) goes through `CONFIGURING`: a
//!   body that fits the schema stores its values and ends in `READY`; one
//!   that does not ends back in `RESET` and answers 400.
//! - `start` (from `READY`) enables it; the first pulse that sees a
//!   non-zero packet rate completes the enabling. `stop` disables it; the
//!   next pulse completes the disabling (back to `READY`).
//! - Signal updates: the block remembers the smallest `packet_rate` of the
//!   list and passes only the first event downstream.
//! - Injections: `force_register_value` sets one ip_block field,
//!   `power_cycle` resets the block.
//!
//! The handlers are plain functions generic over [`Control`] (the part of
//! the SDK's `Subcontroller` they use); the unit tests run the whole block
//! with `bitstream-testkit`. The start/stop routes and
//! the signal and pulse handling are those of `vcc_common::enabling`
//! (shared with packet_validation).

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::json;
use vcc_common::{
    any_object_route, enabling, handle_common_manual_event, reset_route, schema, schema_route,
    status_route, Control,
};

/// The ip_block type name, used in messages (the SDK does not tell a
/// handler its block's id).
pub const TYPE_NAME: &str = "wideband_input_buffer";

// ---------------------------------------------------------------------------
// ip_block

/// The ip_block: configuration and status registers. Every integer
/// register is a non-negative 64-bit integer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WidebandInputBuffer {
    /// Set by `configure`.
    pub expected_sample_rate: u64,
    /// Set by `configure`.
    pub noise_diode_transition_holdoff_seconds: u64,
    /// Set by `configure` (1 to 6; 0 until configured).
    pub expected_dish_band: u64,
    pub buffer_underflowed: bool,
    pub buffer_overflowed: bool,
    pub loss_of_signal: u64,
    pub error: bool,
    pub loss_of_signal_seconds: u64,
    pub meta_band_id: u64,
    pub meta_dish_id: u64,
    pub rx_sample_rate: u64,
    pub meta_transport_sample_rate: u64,
    /// The smallest packet rate of the last signal update, used by the next
    /// pulse; `None` before the first signal update (the pulse then uses 0).
    /// Not a register: hidden from the ip_block's JSON (and so from
    /// `force_register_value`); the SDK has no other place for per-block
    /// handler state.
    #[serde(skip)]
    pub packet_rate: Option<f64>,
}

impl Default for WidebandInputBuffer {
    fn default() -> Self {
        WidebandInputBuffer {
            expected_sample_rate: 0,
            noise_diode_transition_holdoff_seconds: 0,
            expected_dish_band: 0,
            buffer_underflowed: false,
            buffer_overflowed: false,
            loss_of_signal: 0,
            error: false,
            loss_of_signal_seconds: 0,
            meta_band_id: 1,
            meta_dish_id: 1,
            rx_sample_rate: 3_960_000_000,
            meta_transport_sample_rate: 3_960_000_000,
            packet_rate: None,
        }
    }
}

// ---------------------------------------------------------------------------
// state_machine

/// RESET (initial), CONFIGURING, READY, ENABLING, ENABLED, DISABLING, FAULT:
/// configuring leads from RESET (or READY) to READY, then the life cycle of
/// `vcc_common::enabling` with READY as its idle state, then
/// `CRITICAL_FAULT` and `RESET` from any state.
pub fn state_machine() -> StateMachine {
    let machine = StateMachine::new(
        [
            "RESET",
            "CONFIGURING",
            "READY",
            "ENABLING",
            "ENABLED",
            "DISABLING",
            "FAULT",
        ],
        "RESET",
    )
    .triggers([
        "CONFIGURE",
        "FINISH_CONFIGURING",
        "FAIL_CONFIGURING",
        "START",
        "STOP",
        "RECEIVE_PULSE",
        "CRITICAL_FAULT",
        "RESET",
    ])
    .transition(
        Transition::on("CONFIGURE")
            .from(["RESET", "READY"])
            .to("CONFIGURING"),
    )
    .transition(
        Transition::on("FINISH_CONFIGURING")
            .from("CONFIGURING")
            .to("READY"),
    )
    .transition(
        Transition::on("FAIL_CONFIGURING")
            .from("CONFIGURING")
            .to("RESET"),
    );
    enabling::with_transitions(machine, "READY", ["READY", "DISABLING"])
        .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
        .transition(Transition::on("RESET").from(FROM_ANY).to("RESET"))
}

// ---------------------------------------------------------------------------
// api

/// The body schema of `configure`: `expected_dish_band` (integer 1 to 6)
/// and at least one of `expected_sample_rate` and
/// `noise_diode_transition_holdoff_seconds` (integers >= 0). Other keys are
/// allowed and ignored (strict on types, lenient on unknown keys).
pub fn configure_schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "expected_dish_band": {"type": "integer", "minimum": 1, "maximum": 6},
            "expected_sample_rate": {"type": "integer", "minimum": 0},
            "noise_diode_transition_holdoff_seconds": {"type": "integer", "minimum": 0}
        },
        "required": ["expected_dish_band"],
        "anyOf": [
            {"required": ["expected_sample_rate"]},
            {"required": ["noise_diode_transition_holdoff_seconds"]}
        ]
    })
}

/// The body of `configure`. Numbers are read as JSON numbers because the
/// schema's `integer` also admits integral floats such as `3.0`.
#[derive(Debug, Deserialize)]
struct ConfigureBody {
    expected_dish_band: serde_json::Number,
    expected_sample_rate: Option<serde_json::Number>,
    noise_diode_transition_holdoff_seconds: Option<serde_json::Number>,
}

/// A schema-checked `integer` as a `u64` (400 when it does not fit).
fn whole(name: &str, n: &serde_json::Number) -> Result<u64, Error> {
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        })
        .ok_or_else(|| {
            Error::bad_request(format!(
                "invalid body: /{name}: {n} is not a non-negative 64-bit integer"
            ))
        })
}

/// What a valid `configure` body sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    expected_dish_band: u64,
    expected_sample_rate: Option<u64>,
    noise_diode_transition_holdoff_seconds: Option<u64>,
}

fn parse_configure(req: &Request, schema: &JsonSchema) -> Result<Settings, Error> {
    let body: ConfigureBody = vcc_common::checked_body(req, schema)?;
    let optional =
        |name: &str, n: &Option<serde_json::Number>| n.as_ref().map(|n| whole(name, n)).transpose();
    Ok(Settings {
        expected_dish_band: whole("expected_dish_band", &body.expected_dish_band)?,
        expected_sample_rate: optional("expected_sample_rate", &body.expected_sample_rate)?,
        noise_diode_transition_holdoff_seconds: optional(
            "noise_diode_transition_holdoff_seconds",
            &body.noise_diode_transition_holdoff_seconds,
        )?,
    })
}

/// `POST configure`, in the reference's order: when `CONFIGURE` may not
/// fire, a 500 *reply* (the block is fine, the request is refused, so it is
/// a response, not an error: the engine faults a block only on a panic or
/// an error). Otherwise fire `CONFIGURE`, then check the body: on failure fire
/// `FAIL_CONFIGURING` (back to `RESET`) and answer 400; on success store
/// the values given, fire `FINISH_CONFIGURING` (`READY`) and answer 200.
pub fn configure(
    block: &mut WidebandInputBuffer,
    ctx: &impl Control,
    req: &Request,
    schema: &JsonSchema,
) -> Result<Response, Error> {
    if !ctx.may_trigger("CONFIGURE", ()) {
        let message = format!(
            "Cannot configure {TYPE_NAME} while in state {}: configure is allowed in RESET and READY only",
            ctx.get_state()
        );
        return Ok(Response::with_status(500).with_body(Value::from_iter([("error", message)])));
    }
    ctx.trigger("CONFIGURE", ())?;
    let settings = match parse_configure(req, schema) {
        Ok(settings) => settings,
        Err(err) => {
            ctx.log(
                LogLevel::Warning,
                &format!("configuration refused: {}", err.message()),
            );
            ctx.trigger_if_allowed("FAIL_CONFIGURING", ());
            return Err(err);
        }
    };
    block.expected_dish_band = settings.expected_dish_band;
    if let Some(rate) = settings.expected_sample_rate {
        block.expected_sample_rate = rate;
    }
    if let Some(seconds) = settings.noise_diode_transition_holdoff_seconds {
        block.noise_diode_transition_holdoff_seconds = seconds;
    }
    ctx.trigger("FINISH_CONFIGURING", ())?;
    ctx.log(LogLevel::Info, &format!("configured: {settings:?}"));
    Ok(Response::ok())
}

/// The body of `GET status`: the nine status registers.
pub fn status(block: &WidebandInputBuffer) -> serde_json::Value {
    json!({
        "buffer_underflowed": block.buffer_underflowed,
        "buffer_overflowed": block.buffer_overflowed,
        "loss_of_signal": block.loss_of_signal,
        "error": block.error,
        "loss_of_signal_seconds": block.loss_of_signal_seconds,
        "meta_band_id": block.meta_band_id,
        "meta_dish_id": block.meta_dish_id,
        "rx_sample_rate": block.rx_sample_rate,
        "meta_transport_sample_rate": block.meta_transport_sample_rate,
    })
}

/// The routes: configure, deconfigure (any JSON object, no effect),
/// recover, start, stop (POST) and status (GET).
pub fn api() -> Api<WidebandInputBuffer> {
    Api::new()
        .route(schema_route(
            "configure",
            "Stores expected_dish_band and expected_sample_rate and/or noise_diode_transition_holdoff_seconds: READY (400 and RESET when the body is refused; 500 outside RESET and READY).",
            configure_schema(),
            |block: &mut WidebandInputBuffer, ctx, req, checks| configure(block, ctx, req, checks),
        ))
        .route(any_object_route("deconfigure", "Accepted; has no effect."))
        .route(reset_route("recover", "Fires RESET: back to the RESET state."))
        .route(enabling::start_route(TYPE_NAME))
        .route(enabling::stop_route(TYPE_NAME))
        .route(status_route(status))
}

// ---------------------------------------------------------------------------
// event_handler

/// The schema a `force_register_value` injection's value must fit:
/// `register_name` (an identifier) and `register_value` (anything; its type
/// is checked against the register's).
pub fn force_register_schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "register_name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
        },
        "required": ["register_name", "register_value"]
    })
}

/// Sets the ip_block field `name` to `value` through serde (the block as a
/// JSON object, the field replaced, read back), so that any register can be
/// forced by name. No such field, or a value that does not fit its type:
/// an error that says which, and the block is left unchanged.
pub fn force_register_value(
    block: &mut WidebandInputBuffer,
    name: &str,
    value: &Value,
) -> Result<(), String> {
    let mut registers =
        serde_json::to_value(&*block).map_err(|e| format!("the registers cannot be read: {e}"))?;
    let fields = registers
        .as_object_mut()
        .ok_or("the registers are not a JSON object")?;
    let Some(slot) = fields.get_mut(name) else {
        let mut known: Vec<&str> = fields.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(format!(
            "{TYPE_NAME} has no register \"{name}\" (registers: {})",
            known.join(", ")
        ));
    };
    *slot = value.clone().into();
    let mut forced: WidebandInputBuffer = serde_json::from_value(registers)
        .map_err(|e| format!("register \"{name}\" cannot take the value {value}: {e}"))?;
    // Not a register: keep it.
    forced.packet_rate = block.packet_rate;
    *block = forced;
    Ok(())
}

/// The block-specific part of a manual event, by `value.injection_type`
/// (injections only; general events are left to the common rule):
/// `force_register_value` sets a register, `power_cycle` fires `RESET` if
/// allowed, another type is logged as a warning and a missing one as an
/// error. Nothing here fails the call.
pub fn injection(
    block: &mut WidebandInputBuffer,
    ctx: &impl Control,
    event: &ManualEvent,
    force_register_checks: &JsonSchema,
) {
    if event.subtype != ManualEventSubtype::Injection {
        return;
    }
    match event.injection_type() {
        Some("force_register_value") => {
            if let Err(err) = force_register_checks.validate(&event.value) {
                ctx.log(
                    LogLevel::Error,
                    &format!("force_register_value injection ignored: {}", err.message()),
                );
                return;
            }
            let name = event
                .value
                .get("register_name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let value = event
                .value
                .get("register_value")
                .cloned()
                .unwrap_or_default();
            match force_register_value(block, name, &value) {
                Ok(()) => ctx.log(
                    LogLevel::Info,
                    &format!("register \"{name}\" forced to {value}"),
                ),
                Err(message) => ctx.log(
                    LogLevel::Error,
                    &format!("force_register_value injection ignored: {message}"),
                ),
            }
        }
        Some("power_cycle") => {
            ctx.trigger_if_allowed("RESET", ());
        }
        Some(other) => ctx.log(
            LogLevel::Warning,
            &format!("unknown injection type \"{other}\" ignored"),
        ),
        None => ctx.log(
            LogLevel::Error,
            &format!(
                "injection without an injection_type (a string) ignored: {}",
                event.value
            ),
        ),
    }
}

/// Signal updates and pulses as in `vcc_common::enabling` (the smallest
/// packet rate remembered in [`WidebandInputBuffer::packet_rate`], only the
/// first event passed on; `RECEIVE_PULSE` with it), and manual events (the
/// block-specific injections, then the common rule: FATAL_ERROR faults the
/// block).
pub fn event_handler() -> EventHandler<WidebandInputBuffer> {
    let force_register_checks = schema(force_register_schema());
    let handler = EventHandler::<WidebandInputBuffer>::new();
    enabling::with_signal_and_pulses(handler, |block| &mut block.packet_rate).on_manual_event(
        move |block, ctx, event| {
            injection(block, ctx, event, &force_register_checks);
            handle_common_manual_event(ctx, event);
            Ok(None)
        },
    )
}

bitstream_sdk::export_plugin! {
    ip_block: WidebandInputBuffer,
    state_machine: state_machine,
    api: api,
    event_handler: event_handler,
}

#[cfg(test)]
mod tests {
    use bitstream_testkit::Harness;
    use vcc_common::COMMON_ROUTES;

    use super::*;

    fn rate(packet_rate: f64) -> Value {
        [("packet_rate", packet_rate)].into_iter().collect()
    }

    /// An injection of severity WARNING carrying `value`.
    fn inject(value: serde_json::Value) -> ManualEvent {
        ManualEvent::injection(Severity::Warning, Value::from(value))
    }

    fn harness_in(state: &str) -> Harness<WidebandInputBuffer> {
        let mut h = Harness::<WidebandInputBuffer>::new();
        h.set_state(state);
        h
    }

    #[test]
    fn ip_block_fields_and_defaults_are_the_reference_ones() {
        let value = Harness::<WidebandInputBuffer>::new().snapshot();
        assert_eq!(
            value,
            json!({
                "expected_sample_rate": 0,
                "noise_diode_transition_holdoff_seconds": 0,
                "expected_dish_band": 0,
                "buffer_underflowed": false,
                "buffer_overflowed": false,
                "loss_of_signal": 0,
                "error": false,
                "loss_of_signal_seconds": 0,
                "meta_band_id": 1,
                "meta_dish_id": 1,
                "rx_sample_rate": 3_960_000_000u64,
                "meta_transport_sample_rate": 3_960_000_000u64
            })
        );
        let names: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(names[0], "expected_sample_rate");
        assert_eq!(names[11], "meta_transport_sample_rate");
    }

    #[test]
    fn machine_matches_the_reference() {
        let h = Harness::<WidebandInputBuffer>::new();
        assert_eq!(
            h.states(),
            [
                "RESET",
                "CONFIGURING",
                "READY",
                "ENABLING",
                "ENABLED",
                "DISABLING",
                "FAULT"
            ]
        );
        assert_eq!(h.machine().initial, "RESET");
        assert_eq!(h.condition_labels(), ["packet rate > 0", "packet rate = 0"]);
        assert_eq!(
            h.transitions(),
            [
                "CONFIGURE: RESET, READY -> CONFIGURING",
                "FINISH_CONFIGURING: CONFIGURING -> READY",
                "FAIL_CONFIGURING: CONFIGURING -> RESET",
                "START: READY -> ENABLING",
                "START: ENABLING, ENABLED -> =",
                "STOP: ENABLED -> DISABLING",
                "STOP: ENABLING -> READY",
                "STOP: READY, DISABLING -> =",
                "RECEIVE_PULSE: ENABLING -> ENABLED [packet rate > 0]",
                "RECEIVE_PULSE: ENABLING -> = [packet rate = 0]",
                "RECEIVE_PULSE: DISABLING -> READY",
                "RECEIVE_PULSE: READY, ENABLED -> =",
                "CRITICAL_FAULT: * -> FAULT",
                "RESET: * -> RESET",
            ]
        );
    }

    #[test]
    fn status_has_the_nine_registers() {
        let mut h = Harness::<WidebandInputBuffer>::new().with_constants(json!({"error": true}));
        assert_eq!(
            h.get("status").json(),
            json!({
                "buffer_underflowed": false,
                "buffer_overflowed": false,
                "loss_of_signal": 0,
                "error": true,
                "loss_of_signal_seconds": 0,
                "meta_band_id": 1,
                "meta_dish_id": 1,
                "rx_sample_rate": 3_960_000_000u64,
                "meta_transport_sample_rate": 3_960_000_000u64
            })
        );
    }

    #[test]
    fn configure_stores_the_values_and_ends_ready() {
        let mut h = Harness::<WidebandInputBuffer>::new();
        let body = json!({"expected_dish_band": 3, "expected_sample_rate": 3_960_000_000u64});
        assert_eq!(h.post("configure", body).status(), 200);
        assert_eq!(h.state(), "READY");
        assert_eq!(h.fired(), ["CONFIGURE", "FINISH_CONFIGURING"]);
        let block = h.block();
        assert_eq!(block.expected_dish_band, 3);
        assert_eq!(block.expected_sample_rate, 3_960_000_000);
        assert_eq!(block.noise_diode_transition_holdoff_seconds, 0);

        // Again from READY; only the values given change; integral floats
        // are integers for the schema and here; unknown keys are ignored.
        let body = json!({"expected_dish_band": 5.0, "noise_diode_transition_holdoff_seconds": 4, "extra": "x"});
        assert_eq!(h.post("configure", body).status(), 200);
        assert_eq!(h.state(), "READY");
        let block = h.block();
        assert_eq!(block.expected_dish_band, 5);
        assert_eq!(block.expected_sample_rate, 3_960_000_000);
        assert_eq!(block.noise_diode_transition_holdoff_seconds, 4);
    }

    #[test]
    fn a_refused_body_answers_400_and_ends_in_reset() {
        let bodies = [
            json!({}),
            json!({"expected_sample_rate": 1}),
            json!({"expected_dish_band": 3}),
            json!({"expected_dish_band": 0, "expected_sample_rate": 1}),
            json!({"expected_dish_band": 7, "expected_sample_rate": 1}),
            json!({"expected_dish_band": 2.5, "expected_sample_rate": 1}),
            json!({"expected_dish_band": "3", "expected_sample_rate": 1}),
            json!({"expected_dish_band": 3, "expected_sample_rate": -1}),
            json!({"expected_dish_band": 3, "noise_diode_transition_holdoff_seconds": 1.5}),
            json!({"expected_dish_band": 3, "expected_sample_rate": 1e30}),
            json!([]),
        ];
        for body in bodies {
            let mut h = harness_in("READY");
            let before = h.block();
            let r = h.post("configure", body.clone());
            assert_eq!(r.status(), 400, "{body}");
            assert_eq!(h.state(), "RESET", "{body}");
            assert_eq!(h.fired(), ["CONFIGURE", "FAIL_CONFIGURING"], "{body}");
            assert_eq!(h.block(), before, "{body}");
            assert_eq!(h.logged(LogLevel::Warning).len(), 1);
        }
        let mut h = Harness::<WidebandInputBuffer>::new();
        let r = h.post(
            "configure",
            json!({"expected_dish_band": 9, "expected_sample_rate": 1}),
        );
        assert!(r.error().unwrap().contains("/expected_dish_band"), "{r:?}");
    }

    #[test]
    fn configure_outside_reset_and_ready_answers_500_without_failing() {
        let body = json!({"expected_dish_band": 3, "expected_sample_rate": 1});
        for state in ["CONFIGURING", "ENABLING", "ENABLED", "DISABLING", "FAULT"] {
            let mut h = harness_in(state);
            let r = h.post("configure", body.clone());
            assert_eq!(r.status(), 500);
            let message = r.error().unwrap();
            assert!(
                message.starts_with(&format!(
                    "Cannot configure wideband_input_buffer while in state {state}"
                )),
                "{message}"
            );
            assert_eq!(h.state(), state);
            assert!(h.fired().is_empty());
            assert_eq!(h.fault(), None);
            assert_eq!(h.block(), WidebandInputBuffer::default());
        }
    }

    #[test]
    fn deconfigure_accepts_any_object() {
        // Checked against the schema deconfigure publishes.
        let mut h = Harness::<WidebandInputBuffer>::new();
        assert_eq!(
            h.request("POST", "deconfigure", br#"{"x": 1}"#).status(),
            200
        );
        assert_eq!(h.request("POST", "deconfigure", b"5").status(), 400);
    }

    #[test]
    fn start_pulses_stop_follow_the_observed_sequence() {
        let mut h = Harness::<WidebandInputBuffer>::new();
        let post = |h: &mut Harness<WidebandInputBuffer>, route| h.post(route, json!({}));
        // Not configured yet: start is a conflict.
        let r = post(&mut h, "start");
        assert_eq!(r.status(), 409);
        assert_eq!(
            r.error(),
            Some("Cannot start wideband_input_buffer while in state RESET")
        );
        assert_eq!(post(&mut h, "stop").status(), 409);

        let body = json!({"expected_dish_band": 1, "expected_sample_rate": 3_960_000_000u64});
        assert_eq!(h.post("configure", body).status(), 200);
        assert_eq!(post(&mut h, "start").status(), 200);
        assert_eq!(h.state(), "ENABLING");
        h.pulse_with(Vec::<Value>::new()); // no signal: 0
        assert_eq!(h.state(), "ENABLING");
        // Fan-in: two upstream blocks, the smaller rate counts, one event on.
        let out = h.pulse_with([rate(0.0), rate(5.0)]);
        assert_eq!(out, vec![rate(0.0)]);
        assert_eq!(h.state(), "ENABLING");
        h.pulse_with([rate(5.0), rate(6.0)]);
        assert_eq!(h.state(), "ENABLED");
        assert_eq!(post(&mut h, "start").status(), 200);
        assert_eq!(h.state(), "ENABLED");
        assert_eq!(post(&mut h, "stop").status(), 200);
        assert_eq!(h.state(), "DISABLING");
        h.pulse();
        assert_eq!(h.state(), "READY");
        assert_eq!(post(&mut h, "stop").status(), 200);
        assert_eq!(h.state(), "READY");
        // Stopping while enabling goes back to READY at once.
        assert_eq!(post(&mut h, "start").status(), 200);
        assert_eq!(post(&mut h, "stop").status(), 200);
        assert_eq!(h.state(), "READY");
    }

    #[test]
    fn force_register_value_sets_a_field_through_serde() {
        let mut block = WidebandInputBuffer {
            packet_rate: Some(4.0),
            ..WidebandInputBuffer::default()
        };
        force_register_value(&mut block, "buffer_overflowed", &Value::Bool(true)).unwrap();
        force_register_value(&mut block, "loss_of_signal_seconds", &Value::Int(12)).unwrap();
        force_register_value(&mut block, "expected_dish_band", &Value::Int(2)).unwrap();
        assert!(block.buffer_overflowed);
        assert_eq!(block.loss_of_signal_seconds, 12);
        assert_eq!(block.expected_dish_band, 2);
        assert_eq!(block.packet_rate, Some(4.0));

        let before = block.clone();
        let err = force_register_value(&mut block, "no_such", &Value::Int(1)).unwrap_err();
        assert!(err.contains("no register \"no_such\""), "{err}");
        // Not a register.
        let err = force_register_value(&mut block, "packet_rate", &Value::Int(1)).unwrap_err();
        assert!(err.contains("no register \"packet_rate\""), "{err}");
        let err = force_register_value(&mut block, "error", &Value::from("yes")).unwrap_err();
        assert!(
            err.contains("register \"error\" cannot take the value \"yes\""),
            "{err}"
        );
        let err = force_register_value(&mut block, "meta_band_id", &Value::Int(-1)).unwrap_err();
        assert!(err.contains("meta_band_id"), "{err}");
        assert_eq!(block, before);
    }

    #[test]
    fn injections_by_type() {
        let mut h = harness_in("ENABLED");

        h.inject(inject(
            json!({"injection_type": "force_register_value", "register_name": "error", "register_value": true}),
        ));
        assert!(h.block().error);
        assert_eq!(h.logged(LogLevel::Error), Vec::<String>::new());

        // Refused: no such register, wrong type, bad name, missing value.
        let before = h.block();
        for value in [
            json!({"injection_type": "force_register_value", "register_name": "nope", "register_value": 1}),
            json!({"injection_type": "force_register_value", "register_name": "error", "register_value": 1}),
            json!({"injection_type": "force_register_value", "register_name": "1error", "register_value": true}),
            json!({"injection_type": "force_register_value", "register_name": "meta-band", "register_value": 1}),
            json!({"injection_type": "force_register_value", "register_name": "error"}),
            json!({"injection_type": "force_register_value", "register_name": 3, "register_value": 1}),
        ] {
            h.inject(inject(value));
        }
        assert_eq!(h.block(), before);
        let errors = h.logged(LogLevel::Error);
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors[0].contains("\"nope\""), "{}", errors[0]);
        assert!(errors[4].contains("register_value"), "{}", errors[4]);

        // Unknown type: a warning; missing type: an error; general events:
        // nothing here.
        h.inject(inject(json!({"injection_type": "melt"})));
        assert_eq!(h.logged(LogLevel::Warning).len(), 1);
        h.inject(inject(json!({"register_name": "error"})));
        assert_eq!(h.logged(LogLevel::Error).len(), 7);
        h.inject(ManualEvent::general(
            Severity::General,
            Value::from(json!({"injection_type": "power_cycle"})),
        ));
        assert_eq!(h.state(), "ENABLED");
        assert!(h.fired().is_empty());

        // power_cycle resets the block.
        h.inject(inject(json!({"injection_type": "power_cycle"})));
        assert_eq!(h.state(), "RESET");
        assert_eq!(h.fired(), ["RESET"]);
    }

    #[test]
    fn api_publishes_the_reference_routes_and_schemas() {
        let h = Harness::<WidebandInputBuffer>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        // Published as declared, marked as checked by the handler (which
        // answers a bad body after firing its own triggers).
        let mut published = configure_schema();
        published[bitstream_sdk::schema::CHECKED_IN_HANDLER] = json!(true);
        assert_eq!(h.body_schema("configure"), Some(published));
        let any_object = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object"
        });
        assert_eq!(h.body_schema("deconfigure"), Some(any_object));
    }
}
