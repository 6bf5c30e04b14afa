//! Real state machines of the VCC blocks, shared by the unit tests.
//!
//! They follow the ip block reference (`vcc-ip-blocks.md`), conditions
//! included: the predicates read `packet_rate` and `badness` from the
//! trigger's arguments (a missing or non-numeric argument counts as 0).
//! Tests that run the machine split it with
//! [`StateMachine::into_parts`]; tests that only check its description call
//! [`StateMachine::describe`].

use bitstream_sdk::{StateMachine, Transition, Value, ValueMap, FROM_ANY, TO_SAME};

/// The `packet_rate` argument, 0 if missing or not a number.
fn packet_rate(args: &ValueMap) -> f64 {
    args.get("packet_rate")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// The `badness` argument, 0 if missing or not a number.
fn badness(args: &ValueMap) -> f64 {
    args.get("badness").and_then(Value::as_f64).unwrap_or(0.0)
}

/// The ftile_ethernet machine: states `RESET` (initial), `NO_LINK`, `LINK`,
/// `DEGRADED`, `FAULT`; six triggers; eight transitions. Its conditions,
/// by id: 0 `packet rate > 0`, 1 `packet rate = 0`, 2 `>= 0.5` (badness),
/// 3 `< 0.5` (badness).
pub(crate) fn ftile_ethernet() -> StateMachine {
    StateMachine::new(["RESET", "NO_LINK", "LINK", "DEGRADED", "FAULT"], "RESET")
        .triggers([
            "START",
            "STOP",
            "RESET",
            "PACKET_RATE_UPDATE",
            "UPDATE_BADNESS",
            "CRITICAL_FAULT",
        ])
        .transition(Transition::on("START").from("RESET").to("NO_LINK"))
        .transition(
            Transition::on("PACKET_RATE_UPDATE")
                .from(["NO_LINK", "LINK"])
                .to("LINK")
                .when("packet rate > 0", |a| packet_rate(a) > 0.0),
        )
        .transition(
            Transition::on("PACKET_RATE_UPDATE")
                .from(["NO_LINK", "LINK", "DEGRADED"])
                .to("NO_LINK")
                .when("packet rate = 0", |a| packet_rate(a) == 0.0),
        )
        .transition(
            Transition::on("UPDATE_BADNESS")
                .from("LINK")
                .to("DEGRADED")
                .when(">= 0.5", |a| badness(a) >= 0.5),
        )
        .transition(
            Transition::on("UPDATE_BADNESS")
                .from("DEGRADED")
                .to("LINK")
                .when("< 0.5", |a| badness(a) < 0.5),
        )
        .transition(Transition::on("RESET").from(FROM_ANY).to("RESET"))
        .transition(Transition::on("STOP").from(FROM_ANY).to("RESET"))
        .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
}

/// The packet_validation machine: states `RESET` (initial), `ENABLING`,
/// `ENABLED`, `DISABLING`, `FAULT`; five triggers; eleven transitions. Its
/// conditions, by id: 0 `packet rate > 0`, 1 `packet rate = 0`.
pub(crate) fn packet_validation() -> StateMachine {
    StateMachine::new(
        ["RESET", "ENABLING", "ENABLED", "DISABLING", "FAULT"],
        "RESET",
    )
    .triggers(["START", "STOP", "RECEIVE_PULSE", "CRITICAL_FAULT", "RESET"])
    .transition(Transition::on("START").from("RESET").to("ENABLING"))
    .transition(
        Transition::on("START")
            .from(["ENABLING", "ENABLED"])
            .to(TO_SAME),
    )
    .transition(Transition::on("STOP").from("ENABLED").to("DISABLING"))
    .transition(Transition::on("STOP").from("ENABLING").to("RESET"))
    .transition(
        Transition::on("STOP")
            .from(["DISABLING", "RESET"])
            .to(TO_SAME),
    )
    .transition(
        Transition::on("RECEIVE_PULSE")
            .from("ENABLING")
            .to("ENABLED")
            .when("packet rate > 0", |a| packet_rate(a) > 0.0),
    )
    .transition(
        Transition::on("RECEIVE_PULSE")
            .from("ENABLING")
            .to(TO_SAME)
            .when("packet rate = 0", |a| packet_rate(a) == 0.0),
    )
    .transition(
        Transition::on("RECEIVE_PULSE")
            .from("DISABLING")
            .to("RESET"),
    )
    .transition(
        Transition::on("RECEIVE_PULSE")
            .from(["RESET", "ENABLED"])
            .to(TO_SAME),
    )
    .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
    .transition(Transition::on("RESET").from(FROM_ANY).to("RESET"))
}

/// The two-state machine of the simpler blocks (and of the validator's
/// fixtures): starts `ACTIVE`; `CRITICAL_FAULT` moves any state to `FAULT`.
pub(crate) fn two_state() -> StateMachine {
    StateMachine::new(["ACTIVE", "FAULT"], "ACTIVE")
        .triggers(["CRITICAL_FAULT"])
        .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
}
