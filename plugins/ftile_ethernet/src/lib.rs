//! `ftile_ethernet`: the 200G F-tile Ethernet MAC/PHY of the VCC bitstream
//! (id `ethernet_200g` in the real config, constants `num_fibres=4`,
//! `num_lanes=4`), as described in `docs/vcc-ip-blocks.md`.
//!
//! - The link follows the signal: every signal update fires
//!   `PACKET_RATE_UPDATE` with the smallest `packet_rate` of the list
//!   (`LINK` when it is above 0, `NO_LINK` when it is 0), and the list goes
//!   downstream unchanged.
//! - An injection carrying a `badness` fires `UPDATE_BADNESS`: `LINK`
//!   degrades at 0.5 and above, `DEGRADED` recovers below 0.5.
//! - `start` leaves `RESET` and forces a signal update, so that the link
//!   comes up without waiting for the next pulse.
//!
//! The handlers are plain functions generic over [`Control`] (the part of
//! the SDK's `Subcontroller` they use); the unit tests run the whole block
//! with `bitstream-testkit`.

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::json;
use vcc_common::{
    control_route, handle_common_manual_event, min_packet_rate, packet_rate_arg, reset_route,
    schema_route, status_route, Control,
};

/// The ip_block type name, used in messages (the SDK does not tell a
/// handler its block's id).
pub const TYPE_NAME: &str = "ftile_ethernet";

// ---------------------------------------------------------------------------
// ip_block

/// The MAC statistics counters: `rx_*` then `tx_*`, all zero.
///
/// Flattened into [`FtileEthernet`] (so each counter is an ip_block field of
/// its own, as in the original) and shown as `mac` by `GET status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MacCounters {
    pub rx_fragments: u64,
    pub rx_runt: u64,
    pub rx_64_bytes: u64,
    pub rx_65_to_127_bytes: u64,
    pub rx_128_to_255_bytes: u64,
    pub rx_256_to_511_bytes: u64,
    pub rx_512_to_1023_bytes: u64,
    pub rx_1024_to_1518_bytes: u64,
    pub rx_1519_to_max_bytes: u64,
    pub rx_oversize: u64,
    pub rx_frame_octets_ok: u64,
    pub rx_crcerr: u64,
    pub tx_fragments: u64,
    pub tx_runt: u64,
    pub tx_64_bytes: u64,
    pub tx_65_to_127_bytes: u64,
    pub tx_128_to_255_bytes: u64,
    pub tx_256_to_511_bytes: u64,
    pub tx_512_to_1023_bytes: u64,
    pub tx_1024_to_1518_bytes: u64,
    pub tx_1519_to_max_bytes: u64,
    pub tx_oversize: u64,
    pub tx_frame_octets_ok: u64,
    pub tx_crcerr: u64,
}

/// The ip_block: PHY, FEC and MAC registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FtileEthernet {
    /// A constant of the bitstream config.
    pub num_fibres: u32,
    /// A constant of the bitstream config.
    pub num_lanes: u32,
    /// Set by `configure`'s `rx_loopback_enable`, cleared by `deconfigure`.
    pub rx_loopback: bool,
    /// Per-lane frequency lock flags (empty: the emulator models no lanes).
    pub rx_freq_lock: Vec<bool>,
    /// Per-lane word lock flags (empty, as `rx_freq_lock`).
    pub rx_word_lock: Vec<bool>,
    pub rx_corrected_code_words: u64,
    pub rx_uncorrected_code_words: u64,
    #[serde(flatten)]
    pub mac: MacCounters,
}

impl Default for FtileEthernet {
    fn default() -> Self {
        FtileEthernet {
            num_fibres: 4,
            num_lanes: 4,
            rx_loopback: false,
            rx_freq_lock: Vec::new(),
            rx_word_lock: Vec::new(),
            rx_corrected_code_words: 0,
            rx_uncorrected_code_words: 0,
            mac: MacCounters::default(),
        }
    }
}

// ---------------------------------------------------------------------------
// state_machine

/// The `badness` argument of a trigger, when it is a number.
fn badness_arg(args: &ValueMap) -> Option<f64> {
    args.get("badness").and_then(Value::as_f64)
}

