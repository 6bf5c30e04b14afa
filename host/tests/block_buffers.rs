//! Block device buffers end to end: the real `bitstream-emulator run`
//! binary on packages of the `registers` fixture (catalog declared through
//! the SDK) and the `minimal` fixture (with and without a `catalog.json`),
//! driven over HTTP on loopback, read and written from other processes
//! through the real `/dev/shm`.
//!
//! Every emulator gets its own `--id` (`bbtest-<pid>-<n>`), so parallel
//! tests never share a shared-memory name, and every test checks that the
//! emulator's names are gone from `/dev/shm` once it has ended. A test that
//! fails midway still removes its leftovers ([`ShmGuard`]).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::device::{Buffer, BufferError, BufferType};
use bitstream_buffer::segment::Segment;
use bitstream_buffer::value::ParamValue;
use serde_json::{json, Value};
use support::{build_dir, free_port, package, run_to_exit, wait_for, Emulator, BINARY, PATIENCE};
use tempfile::TempDir;

const SHM_DIR: &str = "/dev/shm";

/// A new emulator id, unique among this file's tests and parallel runs.
fn unique_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "bbtest-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The shared-memory name of block `block` of emulator `id`.
fn shm_name(id: &str, block: &str) -> String {
    format!("bitstream-{id}-{block}")
}

/// The names in `/dev/shm` belonging to emulator `id`, sorted.
fn shm_names(id: &str) -> Vec<String> {
    let prefix = format!("bitstream-{id}-");
    let mut names: Vec<String> = std::fs::read_dir(SHM_DIR)
        .expect("reading /dev/shm")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

/// Removes whatever emulator `id` left in `/dev/shm` when dropped, so that
/// a failing test leaves nothing behind either. (A passing test has
/// already asserted there is nothing left.)
struct ShmGuard(String);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        for name in shm_names(&self.0) {
            let _ = std::fs::remove_file(Path::new(SHM_DIR).join(name));
        }
    }
}

/// `reg_a -> reg_b` (type `registers`, with a buffer) and `plain` (type
/// `counter`, the `minimal` fixture, without one).
fn registers_package() -> TempDir {
    let config = json!({
        "id": "registers_test",
        "version": "0.0.1",
        "first": ["reg_a"],
        "ip_blocks": [
            {"id": "reg_a", "type": "registers", "downstream_block_ids": ["reg_b"], "constants": {}},
            {"id": "reg_b", "type": "registers", "constants": {}},
            {"id": "plain", "type": "counter", "constants": {}},
        ],
    });
    package(
        &[("registers", "registers"), ("counter", "minimal")],
        &config.to_string(),
    )
}

/// Runs [`registers_package`] as emulator `id`, pulses only on request,
/// plus `extra` arguments.
fn start_registers(id: &str, extra: &[&str]) -> Emulator {
    let mut args = vec!["--id", id, "--pulse-period-ms", "0"];
    args.extend_from_slice(extra);
    Emulator::start_package(registers_package(), &args)
}

/// `POST /terminate`, waits for a clean exit, and checks that `/dev/shm`
/// holds nothing of emulator `id` any more.
fn terminate(mut emu: Emulator, id: &str) {
    emu.post("/terminate").expect(202);
    let status = emu.wait_exit(PATIENCE).unwrap_or_else(|| {
        panic!(
            "still running {PATIENCE:?} after /terminate; stderr:\n{}",
            emu.stderr()
        )
    });
    assert!(status.success(), "{status}; stderr:\n{}", emu.stderr());
    assert_eq!(
        shm_names(id),
        Vec::<String>::new(),
        "left in /dev/shm after terminate"
    );
}

/// `GET /<block>/buffer/<param>`'s value.
#[track_caller]
fn param(emu: &Emulator, block: &str, name: &str) -> Value {
    let body = emu
        .get(&format!("/{block}/buffer/{name}"))
        .expect(200)
        .json();
    assert_eq!(body["param"], name, "{body}");
    body["value"].clone()
}

/// The `bitstream-emulator` binary with `args`, run to completion.
fn cli(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running bitstream-emulator")
}

