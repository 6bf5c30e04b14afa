//! End to end with the real VCC bitstream: the real `bitstream-emulator
//! run` binary on `fixtures/vcc_processing` (the committed config, 36
//! blocks) and `fixtures/vcc_processing_fan_in`, with the nine real plugins
//! (`plugins/<type>/`, built by `cargo build --workspace`) copied from the
//! build dir into a tempdir package, driven over HTTP on loopback.
//!
//! The requests and bodies are those the real control software
//! (ska-mid-cbf-fhs-common) and system tests send: `POST
//! /<block>/<route>/` with a trailing slash and `{}` for "no settings",
//! `GET /<block>/status?clear=false`, `POST /inject` with injector event
//! groups. The expected states are the "Observed sequence" of a real
//! system test (`docs/vcc-ip-blocks.md`).
//!
//! Real-time pulses are stopped (`--stopped`); pulses are run with `POST
//! /pulse?count=N`, which returns once they have flowed through every
//! block, so every state assertion after it is exact. Injections arrive on
//! the engine's driver thread: those are awaited by polling.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use support::{plugin_package, workspace_dir, Emulator, Reply};

/// The emulator id injections name (`--id`), as in the real deployment.
const EMULATOR_ID: &str = "fhs-vcc-emulator-1";

/// The sample rate the real control software configures.
const SAMPLE_RATE: i64 = 3_960_000_000;

/// The blocks with a start/stop life cycle, in signal order.
const STATEFUL: [&str; 3] = [
    "ethernet_200g",
    "packet_validation",
    "wideband_input_buffer",
];

/// The channeliser path's blocks, which have the two-state machine.
const CHANNELISER_PATH: [&str; 3] = [
    "b123vcc",
    "wideband_frequency_shifter",
    "fs_selection_26_2_1",
];

