//! `buffer layout`: the C layout of a catalog's buffer types as JSON, for
//! writing C structs, ctypes definitions or raw readers of `/dev/shm`.
//!
//! Offsets are in bytes from the start of the buffer struct; a field's
//! `offset` is within its block and `absolute_offset` within the struct. In
//! a shared segment the struct starts at `shared_memory.data_offset`.

use bitstream_buffer::catalog::{
    control_offsets as ctl, BlockLayout, Catalog, DeviceType, Param, CONTROL_ALIGN, CONTROL_SIZE,
    METRICS_ALIGN, METRICS_SIZE,
};
use bitstream_buffer::segment::{DATA_ALIGN, HEADER_SIZE, SEGMENT_DATA_OFFSET};
use serde_json::{json, Map, Value as Json};

/// The layout of every type of `catalog` (an object keyed by type name, in
/// catalog order), or of the one type `only` (its object alone).
pub fn catalog_layout(catalog: &Catalog, only: Option<&DeviceType>) -> Json {
    match only {
        Some(t) => type_layout(t),
        None => Json::Object(
            catalog
                .types()
                .iter()
                .map(|t| (t.name.clone(), type_layout(t)))
                .collect(),
        ),
    }
}

/// The layout of one type (see the module docs for the fields).
pub fn type_layout(ty: &DeviceType) -> Json {
    let l = ty.layout();
    let control = l.control_offset.map(|c| {
        let field = |name: &str, offset: usize, size: usize, c_type: &str| {
            json!({
                "name": name,
                "offset": offset,
                "absolute_offset": c + offset,
                "size": size,
                "c_type": c_type,
            })
        };
        json!({
            "offset": c,
            "size": CONTROL_SIZE,
            "align": CONTROL_ALIGN,
            "fields": [
                field("uid.device_id", ctl::UID + ctl::UID_DEVICE_ID, 2, "uint16_t"),
                field("uid.year", ctl::UID + ctl::UID_YEAR, 1, "uint8_t"),
                field("uid.random", ctl::UID + ctl::UID_RANDOM, 8, "uint64_t"),
                field("subscription", ctl::SUBSCRIPTION, 2, "uint16_t"),
                field("interval", ctl::INTERVAL, 2, "uint16_t"),
                field("read", ctl::READ, 2, "uint16_t"),
                field("write", ctl::WRITE, 2, "uint16_t"),
                field("update", ctl::UPDATE, 2, "uint16_t"),
                field("last_write", ctl::LAST_WRITE, 8, "double"),
                field("last_update", ctl::LAST_UPDATE, 8, "double"),
            ],
        })
    });
    let metrics = l.metrics_offset.map(|m| {
        json!({
            "offset": m,
            "size": METRICS_SIZE,
            "align": METRICS_ALIGN,
            "send_offset": m,
            "recv_offset": m + METRICS_SIZE / 2,
            "c_type": "uint64_t send[16], recv[16] (index: message type id & 0x0f, ERROR at 15)",
        })
    });
    json!({
        "name": ty.name,
        "size": l.size,
        "align": l.align,
        "device_id": ty.device_id,
        "smart": ty.is_smart(),
        "sub_interval": ty.sub_interval,
        "write_interval": ty.write_interval,
        "heartbeat_interval": ty.heartbeat_interval,
        "valid_flag": {"offset": l.valid_flag_offset, "size": 1, "c_type": "bool"},
        "update_block": block(ty, &l.update_block),
        "write_block": block(ty, &l.write_block),
        "control": control,
        "metrics": metrics,
        "shared_memory": {
            "data_offset": SEGMENT_DATA_OFFSET,
            "data_align": DATA_ALIGN,
            "header_size": HEADER_SIZE,
            "note": format!(
                "in a shared segment (/dev/shm/<name>) this struct starts at byte {SEGMENT_DATA_OFFSET} \
                 (after the {HEADER_SIZE}-byte header, aligned to {DATA_ALIGN}); add data_offset to every \
                 offset above for the offset in the file, and hold the header's mutex (at byte 128) \
                 while touching the data"
            ),
        },
    })
}