/// [`cli`], expecting success; its standard output.
fn cli_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// [`cli_ok`], parsed as JSON.
fn cli_json(args: &[&str]) -> Value {
    let stdout = cli_ok(args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

// HTTP ----------------------------------------------------------------------

#[test]
fn http_reads_and_writes_a_blocks_buffer_and_the_plugin_sees_it() {
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = start_registers(&id, &[]);
    assert_eq!(
        shm_names(&id),
        [shm_name(&id, "reg_a"), shm_name(&id, "reg_b")],
        "one name per block with a catalog, none for `plain`"
    );

    let a = emu.get("/reg_a/buffer").expect(200).json();
    assert_eq!(a["block"], "reg_a", "{a}");
    assert_eq!(a["type"], "registers", "{a}");
    assert_eq!(
        a["shared_memory"],
        format!("/dev/shm/{}", shm_name(&id, "reg_a")),
        "{a}"
    );
    assert_eq!(a["valid"], true, "{a}");
    assert_eq!(
        a["params"],
        json!({"count": 0, "pulses": 0, "gain": 0.0, "label": "", "taps": [0, 0, 0, 0]}),
        "`target` is not readable, so it is not among the params"
    );
    assert_eq!(a["written"], json!({"target": 0.0}), "{a}");

    // Pulses reach the buffer through the plugin's subcontroller.
    emu.pulse(7);
    assert_eq!(param(&emu, "reg_a", "pulses"), 7);
    assert_eq!(param(&emu, "reg_b", "pulses"), 7);
    emu.pulse(3);
    assert_eq!(param(&emu, "reg_a", "pulses"), 10);

    // A route changes the buffer in a transaction; each block has its own.
    assert_eq!(
        emu.post("/reg_a/bump").expect(200).json(),
        json!({"count": 1})
    );
    assert_eq!(
        emu.post("/reg_a/bump").expect(200).json(),
        json!({"count": 2})
    );
    assert_eq!(param(&emu, "reg_a", "count"), 2);
    assert_eq!(param(&emu, "reg_b", "count"), 0);

    // A float beyond its bound is clamped, with a warning naming it.
    let put = emu
        .put_json("/reg_a/buffer/gain", &json!(12.5))
        .expect(200)
        .json();
    assert_eq!(put["param"], "gain", "{put}");
    assert_eq!(put["value"], 10.0, "{put}");
    let warning = put["warning"].as_str().expect("a warning");
    assert!(
        warning.contains("`gain`") && warning.contains("upper bound 10"),
        "{warning}"
    );
    assert_eq!(param(&emu, "reg_a", "gain"), 10.0);
    // The {"value": ...} form; no warning within the bounds.
    let put = emu
        .put_json("/reg_a/buffer/gain", &json!({"value": 2.5}))
        .expect(200)
        .json();
    assert_eq!(
        put,
        json!({"param": "gain", "value": 2.5, "warning": null}),
        "{put}"
    );
    let put = emu
        .put_json("/reg_a/buffer/label", &json!("hello"))
        .expect(200)
        .json();
    assert_eq!(put["value"], "hello", "{put}");
    let put = emu
        .put_json("/reg_a/buffer/taps", &json!([1, -2, 3, -4]))
        .expect(200)
        .json();
    assert_eq!(put["value"], json!([1, -2, 3, -4]), "{put}");

    // The plugin reads what HTTP wrote.
    let registers = emu.get("/reg_a/registers").expect(200).json();
    assert_eq!(
        registers,
        json!({"count": 2, "pulses": 10, "gain": 2.5, "label": "hello", "taps": [1, -2, 3, -4]})
    );

    // A bad value: 400 naming the parameter, nothing stored.
    let bad = emu.put_json("/reg_a/buffer/count", &json!("x")).expect(400);
    assert_eq!(bad.json()["param"], "count", "{}", bad.text);
    assert!(bad.error().contains("`count`"), "{}", bad.text);
    assert_eq!(param(&emu, "reg_a", "count"), 2);
    // An unknown parameter: 404 naming it and the known ones.
    let unknown = emu.put_json("/reg_a/buffer/nope", &json!(1)).expect(404);
    let message = unknown.error();
    assert!(
        message.contains("`nope`") && message.contains("count") && message.contains("taps"),
        "{message}"
    );
    assert_eq!(unknown.json()["param"], "nope", "{}", unknown.text);
    let unknown = emu.get("/reg_a/buffer/nope").expect(404);
    assert!(unknown.error().contains("`nope`"), "{}", unknown.text);

    // A pending write, read back by the plugin through its subcontroller.
    let put = emu
        .put_json("/reg_a/buffer/target?block=write", &json!(2.5))
        .expect(200)
        .json();
    assert_eq!(
        put,
        json!({"param": "target", "value": 2.5, "warning": null})
    );
    assert_eq!(emu.get("/reg_a/target").expect(200).json(), json!(2.5));
    assert_eq!(
        emu.get("/reg_a/buffer/target?block=write")
            .expect(200)
            .json()["value"],
        2.5
    );
    assert_eq!(
        emu.get("/reg_a/buffer").expect(200).json()["written"],
        json!({"target": 2.5})
    );
    // `target` is write-only: reading or setting its update copy is a 400.
    let not_readable = emu.get("/reg_a/buffer/target").expect(400);
    assert_eq!(not_readable.json()["param"], "target");
    assert!(
        not_readable.error().contains("not readable"),
        "{}",
        not_readable.text
    );
    emu.put_json("/reg_a/buffer/target", &json!(1.0))
        .expect(400);
    // `count` is not writeable.
    emu.put_json("/reg_a/buffer/count?block=write", &json!(1))
        .expect(400);
    // A bad query names the one parameter there is.
    let bad_query = emu.get("/reg_a/buffer/count?block=both").expect(400);
    assert!(bad_query.error().contains("block="), "{}", bad_query.text);

    terminate(emu, &id);
}

// A block without a catalog -------------------------------------------------

#[test]
fn a_block_whose_plugin_ships_no_catalog_has_no_buffer() {
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = start_registers(&id, &[]);
    let missing = emu.get("/plain/buffer").expect(404);
    let message = missing.error();
    assert!(
        message.contains("\"plain\"")
            && message.contains("ships no catalog")
            && message.contains("catalog.json"),
        "{message}"
    );
    emu.get("/plain/buffer/count").expect(404);
    emu.put_json("/plain/buffer/count", &json!(1)).expect(404);
    assert!(!Path::new(SHM_DIR).join(shm_name(&id, "plain")).exists());
    // An unknown block is a 404 too.
    emu.get("/nowhere/buffer").expect(404);
    terminate(emu, &id);
}

// From another process ------------------------------------------------------

#[test]
fn another_process_reads_and_writes_the_shared_buffers() {
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = start_registers(&id, &[]);
    let name_a = shm_name(&id, "reg_a");
    let name_b = shm_name(&id, "reg_b");

    assert_eq!(
        cli_ok(&["buffer", "set", &name_a, "label", r#""hi""#]).trim(),
        r#""hi""#
    );
    assert_eq!(
        emu.get("/reg_a/registers").expect(200).json()["label"],
        "hi"
    );
    assert_eq!(param(&emu, "reg_a", "label"), "hi");

    emu.pulse(5);
    let pulses = cli_json(&["buffer", "get", &name_a, "pulses"]);
    assert_eq!(pulses, 5);
    assert_eq!(pulses, param(&emu, "reg_a", "pulses"));
    emu.put_json("/reg_b/buffer/target?block=write", &json!(-1.5))
        .expect(200);
    assert_eq!(
        cli_json(&["buffer", "get", &name_b, "target", "--written"]),
        -1.5
    );
    let dump = cli_json(&["buffer", "dump", &name_a]);
    assert_eq!(dump["type"], "registers", "{dump}");
    assert_eq!(
        dump["params"],
        emu.get("/reg_a/buffer").expect(200).json()["params"]
    );

    let prefix = format!("bitstream-{id}-");
    let listed = cli_json(&["buffer", "ls", "--prefix", &prefix, "--json"]);
    let listed = listed.as_array().expect("a JSON list");
    let mut names: Vec<&str> = listed.iter().map(|e| e["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, [name_a.as_str(), name_b.as_str()], "{listed:?}");
    for entry in listed {
        assert_eq!(entry["type"], "registers", "{entry}");
        assert_eq!(entry["valid"], true, "{entry}");
        assert_eq!(entry["creator_pid"], emu.pid(), "{entry}");
        assert_eq!(entry["creator_alive"], true, "{entry}");
    }

    for name in [&name_a, &name_b] {
        let mode = std::fs::metadata(Path::new(SHM_DIR).join(name))
            .expect("the shared buffer's file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "/dev/shm/{name} has mode {mode:o}");
    }

    terminate(emu, &id);
    let gone = cli(&["buffer", "get", &name_a, "pulses"]);
    assert!(!gone.status.success(), "the buffer outlived its emulator");
}

// Concurrent transactions ---------------------------------------------------

#[test]
fn transactions_from_this_process_and_from_routes_never_lose_an_increment() {
    const OUTSIDE: u64 = 20_000;
    const THREADS: u64 = 4;
    const BUMPS_PER_THREAD: u64 = 50;
    const PULSE_BATCHES: u64 = 10;
    const PULSES_PER_BATCH: u64 = 100;

    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = start_registers(&id, &[]);
    let buffer = Buffer::open_shared(&shm_name(&id, "reg_a")).expect("attaching to reg_a");
    assert!(!buffer.is_owner());

    thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..OUTSIDE {
                let _tx = buffer.transaction().expect("a transaction");
                let count = match buffer.get("count").expect("reading count") {
                    ParamValue::UInt(n) => n,
                    other => panic!("count is {other}"),
                };
                buffer.set("count", count + 1).expect("setting count");
            }
        });
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..BUMPS_PER_THREAD {
                    emu.post("/reg_a/bump").expect(200);
                }
            });
        }
        // Pulses change another parameter of the same buffer meanwhile.
        s.spawn(|| {
            for _ in 0..PULSE_BATCHES {
                emu.pulse(PULSES_PER_BATCH);
            }
        });
    });

    let expected = OUTSIDE + THREADS * BUMPS_PER_THREAD;
    assert_eq!(param(&emu, "reg_a", "count"), expected);
    assert_eq!(buffer.get("count").unwrap(), ParamValue::UInt(expected));
    assert_eq!(
        param(&emu, "reg_a", "pulses"),
        PULSE_BATCHES * PULSES_PER_BATCH
    );

    terminate(emu, &id);
    // This process still maps the buffer: it is marked invalid at once.
    assert!(!buffer.is_valid().unwrap());
    match buffer.transaction() {
        Err(BufferError::Invalid { .. }) => {}
        Err(other) => panic!("a transaction on a terminated emulator's buffer: {other}"),
        Ok(_) => panic!("a transaction on a terminated emulator's buffer succeeded"),
    };
}

