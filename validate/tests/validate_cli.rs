//! End-to-end tests of `validate-bitstream`: the real binary, real child
//! processes, and the fixture plugins that `cargo build --workspace` puts in
//! the target folder (`ci/test.sh` builds them before testing).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const VALIDATOR: &str = env!("CARGO_BIN_EXE_validate-bitstream");

/// `target/<profile>`, where the fixture plugins are built.
fn build_dir() -> PathBuf {
    Path::new(VALIDATOR)
        .parent()
        .expect("binary has a folder")
        .to_path_buf()
}

fn fixture_library(name: &str) -> PathBuf {
    let path = build_dir().join(format!("libfixture_{name}.so"));
    assert!(
        path.exists(),
        "{} is missing: build the fixtures first with `cargo build --workspace` (ci/test.sh does)",
        path.display()
    );
    path
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A bitstream package in a temporary folder.
struct Package {
    dir: TempDir,
}

impl Package {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("emulators")).unwrap();
        Package { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn emulator_dir(&self, ip_block_type: &str) -> PathBuf {
        let dir = self
            .path()
            .join("emulators")
            .join(ip_block_type)
            .join("emulator");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Adds fixture plugin `fixture` as type `ip_block_type`.
    fn plugin(self, ip_block_type: &str, fixture: &str) -> Self {
        let library = fixture_library(fixture);
        let dest = self
            .emulator_dir(ip_block_type)
            .join(library.file_name().unwrap());
        std::fs::copy(&library, dest).unwrap();
        self
    }

    /// Adds a file from `fixtures/files/` as type `ip_block_type`'s library.
    fn file(self, ip_block_type: &str, file: &str) -> Self {
        let src = repo_root().join("fixtures/files").join(file);
        std::fs::copy(&src, self.emulator_dir(ip_block_type).join(file)).unwrap();
        self
    }

    fn config(self, json: &str) -> Self {
        std::fs::write(self.path().join("emulators/config.json"), json).unwrap();
        self
    }

    fn validate(&self, args: &[&str]) -> Run {
        run(self.path(), args)
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    fn assert_stdout_has(&self, fragment: &str) -> &Self {
        assert!(
            self.stdout.contains(fragment),
            "stdout lacks {fragment:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", self.stdout))
    }
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(VALIDATOR)
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: status.code().expect("validator exited normally"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// The JSON report's checks of one plugin, as (name, status, messages).
fn checks_of(
    report: &serde_json::Value,
    ip_block_type: &str,
) -> Vec<(String, String, Vec<String>)> {
    let plugin = report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ip_block_type"] == ip_block_type)
        .unwrap_or_else(|| panic!("no plugin {ip_block_type} in {report:#}"));
    plugin["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let messages = c["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["message"].as_str().unwrap().to_owned())
                .collect();
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                messages,
            )
        })
        .collect()
}

/// Asserts that `check` is the first failed check of the plugin, that its
/// problems include `fragment`, and that every later check was skipped.
fn assert_fails_at(report: &serde_json::Value, ip_block_type: &str, check: &str, fragment: &str) {
    let checks = checks_of(report, ip_block_type);
    let failed: Vec<_> = checks.iter().filter(|c| c.1 == "failed").collect();
    assert_eq!(
        failed.len(),
        1,
        "exactly one failed check expected: {checks:#?}"
    );
    let (name, _, messages) = failed[0];
    assert_eq!(name, check, "{checks:#?}");
    assert!(
        messages.iter().any(|m| m.contains(fragment)),
        "{check} problems {messages:#?} lack {fragment:?}"
    );
    let position = checks.iter().position(|c| &c.0 == name).unwrap();
    assert!(
        checks[position + 1..].iter().all(|c| c.1 == "skipped"),
        "checks after {check} must be skipped: {checks:#?}"
    );
    assert_eq!(checks.len(), 9, "all nine checks are reported: {checks:#?}");
}

fn validate_one(ip_block_type: &str, fixture: &str) -> serde_json::Value {
    let package = Package::new().plugin(ip_block_type, fixture);
    let run = package.validate(&["--format", "json"]);
    let report = run.json();
    assert_eq!(run.code, if report["valid"] == true { 0 } else { 1 });
    report
}

const COUNTER_CONFIG: &str = r#"{
  "id": "test_bitstream", "version": "0.0.1",
  "ip_blocks": [
    {"id": "counter_a", "type": "counter", "downstream_block_ids": ["counter_b"], "constants": {"label": "A"}},
    {"id": "counter_b", "type": "counter", "downstream_block_ids": []}
  ],
  "first": ["counter_a"]
}"#;

