//! Conventions shared by the VCC bitstream's IP block emulators
//! (`docs/vcc-ip-blocks.md`, "Common to all nine"), written
//! against the SDK's public API only.
//!
//! - The two-state machine, the `packet_rate` of signal updates and of
//!   trigger arguments, the common manual-event rule
//!   ([`handle_common_manual_event`], [`common_event_handler`]).
//! - Route builders: [`status_route`], [`no_op_route`], [`reset_route`]
//!   (`recover` as RESET), [`checked_route`] (a body checked against the
//!   JSON Schema it publishes; [`schema_route`] when the handler needs
//!   more), [`any_object_route`], [`action_route`] (an action on the
//!   block), [`control_route`] (triggers only), and [`two_state_api`], the
//!   six routes of a two-state block. [`at_most`] is the range error the
//!   schemas cannot give.
//! - [`Control`]: what the handlers need from the block's subcontroller.
//! - [`enabling`]: the life cycle of the blocks that enable on a pulse
//!   (packet_validation, wideband_input_buffer).
//!
//! The unit tests (here and in the plugins) run the blocks in-process with
//! `bitstream-testkit`, which uses the host's own state machine, route
//! dispatch and event rules.

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::json;

mod control;
pub mod enabling;

pub use control::Control;

/// `ACTIVE` (initial) and `FAULT`; `CRITICAL_FAULT` from any state.
pub fn two_state_machine() -> StateMachine {
    StateMachine::new(["ACTIVE", "FAULT"], "ACTIVE")
        .triggers(["CRITICAL_FAULT"])
        .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
}

/// The `packet_rate` of a signal-update list: the minimum over its events,
/// a missing value counting as 0 (so an empty list gives 0).
pub fn min_packet_rate(events: &[Value]) -> f64 {
    events
        .iter()
        .map(|e| e.get("packet_rate").and_then(Value::as_f64).unwrap_or(0.0))
        .reduce(f64::min)
        .unwrap_or(0.0)
}