// catalog.json beside the library -------------------------------------------

/// `c1` of type `counter` and `m1` of type `my_counter` (both the `minimal`
/// fixture), with `catalogs` written as `emulators/<type>/emulator/catalog.json`.
fn catalog_package(catalogs: &[(&str, &str)]) -> TempDir {
    let config = json!({
        "id": "catalog_test",
        "version": "0.0.1",
        "first": ["c1"],
        "ip_blocks": [
            {"id": "c1", "type": "counter", "downstream_block_ids": ["m1"], "constants": {}},
            {"id": "m1", "type": "my_counter", "constants": {}},
        ],
    });
    let dir = package(
        &[("counter", "minimal"), ("my_counter", "minimal")],
        &config.to_string(),
    );
    for (ip_block_type, catalog) in catalogs {
        std::fs::write(catalog_path(&dir, ip_block_type), catalog).expect("writing catalog.json");
    }
    dir
}

fn catalog_path(package: &TempDir, ip_block_type: &str) -> PathBuf {
    package
        .path()
        .join("emulators")
        .join(ip_block_type)
        .join("emulator")
        .join("catalog.json")
}

/// `target/<profile>/validate-bitstream` (an integration test of this
/// package cannot name another package's binary).
fn validator() -> PathBuf {
    let path = build_dir().join("validate-bitstream");
    assert!(
        path.is_file(),
        "{} is missing: this test needs validate-bitstream (crate bitstream-validate), \
         built by `cargo build --workspace` (ci/test.sh runs it before the tests)",
        path.display()
    );
    path
}

