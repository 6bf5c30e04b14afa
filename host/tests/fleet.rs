//! `bitstream-emulator fleet`: the real binary running several emulators in
//! one process, each on its own loopback port, with its admin index; bad
//! manifests refused whole; one emulator's hung or panicking block leaving
//! the others serving; the documented example parsed.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bitstream_host::fleet::{self, Overrides, Plan};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use support::{fixture, package, probe_pair_config, workspace_dir, BINARY, PATIENCE};
use tempfile::TempDir;

/// A running `fleet` child, killed when dropped.
struct FleetProcess {
    child: Child,
    /// `http://127.0.0.1:<port>` of the admin index.
    admin: String,
    stderr: Arc<Mutex<String>>,
    client: Client,
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

fn fleet_command(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("fleet")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

impl FleetProcess {
    /// Runs `fleet <args> --admin 127.0.0.1:0` and waits until every
    /// emulator serves (the `fleet: N emulators ... serving` line).
    fn start(args: &[&str]) -> FleetProcess {
        let mut all = args.to_vec();
        all.extend(["--admin", "127.0.0.1:0"]);
        let mut child = fleet_command(&all).spawn().expect("spawning the fleet");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines, received) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let seen = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                seen.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let mut admin = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = received.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "the fleet never served; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            };
            if let Some(rest) = line.split("admin index on http://").nth(1) {
                admin = Some(format!("http://{}", rest.trim_end_matches("/ui").trim()));
            }
            if line.contains("emulators of") && line.contains("serving, started in") {
                break;
            }
        }
        let Some(admin) = admin else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no admin line before the fleet line; stderr:\n{}",
                stderr.lock().unwrap()
            );
        };
        FleetProcess {
            child,
            admin,
            stderr,
            client: client(),
        }
    }

    fn index(&self) -> Value {
        self.client
            .get(format!("{}/", self.admin))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET / of the admin index: {e}"))
    }

    /// Each emulator's URL by id, from the admin index.
    fn urls(&self) -> Vec<(String, String)> {
        self.index()["emulators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_owned(),
                    e["url"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn entry(&self, id: &str) -> Value {
        self.index()["emulators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in the index"))
    }
}

impl Drop for FleetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `fleet <args>` expecting it to exit by itself: (success, stdout,
/// stderr).
fn run_to_exit(args: &[&str]) -> (bool, String, String) {
    let child = fleet_command(args).spawn().expect("spawning the fleet");
    let started = Instant::now();
    let output = child.wait_with_output().expect("waiting for the fleet");
    assert!(
        started.elapsed() < PATIENCE * 2,
        "the fleet took {:?}",
        started.elapsed()
    );
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).expect("writing the manifest");
    path
}

#[test]
fn the_documented_example_parses_and_its_packages_load() {
    let example = workspace_dir().join("deploy/fleet.example.toml");
    let text = std::fs::read_to_string(&example).expect("deploy/fleet.example.toml");
    let guide =
        std::fs::read_to_string(workspace_dir().join("docs/fleet.md")).expect("docs/fleet.md");
    assert!(
        guide.contains(&text),
        "docs/fleet.md must show deploy/fleet.example.toml verbatim (copy the file into its toml block)"
    );
    let plan =
        Plan::from_manifest_file(&example, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = plan.emulators.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "fhs-vcc-emulator-1",
            "fhs-vcc-emulator-2",
            "fhs-vcc-emulator-3"
        ]
    );
    assert_eq!(plan.emulators[2].bind.port(), 5003);
    assert!(plan.emulators[2].stopped && !plan.emulators[0].stopped);
    assert_eq!(plan.admin.map(|a| a.port()), Some(5000));
    assert_eq!(plan.log_level.as_deref(), Some("INFO"));
    // Relative to the manifest's folder: the real packages (their plugins
    // placed by ci/vcc-package.sh) load.
    let packages = fleet::start::load_packages(&plan).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(packages.len(), 2);
}

