//! End to end: `GET /events` (Server-Sent Events) of the real
//! `bitstream-emulator run` binary over loopback, with the `probe` fixture
//! plugin. Reads are by hand on a `TcpStream` (`support::sse`), so a test
//! can be a client that does not read.

mod support;

use std::thread;

use serde_json::{json, Value};
use support::sse::{SseClient, SseEvent};
use support::{Emulator, PATIENCE};

/// Probe blocks `a -> b`, and two more named like the page's own routes
/// (`events`, `ui`), which must still be reachable as blocks.
fn config() -> Value {
    json!({
        "id": "events_test",
        "version": "0.0.1",
        "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": {"name": "a"}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
            {"id": "events", "type": "probe", "constants": {"name": "events"}},
            {"id": "ui", "type": "probe", "constants": {"name": "ui"}},
        ],
    })
}

fn subscribe(emu: &Emulator, query: &str) -> SseClient {
    let mut client = SseClient::connect(emu.port, &format!("/events{query}"), PATIENCE);
    let hello = client.next().expect("the subscribed event");
    assert_eq!(hello.event, "subscribed", "{hello:?}");
    client
}

fn expect_event(client: &mut SseClient) -> SseEvent {
    client
        .next_not_summary()
        .expect("an event before the stream ends")
}

#[test]
fn a_state_change_by_a_route_is_streamed_with_its_trigger() {
    let emu = Emulator::stopped(&config());
    let mut all = subscribe(&emu, "");
    let mut only_b = subscribe(&emu, "?block=b&kind=state");

    emu.post("/a/start").expect(200);
    let got = expect_event(&mut all);
    assert_eq!(got.event, "state");
    assert_eq!(got.data["kind"], "state");
    assert_eq!(got.data["block"], "a");
    assert_eq!(got.data["from"], "RESET");
    assert_eq!(got.data["to"], "READY");
    assert_eq!(got.data["trigger"], "START");
    assert!(got.data["seq"].as_u64().unwrap() >= 1, "{got:?}");
    assert!(got.data["time_ms"].as_u64().unwrap() > 0, "{got:?}");
    // a's start forces a signal update that reaches b? b is not started, so
    // it stays RESET; starting b is the next state change b's client sees.
    emu.post("/b/start").expect(200);
    let got = expect_event(&mut only_b);
    assert_eq!(
        (got.event.as_str(), &got.data["block"], &got.data["to"]),
        ("state", &json!("b"), &json!("READY")),
        "a's change is filtered out, b's comes first: {got:?}"
    );
}

#[test]
fn faults_recoveries_signal_changes_and_injections_are_streamed() {
    let emu = Emulator::stopped(&config());
    let mut client = subscribe(&emu, "?block=a&kind=state,fault,recovery,injection,signal");
    let mut signals = subscribe(&emu, "?kind=signal");

    emu.post("/a/fail").expect(500);
    let moved = expect_event(&mut client);
    assert_eq!(moved.event, "state");
    assert_eq!(
        (&moved.data["from"], &moved.data["to"]),
        (&json!("RESET"), &json!("FAULT"))
    );
    assert_eq!(
        moved.data["trigger"],
        Value::Null,
        "a fault is no trigger: {moved:?}"
    );
    let fault = expect_event(&mut client);
    assert_eq!(fault.event, "fault");
    assert!(
        fault.data["reason"]
            .as_str()
            .unwrap()
            .contains("route \"fail\""),
        "{fault:?}"
    );

    emu.post("/a/stop").expect(200);
    let state = expect_event(&mut client);
    assert_eq!(
        (&state.data["from"], &state.data["to"]),
        (&json!("FAULT"), &json!("RESET"))
    );
    let recovery = expect_event(&mut client);
    assert_eq!(recovery.event, "recovery");
    assert_eq!(recovery.data["trigger"], "STOP");

    emu.put_json("/signal", &json!({"packet_rate": 7}))
        .expect(200);
    let signal = expect_event(&mut signals);
    assert_eq!(signal.data["values"], json!({"packet_rate": 7}));
    assert_eq!(signal.data["block"], Value::Null);

    let body = json!({"injector_event_groups": [{
        "bitstream_emulator_id": "events_test",
        "ip_block_emulator_id": "a",
        "events": [{"severity": "WARNING", "value": {"x": 1}, "offset": 0}],
    }]});
    emu.post_json("/inject", &body).expect(202);
    let injection = expect_event(&mut client);
    assert_eq!(
        injection.event, "injection",
        "the signal change is about no block, so a block filter leaves it out: {injection:?}"
    );
    assert_eq!(injection.data["subtype"], "INJECTION");
    assert_eq!(injection.data["severity"], "WARNING");
    assert_eq!(injection.data["value"], json!({"x": 1}));
}

#[test]
fn a_hung_block_is_streamed_and_a_summary_comes_every_second() {
    let emu = Emulator::start(
        &config(),
        &["--pulse-period-ms", "10", "--handler-timeout-ms", "300"],
    );
    let mut hangs = subscribe(&emu, "?kind=hang");
    let mut summaries = subscribe(&emu, "?kind=summary");
    let reply = emu.post("/b/hang");
    assert_eq!(reply.status, 504, "{}", reply.text);
    let hang = hangs.next().expect("a hang event");
    assert_eq!(hang.event, "hang");
    assert_eq!(hang.data["block"], "b");
    assert!(
        hang.data["reason"].as_str().unwrap().contains("hang"),
        "{hang:?}"
    );

    let first = summaries.next().expect("a summary");
    let second = summaries.next().expect("another summary");
    assert_eq!(first.event, "summary");
    assert_eq!(first.data["run_state"], "RUNNING");
    let pulses = |e: &SseEvent| e.data["pulses"].as_u64().unwrap();
    assert!(
        pulses(&second) > pulses(&first),
        "{first:?} then {second:?}"
    );
    assert!(
        second.data["pulses_per_second"].as_f64().unwrap() > 0.0,
        "{second:?}"
    );
}

