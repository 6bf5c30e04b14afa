//! Hot-swap end to end, beyond `hot_swap.rs`: a new version whose device
//! buffer type changed (a new segment, same-named values carried, the rest
//! reported; rollback), a restore that never returns, an emulator killed
//! mid-swap, and many swaps in a row. The real `bitstream-emulator run`
//! binary, over loopback HTTP and real shared memory.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{fixture, package, probe_pair_config, workspace_dir, Emulator, PATIENCE};

/// A unique emulator id for this test (its shared-memory names).
fn unique_id(tag: &str) -> String {
    format!("hsl-{}-{tag}", std::process::id())
}

/// A stopped `a -> b` probe package whose blocks have a device buffer (the
/// `registers` catalog beside the library); answers the package and the
/// probe's emulator folder.
fn probe_package() -> (tempfile::TempDir, PathBuf) {
    let dir = package(&[("probe", "probe")], &probe_pair_config("swap_layout"));
    let folder = dir.path().join("emulators/probe/emulator");
    std::fs::copy(
        workspace_dir().join("fixtures/plugins/registers/src/catalog.json"),
        folder.join("catalog.json"),
    )
    .expect("copying the catalog");
    (dir, folder)
}

fn reload(emu: &Emulator, name: &str) -> support::Reply {
    emu.post_json("/plugins/probe/reload", &json!({"path": fixture(name)}))
}

#[track_caller]
fn probe_status(emu: &Emulator) -> Value {
    let all = emu.get("/plugins").expect(200).json();
    all["plugins"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["ip_block_type"] == "probe"))
        .cloned()
        .unwrap_or_else(|| panic!("no probe in {all}"))
}

fn param(emu: &Emulator, block: &str, name: &str) -> Value {
    emu.get(&format!("/{block}/buffer/{name}"))
        .expect(200)
        .json()["value"]
        .clone()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| {
            v.as_str()
                .map_or_else(|| v["param"].to_string(), str::to_owned)
        })
        .map(|s| s.trim_matches('"').to_owned())
        .collect()
}

fn shm_exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// Removes the test's segments if the emulator could not.
struct ShmGuard(String);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        for block in ["a", "b"] {
            for suffix in ["", ".next"] {
                let _ =
                    std::fs::remove_file(format!("/dev/shm/bitstream-{}-{block}{suffix}", self.0));
            }
        }
    }
}