#[test]
fn valid_package_passes_with_exit_0() {
    let package = Package::new()
        .plugin("counter", "minimal")
        .config(COUNTER_CONFIG);
    package
        .validate(&[])
        .assert_code(0)
        .assert_stdout_has("ok      counter (fixture-minimal 0.1.0, SDK 1.2.0)")
        .assert_stdout_has("ok      config:")
        // The fixtures are debug builds: the one warning says what that costs.
        .assert_stdout_has("libfixture_minimal.so: built without optimization (cargo profile `debug`, opt-level 0): ")
        .assert_stdout_has(
            "1 plugin(s) checked, 0 invalid; config valid; 0 error(s), 1 warning(s)",
        );
    package.validate(&["-i", "counter"]).assert_code(0);
}

#[test]
fn each_missing_component_is_named() {
    for component in ["ip_block", "state_machine", "api", "event_handler"] {
        let report = validate_one("counter", &format!("missing_{component}"));
        assert_fails_at(
            &report,
            "counter",
            "components",
            &format!("missing component `{component}`"),
        );
    }
}

#[test]
fn panicking_constructor_fails_the_ip_block_check() {
    let report = validate_one("counter", "panicking_constructor");
    assert_fails_at(
        &report,
        "counter",
        "ip_block",
        "cannot be constructed with Default: plugin panicked: constructor panicked on purpose (at ",
    );
}

#[test]
fn panicking_api_fails_the_api_check() {
    let report = validate_one("counter", "panicking_api");
    assert_fails_at(
        &report,
        "counter",
        "api",
        "api of type \"counter\" cannot be described: plugin panicked:",
    );
}

#[test]
fn plugin_that_aborts_at_load_is_reported_and_others_still_checked() {
    let package = Package::new()
        .plugin("aborting", "aborts_on_load")
        .plugin("counter", "minimal")
        .plugin("hanging", "hangs_on_load");
    let run = package.validate(&["--format", "json", "--timeout", "2"]);
    run.assert_code(1);
    let report = run.json();
    assert_fails_at(
        &report,
        "aborting",
        "load",
        "killed by SIGABRT (the plugin aborted the process)",
    );
    assert_fails_at(
        &report,
        "hanging",
        "load",
        "did not finish within 2 s (the plugin hangs here)",
    );
    assert!(checks_of(&report, "counter")
        .iter()
        .all(|c| c.1 == "passed" || c.0 == "constants" || (c.0 == "load" && c.1 == "warning")));
    assert_eq!(report["summary"]["invalid_plugins"], 2);
}

#[test]
fn files_that_are_not_plugins_say_why() {
    let report = validate_one_file("text", "not_a_plugin.so");
    assert_fails_at(
        &report,
        "text",
        "load",
        "not a shared object: no ELF header",
    );
    let report = validate_one_file("arm", "aarch64.so");
    assert_fails_at(
        &report,
        "arm",
        "load",
        "wrong architecture: built for Aarch64 (64-bit), but this host is x86_64",
    );
}

fn validate_one_file(ip_block_type: &str, file: &str) -> serde_json::Value {
    let run = Package::new()
        .file(ip_block_type, file)
        .validate(&["--format", "json"]);
    run.assert_code(1);
    run.json()
}

#[test]
fn undefined_symbols_are_named() {
    let report = validate_one("counter", "undefined_symbol");
    assert_fails_at(
        &report,
        "counter",
        "load",
        "undefined symbol `bitstream_fixture_missing_symbol`",
    );
}

#[test]
fn incompatible_sdk_version_says_which_sdk_built_it() {
    let report = validate_one("counter", "incompatible_sdk");
    assert_fails_at(
        &report,
        "counter",
        "abi",
        "built with SDK 1.99.0, but this host (SDK 1.2.0) supports plugins built with SDK 1.0 to 1.2",
    );
    // The report keeps the version the plugin claims, though it is refused.
    assert_eq!(report["plugins"][0]["sdk_version"], "1.99.0", "{report:#}");
    let checks = checks_of(&report, "counter");
    assert_eq!(
        checks[1].1, "passed",
        "the library itself loads: {checks:#?}"
    );
}

