//! `packet_validation`: the VCC bitstream's packet validation block
//! (constant `expected_ethertype=65261`), as described in
//! `docs/vcc-ip-blocks.md`.
//!
//! - `start` enables it; the first pulse that sees a non-zero packet rate
//!   completes the enabling (`ENABLING` -> `ENABLED`).
//! - `stop` disables it; the next pulse completes the disabling
//!   (`DISABLING` -> `RESET`).
//! - Signal updates: the block remembers the smallest `packet_rate` of the
//!   list and passes only the first event downstream (with several
//!   upstream blocks, one event goes on).
//!
//! The start/stop routes and the signal and pulse handling are those of
//! `vcc_common::enabling` (shared with wideband_input_buffer); the unit
//! tests run the whole block with `bitstream-testkit`.

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::json;
use vcc_common::{any_object_route, common_event_handler, enabling, reset_route, status_route};

/// The ip_block type name, used in messages (the SDK does not tell a
/// handler its block's id).
pub const TYPE_NAME: &str = "packet_validation";

// ---------------------------------------------------------------------------
// ip_block

/// The fields of the last meta frame received (all 0: the emulator sees no
/// frames).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaFrame {
    pub ethertype: u64,
    pub band_id: u64,
    pub sample_rate: u64,
    pub dish_id: u64,
    pub time_code: u64,
    pub hardware_id: u64,
}

/// The ip_block: the expected ethertype, error counters and the last meta
/// frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PacketValidation {
    /// A constant of the bitstream config (0xFEED).
    pub expected_ethertype: u16,
    pub packet_crc_error_count: u64,
    pub packet_ethertype_error_count: u64,
    pub packet_seq_error_count: u64,
    pub meta_frame: MetaFrame,
    /// The smallest packet rate of the last signal update, used by the next
    /// pulse; `None` before the first signal update (the pulse then uses 0).
    /// Not a register: hidden from the ip_block's JSON (the SDK has no
    /// other place for per-block handler state).
    #[serde(skip)]
    pub packet_rate: Option<f64>,
}

impl Default for PacketValidation {
    fn default() -> Self {
        PacketValidation {
            expected_ethertype: 0xFEED,
            packet_crc_error_count: 0,
            packet_ethertype_error_count: 0,
            packet_seq_error_count: 0,
            meta_frame: MetaFrame::default(),
            packet_rate: None,
        }
    }
}

// ---------------------------------------------------------------------------
// state_machine

/// RESET (initial), ENABLING, ENABLED, DISABLING, FAULT: the life cycle of
/// `vcc_common::enabling` with RESET as its idle state, then
/// `CRITICAL_FAULT` and `RESET` from any state.
pub fn state_machine() -> StateMachine {
    let machine = StateMachine::new(
        ["RESET", "ENABLING", "ENABLED", "DISABLING", "FAULT"],
        "RESET",
    )
    .triggers(["START", "STOP", "RECEIVE_PULSE", "CRITICAL_FAULT", "RESET"]);
    enabling::with_transitions(machine, "RESET", ["DISABLING", "RESET"])
        .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
        .transition(Transition::on("RESET").from(FROM_ANY).to("RESET"))
}

// ---------------------------------------------------------------------------
// api

/// The body of `GET status`: `expected_ethertype` as a lower-case hex
/// string with a `0x` prefix (`"0xfeed"`, as Python's `hex()` writes it),
/// the three error counters and `meta_frame`.
pub fn status(block: &PacketValidation) -> serde_json::Value {
    json!({
        "expected_ethertype": format!("{:#x}", block.expected_ethertype),
        "packet_crc_error_count": block.packet_crc_error_count,
        "packet_ethertype_error_count": block.packet_ethertype_error_count,
        "packet_seq_error_count": block.packet_seq_error_count,
        "meta_frame": block.meta_frame,
    })
}