/// RESET (initial), NO_LINK, LINK, DEGRADED, FAULT.
pub fn state_machine() -> StateMachine {
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
                .when("packet rate > 0", |args| packet_rate_arg(args) > 0.0),
        )
        .transition(
            Transition::on("PACKET_RATE_UPDATE")
                .from(["NO_LINK", "LINK", "DEGRADED"])
                .to("NO_LINK")
                .when("packet rate = 0", |args| packet_rate_arg(args) == 0.0),
        )
        .transition(
            Transition::on("UPDATE_BADNESS")
                .from("LINK")
                .to("DEGRADED")
                .when(">= 0.5", |args| badness_arg(args).is_some_and(|b| b >= 0.5)),
        )
        .transition(
            Transition::on("UPDATE_BADNESS")
                .from("DEGRADED")
                .to("LINK")
                .when("< 0.5", |args| badness_arg(args).is_some_and(|b| b < 0.5)),
        )
        .transition(Transition::on("RESET").from(FROM_ANY).to("RESET"))
        .transition(Transition::on("STOP").from(FROM_ANY).to("RESET"))
        .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
}

// ---------------------------------------------------------------------------
// api

/// The body schema of `configure` and `deconfigure`.
///
/// Strict on types (`rx_loopback_enable` must be a boolean when given),
/// lenient on unknown keys: the real clients send exactly
/// `{"rx_loopback_enable": false}`, and a key this emulator does not model
/// is no reason to refuse a configuration the real block may accept.
pub fn loopback_schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "rx_loopback_enable": {"type": "boolean"}
        }
    })
}

/// The body of `configure` and `deconfigure`.
#[derive(Debug, Default, Deserialize)]
struct LoopbackBody {
    rx_loopback_enable: Option<bool>,
}

/// `POST configure`: `rx_loopback_enable`, when present, sets `rx_loopback`.
/// A body that fails the schema answers 400 and changes nothing.
pub fn configure(
    block: &mut FtileEthernet,
    ctx: &impl Control,
    req: &Request,
    schema: &JsonSchema,
) -> Result<Response, Error> {
    let body: LoopbackBody = vcc_common::checked_body(req, schema)?;
    if let Some(enable) = body.rx_loopback_enable {
        block.rx_loopback = enable;
        ctx.log(LogLevel::Info, &format!("rx_loopback set to {enable}"));
    }
    Ok(Response::ok())
}

/// `POST deconfigure`: `rx_loopback_enable`, when present (whatever its
/// value), clears `rx_loopback`. A body that fails the schema answers 400
/// and changes nothing.
pub fn deconfigure(
    block: &mut FtileEthernet,
    ctx: &impl Control,
    req: &Request,
    schema: &JsonSchema,
) -> Result<Response, Error> {
    let body: LoopbackBody = vcc_common::checked_body(req, schema)?;
    if body.rx_loopback_enable.is_some() {
        block.rx_loopback = false;
        ctx.log(LogLevel::Info, "rx_loopback cleared");
    }
    Ok(Response::ok())
}

/// `POST start`: fires `START` and forces a signal update (so that the link
/// comes up at once); 409 when `START` is not allowed now.
pub fn start(ctx: &impl Control) -> Result<Response, Error> {
    if !ctx.may_trigger("START", ()) {
        return Err(Error::conflict(format!(
            "Cannot start {TYPE_NAME} while in state {}",
            ctx.get_state()
        )));
    }
    ctx.trigger("START", ())?;
    ctx.force_signal_update()?;
    Ok(Response::ok())
}

/// `POST stop`: fires `STOP` (allowed from every state: back to `RESET`).
pub fn stop(ctx: &impl Control) -> Result<Response, Error> {
    ctx.trigger("STOP", ())?;
    Ok(Response::ok())
}

/// The body of `GET status`:
/// `{"phy": {...}, "fec": {...}, "mac": {the 24 counters}}`.
pub fn status(block: &FtileEthernet) -> serde_json::Value {
    json!({
        "phy": {
            "num_fibres": block.num_fibres,
            "num_lanes": block.num_lanes,
            "rx_loopback": block.rx_loopback,
            "rx_freq_lock": block.rx_freq_lock,
            "rx_word_lock": block.rx_word_lock,
        },
        "fec": {
            "rx_corrected_code_words": block.rx_corrected_code_words,
            "rx_uncorrected_code_words": block.rx_uncorrected_code_words,
        },
        "mac": block.mac,
    })
}