/// The `packet_rate` argument of a trigger (what the machines' conditions
/// read); missing (or not a number) counts as 0.
pub fn packet_rate_arg(args: &ValueMap) -> f64 {
    args.get("packet_rate")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// The common manual-event rule: an INJECTION of severity FATAL_ERROR
/// faults the block (`trigger_if_allowed(CRITICAL_FAULT)`); a GENERAL event
/// is logged at debug. Answers whether the block was faulted.
///
/// `ctx` is the block's `Subcontroller` in the engine (any [`Control`]).
pub fn handle_common_manual_event(ctx: &impl Control, event: &ManualEvent) -> bool {
    match event.subtype {
        ManualEventSubtype::General => {
            ctx.log(LogLevel::Debug, &format!("general event: {}", event.value));
            false
        }
        ManualEventSubtype::Injection if event.severity == Severity::FatalError => {
            ctx.log(
                LogLevel::Error,
                &format!("fatal injection: {}", event.value),
            );
            ctx.trigger_if_allowed("CRITICAL_FAULT", ())
        }
        ManualEventSubtype::Injection => false,
    }
}

/// An event handler with only the manual-event handler set, to
/// [`handle_common_manual_event`] (and forward nothing); pulses and signal
/// updates keep the engine's defaults unless the caller adds handlers.
pub fn common_event_handler<B: IpBlock>() -> EventHandler<B> {
    EventHandler::new().on_manual_event(|_block, ctx, event| {
        handle_common_manual_event(ctx, event);
        Ok(None)
    })
}

/// The `GET status` route with its `clear: bool = false` query parameter
/// (accepted, does nothing yet, as in the original).
pub fn status_route<B: IpBlock>(
    status: impl Fn(&B) -> serde_json::Value + Send + Sync + 'static,
) -> Route<B> {
    Route::get("status", move |block: &mut B, _ctx, _req: Request| {
        Ok(Response::json(&status(block)))
    })
    .summary("The block's status registers.")
    .query("clear", ParamKind::Bool, false)
}

/// The summary of a route that has no effect.
pub const NO_EFFECT: &str = "Accepted; no effect.";

/// The routes every VCC block serves, as (method, name), in the order the
/// blocks declare them ([`two_state_api`] makes them).
pub const COMMON_ROUTES: [(&str, &str); 6] = [
    ("POST", "configure"),
    ("POST", "deconfigure"),
    ("POST", "recover"),
    ("POST", "start"),
    ("POST", "stop"),
    ("GET", "status"),
];

/// The six routes of a two-state block, in the order every VCC block
/// declares them: the given `configure`, `deconfigure` and `recover`, then
/// `start` and `stop` (no-ops: the two-state machine has no life cycle) and
/// [`status_route`] with `status`.
pub fn two_state_api<B: IpBlock>(
    configure: Route<B>,
    deconfigure: Route<B>,
    recover: Route<B>,
    status: impl Fn(&B) -> serde_json::Value + Send + Sync + 'static,
) -> Api<B> {
    Api::new()
        .route(configure)
        .route(deconfigure)
        .route(recover)
        .route(no_op_route("start", NO_EFFECT))
        .route(no_op_route("stop", NO_EFFECT))
        .route(status_route(status))
}

/// A `POST` route that accepts any (or no) body and does nothing.
pub fn no_op_route<B: IpBlock>(name: &str, summary: &str) -> Route<B> {
    action_route(name, summary, |_block: &mut B| {})
}

/// A `POST` route that accepts any (or no) body, runs `action` on the
/// block and answers 200.
pub fn action_route<B: IpBlock>(
    name: &str,
    summary: &str,
    action: impl Fn(&mut B) + Send + Sync + 'static,
) -> Route<B> {
    Route::post(name, move |block: &mut B, _ctx, _req: Request| {
        action(block);
        Ok(Response::ok())
    })
    .summary(summary.to_owned())
    .body()
}

/// A `POST` route whose body must satisfy `schema_json`: the schema is
/// published with the route ([`Route::body_with_schema`]) and the host
/// checks every body against it before the handler runs; a body that fails
/// it answers 400 with the violations. A body that passes is read as a `T`
/// and given to `apply`, whose error (if any) is the answer; otherwise 200.
pub fn checked_route<B: IpBlock, T: DeserializeOwned>(
    name: &str,
    summary: &str,
    schema_json: serde_json::Value,
    apply: impl Fn(&mut B, T) -> Result<(), Error> + Send + Sync + 'static,
) -> Route<B> {
    let published = schema(schema_json).source().clone();
    Route::post(name, move |block: &mut B, _ctx, req: Request| {
        // The host has checked the body against the published schema.
        apply(block, req.json()?)?;
        Ok(Response::ok())
    })
    .summary(summary.to_owned())
    .body_with_schema(published)
}

/// A `POST` route whose body must satisfy `schema_json`, for a handler that
/// checks the body itself, when it chooses (after firing a trigger, for
/// example): the schema is published with the route
/// ([`Route::body_with_schema_checked_in_handler`], so the host does not
/// refuse the body first) and given to `handler` with the block, its
/// `Subcontroller` and the request; the handler checks with
/// [`checked_body`] (the host's validator). [`checked_route`] is the usual
/// case.
pub fn schema_route<B: IpBlock>(
    name: &str,
    summary: &str,
    schema_json: serde_json::Value,
    handler: impl Fn(&mut B, &Subcontroller<'_, B>, &Request, &JsonSchema) -> Result<Response, Error>
        + Send
        + Sync
        + 'static,
) -> Route<B> {
    let checks = schema(schema_json);
    let published = checks.source().clone();
    Route::post(name, move |block: &mut B, ctx, req: Request| {
        handler(block, ctx, &req, &checks)
    })
    .summary(summary.to_owned())
    .body_with_schema_checked_in_handler(published)
}

/// The body of `req` checked against `schema` with the host's validator
/// ([`JsonSchema::validate`]), then read as a `T`; a missing body is
/// checked as `{}`. A body that fails answers 400 listing the violations.
pub fn checked_body<T: DeserializeOwned>(req: &Request, schema: &JsonSchema) -> Result<T, Error> {
    let empty = Value::Map(Default::default());
    let body = req.body().unwrap_or(&empty);
    schema.validate(body)?;
    Ok(body.deserialize_into()?)
}

/// A `POST` route that accepts any (or no) body and answers what
/// `handler` makes of the block's `Subcontroller` (firing triggers, for
/// example); the block itself is left alone.
pub fn control_route<B: IpBlock>(
    name: &str,
    summary: &str,
    handler: impl Fn(&Subcontroller<'_, B>) -> Result<Response, Error> + Send + Sync + 'static,
) -> Route<B> {
    Route::post(name, move |_block: &mut B, ctx, _req: Request| handler(ctx))
        .summary(summary.to_owned())
        .body()
}

/// The JSON Schema (draft 2020-12) that any JSON object satisfies.
pub fn any_object_schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object"
    })
}

