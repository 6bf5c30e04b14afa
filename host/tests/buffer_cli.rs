//! The `buffer` and `message` subcommands of the real `bitstream-emulator`
//! binary: message vectors from `fixtures/buffers/vectors.json`, layouts of
//! `fixtures/buffers/pie-catalog.json`, and shared buffers this test
//! process creates with the SDK and the child process reads and writes.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::device::{Buffer, BufferType, DeviceBuffer};
use bitstream_buffer::segment::Segment;
use bitstream_buffer::value::ParamValue;
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/buffers")
        .join(name)
}

fn vectors() -> Value {
    let text = std::fs::read_to_string(fixture("vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitstream-emulator"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the binary, expects success, returns standard output.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the binary, expects success, parses standard output as JSON.
fn ok_json(args: &[&str]) -> Value {
    let stdout = ok(args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// Runs the binary, expects exit code 1 (not a panic), returns standard error.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(stderr.starts_with("bitstream-emulator: "), "{stderr}");
    stderr
}

/// The example device's catalog, written to a temporary file.
fn example_catalog(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("example.json");
    std::fs::write(&path, vectors()["example_device"]["catalog"].to_string()).unwrap();
    path
}

fn example_type() -> Arc<BufferType> {
    let c = Catalog::from_json(&vectors()["example_device"]["catalog"].to_string()).unwrap();
    Arc::new(BufferType::from_catalog(&c, "example-device").unwrap())
}

// ---------------------------------------------------------------------------
// message
// ---------------------------------------------------------------------------

#[test]
fn every_vector_decodes_and_encodes_back() {
    let v = vectors();
    let messages = v["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 17);
    for m in messages {
        let name = m["name"].as_str().unwrap();
        let cobs = m["cobs"].as_str().unwrap();
        let decoded = ok_json(&["message", "decode", cobs]);
        let expected_type = match name.split(['(', ' ']).next().unwrap() {
            "ping" => "PING",
            "sub_req" | "unsubscribe" => "SUB_REQ",
            "sub_res" => "SUB_RES",
            "dev_read" => "DEV_READ",
            "dev_disable" => "DEV_DISABLE",
            "hb_req" => "HB_REQ",
            "hb_res" => "HB_RES",
            "error" => "ERROR",
            "dev_data" => "DEV_DATA",
            "dev_write" => "DEV_WRITE",
            other => panic!("unexpected vector {other}"),
        };
        assert_eq!(decoded["type"], expected_type, "{name}");
        assert_eq!(decoded["frame"], m["raw"], "{name}");
        let encoded = ok(&["message", "encode", &decoded.to_string()]);
        assert_eq!(encoded.trim_end(), cobs, "{name}");
        let delimited = ok(&["message", "encode", "--delimited", &decoded.to_string()]);
        assert_eq!(delimited.trim_end(), format!("{cobs} 00"), "{name}");
    }
    // The SUB_REQ vectors' fields.
    let sub = |cobs: &str| {
        let d = ok_json(&["message", "decode", cobs]);
        (
            d["params"].as_u64().unwrap(),
            d["interval_ms"].as_u64().unwrap(),
        )
    };
    assert_eq!(sub("06 11 04 ff ff 80 02 95"), (0xffff, 128));
    assert_eq!(sub("04 11 04 02 02 28 02 3f"), (0b10, 40));
    assert_eq!(sub("03 11 04 01 01 01 02 15"), (0, 0));
    // Without spaces, as separate arguments, with the delimiter.
    let d = ok_json(&["message", "decode", "0611 04ffff80", "0295", "00"]);
    assert_eq!(d["params"], 0xffff);
    let hex = ok(&[
        "message",
        "encode",
        r#"{"type": "ERROR", "code": "BAD_CHECKSUM"}"#,
    ]);
    assert_eq!(hex.trim_end(), "04 ff 01 fe 01");
    let d = ok_json(&["message", "decode", "04ff01fe01"]);
    assert_eq!(d["code"], "BAD_CHECKSUM");
    let d = ok_json(&[
        "message",
        "decode",
        "04 15 0b 07 0b 01 6d e7 fb bd ef be ad de f6",
    ]);
    assert_eq!(d["values"], "01 6d e7 fb bd ef be ad de");
}

#[test]
fn dev_write_with_the_example_catalog_has_named_params() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = example_catalog(&dir);
    let catalog = catalog.to_str().unwrap();
    let cobs = "04 14 07 05 07 01 ef be ad de 35";
    let d = ok_json(&[
        "message",
        "decode",
        cobs,
        "--catalog",
        catalog,
        "--type",
        "example-device",
    ]);
    assert_eq!(
        d,
        json!({"type": "DEV_WRITE", "bitmap": 5, "params": {"flag": true, "id": 3735928559u32},
               "frame": "14 07 05 00 01 ef be ad de 35"})
    );
    let back = ok(&["message", "encode", &d.to_string(), "--catalog", catalog]);
    assert_eq!(back.trim_end(), cobs);
    // A float beyond its bound is clamped, with a warning on stderr.
    let out = run(&[
        "message",
        "encode",
        r#"{"type": "DEV_WRITE", "params": {"pos": -1.01}}"#,
        "--catalog",
        catalog,
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "04 14 06 10 01 01 04 80 bf 3d"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("clamped to its lower bound -1"),
        "{stderr}"
    );
    // Parameter names for a SUB_REQ.
    let hex = ok(&[
        "message",
        "encode",
        r#"{"type": "SUB_REQ", "params": ["duty_cycle", "id"], "interval_ms": 40}"#,
        "--catalog",
        catalog,
    ]);
    let d = ok_json(&["message", "decode", hex.trim_end()]);
    assert_eq!(
        (d["params"].as_u64(), d["interval_ms"].as_u64()),
        (Some(0b110), Some(40))
    );
    // The vector's DEV_WRITE 0b111 carries duty_cycle, which the example
    // device cannot write.
    let e = fails(&[
        "message",
        "decode",
        "04 14 0b 07 0b 01 6d e7 fb bd ef be ad de f7",
        "--catalog",
        catalog,
    ]);
    assert!(
        e.contains("`duty_cycle` (id 1)") && e.contains("not writeable"),
        "{e}"
    );
    let e = fails(&[
        "message",
        "decode",
        cobs,
        "--catalog",
        catalog,
        "--type",
        "nope",
    ]);
    assert!(
        e.contains("has no type `nope`; its types are: example-device"),
        "{e}"
    );
}

#[test]
fn malformed_messages_fail_with_distinct_errors() {
    let checksum = fails(&["message", "decode", "02 10 02 11"]);
    let truncated = fails(&["message", "decode", "02 10 01"]);
    let stray = fails(&["message", "decode", "02 10 00 02 10"]);
    assert!(
        checksum.contains("bad checksum: expected 0x10, found 0x11"),
        "{checksum}"
    );
    assert!(truncated.contains("truncated frame"), "{truncated}");
    assert!(stray.contains("stray zero byte at offset 2"), "{stray}");
    assert!(checksum != truncated && truncated != stray && checksum != stray);
    let e = fails(&["message", "decode", "02 1"]);
    assert!(e.contains("odd number of hex digits"), "{e}");
    let e = fails(&["message", "encode", r#"{"type": "PONG"}"#]);
    assert!(e.contains("unknown message type `PONG`"), "{e}");
    let e = fails(&[
        "message",
        "encode",
        r#"{"type": "HB_REQ", "id": 1, "extra": 2}"#,
    ]);
    assert!(
        e.contains("unknown field `extra` in a HB_REQ message"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// buffer layout
// ---------------------------------------------------------------------------

#[test]
fn layout_of_the_pie_catalog() {
    let pie = fixture("pie-catalog.json");
    let pie = pie.to_str().unwrap();
    let all = ok_json(&["buffer", "layout", pie]);
    assert_eq!(all.as_object().unwrap().len(), 13);
    let ls = &all["limit-switch"];
    assert_eq!(ls["size"], 312);
    assert_eq!(ls["smart"], true);
    assert_eq!(
        (&ls["update_block"]["offset"], &ls["update_block"]["size"]),
        (&json!(1), &json!(3))
    );
    assert_eq!(
        (&ls["write_block"]["offset"], &ls["write_block"]["size"]),
        (&json!(4), &json!(0))
    );
    assert_eq!(ls["control"]["offset"], 8);
    assert_eq!(ls["metrics"]["offset"], 56);
    let servo = ok_json(&["buffer", "layout", pie, "servo-motor"]);
    assert_eq!(servo["size"], 328);
    assert_eq!(
        (
            &servo["update_block"]["offset"],
            &servo["update_block"]["size"]
        ),
        (&json!(4), &json!(8))
    );
    assert_eq!(
        (
            &servo["write_block"]["offset"],
            &servo["write_block"]["size"]
        ),
        (&json!(12), &json!(8))
    );
    assert_eq!(servo["control"]["offset"], 24);
    let field = &all["field"];
    assert_eq!(
        (&field["size"], &field["device_id"], &field["control"]),
        (&json!(8195), &Value::Null, &Value::Null)
    );
    assert_eq!(field["shared_memory"]["data_offset"], 192);

    let dir = tempfile::tempdir().unwrap();
    let example = example_catalog(&dir);
    let l = ok_json(&[
        "buffer",
        "layout",
        example.to_str().unwrap(),
        "example-device",
    ]);
    assert_eq!(l["size"], 848);
    assert_eq!(l["write_block"]["fields"][3]["absolute_offset"], 272 + 264);

    let e = fails(&["buffer", "layout", pie, "teddy-bear"]);
    assert!(
        e.contains("no type `teddy-bear`") && e.contains("limit-switch, line-follower"),
        "{e}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"t": {"params": [{"name": "p", "type": "char*"}]}}"#,
    )
    .unwrap();
    let e = fails(&["buffer", "layout", bad.to_str().unwrap()]);
    assert!(
        e.contains("bad.json") && e.contains("pointer type `char*` is not allowed"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// shared buffers
// ---------------------------------------------------------------------------

/// A shared buffer this process owns; unlinked on drop, even when a test fails.
struct Shm {
    name: String,
    buffer: Option<DeviceBuffer>,
}

impl Shm {
    fn new() -> Shm {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "bitstream-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let buffer = Buffer::create_shared(&name, &example_type()).unwrap();
        Shm {
            name,
            buffer: Some(DeviceBuffer::try_from(buffer).unwrap()),
        }
    }

    fn buffer(&self) -> &DeviceBuffer {
        self.buffer.as_ref().unwrap()
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        self.buffer.take();
        let _ = Segment::unlink(&self.name);
    }
}

#[test]
fn get_and_set_from_another_process() {
    let shm = Shm::new();
    let name = shm.name.as_str();
    assert_eq!(ok(&["buffer", "set", name, "id", "7"]).trim(), "7");
    assert_eq!(shm.buffer().get("id").unwrap(), ParamValue::UInt(7));
    shm.buffer().set("large", "hello").unwrap();
    assert_eq!(ok_json(&["buffer", "get", name, "large"]), json!("hello"));
    assert_eq!(ok_json(&["buffer", "get", name, "id"]), json!(7));

    // A clamp is reported on stderr; the stored value is printed.
    let out = run(&["buffer", "set", name, "pos", "-3", "--write"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "-1.0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("`pos`") && stderr.contains("lower bound -1"),
        "{stderr}"
    );
    assert_eq!(
        shm.buffer().get_written("pos").unwrap(),
        ParamValue::Float(-1.0)
    );
    assert_eq!(
        ok_json(&["buffer", "get", name, "pos", "--written"]),
        json!(-1.0)
    );

    let e = fails(&["buffer", "get", name, "speed"]);
    assert!(
        e.contains("no parameter `speed`") && e.contains("duty_cycle"),
        "{e}"
    );
    let e = fails(&["buffer", "set", name, "id", r#""x""#]);
    assert!(e.contains("bad value for parameter `id`"), "{e}");
    let e = fails(&["buffer", "set", name, "id", "-1"]);
    assert!(
        e.contains("bad value for parameter `id`") && e.contains("out of range"),
        "{e}"
    );
    let e = fails(&["buffer", "set", name, "large", "hello"]);
    assert!(e.contains("for parameter `large` is not JSON"), "{e}");
    let e = fails(&["buffer", "get", name, "flag"]);
    assert!(e.contains("`flag` is not readable"), "{e}");
    let e = fails(&["buffer", "get", "bitstream-test-none-such", "id"]);
    assert!(
        e.contains("`bitstream-test-none-such` does not exist"),
        "{e}"
    );

    // The child attaches only: the buffer stays valid and owned here.
    assert!(shm.buffer().is_valid().unwrap());
    shm.buffer().set_valid(false).unwrap();
    let e = fails(&["buffer", "get", name, "id"]);
    assert!(
        e.contains("device does not exist (marked as invalid)"),
        "{e}"
    );
}

#[test]
fn dump_shows_params_and_control_and_checks_the_catalog() {
    let shm = Shm::new();
    let name = shm.name.as_str();
    let d = shm.buffer();
    d.set("duty_cycle", 0.5).unwrap();
    d.write("id", 99u32).unwrap();
    d.set_uid(bitstream_buffer::device::DeviceUid {
        device_id: 128,
        year: 3,
        random: 0xdead_beef,
    })
    .unwrap();
    let dump = ok_json(&["buffer", "dump", name]);
    assert_eq!(dump["name"], name);
    assert_eq!(dump["type"], "example-device");
    assert_eq!(dump["valid"], true);
    assert_eq!(dump["params"]["duty_cycle"], 0.5);
    assert_eq!(dump["params"]["large"], "");
    assert_eq!(dump["written"]["id"], 99);
    assert_eq!(dump["written"]["flag"], false);
    let uid = &dump["control"]["uid"];
    assert_eq!(
        (&uid["device_id"], &uid["year"], &uid["random"]),
        (&json!(128), &json!(3), &json!(0xdead_beef_u32))
    );
    assert_eq!(
        uid["integer"],
        ((128u128 << 72) | (3u128 << 64) | 0xdead_beef).to_string()
    );
    assert!(dump["control"]["last_write"].as_f64().unwrap() > 1.6e9);
    // The dump shows the pending bitmaps and does not clear them.
    assert_eq!(
        dump["control"]["pending"],
        json!({"read": 0, "write": 0b100, "update": 0b10})
    );
    assert_eq!(d.get_write().unwrap(), 0b100);
    assert_eq!(d.get_update().unwrap(), 0b10);

    let dir = tempfile::tempdir().unwrap();
    let same = example_catalog(&dir);
    let dump2 = ok_json(&["buffer", "dump", name, "--catalog", same.to_str().unwrap()]);
    assert_eq!(dump2["params"], dump["params"]);
    // Another catalog for the same type name (a different bound) is refused.
    let other = dir.path().join("other.json");
    let text = vectors()["example_device"]["catalog"]
        .to_string()
        .replace("\"upper\":1", "\"upper\":2");
    std::fs::write(&other, text).unwrap();
    let e = fails(&["buffer", "dump", name, "--catalog", other.to_str().unwrap()]);
    assert!(
        e.contains("other.json") && e.contains("attach with the creator's catalog"),
        "{e}"
    );
    let pie = fixture("pie-catalog.json");
    let e = fails(&["buffer", "dump", name, "--catalog", pie.to_str().unwrap()]);
    assert!(
        e.contains("holds type `example-device`, which catalog") && e.contains("does not have"),
        "{e}"
    );
}

#[test]
fn ls_lists_the_buffers_with_a_prefix() {
    let a = Shm::new();
    let b = Shm::new();
    let prefix = format!("bitstream-test-{}-", std::process::id());
    b.buffer().set_valid(false).unwrap();
    let entries = ok_json(&["buffer", "ls", "--prefix", &prefix, "--json"]);
    let entries = entries.as_array().unwrap();
    let find = |n: &str| {
        entries
            .iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {entries:?}"))
    };
    let ea = find(&a.name);
    assert_eq!(ea["type"], "example-device");
    assert_eq!(ea["size"], 848);
    assert_eq!(ea["valid"], true);
    assert_eq!(ea["creator_pid"], std::process::id());
    assert_eq!(ea["creator_alive"], true);
    assert_eq!(find(&b.name)["valid"], false);
    assert!(entries
        .iter()
        .all(|e| e["name"].as_str().unwrap().starts_with(&prefix)));

    let text = ok(&["buffer", "ls", "--prefix", &prefix]);
    let line = text
        .lines()
        .find(|l| l.starts_with(a.name.as_str()))
        .unwrap();
    assert!(
        line.contains("example-device") && line.contains("848") && line.contains("yes"),
        "{text}"
    );
    assert!(text.lines().next().unwrap().starts_with("NAME"), "{text}");

    // An empty prefix lists everything, ours included.
    let all = ok_json(&["buffer", "ls", "--prefix", "", "--json"]);
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == a.name.as_str()));
}