/// `validate-bitstream <package> --format json`: exit code and report.
fn validate(package: &TempDir) -> (Option<i32>, Value) {
    let out = Command::new(validator())
        .arg(package.path())
        .args(["--format", "json"])
        .output()
        .expect("running validate-bitstream");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "validate-bitstream printed no JSON ({e}): {stdout}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// The check `name` of plugin `ip_block_type` in a validator report.
fn check<'a>(report: &'a Value, ip_block_type: &str, name: &str) -> &'a Value {
    let plugin = report["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["ip_block_type"] == ip_block_type)
        .unwrap_or_else(|| panic!("no plugin {ip_block_type} in {report}"));
    plugin["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {plugin}"))
}

const LEVEL_CATALOG: &str = r#"{"level-meter": {"params": [{"name": "level", "type": "int32"}]}}"#;

#[test]
fn a_catalog_json_beside_the_library_gives_the_blocks_buffers() {
    // `counter`: the only type; `my_counter`: the type named in kebab case.
    let two_types = r#"{
        "other": {"params": [{"name": "x", "type": "uint8"}]},
        "my-counter": {"params": [{"name": "speed", "type": "float", "lower": -1, "upper": 1}]}
    }"#;
    let package = catalog_package(&[("counter", LEVEL_CATALOG), ("my_counter", two_types)]);
    let (code, report) = validate(&package);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(check(&report, "counter", "buffer")["status"], "passed");
    assert_eq!(check(&report, "my_counter", "buffer")["status"], "passed");

    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = Emulator::start_package(package, &["--id", &id, "--pulse-period-ms", "0"]);
    let c1 = emu.get("/c1/buffer").expect(200).json();
    assert_eq!(c1["type"], "level-meter", "{c1}");
    assert_eq!(c1["params"], json!({"level": 0}), "{c1}");
    let m1 = emu.get("/m1/buffer").expect(200).json();
    assert_eq!(m1["type"], "my-counter", "{m1}");
    assert_eq!(m1["params"], json!({"speed": 0.0}), "{m1}");
    let put = emu
        .put_json("/c1/buffer/level", &json!(-42))
        .expect(200)
        .json();
    assert_eq!(put["value"], -42, "{put}");
    assert_eq!(
        cli_json(&["buffer", "get", &shm_name(&id, "c1"), "level"]),
        -42
    );
    assert_eq!(shm_names(&id), [shm_name(&id, "c1"), shm_name(&id, "m1")]);
    terminate(emu, &id);
}

