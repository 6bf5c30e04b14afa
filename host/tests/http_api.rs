//! End to end: the real `bitstream-emulator run` binary on a package built
//! from the fixture plugins (mostly the `probe`, whose blocks record every
//! event in their `log`), driven over HTTP on loopback.
//!
//! Most tests start with real-time pulses stopped and drive pulses with
//! `POST /pulse?count=N` (synchronous), so every assertion on a log is
//! exact. Timed behaviour (offsets, delays, timeouts) is measured against
//! deadlines, never with fixed long sleeps.

mod support;

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use bitstream_host::http::BODY_LIMIT;
use serde_json::{json, Value};
use support::{free_port, package, probe_package, run_to_exit, wait_for, Emulator, PATIENCE};

/// The default generated signal, as the probe logs it.
const DEFAULT_SIGNAL_LINE: &str = r#"signal [{"packet_rate":1000000}]"#;

/// `constants` with `name` set to `id`.
fn named(id: &str, constants: Value) -> Value {
    let mut constants = constants;
    constants["name"] = json!(id);
    constants
}

/// `a -> b`, `first: [a]`.
fn pair(a: Value, b: Value) -> Value {
    json!({
        "id": "probe_pair",
        "version": "0.0.1",
        "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": named("a", a)},
            {"id": "b", "type": "probe", "constants": named("b", b)},
        ],
    })
}

fn plain_pair() -> Value {
    pair(json!({}), json!({}))
}

/// The body of `POST /inject` with one group.
fn injection(emulator_id: &str, block: &str, events: Value) -> Value {
    json!({"injector_event_groups": [
        {"bitstream_emulator_id": emulator_id, "ip_block_emulator_id": block, "events": events}
    ]})
}

fn event(severity: &str, value: Value, offset: u64) -> Value {
    json!({"severity": severity, "value": value, "offset": offset})
}

/// The ids in a JSON list of strings or of objects with an `id`.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| {
            v.as_str()
                .or_else(|| v["id"].as_str())
                .unwrap_or_else(|| panic!("no id in {v}"))
                .to_owned()
        })
        .collect()
}

