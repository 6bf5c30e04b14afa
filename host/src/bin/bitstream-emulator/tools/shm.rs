//! `buffer ls`, `dump`, `get` and `set`: shared device buffers in
//! `/dev/shm`, seen from outside the process that owns them.
//!
//! Nothing here waits for good: `ls` takes no lock (it reads the valid flag
//! and the lock's holder without locking); `dump`, `get` and `set` take the
//! buffer's lock with a bounded wait first and, when it stays held, name the
//! process holding it. Attaching refuses a segment whose lock bytes are
//! damaged (`Segment::check_lock`).
//!
//! The tools attach to a buffer ([`Buffer::open_shared`], or
//! [`Buffer::attach_shared`] with a catalog): they never create, own or
//! remove one, and never change the valid flag. Reading a Smart Device's
//! `read`/`write`/`update` bitmaps would clear them (the SDK's getters
//! return and clear), so `dump` leaves them out.

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::device::{Buffer, BufferType, DeviceBuffer};
use bitstream_buffer::message::MessageType;
use bitstream_buffer::segment::{Segment, SegmentGuard};
use bitstream_buffer::value::Warning;
use serde_json::{json, Map, Value as Json};

use super::known_types;
use bitstream_host::engine::block_buffer::process_alive;

/// An SDK error as a flat message: the SDK's messages already include
/// their sources, which `{:#}` would print a second time.
fn flat(e: impl Display) -> anyhow::Error {
    anyhow!("{e}")
}

// ---------------------------------------------------------------------------
// ls
// ---------------------------------------------------------------------------

/// The shared memory objects whose names start with `prefix`: for each a
/// JSON object with `name` and `segment` (whether it is a device buffer
/// segment); segments add `type`, `size` (of the struct), `segment_len`,
/// `valid` (`null` if it cannot be read, with `error`), `creator_pid`,
/// `creator_alive` and `locked_by` (`{"pid", "tid"}` of the lock's holder,
/// or `null`); other objects add `error` (why they are not segments).
/// Takes no lock.
pub fn list(prefix: &str) -> Result<Vec<Json>> {
    let names = Segment::list_shared(prefix).map_err(flat)?;
    Ok(names.iter().map(|name| list_entry(name)).collect())
}

fn list_entry(name: &str) -> Json {
    let segment = match Segment::open_shared(name) {
        Ok(s) => s,
        Err(e) => return json!({"name": name, "segment": false, "error": e.to_string()}),
    };
    let pid = segment.creator_pid();
    let mut o = Map::new();
    o.insert("name".into(), json!(name));
    o.insert("segment".into(), json!(true));
    o.insert("type".into(), json!(segment.type_name()));
    o.insert("size".into(), json!(segment.data_size()));
    o.insert("segment_len".into(), json!(segment.len()));
    let holder = segment.lock_holder();
    drop(segment);
    match Buffer::open_shared(name) {
        Ok(b) => {
            o.insert("valid".into(), json!(b.is_valid_unlocked()));
        }
        Err(e) => {
            o.insert("valid".into(), Json::Null);
            o.insert("error".into(), json!(e.to_string()));
        }
    }
    o.insert(
        "locked_by".into(),
        holder.map_or(Json::Null, |h| json!({"pid": h.pid, "tid": h.tid})),
    );
    o.insert("creator_pid".into(), json!(pid));
    o.insert("creator_alive".into(), json!(process_alive(pid)));
    Json::Object(o)
}

/// `entries` (from [`list`]) as a text table.
pub fn list_text(entries: &[Json]) -> String {
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap_or_default().to_owned();
            if e["segment"] != true {
                let why = e["error"].as_str().unwrap_or_default();
                return [
                    name,
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("(not a device buffer: {why})"),
                ];
            }
            let valid = match e["valid"].as_bool() {
                Some(true) => "yes".to_owned(),
                Some(false) => "no".to_owned(),
                None => format!("? ({})", e["error"].as_str().unwrap_or_default()),
            };
            let alive = if e["creator_alive"] == true {
                "alive"
            } else {
                "gone"
            };
            [
                name,
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["size"].to_string(),
                valid,
                format!("{} ({alive})", e["creator_pid"]),
            ]
        })
        .collect();
    let header = ["NAME", "TYPE", "SIZE", "VALID", "CREATOR PID"].map(str::to_owned);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// open, dump
