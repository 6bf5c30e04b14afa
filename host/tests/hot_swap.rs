//! Hot-swap end to end: the real `bitstream-emulator run` binary swaps the
//! `probe` plugin of a running package to `probe_v2` (a new route, one more
//! state, a restore that records where it came from), to each broken
//! fixture (which must leave the old version serving), back (rollback), from
//! a watched file written in chunks, and to recover a hung block.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use support::{
    fixture, package, probe_pair_config, wait_for, workspace_dir, Emulator, BINARY, PATIENCE,
};

/// A running `a -> b` probe package whose blocks have a device buffer (the
/// `registers` catalog beside the library), with `args`; answers the
/// emulator and the probe's emulator folder.
fn start(args: &[&str]) -> (Emulator, PathBuf) {
    let dir = package(&[("probe", "probe")], &probe_pair_config("swap_pair"));
    let folder = dir.path().join("emulators/probe/emulator");
    std::fs::copy(
        workspace_dir().join("fixtures/plugins/registers/src/catalog.json"),
        folder.join("catalog.json"),
    )
    .expect("copying the catalog");
    let mut all = vec!["--local-buffers", "--handler-timeout-ms", "2000"];
    all.extend_from_slice(args);
    (Emulator::start_package(dir, &all), folder)
}

/// `GET /plugins`' entry for `probe`.
#[track_caller]
fn probe_status(emu: &Emulator) -> Value {
    let all = emu.get("/plugins").expect(200).json();
    all["plugins"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["ip_block_type"] == "probe"))
        .cloned()
        .unwrap_or_else(|| panic!("no probe in {all}"))
}

/// `POST /plugins/probe/reload` with `body`.
fn reload(emu: &Emulator, body: Value) -> support::Reply {
    emu.post_json("/plugins/probe/reload", &body)
}

fn path_of(name: &str) -> Value {
    json!(fixture(name))
}

/// Brings block `a` to LINK, names it, and sets its buffer's `gain`.
fn configure_a(emu: &Emulator) {
    emu.post("/a/start").expect(200);
    emu.post_json("/a/configure", &json!({"name": "alpha"}))
        .expect(200);
    emu.put_json("/a/buffer/gain", &json!(2.5)).expect(200);
    emu.pulse(1);
    assert_eq!(emu.block_state("a"), "LINK");
}

/// Block `a` still runs version 1 with what `configure_a` gave it.
#[track_caller]
fn assert_v1_serving(emu: &Emulator) {
    assert_eq!(emu.get("/a/version").status, 404, "v2's route answers");
    assert_eq!(emu.status("a")["name"], "alpha");
    assert_eq!(emu.block_state("a"), "LINK");
    let gain = emu.get("/a/buffer/gain").expect(200).json();
    assert_eq!(gain["value"], 2.5, "{gain}");
    emu.pulse(1);
}

/// The pulse sequences in a probe log, in order.
fn pulse_sequences(log: &[String]) -> Vec<u64> {
    log.iter()
        .filter_map(|l| l.strip_prefix("pulse "))
        .map(|n| n.parse().expect("a pulse sequence"))
        .collect()
}

