//! The `wideband_power_meter` IP block emulator (29 instances in the real
//! `vcc_processing` bitstream), as `docs/vcc-ip-blocks.md`
//! describes it: the two-state machine, a validated `configure` that stores
//! the averaging time, sample rate and flagging mode, and a status whose
//! power readings are all zero.

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::json;
use vcc_common::{
    checked_route, common_event_handler, no_op_route, two_state_api, two_state_machine, NO_EFFECT,
};

/// The power meter's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WidebandPowerMeter {
    /// Seconds per average (0.0 until configured).
    pub averaging_time: f64,
    /// The sample rate, as the client sent it (an integer stays an integer).
    pub sample_rate: serde_json::Number,
    /// Flagging mode: 0, 1 or 2.
    pub flagging: i64,
}

impl Default for WidebandPowerMeter {
    fn default() -> Self {
        WidebandPowerMeter {
            averaging_time: 0.0,
            sample_rate: 0.into(),
            flagging: 0,
        }
    }
}

/// The JSON Schema of `POST configure`: all three fields required.
pub fn configure_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "averaging_time": {"type": "number"},
            "sample_rate": {"type": "number"},
            "flagging": {"enum": [0, 1, 2]}
        },
        "required": ["averaging_time", "sample_rate", "flagging"]
    })
}

/// The body of `POST configure`, once [`configure_schema`] accepted it.
#[derive(Debug, Clone, Deserialize)]
pub struct Configure {
    /// Seconds per average.
    pub averaging_time: f64,
    /// The sample rate.
    pub sample_rate: serde_json::Number,
    /// 0, 1 or 2 (a float, since the schema also accepts `1.0`).
    pub flagging: f64,
}

impl WidebandPowerMeter {
    /// Stores a configuration.
    pub fn configure(&mut self, body: Configure) {
        self.averaging_time = body.averaging_time;
        self.sample_rate = body.sample_rate;
        // The schema allows only 0, 1 and 2 (possibly written 1.0).
        self.flagging = body.flagging as i64;
    }

    /// The `GET status` body: every reading is zero.
    pub fn status(&self) -> serde_json::Value {
        json!({
            "timestamp": 0,
            "avg_power_polX": 0.0,
            "avg_power_polY": 0.0,
            "avg_power_polX_noise_diode_on": 0.0,
            "avg_power_polY_noise_diode_on": 0.0,
            "avg_power_polX_noise_diode_off": 0.0,
            "avg_power_polY_noise_diode_off": 0.0,
            "flag": 0,
            "overflow": 0
        })
    }
}

/// The routes: configure (checked body), four no-ops, status.
pub fn api() -> Api<WidebandPowerMeter> {
    two_state_api(
        checked_route(
            "configure",
            "Stores averaging_time, sample_rate and flagging (0, 1 or 2).",
            configure_schema(),
            |block: &mut WidebandPowerMeter, body| {
                block.configure(body);
                Ok(())
            },
        ),
        no_op_route("deconfigure", NO_EFFECT),
        no_op_route("recover", NO_EFFECT),
        WidebandPowerMeter::status,
    )
}

/// Manual events as every VCC block handles them; the other handlers keep
/// the engine's defaults.
pub fn event_handler() -> EventHandler<WidebandPowerMeter> {
    common_event_handler()
}