/// A `POST` route whose body must be a JSON object
/// ([`any_object_schema`], published); accepted, no effect.
pub fn any_object_route<B: IpBlock>(name: &str, summary: &str) -> Route<B> {
    checked_route(
        name,
        summary,
        any_object_schema(),
        |_block: &mut B, _: IgnoredAny| Ok(()),
    )
}

/// `POST recover` that fires `RESET` when allowed.
pub fn reset_route<B: IpBlock>(name: &str, summary: &str) -> Route<B> {
    control_route(name, summary, |ctx| {
        ctx.trigger_if_allowed("RESET", ());
        Ok(Response::ok())
    })
}

/// A schema compiled at start-up; the schemas are constants of the plugin,
/// so a broken one is a bug in the plugin (caught by its tests).
pub fn schema(json: serde_json::Value) -> JsonSchema {
    JsonSchema::new(json).expect("the plugin's JSON Schemas are valid")
}

/// A range check the schema cannot make (its bound depends on the block):
/// when `value` is above `max`, a 400 worded like the schema's own
/// (`invalid body: /<field>: <value> is greater than the maximum of <max>`).
pub fn at_most(field: &str, value: i64, max: i64) -> Result<(), Error> {
    if value > max {
        return Err(Error::bad_request(format!(
            "invalid body: /{field}: {value} is greater than the maximum of {max}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bitstream_testkit::Harness;

    use super::*;

    /// A two-state block built from these conventions.
    #[derive(Default, Serialize, Deserialize)]
    pub struct Block {
        f: f64,
    }

    fn shift_schema() -> serde_json::Value {
        json!({"type": "object", "required": ["f"]})
    }

    fn api() -> Api<Block> {
        Api::<Block>::new()
            .route(checked_route(
                "configure",
                "Sets f.",
                shift_schema(),
                |_block: &mut Block, _: IgnoredAny| Ok(()),
            ))
            .route(any_object_route("deconfigure", "Accepted."))
            .route(action_route("recover", "Clears.", |b: &mut Block| {
                b.f = 0.0
            }))
            .route(no_op_route("start", "Nothing."))
            .route(reset_route("stop", "Resets."))
            .route(status_route(|b: &Block| json!({"f": b.f})))
    }

    bitstream_sdk::define_plugin!(TestPlugin,
        ip_block: Block,
        state_machine: two_state_machine,
        api: api,
        event_handler: common_event_handler::<Block>);

    #[test]
    fn packet_rate_is_the_minimum_and_missing_counts_as_zero() {
        let event = |rate: f64| Value::from_iter([("packet_rate", rate)]);
        assert_eq!(min_packet_rate(&[event(5.0), event(3.0)]), 3.0);
        assert_eq!(
            min_packet_rate(&[event(5.0), Value::Map(ValueMap::new())]),
            0.0
        );
        assert_eq!(min_packet_rate(&[]), 0.0);
    }

    #[test]
    fn packet_rate_argument_missing_or_not_a_number_counts_as_zero() {
        assert_eq!(packet_rate_arg(&[("packet_rate", 2.5)].into()), 2.5);
        assert_eq!(packet_rate_arg(&[("packet_rate", 7)].into()), 7.0);
        assert_eq!(packet_rate_arg(&[("packet_rate", "fast")].into()), 0.0);
        assert_eq!(packet_rate_arg(&ValueMap::new()), 0.0);
    }

    #[test]
    fn fatal_injections_fault_and_general_events_are_logged() {
        let mut h = Harness::<Block>::new();
        let general = ManualEvent::general(Severity::FatalError, Value::from(json!({"a": 1})));
        h.inject(general);
        assert_eq!(h.state(), "ACTIVE");
        assert_eq!(h.logged(LogLevel::Debug), [r#"general event: {"a":1}"#]);
        // A warning injection: nothing.
        h.inject(ManualEvent::injection(
            Severity::Warning,
            Value::from(json!({})),
        ));
        assert_eq!(h.state(), "ACTIVE");
        assert!(h.fired().is_empty());
        let fatal = ManualEvent::injection(Severity::FatalError, Value::from(json!({})));
        h.inject(fatal.clone());
        assert_eq!(h.state(), "FAULT");
        assert_eq!(h.logged(LogLevel::Error), ["fatal injection: {}"]);
        // Already faulted: CRITICAL_FAULT still fires (FROM_ANY).
        h.inject(fatal);
        assert_eq!(h.fired(), ["CRITICAL_FAULT", "CRITICAL_FAULT"]);
        assert!(h.overrides().manual_event);
        assert!(!h.overrides().pulse);
        // Pulses keep the engine's default: nothing happens.
        h.pulse();
        assert_eq!(h.fired().len(), 2);
    }

    #[test]
    fn at_most_is_worded_like_the_schema() {
        assert!(at_most("pol", 1, 1).is_ok());
        assert!(at_most("pol", -5, 1).is_ok());
        let err = at_most("channel", 10, 9).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.message(),
            "invalid body: /channel: 10 is greater than the maximum of 9"
        );
    }

    #[test]
    fn any_object_schema_accepts_objects_only() {
        let mut h = Harness::<Block>::new();
        for body in ["{}", r#"{"anything": [1, 2]}"#] {
            let r = h.request("POST", "deconfigure", body.as_bytes());
            assert_eq!(r.status(), 200, "{body}: {r:?}");
        }
        for body in ["[]", r#""x""#, "1", "null"] {
            let r = h.request("POST", "deconfigure", body.as_bytes());
            assert_eq!(r.status(), 400, "{body}: {r:?}");
        }
        assert_eq!(h.body_schema("deconfigure"), Some(any_object_schema()));
    }

    #[test]
    fn route_builders_publish_what_they_check() {
        let mut h = Harness::<Block>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        let routes = h.routes().to_vec();
        assert_eq!(h.summary("configure"), "Sets f.");
        assert_eq!(h.body_schema("configure"), Some(shift_schema()));
        assert!(routes[0].params[0].required);
        assert_eq!(h.body_schema("deconfigure"), Some(any_object_schema()));
        for route in &routes[2..5] {
            assert!(!route.params[0].required);
            assert_eq!(h.body_schema(&route.name), None);
        }
        assert_eq!(routes[5].params[0].name.as_str(), "clear");
        // What configure publishes is what it checks.
        assert_eq!(h.post("configure", json!({"f": 1})).status(), 200);
        assert_eq!(h.post("configure", json!({"g": 1})).status(), 400);
    }
}
