//! Python's own ctypes against our buffers (`fixtures/buffers/ctypes_buffer.py`):
//!
//! - layouts: the script builds each catalog type's ctypes Structure the way
//!   PiE does; its sizes, alignments and offsets must equal what
//!   `bitstream-emulator buffer layout` prints, field by field;
//! - live sharing: a shared buffer created here with the SDK is read and
//!   written by a Python process (under the segment's robust mutex, through
//!   libc), and each side sees the other's values.
//!
//! `python3` must be on PATH: without it these tests fail (CI provides it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::device::{Buffer, BufferType};
use bitstream_buffer::segment::{header_offsets, Segment, SEGMENT_MAGIC};
use bitstream_buffer::value::ParamValue;
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/buffers")
        .join(name)
}

fn script() -> PathBuf {
    fixture("ctypes_buffer.py")
}

/// Fails the test with a clear message when `python3` cannot be run.
fn require_python() {
    let out = Command::new("python3").arg("--version").output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`python3 --version` failed ({}): these tests need Python 3 on PATH (CI must provide \
             it): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "cannot run `python3` ({e}): these tests need Python 3 on PATH to check the buffer \
             layouts with ctypes; install it (CI must provide it)"
        ),
    }
}

fn python(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("python3 runs")
}

/// Runs the script, expects success, parses standard output as JSON.
fn python_json(args: &[&str]) -> Value {
    let out = python(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ctypes_buffer.py {args:?} failed: {stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// Runs the script, expects exit status 1, returns standard error.
fn python_fails(args: &[&str]) -> String {
    let out = python(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("Traceback"), "{args:?}: {stderr}");
    stderr
}

fn emulator_layout(catalog: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bitstream-emulator"))
        .args(["buffer", "layout"])
        .arg(catalog)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "buffer layout {catalog:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn vectors() -> Value {
    let text = std::fs::read_to_string(fixture("vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn write_catalog(dir: &tempfile::TempDir, name: &str, catalog: &Value) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(catalog).unwrap()).unwrap();
    path
}

// ---------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------

/// Every difference between our layout of one type (`ours`, from `buffer
/// layout`) and ctypes' (`theirs`, from the script), as readable lines.
fn diff_type(ty: &str, ours: &Value, theirs: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut check = |what: &str, ours: &Value, theirs: &Value| {
        if ours != theirs {
            diffs.push(format!("type `{ty}`, {what}: ours {ours}, ctypes {theirs}"));
        }
    };
    check("size", &ours["size"], &theirs["size"]);
    check("align", &ours["align"], &theirs["align"]);
    check(
        "valid_flag offset",
        &ours["valid_flag"]["offset"],
        &theirs["valid_flag_offset"],
    );
    for block in ["update_block", "write_block"] {
        let (o, t) = (&ours[block], &theirs[block]);
        for key in ["offset", "size", "align"] {
            check(&format!("{block}.{key}"), &o[key], &t[key]);
        }
        let our_fields = o["fields"].as_array().unwrap();
        let our_names: Vec<&str> = our_fields
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let their_names: Vec<&str> = t["fields"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        check(
            &format!("{block} field names (in order)"),
            &json!(our_names),
            &json!(their_names),
        );
        for f in our_fields {
            let name = f["name"].as_str().unwrap();
            check(
                &format!("{block}.{name} offset"),
                &f["offset"],
                &t["fields"][name],
            );
            check(
                &format!("{block}.{name} size"),
                &f["size"],
                &t["sizes"][name],
            );
        }
    }
    check(
        "control offset",
        &ours["control"]["offset"],
        &theirs["control_offset"],
    );
    check(
        "control size",
        &ours["control"]["size"],
        &theirs["control_size"],
    );
    check(
        "metrics offset",
        &ours["metrics"]["offset"],
        &theirs["metrics_offset"],
    );
    check(
        "metrics size",
        &ours["metrics"]["size"],
        &theirs["metrics_size"],
    );
    if let Some(fields) = ours["control"]["fields"].as_array() {
        for f in fields {
            let name = f["name"].as_str().unwrap();
            check(
                &format!("control.{name} offset"),
                &f["offset"],
                &theirs["control_fields"][name],
            );
        }
        let n = theirs["control_fields"].as_object().map_or(0, |m| m.len());
        check("control field count", &json!(fields.len()), &json!(n));
    }
    diffs
}

/// Compares every type of `catalog`; returns both layouts (keyed by type).
fn compare_catalog(catalog: &Path) -> (Value, Value) {
    let ours = emulator_layout(catalog);
    let theirs = python_json(&["layout", catalog.to_str().unwrap()]);
    let our_types: Vec<&String> = ours.as_object().unwrap().keys().collect();
    let their_types: Vec<&String> = theirs.as_object().unwrap().keys().collect();
    assert_eq!(our_types, their_types, "{catalog:?}: type names");
    let diffs: Vec<String> = our_types
        .iter()
        .flat_map(|ty| diff_type(ty, &ours[ty.as_str()], &theirs[ty.as_str()]))
        .collect();
    assert!(
        diffs.is_empty(),
        "{catalog:?}: our layout differs from ctypes':\n{}",
        diffs.join("\n")
    );
    (ours, theirs)
}

#[test]
fn script_uses_the_sdk_header_offsets() {
    require_python();
    let h = python_json(&["header"]);
    assert_eq!(
        h["magic"].as_str().unwrap().as_bytes(),
        SEGMENT_MAGIC.to_le_bytes()
    );
    assert_eq!(header_offsets::MAGIC, 0);
    assert_eq!(h["data_offset_at"], header_offsets::DATA_OFFSET);
    assert_eq!(h["data_size_at"], header_offsets::DATA_SIZE);
    assert_eq!(h["type_name_at"], header_offsets::TYPE_NAME);
    assert_eq!(h["mutex_at"], header_offsets::MUTEX);
}

#[test]
fn pie_catalog_layouts_match_ctypes() {
    require_python();
    let (ours, theirs) = compare_catalog(&fixture("pie-catalog.json"));
    assert_eq!(ours.as_object().unwrap().len(), 13);
    // The reference's measured figures, on both sides.
    for l in [&ours, &theirs] {
        assert_eq!(l["limit-switch"]["size"], 312);
        assert_eq!(l["limit-switch"]["update_block"]["offset"], 1);
        assert_eq!(l["limit-switch"]["write_block"]["offset"], 4);
        assert_eq!(l["limit-switch"]["write_block"]["size"], 0);
        assert_eq!(l["servo-motor"]["size"], 328);
        assert_eq!(l["servo-motor"]["update_block"]["offset"], 4);
        assert_eq!(l["servo-motor"]["update_block"]["size"], 8);
        assert_eq!(l["servo-motor"]["write_block"]["offset"], 12);
        assert_eq!(l["servo-motor"]["write_block"]["size"], 8);
        // The 8194-byte plain `field` buffer: no control, no padding.
        assert_eq!(l["field"]["size"], 8195);
    }
    assert_eq!(theirs["limit-switch"]["control_offset"], 8);
    assert_eq!(theirs["limit-switch"]["metrics_offset"], 56);
    assert_eq!(theirs["servo-motor"]["control_offset"], 24);
    assert_eq!(theirs["field"]["control_offset"], Value::Null);
}

#[test]
fn example_device_layout_matches_ctypes() {
    require_python();
    let dir = tempfile::tempdir().unwrap();
    let path = write_catalog(
        &dir,
        "example.json",
        &vectors()["example_device"]["catalog"],
    );
    let (ours, theirs) = compare_catalog(&path);
    for l in [&ours, &theirs] {
        assert_eq!(l["example-device"]["size"], 848);
    }
    let t = &theirs["example-device"];
    assert_eq!(t["update_block"]["offset"], 4);
    assert_eq!(t["update_block"]["fields"]["pos"], 264);
    assert_eq!(t["write_block"]["offset"], 272);
    assert_eq!(t["control_offset"], 544);
    assert_eq!(t["metrics_offset"], 592);
}

/// Types whose padding is easy to get wrong: every scalar, `double` (stored
/// as a float), nested vectors, odd-length char arrays, write-only and
/// read-only params, empty blocks, trailing padding.
fn awkward_catalog() -> Value {
    let every_scalar: Vec<Value> = [
        "bool",
        "char",
        "byte",
        "ubyte",
        "short",
        "ushort",
        "int",
        "uint",
        "long",
        "ulong",
        "longlong",
        "ulonglong",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float",
        "double",
        "size_t",
        "ssize_t",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| json!({"name": format!("s{i}_{t}"), "type": t, "writeable": i % 3 == 0}))
    .collect();
    json!({
        "awkward": {"params": [
            {"name": "flag", "type": "bool"},
            {"name": "ratio", "type": "double"},
            {"name": "grid", "type": "uint64[2][3]"},
            {"name": "tag", "type": "char[3]"},
            {"name": "temp", "type": "int16"},
            {"name": "count", "type": "size_t"},
            {"name": "wo", "type": "uint8", "readable": false, "writeable": true},
            {"name": "cube", "type": "int8[2][3][5]", "writeable": true},
            {"name": "odd", "type": "ushort[3]", "writeable": true},
            {"name": "tail", "type": "char"}
        ]},
        "awkward-smart": {"device_id": 200, "params": [
            {"name": "flag", "type": "bool", "writeable": true},
            {"name": "ratio", "type": "double", "writeable": true, "lower": -1, "upper": 1},
            {"name": "grid", "type": "uint64[2][3]", "writeable": true},
            {"name": "tag", "type": "char[3]"},
            {"name": "temp", "type": "int16", "readable": false, "writeable": true},
            {"name": "count", "type": "size_t"},
            {"name": "wo", "type": "uint8", "readable": false, "writeable": true},
            {"name": "sizes", "type": "ssize_t[1]"}
        ]},
        "every-scalar": {"params": every_scalar},
        "write-only-smart": {"device_id": 201, "params": [
            {"name": "a", "type": "uint8", "readable": false, "writeable": true},
            {"name": "b", "type": "double[3]", "readable": false, "writeable": true}
        ]},
        "bytes-only-smart": {"device_id": 202, "params": [
            {"name": "a", "type": "char[5]", "writeable": true},
            {"name": "b", "type": "bool"}
        ]},
        "trailing-padding": {"params": [
            {"name": "x", "type": "uint64"},
            {"name": "y", "type": "bool"}
        ]},
        "big-vector-first": {"params": [
            {"name": "m", "type": "uint16[7][3]"},
            {"name": "z", "type": "long", "writeable": true}
        ]},
        "null-device": {"device_id": 99, "params": []},
        "empty": {}
    })
}

#[test]
fn awkward_layouts_match_ctypes() {
    require_python();
    let dir = tempfile::tempdir().unwrap();
    let path = write_catalog(&dir, "awkward.json", &awkward_catalog());
    let (ours, theirs) = compare_catalog(&path);
    assert_eq!(ours.as_object().unwrap().len(), 9);
    // A few figures by hand, to be sure the comparison compares something.
    // awkward's update block (align 8) at 8: flag@0 ratio(float)@4 grid@8..56
    // tag@56..59 temp@60 count@64..72 cube@72..102 odd@102..108 tail@108,
    // size 109 -> 112; write block (align 2) at 120: wo@0 cube@1..31
    // odd@32..38, size 38; struct 158 -> 160.
    let a = &theirs["awkward"];
    assert_eq!(a["update_block"]["offset"], 8);
    assert_eq!(a["update_block"]["fields"]["ratio"], 4);
    assert_eq!(a["update_block"]["sizes"]["ratio"], 4);
    assert_eq!(a["update_block"]["fields"]["grid"], 8);
    assert_eq!(a["update_block"]["sizes"]["grid"], 48);
    assert_eq!(a["update_block"]["fields"]["count"], 64);
    assert_eq!(a["update_block"]["fields"]["tail"], 108);
    assert_eq!(a["update_block"]["size"], 112);
    assert_eq!(a["write_block"]["offset"], 120);
    assert_eq!(a["write_block"]["fields"]["odd"], 32);
    assert_eq!(a["write_block"]["size"], 38);
    assert_eq!(a["size"], 160);
    assert_eq!(theirs["empty"]["size"], 1);
    assert_eq!(theirs["null-device"]["size"], 312);
    assert_eq!(theirs["trailing-padding"]["size"], 24);
}

// ---------------------------------------------------------------------------
// Live sharing
// ---------------------------------------------------------------------------

/// Unlinks the shared segment when the test ends, passing or not.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique_name() -> String {
    format!(
        "bitstream-ctypes-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn live_catalog() -> Value {
    json!({
        "ctypes-live": {"device_id": 210, "params": [
            {"name": "enabled", "type": "bool", "writeable": true},
            {"name": "gain", "type": "float", "writeable": true},
            {"name": "ratio", "type": "double", "lower": -10, "upper": 10},
            {"name": "count", "type": "uint32"},
            {"name": "label", "type": "char[16]", "writeable": true},
            {"name": "grid", "type": "uint64[2][3]"},
            {"name": "temp", "type": "int16"},
            {"name": "target", "type": "float", "readable": false, "writeable": true}
        ]}
    })
}

struct Live {
    _dir: tempfile::TempDir,
    catalog: PathBuf,
    name: String,
    buffer: Buffer,
    _unlink: Unlink,
}

impl Live {
    fn new() -> Live {
        let dir = tempfile::tempdir().unwrap();
        let catalog_json = live_catalog();
        let catalog = write_catalog(&dir, "live.json", &catalog_json);
        let c = Catalog::from_json(&catalog_json.to_string()).unwrap();
        let ty = Arc::new(BufferType::from_catalog(&c, "ctypes-live").unwrap());
        let name = unique_name();
        let _ = Segment::unlink(&name);
        let buffer = Buffer::create_shared(&name, &ty).unwrap();
        Live {
            _dir: dir,
            catalog,
            _unlink: Unlink(name.clone()),
            name,
            buffer,
        }
    }

    fn args<'a>(&'a self, command: &'a str, param: &'a str) -> Vec<&'a str> {
        vec![
            command,
            &self.name,
            self.catalog.to_str().unwrap(),
            "ctypes-live",
            param,
        ]
    }

    fn peek(&self, param: &str) -> Value {
        python_json(&self.args("peek", param))
    }

    fn peek_written(&self, param: &str) -> Value {
        let mut args = self.args("peek", param);
        args.push("--write-block");
        python_json(&args)
    }

    fn poke(&self, param: &str, value: &Value) -> Value {
        let text = value.to_string();
        let mut args = self.args("poke", param);
        args.push(&text);
        python_json(&args)
    }

    fn poke_written(&self, param: &str, value: &Value) -> Value {
        let text = value.to_string();
        let mut args = self.args("poke", param);
        args.push(&text);
        args.push("--write-block");
        python_json(&args)
    }
}

#[test]
fn python_reads_what_rust_wrote() {
    require_python();
    let live = Live::new();
    let b = &live.buffer;
    // All zero at first.
    assert_eq!(live.peek("gain"), json!(0.0));
    assert_eq!(live.peek("label"), json!(""));
    assert_eq!(live.peek("grid"), json!([[0, 0, 0], [0, 0, 0]]));
    b.set("enabled", true).unwrap();
    b.set("gain", 1.5f32).unwrap();
    b.set("ratio", -2.75f64).unwrap();
    b.set("count", 3_000_000_007u32).unwrap();
    b.set("label", "hello, ctypes").unwrap();
    b.set("grid", vec![vec![1u64, 2, 3], vec![4, u64::MAX, 1 << 40]])
        .unwrap();
    b.set("temp", -1234i16).unwrap();
    b.write("gain", 0.25f32).unwrap();
    b.write("target", 42.5f32).unwrap();
    b.write("label", "pending").unwrap();
    assert_eq!(live.peek("enabled"), json!(true));
    assert_eq!(live.peek("gain"), json!(1.5));
    assert_eq!(live.peek("ratio"), json!(-2.75));
    assert_eq!(live.peek("count"), json!(3_000_000_007u32));
    assert_eq!(live.peek("label"), json!("hello, ctypes"));
    assert_eq!(
        live.peek("grid"),
        json!([[1, 2, 3], [4, u64::MAX, 1u64 << 40]])
    );
    assert_eq!(live.peek("temp"), json!(-1234));
    assert_eq!(live.peek_written("gain"), json!(0.25));
    assert_eq!(live.peek_written("target"), json!(42.5));
    assert_eq!(live.peek_written("label"), json!("pending"));
    // Every readable parameter, as the SDK's JSON sees it.
    let all = b.to_json().unwrap();
    for name in ["enabled", "gain", "ratio", "count", "label", "grid", "temp"] {
        assert_eq!(live.peek(name), all[name], "{name}");
    }
}

#[test]
fn rust_reads_what_python_wrote() {
    require_python();
    let live = Live::new();
    let b = &live.buffer;
    b.set("label", "old label text").unwrap();
    assert_eq!(live.poke("enabled", &json!(true)), json!(true));
    assert_eq!(live.poke("gain", &json!(-0.375)), json!(-0.375));
    assert_eq!(live.poke("ratio", &json!(6.5)), json!(6.5));
    assert_eq!(
        live.poke("count", &json!(4_000_000_000u32)),
        json!(4_000_000_000u32)
    );
    // Shorter than the old text: nothing of it may show through.
    assert_eq!(live.poke("label", &json!("py")), json!("py"));
    assert_eq!(
        live.poke("grid", &json!([[9, 8, 7], [6, 5, u64::MAX]])),
        json!([[9, 8, 7], [6, 5, u64::MAX]])
    );
    assert_eq!(live.poke("temp", &json!(-32768)), json!(-32768));
    assert_eq!(live.poke_written("target", &json!(-1.25)), json!(-1.25));
    assert_eq!(
        live.poke_written("label", &json!("to device")),
        json!("to device")
    );

    assert_eq!(b.get("enabled").unwrap(), ParamValue::Bool(true));
    assert_eq!(b.get("gain").unwrap(), ParamValue::Float(-0.375));
    assert_eq!(b.get("ratio").unwrap(), ParamValue::Float(6.5));
    assert_eq!(b.get("count").unwrap(), ParamValue::UInt(4_000_000_000));
    assert_eq!(b.get("label").unwrap(), ParamValue::Text(b"py".to_vec()));
    assert_eq!(
        b.get("grid").unwrap(),
        ParamValue::from(vec![vec![9u64, 8, 7], vec![6, 5, u64::MAX]])
    );
    assert_eq!(b.get("temp").unwrap(), ParamValue::Int(-32768));
    assert_eq!(b.get_written("target").unwrap(), ParamValue::Float(-1.25));
    assert_eq!(
        b.get_written("label").unwrap(),
        ParamValue::Text(b"to device".to_vec())
    );
    // Untouched: the write block's gain and the other process's view of it.
    assert_eq!(b.get_written("gain").unwrap(), ParamValue::Float(0.0));
    assert_eq!(live.peek_written("gain"), json!(0.0));
}

#[test]
fn python_waits_for_the_rust_lock() {
    require_python();
    let live = Live::new();
    let b = &live.buffer;
    let mut child = {
        let tx = b.transaction().unwrap();
        let mut args = live.args("poke", "count");
        args.push("77");
        let child = Command::new("python3")
            .arg(script())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Python starts, maps the segment and blocks on the mutex we hold.
        let mut child = child;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) {
            assert!(
                child.try_wait().unwrap().is_none(),
                "python finished while Rust held the segment's lock"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(tx);
        child
    };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(b.get("count").unwrap(), ParamValue::UInt(77));
}

#[test]
fn python_refuses_invalid_and_foreign_segments() {
    require_python();
    let live = Live::new();
    let catalog = live.catalog.to_str().unwrap();
    // Not readable: only in the write block.
    let e = python_fails(&live.args("peek", "target"));
    assert!(e.contains("not readable"), "{e}");
    // A type the segment does not hold.
    let dir = tempfile::tempdir().unwrap();
    let other = write_catalog(
        &dir,
        "other.json",
        &json!({"other": {"params": [{"name": "count", "type": "uint32"}]}}),
    );
    let e = python_fails(&[
        "peek",
        &live.name,
        other.to_str().unwrap(),
        "other",
        "count",
    ]);
    assert!(e.contains("holds type `ctypes-live`"), "{e}");
    // No such segment.
    let e = python_fails(&[
        "peek",
        "bitstream-ctypes-no-such-segment",
        catalog,
        "ctypes-live",
        "count",
    ]);
    assert!(e.contains("cannot open"), "{e}");
    // Marked invalid by its owner.
    live.buffer.set_valid(false).unwrap();
    let e = python_fails(&live.args("peek", "count"));
    assert!(e.contains("marked as invalid"), "{e}");
}