bitstream_sdk::export_plugin! {
    ip_block: WidebandPowerMeter,
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
    fn configure(h: &mut Harness<WidebandPowerMeter>, body: &str) -> Response {
        h.request("POST", "configure", body.as_bytes())
    }

    #[test]
    fn the_clients_body_is_accepted_and_stored() {
        let mut h = Harness::<WidebandPowerMeter>::new();
        let body = r#"{"averaging_time": 1.0, "sample_rate": 3960000000, "flagging": 0}"#;
        assert_eq!(configure(&mut h, body).status(), 200);
        let meter = h.block();
        assert_eq!(meter.averaging_time, 1.0);
        assert_eq!(
            meter.sample_rate,
            serde_json::Number::from(3_960_000_000u64)
        );
        assert_eq!(meter.flagging, 0);
        // The integer sample rate stays an integer in the ip_block.
        assert_eq!(
            h.snapshot(),
            json!({"averaging_time": 1.0, "sample_rate": 3960000000u64, "flagging": 0})
        );
    }

    #[test]
    fn every_flagging_mode_and_float_numbers_are_accepted() {
        for flagging in ["0", "1", "2", "2.0"] {
            let body =
                format!(r#"{{"averaging_time": 0.5, "sample_rate": 1.5, "flagging": {flagging}}}"#);
            let mut h = Harness::<WidebandPowerMeter>::new();
            assert_eq!(configure(&mut h, &body).status(), 200, "{body}");
            assert_eq!(h.block().flagging, flagging.parse::<f64>().unwrap() as i64);
        }
    }

    #[test]
    fn missing_fields_are_refused() {
        let mut h = Harness::<WidebandPowerMeter>::new();
        for body in [
            r#"{}"#,
            r#"{"sample_rate": 3960000000, "flagging": 0}"#,
            r#"{"averaging_time": 1.0, "flagging": 0}"#,
            r#"{"averaging_time": 1.0, "sample_rate": 3960000000}"#,
        ] {
            let r = configure(&mut h, body);
            assert_eq!(r.status(), 400, "{body}");
            assert!(
                r.error().unwrap().contains("is a required property"),
                "{r:?}"
            );
        }
    }

    #[test]
    fn wrong_values_are_refused() {
        let mut h = Harness::<WidebandPowerMeter>::new();
        for (body, at) in [
            (
                r#"{"averaging_time": 1.0, "sample_rate": 3960000000, "flagging": 3}"#,
                "/flagging",
            ),
            (
                r#"{"averaging_time": 1.0, "sample_rate": 3960000000, "flagging": "0"}"#,
                "/flagging",
            ),
            (
                r#"{"averaging_time": "1", "sample_rate": 3960000000, "flagging": 0}"#,
                "/averaging_time",
            ),
            (
                r#"{"averaging_time": 1.0, "sample_rate": null, "flagging": 0}"#,
                "/sample_rate",
            ),
        ] {
            let r = configure(&mut h, body);
            assert_eq!(r.status(), 400, "{body}");
            assert!(r.error().unwrap().contains(at), "{body}: {r:?}");
        }
        assert_eq!(configure(&mut h, "[]").status(), 400);
        assert_eq!(h.block(), WidebandPowerMeter::default());
    }

    #[test]
    fn status_is_all_zero_whatever_the_configuration() {
        let mut h = Harness::<WidebandPowerMeter>::new();
        let before = h.get("status").json();
        let body = r#"{"averaging_time": 2.0, "sample_rate": 18, "flagging": 2}"#;
        assert_eq!(configure(&mut h, body).status(), 200);
        assert_eq!(h.get("status").json(), before);
        let fields = before.as_object().unwrap();
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "timestamp",
                "avg_power_polX",
                "avg_power_polY",
                "avg_power_polX_noise_diode_on",
                "avg_power_polY_noise_diode_on",
                "avg_power_polX_noise_diode_off",
                "avg_power_polY_noise_diode_off",
                "flag",
                "overflow"
            ]
        );
        assert!(fields.values().all(|v| v.as_f64() == Some(0.0)));
    }

    #[test]
    fn routes_are_the_common_six_with_a_published_configure_schema() {
        let h = Harness::<WidebandPowerMeter>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        assert!(h.routes()[0].params[0].required);
        assert_eq!(h.body_schema("configure"), Some(configure_schema()));
    }

    #[test]
    fn defaults_and_machine() {
        let mut h = Harness::<WidebandPowerMeter>::new();
        assert_eq!(
            h.snapshot(),
            json!({"averaging_time": 0.0, "sample_rate": 0, "flagging": 0})
        );
        assert_eq!(h.states(), ["ACTIVE", "FAULT"]);
        assert!(h.overrides().manual_event);
        assert!(!h.overrides().signal_update);
        assert!(!h.overrides().pulse);
    }
}