#[test]
fn a_new_buffer_type_gets_a_new_segment_with_same_named_values_carried_and_rollback_brings_them_back(
) {
    let id = unique_id("layout");
    let _guard = ShmGuard(id.clone());
    let (dir, folder) = probe_package();
    let emu = Emulator::start_package(
        dir,
        &["--stopped", "--id", &id, "--handler-timeout-ms", "2000"],
    );
    let shm_a = format!("bitstream-{id}-a");
    emu.post("/a/start").expect(200);
    emu.post_json("/a/configure", &json!({"name": "alpha"}))
        .expect(200);
    for (name, value) in [
        ("count", json!(70_000)),
        ("gain", json!(2.5)),
        ("label", json!("alpha")),
        ("taps", json!([1, 2, 300, 4])),
        ("pulses", json!(9)),
    ] {
        emu.put_json(&format!("/a/buffer/{name}"), &json!(value))
            .expect(200);
    }
    emu.put_json("/a/buffer/target?block=write", &json!(1.5))
        .expect(200);

    // A swap that fails after the new segments were made (to a version
    // whose buffer type differs and whose restore panics) keeps the old
    // ones: same values, same name, no staged segment left.
    std::fs::copy(
        workspace_dir().join("fixtures/plugins/probe_new_catalog/src/catalog.json"),
        folder.join("catalog.json"),
    )
    .unwrap();
    let refused = reload(&emu, "probe_restore_panics");
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(param(&emu, "a", "count"), 70_000);
    assert_eq!(param(&emu, "a", "pulses"), 9);
    assert!(shm_exists(&shm_a) && !shm_exists(&format!("{shm_a}.next")));

    // Version 3 declares its own catalog (the file would win: remove it).
    // Meanwhile a client reads and writes `gain` (in both types): no request
    // fails across the change of segment.
    std::fs::remove_file(folder.join("catalog.json")).unwrap();
    let stop = AtomicBool::new(false);
    let (answer, failures) = thread::scope(|scope| {
        let client = scope.spawn(|| {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for reply in [
                    emu.get("/a/buffer/gain"),
                    emu.put_json("/a/buffer/gain", &json!(2.5)),
                ] {
                    if reply.status != 200 {
                        failures.push(reply.text);
                    }
                }
            }
            failures
        });
        thread::sleep(Duration::from_millis(100));
        let answer = reload(&emu, "probe_new_catalog");
        thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        (answer, client.join().unwrap())
    });
    assert!(failures.is_empty(), "{failures:?}");
    let answer = answer.expect(200).json();
    let report = &answer["swapped"];
    assert_eq!(report["new_version"], "fixture-probe_new_catalog 3.0.0");
    let carry = &report["blocks"][0]["buffer"];
    assert_eq!(report["blocks"][0]["block"], "a", "{answer}");
    assert_eq!(report["blocks"][0]["how"], "carried", "{answer}");
    assert_eq!(names(&carry["carried"]), ["gain"], "{carry}");
    assert_eq!(names(&carry["converted"]), ["count", "label"], "{carry}");
    assert_eq!(names(&carry["not_carried"]), ["taps"], "{carry}");
    assert!(
        carry["not_carried"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("300"),
        "{carry}"
    );
    assert_eq!(names(&carry["dropped"]), ["pulses", "target"], "{carry}");
    assert_eq!(names(&carry["new_at_default"]), ["offset"], "{carry}");
    assert_eq!(carry["shared_memory"], shm_a, "{carry}");

    // The new segment, under the block's name, with the values carried.
    assert_eq!(param(&emu, "a", "count"), 70_000);
    assert_eq!(param(&emu, "a", "gain"), 2.5);
    assert_eq!(param(&emu, "a", "label"), "alpha");
    assert_eq!(param(&emu, "a", "taps"), json!([0, 0, 0, 0]));
    assert_eq!(param(&emu, "a", "offset"), 0.0);
    assert_eq!(emu.get("/a/buffer/pulses").status, 404);
    let whole = emu.get("/a/buffer").expect(200).json();
    assert_eq!(whole["shared_memory"], format!("/dev/shm/{shm_a}"));
    assert!(shm_exists(&shm_a) && !shm_exists(&format!("{shm_a}.next")));
    // Other processes attach to it by name and find the new layout.
    let out = Command::new(support::BINARY)
        .args(["buffer", "get", &shm_a, "offset"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The block's state and data came along; its new param works.
    assert_eq!(emu.status("a")["name"], "alpha");
    assert_eq!(emu.block_state("a"), "READY");
    emu.put_json("/a/buffer/offset", &json!(0.25)).expect(200);

    // The report is kept (GET /plugins) and logged.
    let status = probe_status(&emu);
    assert_eq!(status["last_swap"]["blocks"][0]["buffer"], *carry);
    assert!(
        emu.stderr()
            .contains("new device buffer: buffer registers -> registers")
            && emu
                .stderr()
                .contains("not carried [taps (int16[4] -> int8[4]"),
        "{}",
        emu.stderr()
    );

    // Rollback: version 1's layout again, the values carried back.
    let back = emu.post("/plugins/probe/rollback").expect(200).json();
    let carry = &back["swapped"]["blocks"][0]["buffer"];
    assert_eq!(names(&carry["dropped"]), ["offset"], "{carry}");
    assert_eq!(
        names(&carry["new_at_default"]),
        ["pulses", "target"],
        "{carry}"
    );
    assert_eq!(param(&emu, "a", "count"), 70_000);
    assert_eq!(param(&emu, "a", "label"), "alpha");
    assert_eq!(param(&emu, "a", "pulses"), 0);
    assert_eq!(emu.get("/a/buffer/offset").status, 404);
    assert_eq!(probe_status(&emu)["version"], "0.1.0");
    emu.pulse(2);
    assert!(shm_exists(&shm_a) && !shm_exists(&format!("{shm_a}.next")));
}

#[test]
fn a_restore_that_never_returns_is_refused_within_the_handler_timeout_and_its_thread_counted() {
    let (dir, _) = probe_package();
    let emu = Emulator::start_package(
        dir,
        &[
            "--stopped",
            "--local-buffers",
            "--handler-timeout-ms",
            "1000",
        ],
    );
    emu.post("/a/start").expect(200);
    emu.post_json("/a/configure", &json!({"name": "alpha"}))
        .expect(200);
    let started = Instant::now();
    let reply = reload(&emu, "probe_restore_hangs");
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert!(
        reply.error().contains("restore did not return within 1 s"),
        "{}",
        reply.error()
    );
    assert!(started.elapsed() < PATIENCE, "{:?}", started.elapsed());
    let all = emu.get("/plugins").expect(200).json();
    assert_eq!(all["stuck_threads"], 1, "{all}");
    let status = probe_status(&emu);
    assert_eq!(status["version"], "0.1.0");
    assert!(status["last_error"].as_str().unwrap().contains("restore"));
    // The old version serves, every block answers, and the next swap works.
    assert_eq!(emu.status("a")["name"], "alpha");
    assert_eq!(emu.block_state("a"), "READY");
    emu.pulse(3);
    assert_eq!(emu.pulses("b"), 3);
    reload(&emu, "probe_v2").expect(200);
    assert_eq!(emu.get("/a/version").expect(200).json()["version"], 2);
}

#[test]
fn an_emulator_killed_mid_swap_leaves_no_staged_file_and_stale_ones_are_removed_at_startup() {
    let copies = tempfile::tempdir().unwrap();
    // A file staged by an emulator that died where memfds were unavailable.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = copies.path().join(format!("bitstream-stage-{dead}-x1.so"));
    std::fs::write(&stale, b"\x7fELF").unwrap();

    let id = unique_id("killed");
    let _guard = ShmGuard(id.clone());
    let (dir, folder) = probe_package();
    std::fs::copy(
        workspace_dir().join("fixtures/plugins/probe_new_catalog/src/catalog.json"),
        folder.join("catalog.json.v3"),
    )
    .unwrap();
    let env: [(&str, &OsStr); 2] = [
        (
            "BITSTREAM_EMULATOR_PLUGIN_COPY_DIR",
            copies.path().as_os_str(),
        ),
        ("TMPDIR", copies.path().as_os_str()),
    ];
    let mut emu = Emulator::start_package_with_env(
        dir,
        &["--stopped", "--id", &id, "--handler-timeout-ms", "3000"],
        &env,
    );
    assert!(
        !stale.exists(),
        "the stale staged file is removed at startup"
    );
    assert!(emu.stderr().contains("died mid-swap"), "{}", emu.stderr());

    // A swap that changes the buffer type and hangs in its restore: the
    // successor segments and the staged library exist meanwhile.
    std::fs::rename(folder.join("catalog.json.v3"), folder.join("catalog.json")).unwrap();
    let port = emu.port;
    let swap = thread::spawn(move || {
        let _ = Command::new("curl")
            .args(["-s", "-m", "20", "-X", "POST"])
            .arg(format!("http://127.0.0.1:{port}/plugins/probe/reload"))
            .args(["-H", "content-type: application/json", "-d"])
            .arg(json!({"path": fixture("probe_restore_hangs")}).to_string())
            .output();
    });
    let next = format!("bitstream-{id}-a.next");
    support::wait_for("the swap's new segment", PATIENCE, || {
        shm_exists(&next).then_some(())
    });
    let files: Vec<_> = std::fs::read_dir(copies.path()).unwrap().collect();
    assert!(files.is_empty(), "staged files: {files:?}");
    Command::new("kill")
        .args(["-9", &emu.pid().to_string()])
        .status()
        .unwrap();
    emu.wait_exit(PATIENCE).expect("killed");
    swap.join().unwrap();
    let files: Vec<_> = std::fs::read_dir(copies.path()).unwrap().collect();
    assert!(files.is_empty(), "staged files: {files:?}");

    // The next emulator with this id removes the staged segment left behind.
    let (dir, _) = probe_package();
    let _emu = Emulator::start_package(dir, &["--stopped", "--id", &id]);
    assert!(!shm_exists(&next), "{next} left behind");
    assert!(shm_exists(&format!("bitstream-{id}-a")));
}

#[test]
fn fifty_swaps_in_a_row_leave_the_emulator_serving() {
    let (dir, _) = probe_package();
    let emu = Emulator::start_package(
        dir,
        &[
            "--local-buffers",
            "--pulse-period-ms",
            "10",
            "--check-timeout-ms",
            "10000",
        ],
    );
    emu.post("/a/start").expect(200);
    emu.put_json("/a/buffer/gain", &json!(2.5)).expect(200);
    for n in 0..50 {
        let name = if n % 2 == 0 { "probe_v2" } else { "probe" };
        let reply = reload(&emu, name);
        assert_eq!(reply.status, 200, "swap {n}: {}", reply.text);
    }
    let status = probe_status(&emu);
    assert_eq!(status["swaps"], 50);
    assert_eq!(status["version"], "0.1.0");
    let state = emu.block_state("a");
    assert!(["READY", "LINK"].contains(&state.as_str()), "{state}");
    assert_eq!(param(&emu, "a", "gain"), 2.5);
    let before = emu.pulses("b");
    support::wait_for("pulses after 50 swaps", PATIENCE, || {
        (emu.pulses("b") > before + 5).then_some(())
    });
    let swapped = emu.stderr().matches("swapped fixture-probe").count();
    assert_eq!(swapped, 50, "one log line per swap");
    // The package's library, probe_v2 and probe: each loaded once, then
    // reused.
    assert_eq!(status["loaded_libraries"], 3, "{status}");
    assert_eq!(status["last_swap"]["reused_library"], true, "{status}");
}

#[test]
fn swaps_load_at_most_the_library_limit_and_files_loaded_before_are_reused() {
    let (dir, _) = probe_package();
    let emu = Emulator::start_package(
        dir,
        &["--stopped", "--local-buffers", "--max-swap-libraries", "1"],
    );
    reload(&emu, "probe_v2").expect(200);
    let refused = reload(&emu, "probe");
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(
        refused.error().contains("--max-swap-libraries") && refused.error().contains("restart"),
        "{}",
        refused.error()
    );
    assert_eq!(probe_status(&emu)["version"], "2.0.0");
    // The package's own file (loaded at startup) and probe_v2 are reused.
    let back = emu.post("/plugins/probe/reload").expect(200).json();
    assert_eq!(back["swapped"]["reused_library"], true, "{back}");
    assert_eq!(probe_status(&emu)["version"], "0.1.0");
    let again = reload(&emu, "probe_v2").expect(200).json();
    assert_eq!(again["swapped"]["reused_library"], true, "{again}");
    assert_eq!(probe_status(&emu)["loaded_libraries"], 2);
}

#[test]
fn a_bad_reload_body_is_refused_naming_the_route_and_what_to_send() {
    let (dir, _) = probe_package();
    let emu = Emulator::start_package(dir, &["--local-buffers", "--stopped"]);
    // A small body and one of more than 16 KiB (parsed off the async
    // workers): both refused with 400, nothing swapped.
    let padding = "x".repeat(64 * 1024);
    for body in [
        "{\"path\": 7}".to_string(),
        format!("{{\"reset\": \"{padding}\"}}"),
    ] {
        let reply = emu.post_raw("/plugins/probe/reload", body.into_bytes());
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert!(
            reply.text.contains("POST /plugins/probe/reload")
                && reply.text.contains("\\\"path\\\""),
            "{}",
            reply.text
        );
    }
    assert_eq!(probe_status(&emu)["swaps"], 0);
    assert_eq!(
        emu.get("/state").expect(200).json()["current_state"],
        "STOPPED"
    );
}