/// The routes: configure, deconfigure (any JSON object, no effect),
/// recover, start, stop (POST) and status (GET).
pub fn api() -> Api<PacketValidation> {
    Api::new()
        .route(any_object_route("configure", "Accepted; has no effect."))
        .route(any_object_route("deconfigure", "Accepted; has no effect."))
        .route(reset_route(
            "recover",
            "Fires RESET: back to the RESET state.",
        ))
        .route(enabling::start_route(TYPE_NAME))
        .route(enabling::stop_route(TYPE_NAME))
        .route(status_route(status))
}

// ---------------------------------------------------------------------------
// event_handler

/// Signal updates and pulses as in `vcc_common::enabling` (the smallest
/// packet rate remembered in [`PacketValidation::packet_rate`], only the
/// first event passed on; `RECEIVE_PULSE` with it), and manual events
/// (only the common rule).
pub fn event_handler() -> EventHandler<PacketValidation> {
    enabling::with_signal_and_pulses(common_event_handler(), |block| &mut block.packet_rate)
}

bitstream_sdk::export_plugin! {
    ip_block: PacketValidation,
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

    fn harness_in(state: &str) -> Harness<PacketValidation> {
        let mut h = Harness::<PacketValidation>::new();
        h.set_state(state);
        h
    }

    #[test]
    fn ip_block_fields_and_defaults_are_the_reference_ones() {
        let mut h = Harness::<PacketValidation>::new();
        let value = h.snapshot();
        assert_eq!(
            value,
            json!({
                "expected_ethertype": 65261,
                "packet_crc_error_count": 0,
                "packet_ethertype_error_count": 0,
                "packet_seq_error_count": 0,
                "meta_frame": {"ethertype": 0, "band_id": 0, "sample_rate": 0,
                               "dish_id": 0, "time_code": 0, "hardware_id": 0}
            })
        );
        let names: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(names[0], "expected_ethertype");
        // The constant of the real config reads back.
        h.apply_constants(json!({"expected_ethertype": 2048}))
            .unwrap();
        assert_eq!(h.block().expected_ethertype, 0x0800);
    }

    #[test]
    fn machine_matches_the_reference() {
        let h = Harness::<PacketValidation>::new();
        assert_eq!(
            h.states(),
            ["RESET", "ENABLING", "ENABLED", "DISABLING", "FAULT"]
        );
        assert_eq!(h.machine().initial, "RESET");
        assert_eq!(h.state(), "RESET");
        assert_eq!(h.condition_labels(), ["packet rate > 0", "packet rate = 0"]);
        assert_eq!(
            h.transitions(),
            [
                "START: RESET -> ENABLING",
                "START: ENABLING, ENABLED -> =",
                "STOP: ENABLED -> DISABLING",
                "STOP: ENABLING -> RESET",
                "STOP: DISABLING, RESET -> =",
                "RECEIVE_PULSE: ENABLING -> ENABLED [packet rate > 0]",
                "RECEIVE_PULSE: ENABLING -> = [packet rate = 0]",
                "RECEIVE_PULSE: DISABLING -> RESET",
                "RECEIVE_PULSE: RESET, ENABLED -> =",
                "CRITICAL_FAULT: * -> FAULT",
                "RESET: * -> RESET",
            ]
        );
    }

    #[test]
    fn status_shows_the_ethertype_in_hex() {
        let mut h = Harness::<PacketValidation>::new().with_constants(json!({
            "packet_seq_error_count": 2,
            "meta_frame": {"band_id": 3}
        }));
        assert_eq!(
            h.get("status").json(),
            json!({
                "expected_ethertype": "0xfeed",
                "packet_crc_error_count": 0,
                "packet_ethertype_error_count": 0,
                "packet_seq_error_count": 2,
                "meta_frame": {"ethertype": 0, "band_id": 3, "sample_rate": 0,
                               "dish_id": 0, "time_code": 0, "hardware_id": 0}
            })
        );
        h.apply_constants(json!({"expected_ethertype": 0x0800}))
            .unwrap();
        assert_eq!(h.get("status").json()["expected_ethertype"], "0x800");
    }

    #[test]
    fn signal_updates_remember_the_smallest_rate_in_a_hidden_field() {
        // The rule itself is tested in vcc_common::enabling.
        let mut h = harness_in("ENABLING");
        let out = h.signal_update([rate(7.0), rate(0.0)]);
        assert_eq!(out, vec![rate(7.0)]);
        // The pulse after it uses the smallest rate: 0 keeps ENABLING.
        h.pulse_with([rate(7.0), rate(0.0)]);
        assert_eq!(h.state(), "ENABLING");
        h.pulse_with([rate(7.0), rate(3.0)]);
        assert_eq!(h.state(), "ENABLED");
        // Not a register.
        assert!(h.snapshot().get("packet_rate").is_none());
        let overrides = h.overrides();
        assert!(overrides.signal_update && overrides.pulse && overrides.manual_event);
    }

    #[test]
    fn enabling_completes_on_a_pulse_with_a_packet_rate() {
        let mut h = Harness::<PacketValidation>::new();
        // A pulse without a packet rate uses 0.
        assert_eq!(h.post("start", json!({})).status(), 200);
        assert_eq!(h.state(), "ENABLING");
        h.pulse_with(Vec::<Value>::new());
        assert_eq!(h.state(), "ENABLING");
        // START again is allowed (stays).
        assert_eq!(h.post("start", json!({})).status(), 200);

        for (packet_rate, state) in [(0.0, "ENABLING"), (100.0, "ENABLED"), (0.0, "ENABLED")] {
            // The rate dropping does not disable it.
            h.pulse_with([rate(packet_rate)]);
            assert_eq!(h.state(), state, "{packet_rate}");
        }
        assert_eq!(h.post("start", json!({})).status(), 200);
        assert_eq!(h.state(), "ENABLED");
    }

    #[test]
    fn disabling_completes_on_the_next_pulse() {
        let mut h = harness_in("ENABLED");
        let stop = |h: &mut Harness<PacketValidation>| h.post("stop", json!({})).status();
        assert_eq!(stop(&mut h), 200);
        assert_eq!(h.state(), "DISABLING");
        assert_eq!(stop(&mut h), 200);
        assert_eq!(h.state(), "DISABLING");
        h.pulse();
        assert_eq!(h.state(), "RESET");
        assert_eq!(stop(&mut h), 200);
        assert_eq!(h.state(), "RESET");

        let mut h = harness_in("ENABLING");
        assert_eq!(stop(&mut h), 200);
        assert_eq!(h.state(), "RESET");
    }

    #[test]
    fn start_and_stop_in_fault_are_conflicts() {
        let mut h = harness_in("FAULT");
        let r = h.post("start", json!({}));
        assert_eq!(r.status(), 409);
        assert_eq!(
            r.error(),
            Some("Cannot start packet_validation while in state FAULT")
        );
        let r = h.post("stop", json!({}));
        assert_eq!(r.status(), 409);
        assert_eq!(
            r.error(),
            Some("Cannot stop packet_validation while in state FAULT")
        );
        h.pulse();
        assert_eq!(h.state(), "FAULT");
        assert!(h.fired().is_empty());
    }

    #[test]
    fn settings_bodies_are_objects() {
        // Checked against the schema configure and deconfigure publish.
        let mut h = Harness::<PacketValidation>::new();
        for route in ["configure", "deconfigure"] {
            for body in ["{}", r#"{"anything": [1, 2]}"#] {
                assert_eq!(h.request("POST", route, body.as_bytes()).status(), 200);
            }
            for body in ["[]", r#""x""#, "1", "null"] {
                let r = h.request("POST", route, body.as_bytes());
                assert_eq!(r.status(), 400, "{body}");
            }
        }
    }

    #[test]
    fn api_publishes_the_reference_routes_and_schemas() {
        let h = Harness::<PacketValidation>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        for route in ["configure", "deconfigure"] {
            let any_object = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object"
            });
            assert_eq!(h.body_schema(route), Some(any_object));
            assert_eq!(h.summary(route), "Accepted; has no effect.");
        }
        assert_eq!(
            h.summary("start"),
            "Fires START (409 when not allowed); the next pulse with a non-zero packet rate enables the block."
        );
    }
}