/// The routes: configure, deconfigure, recover, start, stop (POST) and
/// status (GET).
pub fn api() -> Api<FtileEthernet> {
    Api::new()
        .route(schema_route(
            "configure",
            "Sets rx_loopback from `rx_loopback_enable`, when present.",
            loopback_schema(),
            |block: &mut FtileEthernet, ctx, req, checks| configure(block, ctx, req, checks),
        ))
        .route(schema_route(
            "deconfigure",
            "Clears rx_loopback when `rx_loopback_enable` is present.",
            loopback_schema(),
            |block: &mut FtileEthernet, ctx, req, checks| deconfigure(block, ctx, req, checks),
        ))
        .route(reset_route(
            "recover",
            "Fires RESET: back to the RESET state.",
        ))
        .route(control_route(
            "start",
            "Fires START (409 when not allowed) and forces a signal update.",
            |ctx| start(ctx),
        ))
        .route(control_route(
            "stop",
            "Fires STOP: back to the RESET state.",
            |ctx| stop(ctx),
        ))
        .route(status_route(status))
}

// ---------------------------------------------------------------------------
// event_handler

/// A signal update: fires `PACKET_RATE_UPDATE` (if allowed) with the
/// smallest `packet_rate` of the list (missing counts as 0) and returns
/// the list unchanged.
pub fn signal_update(ctx: &impl Control, events: Vec<Value>) -> Vec<Value> {
    let packet_rate = min_packet_rate(&events);
    ctx.trigger_if_allowed("PACKET_RATE_UPDATE", [("packet_rate", packet_rate)]);
    events
}

/// The ethernet-specific part of a manual event: an injection whose value
/// carries a numeric `badness` fires `UPDATE_BADNESS` (if allowed) with it.
/// A `badness` that is not a number is logged and ignored. Other events
/// (and general events) are left to the common rule.
pub fn injection(ctx: &impl Control, event: &ManualEvent) {
    if event.subtype != ManualEventSubtype::Injection {
        return;
    }
    let Some(badness) = event.value.get("badness") else {
        return;
    };
    match badness.as_f64() {
        Some(badness) => {
            ctx.trigger_if_allowed("UPDATE_BADNESS", [("badness", badness)]);
        }
        None => ctx.log(
            LogLevel::Error,
            &format!(
                "injection ignored: badness must be a number, got {} ({badness})",
                badness.kind_name()
            ),
        ),
    }
}

/// Signal updates and manual events (no pulse handler: the default).
pub fn event_handler() -> EventHandler<FtileEthernet> {
    EventHandler::<FtileEthernet>::new()
        .on_signal_update(|_block, ctx, events| Ok(signal_update(ctx, events)))
        .on_manual_event(|_block, ctx, event| {
            injection(ctx, event);
            handle_common_manual_event(ctx, event);
            Ok(None)
        })
}