#[test]
fn dry_run_prints_the_plan_and_leaves_nothing_listening() {
    let pkg = package(&[("probe", "probe")], &probe_pair_config("dry"));
    let base = support::free_port();
    let base_text = base.to_string();
    let (ok, stdout, stderr) = run_to_exit(&[
        "--package",
        pkg.path().to_str().unwrap(),
        "--count",
        "3",
        "--id-prefix",
        "fhs-vcc-emulator-",
        "--base-port",
        &base_text,
        "--bind-host",
        "127.0.0.1",
        "--admin",
        "127.0.0.1:0",
        "--injector",
        "127.0.0.1:0",
        "--dry-run",
    ]);
    assert!(ok, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let emulators = plan["emulators"].as_array().unwrap();
    assert_eq!(emulators.len(), 3, "{plan}");
    assert_eq!(emulators[2]["id"], "fhs-vcc-emulator-3");
    assert_eq!(emulators[2]["bind"], format!("127.0.0.1:{}", base + 2));
    assert_eq!(emulators[0]["package"], pkg.path().to_str().unwrap());
    assert_eq!(plan["admin"], "127.0.0.1:0");
    assert_eq!(plan["injector"], "127.0.0.1:0");
    for port in base..base + 3 {
        TcpListener::bind(("127.0.0.1", port)).expect("a dry run leaves every port free");
    }
}

#[test]
fn unknown_keys_are_all_reported_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[defaults]\npulse_perod_ms = 10\n\n[[emulator]]\nid = \"a\"\npackage = \"p\"\nbind = \"127.0.0.1:0\"\nport = 5001\n",
    );
    let (ok, stdout, stderr) = run_to_exit(&[manifest.to_str().unwrap(), "--dry-run"]);
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("2 problems in"), "{stderr}");
    assert!(
        stderr.contains("line 2: unknown key `pulse_perod_ms` in [defaults]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 8: unknown key `port` in [[emulator]] \"a\""),
        "{stderr}"
    );
}

#[test]
fn a_bad_manifest_lists_every_problem_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = package(&[("probe", "probe")], &probe_pair_config("good"));
    // A package whose config names a type without a plugin folder.
    let broken_config = json!({
        "id": "broken", "version": "0.0.1", "first": ["a"],
        "ip_blocks": [{"id": "a", "type": "nothing", "constants": {}}],
    });
    let broken = package(&[("probe", "probe")], &broken_config.to_string());
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let free = support::free_port();
    let text = format!(
        "[defaults]\nlocal_buffers = true\n\n\
         [[emulator]]\nid = \"ok\"\npackage = \"{good}\"\nbind = \"127.0.0.1:{free}\"\n\n\
         [[emulator]]\nid = \"ok\"\npackage = \"{good}\"\nbind = \"127.0.0.1:{free}\"\n\n\
         [[emulator]]\nid = \"lost\"\npackage = \"no-such-package\"\nbind = \"127.0.0.1:0\"\n\n\
         [[emulator]]\nid = \"invalid\"\npackage = \"{broken}\"\nbind = \"127.0.0.1:0\"\n\n\
         [[emulator]]\nid = \"busy\"\npackage = \"{good}\"\nbind = \"127.0.0.1:{busy_port}\"\n",
        good = good.path().display(),
        broken = broken.path().display(),
    );
    let manifest = write_manifest(dir.path(), &text);
    // Plan problems (duplicate id and address, missing package) are found
    // before anything is loaded or bound.
    let (ok, _, stderr) = run_to_exit(&[manifest.to_str().unwrap()]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("3 problems in"), "{stderr}");
    assert!(
        stderr.contains("line 9: emulator \"ok\" is a duplicate id (first used on line 4)"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("line 9: emulator \"ok\": bind 127.0.0.1:{free} uses the same address, already taken by emulator \"ok\" on line 4")), "{stderr}");
    assert!(
        stderr.contains("line 14: emulator \"lost\" (line 14): package "),
        "{stderr}"
    );
    assert!(
        stderr.contains("no-such-package does not exist"),
        "{stderr}"
    );

    // Without them: the invalid package and the port in use, both.
    let text = text
        .replacen("id = \"ok\"", "id = \"ok-2\"", 2)
        .replacen("id = \"ok-2\"", "id = \"ok\"", 1)
        .replacen(&format!("127.0.0.1:{free}"), "127.0.0.1:0", 2)
        .replace(
            "package = \"no-such-package\"",
            &format!("package = \"{}\"", good.path().display()),
        );
    let manifest = write_manifest(dir.path(), &text);
    let (ok, _, stderr) = run_to_exit(&[manifest.to_str().unwrap()]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("2 problems in"), "{stderr}");
    assert!(
        stderr.contains("line 19: emulator \"invalid\" (line 19): package "),
        "{stderr}"
    );
    assert!(stderr.contains("\"nothing\""), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "line 24: emulator \"busy\": cannot listen on 127.0.0.1:{busy_port}"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("serving"),
        "nothing may have served: {stderr}"
    );
    // The same checks in a dry run.
    let (ok, stdout, dry) = run_to_exit(&[manifest.to_str().unwrap(), "--dry-run"]);
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(dry.contains("2 problems in"), "{dry}");
    drop(busy);
}

