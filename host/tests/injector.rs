//! The standalone injector end to end: real `bitstream-emulator run`
//! processes on probe packages (whose blocks record every manual event in
//! their `log`), a real `bitstream-emulator injector` in front of them, over
//! loopback HTTP; and the injector in-process with an in-process emulator.

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitstream_host::engine::block_buffer::BufferMode;
use bitstream_host::engine::{Emulator as Engine, EngineOptions};
use bitstream_host::injector::{self, InjectorOptions, Target, Targets};
use serde_json::{json, Value};
use support::{free_port, lines, probe_package, wait_for, Emulator, BINARY, PATIENCE};
use wait_timeout::ChildExt;

/// `a -> b`, both probes.
fn pair() -> Value {
    json!({
        "id": "probe_pair", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": {"name": "a"}},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
        ],
    })
}

/// A probe pair served by `bitstream-emulator run --id <id>`, pulses stopped.
fn emulator(id: &str) -> Emulator {
    Emulator::start(
        &pair(),
        &["--stopped", "--pulse-period-ms", "1000", "--id", id],
    )
}

/// `bitstream-emulator injector` on a free port, with `--emulator` for each
/// `(id, url)`.
fn injector(emulators: &[(&str, &str)], extra: &[&str]) -> Emulator {
    let specs: Vec<String> = emulators
        .iter()
        .map(|(id, url)| format!("{id}={url}"))
        .collect();
    let mut args = vec!["injector", "--bind", "127.0.0.1:0"];
    for spec in &specs {
        args.extend(["--emulator", spec.as_str()]);
    }
    args.extend_from_slice(extra);
    Emulator::start_command(&args)
}

fn group(emulator: &str, block: &str, events: Value) -> Value {
    json!({"bitstream_emulator_id": emulator, "ip_block_emulator_id": block, "events": events})
}

fn event(severity: &str, value: Value, offset: u64) -> Value {
    json!({"severity": severity, "value": value, "offset": offset})
}

fn body(groups: Vec<Value>) -> Value {
    json!({ "injector_event_groups": groups })
}

/// Waits until `block`'s log on `emu` has `count` lines, and answers it.
fn log_of(emu: &Emulator, block: &str, count: usize) -> Vec<String> {
    wait_for(&format!("{count} lines in {block}'s log"), PATIENCE, || {
        let log = emu.log(block);
        (log.len() >= count).then_some(log)
    })
}

/// The `groups` entries of an answer.
fn groups(answer: &Value) -> Vec<Value> {
    answer["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups in {answer}"))
        .clone()
}

