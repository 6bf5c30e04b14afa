use std::sync::Arc;

use super::*;
use crate::catalog::Catalog;
use crate::message::Message;
use crate::segment::{Segment, SegmentSpec};
use crate::test_support::{hex, vectors};
use crate::value::{decode, encode, Bound, ParamValue, Warning};

fn example() -> DeviceBuffer {
    let catalog = Catalog::from_json(&vectors()["example_device"]["catalog"].to_string()).unwrap();
    let ty = Arc::new(BufferType::from_catalog(&catalog, "example-device").unwrap());
    DeviceBuffer::try_from(Buffer::new_local(&ty).unwrap()).unwrap()
}

fn cobs(messages: &[Message]) -> Vec<Vec<u8>> {
    messages.iter().map(|m| m.encode().unwrap()).collect()
}

/// The `cases` of vectors.json, in order, each run on a fresh buffer.
#[test]
fn example_device_cases_of_the_vectors() {
    let v = vectors();
    let cases = v["example_device"]["cases"].as_array().unwrap();
    let expect_cobs = |i: usize| -> Vec<Vec<u8>> {
        cases[i]["expect_cobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| hex(c.as_str().unwrap()))
            .collect()
    };
    let update = |d: &DeviceBuffer, i: usize| {
        let m = Message::decode(&hex(cases[i]["cobs"].as_str().unwrap())).unwrap();
        d.update(&m).unwrap()
    };
    assert_eq!(cases.len(), 12, "a new case in vectors.json needs a test");

    let d = example();
    update(&d, 0);
    assert_eq!(d.get("id").unwrap(), ParamValue::UInt(0xDEAD_BEEF));

    let d = example();
    update(&d, 1);
    assert_eq!(
        d.get("duty_cycle").unwrap(),
        ParamValue::Float(f64::from(-0.123f32))
    );

    let d = example();
    d.read(Some(&["flag", "duty_cycle"])).unwrap();
    d.read(Some(&["id"])).unwrap();
    assert_eq!(cobs(&d.emit_dev_rw().unwrap()), expect_cobs(2));

    let d = example();
    d.read(None).unwrap();
    assert_eq!(cobs(&d.emit_dev_rw().unwrap()), expect_cobs(3));

    let d = example();
    d.write("flag", true).unwrap();
    d.write("id", 0xDEAD_BEEFu32).unwrap();
    assert_eq!(cobs(&d.emit_dev_rw().unwrap()), expect_cobs(4));

    for (i, value, warnings) in [(5, -1.0, 0), (6, -1.01, 1), (7, 1.0, 0)] {
        let d = example();
        let w = d.write("pos", value).unwrap();
        assert_eq!(usize::from(w.is_some()), warnings, "case {i}");
        assert_eq!(cobs(&d.emit_dev_rw().unwrap()), expect_cobs(i), "case {i}");
    }

    let d = example();
    d.write("flag", true).unwrap();
    d.write("id", 7u32).unwrap();
    d.write("large", "x".repeat(253).as_str()).unwrap();
    d.write("pos", 0.5).unwrap();
    let sent = d.emit_dev_rw().unwrap();
    assert_eq!(sent.len(), 3, "{sent:?}");
    let bitmaps: Vec<u16> = sent
        .iter()
        .map(|m| match m {
            Message::DevWrite { bitmap, .. } => *bitmap,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bitmaps, [0b101, 0b1000, 0b10000], "flag+id, large, pos");
    for m in &sent {
        m.encode().unwrap(); // every part fits a frame
    }

    let d = example();
    assert_eq!(
        d.make_sub_req(None, None).unwrap(),
        Message::SubReq {
            params: 0b11110,
            interval_ms: 40
        }
    );

    let d = example();
    let w = d
        .update(&Message::SubReq {
            params: 0b100,
            interval_ms: 5,
        })
        .unwrap();
    assert_eq!(d.interval().unwrap(), 40);
    assert_eq!(d.subscription().unwrap(), 0b100);
    assert_eq!(
        w,
        Some(Warning::IntervalClamped {
            requested_ms: 5,
            granted_ms: 40
        })
    );

    let d = example();
    d.set_valid(false).unwrap();
    let invalid = |r: Result<(), BufferError>| {
        let e = r.unwrap_err();
        assert!(
            e.to_string()
                .contains("device does not exist (marked as invalid)"),
            "{e}"
        );
    };
    invalid(d.get("id").map(drop));
    invalid(d.set("id", 1u32).map(drop));
    invalid(d.write("id", 1u32).map(drop));
    invalid(d.get_written("id").map(drop));
    invalid(d.read(None));
    invalid(d.emit_dev_rw().map(drop));
    invalid(d.emit_dev_data().map(drop));
    invalid(d.emit_subscription().map(drop));
    invalid(d.make_sub_req(None, None).map(drop));
    invalid(d.make_sub_res().map(drop));
    invalid(d.get_read().map(drop));
    invalid(d.get_write().map(drop));
    invalid(d.get_update().map(drop));
    invalid(d.update(&Message::DevRead { params: 1 }).map(drop));
    invalid(d.uid().map(drop));
    invalid(d.subscription().map(drop));
    invalid(d.interval().map(drop));
    invalid(d.last_write().map(drop));
    invalid(d.last_update().map(drop));
    invalid(d.transaction().map(drop));
    invalid(d.to_json().map(drop));
}

#[test]
fn layout_matches_the_reference() {
    let d = example();
    assert_eq!(d.buffer_type().layout().size, 848);
    assert_eq!(d.segment().data_size(), 848);
    assert_eq!(
        d.segment().data() as usize % 64,
        0,
        "struct aligned in its segment"
    );
}

#[test]
fn bitmaps_are_returned_and_cleared() {
    let d = example();
    d.set("id", 5u32).unwrap();
    d.write("pos", 0.25).unwrap();
    d.read(Some(&["id"])).unwrap();
    assert!(d.last_update().unwrap() > 1.6e9);
    assert!(d.last_write().unwrap() > 1.6e9);
    assert_eq!(d.get_update().unwrap(), 0b100);
    assert_eq!(d.get_update().unwrap(), 0);
    assert_eq!(d.get_write().unwrap(), 0b10000);
    assert_eq!(d.get_read().unwrap(), 0b100);
    assert_eq!(d.get_read().unwrap(), 0);
}

#[test]
fn emit_dev_rw_drops_reads_just_written() {
    let d = example();
    d.read(None).unwrap();
    d.write("id", 1u32).unwrap();
    let sent = d.emit_dev_rw().unwrap();
    assert_eq!(
        sent,
        vec![
            Message::DevWrite {
                bitmap: 0b100,
                values: 1u32.to_le_bytes().to_vec()
            },
            Message::DevRead { params: 0b11010 }
        ]
    );
    assert!(d.emit_dev_rw().unwrap().is_empty());
    let (sent, _) = d.metrics().unwrap();
    assert_eq!(sent[4], 1, "one DEV_WRITE counted");
    assert_eq!(sent[3], 1, "one DEV_READ counted");
}

#[test]
fn emit_dev_data_leaves_subscribed_parameters_to_the_subscription() {
    let d = example();
    d.update(&Message::SubReq {
        params: 0b10,
        interval_ms: 100,
    })
    .unwrap();
    d.set("duty_cycle", 0.5).unwrap();
    d.set("id", 9u32).unwrap();
    assert_eq!(
        d.emit_dev_data().unwrap(),
        vec![Message::DevData {
            bitmap: 0b100,
            values: 9u32.to_le_bytes().to_vec()
        }]
    );
    assert!(d.emit_dev_data().unwrap().is_empty());
    assert_eq!(
        d.emit_subscription().unwrap(),
        vec![Message::DevData {
            bitmap: 0b10,
            values: 0.5f32.to_le_bytes().to_vec()
        }]
    );
}

#[test]
fn dev_write_and_sub_res_update_the_buffer() {
    let d = example();
    d.update(&Message::DevWrite {
        bitmap: 0b10001,
        values: vec![1, 0, 0, 0x80, 0x3f],
    })
    .unwrap();
    assert_eq!(d.get_written("flag").unwrap(), ParamValue::Bool(true));
    assert_eq!(d.get_written("pos").unwrap(), ParamValue::Float(1.0));
    assert_eq!(d.get_write().unwrap(), 0b10001);
    let res = Message::SubRes {
        params: 0b110,
        interval_ms: 100,
        device_id: 128,
        year: 0xee,
        random: 0xc0de_beef_dead_beef,
    };
    d.update(&res).unwrap();
    assert_eq!(d.make_sub_res().unwrap(), res);
    assert_eq!(
        d.uid().unwrap().to_u128(),
        (128u128 << 72) | (0xeeu128 << 64) | 0xc0de_beef_dead_beef
    );
    let wrong = Message::SubRes {
        params: 0b110,
        interval_ms: 100,
        device_id: 7,
        year: 0xee,
        random: 1,
    };
    assert!(d
        .update(&wrong)
        .unwrap_err()
        .to_string()
        .contains("device_id 7"));
}

#[test]
fn bad_messages_are_refused_before_writing() {
    let d = example();
    // flag (id 0) is not readable: DEV_DATA cannot carry it.
    let err = d
        .update(&Message::DevData {
            bitmap: 0b101,
            values: vec![1, 2, 3, 4, 5],
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("`flag` (id 0) is not readable"),
        "{err}"
    );
    assert_eq!(d.get("id").unwrap(), ParamValue::UInt(0));
    let err = d
        .update(&Message::DevData {
            bitmap: 0b100,
            values: vec![1, 2],
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("needs 4 value bytes, the message has 2"),
        "{err}"
    );
    let err = d
        .update(&Message::DevData {
            bitmap: 1 << 9,
            values: vec![],
        })
        .unwrap_err();
    assert!(err.to_string().contains("no parameter id 9"), "{err}");
}

#[test]
fn parameter_errors_name_the_parameter() {
    let d = example();
    let e = d.get("nope").unwrap_err().to_string();
    assert!(
        e.contains("no parameter `nope`") && e.contains("duty_cycle"),
        "{e}"
    );
    let e = d.get("flag").unwrap_err().to_string();
    assert!(e.contains("`flag` is not readable"), "{e}");
    let e = d.write("duty_cycle", 1.0).unwrap_err().to_string();
    assert!(e.contains("`duty_cycle` is not writeable"), "{e}");
    let e = d.set("id", -1).unwrap_err().to_string();
    assert!(e.contains("bad value for parameter `id`"), "{e}");
    let e = d
        .set_json("id", &serde_json::json!("x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("parameter `id`"), "{e}");
    let w = d.set("duty_cycle", 2.0).unwrap();
    assert!(w.is_none(), "no bounds on duty_cycle");
    let w = d.write("pos", 3.0).unwrap().unwrap();
    assert!(matches!(w, Warning::Clamped { bound: Bound::Upper, limit, .. } if limit == 1.0));
}

#[test]
fn transactions_nest_and_exclude_other_threads() {
    let catalog =
        Catalog::from_json(r#"{"counter": {"params": [{"name": "n", "type": "uint64"}]}}"#)
            .unwrap();
    let ty = Arc::new(BufferType::from_catalog(&catalog, "counter").unwrap());
    let buffer = Arc::new(Buffer::new_local(&ty).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = buffer.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    let _tx = b.transaction().unwrap();
                    let ParamValue::UInt(n) = b.get("n").unwrap() else {
                        panic!()
                    };
                    b.set("n", n + 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(buffer.get("n").unwrap(), ParamValue::UInt(40_000));
    assert_eq!(buffer.to_json().unwrap(), serde_json::json!({"n": 40_000}));
}

#[test]
fn spec_json_reparses_to_the_same_type_and_hash_tells_catalogs_apart() {
    let d = example();
    let ty = d.buffer_type();
    let again = Catalog::from_json(ty.spec_json()).unwrap();
    let again = BufferType::from_catalog(&again, "example-device").unwrap();
    assert_eq!(again.hash(), ty.hash());
    assert_eq!(again.device_type(), ty.device_type());
    let other = vectors()["example_device"]["catalog"]
        .to_string()
        .replace("\"upper\":1", "\"upper\":2");
    let other = Catalog::from_json(&other).unwrap();
    let other = BufferType::from_catalog(&other, "example-device").unwrap();
    assert_ne!(
        other.hash(),
        ty.hash(),
        "a different bound is a different catalog"
    );
}

#[test]
fn plain_types_are_not_smart_devices() {
    let catalog =
        Catalog::from_json(r#"{"plain": {"params": [{"name": "n", "type": "int"}]}}"#).unwrap();
    let ty = Arc::new(BufferType::from_catalog(&catalog, "plain").unwrap());
    let e = DeviceBuffer::try_from(Buffer::new_local(&ty).unwrap()).unwrap_err();
    assert!(e.to_string().contains("needs a Smart Device type"), "{e}");
    let e = BufferType::from_catalog(&catalog, "nope").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no buffer type `nope` in the catalog (it has: plain)"
    );
}

// -- shared buffers between real processes ---------------------------

const CHILD_ENV: &str = "BSE_DEVICE_TEST_BUFFER";
const INCREMENTS: u64 = 100_000;

fn counter_type() -> Arc<BufferType> {
    let catalog = Catalog::from_json(
        r#"{"counter": {"params": [{"name": "n", "type": "uint64"}, {"name": "holder", "type": "int32"}]}}"#,
    )
    .unwrap();
    Arc::new(BufferType::from_catalog(&catalog, "counter").unwrap())
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "bsedev-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

fn spawn_child(test: &str, name: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::test_support::test_path(module_path!(), test),
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn add_one(buffer: &Buffer) {
    let _tx = buffer.transaction().unwrap();
    let ParamValue::UInt(n) = buffer.get("n").unwrap() else {
        panic!("n is a uint64")
    };
    buffer.set("n", n + 1).unwrap();
}

/// Two real processes (plus this one) add to one counter in shared
/// memory, each in a transaction: no update is lost.
#[test]
fn two_processes_add_without_losing_updates() {
    let name = unique("add");
    let _unlink = Unlink(name.clone());
    let ty = counter_type();
    let buffer = Buffer::create_shared(&name, &ty).unwrap();
    let children: Vec<_> = (0..2).map(|_| spawn_child("child_adds", &name)).collect();
    for _ in 0..INCREMENTS {
        add_one(&buffer);
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "child failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(buffer.get("n").unwrap(), ParamValue::UInt(3 * INCREMENTS));
}

/// Child of `two_processes_add_without_losing_updates`.
#[test]
#[ignore]
fn child_adds() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    let buffer = Buffer::attach_shared(&name, &counter_type()).unwrap();
    assert!(!buffer.is_owner());
    for _ in 0..INCREMENTS {
        add_one(&buffer);
    }
}

/// A process killed (SIGKILL) in the middle of a transaction: the next
/// locker recovers the mutex instead of blocking forever.
#[test]
fn a_holder_killed_mid_transaction_does_not_block_the_others() {
    let name = unique("kill");
    let _unlink = Unlink(name.clone());
    let buffer = Arc::new(Buffer::create_shared(&name, &counter_type()).unwrap());
    let mut child = spawn_child("child_holds_forever", &name);
    // The child says on stdout when it holds the lock (reading the
    // buffer would wait for that very lock).
    let stdout = child.stdout.take().unwrap();
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("HOLDING THE LOCK") {
                let _ = said.send(());
            }
        }
    });
    let held = heard.recv_timeout(std::time::Duration::from_secs(20));
    // Who holds it is read without taking the lock; the valid flag too.
    let holder = buffer.segment().lock_holder();
    assert!(buffer.is_valid_unlocked());
    child.kill().unwrap();
    held.expect("the child never took the lock");
    assert_eq!(holder.and_then(|h| h.pid), Some(child.id() as i32));
    child.wait().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let b = buffer.clone();
    std::thread::spawn(move || {
        let outcome = (|| -> Result<(bool, bool), String> {
            let recovered = b.transaction().map_err(|e| e.to_string())?.recovered();
            let again = b.transaction().map_err(|e| e.to_string())?.recovered();
            b.set("n", 5u64).map_err(|e| e.to_string())?;
            Ok((recovered, again))
        })();
        let _ = tx.send(outcome);
    });
    let (recovered, again) = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("locking after the holder was killed hung")
        .unwrap();
    assert!(recovered, "the first transaction recovered the lock");
    assert!(!again, "the next one found it healthy");
    assert_eq!(buffer.get("n").unwrap(), ParamValue::UInt(5));
    assert!(matches!(buffer.get("holder").unwrap(), ParamValue::Int(pid) if pid > 0));
}

/// Child of `a_holder_killed_mid_transaction_does_not_block_the_others`.
#[test]
#[ignore]
fn child_holds_forever() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    let buffer = Buffer::attach_shared(&name, &counter_type()).unwrap();
    let _tx = buffer.transaction().unwrap();
    // Announce from inside the transaction (the lock is recursive),
    // then hold it until killed.
    buffer.set("holder", std::process::id() as i32).unwrap();
    println!("HOLDING THE LOCK");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
fn attaching_with_another_catalog_is_refused_and_open_reads_the_stored_type() {
    let name = unique("mismatch");
    let _unlink = Unlink(name.clone());
    let created = Buffer::create_shared(&name, &counter_type()).unwrap();
    created.set("n", 9u64).unwrap();
    let other = Catalog::from_json(
        r#"{"counter": {"params": [{"name": "n", "type": "uint32"}, {"name": "holder", "type": "int32"}]}}"#,
    )
    .unwrap();
    let other = Arc::new(BufferType::from_catalog(&other, "counter").unwrap());
    let err = Buffer::attach_shared(&name, &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&name) && err.contains("counter"), "{err}");
    let opened = Buffer::open_shared(&name).unwrap();
    assert_eq!(opened.buffer_type().hash(), counter_type().hash());
    assert_eq!(opened.get("n").unwrap(), ParamValue::UInt(9));
    // Closing the owner marks the buffer invalid for everyone.
    created.close();
    let err = opened.get("n").unwrap_err().to_string();
    assert!(
        err.contains("device does not exist (marked as invalid)"),
        "{err}"
    );
    assert!(!opened.is_valid().unwrap());
}

#[test]
fn handles_work_like_names_and_refuse_other_types() {
    let d = example();
    let id = d.param("id").unwrap();
    d.set_at(id, 41u32).unwrap();
    assert_eq!(d.get_at(id).unwrap(), ParamValue::UInt(41));
    assert_eq!(d.get("id").unwrap(), ParamValue::UInt(41));
    let pos = d.param("pos").unwrap();
    assert!(
        d.write_at(pos, 5.0).unwrap().is_some(),
        "clamped as by name"
    );
    assert_eq!(d.get_written("pos").unwrap(), ParamValue::Float(1.0));
    let flag = d.param("flag").unwrap();
    assert!(d
        .get_at(flag)
        .unwrap_err()
        .to_string()
        .contains("`flag` is not readable"));
    assert!(d.param("nope").is_err());
    let other = Buffer::new_local(&counter_type()).unwrap();
    let n = other.param("n").unwrap();
    let e = d.set_at(n, 1u64).unwrap_err().to_string();
    assert!(
        e.contains("handle belongs to a buffer of another type"),
        "{e}"
    );
}

/// `set` and `get` take fixed-size fast paths for scalars; whatever they
/// do must be exactly what the general encoder and decoder do: same
/// bytes, values, warnings and refusals.
#[test]
fn the_scalar_fast_path_agrees_with_the_general_encoder() {
    let catalog = Catalog::from_json(
        r#"{"t": {"params": [
            {"name": "bounded", "type": "float", "lower": -1, "upper": 1},
            {"name": "free", "type": "float"},
            {"name": "dbl", "type": "double", "lower": 0, "upper": 1e300},
            {"name": "i8", "type": "int8"},
            {"name": "u16", "type": "uint16"},
            {"name": "i32", "type": "int32"},
            {"name": "u64", "type": "uint64"},
            {"name": "b", "type": "bool"}
        ]}}"#,
    )
    .unwrap();
    let ty = Arc::new(BufferType::from_catalog(&catalog, "t").unwrap());
    let buffer = Buffer::new_local(&ty).unwrap();
    let max = f64::from(f32::MAX);
    let values = [
        ParamValue::Float(0.5),
        ParamValue::Float(-0.0),
        ParamValue::Float(1.0),
        ParamValue::Float(-1.0),
        ParamValue::Float(1.5),
        ParamValue::Float(-7.0),
        ParamValue::Float(f64::NAN),
        ParamValue::Float(f64::INFINITY),
        ParamValue::Float(f64::NEG_INFINITY),
        ParamValue::Float(max),
        ParamValue::Float(-max),
        ParamValue::Float(max * 1.000_000_01),
        ParamValue::Float(1e39),
        ParamValue::Float(1e-50),
        ParamValue::Int(-129),
        ParamValue::Int(-128),
        ParamValue::Int(-1),
        ParamValue::Int(127),
        ParamValue::UInt(128),
        ParamValue::UInt(65_535),
        ParamValue::UInt(65_536),
        ParamValue::Int(i64::MIN),
        ParamValue::UInt(u64::MAX),
        ParamValue::Bool(true),
        ParamValue::Bool(false),
        ParamValue::Text("x".into()),
    ];
    for slot in &ty.slots {
        let name = &slot.param.name;
        for value in &values {
            let mut expected = vec![0u8; slot.size];
            let general = encode(&slot.param, value, &mut expected);
            // A marker, so an unchanged field is told from a stored zero.
            buffer.write_bytes(slot.update_offset.unwrap(), &vec![0xA5; slot.size]);
            let result = buffer.set(name, value.clone());
            let mut stored = vec![0u8; slot.size];
            buffer.read_bytes(slot.update_offset.unwrap(), &mut stored);
            match (&general, &result) {
                (Ok(warning), Ok(got)) => {
                    assert_eq!(got, warning, "{name} = {value:?}: warning");
                    assert_eq!(stored, expected, "{name} = {value:?}: bytes");
                    // And `get`'s fast path decodes as the general decoder.
                    assert_eq!(
                        buffer.get(name).unwrap(),
                        decode(&slot.param.ty, &expected),
                        "{name} = {value:?}: get"
                    );
                }
                (Err(_), Err(BufferError::BadValue { param, .. })) => {
                    assert_eq!(param, name);
                    assert_eq!(stored, vec![0xA5; slot.size], "{name} = {value:?}: written");
                }
                _ => panic!("{name} = {value:?}: general {general:?}, set {result:?}"),
            }
        }
    }
}

/// A segment whose data is smaller than the type it claims (a header
/// from an incompatible writer) is refused, never accessed.
#[test]
fn a_segment_smaller_than_its_type_is_refused() {
    let ty = counter_type();
    let spec = SegmentSpec {
        data_size: 1,
        ..ty.segment_spec()
    };
    let segment = Segment::new_local(&spec).unwrap();
    // SAFETY: the region is `segment`'s, alive until the end of the test.
    let err = unsafe { Buffer::from_raw_segment(segment.base(), segment.len(), &ty) }.unwrap_err();
    assert!(matches!(err, BufferError::LayoutTooLarge { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("needs 24 bytes") && text.contains("recreate"),
        "{text}"
    );
}