/// The shared-memory names of emulator `id`.
fn shm_names(id: &str) -> Vec<String> {
    let prefix = format!("bitstream-{id}-");
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_emulator_that_cannot_start_takes_the_started_ones_down_with_their_buffers() {
    let config = json!({
        "id": "regs", "version": "0.0.1", "first": ["r"],
        "ip_blocks": [{"id": "r", "type": "registers", "constants": {}}],
    })
    .to_string();
    let pkg = package(&[("registers", "registers")], &config);
    let tag = format!("fleettest-{}", std::process::id());
    let taken = format!("{tag}-taken");
    // Another process holds emulator `taken`'s buffer name.
    let holder = support::Emulator::start_package(
        package(&[("registers", "registers")], &config),
        &["--id", &taken, "--pulse-period-ms", "0"],
    );
    assert_eq!(shm_names(&taken).len(), 1, "the holder's buffer");
    let first = format!("{tag}-first");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[emulator]]\nid = \"{first}\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\n\
         [[emulator]]\nid = \"{taken}\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\n",
        p = pkg.path().display()
    );
    let manifest = write_manifest(dir.path(), &text);
    let (ok, _, stderr) = run_to_exit(&[manifest.to_str().unwrap(), "--pulse-period-ms", "0"]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "line 5: emulator \"{taken}\": cannot start: block \"r\""
        )),
        "{stderr}"
    );
    assert_eq!(
        shm_names(&first),
        Vec::<String>::new(),
        "the started emulator's buffers are gone"
    );
    assert_eq!(
        shm_names(&taken).len(),
        1,
        "the other process's buffer is untouched"
    );
    drop(holder);
}

