//! The life cycle of the blocks that enable on a pulse (packet_validation
//! and wideband_input_buffer, `docs/vcc-ip-blocks.md`):
//!
//! - The machine ([`with_transitions`]): `START` leads from the block's idle
//!   state to `ENABLING`, the first pulse with a non-zero packet rate to
//!   `ENABLED`; `STOP` leads to `DISABLING` (or straight back to idle from
//!   `ENABLING`), the next pulse back to idle.
//! - `START` and `STOP` fire when allowed; otherwise the route answers 409
//!   `Cannot <start|stop> <type> while in state <STATE>`.
//! - A signal update remembers the smallest `packet_rate` of the list
//!   (missing counts as 0) and passes only the first event downstream
//!   (with several upstream blocks, one event goes on).
//! - A pulse fires `RECEIVE_PULSE` (if allowed) with the remembered packet
//!   rate, or 0 before any signal update: the block's machine completes
//!   the enabling on a non-zero rate and the disabling on any pulse.
//!
//! The block keeps the remembered rate in a field of its own (an
//! `Option<f64>` hidden from its JSON), which these functions are given.

use bitstream_sdk::prelude::*;

use crate::{control_route, min_packet_rate, packet_rate_arg, Control};

/// `machine` with the transitions of this life cycle added, in this order
/// (the engine fires the first one that matches):
///
/// - `START`: `idle` -> `ENABLING`; {`ENABLING`, `ENABLED`} -> same.
/// - `STOP`: `ENABLED` -> `DISABLING`; `ENABLING` -> `idle`;
///   `stop_stays_in` -> same.
/// - `RECEIVE_PULSE`: `ENABLING` -> `ENABLED` when "packet rate > 0";
///   `ENABLING` -> same when "packet rate = 0"; `DISABLING` -> `idle`;
///   {`idle`, `ENABLED`} -> same.
///
/// `stop_stays_in` are `idle` and `DISABLING`, in the order the block's
/// reference lists them (the order shows in its diagram). The states
/// `ENABLING`, `ENABLED`, `DISABLING` and `idle` and the triggers `START`,
/// `STOP` and `RECEIVE_PULSE` are the caller's to declare.
pub fn with_transitions(
    machine: StateMachine,
    idle: &str,
    stop_stays_in: [&str; 2],
) -> StateMachine {
    machine
        .transition(Transition::on("START").from(idle).to("ENABLING"))
        .transition(
            Transition::on("START")
                .from(["ENABLING", "ENABLED"])
                .to(TO_SAME),
        )
        .transition(Transition::on("STOP").from("ENABLED").to("DISABLING"))
        .transition(Transition::on("STOP").from("ENABLING").to(idle))
        .transition(Transition::on("STOP").from(stop_stays_in).to(TO_SAME))
        .transition(
            Transition::on("RECEIVE_PULSE")
                .from("ENABLING")
                .to("ENABLED")
                .when("packet rate > 0", |args| packet_rate_arg(args) > 0.0),
        )
        .transition(
            Transition::on("RECEIVE_PULSE")
                .from("ENABLING")
                .to(TO_SAME)
                .when("packet rate = 0", |args| packet_rate_arg(args) == 0.0),
        )
        .transition(Transition::on("RECEIVE_PULSE").from("DISABLING").to(idle))
        .transition(
            Transition::on("RECEIVE_PULSE")
                .from([idle, "ENABLED"])
                .to(TO_SAME),
        )
}

/// Fires `trigger` if it is allowed now, else answers 409
/// `Cannot <verb> <type_name> while in state <STATE>`.
pub fn trigger_or_conflict(
    ctx: &impl Control,
    type_name: &str,
    trigger: &str,
    verb: &str,
) -> Result<Response, Error> {
    if ctx.trigger_if_allowed(trigger, ()) {
        Ok(Response::ok())
    } else {
        Err(Error::conflict(format!(
            "Cannot {verb} {type_name} while in state {}",
            ctx.get_state()
        )))
    }
}

/// `POST start`: fires `START` if allowed, else 409.
pub fn start(ctx: &impl Control, type_name: &str) -> Result<Response, Error> {
    trigger_or_conflict(ctx, type_name, "START", "start")
}