/// `fixtures/<name>/emulators/config.json`, as committed.
fn config_text(name: &str) -> String {
    let path = workspace_dir()
        .join("fixtures")
        .join(name)
        .join("emulators/config.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config(name: &str) -> Value {
    serde_json::from_str(&config_text(name)).expect("the config is JSON")
}

/// Runs a package of `config` (JSON text) with the real plugins.
fn run_config(config: &str) -> Emulator {
    Emulator::start_package(
        plugin_package(config),
        &[
            "--stopped",
            "--pulse-period-ms",
            "1000",
            "--id",
            EMULATOR_ID,
        ],
    )
}

/// Runs `fixtures/<name>` with the real plugins.
fn run_fixture(name: &str) -> Emulator {
    run_config(&config_text(name))
}

/// The 26 frequency slice power meters.
fn fs_power_meters() -> Vec<String> {
    (1..=26)
        .map(|i| format!("fs{i}_wideband_power_meter"))
        .collect()
}

/// `POST /<block>/<route>/` with a JSON body, as the real client sends it.
fn call(emu: &Emulator, block: &str, route: &str, body: &Value) -> Reply {
    emu.post_json(&format!("/{block}/{route}/"), body)
}

/// [`call`], which must succeed (any 2xx, as for the real client).
#[track_caller]
fn call_ok(emu: &Emulator, block: &str, route: &str, body: &Value) -> Reply {
    let reply = call(emu, block, route, body);
    assert!(
        (200..300).contains(&reply.status),
        "POST /{block}/{route}/ {body}: {} {}",
        reply.status,
        reply.text
    );
    reply
}

/// `GET /<block>/status?clear=false`.
#[track_caller]
fn status(emu: &Emulator, block: &str) -> Value {
    emu.get(&format!("/{block}/status?clear=false"))
        .expect(200)
        .json()
}

/// The states of `blocks`, in order.
fn states<S: AsRef<str>>(emu: &Emulator, blocks: &[S]) -> Vec<String> {
    blocks.iter().map(|b| emu.block_state(b.as_ref())).collect()
}

/// `POST /inject`: `values` as events of `severity` to `block`, at once.
#[track_caller]
fn inject(emu: &Emulator, block: &str, severity: &str, values: &[Value]) {
    let events: Vec<Value> = values
        .iter()
        .map(|value| json!({"severity": severity, "value": value, "offset": 0}))
        .collect();
    let body = json!({"injector_event_groups": [{
        "bitstream_emulator_id": EMULATOR_ID,
        "ip_block_emulator_id": block,
        "events": events,
    }]});
    let reply = emu.post_json("/inject", &body).expect(202);
    assert_eq!(reply.json(), json!({"scheduled": values.len()}));
}

/// Waits until `check` holds for `block`'s status; answers that status.
#[track_caller]
fn wait_status(emu: &Emulator, block: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = support::wait_for_quiet(support::PATIENCE, || {
        last = status(emu, block);
        check(&last).then(|| last.clone())
    });
    found.unwrap_or_else(|| panic!("{block}'s status never showed {what}; last: {last}"))
}

/// The gain the test configures for `pol`, `channel` (distinct for all 20).
fn gain(pol: i64, channel: i64) -> f64 {
    0.5 + channel as f64 / 100.0 + pol as f64 / 4.0
}

fn input_buffer_configuration() -> Value {
    json!({"expected_sample_rate": SAMPLE_RATE, "noise_diode_transition_holdoff_seconds": 0, "expected_dish_band": 1})
}

fn power_meter_configuration() -> Value {
    json!({"averaging_time": 1.0, "sample_rate": SAMPLE_RATE, "flagging": 0})
}

/// Step 1: `recover` on the three stateful blocks: RESET, RESET, RESET.
fn recover(emu: &Emulator) {
    for block in STATEFUL {
        call_ok(emu, block, "recover", &json!({}));
    }
    assert_eq!(states(emu, &STATEFUL), ["RESET", "RESET", "RESET"]);
}

/// Step 2: configure every block as the real control software does.
fn configure(emu: &Emulator) {
    call_ok(
        emu,
        "ethernet_200g",
        "configure",
        &json!({"rx_loopback_enable": false}),
    );
    call_ok(
        emu,
        "wideband_input_buffer",
        "configure",
        &input_buffer_configuration(),
    );
    for pol in 0..2 {
        for channel in 0..10 {
            call_ok(
                emu,
                "b123vcc",
                "configure",
                &json!({"sample_rate": SAMPLE_RATE, "pol": pol, "channel": channel, "gain": gain(pol, channel)}),
            );
        }
    }
    call_ok(
        emu,
        "fs_selection_26_2_1",
        "configure",
        &json!({"band_select": 1, "band_start_channel": [0, 1]}),
    );
    call_ok(
        emu,
        "wideband_frequency_shifter",
        "configure",
        &json!({"shift_frequency": 0.0}),
    );
    for meter in fs_power_meters() {
        call_ok(emu, &meter, "configure", &power_meter_configuration());
    }
    call_ok(
        emu,
        "packetizer",
        "configure",
        &json!({"vid": 1, "vcc_id": 1, "fs_id": 1}),
    );

    assert_eq!(states(emu, &CHANNELISER_PATH), ["ACTIVE"; 3]);
    assert_eq!(emu.block_state("wideband_input_buffer"), "READY");
    assert_eq!(states(emu, &fs_power_meters()), vec!["ACTIVE"; 26]);
    assert_eq!(emu.block_state("packetizer"), "ACTIVE");
}

/// The status bodies show what [`configure`] set.
fn assert_configured_status(emu: &Emulator) {
    let ethernet = status(emu, "ethernet_200g");
    assert_eq!(ethernet["phy"]["rx_loopback"], false, "{ethernet}");
    assert_eq!(ethernet["phy"]["num_fibres"], 4, "{ethernet}");
    assert_eq!(ethernet["phy"]["num_lanes"], 4, "{ethernet}");
    assert_eq!(
        ethernet["fec"]["rx_uncorrected_code_words"], 0,
        "{ethernet}"
    );
    assert_eq!(
        ethernet["mac"].as_object().map(|m| m.len()),
        Some(24),
        "24 MAC counters: {ethernet}"
    );

    let validation = status(emu, "packet_validation");
    let ethertype = validation["expected_ethertype"]
        .as_str()
        .unwrap_or_else(|| panic!("expected_ethertype is a hex string: {validation}"));
    assert!(
        ethertype.eq_ignore_ascii_case("0xfeed"),
        "the constant 65261: {validation}"
    );

    let buffer = status(emu, "wideband_input_buffer");
    assert_eq!(buffer["meta_dish_id"], 1, "{buffer}");
    assert_eq!(buffer["rx_sample_rate"], SAMPLE_RATE, "{buffer}");
    assert_eq!(buffer["buffer_overflowed"], false, "{buffer}");

    let channeliser = status(emu, "b123vcc");
    assert_eq!(channeliser["num_channels"], 10, "{channeliser}");
    assert_eq!(channeliser["num_polarisations"], 2, "{channeliser}");
    let gains = channeliser["gains"].as_array().expect("gains");
    assert_eq!(gains.len(), 20, "{channeliser}");
    for pol in 0..2 {
        for channel in 0..10 {
            assert_eq!(
                gains[(pol * 10 + channel) as usize],
                json!({"pol": pol, "channel": channel, "gain": gain(pol, channel)}),
                "{channeliser}"
            );
        }
    }

    assert_eq!(
        status(emu, "fs_selection_26_2_1"),
        json!({"band_select": 1, "band_start_channel": [0, 1]})
    );
    assert_eq!(
        status(emu, "wideband_frequency_shifter"),
        json!({"shift_frequency": 0.0})
    );
    let packetizer = status(emu, "packetizer");
    assert_eq!(packetizer["vid_register"], 1, "{packetizer}");
    assert_eq!(packetizer["packet_count_register"], 0, "{packetizer}");
    let meter = status(emu, "fs1_wideband_power_meter");
    assert_eq!(meter["avg_power_polX"].as_f64(), Some(0.0), "{meter}");
}

/// Step 3: start the three stateful blocks; with the signal flowing they
/// reach LINK, ENABLED, ENABLED.
fn start(emu: &Emulator) {
    // The emulator of a real deployment pulses all along: the blocks have
    // seen the signal before they are started.
    emu.pulse(2);
    call_ok(emu, "ethernet_200g", "start", &json!({}));
    // start forces a signal update: LINK at once, without waiting for a pulse.
    assert_eq!(emu.block_state("ethernet_200g"), "LINK");
    call_ok(emu, "packet_validation", "start", &json!({}));
    call_ok(emu, "wideband_input_buffer", "start", &json!({}));
    assert_eq!(
        states(emu, &STATEFUL),
        ["LINK", "ENABLING", "ENABLING"],
        "before a pulse"
    );
    // Within one pulse each block sees its signal update before its pulse.
    emu.pulse(1);
    assert_eq!(states(emu, &STATEFUL), ["LINK", "ENABLED", "ENABLED"]);
    emu.pulse(3);
    assert_eq!(states(emu, &STATEFUL), ["LINK", "ENABLED", "ENABLED"]);
    assert_eq!(states(emu, &CHANNELISER_PATH), ["ACTIVE"; 3]);
}

/// Steps 1 to 3.
fn bring_up(emu: &Emulator) {
    recover(emu);
    emu.pulse(2);
    configure(emu);
    start(emu);
}

#[test]
fn the_package_serves_all_36_blocks_with_the_reference_graph() {
    let emu = run_fixture("vcc_processing");
    let config = config("vcc_processing");
    let index = emu.get("/").expect(200).json();
    assert_eq!(
        index["bitstream"],
        json!({"id": "vcc_processing", "version": "0.0.16"})
    );
    let blocks = index["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 36);
    for (listed, configured) in blocks.iter().zip(config["ip_blocks"].as_array().unwrap()) {
        assert_eq!(listed["id"], configured["id"]);
        assert_eq!(listed["type"], configured["type"]);
        let expected = match configured["type"].as_str().unwrap() {
            "ftile_ethernet" | "packet_validation" | "wideband_input_buffer" => "RESET",
            _ => "ACTIVE",
        };
        assert_eq!(listed["current_state"], expected, "{listed}");
        let routes: Vec<String> = listed["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["route"].as_str().unwrap()
                )
            })
            .collect();
        for route in [
            "POST configure",
            "POST deconfigure",
            "POST recover",
            "POST start",
            "POST stop",
            "GET status",
        ] {
            assert!(
                routes.contains(&route.to_owned()),
                "{}: {routes:?}",
                listed["id"]
            );
        }
        let id = configured["id"].as_str().unwrap();
        assert_eq!(
            emu.get(&format!("/{id}/status/?clear=false")).status,
            200,
            "{id}"
        );
    }

    let graph = emu.get("/graph").expect(200).json();
    assert_eq!(graph["edges"].as_array().unwrap().len(), 60);
    assert_eq!(graph["first"], json!(["ethernet_200g"]));
    let order: Vec<&str> = graph["pulse_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().or_else(|| b["id"].as_str()).unwrap())
        .collect();
    let position = |id: &str| order.iter().position(|b| *b == id).unwrap();
    assert!(position("fs_selection_26_2_1") < position("fs1_wideband_power_meter"));
    assert!(position("fs26_wideband_power_meter") < position("packetizer"));

    // The constants reached the blocks.
    let ethernet = status(&emu, "ethernet_200g");
    assert_eq!(
        (
            &ethernet["phy"]["num_fibres"],
            &ethernet["phy"]["num_lanes"]
        ),
        (&json!(4), &json!(4))
    );
    // Pulses through an unconfigured bitstream change no state.
    emu.pulse(5);
    assert_eq!(states(&emu, &STATEFUL), ["RESET"; 3]);
}

#[test]
fn the_observed_sequence_of_the_real_system_test() {
    let emu = run_fixture("vcc_processing");

    // 1. recover
    recover(&emu);
    emu.pulse(2);
    assert_eq!(states(&emu, &STATEFUL), ["RESET"; 3]);

    // 2. configure
    configure(&emu);
    emu.pulse(2);
    assert_eq!(states(&emu, &CHANNELISER_PATH), ["ACTIVE"; 3]);
    assert_eq!(emu.block_state("wideband_input_buffer"), "READY");
    assert_configured_status(&emu);

    // 3. start
    start(&emu);
    assert_configured_status(&emu);
    // Starting again: the Ethernet block refuses (409, naming the state) and
    // stays; the others accept a repeated start.
    let again = call(&emu, "ethernet_200g", "start", &json!({})).expect(409);
    assert!(again.error().contains("LINK"), "{}", again.text);
    call_ok(&emu, "packet_validation", "start", &json!({}));
    call_ok(&emu, "wideband_input_buffer", "start", &json!({}));
    assert_eq!(states(&emu, &STATEFUL), ["LINK", "ENABLED", "ENABLED"]);
    // Configuring an enabled input buffer is refused with the reference's
    // 500, a reply: the block is not faulted and stays ENABLED.
    let refused = call(
        &emu,
        "wideband_input_buffer",
        "configure",
        &input_buffer_configuration(),
    )
    .expect(500);
    assert!(
        refused.error().contains("while in state ENABLED"),
        "{}",
        refused.text
    );
    assert_eq!(states(&emu, &STATEFUL), ["LINK", "ENABLED", "ENABLED"]);
    let listed = emu.get("/").expect(200).json()["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "wideband_input_buffer")
        .cloned()
        .unwrap();
    assert_eq!(listed["fault"], Value::Null, "{listed}");
    // And pulses leave it ENABLED.
    emu.pulse(2);
    assert_eq!(states(&emu, &STATEFUL), ["LINK", "ENABLED", "ENABLED"]);

    // 5. stop, then one more pulse.
    for block in STATEFUL {
        call_ok(&emu, block, "stop", &json!({}));
    }
    assert_eq!(
        states(&emu, &STATEFUL),
        ["RESET", "DISABLING", "DISABLING"],
        "before the pulse"
    );
    emu.pulse(1);
    assert_eq!(states(&emu, &STATEFUL), ["RESET", "RESET", "READY"]);
    assert_eq!(states(&emu, &CHANNELISER_PATH), ["ACTIVE"; 3]);
    // The configuration survives a stop.
    assert_configured_status(&emu);

    // And the cycle runs again.
    start(&emu);
}

#[test]
fn injections_and_signal_loss_move_the_real_blocks() {
    let emu = run_fixture("vcc_processing");
    bring_up(&emu);

    // Link badness degrades the link and recovers it.
    let badness = |b: f64| json!({"injection_type": "update_link_badness", "badness": b});
    inject(&emu, "ethernet_200g", "WARNING", &[badness(0.75)]);
    emu.wait_state("ethernet_200g", "DEGRADED");
    // A degraded link stays degraded through pulses with a signal.
    emu.pulse(2);
    assert_eq!(emu.block_state("ethernet_200g"), "DEGRADED");
    inject(&emu, "ethernet_200g", "WARNING", &[badness(0.25)]);
    emu.wait_state("ethernet_200g", "LINK");

    // No packets: the link is lost at the next pulse, and comes back.
    let signal = emu
        .put_json("/signal", &json!({"packet_rate": 0}))
        .expect(200)
        .json();
    assert_eq!(signal, json!({"packet_rate": 0}));
    emu.pulse(1);
    assert_eq!(emu.block_state("ethernet_200g"), "NO_LINK");
    assert_eq!(
        states(&emu, &STATEFUL[1..]),
        ["ENABLED", "ENABLED"],
        "enabled blocks stay enabled without packets"
    );
    emu.put_json("/signal", &json!({"packet_rate": 1_000_000}))
        .expect(200);
    emu.pulse(1);
    assert_eq!(states(&emu, &STATEFUL), ["LINK", "ENABLED", "ENABLED"]);

    // force_register_value sets a register of the input buffer.
    let force = |name: &str, value: Value| json!({"injection_type": "force_register_value", "register_name": name, "register_value": value});
    inject(
        &emu,
        "wideband_input_buffer",
        "WARNING",
        &[force("meta_dish_id", json!(2))],
    );
    let forced = wait_status(&emu, "wideband_input_buffer", "meta_dish_id 2", |s| {
        s["meta_dish_id"] == 2
    });
    // An unknown register (or a name that is no identifier) changes
    // nothing. Events to one block arrive in order, so once the marker
    // after them shows, they have been handled.
    inject(
        &emu,
        "wideband_input_buffer",
        "WARNING",
        &[
            force("no_such_register", json!(7)),
            force("meta dish id", json!(7)),
            force("meta_dish_id", json!(5)),
        ],
    );
    let mut marked = wait_status(&emu, "wideband_input_buffer", "the marker", |s| {
        s["meta_dish_id"] == 5
    });
    marked["meta_dish_id"] = json!(2);
    assert_eq!(marked, forced, "only the marker changed the status");
    inject(
        &emu,
        "wideband_input_buffer",
        "WARNING",
        &[force("meta_dish_id", json!(2))],
    );
    wait_status(&emu, "wideband_input_buffer", "meta_dish_id 2 again", |s| {
        s["meta_dish_id"] == 2
    });
    assert_eq!(status(&emu, "wideband_input_buffer"), forced);
    assert_eq!(emu.block_state("wideband_input_buffer"), "ENABLED");

    // A FATAL_ERROR injection faults a power meter, and only that one.
    inject(
        &emu,
        "fs7_wideband_power_meter",
        "FATAL_ERROR",
        &[json!({"injection_type": "die", "message": "fatal on purpose"})],
    );
    emu.wait_state("fs7_wideband_power_meter", "FAULT");
    emu.pulse(1);
    for block in [
        "fs6_wideband_power_meter",
        "fs8_wideband_power_meter",
        "packetizer",
    ] {
        assert_eq!(emu.block_state(block), "ACTIVE", "{block}");
    }
    assert_eq!(states(&emu, &STATEFUL), ["LINK", "ENABLED", "ENABLED"]);

    // A faulted Ethernet block is brought back by recover and start.
    inject(
        &emu,
        "ethernet_200g",
        "FATAL_ERROR",
        &[json!({"injection_type": "die"})],
    );
    emu.wait_state("ethernet_200g", "FAULT");
    emu.pulse(1);
    assert_eq!(emu.block_state("ethernet_200g"), "FAULT");
    call_ok(&emu, "ethernet_200g", "recover", &json!({}));
    assert_eq!(emu.block_state("ethernet_200g"), "RESET");
    call_ok(&emu, "ethernet_200g", "start", &json!({}));
    assert_eq!(emu.block_state("ethernet_200g"), "LINK");

    // power_cycle resets the input buffer.
    inject(
        &emu,
        "wideband_input_buffer",
        "WARNING",
        &[json!({"injection_type": "power_cycle"})],
    );
    emu.wait_state("wideband_input_buffer", "RESET");
}

// Step 6: bodies that break a route's schema --------------------------------

/// A body each route with a schema accepts, by block type and route.
fn valid_body(ip_block_type: &str, route: &str) -> Option<Value> {
    Some(match (ip_block_type, route) {
        ("ftile_ethernet", "configure" | "deconfigure") => json!({"rx_loopback_enable": true}),
        ("wideband_input_buffer", "configure") => input_buffer_configuration(),
        ("wideband_power_meter", "configure") => power_meter_configuration(),
        ("frequency_shifter", "configure") => json!({"shift_frequency": 1000.0}),
        ("vcc_ch20", "configure") => {
            json!({"sample_rate": SAMPLE_RATE, "pol": 1, "channel": 3, "gain": 0.25})
        }
        ("vcc_ch20", "deconfigure") => json!({"pol": 1, "channel": 3}),
        ("vcc_fs_selection", "configure" | "deconfigure") => {
            json!({"band_select": 2, "band_start_channel": [1, 2]})
        }
        ("packetizer", "configure") => json!({"vid": 3, "vcc_id": 4, "fs_id": 5}),
        ("circuit_switch", "configure") => json!({"output": 1, "input": 25}),
        ("circuit_switch", "deconfigure") => json!({"output": 1}),
        _ => return None,
    })
}

/// Whether `schema` accepts any JSON object (and nothing else).
fn any_object(schema: &Value) -> bool {
    schema["type"] == "object"
        && schema
            .as_object()
            .unwrap()
            .keys()
            .all(|k| ["$schema", "type", "title", "description"].contains(&k.as_str()))
}

/// Bodies that break the reference's rules in ways a generic reading of the
/// schema does not produce.
fn hand_written_bad_bodies(ip_block_type: &str, route: &str) -> Vec<Value> {
    match (ip_block_type, route) {
        ("ftile_ethernet", _) => vec![
            json!({"rx_loopback_enable": "false"}),
            json!({"rx_loopback_enable": 0}),
        ],
        ("wideband_input_buffer", "configure") => vec![
            json!({"expected_dish_band": 1}),
            json!({"expected_sample_rate": SAMPLE_RATE, "expected_dish_band": 0}),
            json!({"expected_sample_rate": SAMPLE_RATE, "expected_dish_band": 7}),
            json!({"expected_sample_rate": SAMPLE_RATE, "expected_dish_band": "1"}),
            json!({"expected_sample_rate": -1, "expected_dish_band": 1}),
            json!({"noise_diode_transition_holdoff_seconds": -1, "expected_dish_band": 1}),
            json!({"expected_sample_rate": 1.5, "expected_dish_band": 1}),
        ],
        ("wideband_power_meter", "configure") => vec![
            json!({"averaging_time": 1.0, "sample_rate": SAMPLE_RATE, "flagging": 3}),
            json!({"averaging_time": "1.0", "sample_rate": SAMPLE_RATE, "flagging": 0}),
            json!({"averaging_time": 1.0, "sample_rate": SAMPLE_RATE}),
            json!({"sample_rate": SAMPLE_RATE, "flagging": 0}),
        ],
        ("frequency_shifter", "configure") => vec![
            json!({}),
            json!({"shift_frequency": 1.5e8}),
            json!({"shift_frequency": -1.5e8}),
            json!({"shift_frequency": "0"}),
        ],
        ("vcc_ch20", "configure") => vec![
            json!({"sample_rate": 100}),
            json!({"sample_rate": -18}),
            json!({"pol": 0}),
            json!({"pol": 0, "channel": 1}),
            json!({"channel": 1, "gain": 1.0}),
            json!({"pol": 2, "channel": 0, "gain": 1.0}),
            json!({"pol": 0, "channel": 10, "gain": 1.0}),
            json!({"pol": 0, "channel": 0, "gain": "high"}),
        ],
        ("vcc_fs_selection", _) => vec![
            json!({"band_select": 0, "band_start_channel": [0, 1]}),
            json!({"band_select": 6, "band_start_channel": [0, 1]}),
            json!({"band_select": 1, "band_start_channel": [0, 3]}),
            json!({"band_select": 1, "band_start_channel": [0]}),
            json!({"band_select": 1, "band_start_channel": [0, 1, 2]}),
            json!({"band_select": 1}),
            json!({"band_start_channel": [0, 1]}),
            json!({"band_select": "1", "band_start_channel": [0, 1]}),
        ],
        ("packetizer", "configure") => vec![
            json!({"vid": 1, "vcc_id": 1}),
            json!({"vid": "1", "vcc_id": 1, "fs_id": 1}),
            json!({}),
        ],
        ("circuit_switch", "configure") => vec![
            json!({"output": 6, "input": 0}),
            json!({"output": 0, "input": 26}),
            json!({"output": -1, "input": 0}),
            json!({"output": 0}),
            json!({"output": "0", "input": 1}),
        ],
        ("circuit_switch", "deconfigure") => vec![json!({"output": 6}), json!({})],
        _ => vec![],
    }
}

/// A JSON value of each kind, for "wrong type" bodies.
fn values_of_each_kind() -> Vec<(&'static str, Value)> {
    vec![
        ("string", json!("x")),
        ("boolean", json!(true)),
        ("object", json!({"a": 1})),
        ("array", json!([1])),
        ("number", json!(1.5)),
        ("null", Value::Null),
    ]
}

/// Whether `value` is of JSON Schema type `kind`.
fn is_of_type(value: &Value, kind: &str) -> bool {
    match kind {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => true,
    }
}

/// A number just outside `bound` in direction `step`, integral when the
/// schema wants an integer.
fn beyond(bound: &Value, step: f64, integer: bool) -> Value {
    let bound = bound.as_f64().expect("a numeric bound");
    if integer {
        json!((bound + step).round() as i64)
    } else {
        json!(bound + step * bound.abs().max(1.0))
    }
}

/// Bad variants of the value `good` for a property of schema `schema`:
/// wrong types, just out of range, not in the enum, not a multiple.
fn bad_values(schema: &Value, good: &Value) -> Vec<(String, Value)> {
    let mut bad = Vec::new();
    let kinds: Vec<&str> = match &schema["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !kinds.is_empty() {
        for (name, value) in values_of_each_kind() {
            if !kinds.iter().any(|k| is_of_type(&value, k)) {
                bad.push((format!("a {name}"), value));
            }
        }
    }
    let integer = kinds == ["integer"];
    if let Some(min) = schema.get("minimum") {
        bad.push((
            format!("below the minimum {min}"),
            beyond(min, -1.0, integer),
        ));
    }
    if let Some(max) = schema.get("maximum") {
        bad.push((
            format!("above the maximum {max}"),
            beyond(max, 1.0, integer),
        ));
    }
    if let Some(options) = schema["enum"].as_array() {
        let outside = options
            .iter()
            .filter_map(Value::as_i64)
            .max()
            .map_or(json!("not one of them"), |m| json!(m + 1));
        bad.push(("not in the enum".to_owned(), outside));
    }
    if let (Some(step), Some(value)) = (schema["multipleOf"].as_i64(), good.as_i64()) {
        if step > 1 {
            bad.push((format!("not a multiple of {step}"), json!(value + 1)));
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), good.as_array()) {
        if let Some(first) = list.first() {
            for (what, item) in bad_values(items, first) {
                let mut changed = list.clone();
                changed[0] = item;
                bad.push((format!("item 0 {what}"), Value::Array(changed)));
            }
            if let Some(min) = schema["minItems"].as_u64().filter(|m| *m > 0) {
                bad.push((
                    format!("fewer than {min} items"),
                    Value::Array(list[..(min as usize - 1).min(list.len())].to_vec()),
                ));
            }
            if let Some(max) = schema["maxItems"].as_u64() {
                let mut longer = list.clone();
                longer.resize(max as usize + 1, first.clone());
                bad.push((format!("more than {max} items"), Value::Array(longer)));
            }
        }
    }
    bad
}

/// Bad bodies derived from a route's schema and a body it accepts: not an
/// object, each required property missing, each property made bad.
fn bad_bodies_from_schema(schema: &Value, valid: &Value) -> Vec<(String, Value)> {
    let mut bad = vec![
        ("a list".to_owned(), json!([valid])),
        ("a string".to_owned(), json!("configure")),
    ];
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().expect("a property name");
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(name);
        bad.push((format!("without {name}"), body));
    }
    let properties = schema["properties"].as_object().into_iter().flatten();
    for (name, property) in properties {
        let good = valid.get(name).cloned().unwrap_or(Value::Null);
        for (what, value) in bad_values(property, &good) {
            let mut body = valid.clone();
            body[name] = value;
            bad.push((format!("{name} {what}"), body));
        }
    }
    bad
}

/// The request body schema `GET /openapi.json` publishes for each route of
/// `block`, by route name (routes with a body only).
fn published_schemas(openapi: &Value, block: &str) -> BTreeMap<String, Value> {
    let mut schemas = BTreeMap::new();
    let prefix = format!("/{block}/");
    for (path, operations) in openapi["paths"].as_object().expect("paths") {
        let Some(route) = path.strip_prefix(&prefix) else {
            continue;
        };
        for operation in operations.as_object().unwrap().values() {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            if !schema.is_null() {
                schemas.insert(route.to_owned(), schema.clone());
            }
        }
    }
    schemas
}

/// Posts every bad body to every route of `block` that publishes a
/// non-empty schema; each must answer 400 with a message and leave the
/// block's state and status as they were. Answers what went wrong, and
/// checks a valid body is then accepted.
fn check_bad_bodies(emu: &Emulator, block: &str, ip_block_type: &str) -> Vec<String> {
    let openapi = emu.get("/openapi.json").expect(200).json();
    let schemas = published_schemas(&openapi, block);
    let mut problems = Vec::new();
    let mut checked = 0;
    for (route, schema) in &schemas {
        if schema.as_object().filter(|s| !s.is_empty()).is_none() {
            continue; // any body is accepted
        }
        let Some(valid) =
            valid_body(ip_block_type, route).or_else(|| any_object(schema).then(|| json!({})))
        else {
            problems.push(format!(
                "{block} ({ip_block_type}): route {route} publishes a schema but the test has no valid body for it: {schema}"
            ));
            continue;
        };
        let mut bodies = bad_bodies_from_schema(schema, &valid);
        bodies.extend(
            hand_written_bad_bodies(ip_block_type, route)
                .into_iter()
                .map(|b| ("(reference rule)".to_owned(), b)),
        );
        bodies.push(("no body at all".to_owned(), Value::Null));
        for (what, body) in bodies {
            let before = (emu.block_state(block), status(emu, block));
            let reply = if body.is_null() {
                emu.post(&format!("/{block}/{route}/"))
            } else {
                call(emu, block, route, &body)
            };
            checked += 1;
            let after = (emu.block_state(block), status(emu, block));
            let message = serde_json::from_str::<Value>(&reply.text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if reply.status != 400 || message.is_empty() {
                problems.push(format!(
                    "POST /{block}/{route}/ {body} ({what}): expected 400 with a message, got {} {}",
                    reply.status, reply.text
                ));
            }
            if before != after {
                problems.push(format!(
                    "POST /{block}/{route}/ {body} ({what}): changed the block from {before:?} to {after:?}"
                ));
            }
        }
        let reply = call(emu, block, route, &valid);
        if reply.status != 200 {
            problems.push(format!(
                "POST /{block}/{route}/ {valid} (valid): expected 200, got {} {}",
                reply.status, reply.text
            ));
        }
    }
    if checked == 0 {
        problems.push(format!("{block} ({ip_block_type}): no route with a schema"));
    }
    problems
}

#[test]
fn bodies_that_break_a_schema_answer_400_and_change_nothing() {
    let emu = run_fixture("vcc_processing");
    // One block of each type, in its initial state (the input buffer's
    // configure moves RESET -> CONFIGURING -> RESET on a bad body).
    let mut problems = Vec::new();
    for (block, ip_block_type) in [
        ("ethernet_200g", "ftile_ethernet"),
        ("wideband_input_buffer", "wideband_input_buffer"),
        ("b123_wideband_power_meter", "wideband_power_meter"),
        ("wideband_frequency_shifter", "frequency_shifter"),
        ("b123vcc", "vcc_ch20"),
        ("fs_selection_26_2_1", "vcc_fs_selection"),
        ("packetizer", "packetizer"),
        ("packet_validation", "packet_validation"),
    ] {
        problems.extend(check_bad_bodies(&emu, block, ip_block_type));
    }

    // packet_validation's configure and deconfigure accept any object.
    for route in ["configure", "deconfigure"] {
        let before = status(&emu, "packet_validation");
        call_ok(
            &emu,
            "packet_validation",
            route,
            &json!({"anything": [1, 2]}),
        );
        call_ok(&emu, "packet_validation", route, &json!({}));
        assert_eq!(status(&emu, "packet_validation"), before);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_bad_configure_of_a_ready_input_buffer_fails_configuring() {
    // The reference: configure fires CONFIGURE, then checks the body; a bad
    // body fires FAIL_CONFIGURING (-> RESET) and answers 400. The stored
    // configuration is untouched.
    let emu = run_fixture("vcc_processing");
    call_ok(
        &emu,
        "wideband_input_buffer",
        "configure",
        &input_buffer_configuration(),
    );
    assert_eq!(emu.block_state("wideband_input_buffer"), "READY");
    let before = status(&emu, "wideband_input_buffer");
    let reply = call(
        &emu,
        "wideband_input_buffer",
        "configure",
        &json!({"expected_sample_rate": SAMPLE_RATE, "expected_dish_band": 9}),
    )
    .expect(400);
    assert!(
        reply.error().contains("expected_dish_band"),
        "{}",
        reply.text
    );
    assert_eq!(emu.block_state("wideband_input_buffer"), "RESET");
    assert_eq!(status(&emu, "wideband_input_buffer"), before);
    call_ok(
        &emu,
        "wideband_input_buffer",
        "configure",
        &input_buffer_configuration(),
    );
    assert_eq!(emu.block_state("wideband_input_buffer"), "READY");
}

#[test]
fn the_circuit_switch_of_older_bitstreams() {
    // Used by neither real config: a one-block package as older configs had.
    let config = json!({
        "id": "vcc_processing", "version": "0.0.12", "first": ["circuit_switch_26_6"],
        "ip_blocks": [{"id": "circuit_switch_26_6", "type": "circuit_switch",
                       "constants": {"num_inputs": 26, "num_outputs": 6}, "downstream_block_ids": []}],
    });
    let emu = run_config(&config.to_string());
    let block = "circuit_switch_26_6";
    assert_eq!(emu.block_state(block), "ACTIVE");
    let initial = status(&emu, block);
    assert_eq!(initial["num_inputs"], 26, "{initial}");
    assert_eq!(initial["num_outputs"], 6, "{initial}");
    assert_eq!(initial["connected"], json!([]), "{initial}");

    let problems = check_bad_bodies(&emu, block, "circuit_switch");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // check_bad_bodies ended with the valid bodies: configure connected
    // output 1 to input 25, then deconfigure disconnected it.
    call_ok(&emu, block, "configure", &json!({"output": 0, "input": 5}));
    call_ok(&emu, block, "configure", &json!({"output": 5, "input": 25}));
    assert_eq!(
        status(&emu, block)["connected"],
        json!([{"output": 0, "input": 5}, {"output": 5, "input": 25}])
    );
    call_ok(&emu, block, "deconfigure", &json!({"output": 0}));
    assert_eq!(
        status(&emu, block)["connected"],
        json!([{"output": 5, "input": 25}])
    );
    call_ok(&emu, block, "recover", &json!({}));
    assert_eq!(status(&emu, block), initial);
}

#[test]
fn fan_in_both_packet_validators_feed_the_input_buffer() {
    let config = config("vcc_processing_fan_in");
    let validators: Vec<String> = config["ip_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "packet_validation")
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(validators, ["packet_validation_a", "packet_validation_b"]);
    let emu = run_fixture("vcc_processing_fan_in");

    let graph = emu.get("/graph").expect(200).json();
    let edges = graph["edges"].as_array().expect("edges");
    let into_buffer: Vec<&str> = edges
        .iter()
        .filter(|e| e["to"] == "wideband_input_buffer")
        .map(|e| e["from"].as_str().unwrap())
        .collect();
    assert_eq!(into_buffer, validators);
    for validator in &validators {
        assert!(
            edges.contains(&json!({"from": "ethernet_200g", "to": validator})),
            "{graph}"
        );
    }

    // No packets yet: everything started, the buffer waits in ENABLING.
    emu.put_json("/signal", &json!({"packet_rate": 0}))
        .expect(200);
    call_ok(&emu, "ethernet_200g", "recover", &json!({}));
    for validator in &validators {
        call_ok(&emu, validator, "recover", &json!({}));
    }
    call_ok(
        &emu,
        "wideband_input_buffer",
        "configure",
        &input_buffer_configuration(),
    );
    emu.pulse(2);
    call_ok(&emu, "ethernet_200g", "start", &json!({}));
    assert_eq!(emu.block_state("ethernet_200g"), "NO_LINK");
    for validator in &validators {
        call_ok(&emu, validator, "start", &json!({}));
    }
    call_ok(&emu, "wideband_input_buffer", "start", &json!({}));
    emu.pulse(3);
    let all = [
        "ethernet_200g",
        "packet_validation_a",
        "packet_validation_b",
        "wideband_input_buffer",
    ];
    assert_eq!(
        states(&emu, &all),
        ["NO_LINK", "ENABLING", "ENABLING", "ENABLING"]
    );

    // Packets: within one pulse they pass both validators and reach the
    // buffer downstream of both.
    emu.put_json("/signal", &json!({"packet_rate": 1_000_000}))
        .expect(200);
    emu.pulse(1);
    assert_eq!(
        states(&emu, &all),
        ["LINK", "ENABLED", "ENABLED", "ENABLED"]
    );

    // Stop, one pulse: RESET, RESET, RESET, READY.
    for block in all {
        call_ok(&emu, block, "stop", &json!({}));
    }
    emu.pulse(1);
    assert_eq!(states(&emu, &all), ["RESET", "RESET", "RESET", "READY"]);
}