/// Seconds since the Unix epoch, as the control block's stamps hold them.
fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// The names of the threads of process `pid`.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("reading the emulator's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn smart_device_buffers_stamp_real_time_from_the_engines_clock_ticker() {
    let smart = r#"{"level-meter": {"device_id": 7, "params": [
        {"name": "level", "type": "int32"},
        {"name": "setpoint", "type": "float", "readable": false, "writeable": true}
    ]}}"#;
    let package = catalog_package(&[("counter", smart), ("my_counter", LEVEL_CATALOG)]);
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = Emulator::start_package(package, &["--id", &id, "--pulse-period-ms", "0"]);
    // A Smart Device block: the engine runs the ticker for its stamps. A new
    // thread names itself once it first runs, which a loaded machine may
    // delay, so wait for the name rather than sampling once.
    wait_for("a buffer-clock thread", PATIENCE, || {
        thread_names(emu.pid())
            .iter()
            .any(|n| n == "buffer-clock")
            .then_some(())
    });
    let before = epoch_seconds();
    emu.put_json("/c1/buffer/level", &json!(5)).expect(200);
    let after = epoch_seconds();
    let dump = cli_json(&["buffer", "dump", &shm_name(&id, "c1")]);
    let stamp = dump["control"]["last_update"].as_f64().unwrap();
    // The cache lags real time by a tick (1 ms) plus the thread's wake-up
    // (generous: a loaded machine may delay that thread).
    assert!(
        (before - 1.0..=after + 0.001).contains(&stamp),
        "last_update {stamp} is not between {before} and {after}"
    );
    assert_eq!(dump["params"]["level"], 5, "{dump}");
    terminate(emu, &id);
}

#[test]
fn plain_buffers_start_no_clock_ticker() {
    let package = catalog_package(&[("counter", LEVEL_CATALOG)]);
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = Emulator::start_package(package, &["--id", &id, "--pulse-period-ms", "0"]);
    emu.put_json("/c1/buffer/level", &json!(5)).expect(200);
    // Every thread the engine spawns is named; until it has named itself it
    // still carries the process's name. Wait until only the main thread does,
    // so a ticker that has not named itself yet cannot slip past.
    let names = wait_for("every thread to have named itself", PATIENCE, || {
        let names = thread_names(emu.pid());
        let unnamed = names.iter().filter(|n| *n == "bitstream-emula").count();
        (unnamed == 1).then_some(names)
    });
    assert!(!names.iter().any(|n| n == "buffer-clock"), "{names:?}");
    terminate(emu, &id);
}

#[test]
fn a_catalog_json_wins_over_the_catalog_declared_in_the_plugin() {
    let package = registers_package();
    std::fs::write(
        package
            .path()
            .join("emulators/registers/emulator/catalog.json"),
        LEVEL_CATALOG,
    )
    .expect("writing catalog.json");
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = Emulator::start_package(package, &["--id", &id, "--pulse-period-ms", "0"]);
    let a = emu.get("/reg_a/buffer").expect(200).json();
    assert_eq!(a["type"], "level-meter", "{a}");
    assert_eq!(a["params"], json!({"level": 0}), "{a}");
    // The plugin's own parameters are not there: its route says so (a 4xx).
    let bump = emu.post("/reg_a/bump").expect(404);
    assert!(bump.error().contains("`count`"), "{}", bump.text);
    terminate(emu, &id);
}