/// `POST stop`: fires `STOP` if allowed, else 409.
pub fn stop(ctx: &impl Control, type_name: &str) -> Result<Response, Error> {
    trigger_or_conflict(ctx, type_name, "STOP", "stop")
}

/// The `POST start` route of a block of type `type_name` (named in the 409
/// message): [`start`]. It accepts any (or no) body.
pub fn start_route<B: IpBlock>(type_name: &'static str) -> Route<B> {
    control_route(
        "start",
        "Fires START (409 when not allowed); the next pulse with a non-zero packet rate enables the block.",
        move |ctx| start(ctx, type_name),
    )
}

/// The `POST stop` route of a block of type `type_name` (named in the 409
/// message): [`stop`]. It accepts any (or no) body.
pub fn stop_route<B: IpBlock>(type_name: &'static str) -> Route<B> {
    control_route(
        "stop",
        "Fires STOP (409 when not allowed); the next pulse completes the disabling.",
        move |ctx| stop(ctx, type_name),
    )
}

/// A signal update: remembers the smallest `packet_rate` of the list
/// (missing counts as 0) in `remembered` and passes only the first event
/// on.
pub fn signal_update(remembered: &mut Option<f64>, events: Vec<Value>) -> Vec<Value> {
    *remembered = Some(min_packet_rate(&events));
    events.into_iter().take(1).collect()
}

/// A pulse: fires `RECEIVE_PULSE` (if allowed) with the `remembered`
/// packet rate, or 0 before any signal update.
pub fn pulse(ctx: &impl Control, remembered: Option<f64>) {
    let packet_rate = remembered.unwrap_or(0.0);
    ctx.trigger_if_allowed("RECEIVE_PULSE", [("packet_rate", packet_rate)]);
}

/// `handler` with the signal-update and pulse handlers of this life cycle
/// ([`signal_update`] and [`pulse`]); `remembered` gives the block's field
/// that holds the remembered packet rate. The manual-event handler is left
/// as `handler` has it.
pub fn with_signal_and_pulses<B: IpBlock>(
    handler: EventHandler<B>,
    remembered: fn(&mut B) -> &mut Option<f64>,
) -> EventHandler<B> {
    handler
        .on_signal_update(move |block, _ctx, events| Ok(signal_update(remembered(block), events)))
        .on_pulse(move |block, ctx, _pulse| {
            pulse(ctx, *remembered(block));
            Ok(())
        })
}

#[cfg(test)]
mod tests {
    use bitstream_testkit::Harness;
    use serde_json::json;

    use super::*;

    fn rate(packet_rate: f64) -> Value {
        [("packet_rate", packet_rate)].into_iter().collect()
    }

    /// A block of the life cycle, with the enabling part of
    /// packet_validation's machine and one idle state.
    #[derive(Default, Serialize, Deserialize)]
    pub struct Small {
        #[serde(skip)]
        packet_rate: Option<f64>,
    }

    fn small_machine() -> StateMachine {
        StateMachine::new(["IDLE", "ENABLING", "ENABLED", "DISABLING"], "IDLE")
            .triggers(["START", "STOP", "RECEIVE_PULSE"])
            .transition(Transition::on("START").from("IDLE").to("ENABLING"))
            .transition(Transition::on("STOP").from("ENABLED").to("DISABLING"))
            .transition(
                Transition::on("RECEIVE_PULSE")
                    .from("ENABLING")
                    .to("ENABLED")
                    .when("packet rate > 0", |args| crate::packet_rate_arg(args) > 0.0),
            )
            .transition(Transition::on("RECEIVE_PULSE").from("DISABLING").to("IDLE"))
    }

    fn small_api() -> Api<Small> {
        Api::new()
            .route(start_route("some_block"))
            .route(stop_route("some_block"))
    }

    fn small_events() -> EventHandler<Small> {
        with_signal_and_pulses(EventHandler::new(), |b| &mut b.packet_rate)
    }

    bitstream_sdk::define_plugin!(SmallPlugin,
        ip_block: Small,
        state_machine: small_machine,
        api: small_api,
        event_handler: small_events);