#[test]
fn a_hung_or_panicking_block_in_one_emulator_leaves_the_others_serving() {
    let pkg = package(&[("probe", "probe")], &probe_pair_config("probes"));
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[defaults]\nhandler_timeout_ms = 300\npulse_period_ms = 0\nlocal_buffers = true\n\
         [[emulator]]\nid = \"hangs\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\n\
         [[emulator]]\nid = \"panics\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\n\
         [[emulator]]\nid = \"calm\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\npulse_period_ms = 20\n",
        p = pkg.path().display()
    );
    let manifest = write_manifest(dir.path(), &text);
    let fleet = FleetProcess::start(&[manifest.to_str().unwrap()]);
    let urls: std::collections::HashMap<String, String> = fleet.urls().into_iter().collect();
    assert_eq!(urls.len(), 3, "{urls:?}");
    let http = client();

    let hang = http
        .post(format!("{}/a/hang", urls["hangs"]))
        .send()
        .unwrap();
    assert_eq!(hang.status().as_u16(), 504, "a route that never returns");
    let panic = http
        .post(format!("{}/b/panic", urls["panics"]))
        .send()
        .unwrap();
    assert_eq!(panic.status().as_u16(), 500, "a panicking route");

    // The calm one pulses on and answers; so do the others' healthy blocks.
    let pulses = |url: &str| -> u64 {
        http.get(format!("{url}/b/status"))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["pulses"]
            .as_u64()
            .unwrap()
    };
    let before = pulses(&urls["calm"]);
    support::wait_for("the calm emulator's pulses", PATIENCE, || {
        (pulses(&urls["calm"]) > before + 3).then_some(())
    });
    let state = http.get(format!("{}/state", urls["hangs"])).send().unwrap();
    assert_eq!(state.status().as_u16(), 200);
    let other = http
        .post(format!("{}/pulse?count=5", urls["panics"]))
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 200, "{:?}", other.text());

    let hangs = fleet.entry("hangs");
    assert_eq!(
        (hangs["hung"].as_u64(), hangs["faulted"].as_u64()),
        (Some(1), Some(0)),
        "{hangs}"
    );
    let panics = fleet.entry("panics");
    assert_eq!(
        (panics["hung"].as_u64(), panics["faulted"].as_u64()),
        (Some(0), Some(1)),
        "{panics}"
    );
    let calm = fleet.entry("calm");
    assert_eq!(
        (
            calm["hung"].as_u64(),
            calm["faulted"].as_u64(),
            calm["state"].as_str()
        ),
        (Some(0), Some(0), Some("RUNNING")),
        "{calm}"
    );
    assert!(
        !fleet.stderr.lock().unwrap().contains("panicked at"),
        "no host panic"
    );
}

#[test]
fn emulators_of_one_package_share_its_libraries_and_a_swap_stays_in_its_emulator() {
    let pkg = package(&[("probe", "probe")], &probe_pair_config("shared"));
    // A second package whose library is the same file (a hard link).
    let linked = package(&[("probe", "probe")], &probe_pair_config("linked"));
    let library = |p: &TempDir| {
        p.path()
            .join("emulators/probe/emulator/libfixture_probe.so")
    };
    std::fs::remove_file(library(&linked)).unwrap();
    std::fs::hard_link(library(&pkg), library(&linked)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[defaults]\nlocal_buffers = true\npulse_period_ms = 0\n\
         [[emulator]]\nid = \"one\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\n\
         [[emulator]]\nid = \"two\"\npackage = \"{p}\"\nbind = \"127.0.0.1:0\"\n\
         [[emulator]]\nid = \"three\"\npackage = \"{l}\"\nbind = \"127.0.0.1:0\"\n",
        p = pkg.path().display(),
        l = linked.path().display()
    );
    let manifest = write_manifest(dir.path(), &text);
    let fleet = FleetProcess::start(&[manifest.to_str().unwrap()]);
    let libraries = &fleet.index()["libraries"];
    assert_eq!(
        libraries["loaded"], 1,
        "one library for three emulators of two packages: {libraries}"
    );
    assert_eq!(
        libraries["reused"], 1,
        "the second package reuses it: {libraries}"
    );

    let urls: std::collections::HashMap<String, String> = fleet.urls().into_iter().collect();
    let http = client();
    let version = |id: &str| -> Value {
        let all: Value = http
            .get(format!("{}/plugins", urls[id]))
            .send()
            .unwrap()
            .json()
            .unwrap();
        all["plugins"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["ip_block_type"] == "probe"))
            .cloned()
            .unwrap_or_else(|| panic!("no probe in {all}"))["version"]
            .clone()
    };
    let before = version("two");
    let swapped = http
        .post(format!("{}/plugins/probe/reload", urls["one"]))
        .json(&json!({"path": fixture("probe_v2")}))
        .send()
        .unwrap();
    assert_eq!(swapped.status().as_u16(), 200, "{:?}", swapped.text());
    assert_ne!(version("one"), before, "emulator one runs probe_v2");
    assert_eq!(
        version("two"),
        before,
        "emulator two still runs the shared library"
    );
    assert_eq!(version("three"), before);
    let v2 = http
        .get(format!("{}/a/version", urls["one"]))
        .send()
        .unwrap();
    assert_eq!(v2.status().as_u16(), 200);
    let v1 = http
        .get(format!("{}/a/version", urls["two"]))
        .send()
        .unwrap();
    assert_eq!(v1.status().as_u16(), 404, "probe v1 has no version route");
}