/// Runs and validates a package whose `counter` catalog is `catalog`;
/// both must fail naming the catalog file and containing `expected`.
fn assert_bad_catalog(catalog: &str, expected: &[&str]) {
    let package = catalog_package(&[("counter", catalog)]);
    let path = catalog_path(&package, "counter").display().to_string();

    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let failure = run_to_exit(
        &package,
        free_port(),
        &["--id", &id, "--pulse-period-ms", "0"],
    );
    assert!(
        !failure.status.success(),
        "started with catalog {catalog}; stderr:\n{}",
        failure.stderr
    );
    assert!(
        failure.stderr.contains(&path),
        "the error does not name {path}:\n{}",
        failure.stderr
    );
    for part in expected {
        assert!(
            failure.stderr.contains(part),
            "the error does not say {part:?}:\n{}",
            failure.stderr
        );
    }
    assert_eq!(shm_names(&id), Vec::<String>::new());

    let (code, report) = validate(&package);
    assert_eq!(code, Some(1), "{report}");
    let buffer = check(&report, "counter", "buffer");
    assert_eq!(buffer["status"], "failed", "{buffer}");
    let message = buffer["problems"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no problem message in {buffer}"));
    assert!(message.contains(&path), "{message}");
    for part in expected {
        assert!(message.contains(part), "{message} does not say {part:?}");
    }
    assert_eq!(
        check(&report, "counter", "constants")["status"],
        "skipped",
        "{report}"
    );
    assert_eq!(check(&report, "my_counter", "buffer")["status"], "passed");
}

#[test]
fn a_catalog_json_with_a_syntax_error_stops_startup_and_fails_validation() {
    assert_bad_catalog(
        r#"{"level-meter": {"params": [{"name": "level" "type": "int32"}]}}"#,
        &["invalid catalog JSON at line 1"],
    );
}

#[test]
fn a_catalog_json_with_an_unknown_type_stops_startup_and_fails_validation() {
    assert_bad_catalog(
        r#"{"level-meter": {"params": [{"name": "level", "type": "uint33"}]}}"#,
        &["`level`", "unknown scalar type `uint33`"],
    );
}

#[test]
fn a_catalog_json_without_a_type_for_the_block_stops_startup_and_fails_validation() {
    assert_bad_catalog(
        r#"{
            "alpha": {"params": [{"name": "a", "type": "uint8"}]},
            "beta": {"params": [{"name": "b", "type": "uint8"}]}
        }"#,
        &[
            "no buffer type for ip_block type \"counter\"",
            "alpha, beta",
        ],
    );
}

// --local-buffers -----------------------------------------------------------

#[test]
fn local_buffers_work_and_stay_out_of_dev_shm() {
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = start_registers(&id, &["--local-buffers"]);
    let a = emu.get("/reg_a/buffer").expect(200).json();
    assert_eq!(a["shared_memory"], Value::Null, "{a}");
    assert_eq!(a["valid"], true, "{a}");
    emu.pulse(4);
    assert_eq!(param(&emu, "reg_a", "pulses"), 4);
    assert_eq!(
        emu.post("/reg_b/bump").expect(200).json(),
        json!({"count": 1})
    );
    emu.put_json("/reg_a/buffer/gain", &json!(1.5)).expect(200);
    assert_eq!(emu.get("/reg_a/registers").expect(200).json()["gain"], 1.5);
    emu.put_json("/reg_a/buffer/target?block=write", &json!(0.25))
        .expect(200);
    assert_eq!(emu.get("/reg_a/target").expect(200).json(), json!(0.25));
    assert_eq!(
        shm_names(&id),
        Vec::<String>::new(),
        "--local-buffers put buffers in /dev/shm"
    );
    terminate(emu, &id);
}

// Stale and live owners -----------------------------------------------------

