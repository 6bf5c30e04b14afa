//! The `frequency_shifter` IP block emulator (block id
//! `wideband_frequency_shifter` in the real `vcc_processing` bitstream), as
//! `docs/vcc-ip-blocks.md` describes it: the two-state
//! machine and a shift frequency within ±100 MHz, set by `configure` and
//! put back to 0.0 by `deconfigure` and `recover`.

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::json;
use vcc_common::{
    action_route, checked_route, common_event_handler, two_state_api, two_state_machine,
};

/// The largest shift, in Hz, either way.
pub const MAX_SHIFT_FREQUENCY: f64 = 1e8;

/// The frequency shifter's data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FrequencyShifter {
    /// The shift in Hz, within ±[`MAX_SHIFT_FREQUENCY`].
    pub shift_frequency: f64,
}

/// The JSON Schema of `POST configure`.
pub fn configure_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "shift_frequency": {
                "type": "number",
                "minimum": -MAX_SHIFT_FREQUENCY,
                "maximum": MAX_SHIFT_FREQUENCY
            }
        },
        "required": ["shift_frequency"]
    })
}

/// The body of `POST configure`, once [`configure_schema`] accepted it.
#[derive(Debug, Clone, Deserialize)]
pub struct Configure {
    /// The shift in Hz.
    pub shift_frequency: f64,
}

impl FrequencyShifter {
    /// Stores the shift.
    pub fn configure(&mut self, body: Configure) {
        self.shift_frequency = body.shift_frequency;
    }

    /// No shift (`deconfigure` and `recover`).
    pub fn clear(&mut self) {
        self.shift_frequency = 0.0;
    }

    /// The `GET status` body.
    pub fn status(&self) -> serde_json::Value {
        json!({ "shift_frequency": self.shift_frequency })
    }
}

/// The routes: configure (checked body), deconfigure and recover (clear),
/// start and stop (no-ops), status.
pub fn api() -> Api<FrequencyShifter> {
    const CLEARS: &str = "Sets shift_frequency to 0.0.";
    two_state_api(
        checked_route(
            "configure",
            "Sets shift_frequency (Hz, within ±1e8).",
            configure_schema(),
            |block: &mut FrequencyShifter, body| {
                block.configure(body);
                Ok(())
            },
        ),
        action_route("deconfigure", CLEARS, FrequencyShifter::clear),
        action_route("recover", CLEARS, FrequencyShifter::clear),
        FrequencyShifter::status,
    )
}

/// Manual events as every VCC block handles them; the other handlers keep
/// the engine's defaults.
pub fn event_handler() -> EventHandler<FrequencyShifter> {
    common_event_handler()
}

bitstream_sdk::export_plugin! {
    ip_block: FrequencyShifter,
    state_machine: two_state_machine,
    api: api,
    event_handler: event_handler,
}

#[cfg(test)]
mod tests {
    use bitstream_testkit::{Harness, Response};
    use vcc_common::COMMON_ROUTES;

    use super::*;

    /// `POST configure` with `body` (JSON text), as a client sends it.
    fn configure(h: &mut Harness<FrequencyShifter>, body: &str) -> Response {
        h.request("POST", "configure", body.as_bytes())
    }

    #[test]
    fn the_clients_body_and_the_bounds_are_accepted() {
        for (body, expected) in [
            (r#"{"shift_frequency": 0.0}"#, 0.0),
            (r#"{"shift_frequency": 100000000}"#, 1e8),
            (r#"{"shift_frequency": -1e8}"#, -1e8),
            (r#"{"shift_frequency": 1234.5, "other": true}"#, 1234.5),
        ] {
            let mut h =
                Harness::<FrequencyShifter>::new().with_constants(json!({"shift_frequency": 7.0}));
            assert_eq!(configure(&mut h, body).status(), 200, "{body}");
            assert_eq!(h.block().shift_frequency, expected, "{body}");
            assert_eq!(
                h.get("status").json(),
                json!({ "shift_frequency": expected })
            );
        }
    }

    #[test]
    fn out_of_range_missing_or_non_numbers_are_refused() {
        let mut h = Harness::<FrequencyShifter>::new();
        for (body, needle) in [
            (r#"{"shift_frequency": 100000000.5}"#, "/shift_frequency"),
            (r#"{"shift_frequency": -2e8}"#, "/shift_frequency"),
            (r#"{"shift_frequency": "0"}"#, "/shift_frequency"),
            (r#"{"shift_frequency": null}"#, "/shift_frequency"),
            (r#"{}"#, "\"shift_frequency\" is a required property"),
            (
                r#"{"shift": 1.0}"#,
                "\"shift_frequency\" is a required property",
            ),
        ] {
            let r = configure(&mut h, body);
            assert_eq!(r.status(), 400, "{body}");
            assert!(r.error().unwrap().contains(needle), "{body}: {r:?}");
        }
        assert_eq!(h.block(), FrequencyShifter::default());
    }

    #[test]
    fn the_exported_module_serves_the_same_block() {
        // What the library hands the emulator's loader (export_plugin!).
        let mut h = Harness::<FrequencyShifter>::for_plugin(crate::__bitstream_root_module);
        assert_eq!(h.route_names(), COMMON_ROUTES);
        assert_eq!(
            configure(&mut h, r#"{"shift_frequency": 5e7}"#).status(),
            200
        );
        assert_eq!(
            configure(&mut h, r#"{"shift_frequency": 2e8}"#).status(),
            400
        );
        assert_eq!(h.get("status").json(), json!({"shift_frequency": 5e7}));
    }

    #[test]
    fn clear_resets_the_shift() {
        for clear in ["deconfigure", "recover"] {
            let mut h = Harness::<FrequencyShifter>::new();
            assert_eq!(h.get("status").json(), json!({"shift_frequency": 0.0}));
            configure(&mut h, r#"{"shift_frequency": -5e7}"#);
            assert_eq!(h.get("status").json(), json!({"shift_frequency": -5e7}));
            assert_eq!(h.post(clear, json!({})).status(), 200);
            assert_eq!(h.block(), FrequencyShifter::default(), "{clear}");
        }
    }

    #[test]
    fn routes_are_the_common_six_with_a_published_configure_schema() {
        let h = Harness::<FrequencyShifter>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        assert_eq!(h.body_schema("configure"), Some(configure_schema()));
        // deconfigure and recover take an optional body without a schema.
        for route in &h.routes()[1..3] {
            assert!(!route.params[0].required);
            assert!(route.params[0].schema.is_none());
        }
    }
}