fn block(ty: &DeviceType, b: &BlockLayout) -> Json {
    let fields: Vec<Json> = b
        .fields
        .iter()
        .map(|f| {
            let mut o = Map::new();
            o.insert("name".into(), json!(f.name));
            let param: Option<&Param> = ty.param(&f.name);
            if let Some(p) = param {
                o.insert("id".into(), json!(p.id));
                o.insert("type".into(), json!(p.ty.to_string()));
            }
            o.insert("offset".into(), json!(f.offset));
            o.insert("absolute_offset".into(), json!(b.offset + f.offset));
            o.insert("size".into(), json!(f.size));
            o.insert("align".into(), json!(f.align));
            o.insert("c_type".into(), json!(f.c_type));
            if let Some(p) = param {
                o.insert("readable".into(), json!(p.readable));
                o.insert("writeable".into(), json!(p.writeable));
                o.insert("subscribed".into(), json!(p.subscribed));
                if p.lower.is_finite() {
                    o.insert("lower".into(), json!(p.lower));
                }
                if p.upper.is_finite() {
                    o.insert("upper".into(), json!(p.upper));
                }
            }
            Json::Object(o)
        })
        .collect();
    json!({
        "offset": b.offset,
        "size": b.size,
        "align": b.align,
        "fields": fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIE: &str = include_str!("../../../../../fixtures/buffers/pie-catalog.json");
    const VECTORS: &str = include_str!("../../../../../fixtures/buffers/vectors.json");

    fn pie() -> Catalog {
        Catalog::from_json(PIE).unwrap()
    }

    #[test]
    fn limit_switch_and_servo() {
        let c = pie();
        let all = catalog_layout(&c, None);
        assert_eq!(all.as_object().unwrap().len(), 13);
        let ls = &all["limit-switch"];
        assert_eq!(ls["size"], 312);
        assert_eq!(ls["align"], 8);
        assert_eq!(ls["device_id"], 0);
        assert_eq!(ls["smart"], true);
        assert_eq!(ls["valid_flag"]["offset"], 0);
        assert_eq!(ls["update_block"]["offset"], 1);
        assert_eq!(ls["update_block"]["size"], 3);
        assert_eq!(ls["write_block"]["offset"], 4);
        assert_eq!(ls["write_block"]["size"], 0);
        assert_eq!(ls["control"]["offset"], 8);
        assert_eq!(ls["control"]["size"], 48);
        assert_eq!(ls["metrics"]["offset"], 56);
        assert_eq!(ls["metrics"]["size"], 256);
        assert_eq!(ls["update_block"]["fields"][2]["absolute_offset"], 3);
        let fields = ls["control"]["fields"].as_array().unwrap();
        let abs = |n: &str| {
            fields.iter().find(|f| f["name"] == n).unwrap()["absolute_offset"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(abs("uid.device_id"), 8);
        assert_eq!(abs("uid.year"), 10);
        assert_eq!(abs("uid.random"), 16);
        assert_eq!(abs("subscription"), 24);
        assert_eq!(abs("last_update"), 48);
        let servo = &all["servo-motor"];
        assert_eq!(servo["size"], 328);
        assert_eq!(servo["write_block"]["offset"], 12);
        assert_eq!(servo["update_block"]["fields"][0]["lower"], -1.0);
        let field = &all["field"];
        assert_eq!(field["device_id"], Json::Null);
        assert_eq!(field["control"], Json::Null);
        assert_eq!(field["metrics"], Json::Null);
        assert_eq!(field["shared_memory"]["data_offset"], 192);
    }

    #[test]
    fn example_device_fields() {
        let v: Json = serde_json::from_str(VECTORS).unwrap();
        let c = Catalog::from_json(&v["example_device"]["catalog"].to_string()).unwrap();
        let t = c.get("example-device").unwrap();
        let l = catalog_layout(&c, Some(t));
        assert_eq!(l["size"], 848);
        assert_eq!(l["name"], "example-device");
        let pos = &l["write_block"]["fields"][3];
        assert_eq!(pos["name"], "pos");
        assert_eq!(pos["id"], 4);
        assert_eq!(pos["offset"], 264);
        assert_eq!(pos["absolute_offset"], 272 + 264);
        assert_eq!(pos["c_type"], "float");
        assert_eq!(pos["type"], "double");
        assert_eq!(
            (pos["lower"].as_f64(), pos["upper"].as_f64()),
            (Some(-1.0), Some(1.0))
        );
        let dc = &l["update_block"]["fields"][0];
        assert!(
            dc.get("lower").is_none() && dc.get("upper").is_none(),
            "{dc}"
        );
        assert_eq!(l["control"]["offset"], 544);
        assert_eq!(l["metrics"]["recv_offset"], 592 + 128);
    }
}
