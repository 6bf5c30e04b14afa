//! The fuzz targets: each takes arbitrary bytes, must never panic, hang or
//! allocate without bound, and checks what must hold of what it parsed.
//! `fuzz_targets/*.rs` hand them to libFuzzer; `src/stable.rs` runs them on
//! stable Rust over seeds and their mutations.

#![forbid(unsafe_code)]

use std::path::Path;

use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::message::Message;
use bitstream_sdk::{Value, ValueMap};

/// A fuzz target: arbitrary bytes in, a panic when something is wrong.
pub type Target = fn(&[u8]);

/// The targets by name, in the order the stable runner runs them.
pub const TARGETS: [(&str, Target); 4] = [
    ("message_decode", message_decode),
    ("catalog_parse", catalog_parse),
    ("config_parse", config_parse),
    ("value_json", value_json),
];

/// Smart Device message decoding (COBS data and raw frames): strict, and
/// what decodes encodes back to the same message (a raw frame, to the same
/// bytes).
pub fn message_decode(data: &[u8]) {
    if let Ok(message) = Message::decode(data) {
        let encoded = message.encode().expect("a decoded message encodes");
        assert_eq!(
            Message::decode(&encoded).expect("its encoding decodes"),
            message
        );
        let delimited = message.encode_delimited().expect("encodes delimited");
        assert_eq!(Message::decode(&delimited).ok(), Some(message.clone()));
        let _ = message.field_values();
    }
    if let Ok(message) = Message::from_frame(data) {
        assert_eq!(
            message.to_frame().expect("a parsed frame encodes"),
            data,
            "a strict frame parse must give the same frame back"
        );
    }
}

/// Device-buffer catalogs: parsed or refused; every type of a parsed
/// catalog has a layout that fits its fields.
pub fn catalog_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(catalog) = Catalog::from_json(text) {
        for device in catalog.types() {
            let layout = device.layout();
            for block in [&layout.update_block, &layout.write_block] {
                assert!(
                    block.offset + block.size <= layout.size,
                    "{}: a block past the end of its struct",
                    device.name
                );
                for field in &block.fields {
                    assert!(block.field(&field.name).is_some(), "{}", field.name);
                    assert!(field.offset + field.size <= block.size, "{}", field.name);
                }
            }
            let _ = device.param_list();
        }
        let _ = catalog.names().count();
    }
}

/// `emulators/config.json`: every check runs to its end on any text, with
/// and without the list of available types.
pub fn config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("emulators/config.json");
    let types = ["probe".to_owned(), "ftile_ethernet".to_owned()];
    let (config, report) = bitstream_host::config::check_config_text(path, text, Some(&types));
    assert_eq!(config.is_some(), report.is_valid());
    let (config, report) = bitstream_host::config::check_config_text(path, text, None);
    assert_eq!(config.is_some(), report.is_valid());
}

/// JSON to [`Value`] and back: our reader accepts exactly what serde_json
/// accepts and gives the same value (repeated keys: first position, last
/// value); the JSON text of a value reads back as the same value; maps
/// built by `collect`, `extend` and `insert` agree.
pub fn value_json(data: &[u8]) {
    let ours = serde_json::from_slice::<Value>(data);
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "ours: {ours:?}; serde_json: {theirs:?}"
    );
    let (Ok(value), Ok(json)) = (ours, theirs) else {
        return;
    };
    assert_eq!(Value::from(json.clone()), value);
    let text = serde_json::to_string(&value).expect("a value serializes");
    let again: Value = serde_json::from_str(&text).expect("its text reads back");
    assert_eq!(again, value);
    assert_eq!(Value::from(serde_json::Value::from(value.clone())), value);
    if let Ok(text) = std::str::from_utf8(data) {
        let (with_repeats, _) = Value::from_json_with_repeats(text).expect("same reader");
        assert_eq!(with_repeats, value);
    }
    if let Value::Map(map) = &value {
        let mut pairs: Vec<(String, Value)> =
            map.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect();
        // Every key again, in reverse order, with another value.
        let repeats: Vec<(String, Value)> = pairs
            .iter()
            .rev()
            .map(|(k, _)| (k.clone(), Value::Null))
            .collect();
        pairs.extend(repeats);
        let collected: ValueMap = pairs.iter().cloned().collect();
        let mut extended = ValueMap::new();
        let (front, back) = pairs.split_at(pairs.len() / 3);
        extended.extend(front.iter().cloned());
        extended.extend(back.iter().cloned());
        assert_eq!(collected, extended);
        if pairs.len() <= 512 {
            let mut inserted = ValueMap::new();
            for (k, v) in pairs {
                inserted.insert(k, v);
            }
            assert_eq!(collected, inserted);
        }
    }
}