#[test]
fn the_admin_index_lists_every_emulator_and_terminate_ends_only_its_emulator() {
    let pkg = package(&[("probe", "probe")], &probe_pair_config("admin"));
    let dir = tempfile::tempdir().unwrap();
    let base = support::free_port();
    let fleet = FleetProcess::start(&[
        "--package",
        pkg.path().to_str().unwrap(),
        "--count",
        "3",
        "--id-prefix",
        "fhs-vcc-emulator-",
        "--base-port",
        &base.to_string(),
        "--pulse-period-ms",
        "0",
        "--local-buffers",
    ]);
    drop(dir);
    let index = fleet.index();
    let emulators = index["emulators"].as_array().unwrap();
    assert_eq!(emulators.len(), 3, "{index}");
    for (n, entry) in emulators.iter().enumerate() {
        assert_eq!(entry["id"], format!("fhs-vcc-emulator-{}", n + 1));
        assert_eq!(entry["bind"], format!("127.0.0.1:{}", base + n as u16));
        assert_eq!(entry["blocks"], 2);
        assert_eq!(entry["state"], "RUNNING");
        assert_eq!(
            entry["links"]["ui"],
            format!("http://127.0.0.1:{}/ui", base + n as u16)
        );
    }
    let http = client();
    // Each answers as `run` does, at its own port.
    let state: Value = http
        .get(format!("http://127.0.0.1:{}/state", base + 1))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(state["current_state"], "RUNNING", "{state}");
    let page = http.get(format!("{}/ui", fleet.admin)).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().unwrap().contains("Emulator fleet"));

    let ended = http
        .post(format!("http://127.0.0.1:{base}/terminate"))
        .send()
        .unwrap();
    assert_eq!(ended.status().as_u16(), 202);
    support::wait_for("emulator 1 to end", PATIENCE, || {
        (fleet.entry("fhs-vcc-emulator-1")["state"] == "TERMINATED").then_some(())
    });
    assert_eq!(fleet.entry("fhs-vcc-emulator-2")["state"], "RUNNING");
    let pulsed = http
        .post(format!("http://127.0.0.1:{}/pulse?count=3", base + 2))
        .send()
        .unwrap();
    assert_eq!(pulsed.status().as_u16(), 200);
}