bitstream_sdk::export_plugin! {
    ip_block: FtileEthernet,
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
    fn injection_event(value: serde_json::Value) -> ManualEvent {
        ManualEvent::injection(Severity::Warning, Value::from(value))
    }

    fn harness_in(state: &str) -> Harness<FtileEthernet> {
        let mut h = Harness::<FtileEthernet>::new();
        h.set_state(state);
        h
    }

    fn keys(value: &serde_json::Value) -> Vec<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn ip_block_fields_and_defaults_are_the_reference_ones() {
        let mut h = Harness::<FtileEthernet>::new();
        let value = h.snapshot();
        let fields = keys(&value);
        let mut expected = vec![
            "num_fibres",
            "num_lanes",
            "rx_loopback",
            "rx_freq_lock",
            "rx_word_lock",
            "rx_corrected_code_words",
            "rx_uncorrected_code_words",
        ];
        let counters = [
            "fragments",
            "runt",
            "64_bytes",
            "65_to_127_bytes",
            "128_to_255_bytes",
            "256_to_511_bytes",
            "512_to_1023_bytes",
            "1024_to_1518_bytes",
            "1519_to_max_bytes",
            "oversize",
            "frame_octets_ok",
            "crcerr",
        ];
        let mac: Vec<String> = ["rx", "tx"]
            .iter()
            .flat_map(|dir| counters.iter().map(move |c| format!("{dir}_{c}")))
            .collect();
        expected.extend(mac.iter().map(String::as_str));
        assert_eq!(fields, expected);
        assert_eq!(value["num_fibres"], 4);
        assert_eq!(value["num_lanes"], 4);
        assert_eq!(value["rx_loopback"], false);
        assert_eq!(value["rx_freq_lock"], json!([]));
        assert!(mac.iter().all(|c| value[c] == 0));
        // Constants are assigned over it by name, the MAC counters too.
        h.apply_constants(json!({"num_fibres": 2, "rx_crcerr": 7}))
            .unwrap();
        let back = h.block();
        assert_eq!((back.num_fibres, back.mac.rx_crcerr), (2, 7));
    }

    #[test]
    fn machine_matches_the_reference() {
        let h = Harness::<FtileEthernet>::new();
        assert_eq!(
            h.states(),
            ["RESET", "NO_LINK", "LINK", "DEGRADED", "FAULT"]
        );
        assert_eq!(h.machine().initial, "RESET");
        assert_eq!(
            h.condition_labels(),
            ["packet rate > 0", "packet rate = 0", ">= 0.5", "< 0.5"]
        );
        assert_eq!(
            h.transitions(),
            [
                "START: RESET -> NO_LINK",
                "PACKET_RATE_UPDATE: NO_LINK, LINK -> LINK [packet rate > 0]",
                "PACKET_RATE_UPDATE: NO_LINK, LINK, DEGRADED -> NO_LINK [packet rate = 0]",
                "UPDATE_BADNESS: LINK -> DEGRADED [>= 0.5]",
                "UPDATE_BADNESS: DEGRADED -> LINK [< 0.5]",
                "RESET: * -> RESET",
                "STOP: * -> RESET",
                "CRITICAL_FAULT: * -> FAULT",
            ]
        );
    }

    #[test]
    fn start_leaves_reset_and_forces_a_signal_update() {
        let mut h = Harness::<FtileEthernet>::new();
        assert_eq!(h.post("start", json!({})).status(), 200);
        assert_eq!(h.state(), "NO_LINK");
        assert_eq!(h.forced_updates(), 1);
        // The forced update ran on the last list (none yet: rate 0).
        assert_eq!(h.fired(), ["START", "PACKET_RATE_UPDATE"]);

        // With a packet rate already received, the link comes up at once.
        let mut h = Harness::<FtileEthernet>::new();
        h.signal_update([rate(10.0)]);
        assert_eq!(h.state(), "RESET");
        h.post("start", json!({}));
        assert_eq!(h.state(), "LINK");
    }

    #[test]
    fn start_is_a_conflict_outside_reset() {
        for state in ["NO_LINK", "LINK", "DEGRADED", "FAULT"] {
            let mut h = harness_in(state);
            let r = h.post("start", json!({}));
            assert_eq!(r.status(), 409);
            assert_eq!(
                r.error().unwrap(),
                format!("Cannot start ftile_ethernet while in state {state}")
            );
            assert_eq!(h.state(), state);
            assert_eq!(h.forced_updates(), 0);
        }
    }

    #[test]
    fn stop_goes_back_to_reset_from_anywhere() {
        for state in ["RESET", "NO_LINK", "LINK", "DEGRADED", "FAULT"] {
            let mut h = harness_in(state);
            assert_eq!(h.post("stop", json!({})).status(), 200);
            assert_eq!(h.state(), "RESET");
        }
    }

    #[test]
    fn signal_updates_follow_the_smallest_packet_rate_and_pass_the_list_on() {
        let mut h = harness_in("NO_LINK");
        let list = vec![rate(10.0), rate(5.0)];
        assert_eq!(h.signal_update(list.clone()), list);
        assert_eq!(h.state(), "LINK");

        // A missing packet_rate counts as 0: the link drops.
        let list = vec![rate(10.0), Value::Map(ValueMap::new())];
        assert_eq!(h.signal_update(list.clone()), list);
        assert_eq!(h.state(), "NO_LINK");

        // Nothing happens in RESET (START not fired yet).
        let mut h = Harness::<FtileEthernet>::new();
        h.signal_update([rate(10.0)]);
        assert_eq!(h.state(), "RESET");
        assert!(h.fired().is_empty());
    }

    #[test]
    fn badness_degrades_and_restores_the_link() {
        let mut h = harness_in("LINK");
        h.inject(injection_event(
            json!({"injection_type": "update_link_badness", "badness": 0.75}),
        ));
        assert_eq!(h.state(), "DEGRADED");

        // A non-zero packet rate does not restore a degraded link...
        h.signal_update([rate(10.0)]);
        assert_eq!(h.state(), "DEGRADED");
        // ...a low badness does.
        h.inject(injection_event(json!({"badness": 0.25})));
        assert_eq!(h.state(), "LINK");

        // Below the threshold in LINK: nothing fires.
        h.inject(injection_event(json!({"badness": 0.49})));
        assert_eq!(h.state(), "LINK");
        h.inject(injection_event(json!({"badness": 0.5})));
        assert_eq!(h.state(), "DEGRADED");

        // A zero packet rate drops a degraded link.
        h.signal_update([rate(0.0)]);
        assert_eq!(h.state(), "NO_LINK");
    }

    #[test]
    fn injections_without_a_numeric_badness_change_nothing() {
        let mut h = harness_in("LINK");
        h.inject(injection_event(json!({"injection_type": "other"})));
        h.inject(injection_event(json!({"badness": "high"})));
        h.inject(ManualEvent::general(
            Severity::Warning,
            Value::from(json!({"badness": 0.9})),
        ));
        assert_eq!(h.state(), "LINK");
        assert!(h.fired().is_empty());
        assert_eq!(h.logged(LogLevel::Error).len(), 1);
    }

    #[test]
    fn configure_and_deconfigure_set_and_clear_rx_loopback() {
        let mut h = Harness::<FtileEthernet>::new();
        for (route, body, rx_loopback) in [
            ("configure", json!({"rx_loopback_enable": true}), true),
            // Absent: no change; unknown keys are accepted.
            ("configure", json!({"other": 1}), true),
            ("deconfigure", json!({}), true),
            // Present, whatever its value: cleared.
            ("deconfigure", json!({"rx_loopback_enable": true}), false),
            ("configure", json!({"rx_loopback_enable": true}), true),
            ("configure", json!({"rx_loopback_enable": false}), false),
        ] {
            assert_eq!(h.post(route, body.clone()).status(), 200, "{body}");
            assert_eq!(h.block().rx_loopback, rx_loopback, "{body}");
        }
        assert_eq!(h.state(), "RESET");
    }

    #[test]
    fn bad_bodies_answer_400_and_change_nothing() {
        let mut h = Harness::<FtileEthernet>::new();
        for body in [
            json!({"rx_loopback_enable": "yes"}),
            json!({"rx_loopback_enable": 1}),
            json!([]),
            json!(true),
        ] {
            let before = h.block();
            assert_eq!(h.post("configure", body.clone()).status(), 400, "{body}");
            assert_eq!(h.post("deconfigure", body.clone()).status(), 400, "{body}");
            assert_eq!(h.block(), before);
        }
        let r = h.post("configure", json!({"rx_loopback_enable": "yes"}));
        assert!(r.error().unwrap().contains("/rx_loopback_enable"), "{r:?}");
        assert_eq!(h.state(), "RESET");
    }

    #[test]
    fn status_has_phy_fec_and_the_24_mac_counters() {
        let mut h = Harness::<FtileEthernet>::new()
            .with_constants(json!({"rx_loopback": true, "tx_crcerr": 3}));
        let status = h.get("status").json();
        assert_eq!(keys(&status), ["phy", "fec", "mac"]);
        assert_eq!(
            status["phy"],
            json!({"num_fibres": 4, "num_lanes": 4, "rx_loopback": true, "rx_freq_lock": [], "rx_word_lock": []})
        );
        assert_eq!(
            status["fec"],
            json!({"rx_corrected_code_words": 0, "rx_uncorrected_code_words": 0})
        );
        let mac = status["mac"].as_object().unwrap();
        assert_eq!(mac.len(), 24);
        assert_eq!(mac["tx_crcerr"], 3);
        assert_eq!(mac.keys().next().map(String::as_str), Some("rx_fragments"));
    }

    #[test]
    fn api_publishes_the_reference_routes_and_schemas() {
        let h = Harness::<FtileEthernet>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        for route in ["configure", "deconfigure"] {
            // Published as declared, marked as checked by the handler (which
            // answers a bad body after firing its own triggers).
            let mut published = loopback_schema();
            published[bitstream_sdk::schema::CHECKED_IN_HANDLER] = json!(true);
            assert_eq!(h.body_schema(route), Some(published));
        }
    }
}