#[test]
fn v1_to_v2_under_load_carries_state_data_and_buffer_and_loses_no_pulse() {
    let (emu, _) = start(&["--pulse-period-ms", "10"]);
    configure_a(&emu);
    let emu = Arc::new(emu);
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..2)
        .map(|n| {
            let (emu, stop, sent, failed) =
                (emu.clone(), stop.clone(), sent.clone(), failed.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let reply = if n == 0 {
                        emu.get("/b/status")
                    } else {
                        emu.post_json("/b/configure", &json!({"name": "b"}))
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    if reply.status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("failed under load: {} {}", reply.status, reply.text);
                    }
                }
            })
        })
        .collect();
    wait_for("pulses before the swap", PATIENCE, || {
        (emu.pulses("b") >= 20).then_some(())
    });

    let answer = reload(&emu, json!({"path": path_of("probe_v2")}))
        .expect(200)
        .json();
    let report = &answer["swapped"];
    assert_eq!(report["old_version"], "fixture-probe 0.1.0", "{answer}");
    assert_eq!(report["new_version"], "fixture-probe_v2 2.0.0", "{answer}");
    let blocks: Vec<_> = report["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["block"].clone(), b["how"].clone()))
        .collect();
    assert_eq!(
        blocks,
        [
            (json!("a"), json!("carried")),
            (json!("b"), json!("carried"))
        ]
    );
    let before = emu.pulses("b");
    wait_for("pulses after the swap", PATIENCE, || {
        (emu.pulses("b") >= before + 20).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().unwrap();
    }

    assert!(sent.load(Ordering::Relaxed) > 20);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the swap"
    );
    // The new code answers, with the old data and state.
    let version = emu.get("/a/version").expect(200).json();
    assert_eq!(version, json!({"version": 2, "restored_from": "0.1.0"}));
    assert_eq!(emu.status("a")["name"], "alpha");
    assert_eq!(emu.block_state("a"), "LINK");
    assert_eq!(emu.get("/a/buffer/gain").expect(200).json()["value"], 2.5);
    // Every pulse reached every block once: the log (carried over) holds
    // consecutive sequences across the swap.
    emu.post("/stop").expect(202);
    for block in ["a", "b"] {
        let sequences = pulse_sequences(&emu.log(block));
        assert!(sequences.len() > 30, "{block}: {sequences:?}");
        for pair in sequences.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "{block}: a pulse lost or doubled in {sequences:?}"
            );
        }
    }
    // The new route and state show in the listing, the OpenAPI and the diagram.
    assert!(emu.get("/").expect(200).text.contains("\"version\""));
    assert!(emu
        .get("/openapi.json")
        .expect(200)
        .text
        .contains("/a/version"));
    assert!(emu
        .get("/a/diagram?format=mermaid")
        .expect(200)
        .text
        .contains("CALIBRATING"));
    let status = probe_status(&emu);
    assert_eq!(status["swaps"], 1);
    assert_eq!(status["version"], "2.0.0");
    assert_eq!(status["last_error"], Value::Null);
    assert!(
        emu.stderr()
            .contains("swapped fixture-probe 0.1.0 -> fixture-probe_v2 2.0.0"),
        "{}",
        emu.stderr()
    );
}

#[test]
fn a_swap_to_a_broken_library_leaves_the_old_version_serving() {
    let (emu, _) = start(&["--stopped", "--check-timeout-ms", "5000"]);
    configure_a(&emu);
    let cases = [
        ("aborts_on_load", 422, "SIGABRT"),
        ("missing_api", 422, "missing component `api`"),
        ("incompatible_sdk", 422, "1.99.0"),
        ("probe_restore_panics", 409, "restore panicked on purpose"),
        (
            "probe_lacks_state",
            409,
            "in state \"LINK\", which the new state machine",
        ),
    ];
    for (name, status, expected) in cases {
        let reply = reload(&emu, json!({"path": path_of(name)}));
        assert_eq!(reply.status, status, "{name}: {}", reply.text);
        assert!(
            reply.error().contains(expected),
            "{name}: {}",
            reply.error()
        );
        let serving = probe_status(&emu);
        assert_eq!(serving["version"], "0.1.0", "{name}");
        assert_eq!(serving["swaps"], 0, "{name}");
        assert!(
            serving["last_error"].as_str().unwrap().contains(expected),
            "{name}: {serving}"
        );
        assert_v1_serving(&emu);
    }
    // One WARN per failed swap (the debug-build warning at startup is not
    // a swap's).
    assert_eq!(
        emu.stderr()
            .lines()
            .filter(|l| l.contains(" WARN") && l.contains("engine::swap"))
            .count(),
        cases.len(),
        "{}",
        emu.stderr()
    );
    assert!(emu.stderr().contains("still serves"));
    // Asked to reset, the block whose state is gone starts in RESET.
    let reply = reload(
        &emu,
        json!({"path": path_of("probe_lacks_state"), "reset": true}),
    )
    .expect(200);
    let blocks = &reply.json()["swapped"]["blocks"];
    assert_eq!(blocks[0]["how"], "reset-state", "{blocks}");
    assert_eq!(blocks[0]["state"], "LINK -> RESET", "{blocks}");
    assert_eq!(emu.block_state("a"), "RESET");
    assert_eq!(
        emu.status("a")["name"],
        "alpha",
        "the data is still carried"
    );
}