// ---------------------------------------------------------------------------

/// Attaches to the shared buffer `name`. Without a catalog its type is read
/// from the segment; with `(catalog, path)` the type named in the segment's
/// header is taken from the catalog, and must match the creator's exactly.
pub fn open(name: &str, catalog: Option<(&Catalog, &Path)>) -> Result<Buffer> {
    let Some((catalog, path)) = catalog else {
        return Buffer::open_shared(name).map_err(flat);
    };
    let type_name = Segment::open_shared(name).map_err(flat)?.type_name();
    let Some(ty) = catalog.get(&type_name) else {
        bail!(
            "buffer `{name}` holds type `{type_name}`, which catalog {} does not have (its types: \
             {}); use the catalog of the buffer's creator, or leave out --catalog",
            path.display(),
            known_types(catalog)
        );
    };
    let ty = Arc::new(BufferType::new(ty));
    Buffer::attach_shared(name, &ty).map_err(|e| {
        anyhow!(
            "buffer `{name}` does not match type `{type_name}` of catalog {}: {e}",
            path.display()
        )
    })
}

/// Takes `buffer`'s lock, waiting at most `wait`; when it stays held, the
/// error names the holder. Operations of this thread nest inside it (the
/// lock is recursive), so none of them waits again.
fn hold<'b>(buffer: &'b Buffer, wait: Duration) -> Result<SegmentGuard<'b>> {
    let segment = buffer.segment();
    segment.check_lock().map_err(flat)?;
    match segment.lock_timeout(wait).map_err(flat)? {
        Some(guard) => Ok(guard),
        None => {
            let holder = segment
                .lock_holder()
                .map_or_else(|| "another process".to_owned(), |h| h.to_string());
            bail!(
                "buffer `{}` is locked by {holder}, which held it for the {} ms waited; try \
                 again (--wait-ms waits longer), or stop that process if it hangs",
                buffer.name(),
                wait.as_millis()
            )
        }
    }
}

/// Everything readable in the shared buffer `name`, read under one lock:
/// `name`, `type`, `size`, `creator_pid`, `valid`, `params` (update block),
/// `written` (write block) and, for Smart Devices, `control` and `metrics`.
/// Fails on an invalid buffer, or when the lock stays held for `wait`.
pub fn dump(name: &str, catalog: Option<(&Catalog, &Path)>, wait: Duration) -> Result<Json> {
    let buffer = open(name, catalog)?;
    if buffer.buffer_type().device_type().is_smart() {
        let device = DeviceBuffer::try_from(buffer).map_err(flat)?;
        let _held = hold(&device, wait)?;
        dump_buffer(&device, Some(&device))
    } else {
        let _held = hold(&buffer, wait)?;
        dump_buffer(&buffer, None)
    }
}

fn dump_buffer(buffer: &Buffer, device: Option<&DeviceBuffer>) -> Result<Json> {
    let _tx = buffer.transaction().map_err(flat)?;
    let ty = buffer.buffer_type();
    let mut o = Map::new();
    o.insert("name".into(), json!(buffer.name()));
    o.insert("type".into(), json!(ty.name()));
    o.insert("device_id".into(), json!(ty.device_type().device_id));
    o.insert("size".into(), json!(ty.layout().size));
    o.insert("creator_pid".into(), json!(buffer.segment().creator_pid()));
    o.insert("valid".into(), json!(true));
    o.insert("params".into(), buffer.to_json().map_err(flat)?);
    o.insert("written".into(), buffer.written_to_json().map_err(flat)?);
    if let Some(d) = device {
        let uid = d.uid().map_err(flat)?;
        let pending = d.pending().map_err(flat)?;
        o.insert(
            "control".into(),
            json!({
                "uid": {
                    "device_id": uid.device_id,
                    "year": uid.year,
                    "random": uid.random,
                    "integer": uid.to_u128().to_string(),
                },
                "subscription": d.subscription().map_err(flat)?,
                "interval": d.interval().map_err(flat)?,
                "last_write": d.last_write().map_err(flat)?,
                "last_update": d.last_update().map_err(flat)?,
                "pending": {
                    "read": pending.read,
                    "write": pending.write,
                    "update": pending.update,
                },
            }),
        );
        let (sent, received) = d.metrics().map_err(flat)?;
        let by_type = |counts: &[u64; 16]| -> Json {
            (0..=u8::MAX)
                .filter_map(MessageType::from_id)
                .map(|t| {
                    (
                        t.name().to_owned(),
                        json!(counts[usize::from(t.id() & 0x0f)]),
                    )
                })
                .collect::<Map<_, _>>()
                .into()
        };
        o.insert(
            "metrics".into(),
            json!({"sent": by_type(&sent), "received": by_type(&received)}),
        );
    }
    Ok(Json::Object(o))
}

