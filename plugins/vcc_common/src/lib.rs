//! Conventions shared by the VCC bitstream's IP block emulators
//! (`../shared/reference/vcc-ip-blocks.md`, "Common to all nine"), written
//! against the SDK's public API only.

use bitstream_sdk::prelude::*;

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

/// The common manual-event rule: an INJECTION of severity FATAL_ERROR
/// faults the block (`trigger_if_allowed(CRITICAL_FAULT)`); a GENERAL event
/// is logged at debug. Answers whether the block was faulted.
pub fn handle_common_manual_event<B: IpBlock>(
    ctx: &Subcontroller<'_, B>,
    event: &ManualEvent,
) -> bool {
    match event.subtype {
        ManualEventSubtype::General => {
            ctx.log_debug(format!("general event: {}", event.value));
            false
        }
        ManualEventSubtype::Injection if event.severity == Severity::FatalError => {
            ctx.log_error(format!("fatal injection: {}", event.value));
            ctx.trigger_if_allowed("CRITICAL_FAULT", ())
        }
        ManualEventSubtype::Injection => false,
    }
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

/// A `POST` route that accepts any (or no) body and does nothing.
pub fn no_op_route<B: IpBlock>(name: &str, summary: &str) -> Route<B> {
    Route::post(name, |_block: &mut B, _ctx, _req: Request| {
        Ok(Response::ok())
    })
    .summary(summary.to_owned())
    .body()
}

/// `POST recover` that fires `RESET` when allowed.
pub fn reset_route<B: IpBlock>(name: &str, summary: &str) -> Route<B> {
    Route::post(name, |_block: &mut B, ctx, _req: Request| {
        ctx.trigger_if_allowed("RESET", ());
        Ok(Response::ok())
    })
    .summary(summary.to_owned())
    .body()
}

/// A schema compiled at start-up; the schemas are constants of the plugin,
/// so a broken one is a bug in the plugin (caught by its tests).
pub fn schema(json: serde_json::Value) -> JsonSchema {
    JsonSchema::new(json).expect("the plugin's JSON Schemas are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