    /// A block whose machine is [`with_transitions`]'s.
    #[derive(Default, Serialize, Deserialize)]
    pub struct Full {}

    fn full_machine() -> StateMachine {
        with_transitions(
            StateMachine::new(["IDLE", "ENABLING", "ENABLED", "DISABLING"], "IDLE").triggers([
                "START",
                "STOP",
                "RECEIVE_PULSE",
            ]),
            "IDLE",
            ["DISABLING", "IDLE"],
        )
    }

    bitstream_sdk::define_plugin!(FullPlugin,
        ip_block: Full,
        state_machine: full_machine,
        api: Api::<Full>::new,
        event_handler: EventHandler::<Full>::new);

    #[test]
    fn transitions_follow_the_reference_order() {
        assert_eq!(
            Harness::<Full>::new().transitions(),
            [
                "START: IDLE -> ENABLING",
                "START: ENABLING, ENABLED -> =",
                "STOP: ENABLED -> DISABLING",
                "STOP: ENABLING -> IDLE",
                "STOP: DISABLING, IDLE -> =",
                "RECEIVE_PULSE: ENABLING -> ENABLED [packet rate > 0]",
                "RECEIVE_PULSE: ENABLING -> = [packet rate = 0]",
                "RECEIVE_PULSE: DISABLING -> IDLE",
                "RECEIVE_PULSE: IDLE, ENABLED -> =",
            ]
        );
    }

    #[test]
    fn start_and_stop_fire_or_answer_409_naming_the_type() {
        let mut h = Harness::<Small>::new();
        let r = h.post("stop", json!({}));
        assert_eq!(r.status(), 409);
        assert_eq!(
            r.error(),
            Some("Cannot stop some_block while in state IDLE")
        );
        assert_eq!(h.post("start", json!({})).status(), 200);
        assert_eq!(h.state(), "ENABLING");
        let r = h.post("start", json!({}));
        assert_eq!(r.status(), 409);
        assert_eq!(
            r.error(),
            Some("Cannot start some_block while in state ENABLING")
        );
        assert_eq!(h.fired(), ["START"]);
    }

    #[test]
    fn signal_updates_keep_the_first_event_and_remember_the_smallest_rate() {
        let mut remembered = None;
        let out = signal_update(&mut remembered, vec![rate(7.0), rate(3.0), rate(5.0)]);
        assert_eq!(out, vec![rate(7.0)]);
        assert_eq!(remembered, Some(3.0));

        let out = signal_update(
            &mut remembered,
            vec![rate(7.0), Value::Map(ValueMap::new())],
        );
        assert_eq!(out, vec![rate(7.0)]);
        assert_eq!(remembered, Some(0.0));

        assert!(signal_update(&mut remembered, Vec::new()).is_empty());
        assert_eq!(remembered, Some(0.0));
    }

    #[test]
    fn pulses_use_the_remembered_rate_or_zero() {
        let mut h = Harness::<Small>::new();
        h.set_state("ENABLING");
        // The engine runs the signal update before every pulse: an empty
        // list remembers 0, and so does a list without a rate.
        h.pulse_with(Vec::<Value>::new());
        assert_eq!(h.state(), "ENABLING");
        h.pulse_with([Value::Map(ValueMap::new())]);
        assert_eq!(h.state(), "ENABLING");
        h.pulse_with([rate(0.0)]);
        assert_eq!(h.state(), "ENABLING");
        h.pulse_with([rate(2.0)]);
        assert_eq!(h.state(), "ENABLED");
        assert_eq!(h.fired(), ["RECEIVE_PULSE"]);
        // The remembered rate itself is hidden from the block's JSON.
        assert_eq!(h.snapshot(), json!({}));
    }

    #[test]
    fn routes_and_handlers_are_declared() {
        let h = Harness::<Small>::new();
        assert_eq!(h.route_names(), [("POST", "start"), ("POST", "stop")]);
        assert!(h.routes().iter().all(|r| !r.params[0].required));
        let overrides = h.overrides();
        assert!(overrides.signal_update && overrides.pulse && !overrides.manual_event);
    }
}