#[test]
fn shared_loading_reuses_the_library_and_emulators_share_the_checked_plugin() {
    use bitstream_host::engine::block_buffer::BufferMode;
    use bitstream_host::engine::{Emulator, EngineOptions, Libraries, Package};
    let pkg = package(&[("probe", "probe")], &probe_pair_config("inproc"));
    let copy = package(&[("probe", "probe")], &probe_pair_config("inproc_copy"));
    let first = Package::load(pkg.path(), &[], Libraries::Shared).unwrap();
    let again = Package::load(pkg.path(), &[], Libraries::Shared).unwrap();
    let private = Package::load(pkg.path(), &[], Libraries::Private).unwrap();
    let copied = Package::load(copy.path(), &[], Libraries::Shared).unwrap();
    let library = |p: &Package| p.plugins().next().unwrap().library.clone();
    assert!(
        library(&first).same_module(&library(&again)),
        "the same file, loaded once"
    );
    assert!(
        !library(&first).same_module(&library(&private)),
        "a private load is its own library"
    );
    assert!(
        !library(&first).same_module(&library(&copied)),
        "a copy (another inode) is another library"
    );

    let options = |id: &str| EngineOptions {
        id: id.to_owned(),
        pulse_period: None,
        start_running: false,
        buffers: BufferMode::Local,
        ..EngineOptions::default()
    };
    let one = Emulator::from_package(&first, options("one")).unwrap();
    let two = Emulator::from_package(&first, options("two")).unwrap();
    assert!(Arc::ptr_eq(
        &one.blocks()[0].plugin(),
        &two.blocks()[0].plugin()
    ));
    assert_eq!(two.id(), "two");
    one.run_pulses(3).unwrap();
    assert_eq!(
        (one.pulse_count(), two.pulse_count()),
        (3, 0),
        "separate emulators"
    );
    one.terminate();
    two.terminate();
}

#[test]
fn the_fleet_injector_hands_each_member_its_groups_and_reports_an_unknown_one() {
    let pkg = package(&[("probe", "probe")], &probe_pair_config("injected"));
    let base = support::free_port();
    let injector_port = support::free_port();
    let injector = format!("127.0.0.1:{injector_port}");
    let fleet = FleetProcess::start(&[
        "--package",
        pkg.path().to_str().unwrap(),
        "--count",
        "2",
        "--id-prefix",
        "fhs-vcc-emulator-",
        "--base-port",
        &base.to_string(),
        "--pulse-period-ms",
        "0",
        "--local-buffers",
        "--injector",
        &injector,
    ]);
    let http = client();
    let event = |n: u64| json!({"severity": "WARNING", "value": {"n": n}, "offset": 0});
    let group = |emulator: &str, block: &str, n: u64| json!({"bitstream_emulator_id": emulator, "ip_block_emulator_id": block, "events": [event(n)]});
    let reply = http
        .post(format!("http://{injector}/inject"))
        .json(&json!({"injector_event_groups": [
            group("fhs-vcc-emulator-1", "a", 1),
            group("ghost", "a", 2),
            group("fhs-vcc-emulator-2", "b", 3),
        ]}))
        .send()
        .unwrap();
    let status = reply.status().as_u16();
    let answer: Value = reply.json().unwrap();
    assert_eq!(status, 404, "only the unknown emulator failed: {answer}");
    let statuses: Vec<_> = answer["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups: {answer}"))
        .iter()
        .map(|g| (g["bitstream_emulator_id"].clone(), g["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (json!("fhs-vcc-emulator-1"), json!(202)),
            (json!("ghost"), json!(404)),
            (json!("fhs-vcc-emulator-2"), json!(202)),
        ],
        "{answer}"
    );
    assert!(
        answer["groups"][1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("ghost") && e.contains("fhs-vcc-emulator-1")),
        "the error names the unknown id and the known ones: {answer}"
    );
    // Each member's block got its own event, and only its own.
    let log = |port: u16, block: &str| -> Vec<String> {
        let status: Value = http
            .get(format!("http://127.0.0.1:{port}/{block}/status"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        support::lines(&status["log"])
    };
    let manual = |lines: &[String]| lines.iter().filter(|l| l.contains("manual")).count();
    support::wait_for("both events delivered", PATIENCE, || {
        (manual(&log(base, "a")) == 1 && manual(&log(base + 1, "b")) == 1).then_some(())
    });
    assert_eq!(log(base, "a"), [r#"manual INJECTION WARNING {"n":1}"#]);
    assert_eq!(log(base + 1, "b"), [r#"manual INJECTION WARNING {"n":3}"#]);
    assert_eq!(manual(&log(base, "b")), 0, "{:?}", log(base, "b"));
    assert_eq!(manual(&log(base + 1, "a")), 0, "{:?}", log(base + 1, "a"));
    drop(fleet);
}