/// The listing entry of block `id` in `GET /`.
fn listed(index: &Value, id: &str) -> Value {
    index["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("block {id} not listed in {index}"))
        .clone()
}

/// Asserts `GET /graph`'s `pulse_order` visits every block once, upstream
/// before downstream, and among the blocks ready at each step takes the one
/// first in config order.
fn assert_pulse_order_rule(graph: &Value) {
    let nodes = ids(&graph["nodes"]);
    let order = ids(&graph["pulse_order"]);
    let edges: Vec<(String, String)> = graph["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_owned(),
                e["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted_order = order.clone();
    sorted_order.sort();
    let mut sorted_nodes = nodes.clone();
    sorted_nodes.sort();
    assert_eq!(sorted_order, sorted_nodes, "every block exactly once");
    let mut done: HashSet<&str> = HashSet::new();
    for visited in &order {
        let ready = |id: &String| {
            !done.contains(id.as_str())
                && edges
                    .iter()
                    .filter(|(_, to)| to == id)
                    .all(|(from, _)| done.contains(from.as_str()))
        };
        let expected = nodes.iter().find(|id| ready(id)).expect("a ready block");
        assert_eq!(visited, expected, "pulse order {order:?} (graph {graph})");
        done.insert(visited);
    }
}

// 1. Startup ------------------------------------------------------------

#[test]
fn startup_serves_state_listing_graph_diagram_and_openapi() {
    let emu = Emulator::start(&plain_pair(), &["--pulse-period-ms", "60000"]);
    assert_eq!(
        emu.get("/state").expect(200).json(),
        json!({"current_state": "RUNNING"})
    );
    for path in ["/a/state", "/a/state/", "/b/state/"] {
        assert_eq!(
            emu.get(path).expect(200).json(),
            json!({"current_state": "RESET"}),
            "{path}"
        );
    }

    let index = emu.get("/").expect(200).json();
    assert_eq!(ids(&index["blocks"]), ["a", "b"]);
    let routes_of_a: Vec<String> = listed(&index, "a")["routes"]
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
    assert_eq!(
        routes_of_a,
        [
            "GET status",
            "POST start",
            "POST stop",
            "POST configure",
            "GET echo/<item>",
            "POST checked",
            "GET whoami",
            "POST self_checked",
            "POST later",
            "POST panic",
            "POST hang",
            "POST fail",
            "POST log",
        ]
    );
    for id in ["a", "b"] {
        let block = listed(&index, id);
        assert_eq!(block["type"], "probe", "{block}");
        assert_eq!(block["current_state"], "RESET", "{block}");
        assert_eq!(block["hung"], Value::Null, "{block}");
        assert_eq!(block["fault"], Value::Null, "{block}");
    }
    assert_eq!(listed(&index, "a")["downstream_block_ids"], json!(["b"]));
    assert_eq!(index["current_state"], "RUNNING");

    let graph = emu.get("/graph").expect(200).json();
    assert_eq!(ids(&graph["nodes"]), ["a", "b"]);
    assert_eq!(graph["edges"], json!([{"from": "a", "to": "b"}]));
    assert_eq!(graph["first"], json!(["a"]));
    assert_eq!(graph["pulse_order"], json!(["a", "b"]));

    let dot = emu.get("/graph?format=dot").expect(200);
    assert!(
        dot.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/vnd.graphviz"),
        "{:?}",
        dot.headers
    );
    assert!(dot.text.starts_with("digraph "), "{}", dot.text);
    assert!(dot.text.contains("n0 -> n1;"), "{}", dot.text);
    assert!(dot.text.contains("\"__signal\" -> n0;"), "{}", dot.text);
    assert_eq!(emu.get("/graph?format=svg").status, 400);

    let mermaid = emu.get("/a/diagram?format=mermaid").expect(200).text;
    assert!(mermaid.contains("packet rate > 0"), "{mermaid}");
    assert!(mermaid.contains("packet rate = 0"), "{mermaid}");
    let dot = emu.get("/a/diagram").expect(200).text;
    assert!(dot.contains("RESET") && dot.contains("LINK"), "{dot}");

    let openapi = emu.get("/openapi.json").expect(200).json();
    assert_eq!(openapi["openapi"], "3.1.0");
    let paths = openapi["paths"].as_object().expect("paths");
    for id in ["a", "b"] {
        assert!(paths.contains_key(&format!("/{id}/state")), "/{id}/state");
        for route in &routes_of_a {
            let (method, route) = route.split_once(' ').unwrap();
            let path = format!("/{id}/{}", route.replace('<', "{").replace('>', "}"));
            let operation = paths
                .get(&path)
                .unwrap_or_else(|| panic!("no {path} in {:?}", paths.keys()));
            assert!(
                operation.get(method.to_ascii_lowercase()).is_some(),
                "{method} {path}: {operation}"
            );
        }
    }
    let echo = &paths["/a/echo/{item}"]["get"]["parameters"];
    assert_eq!(echo[0]["name"], "item");
    assert_eq!(echo[0]["in"], "path");
    for path in ["/state", "/start", "/stop", "/pulse", "/signal", "/inject"] {
        assert!(paths.contains_key(path), "{path}");
    }

    let stopped = Emulator::stopped(&plain_pair());
    assert_eq!(
        stopped.get("/state/").expect(200).json(),
        json!({"current_state": "STOPPED"})
    );
}

// 2. Fan-out, fan-in and the pulse order ----------------------------------

#[test]
fn fan_out_and_fan_in_deliver_in_config_order() {
    // src lists y first, but x comes first in the config.
    let config = json!({
        "id": "fan", "version": "0.0.1", "first": ["src"],
        "ip_blocks": [
            {"id": "src", "type": "probe", "downstream_block_ids": ["y", "x"], "constants": {"name": "src"}},
            {"id": "x", "type": "probe", "downstream_block_ids": ["sink"], "constants": {"name": "x", "add_signal": true}},
            {"id": "y", "type": "probe", "downstream_block_ids": ["sink"], "constants": {"name": "y", "add_signal": true}},
            {"id": "sink", "type": "probe", "constants": {"name": "sink"}},
        ],
    });
    let emu = Emulator::stopped(&config);
    let graph = emu.get("/graph").expect(200).json();
    assert_eq!(graph["pulse_order"], json!(["src", "x", "y", "sink"]));
    assert_pulse_order_rule(&graph);

    let run = emu.pulse(1);
    assert_eq!(run["total_pulses"], 1);
    assert_eq!(emu.log("src"), [DEFAULT_SIGNAL_LINE, "pulse 0"]);
    assert_eq!(
        emu.log("x"),
        [DEFAULT_SIGNAL_LINE, "pulse 0"],
        "x gets what src returned"
    );
    assert_eq!(emu.log("y"), [DEFAULT_SIGNAL_LINE, "pulse 0"]);
    // The sink gets the concatenation of what x and y returned, x first
    // (config order), then its pulse.
    assert_eq!(
        emu.log("sink"),
        [
            r#"signal [{"packet_rate":1000000},{"from":"x"},{"packet_rate":1000000},{"from":"y"}]"#,
            "pulse 0"
        ]
    );

    // A second pulse: each block again gets its signal update before its
    // pulse.
    emu.pulse(1);
    for block in ["src", "x", "y", "sink"] {
        let log = emu.log(block);
        assert_eq!(log.len(), 4, "{block}: {log:?}");
        assert!(log[2].starts_with("signal ["), "{block}: {log:?}");
        assert_eq!(log[3], "pulse 1", "{block}: {log:?}");
        assert_eq!(log[0], log[2], "{block}: same input both pulses");
    }
}

#[test]
fn pulse_order_follows_the_config_not_the_downstream_lists() {
    // Config order: sink, y, src, x. Pulse order: src (the only block
    // without upstream), then y before x (config order), then sink.
    let config = json!({
        "id": "shuffled", "version": "0.0.1", "first": ["src"],
        "ip_blocks": [
            {"id": "sink", "type": "probe", "constants": {"name": "sink"}},
            {"id": "y", "type": "probe", "downstream_block_ids": ["sink"], "constants": {"name": "y", "add_signal": true}},
            {"id": "src", "type": "probe", "downstream_block_ids": ["x", "y"], "constants": {"name": "src"}},
            {"id": "x", "type": "probe", "downstream_block_ids": ["sink"], "constants": {"name": "x", "add_signal": true}},
        ],
    });
    let emu = Emulator::stopped(&config);
    let graph = emu.get("/graph").expect(200).json();
    assert_eq!(graph["pulse_order"], json!(["src", "y", "x", "sink"]));
    assert_pulse_order_rule(&graph);
    emu.pulse(1);
    assert_eq!(
        emu.log("sink"),
        [
            r#"signal [{"packet_rate":1000000},{"from":"y"},{"packet_rate":1000000},{"from":"x"}]"#,
            "pulse 0"
        ]
    );
}

// 3. The generated signal --------------------------------------------------

#[test]
fn signal_defaults_config_section_and_put() {
    let emu = Emulator::stopped(&plain_pair());
    assert_eq!(
        emu.get("/signal").expect(200).json(),
        json!({"packet_rate": 1000000})
    );

    // One pulse while RESET gives a its last signal; start reaches LINK.
    emu.pulse(1);
    assert_eq!(emu.log("a"), [DEFAULT_SIGNAL_LINE, "pulse 0"]);
    emu.post("/a/start").expect(200);
    emu.wait_state("a", "LINK");

    let put = emu
        .put_json("/signal", &json!({"packet_rate": 0}))
        .expect(200);
    assert_eq!(put.json(), json!({"packet_rate": 0}));
    assert_eq!(
        emu.get("/signal").expect(200).json(),
        json!({"packet_rate": 0})
    );
    emu.clear_log("a");
    emu.clear_log("b");
    emu.pulse(1);
    assert_eq!(emu.log("a"), [r#"signal [{"packet_rate":0}]"#, "pulse 1"]);
    assert_eq!(emu.log("b"), [r#"signal [{"packet_rate":0}]"#, "pulse 1"]);
    assert_eq!(emu.block_state("a"), "READY");

    // Refusals name the problem and change nothing.
    let unknown = emu
        .put_json("/signal", &json!({"packet_rate": 5, "colour": "red"}))
        .expect(400);
    assert!(unknown.error().contains("colour"), "{}", unknown.text);
    let negative = emu
        .put_json("/signal", &json!({"packet_rate": -1}))
        .expect(400);
    assert!(
        negative.error().contains("packet_rate"),
        "{}",
        negative.text
    );
    let not_object = emu.put_json("/signal", &json!([1])).expect(400);
    assert!(not_object.error().contains("object"), "{}", not_object.text);
    emu.request(reqwest::Method::PUT, "/signal", Some(b"{bad".to_vec()))
        .expect(400);
    assert_eq!(
        emu.get("/signal").expect(200).json(),
        json!({"packet_rate": 0})
    );

    // A config `signal` section sets what the generator sends.
    let mut config = plain_pair();
    config["signal"] = json!({"packet_rate": 5});
    let five = Emulator::stopped(&config);
    assert_eq!(
        five.get("/signal").expect(200).json(),
        json!({"packet_rate": 5})
    );
    five.pulse(1);
    assert_eq!(five.log("a"), [r#"signal [{"packet_rate":5}]"#, "pulse 0"]);
}

#[test]
fn a_bad_signal_section_stops_startup() {
    for signal in [
        json!({"packet_rate": -5}),
        json!({"packet_rate": 5, "colour": 1}),
    ] {
        let mut config = plain_pair();
        config["signal"] = signal.clone();
        let package = probe_package(&config);
        let port = free_port();
        let failure = run_to_exit(&package, port, &["--stopped"]);
        assert!(!failure.status.success(), "{signal}: {:?}", failure.status);
        assert!(
            failure.stderr.contains("field \"signal\""),
            "{signal}: {}",
            failure.stderr
        );
        assert!(!failure.stderr.contains("serving "), "{}", failure.stderr);
    }
}

// 4. force_signal_update -----------------------------------------------------

#[test]
fn start_forces_a_signal_update_that_propagates_without_a_pulse() {
    let emu = Emulator::stopped(&plain_pair());
    emu.pulse(1);
    emu.clear_log("a");
    emu.clear_log("b");

    let start = emu.post("/a/start").expect(200);
    assert_eq!(start.json(), json!({"current_state": "READY"}));
    emu.wait_state("a", "LINK");
    // a re-ran its signal-update handler on the last signal it received.
    assert_eq!(emu.log("a"), [DEFAULT_SIGNAL_LINE]);
    // b gets a's new output, on the driver thread.
    let b_log = wait_for("b's propagated signal update", PATIENCE, || {
        let log = emu.log("b");
        (!log.is_empty()).then_some(log)
    });
    assert_eq!(b_log, [DEFAULT_SIGNAL_LINE]);
    // And no pulse ran.
    assert_eq!(emu.get("/").expect(200).json()["pulses"], 1);
    assert_eq!(emu.pulses("a"), 1);
    assert_eq!(emu.pulses("b"), 1);
    assert_eq!(emu.log("b"), [DEFAULT_SIGNAL_LINE]);
    assert_eq!(emu.block_state("b"), "RESET");

    // Starting again is refused by the block (409) and changes nothing.
    let again = emu.post("/a/start").expect(409);
    assert!(again.error().contains("LINK"), "{}", again.text);
}

// 5. Manual events -----------------------------------------------------------

#[test]
fn injections_reach_the_block_and_forward_downstream() {
    // a forwards, b does not, c is downstream of b.
    let config = json!({
        "id": "probe_chain", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": {"name": "a", "forward_manual": true}},
            {"id": "b", "type": "probe", "downstream_block_ids": ["c"], "constants": {"name": "b"}},
            {"id": "c", "type": "probe", "constants": {"name": "c"}},
        ],
    });
    let emu = Emulator::start(
        &config,
        &["--stopped", "--pulse-period-ms", "1000", "--id", "emu-1"],
    );
    let reply = emu
        .post_json(
            "/inject",
            &injection(
                "emu-1",
                "a",
                json!([event("WARNING", json!({"injection_type": "x"}), 0)]),
            ),
        )
        .expect(202);
    assert_eq!(reply.json(), json!({"scheduled": 1}));
    let b_log = wait_for("b's forwarded event", PATIENCE, || {
        let log = emu.log("b");
        (!log.is_empty()).then_some(log)
    });
    assert_eq!(
        b_log,
        [r#"manual INJECTION WARNING {"injection_type":"x","via":"a"}"#]
    );
    assert_eq!(
        emu.log("a"),
        [r#"manual INJECTION WARNING {"injection_type":"x"}"#]
    );

    // b does not forward: after a later event to c has arrived, c has
    // nothing else.
    emu.post_json(
        "/inject",
        &injection(
            "emu-1",
            "c",
            json!([event("GENERAL", json!({"marker": 1}), 0)]),
        ),
    )
    .expect(202);
    let c_log = wait_for("the marker at c", PATIENCE, || {
        let log = emu.log("c");
        (!log.is_empty()).then_some(log)
    });
    assert_eq!(c_log, [r#"manual INJECTION GENERAL {"marker":1}"#]);
    for block in ["a", "b", "c"] {
        assert_eq!(emu.block_state(block), "RESET", "{block}");
    }

    // A FATAL_ERROR faults a, and (forwarded with its severity) b.
    emu.post_json(
        "/inject",
        &injection(
            "emu-1",
            "a",
            json!([event("FATAL_ERROR", json!({"injection_type": "die"}), 0)]),
        ),
    )
    .expect(202);
    emu.wait_state("a", "FAULT");
    emu.wait_state("b", "FAULT");
    assert_eq!(
        emu.log("b").last().unwrap(),
        r#"manual INJECTION FATAL_ERROR {"injection_type":"die","via":"a"}"#
    );
    assert_eq!(emu.block_state("c"), "RESET");
}

#[test]
fn injection_offsets_delay_events() {
    let emu = Emulator::start(
        &plain_pair(),
        &["--stopped", "--pulse-period-ms", "1000", "--id", "emu-1"],
    );
    let body = injection(
        "emu-1",
        "a",
        json!([
            event("WARNING", json!({"n": 300}), 300),
            event("WARNING", json!({"n": 0}), 0),
        ]),
    );
    let sent = Instant::now();
    let reply = emu.post_json("/inject", &body).expect(202);
    assert_eq!(reply.json(), json!({"scheduled": 2}));
    let early = r#"manual INJECTION WARNING {"n":0}"#;
    let late = r#"manual INJECTION WARNING {"n":300}"#;
    let mut early_seen = None;
    let late_seen = wait_for("the offset-300 event", PATIENCE, || {
        let log = emu.log("a");
        let now = sent.elapsed();
        if early_seen.is_none() && log.iter().any(|l| l == early) {
            early_seen = Some(now);
        }
        log.iter().any(|l| l == late).then_some(now)
    });
    assert_eq!(emu.log("a"), [early, late], "offset 0 first");
    let early_seen = early_seen.expect("the offset-0 event was seen first");
    assert!(early_seen <= late_seen);
    // Seen at or after its delivery, which is at least 300 ms after the
    // request was sent.
    assert!(
        late_seen >= Duration::from_millis(300),
        "the offset-300 event was delivered after {late_seen:?}"
    );
}

#[test]
fn bad_injections_are_refused_and_schedule_nothing() {
    // Without --id the config's id is the emulator id.
    let emu = Emulator::stopped(&plain_pair());
    let good = event("WARNING", json!({"should": "not arrive"}), 0);

    let wrong_id = emu
        .post_json("/inject", &injection("other", "a", json!([good])))
        .expect(400);
    let message = wrong_id.error();
    assert!(
        message.contains("\"other\"") && message.contains("\"probe_pair\""),
        "{message}"
    );

    let unknown = emu
        .post_json("/inject", &injection("probe_pair", "nope", json!([good])))
        .expect(404);
    assert!(unknown.error().contains("nope"), "{}", unknown.text);
    assert_eq!(unknown.json()["blocks"], json!(["a", "b"]));

    let severity = emu
        .post_json(
            "/inject",
            &injection("probe_pair", "a", json!([event("LOUD", json!({}), 0)])),
        )
        .expect(400);
    assert!(severity.error().contains("LOUD"), "{}", severity.text);

    let negative = emu
        .post_json(
            "/inject",
            &injection(
                "probe_pair",
                "a",
                json!([{"severity": "WARNING", "value": {}, "offset": -1}]),
            ),
        )
        .expect(400);
    assert!(negative.error().contains("offset"), "{}", negative.text);

    for offset in [json!(1e30), json!(-1), json!("soon")] {
        let reply = emu.post_json(
            "/inject",
            &injection(
                "probe_pair",
                "a",
                json!([good, {"severity": "WARNING", "value": {}, "offset": offset}]),
            ),
        );
        assert_eq!(reply.status, 400, "offset {offset}: {}", reply.text);
        assert!(reply.error().contains("offset"), "{}", reply.text);
    }

    // Representable but beyond any clock: accepted, and it never comes.
    emu.post_json(
        "/inject",
        &injection(
            "probe_pair",
            "b",
            json!([{"severity": "WARNING", "value": {}, "offset": 1e22}]),
        ),
    )
    .expect(202);

    let malformed = emu
        .post_raw("/inject", r#"{"injector_event_groups": ["#)
        .expect(400);
    assert!(malformed.error().contains("/inject"), "{}", malformed.text);
    emu.post_json("/inject", &json!({"groups": []})).expect(400);

    // A good group followed by a bad one: nothing is scheduled.
    let mixed = |bad: Value| {
        json!({"injector_event_groups": [
            {"bitstream_emulator_id": "probe_pair", "ip_block_emulator_id": "a", "events": [good]},
            bad,
        ]})
    };
    emu.post_json(
        "/inject",
        &mixed(
            json!({"bitstream_emulator_id": "probe_pair", "ip_block_emulator_id": "b",
                      "events": [{"severity": "SEVERE", "value": {}}]}),
        ),
    )
    .expect(400);
    emu.post_json(
        "/inject",
        &mixed(
            json!({"bitstream_emulator_id": "probe_pair", "ip_block_emulator_id": "zz",
                      "events": [good]}),
        ),
    )
    .expect(404);
    emu.post_json(
        "/inject",
        &mixed(
            json!({"bitstream_emulator_id": "elsewhere", "ip_block_emulator_id": "b",
                      "events": [good]}),
        ),
    )
    .expect(400);

    // A good injection after them arrives alone: had anything above been
    // scheduled (offset 0, earlier), it would have been delivered first.
    emu.post_json(
        "/inject",
        &injection(
            "probe_pair",
            "a",
            json!([event("GENERAL", json!({"marker": true}), 0)]),
        ),
    )
    .expect(202);
    let log = wait_for("the marker", PATIENCE, || {
        let log = emu.log("a");
        (!log.is_empty()).then_some(log)
    });
    assert_eq!(log, [r#"manual INJECTION GENERAL {"marker":true}"#]);
    assert!(emu.log("b").is_empty());
}

// 6. delay_action ------------------------------------------------------------

#[test]
fn delayed_actions_run_after_their_delay() {
    let emu = Emulator::stopped(&plain_pair());
    let sent = Instant::now();
    let reply = emu.post("/a/later?ms=100").expect(202);
    assert!(reply.text.is_empty(), "{}", reply.text);
    let seen = wait_for("the delayed action", PATIENCE, || {
        let log = emu.log("a");
        let now = sent.elapsed();
        (!log.is_empty()).then_some((log, now))
    });
    assert_eq!(seen.0, ["delayed later"]);
    assert!(
        seen.1 >= Duration::from_millis(100),
        "ran after {:?}",
        seen.1
    );
    assert!(emu.log("b").is_empty());
}

// 7. Routes -----------------------------------------------------------------

#[test]
fn route_parameters_are_typed_and_checked() {
    let emu = Emulator::stopped(&plain_pair());
    assert_eq!(
        emu.get("/a/echo/hello?count=3&ratio=2.5&flag=true")
            .expect(200)
            .json(),
        json!({"item": "hello", "count": 3, "ratio": 2.5, "flag": true})
    );
    assert_eq!(
        emu.get("/a/echo/hello").expect(200).json(),
        json!({"item": "hello", "count": 1, "ratio": 0.5, "flag": false})
    );
    assert_eq!(
        emu.get("/b/echo/x%20y/?flag=false&count=-2")
            .expect(200)
            .json(),
        json!({"item": "x y", "count": -2, "ratio": 0.5, "flag": false})
    );
    for (query, name) in [
        ("count=abc", "count"),
        ("count=1.5", "count"),
        ("flag=maybe", "flag"),
        ("ratio=fast", "ratio"),
    ] {
        let reply = emu.get(&format!("/a/echo/hello?{query}")).expect(400);
        assert!(
            reply.error().contains(&format!("\"{name}\"")),
            "{query}: {}",
            reply.text
        );
    }
}

#[test]
fn the_host_checks_bodies_against_the_declared_schema() {
    let emu = Emulator::stopped(&plain_pair());
    let bad = emu
        .post_json("/a/checked", &json!({"level": 12}))
        .expect(400);
    assert_eq!(
        bad.error(),
        "invalid body: /level: 12 is greater than the maximum of 9"
    );
    let two = emu
        .post_json("/a/checked", &json!({"level": -1.5}))
        .expect(400);
    assert!(
        two.error()
            .contains("/level: -1.5 is not of type \"integer\""),
        "{}",
        two.text
    );
    assert!(
        two.error()
            .contains("/level: -1.5 is less than the minimum of 0"),
        "{}",
        two.text
    );
    let missing = emu.post_json("/a/checked", &json!({})).expect(400);
    assert!(
        missing.error().contains("\"level\" is a required property"),
        "{}",
        missing.text
    );
    emu.post_json("/a/checked", &json!({"level": 3}))
        .expect(200);
    // Only the good body reached the handler.
    let status = emu.get("/a/status").expect(200).json();
    let checked: Vec<&str> = status["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.starts_with("checked"))
        .collect();
    assert_eq!(checked, ["checked {\"level\":3}"]);
}

#[test]
fn plugin_code_gets_its_block_id_and_the_hosts_validator() {
    let emu = Emulator::stopped(&plain_pair());
    assert_eq!(emu.get("/a/whoami").expect(200).json(), json!("a"));
    assert_eq!(emu.get("/b/whoami").expect(200).json(), json!("b"));
    // JsonSchema::validate inside the plugin asks the host: same messages.
    let bad = emu
        .post_json("/a/self_checked", &json!({"level": 12}))
        .expect(400);
    assert_eq!(
        bad.error(),
        "invalid body: /level: 12 is greater than the maximum of 9"
    );
    emu.post_json("/a/self_checked", &json!({"level": 2}))
        .expect(200);
    let status = emu.get("/a/status").expect(200).json();
    let seen: Vec<&str> = status["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.starts_with("self_checked"))
        .collect();
    assert_eq!(seen, ["self_checked {\"level\":2}"]);
}

#[test]
fn route_errors_have_the_right_status() {
    let emu = Emulator::stopped(&plain_pair());

    let block = emu.get("/nope/status").expect(404);
    assert!(block.error().contains("nope"), "{}", block.text);
    assert_eq!(block.json()["blocks"], json!(["a", "b"]));
    emu.get("/nope/state").expect(404);

    let route = emu.get("/a/nope").expect(404);
    assert!(route.error().contains("nope"), "{}", route.text);
    let routes: Vec<String> = route.json()["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| r["route"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        routes.contains(&"status".to_owned()) && routes.contains(&"echo/<item>".to_owned()),
        "{routes:?}"
    );

    let method = emu.get("/a/start").expect(405);
    assert_eq!(method.headers["allow"], "POST");
    assert!(method.error().contains("GET"), "{}", method.text);
    let method = emu.post("/a/status").expect(405);
    assert_eq!(method.headers["allow"], "GET");
    emu.post("/state").expect(405);

    // Clients append a slash and POST `{}`.
    let start = emu.post_json("/a/start/", &json!({})).expect(200);
    assert_eq!(start.json(), json!({"current_state": "READY"}));
    emu.post("/a/start").expect(409);

    let malformed = emu.post_raw("/a/configure", "{bad").expect(400);
    assert!(
        malformed.error().contains("malformed JSON"),
        "{}",
        malformed.text
    );
    let wrong_type = emu
        .post_json("/a/configure", &json!({"pulse_sleep_ms": "slow"}))
        .expect(400);
    assert!(
        wrong_type.error().contains("pulse_sleep_ms"),
        "{}",
        wrong_type.text
    );
    emu.post_json("/a/configure", &json!({"colour": "red"}))
        .expect(400);
    emu.post("/a/configure").expect(400);
    assert_eq!(BODY_LIMIT, 1024 * 1024);
    let huge = vec![b' '; BODY_LIMIT + 1];
    let too_large = emu.post_raw("/a/configure", huge).expect(413);
    assert!(too_large.error().contains("limit"), "{}", too_large.text);
    // Bodies sent to routes that take none are ignored, but not huge ones.
    emu.post_raw("/a/stop", vec![b' '; BODY_LIMIT + 1])
        .expect(413);
    // None of these changed the block.
    assert_eq!(emu.status("a")["name"], "a");
    // (No pulse has run, so start's forced update saw no packet rate.)
    assert_eq!(emu.block_state("a"), "READY");

    let configured = emu
        .post_json(
            "/a/configure",
            &json!({"name": "renamed", "pulse_sleep_ms": 1}),
        )
        .expect(200);
    assert_eq!(configured.json(), json!({}));
    let status = emu.status("a");
    assert_eq!(status["name"], "renamed");
    assert_eq!(status["pulse_sleep_ms"], 1);
    // 4xx answers are normal replies: they do not fault the block.
    assert_eq!(
        listed(&emu.get("/").expect(200).json(), "a")["fault"],
        Value::Null
    );
}

#[test]
fn a_failing_route_answers_500_and_faults_the_block() {
    let emu = Emulator::stopped(&plain_pair());
    let fail = emu.post("/a/fail").expect(500);
    assert_eq!(fail.error(), "probe route failed");
    assert_eq!(emu.block_state("a"), "FAULT");
    let a = listed(&emu.get("/").expect(200).json(), "a");
    assert!(
        a["fault"]
            .as_str()
            .unwrap_or("")
            .contains("probe route failed"),
        "{a}"
    );
    assert_eq!(emu.block_state("b"), "RESET");
    // A faulted block still answers and receives pulses.
    emu.pulse(1);
    assert_eq!(emu.pulses("a"), 1);
    assert_eq!(emu.pulses("b"), 1);
}

#[test]
fn a_panicking_route_answers_500_faults_the_block_and_the_rest_goes_on() {
    let emu = Emulator::stopped(&plain_pair());
    emu.pulse(2);
    let panic = emu.post("/a/panic").expect(500);
    assert!(
        panic.error().contains("probe route panicked"),
        "{}",
        panic.text
    );
    assert_eq!(emu.block_state("a"), "FAULT");
    assert_eq!(
        emu.get("/b/echo/still?count=2").expect(200).json()["count"],
        2
    );
    assert_eq!(emu.block_state("b"), "RESET");
    emu.pulse(3);
    assert_eq!(emu.pulses("b"), 5);
    assert_eq!(emu.pulses("a"), 5);
    // The panic was caught inside the plugin: the process still serves.
    assert_eq!(emu.post("/a/panic").status, 500);
    assert_eq!(
        emu.get("/state").expect(200).json(),
        json!({"current_state": "STOPPED"})
    );
}

// 8. Hanging handlers --------------------------------------------------------

fn time<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = work();
    (value, started.elapsed())
}

#[test]
fn a_hanging_route_answers_504_and_only_its_block_is_hung() {
    let emu = Emulator::start(
        &plain_pair(),
        &[
            "--stopped",
            "--pulse-period-ms",
            "1000",
            "--handler-timeout-ms",
            "500",
        ],
    );
    let (hang, took) = time(|| emu.post("/a/hang"));
    let hang = hang.expect(504);
    assert!(hang.error().contains("hung"), "{}", hang.text);
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "504 after {took:?}"
    );

    let state = emu.get("/a/state").expect(503);
    assert!(state.error().contains("not responding"), "{}", state.text);
    emu.get("/a/status").expect(503);
    let index = emu.get("/").expect(200).json();
    assert!(listed(&index, "a")["hung"].is_string(), "{index}");
    assert_eq!(listed(&index, "b")["hung"], Value::Null, "{index}");

    let (b_state, took) = time(|| emu.block_state("b"));
    assert_eq!(b_state, "RESET");
    assert!(took < Duration::from_secs(2), "GET /b/state took {took:?}");
    let (echo, took) = time(|| emu.get("/b/echo/x").expect(200).json());
    assert_eq!(echo["item"], "x");
    assert!(took < Duration::from_secs(2), "GET /b/echo took {took:?}");

    let before = emu.pulses("b");
    let (_, took) = time(|| emu.pulse(3));
    assert!(took < Duration::from_secs(5), "3 pulses took {took:?}");
    assert_eq!(emu.pulses("b"), before + 3);
}

#[test]
fn a_hanging_pulse_handler_fails_the_pulse_and_the_others_go_on() {
    let config = json!({
        "id": "hang", "version": "0.0.1", "first": ["h", "b"],
        "ip_blocks": [
            {"id": "h", "type": "probe", "constants": {"name": "h", "hang_on_pulse": true}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
        ],
    });
    let emu = Emulator::start(
        &config,
        &[
            "--stopped",
            "--pulse-period-ms",
            "1000",
            "--handler-timeout-ms",
            "500",
        ],
    );
    let (reply, took) = time(|| emu.post("/pulse?count=1"));
    assert!(
        reply.status >= 500,
        "a hung pulse must fail: {} {}",
        reply.status,
        reply.text
    );
    assert!(reply.error().contains("\"h\""), "{}", reply.text);
    assert!(took < Duration::from_secs(10), "answered after {took:?}");

    let state = emu.get("/h/state").expect(503);
    assert!(state.error().contains("not responding"), "{}", state.text);
    let index = emu.get("/").expect(200).json();
    assert!(listed(&index, "h")["hung"].is_string(), "{index}");
    assert_eq!(listed(&index, "b")["hung"], Value::Null, "{index}");

    let before = emu.pulses("b");
    let (_, took) = time(|| emu.pulse(2));
    assert!(took < Duration::from_secs(5), "2 pulses took {took:?}");
    assert_eq!(emu.pulses("b"), before + 2);
    assert_eq!(emu.block_state("b"), "RESET");
}

#[test]
fn a_hang_after_an_earlier_one_is_still_detected() {
    // s's pulse (1.6 s) outlasts the handler timeout (1 s), so s is
    // declared hung after ~1 s and a new driver takes over; s's pulse then
    // returns while the new driver is stuck in h's pulse (entered at ~1.1 s,
    // declared hung at ~2.1 s). The old driver coming back must not make the
    // watchdog lose track of h, and each failed pulse names its own block.
    let config = json!({
        "id": "two_hangs", "version": "0.0.1", "first": ["s", "h", "b"],
        "ip_blocks": [
            {"id": "s", "type": "probe", "constants": {"name": "s", "pulse_sleep_ms": 1600}},
            {"id": "h", "type": "probe", "constants": {"name": "h", "hang_on_pulse": true}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
        ],
    });
    let emu = Emulator::start(
        &config,
        &[
            "--stopped",
            "--pulse-period-ms",
            "1000",
            "--handler-timeout-ms",
            "1000",
        ],
    );
    let first = emu.post("/pulse?count=1");
    assert!(first.status >= 500, "{} {}", first.status, first.text);
    assert!(first.error().contains("\"s\""), "{}", first.text);
    // s is skipped; h hangs while s's old pulse is still sleeping.
    let second = emu
        .try_post("/pulse?count=1", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("the second hang was never detected: {e}"));
    assert!(second.status >= 500, "{} {}", second.status, second.text);
    assert!(second.error().contains("\"h\""), "{}", second.text);
    emu.get("/h/state").expect(503);
    emu.get("/s/state").expect(503);

    let before = emu.pulses("b");
    emu.pulse(2);
    assert_eq!(emu.pulses("b"), before + 2);
}

// 9. Start and stop ----------------------------------------------------------

#[test]
fn stop_lets_the_pulse_in_flight_finish() {
    let config = json!({
        "id": "slow", "version": "0.0.1", "first": ["slow"],
        "ip_blocks": [
            {"id": "slow", "type": "probe", "downstream_block_ids": ["fast"], "constants": {"name": "slow", "pulse_sleep_ms": 300}},
            {"id": "fast", "type": "probe", "constants": {"name": "fast"}},
        ],
    });
    let emu = Emulator::start(&config, &["--pulse-period-ms", "50"]);
    assert_eq!(
        emu.get("/state").expect(200).json(),
        json!({"current_state": "RUNNING"})
    );
    // Pulses run back to back (each takes 300 ms > the period): once the
    // first is done, the next one is in flight.
    wait_for("the first pulse", PATIENCE, || {
        (emu.pulses("slow") >= 1).then_some(())
    });
    thread::sleep(Duration::from_millis(100));
    let (stop, took) = time(|| emu.post("/stop"));
    assert_eq!(stop.expect(202).json(), json!({"current_state": "STOPPED"}));
    assert!(took < Duration::from_secs(2), "POST /stop took {took:?}");
    assert_eq!(
        emu.get("/state").expect(200).json(),
        json!({"current_state": "STOPPED"})
    );

    // The pulse in flight reaches the end of the chain...
    let (slow, fast) = wait_for("the chain to finish its pulse", PATIENCE, || {
        let slow = emu.pulses("slow");
        let fast = emu.pulses("fast");
        (slow == fast).then_some((slow, fast))
    });
    assert!(slow >= 1);
    // ...and no pulse follows.
    thread::sleep(Duration::from_millis(400));
    assert_eq!((emu.pulses("slow"), emu.pulses("fast")), (slow, fast));
    let fast_log = emu.log("fast");
    assert_eq!(fast_log.last().unwrap(), &format!("pulse {}", fast - 1));

    let again = emu.post("/stop").expect(409);
    assert!(again.error().contains("not running"), "{}", again.text);
    assert_eq!(
        emu.post("/start").expect(202).json(),
        json!({"current_state": "RUNNING"})
    );
    let again = emu.post("/start").expect(409);
    assert!(again.error().contains("already running"), "{}", again.text);
    wait_for("pulses after the restart", PATIENCE, || {
        (emu.pulses("fast") > fast).then_some(())
    });
}

// 10. Terminate --------------------------------------------------------------

#[test]
fn terminate_ends_the_process_with_status_0() {
    let mut emu = Emulator::start(&plain_pair(), &["--pulse-period-ms", "50"]);
    wait_for("a real-time pulse", PATIENCE, || {
        (emu.pulses("b") >= 1).then_some(())
    });
    let reply = emu.post("/terminate").expect(202);
    assert_eq!(reply.json(), json!({"current_state": "TERMINATING"}));
    let status = emu.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "still running 10 s after /terminate; stderr:\n{}",
            emu.stderr()
        )
    });
    assert!(status.success(), "{status:?}; stderr:\n{}", emu.stderr());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", emu.port)).is_err(),
        "still listening"
    );
}

#[test]
fn terminate_ends_the_process_even_with_a_hung_route() {
    let mut emu = Emulator::start(
        &plain_pair(),
        &[
            "--stopped",
            "--pulse-period-ms",
            "1000",
            "--handler-timeout-ms",
            "300",
        ],
    );
    emu.post("/a/hang").expect(504);
    emu.post("/terminate").expect(202);
    let status = emu.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "still running 10 s after /terminate; stderr:\n{}",
            emu.stderr()
        )
    });
    assert!(status.success(), "{status:?}; stderr:\n{}", emu.stderr());
}

#[test]
fn terminate_stops_a_long_pulse_batch() {
    let mut emu = Emulator::stopped(&plain_pair());
    let base = emu.base.clone();
    // Far more pulses than can run in this test's lifetime.
    let batch = thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
            .post(format!("{base}/pulse?count=100000000"))
            .send()
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    });
    wait_for("the batch to start", PATIENCE, || {
        (emu.get("/").expect(200).json()["pulses"].as_u64().unwrap() > 0).then_some(())
    });
    emu.post("/terminate").expect(202);
    let status = emu.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "still running 10 s after /terminate; stderr:\n{}",
            emu.stderr()
        )
    });
    assert!(status.success(), "{status:?}; stderr:\n{}", emu.stderr());
    // The batch's request was answered (with the pulses that ran) or cut.
    if let Ok((code, text)) = batch.join().unwrap() {
        assert_eq!(code, 200, "{text}");
        let ran = serde_json::from_str::<Value>(&text).unwrap()["pulses"]
            .as_u64()
            .unwrap();
        assert!(ran < 100_000_000, "{text}");
    }
}

// 11. Logging ----------------------------------------------------------------

#[test]
fn plugin_logs_are_tagged_with_their_block() {
    let emu = Emulator::start(
        &plain_pair(),
        &[
            "--stopped",
            "--pulse-period-ms",
            "1000",
            "--log-level",
            "trace",
        ],
    );
    emu.post("/a/log").expect(200);
    let stderr = wait_for("the plugin's log lines", PATIENCE, || {
        let text = emu.stderr();
        text.contains("probe log critical").then_some(text)
    });
    let line = |needle: &str| -> String {
        stderr
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{stderr}"))
            .to_owned()
    };
    for (message, level) in [
        ("probe log trace", "TRACE"),
        ("probe log debug", "DEBUG"),
        ("probe log info", "INFO"),
        ("probe log warning", "WARN"),
        ("probe log error", "ERROR"),
        ("probe log critical", "ERROR"),
    ] {
        let line = line(message);
        assert!(line.contains(level), "{line}");
        assert!(line.contains(r#"block="a""#), "{line}");
    }
    assert!(line("probe log critical").contains("CRITICAL"));
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal colour codes when stderr is a pipe:\n{stderr:?}"
    );
}

// 12. Startup failures -------------------------------------------------------

fn assert_startup_fails(package: &tempfile::TempDir, expected: &str) {
    let port = free_port();
    let failure = run_to_exit(package, port, &["--stopped"]);
    assert!(
        !failure.status.success(),
        "{:?}; stderr:\n{}",
        failure.status,
        failure.stderr
    );
    assert!(
        failure.elapsed < Duration::from_secs(10),
        "took {:?}",
        failure.elapsed
    );
    assert!(
        failure.stderr.contains(expected),
        "expected {expected:?} in:\n{}",
        failure.stderr
    );
    assert!(
        failure.stderr.contains("cannot start the emulator"),
        "{}",
        failure.stderr
    );
    assert!(!failure.stderr.contains("serving "), "{}", failure.stderr);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on {port}"
    );
}

#[test]
fn a_broken_plugin_stops_startup() {
    let config = json!({
        "id": "broken", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["m"]},
            {"id": "m", "type": "broken"},
        ],
    });
    let package = package(
        &[("probe", "probe"), ("broken", "missing_api")],
        &config.to_string(),
    );
    assert_startup_fails(&package, "missing component `api`");
}

#[test]
fn a_cycle_stops_startup() {
    let config = json!({
        "id": "cycle", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"]},
            {"id": "b", "type": "probe", "downstream_block_ids": ["c"]},
            {"id": "c", "type": "probe", "downstream_block_ids": ["b"]},
        ],
    });
    assert_startup_fails(
        &probe_package(&config),
        "cycle in the signal chain: b -> c -> b",
    );
}

#[test]
fn a_type_without_an_emulator_stops_startup() {
    let config = json!({
        "id": "t", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [{"id": "a", "type": "vcc", "downstream_block_ids": []}],
    });
    assert_startup_fails(&probe_package(&config), "\"vcc\"");
}