#[test]
fn groups_for_two_emulators_reach_their_blocks_and_an_unknown_one_is_reported() {
    let one = emulator("emu-1");
    let two = emulator("emu-2");
    let inj = injector(&[("emu-1", &one.base), ("emu-2", &two.base)], &[]);

    // GET / lists the emulators and where they are.
    let index = inj.get("/").expect(200).json();
    assert_eq!(
        index["emulators"],
        json!([{"id": "emu-1", "target": one.base}, {"id": "emu-2", "target": two.base}])
    );

    let sent = Instant::now();
    let reply = inj.post_json(
        "/inject",
        &body(vec![
            group(
                "emu-1",
                "a",
                json!([
                    event("WARNING", json!({"n": "late"}), 300),
                    event("WARNING", json!({"n": 1}), 0)
                ]),
            ),
            group(
                "emu-2",
                "b",
                json!([event("GENERAL", json!({"injection_type": "x"}), 0)]),
            ),
            group("ghost", "a", json!([event("WARNING", json!({}), 0)])),
            group("emu-1", "a", json!([event("WARNING", json!({"n": 2}), 0)])),
        ]),
    );
    // The only failure is the unknown emulator: its status, 404.
    assert_eq!(reply.status, 404, "{}", reply.text);
    let answer = reply.json();
    let entries = groups(&answer);
    assert_eq!(entries.len(), 4, "one entry per group: {answer}");
    for (i, (emulator, block, events, status)) in [
        ("emu-1", "a", 2, 202),
        ("emu-2", "b", 1, 202),
        ("ghost", "a", 1, 404),
        ("emu-1", "a", 1, 202),
    ]
    .into_iter()
    .enumerate()
    {
        let entry = &entries[i];
        assert_eq!(entry["group"], i, "{entry}");
        assert_eq!(entry["bitstream_emulator_id"], emulator, "{entry}");
        assert_eq!(entry["ip_block_emulator_id"], block, "{entry}");
        assert_eq!(entry["events"], events, "{entry}");
        assert_eq!(entry["status"], status, "{entry}");
        let delivered = status == 202;
        assert_eq!(entry["delivered"], delivered, "{entry}");
        assert_eq!(entry["scheduled"], if delivered { events } else { 0 });
    }
    assert_eq!(entries[0]["target"], one.base);
    let ghost = entries[2]["error"].as_str().expect("an error for ghost");
    assert!(
        ghost.contains("\"ghost\"") && ghost.contains("emu-1, emu-2"),
        "{ghost}"
    );
    assert_eq!(answer["scheduled"], 4);
    assert_eq!(answer["failed_groups"], 1);
    assert!(
        answer["error"].as_str().unwrap().contains("ghost"),
        "{answer}"
    );

    // emu-1's groups arrived in request order, its offset held; emu-2's
    // block got its event; nothing went elsewhere.
    let log = log_of(&one, "a", 3);
    let seen = sent.elapsed();
    assert_eq!(
        log,
        [
            r#"manual INJECTION WARNING {"n":1}"#,
            r#"manual INJECTION WARNING {"n":2}"#,
            r#"manual INJECTION WARNING {"n":"late"}"#,
        ]
    );
    assert!(
        seen >= Duration::from_millis(300),
        "late event after {seen:?}"
    );
    assert_eq!(
        log_of(&two, "b", 1),
        [r#"manual INJECTION GENERAL {"injection_type":"x"}"#]
    );
    assert!(one.log("b").is_empty() && two.log("a").is_empty());

    // Every group delivered: 202, as an emulator's own /inject; the
    // trailing slash is accepted as the emulators accept it.
    let reply = inj
        .post_json(
            "/inject/",
            &body(vec![group(
                "emu-2",
                "a",
                json!([event("FATAL_ERROR", json!({"die": true}), 0)]),
            )]),
        )
        .expect(202);
    assert_eq!(reply.json()["failed_groups"], 0);
    assert!(reply.json().get("error").is_none(), "{}", reply.text);
    two.wait_state("a", "FAULT");
}

#[test]
fn an_emulator_that_is_down_fails_its_groups_only() {
    let up = emulator("emu-up");
    let down_url = format!("http://127.0.0.1:{}", free_port());
    let inj = injector(&[("emu-up", &up.base), ("emu-down", &down_url)], &[]);
    let reply = inj.post_json(
        "/inject",
        &body(vec![
            group(
                "emu-down",
                "a",
                json!([event("WARNING", json!({"n": 0}), 0)]),
            ),
            group("emu-up", "b", json!([event("WARNING", json!({"n": 1}), 0)])),
            group(
                "emu-down",
                "b",
                json!([event("WARNING", json!({"n": 2}), 0)]),
            ),
        ]),
    );
    assert_eq!(reply.status, 502, "{}", reply.text);
    let entries = groups(&reply.json());
    for i in [0, 2] {
        assert_eq!(entries[i]["status"], 502, "{}", entries[i]);
        assert_eq!(entries[i]["delivered"], false);
        let error = entries[i]["error"].as_str().unwrap();
        assert!(
            error.contains("emu-down") && error.contains(&down_url),
            "{error}"
        );
    }
    assert_eq!(entries[1]["status"], 202, "{}", entries[1]);
    assert_eq!(log_of(&up, "b", 1), [r#"manual INJECTION WARNING {"n":1}"#]);
}

#[test]
fn an_emulator_that_refuses_a_group_schedules_none_of_its_groups_and_says_which() {
    let one = emulator("emu-1");
    let two = emulator("emu-2");
    // emu-3 is given emu-1's URL by mistake.
    let inj = injector(
        &[
            ("emu-1", &one.base),
            ("emu-2", &two.base),
            ("emu-3", &one.base),
        ],
        &[],
    );
    let reply = inj.post_json(
        "/inject",
        &body(vec![
            group("emu-2", "a", json!([event("WARNING", json!({"n": 0}), 0)])),
            group("emu-1", "a", json!([event("WARNING", json!({"n": 1}), 0)])),
            group(
                "emu-1",
                "nope",
                json!([event("WARNING", json!({"n": 2}), 0)]),
            ),
        ]),
    );
    assert_eq!(reply.status, 404, "{}", reply.text);
    let entries = groups(&reply.json());
    assert_eq!(entries[0]["status"], 202);
    let culprit = &entries[2];
    assert_eq!(culprit["status"], 404);
    assert!(
        culprit["error"].as_str().unwrap().contains("\"nope\""),
        "{culprit}"
    );
    assert_eq!(culprit["blocks"], json!(["a", "b"]));
    let bystander = entries[1]["error"].as_str().unwrap();
    assert!(
        bystander.contains("injector_event_groups[2]"),
        "{bystander}"
    );
    assert_eq!(
        log_of(&two, "a", 1),
        [r#"manual INJECTION WARNING {"n":0}"#]
    );
    // emu-1 scheduled nothing: a later marker is the first thing a sees.
    inj.post_json(
        "/inject",
        &body(vec![group(
            "emu-1",
            "a",
            json!([event("GENERAL", json!({"marker": 1}), 0)]),
        )]),
    )
    .expect(202);
    assert_eq!(
        log_of(&one, "a", 1),
        [r#"manual INJECTION GENERAL {"marker":1}"#]
    );

    // The emulator behind a wrong URL refuses groups naming another id,
    // and says which emulator it is.
    let wrong = inj
        .post_json(
            "/inject",
            &body(vec![group(
                "emu-3",
                "a",
                json!([event("GENERAL", json!({"marker": 2}), 0)]),
            )]),
        )
        .expect(400);
    let error = groups(&wrong.json())[0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("\"emu-3\"") && error.contains("is not this emulator (\"emu-1\")"),
        "{error}"
    );
    assert_eq!(one.log("a").len(), 1, "nothing more reached emu-1");
}

#[test]
fn a_bad_body_is_refused_whole_naming_the_problem() {
    let one = emulator("emu-1");
    let inj = injector(&[("emu-1", &one.base)], &[]);
    let malformed = inj
        .post_raw("/inject", r#"{"injector_event_groups": ["#)
        .expect(400);
    assert!(
        malformed.error().contains("POST /inject"),
        "{}",
        malformed.text
    );
    let missing = inj.post_json("/inject", &json!({"groups": []})).expect(400);
    assert!(
        missing.error().contains("injector_event_groups"),
        "{}",
        missing.text
    );
    // A bad event in the second group: the first, good one is not handed
    // on either.
    let bad = inj
        .post_json(
            "/inject",
            &body(vec![
                group("emu-1", "a", json!([event("WARNING", json!({"n": 0}), 0)])),
                group("emu-1", "b", json!([event("LOUD", json!({}), 0)])),
            ]),
        )
        .expect(400);
    let error = bad.error();
    assert!(
        error.contains("injector_event_groups[1].events[0]") && error.contains("LOUD"),
        "{error}"
    );
    let far = inj
        .post_json(
            "/inject",
            &body(vec![group(
                "emu-1",
                "a",
                json!([{"severity": "WARNING", "value": {}, "offset": -5}]),
            )]),
        )
        .expect(400);
    assert!(far.error().contains("offset"), "{}", far.text);
    // The emulators' body limit, and JSON errors elsewhere.
    let huge = vec![b' '; bitstream_host::http::BODY_LIMIT + 1];
    inj.post_raw("/inject", huge).expect(413);
    inj.get("/inject").expect(405);
    let nowhere = inj.get("/a/state").expect(404);
    assert_eq!(nowhere.json()["emulators"], json!(["emu-1"]));
    // Nothing reached the emulator: a marker is the first thing a sees.
    inj.post_json(
        "/inject",
        &body(vec![group(
            "emu-1",
            "a",
            json!([event("GENERAL", json!({"marker": 1}), 0)]),
        )]),
    )
    .expect(202);
    assert_eq!(
        log_of(&one, "a", 1),
        [r#"manual INJECTION GENERAL {"marker":1}"#]
    );
    assert!(one.log("b").is_empty());
    inj.get("/openapi.json").expect(200).json()["paths"]["/inject"]["post"]
        .as_object()
        .expect("POST /inject documented");
}

/// `bitstream-emulator <args>` expected to exit by itself: its status and
/// stderr.
fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bitstream-emulator");
    let status = match child.wait_timeout(PATIENCE).expect("waiting") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            panic!("bitstream-emulator {args:?} did not exit");
        }
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn bad_emulator_arguments_are_refused_with_a_clear_message() {
    for (spec, expected) in [
        ("emu-1", "<id>=<url>"),
        ("emu-1=127.0.0.1:5001", "http://"),
        ("emu-1=https://127.0.0.1:5001", "\"https\""),
        ("=http://127.0.0.1:5001", "empty"),
    ] {
        let (status, stderr) =
            run_to_exit(&["injector", "--bind", "127.0.0.1:0", "--emulator", spec]);
        assert!(!status.success(), "{spec}: {status}");
        assert!(
            stderr.contains("--emulator") && stderr.contains(expected),
            "{spec}: {stderr}"
        );
    }
    let (status, stderr) = run_to_exit(&[
        "injector",
        "--bind",
        "127.0.0.1:0",
        "--emulator",
        "emu-1=http://127.0.0.1:5001",
        "--emulator",
        "emu-2=http://127.0.0.1:5002",
        "--emulator",
        "emu-1=http://127.0.0.1:5003",
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("\"emu-1\" is given twice") && stderr.contains(":5003"),
        "{stderr}"
    );
    let (status, stderr) = run_to_exit(&["injector", "--bind", "127.0.0.1:0"]);
    assert!(!status.success());
    assert!(stderr.contains("--emulator"), "{stderr}");
}

#[test]
fn in_process_and_remote_emulators_behind_one_injector() {
    let package = probe_package(&pair());
    let local = Arc::new(
        Engine::load(
            package.path(),
            EngineOptions {
                id: "emu-local".into(),
                pulse_period: None,
                start_running: false,
                buffers: BufferMode::Local,
                ..Default::default()
            },
        )
        .expect("loading the probe pair"),
    );
    let remote = emulator("emu-remote");
    let mut targets = Targets::new();
    targets.add_in_process(local.clone()).unwrap();
    targets
        .add(
            "emu-remote",
            Target::Remote(injector::RemoteEmulator::parse(&remote.base).unwrap()),
        )
        .unwrap();
    assert!(
        targets.add_in_process(local.clone()).is_err(),
        "a duplicate"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(injector::serve(
        listener,
        targets,
        InjectorOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let reply = client
        .post(format!("{base}/inject"))
        .json(&body(vec![
            group(
                "emu-local",
                "b",
                json!([
                    event("WARNING", json!({"n": 1}), 0),
                    event("WARNING", json!({"n": 2}), 50)
                ]),
            ),
            group(
                "emu-remote",
                "a",
                json!([event("WARNING", json!({"n": 3}), 0)]),
            ),
            group("emu-local", "zz", json!([])),
        ]))
        .send()
        .unwrap();
    let status = reply.status().as_u16();
    let answer: Value = reply.json().unwrap();
    // An unknown block at the in-process emulator: 404 naming it, and its
    // other group not scheduled; the remote one delivered.
    assert_eq!(status, 404, "{answer}");
    let entries = groups(&answer);
    assert_eq!(entries[0]["target"], "in-process");
    assert_eq!(entries[0]["status"], 404);
    assert!(entries[0]["error"]
        .as_str()
        .unwrap()
        .contains("injector_event_groups[2]"));
    assert!(
        entries[2]["error"].as_str().unwrap().contains("\"zz\""),
        "{answer}"
    );
    assert_eq!(entries[2]["blocks"], json!(["a", "b"]));
    assert_eq!(entries[1]["status"], 202, "{answer}");
    assert_eq!(
        log_of(&remote, "a", 1),
        [r#"manual INJECTION WARNING {"n":3}"#]
    );

    let reply = client
        .post(format!("{base}/inject"))
        .json(&body(vec![group(
            "emu-local",
            "b",
            json!([
                event("WARNING", json!({"n": 2}), 50),
                event("WARNING", json!({"n": 1}), 0)
            ]),
        )]))
        .send()
        .unwrap();
    assert_eq!(reply.status().as_u16(), 202);
    let b = local.block_index("b").unwrap();
    let log = wait_for("both events at the in-process block", PATIENCE, || {
        let snapshot = serde_json::to_value(local.block_snapshot(b).ok()?).ok()?;
        let log = lines(&snapshot["log"]);
        (log.len() >= 2).then_some(log)
    });
    assert_eq!(
        log,
        [
            r#"manual INJECTION WARNING {"n":1}"#,
            r#"manual INJECTION WARNING {"n":2}"#,
        ]
    );

    stop.send(()).unwrap();
    runtime
        .block_on(server)
        .expect("the server task")
        .expect("the injector served");
    local.terminate();
}

#[test]
fn an_emulator_that_never_answers_is_reported_504_after_the_forward_timeout() {
    let up = emulator("emu-up");
    // Accepts connections (the kernel does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let inj = injector(
        &[("emu-up", &up.base), ("emu-silent", &silent_url)],
        &["--forward-timeout-ms", "300"],
    );
    let reply = inj.post_json(
        "/inject",
        &body(vec![
            group("emu-silent", "a", json!([event("WARNING", json!({}), 0)])),
            group("emu-up", "a", json!([event("WARNING", json!({"n": 1}), 0)])),
        ]),
    );
    assert_eq!(reply.status, 504, "{}", reply.text);
    let entries = groups(&reply.json());
    assert_eq!(entries[0]["status"], 504);
    let error = entries[0]["error"].as_str().unwrap();
    assert!(
        error.contains("within 300 ms") && error.contains("emu-silent"),
        "{error}"
    );
    assert_eq!(entries[1]["status"], 202);
    assert_eq!(log_of(&up, "a", 1), [r#"manual INJECTION WARNING {"n":1}"#]);
    drop(silent);
}