#[test]
fn bad_filters_answer_400_naming_the_parameter() {
    let emu = Emulator::stopped(&config());
    for (query, names) in [
        ("?kind=nope", "\"kind\""),
        ("?kind=", "\"kind\""),
        ("?block=nope", "\"block\""),
        ("?block=a,nope", "\"block\""),
        ("?buffer=0", "\"buffer\""),
        ("?buffer=lots", "\"buffer\""),
        ("?buffer=65537", "\"buffer\""),
        ("?since=3", "\"since\""),
    ] {
        let reply = emu.get(&format!("/events{query}")).expect(400);
        assert!(reply.error().contains(names), "{query}: {}", reply.text);
    }
    let reply = emu.get("/events?block=nope").expect(400);
    assert_eq!(reply.json()["blocks"], json!(["a", "b", "events", "ui"]));
    let reply = emu.get("/events?kind=nope").expect(400);
    assert!(reply.error().contains("plugin_swapped"), "{}", reply.text);
}

#[test]
fn blocks_named_events_and_ui_keep_their_routes() {
    let emu = Emulator::stopped(&config());
    assert_eq!(emu.block_state("events"), "RESET");
    assert_eq!(emu.block_state("ui"), "RESET");
    emu.post("/events/start").expect(200);
    emu.post("/ui/start").expect(200);
    assert_eq!(emu.block_state("events"), "READY");
    assert_eq!(emu.get("/ui/echo/x").expect(200).json()["item"], "x");
    let page = emu.get("/ui").expect(200);
    assert!(page.text.contains("<html"), "{}", page.text);
    let mut client = subscribe(&emu, "?block=events");
    emu.post("/events/stop").expect(200);
    assert_eq!(expect_event(&mut client).data["block"], "events");
}

/// The slow-client invariant: a client that stops reading is never waited
/// for. Its queue (here 16 events) keeps the newest; everything else it
/// wanted is counted, and the count reaches it as a `missed` event, so what
/// it read plus what it was told it missed is exactly what was emitted.
#[test]
fn a_slow_client_is_told_what_it_missed_and_the_engine_goes_on() {
    // Within the injection queue's bound (10,000 waiting events): a post
    // that finds the queue full (429) is sent again once it has drained.
    const POSTS: usize = 12;
    const PER_POST: usize = 5_000;
    const TOTAL: u64 = (POSTS * PER_POST) as u64;
    let emu = Emulator::stopped(&config());
    let mut slow = subscribe(&emu, "?kind=injection&buffer=16");
    // A client that keeps up, with room for every event: it sees each one.
    let mut fast = subscribe(&emu, &format!("?kind=injection&buffer={}", 65_536));
    let counter = thread::spawn(move || {
        let mut seen = 0u64;
        while seen < TOTAL {
            let event = fast.next().expect("the fast client's stream ended early");
            assert_eq!(
                event.event, "injection",
                "the fast client missed nothing: {event:?}"
            );
            seen += 1;
        }
        seen
    });

    let events: Vec<Value> = (0..PER_POST)
        .map(|n| json!({"severity": "GENERAL", "value": n, "offset": 0}))
        .collect();
    let body = json!({"injector_event_groups": [{
        "bitstream_emulator_id": "events_test",
        "ip_block_emulator_id": "b",
        "events": events,
    }]});
    for _ in 0..POSTS {
        let mut reply = emu.post_json("/inject", &body);
        for _ in 0..500 {
            if reply.status != 429 {
                break;
            }
            thread::sleep(std::time::Duration::from_millis(20));
            reply = emu.post_json("/inject", &body);
        }
        reply.expect(202);
    }
    assert_eq!(counter.join().unwrap(), TOTAL);
    // The engine was never held up by the client that reads nothing: the
    // injections were all delivered, and pulses still run.
    assert_eq!(emu.pulse(100)["pulses"], 100);

    let mut delivered = 0u64;
    let mut missed = 0u64;
    let mut notices = 0;
    while delivered + missed < TOTAL {
        let event = slow.next().expect("the slow client's stream ended early");
        match event.event.as_str() {
            "injection" => delivered += 1,
            "missed" => {
                notices += 1;
                missed += event.data["missed"].as_u64().unwrap();
            }
            other => panic!("unexpected {other}: {event:?}"),
        }
    }
    eprintln!("slow client: {delivered} delivered, {missed} missed in {notices} notices");
    assert_eq!(delivered + missed, TOTAL);
    assert!(
        notices >= 1 && missed > 0,
        "{delivered} delivered, {missed} missed"
    );
}

#[test]
fn terminate_ends_every_stream_and_the_process() {
    let mut emu = Emulator::stopped(&config());
    let mut client = subscribe(&emu, "");
    emu.post("/terminate").expect(202);
    while client.next().is_some() {}
    let status = emu.wait_exit(PATIENCE).expect("the process exits");
    assert!(status.success(), "{status:?}");
}