#[test]
fn rollback_goes_back_to_the_previous_version_and_the_cli_drives_both() {
    let (emu, _) = start(&["--stopped"]);
    configure_a(&emu);
    assert_eq!(
        emu.post("/plugins/probe/rollback").status,
        409,
        "nothing to roll back to yet"
    );
    for action in ["reload", "rollback"] {
        let reply = emu.post(&format!("/plugins/nope/{action}")).expect(404);
        assert!(
            reply.error().contains("no ip_block type \"nope\""),
            "{}",
            reply.error()
        );
    }

    let cli = |args: &[&str]| {
        Command::new(BINARY)
            .arg("reload")
            .arg(&emu.base)
            .arg("probe")
            .args(args)
            .output()
            .expect("running bitstream-emulator reload")
    };
    // Pending work: a delayed action (code of v1: dropped) and an
    // injection (data: kept, delivered to v2).
    emu.post("/a/later?ms=3000").expect(202);
    let injection = json!({"injector_event_groups": [{
        "bitstream_emulator_id": "swap_pair", "ip_block_emulator_id": "a",
        "events": [{"severity": "WARNING", "value": {"injection_type": "kept"}, "offset": 3000}],
    }]});
    emu.post_json("/inject", &injection).expect(202);
    let v2 = fixture("probe_v2");
    let out = cli(&["--path", v2.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["serving"]["version"], "2.0.0", "{answer}");
    assert_eq!(answer["swapped"]["delayed_actions_dropped"], 1, "{answer}");
    assert_eq!(answer["swapped"]["injections_kept"], 1, "{answer}");
    let injected = r#"manual INJECTION WARNING {"injection_type":"kept"}"#;
    wait_for("the injection to reach v2", PATIENCE, || {
        emu.log("a").iter().any(|l| l == injected).then_some(())
    });
    // The injection was due after the delayed action: had v2 run it, its
    // line would be there by now.
    assert!(
        !emu.log("a").iter().any(|l| l == "delayed later"),
        "{:?}",
        emu.log("a")
    );
    emu.post("/a/calibrate").expect(409); // LINK: CALIBRATE only from READY
    assert_eq!(emu.get("/a/version").expect(200).json()["version"], 2);

    let out = cli(&["--rollback"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["swapped"]["rollback"], true, "{answer}");
    assert_v1_serving(&emu);
    let status = probe_status(&emu);
    assert_eq!(status["swaps"], 2);
    assert!(
        status["previous"]
            .as_str()
            .unwrap()
            .contains("fixture-probe_v2 2.0.0"),
        "{status}"
    );
    // v2's restore recorded where it came from; v1 keeps the field.
    assert_eq!(emu.status("a")["restored_from"], "0.1.0");

    // Rolling back again returns to v2.
    emu.post("/plugins/probe/rollback").expect(200);
    assert_eq!(emu.get("/a/version").expect(200).json()["version"], 2);
    // A failed reload answers non-zero from the CLI.
    let out = cli(&["--path", fixture("missing_api").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the old version still serves"));
    assert_eq!(emu.get("/a/version").expect(200).json()["version"], 2);
}

#[test]
fn a_watched_file_is_swapped_once_complete_never_half_written() {
    let (emu, folder) = start(&["--stopped", "--watch", "--watch-debounce-ms", "300"]);
    configure_a(&emu);
    let target = folder.join("libfixture_probe.so");
    let bytes = std::fs::read(fixture("probe_v2")).unwrap();
    let half = bytes.len() / 2;

    // The first half, in chunks, then a pause longer than the window: the
    // watcher tries, and refuses the incomplete file.
    let mut file = std::fs::File::create(&target).unwrap();
    for chunk in bytes[..half].chunks(64 * 1024) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    let error = wait_for("the incomplete file to be refused", PATIENCE, || {
        probe_status(&emu)["last_error"].as_str().map(str::to_owned)
    });
    assert!(error.contains("not a complete shared object"), "{error}");
    assert_v1_serving(&emu);
    assert_eq!(probe_status(&emu)["swaps"], 0);

    // The rest, in chunks: swapped once, to v2.
    for chunk in bytes[half..].chunks(64 * 1024) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    drop(file);
    wait_for("the swap to v2", PATIENCE, || {
        (emu.get("/a/version").status == 200).then_some(())
    });
    let status = probe_status(&emu);
    assert_eq!(status["swaps"], 1, "{status}");
    assert_eq!(status["last_error"], Value::Null);
    assert_eq!(status["library"], json!(target));
    assert_eq!(emu.status("a")["name"], "alpha");
    assert_eq!(emu.block_state("a"), "LINK");
    // Touching the file without changing it swaps nothing.
    std::fs::write(&target, &bytes).unwrap();
    thread::sleep(Duration::from_millis(900));
    assert_eq!(probe_status(&emu)["swaps"], 1);
}

#[test]
fn a_type_is_served_from_a_given_file_and_hung_and_faulted_blocks_are_recovered_by_a_swap() {
    let dev = tempfile::tempdir().unwrap();
    let dev_lib = dev.path().join("libprobe_dev.so");
    std::fs::copy(fixture("probe"), &dev_lib).unwrap();
    let plugin_arg = format!("probe={}", dev_lib.display());
    let (emu, _) = start(&["--stopped", "--plugin", &plugin_arg]);
    assert_eq!(probe_status(&emu)["library"], json!(dev_lib));
    configure_a(&emu);

    // A route that never returns: the block is marked hung. A route that
    // panics: the block is faulted.
    emu.post("/a/hang").expect(504);
    assert_eq!(emu.get("/a/status").status, 503);
    emu.post("/b/panic").expect(500);
    assert_eq!(emu.block_state("b"), "FAULT");

    // Reload the same library: both are reset (a's thread stays stuck).
    let answer = emu.post("/plugins/probe/reload").expect(200).json();
    let blocks = &answer["swapped"]["blocks"];
    assert_eq!(blocks[0]["how"], "reset-hung", "{answer}");
    assert_eq!(blocks[1]["how"], "reset-faulted", "{answer}");
    assert_eq!(emu.block_state("b"), "RESET");
    assert_eq!(answer["swapped"]["stuck_threads_left"], 1);
    assert_eq!(emu.get("/plugins").expect(200).json()["stuck_threads"], 1);
    let a = emu.status("a");
    assert_eq!(
        a["name"], "a",
        "a new instance with the config's constants: {a}"
    );
    assert_eq!(emu.block_state("a"), "RESET");
    emu.pulse(2);
    assert_eq!(emu.pulses("a"), 2);
    assert!(Path::new(&dev_lib).exists());
}

#[test]
fn a_plugin_built_with_sdk_1_1_loads_and_swaps_both_ways() {
    // Built from this repository's `probe` fixture with SDK 1.1.0: its
    // ip_block table has no restore, and it exports no restore symbol.
    let old = workspace_dir().join("fixtures/files/sdk_1_1/libfixture_probe_sdk_1_1.so");
    let (emu, folder) = start(&["--stopped"]);
    reload(&emu, json!({"path": old})).expect(200);
    assert_eq!(probe_status(&emu)["sdk_version"], "1.1.0");
    configure_a(&emu);
    // 1.1 -> v2 (v2's own restore), then back (the host restores a 1.1
    // plugin: the snapshot's fields it has; v2's `restored_from` is left out).
    reload(&emu, json!({"path": path_of("probe_v2")})).expect(200);
    assert_eq!(
        emu.get("/a/version").expect(200).json()["restored_from"],
        "0.1.0"
    );
    let back = emu.post("/plugins/probe/rollback").expect(200).json();
    assert_eq!(back["serving"]["sdk_version"], "1.1.0", "{back}");
    assert_v1_serving(&emu);
    assert_eq!(emu.status("a").get("restored_from"), None);
    // 1.1 -> 1.1 (a copy in the package folder, found as the type's file).
    std::fs::copy(&old, folder.join("libfixture_probe.so")).unwrap();
    emu.post("/plugins/probe/reload").expect(200);
    assert_v1_serving(&emu);
}

#[test]
fn a_plugin_given_by_path_is_watched_and_swapped_when_replaced_as_cargo_does() {
    // cargo puts a new build in place by replacing the file (a new inode),
    // not by writing into it.
    let dev = tempfile::tempdir().unwrap();
    let dev_lib = dev.path().join("libprobe_dev.so");
    std::fs::copy(fixture("probe"), &dev_lib).unwrap();
    let plugin_arg = format!("probe={}", dev_lib.display());
    let (emu, _) = start(&["--stopped", "--watch", "--plugin", &plugin_arg]);
    configure_a(&emu);
    // Another file in the folder changes: nothing happens.
    std::fs::copy(fixture("probe_v2"), dev.path().join("libother.so")).unwrap();
    let staged = dev.path().join("libprobe_dev.so.partial");
    std::fs::copy(fixture("probe_v2"), &staged).unwrap();
    std::fs::rename(&staged, &dev_lib).unwrap();
    wait_for("the swap to v2", PATIENCE, || {
        (emu.get("/a/version").status == 200).then_some(())
    });
    let status = probe_status(&emu);
    assert_eq!(status["swaps"], 1, "{status}");
    assert_eq!(status["library"], json!(dev_lib));
    assert_eq!(emu.status("a")["name"], "alpha");
}