// ---------------------------------------------------------------------------
// get, set
// ---------------------------------------------------------------------------

/// The JSON value of parameter `param` of the shared buffer `name`: the
/// update block, or the write block (pending writes) when `written`.
/// Waits at most `wait` for the lock.
pub fn get(name: &str, param: &str, written: bool, wait: Duration) -> Result<Json> {
    let buffer = open(name, None)?;
    let _held = hold(&buffer, wait)?;
    read(&buffer, param, written)
}

fn read(buffer: &Buffer, param: &str, written: bool) -> Result<Json> {
    let v = if written {
        buffer.get_written(param)
    } else {
        buffer.get(param)
    }
    .map_err(flat)?;
    Ok(v.to_json())
}

/// What [`set`] did.
#[derive(Debug)]
pub struct SetOutcome {
    /// The value now stored (after clamping).
    pub value: Json,
    /// The clamp made, if any.
    pub warning: Option<Warning>,
}

/// Parses a value given on the command line as JSON; the error says how to
/// quote strings.
pub fn parse_value(text: &str, param: &str) -> Result<Json> {
    serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "value `{text}` for parameter `{param}` is not JSON ({e}); give numbers and booleans \
             as they are and text in quotes, e.g. '\"hello\"', arrays as '[1, 2]'"
        )
    })
}

