//! Records logged through the `log` facade reach the emulator's log: from
//! SDK code running inside a plugin (tagged with the block whose call
//! logged them) and from the same SDK code running in the host process.
//! The real `bitstream-emulator run` binary serves a package of the
//! `registers` fixture over loopback HTTP; its stderr is the log.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use support::{package, wait_for, Emulator, PATIENCE};

/// `reg_a -> reg_b`, both of the `registers` fixture (a device buffer with
/// a `gain` bounded to `[0, 10]`), run as a fresh emulator id with buffers
/// in process memory and pulses only on request.
fn start_registers() -> Emulator {
    static N: AtomicUsize = AtomicUsize::new(0);
    let id = format!(
        "logtest-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let config = json!({
        "id": "plugin_logs_test",
        "version": "0.0.1",
        "first": ["reg_a"],
        "ip_blocks": [
            {"id": "reg_a", "type": "registers", "downstream_block_ids": ["reg_b"], "constants": {}},
            {"id": "reg_b", "type": "registers", "constants": {}},
        ],
    });
    let package = package(&[("registers", "registers")], &config.to_string());
    Emulator::start_package(
        package,
        &["--id", &id, "--pulse-period-ms", "0", "--local-buffers"],
    )
}

/// Waits for the log line holding `needle` and answers it.
fn log_line(emu: &Emulator, needle: &str) -> String {
    wait_for(&format!("a log line with {needle:?}"), PATIENCE, || {
        emu.stderr()
            .lines()
            .find(|line| line.contains(needle))
            .map(str::to_owned)
    })
}

#[test]
fn a_warning_of_sdk_code_inside_a_plugin_names_its_block() {
    let emu = start_registers();
    // The route sets `gain` through the plugin's own copy of the SDK, whose
    // buffer code clamps 12.5 and warns through `log`.
    let reply = emu.post_json("/reg_b/gain", &json!(12.5)).expect(200);
    assert_eq!(reply.json(), json!({"gain": 10.0}));

    let line = log_line(&emu, "12.5 clamped to its upper bound 10");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(r#"block="reg_b""#), "{line}");
    assert!(line.contains("parameter `gain`"), "{line}");
    assert!(!line.contains("reg_a"), "{line}");
}

#[test]
fn a_warning_of_sdk_code_in_the_host_reaches_its_log() {
    let emu = start_registers();
    // PUT /<block>/buffer/<param> writes through the host's copy of the
    // SDK, whose `log` records go to tracing.
    let reply = emu.put_json("/reg_a/buffer/gain", &json!(-3.5)).expect(200);
    assert_eq!(reply.json()["value"], 0.0, "{}", reply.text);

    let line = log_line(&emu, "-3.5 clamped to its lower bound 0");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("parameter `gain`"), "{line}");
}