#[test]
fn folder_layout_needs_exactly_one_library() {
    let package = Package::new().plugin("counter", "minimal");
    package.emulator_dir("empty");
    let run = package.validate(&["--format", "json"]);
    run.assert_code(1);
    assert_fails_at(
        &run.json(),
        "empty",
        "layout",
        "no plugin library (*.so) in the emulator folder",
    );

    let package = Package::new()
        .plugin("two", "minimal")
        .plugin("two", "missing_api");
    let run = package.validate(&["--format", "json"]);
    assert_fails_at(
        &run.json(),
        "two",
        "layout",
        "2 plugin libraries where exactly one is expected (libfixture_minimal.so, libfixture_missing_api.so)",
    );
}

#[test]
fn malformed_state_machines_are_reported() {
    let report = validate_one("counter", "bad_machine_states");
    for fragment in [
        "duplicate state \"ACTIVE\": it is declared 2 times",
        "initial state \"IDLE\" is not a declared state",
    ] {
        assert_fails_at(&report, "counter", "state_machine", fragment);
    }

    let report = validate_one("counter", "bad_machine_transitions");
    for fragment in [
        "transition #1 (CRITICAL_FAULT: ACTIVE -> NOWHERE) enters undeclared state \"NOWHERE\"",
        "transition #2 (JUMP: ACTIVE -> FAULT) uses undeclared trigger \"JUMP\"",
        "transition #3 (RECOVER: FROM_ANY, FAULT -> ACTIVE): FROM_ANY must be the only source",
        "transition #4 (RECOVER: TO_SAME -> ACTIVE): TO_SAME is not a valid source",
    ] {
        assert_fails_at(&report, "counter", "state_machine", fragment);
    }

    let report = validate_one("counter", "ambiguous_machine");
    assert_fails_at(
        &report,
        "counter",
        "state_machine",
        "ambiguous transitions: transition #1 (START: RESET -> A) and transition #2 (START: RESET -> B) \
         both fire on trigger \"START\" from state \"RESET\" with no conditions",
    );
}

#[test]
fn unreachable_state_is_only_a_warning() {
    let package = Package::new().plugin("counter", "unreachable_state");
    package
        .validate(&[])
        .assert_code(0)
        .assert_stdout_has("warning [state_machine]: state machine of type \"counter\": state \"ORPHAN\" is unreachable")
        .assert_stdout_has("0 error(s), 2 warning(s)");
}

#[test]
fn malformed_api_tables_are_reported() {
    let report = validate_one("counter", "bad_api_names");
    for fragment in [
        "route \"status\" (GET) has the same name as route \"status\" (GET)",
        "route \"bad name/x\" (GET): the name is not a valid URL segment: ' ', '/' are not allowed",
        "route \"state\" (GET): the name \"state\" is reserved",
        "api of type \"counter\": route \"configure\": the body schema is not valid JSON Schema (draft 2020-12): ",
    ] {
        assert_fails_at(&report, "counter", "api", fragment);
    }
    let report = validate_one("counter", "bad_api_params");
    for fragment in [
        "route \"fetch\" (FETCH): method \"FETCH\" is not supported; use one of GET, POST, PUT, PATCH, DELETE",
        "route \"lane\" (GET) has 2 path parameters (\"lane\", \"port\"); a route takes at most one",
        "route \"configure\" (POST) has 2 body parameters (\"settings\", \"extra\"); a route takes at most one",
    ] {
        assert_fails_at(&report, "counter", "api", fragment);
    }
}

#[test]
fn one_bad_plugin_does_not_stop_the_others() {
    let fixtures = [
        ("a_missing_api", "missing_api"),
        ("b_aborts", "aborts_on_load"),
        ("c_panics", "panicking_constructor"),
        ("d_good", "minimal"),
        ("e_sdk", "incompatible_sdk"),
        ("f_machine", "bad_machine_transitions"),
    ];
    let package = fixtures
        .iter()
        .fold(Package::new(), |p, (ty, fixture)| p.plugin(ty, fixture))
        .file("g_text", "not_a_plugin.so");
    let run = package.validate(&["--format", "json"]);
    run.assert_code(1);
    let report = run.json();
    assert_eq!(report["summary"]["plugins"], 7);
    assert_eq!(report["summary"]["invalid_plugins"], 6);
    let valid: Vec<_> = report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["valid"] == true)
        .map(|p| p["ip_block_type"].as_str().unwrap())
        .collect();
    assert_eq!(valid, ["d_good"]);
}