/// Sets parameter `param` of the shared buffer `name` to `value`: the
/// update block (`Buffer::set_json`), or the write block when `write`
/// (`Buffer::write_json`). Floats are clamped to the parameter's bounds.
/// Waits at most `wait` for the lock.
pub fn set(
    name: &str,
    param: &str,
    value: &Json,
    write: bool,
    wait: Duration,
) -> Result<SetOutcome> {
    let buffer = open(name, None)?;
    let _held = hold(&buffer, wait)?;
    let warning = if write {
        buffer.write_json(param, value)
    } else {
        buffer.set_json(param, value)
    }
    .map_err(flat)?;
    let value = read(&buffer, param, write)?;
    Ok(SetOutcome { value, warning })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitstream_buffer::value::ParamValue;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const WAIT: Duration = Duration::from_secs(5);

    const CATALOG: &str = r#"{
        "motor": {"device_id": 7, "params": [
            {"name": "pos", "type": "double", "lower": -1, "upper": 1, "writeable": true},
            {"name": "label", "type": "char[8]"},
            {"name": "target", "type": "int32", "readable": false, "writeable": true}]},
        "plain": {"params": [{"name": "n", "type": "uint16"}]}
    }"#;

    /// A shared buffer created by this test process, unlinked on drop.
    struct Shm {
        name: String,
        buffer: Option<Buffer>,
    }

    impl Drop for Shm {
        fn drop(&mut self) {
            self.buffer.take();
            let _ = Segment::unlink(&self.name);
        }
    }

    fn create(type_name: &str) -> Shm {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "bitstream-tools-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let catalog = Catalog::from_json(CATALOG).unwrap();
        let ty = Arc::new(BufferType::from_catalog(&catalog, type_name).unwrap());
        let buffer = Buffer::create_shared(&name, &ty).unwrap();
        Shm {
            name,
            buffer: Some(buffer),
        }
    }

    #[test]
    fn get_set_and_dump() {
        let shm = create("motor");
        let owner = shm.buffer.as_ref().unwrap();
        owner.set("label", "hi").unwrap();
        assert_eq!(get(&shm.name, "label", false, WAIT).unwrap(), json!("hi"));
        let out = set(&shm.name, "pos", &json!(0.5), false, WAIT).unwrap();
        assert_eq!((out.value, out.warning), (json!(0.5), None));
        assert_eq!(owner.get("pos").unwrap(), ParamValue::Float(0.5));
        let out = set(&shm.name, "pos", &json!(3), true, WAIT).unwrap();
        assert_eq!(out.value, json!(1.0));
        assert!(out.warning.unwrap().to_string().contains("upper bound 1"));
        let out = set(&shm.name, "target", &json!(-5), true, WAIT).unwrap();
        assert_eq!(out.value, json!(-5));
        let e = set(&shm.name, "target", &json!(1), false, WAIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`target` is not readable"), "{e}");
        let e = set(&shm.name, "nope", &json!(1), true, WAIT)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no parameter `nope`") && e.contains("pos, label, target"),
            "{e}"
        );
        let e = set(&shm.name, "label", &json!("far too long"), false, WAIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad value for parameter `label`"), "{e}");
        let e = set(&shm.name, "pos", &json!("x"), true, WAIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad value for parameter `pos`"), "{e}");

        let d = dump(&shm.name, None, WAIT).unwrap();
        assert_eq!(d["type"], "motor");
        assert_eq!(d["valid"], true);
        assert_eq!(d["params"], json!({"pos": 0.5, "label": "hi"}));
        assert_eq!(d["written"], json!({"pos": 1.0, "target": -5}));
        assert_eq!(d["control"]["uid"]["integer"], "0");
        assert!(d["control"]["last_write"].as_f64().unwrap() > 1.6e9);
        assert!(d["control"].get("write").is_none());
        assert_eq!(d["metrics"]["sent"]["DEV_WRITE"], 0);
        // Dumping did not clear the pending-write bitmap.
        let device = DeviceBuffer::try_from(shm_buffer(&shm.name)).unwrap();
        assert_eq!(device.get_write().unwrap(), 0b101);

        owner.set_valid(false).unwrap();
        let e = get(&shm.name, "pos", false, WAIT).unwrap_err().to_string();
        assert!(
            e.contains("device does not exist (marked as invalid)"),
            "{e}"
        );
        assert!(dump(&shm.name, None, WAIT).is_err());
    }

    fn shm_buffer(name: &str) -> Buffer {
        Buffer::open_shared(name).unwrap()
    }

    #[test]
    fn dump_with_a_catalog_checks_the_type() {
        let shm = create("plain");
        let catalog = Catalog::from_json(CATALOG).unwrap();
        let path = Path::new("cat.json");
        let d = dump(&shm.name, Some((&catalog, path)), WAIT).unwrap();
        assert_eq!(d["params"], json!({"n": 0}));
        assert!(d.get("control").is_none());
        let other =
            Catalog::from_json(r#"{"plain": {"params": [{"name": "n", "type": "int16"}]}}"#)
                .unwrap();
        let e = dump(&shm.name, Some((&other, path)), WAIT)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not match type `plain` of catalog cat.json"),
            "{e}"
        );
        assert!(e.contains("attach with the creator's catalog"), "{e}");
        let none = Catalog::from_json(r#"{"x": {}}"#).unwrap();
        let e = dump(&shm.name, Some((&none, path)), WAIT)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds type `plain`, which catalog cat.json does not have (its types: x)"),
            "{e}"
        );
    }

    #[test]
    fn ls_shows_segments_and_other_objects() {
        let shm = create("plain");
        let junk = format!("bitstream-tools-unit-junk-{}", std::process::id());
        let junk_path = format!("/dev/shm/{junk}");
        std::fs::write(&junk_path, b"not a segment").unwrap();
        struct Rm(String);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let _rm = Rm(junk_path);
        let entries = list("bitstream-tools-unit-").unwrap();
        let mine = entries
            .iter()
            .find(|e| e["name"] == shm.name.as_str())
            .unwrap();
        assert_eq!(mine["segment"], true);
        assert_eq!(mine["type"], "plain");
        assert_eq!(mine["size"], 4);
        assert_eq!(mine["valid"], true);
        assert_eq!(mine["creator_pid"], std::process::id());
        assert_eq!(mine["creator_alive"], true);
        let other = entries.iter().find(|e| e["name"] == junk.as_str()).unwrap();
        assert_eq!(other["segment"], false);
        assert!(
            other["error"]
                .as_str()
                .unwrap()
                .contains("not a device buffer segment"),
            "{other}"
        );
        let text = list_text(&entries);
        assert!(text.starts_with("NAME"), "{text}");
        assert!(
            text.contains(&shm.name) && text.contains("(not a device buffer:"),
            "{text}"
        );
        assert!(list("bitstream-tools-unit-none-such-").unwrap().is_empty());
    }
}
