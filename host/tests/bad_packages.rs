//! Packages that are broken in ways that used to crash or hang `run`: a
//! plugin library cut short, a plugin whose loading kills the process (no
//! private copy may be left behind), a `config.json` that is not a regular
//! file, and a symlinked `emulators/<type>` folder (followed). The real
//! `bitstream-emulator run` binary, as a child process.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{fixture, free_port, package, run_to_exit, Emulator, BINARY, PATIENCE};

fn counter_config() -> String {
    json!({
        "id": "bad_packages_test",
        "version": "0.0.1",
        "first": ["c"],
        "ip_blocks": [{"id": "c", "type": "counter", "constants": {}}],
    })
    .to_string()
}

#[test]
fn a_truncated_plugin_is_refused_by_run_with_a_clear_error() {
    let package = package(&[("counter", "minimal")], &counter_config());
    let library = package
        .path()
        .join("emulators/counter/emulator/libfixture_minimal.so");
    let whole = std::fs::read(&library).unwrap();
    std::fs::write(&library, &whole[..4096]).unwrap();

    let failure = run_to_exit(&package, free_port(), &[]);
    assert_eq!(
        failure.status.signal(),
        None,
        "killed by a signal; stderr:\n{}",
        failure.stderr
    );
    assert!(!failure.status.success(), "{}", failure.stderr);
    assert!(
        failure
            .stderr
            .contains("libfixture_minimal.so: truncated or damaged")
            && failure
                .stderr
                .contains("but the file is only 4096 bytes long"),
        "{}",
        failure.stderr
    );
}

#[test]
fn run_leaves_no_private_copy_when_loading_kills_it() {
    let copies = tempfile::tempdir().unwrap();
    for fixture_name in ["aborts_on_load", "minimal"] {
        let package = package(&[("counter", fixture_name)], &counter_config());
        let mut child = Command::new(BINARY)
            .arg("run")
            .arg(package.path())
            .args(["--bind", &format!("127.0.0.1:{}", free_port())])
            .env("BITSTREAM_EMULATOR_PLUGIN_COPY_DIR", copies.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        // `minimal` loads and serves: give it time to load, then kill it.
        loop {
            if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(3) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if fixture_name == "aborts_on_load" {
            assert_eq!(status.signal(), Some(6), "{status}");
        }
        let left: Vec<_> = std::fs::read_dir(copies.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "{fixture_name}: private copies left behind: {left:?}"
        );
    }
    // The fixture really is there (a missing one would pass vacuously).
    assert!(fixture("aborts_on_load").is_file());
}

#[test]
fn a_config_that_is_a_fifo_is_refused_by_run() {
    let package = package(&[("counter", "minimal")], &counter_config());
    let config = package.path().join("emulators/config.json");
    std::fs::remove_file(&config).unwrap();
    let made = Command::new("mkfifo").arg(&config).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    // run_to_exit fails the test if the emulator is still running after
    // PATIENCE (it would be blocked opening the FIFO).
    let failure = run_to_exit(&package, free_port(), &[]);
    assert_eq!(failure.status.code(), Some(1), "{}", failure.stderr);
    assert!(
        failure
            .stderr
            .contains("config.json: is not a regular file (it is a FIFO)"),
        "{}",
        failure.stderr
    );
    assert!(failure.elapsed < PATIENCE);
}

#[test]
fn a_symlinked_type_folder_is_followed_by_run() {
    let elsewhere = tempfile::tempdir().unwrap();
    let real = elsewhere.path().join("counter-build");
    std::fs::create_dir_all(real.join("emulator")).unwrap();
    std::fs::copy(
        fixture("minimal"),
        real.join("emulator/libfixture_minimal.so"),
    )
    .unwrap();
    let package = package(&[], &counter_config());
    std::os::unix::fs::symlink(&real, package.path().join("emulators/counter")).unwrap();
    let emu = Emulator::start_package(package, &["--pulse-period-ms", "0"]);
    assert_eq!(emu.block_state("c"), "ACTIVE");
}