#[test]
fn constants_are_checked_against_the_ip_block() {
    let config = COUNTER_CONFIG.replace(
        r#""constants": {"label": "A"}"#,
        r#""constants": {"lable": "A"}"#,
    );
    let run = Package::new()
        .plugin("counter", "minimal")
        .config(&config)
        .validate(&["--format", "json"]);
    run.assert_code(1);
    assert_fails_at(
        &run.json(),
        "counter",
        "constants",
        "block \"counter_a\" (type \"counter\"): its constants in config.json are not accepted: unknown constant `lable`",
    );

    let config = COUNTER_CONFIG.replace(
        r#""constants": {"label": "A"}"#,
        r#""constants": {"pulses": "many"}"#,
    );
    let run = Package::new()
        .plugin("counter", "minimal")
        .config(&config)
        .validate(&["--format", "json"]);
    assert_fails_at(
        &run.json(),
        "counter",
        "constants",
        "constant `pulses` does not fit ip_block type",
    );
}

#[test]
fn broken_configs_are_reported_with_exit_1() {
    let cases = [
        ("syntax_error.json", "json", "invalid JSON at line 9, column 7: expected `,` or `}`"),
        ("missing_fields.json", "fields", "missing required field \"version\""),
        (
            "missing_fields.json",
            "fields",
            "ip_blocks[2] (id \"wideband_input_buffer\"): missing required field \"type\"",
        ),
        (
            "wrong_types.json",
            "fields",
            "ip_blocks[3] (id \"b45a_wideband_power_meter\"): field \"downstream_block_ids\" must be a list of block ids, found a string",
        ),
        (
            "wrong_types.json",
            "fields",
            "ip_blocks[1] (id \"packet_validation\"): field \"constants\" must be an object",
        ),
        (
            "duplicate_ids.json",
            "block_ids",
            "block id \"b45a_wideband_power_meter\" is used by ip_blocks[4] and ip_blocks[5]",
        ),
        (
            "unknown_type.json",
            "emulators",
            "block \"b123vcc\" has type \"vcc_ch20\", but there is no emulators/vcc_ch20/emulator folder (available: counter)",
        ),
        (
            "unknown_downstream.json",
            "references",
            "block \"wideband_input_buffer\" lists downstream block \"b5b_wideband_power_meter\", which does not exist",
        ),
        (
            "unknown_first.json",
            "references",
            "field \"first\" names block \"ethernet_100g\", which does not exist; did you mean \"ethernet_200g\"?",
        ),
        (
            "cycle.json",
            "cycles",
            "cycle in the signal chain: wideband_input_buffer -> wideband_frequency_shifter -> b123vcc -> wideband_input_buffer",
        ),
    ];
    for (file, check, fragment) in cases {
        let text =
            std::fs::read_to_string(repo_root().join("fixtures/configs").join(file)).unwrap();
        let run = Package::new()
            .plugin("counter", "minimal")
            .config(&text)
            .validate(&["--format", "json"]);
        run.assert_code(1);
        let report = run.json();
        assert_eq!(report["config"]["valid"], false, "{file}");
        let failed = report["config"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == check)
            .unwrap_or_else(|| panic!("{file}: no {check} check in {report:#}"));
        assert_eq!(failed["status"], "failed", "{file}: {report:#}");
        let messages: Vec<&str> = failed["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["message"].as_str().unwrap())
            .collect();
        let config_path = format!("{}: ", report["config"]["path"].as_str().unwrap());
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with(&config_path) && m.contains(fragment)),
            "{file}: {messages:#?} lack {fragment:?} after the file's path"
        );
    }
}

#[test]
fn legacy_dish_config_is_valid() {
    let text =
        std::fs::read_to_string(repo_root().join("fixtures/configs/legacy_dish.json")).unwrap();
    let run = Package::new()
        .plugin("counter", "minimal")
        .config(&text)
        .validate(&[]);
    run.assert_code(0).assert_stdout_has("ok      config:");
}