#[test]
fn a_stale_buffer_is_replaced_and_a_live_one_is_refused() {
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let name_a = shm_name(&id, "reg_a");
    let name_b = shm_name(&id, "reg_b");

    // An emulator killed with SIGKILL leaves its buffers behind.
    let killed = start_registers(&id, &[]);
    let killed_pid = killed.pid();
    killed.post("/reg_a/bump").expect(200);
    drop(killed); // SIGKILL, then reaped
    assert_eq!(shm_names(&id), [name_a.clone(), name_b.clone()]);
    let listed = cli_json(&["buffer", "ls", "--prefix", &name_a, "--json"]);
    assert_eq!(listed[0]["creator_pid"], killed_pid, "{listed}");
    assert_eq!(listed[0]["creator_alive"], false, "{listed}");
    // And something that is not a buffer at all takes reg_b's name.
    std::fs::remove_file(Path::new(SHM_DIR).join(&name_b)).unwrap();
    std::fs::write(Path::new(SHM_DIR).join(&name_b), b"not a buffer").unwrap();

    // The same id again: both are replaced, with a warning each.
    let emu = start_registers(&id, &[]);
    let stderr = emu.stderr();
    assert!(
        stderr.contains(&format!("replacing /dev/shm/{name_a}"))
            && stderr.contains(&format!("(pid {killed_pid})")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("replacing /dev/shm/{name_b}"))
            && stderr.contains("(pid unknown)"),
        "{stderr}"
    );
    assert_eq!(param(&emu, "reg_a", "count"), 0, "a fresh buffer");
    emu.pulse(2);
    assert_eq!(param(&emu, "reg_b", "pulses"), 2);
    let listed = cli_json(&[
        "buffer",
        "ls",
        "--prefix",
        &format!("bitstream-{id}-"),
        "--json",
    ]);
    for entry in listed.as_array().unwrap() {
        assert_eq!(entry["creator_pid"], emu.pid(), "{entry}");
        assert_eq!(entry["valid"], true, "{entry}");
    }

    // A second emulator with the same id while this one runs: refused,
    // naming the owner's pid and the way out; the first is untouched.
    let failure = run_to_exit(
        &registers_package(),
        free_port(),
        &["--id", &id, "--pulse-period-ms", "0"],
    );
    assert!(!failure.status.success(), "{}", failure.stderr);
    assert!(
        failure.stderr.contains(&format!("/dev/shm/{name_a}"))
            && failure.stderr.contains(&format!("pid {}", emu.pid()))
            && failure.stderr.contains("--id"),
        "{}",
        failure.stderr
    );
    assert_eq!(shm_names(&id), [name_a.clone(), name_b.clone()]);
    assert_eq!(param(&emu, "reg_a", "pulses"), 2);
    emu.post("/reg_a/bump").expect(200);
    assert_eq!(cli_json(&["buffer", "get", &name_a, "count"]), 1);

    terminate(emu, &id);
}

// SIGTERM -------------------------------------------------------------------

#[test]
fn sigterm_ends_the_emulator_cleanly_and_removes_its_buffers() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let mut emu = start_registers(&id, &[]);
    emu.pulse(3);
    assert_eq!(shm_names(&id).len(), 2);
    let pid = i32::try_from(emu.pid()).expect("a pid");
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("sending SIGTERM");
    let status = emu
        .wait_exit(PATIENCE)
        .unwrap_or_else(|| panic!("still running after SIGTERM; stderr:\n{}", emu.stderr()));
    assert!(status.success(), "{status}; stderr:\n{}", emu.stderr());
    assert!(emu.stderr().contains("SIGTERM"), "{}", emu.stderr());
    assert_eq!(
        shm_names(&id),
        Vec::<String>::new(),
        "left in /dev/shm after SIGTERM"
    );
}

// Startup failures leave nothing behind -------------------------------------

/// The `registers` type, from the fixture's catalog.
fn registers_type() -> Arc<BufferType> {
    let path = support::workspace_dir().join("fixtures/plugins/registers/src/catalog.json");
    let text = std::fs::read_to_string(&path).expect("reading the registers catalog");
    let catalog = Catalog::from_json(&text).expect("the registers catalog parses");
    Arc::new(BufferType::from_catalog(&catalog, "registers").expect("the registers type"))
}

#[test]
fn a_failed_startup_removes_the_buffers_it_made_and_only_those() {
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    // This (live) process owns reg_b's name: reg_a is made, then reg_b fails.
    let name_b = shm_name(&id, "reg_b");
    let mine = Buffer::create_shared(&name_b, &registers_type()).expect("creating reg_b");
    mine.set("count", 41u64).unwrap();
    let failure = run_to_exit(
        &registers_package(),
        free_port(),
        &["--id", &id, "--pulse-period-ms", "0"],
    );
    assert!(!failure.status.success(), "{}", failure.stderr);
    assert!(
        failure.stderr.contains("block \"reg_b\"")
            && failure.stderr.contains(&format!(
                "belongs to a running process (pid {})",
                std::process::id()
            )),
        "{}",
        failure.stderr
    );
    assert_eq!(
        shm_names(&id),
        std::slice::from_ref(&name_b),
        "reg_a stayed, or ours went"
    );
    assert_eq!(mine.get("count").unwrap(), ParamValue::UInt(41));
    assert!(mine.is_valid().unwrap());
    drop(mine);
    Segment::unlink(&name_b).expect("unlinking reg_b");

    // The port is taken: the buffers made before listening go again.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let port = taken.local_addr().unwrap().port();
    let failure = run_to_exit(
        &registers_package(),
        port,
        &["--id", &id, "--pulse-period-ms", "0"],
    );
    assert!(!failure.status.success(), "{}", failure.stderr);
    assert!(
        failure.stderr.contains("cannot listen"),
        "{}",
        failure.stderr
    );
    assert_eq!(shm_names(&id), Vec::<String>::new());
}