#[test]
fn json_and_junit_outputs_parse() {
    let package = Package::new()
        .plugin("counter", "minimal")
        .plugin("broken", "missing_api")
        .config(COUNTER_CONFIG);
    let report = package.validate(&["--format", "json"]).json();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["valid"], false);
    assert_eq!(report["plugins"].as_array().unwrap().len(), 2);

    let run = package.validate(&["--format", "junit"]);
    run.assert_code(1);
    let mut reader = quick_xml::Reader::from_str(&run.stdout);
    let (mut cases, mut failures, mut suites) = (0, 0, 0);
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("bad XML ({e}):\n{}", run.stdout))
        {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    b"testsuite" => suites += 1,
                    _ => {}
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(suites, 3, "two plugins and the config");
    assert_eq!(cases, 9 + 9 + 6, "one test case per check");
    assert_eq!(failures, 1, "{}", run.stdout);
}

#[test]
fn usage_errors_exit_2() {
    let missing = run(Path::new("/nonexistent/package"), &[]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("/nonexistent/package: no such directory"),
        "{}",
        missing.stderr
    );

    let package = Package::new()
        .plugin("counter", "minimal")
        .plugin("other", "minimal");
    let unknown = package.validate(&["-i", "nope"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("no ip_block type \"nope\" (-i); available: counter, other"),
        "{}",
        unknown.stderr
    );

    let bad_format = package.validate(&["--format", "yaml"]);
    assert_eq!(bad_format.code, 2);

    let not_package = tempfile::tempdir().unwrap();
    let run = run(not_package.path(), &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("not a bitstream package"),
        "{}",
        run.stderr
    );
}

#[test]
fn only_selected_types_are_checked() {
    let package = Package::new()
        .plugin("counter", "minimal")
        .plugin("broken", "missing_api");
    let report = package.validate(&["-i", "counter", "--format", "json"]);
    report.assert_code(0);
    let json = report.json();
    assert_eq!(json["plugins"].as_array().unwrap().len(), 1);
    assert_eq!(json["plugins"][0]["ip_block_type"], "counter");
}

#[test]
fn accepts_package_emulators_or_one_emulator_folder() {
    let package = Package::new()
        .plugin("counter", "minimal")
        .config(COUNTER_CONFIG);
    run(&package.path().join("emulators"), &[])
        .assert_code(0)
        .assert_stdout_has("ok      config:");
    let single = run(
        &package.path().join("emulators/counter/emulator"),
        &["--format", "json"],
    );
    single.assert_code(0);
    let report = single.json();
    assert_eq!(report["plugins"][0]["ip_block_type"], "counter");
    assert!(
        report["config"].is_null(),
        "one emulator folder has no config to check"
    );
}

// Plugins that attack the checking process (issue: the validator can hang
// and can be fooled) -------------------------------------------------------

/// Runs the validator with extra environment variables; kills it and
/// panics if it has not exited after `bound` (it must never hang).
fn run_bounded(dir: &Path, args: &[&str], env: &[(&str, &Path)], bound: Duration) -> Run {
    let mut command = Command::new(VALIDATOR);
    command
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let out = read_in_background(child.stdout.take().unwrap());
    let err = read_in_background(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("validate-bitstream {args:?} still running after {bound:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The validator's own pipes: a grandchild it failed to kill may still
    // hold them, so wait for them no longer than for the validator.
    let stdout = out.recv_timeout(bound).unwrap_or_else(|_| {
        panic!(
            "validate-bitstream exited but its stdout stayed open: a plugin's child still holds it"
        )
    });
    let stderr = err.recv_timeout(bound).unwrap_or_default();
    Run {
        code: status.code().expect("validator exited normally"),
        stdout,
        stderr,
    }
}

fn read_in_background(mut pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = send.send(text);
    });
    receive
}

/// Whether process `pid` is gone (or a zombie waiting for its reaper).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// The pid the `forks_on_load` fixture's child wrote, once it is there.
fn forked_pid(pid_file: &Path) -> u32 {
    let started = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the fixture's child never wrote {}",
            pid_file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (boundedly) for `pid` to be gone; panics naming it otherwise.
fn assert_killed(pid: u32) {
    let started = Instant::now();
    while !process_gone(pid) {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("the plugin's forked child {pid} outlived the validator");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_plugin_whose_constructor_forks_a_child_holding_stdout_does_not_hang_the_validator() {
    let scratch = tempfile::tempdir().unwrap();
    let pid_file = scratch.path().join("forked.pid");
    let package = Package::new().plugin("forking", "forks_on_load");
    // The forked child sleeps 600 s with the checking process's stdout and
    // stderr open; the checks themselves pass at once.
    let run = run_bounded(
        package.path(),
        &["--format", "json", "--timeout", "10"],
        &[("BITSTREAM_FIXTURE_PID_FILE", &pid_file)],
        Duration::from_secs(60),
    );
    run.assert_code(0);
    assert_eq!(run.json()["valid"], true, "{}", run.stdout);
    assert_killed(forked_pid(&pid_file));
}

#[test]
fn a_hanging_plugin_that_forked_a_child_is_killed_with_its_child_at_the_timeout() {
    let scratch = tempfile::tempdir().unwrap();
    let pid_file = scratch.path().join("forked.pid");
    let package = Package::new().plugin("forking", "forks_on_load");
    let run = run_bounded(
        package.path(),
        &["--format", "json", "--timeout", "2"],
        &[
            ("BITSTREAM_FIXTURE_PID_FILE", &pid_file),
            ("BITSTREAM_FIXTURE_HANG", Path::new("1")),
        ],
        Duration::from_secs(60),
    );
    run.assert_code(1);
    assert_fails_at(
        &run.json(),
        "forking",
        "load",
        "did not finish within 2 s (the plugin hangs here)",
    );
    assert_killed(forked_pid(&pid_file));
}

#[test]
fn a_library_that_prints_a_forged_report_and_exits_0_is_invalid() {
    let package = Package::new().plugin("forged", "forges_report");
    let run = run_bounded(
        package.path(),
        &["--format", "json", "--timeout", "10"],
        &[],
        Duration::from_secs(60),
    );
    run.assert_code(1);
    let report = run.json();
    assert_eq!(report["valid"], false, "{}", run.stdout);
    assert_fails_at(
        &report,
        "forged",
        "load",
        "exited with status 0 without reporting",
    );
    // Nothing of the forged line made it into the report.
    assert!(!run.stdout.contains("libforged.so"), "{}", run.stdout);
}

#[test]
fn loading_that_kills_the_checking_process_leaves_no_plugin_copy_behind() {
    let copies = tempfile::tempdir().unwrap();
    let package = Package::new()
        .plugin("aborting", "aborts_on_load")
        .plugin("hanging", "hangs_on_load")
        .plugin("forged", "forges_report")
        .plugin("counter", "minimal");
    let run = run_bounded(
        package.path(),
        &["--format", "json", "--timeout", "2"],
        &[("BITSTREAM_EMULATOR_PLUGIN_COPY_DIR", copies.path())],
        Duration::from_secs(60),
    );
    run.assert_code(1);
    let left: Vec<_> = std::fs::read_dir(copies.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "private copies left behind: {left:?}");
}

// Special files --------------------------------------------------------------

#[test]
fn a_config_that_is_a_fifo_is_refused_without_opening_it() {
    let package = Package::new().plugin("counter", "minimal");
    let config = package.path().join("emulators/config.json");
    let made = Command::new("mkfifo").arg(&config).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let run = run_bounded(
        package.path(),
        &["--format", "json"],
        &[],
        Duration::from_secs(60),
    );
    run.assert_code(1);
    assert!(
        run.stdout.contains("is not a regular file (it is a FIFO)"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_symlinked_type_folder_is_followed() {
    let elsewhere = tempfile::tempdir().unwrap();
    let real = elsewhere.path().join("counter");
    std::fs::create_dir_all(real.join("emulator")).unwrap();
    std::fs::copy(
        fixture_library("minimal"),
        real.join("emulator/libfixture_minimal.so"),
    )
    .unwrap();
    let package = Package::new();
    std::os::unix::fs::symlink(&real, package.path().join("emulators/counter")).unwrap();
    let package = package.config(COUNTER_CONFIG);
    let run = package.validate(&["--format", "json"]);
    run.assert_code(0);
    let report = run.json();
    assert!(
        // "warning": the fixture is a debug build, which the load check
        // warns about.
        checks_of(&report, "counter")
            .iter()
            .all(|c| c.1 == "passed" || c.1 == "warning"),
        "{report:#}"
    );
}