#[test]
fn failed_startup_pulses_remove_the_buffers() {
    // `run --pulses 3` where block `h` hangs in the first pulse: the
    // watchdog replaces the driver, and `s` (100 ms a pulse) keeps the batch
    // going long enough for the run to notice and fail. The buffers the
    // failed run made must not stay in /dev/shm.
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let config = json!({
        "id": "hang_test",
        "version": "0.0.1",
        "first": ["h"],
        "ip_blocks": [
            {"id": "h", "type": "probe", "downstream_block_ids": ["s"],
             "constants": {"name": "h", "hang_on_pulse": true}},
            {"id": "s", "type": "probe", "constants": {"name": "s", "pulse_sleep_ms": 100}},
        ],
    });
    let package = package(&[("probe", "probe")], &config.to_string());
    std::fs::write(
        package.path().join("emulators/probe/emulator/catalog.json"),
        LEVEL_CATALOG,
    )
    .expect("writing catalog.json");
    let failure = run_to_exit(
        &package,
        free_port(),
        &["--id", &id, "--pulses", "3", "--handler-timeout-ms", "200"],
    );
    assert!(!failure.status.success(), "{}", failure.stderr);
    assert!(
        failure.stderr.contains("block \"h\" is not responding"),
        "{}",
        failure.stderr
    );
    assert_eq!(
        shm_names(&id),
        Vec::<String>::new(),
        "left in /dev/shm after the startup pulses failed"
    );
}

// An outside process's lock and valid flag ----------------------------------

#[test]
fn a_lock_held_outside_answers_503_and_an_invalid_buffer_409() {
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let emu = start_registers(&id, &["--handler-timeout-ms", "300"]);
    let buffer = Buffer::open_shared(&shm_name(&id, "reg_a")).expect("attaching to reg_a");
    {
        let _tx = buffer.transaction().expect("a transaction");
        let locked = emu.get("/reg_a/buffer").expect(503);
        assert!(locked.error().contains("stayed locked"), "{}", locked.text);
        // Other blocks' buffers are not affected.
        assert_eq!(param(&emu, "reg_b", "count"), 0);
    }
    assert_eq!(param(&emu, "reg_a", "count"), 0);

    // A buffer marked invalid by another process: 409 until it is valid again.
    buffer.set_valid(false).unwrap();
    let invalid = emu.get("/reg_a/buffer").expect(409);
    assert!(invalid.error().contains("invalid"), "{}", invalid.text);
    emu.put_json("/reg_a/buffer/count", &json!(3)).expect(409);
    // The plugin's route gets the error too: a 4xx, so the block carries on.
    let bump = emu.post("/reg_a/bump").expect(409);
    assert!(bump.error().contains("invalid"), "{}", bump.text);
    assert_eq!(emu.block_state("reg_a"), "ACTIVE");
    // A pulse handler's error faults the block; reg_b is not affected.
    emu.pulse(1);
    assert_eq!(emu.block_state("reg_a"), "FAULT");
    assert_eq!(emu.block_state("reg_b"), "ACTIVE");
    assert_eq!(param(&emu, "reg_b", "pulses"), 1);
    buffer.set_valid(true).unwrap();
    assert_eq!(
        emu.put_json("/reg_a/buffer/count", &json!(3))
            .expect(200)
            .json()["value"],
        3
    );
    terminate(emu, &id);
}

#[test]
fn terminate_does_not_wait_for_a_lock_held_outside() {
    let id = unique_id();
    let _guard = ShmGuard(id.clone());
    let mut emu = start_registers(&id, &[]);
    let buffer = Buffer::open_shared(&shm_name(&id, "reg_a")).expect("attaching to reg_a");
    let exited = {
        let _tx = buffer.transaction().expect("a transaction");
        emu.post("/terminate").expect(202);
        emu.wait_exit(Duration::from_secs(3))
    };
    let names = shm_names(&id);
    // Let it end either way before asserting.
    let _ = emu.wait_exit(PATIENCE);
    assert!(
        exited.is_some(),
        "still running 3 s after /terminate while another process held reg_a's lock"
    );
    assert_eq!(names, Vec::<String>::new());
}
