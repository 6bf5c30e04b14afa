//! `message decode` and `message encode`: Smart Device messages between
//! their COBS wire form (hex, as in `fixtures/buffers/vectors.json`) and
//! JSON.
//!
//! The JSON of a message is `{"type": "<MessageType name>", ...fields}`, its
//! fields those of the message table (`bitstream_buffer::message`,
//! `MessageType::fields`), by name and in wire order, each by its kind:
//!
//! | kind | JSON |
//! | --- | --- |
//! | parameter bitmap (`params`) | a number; with a catalog, encoding also takes an array of parameter names |
//! | integer (`interval_ms`, `device_id`, `year`, `random`, `id`) | a number (encoding also takes a decimal or `0x` hex string, for 64-bit values) |
//! | value bitmap and values (`bitmap`, `values` of `DEV_WRITE`, `DEV_DATA`) | `bitmap` and `values` (hex), or with a catalog `params` (`{name: value}`, the bitmap then optional) |
//! | error code (`code`) | a name such as `BAD_CHECKSUM` (encoding also takes a number) |
//!
//! Decoding also gives `frame` (the raw frame in hex), `uid` for `SUB_RES`
//! (the integer form, as a decimal string) and, with a catalog,
//! `param_names` for parameter bitmaps; encoding ignores these derived
//! fields.

use anyhow::{anyhow, bail, Context, Result};
use bitstream_buffer::catalog::{DeviceType, Param};
use bitstream_buffer::device::DeviceUid;
use bitstream_buffer::message::{
    bitmap_ids, ErrorCode, FieldKind, FieldValue, Message, MessageType,
};
use bitstream_buffer::value::{self, ParamValue, Warning};
use serde_json::{json, Map, Value as Json};

use super::{parse_hex, to_hex};

/// Fields `message decode` adds that `message encode` ignores.
const DERIVED_FIELDS: [&str; 3] = ["frame", "uid", "param_names"];

/// The key of a message's values by parameter name (with a catalog), in
/// place of its value bitmap's raw `values`.
const NAMED_VALUES: &str = "params";

/// Every message type, in id order.
pub fn message_types() -> impl Iterator<Item = MessageType> {
    MessageType::ALL.iter().copied()
}

/// Every error code, in code order.
pub fn error_codes() -> impl Iterator<Item = ErrorCode> {
    (0..=u8::MAX).filter_map(ErrorCode::from_code)
}

fn type_names() -> String {
    message_types()
        .map(MessageType::name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn code_names() -> String {
    error_codes()
        .map(|c| format!("{} ({})", c.name(), c.code()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that a type given for message values is a Smart Device type.
fn smart(ty: Option<&DeviceType>) -> Result<Option<&DeviceType>> {
    match ty {
        Some(t) if !t.is_smart() => bail!(
            "type `{}` is not a Smart Device (it has no device_id): messages carry only Smart \
             Device parameters; pick a type with a device_id",
            t.name
        ),
        other => Ok(other),
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes hex COBS data (with or without spaces, with or without the
/// trailing `00` delimiter) into the message's JSON. With `ty` (a Smart
/// Device type), `DEV_WRITE`/`DEV_DATA` values are split into named
/// parameters.
pub fn decode_hex(hex: &str, ty: Option<&DeviceType>) -> Result<Json> {
    let data = parse_hex(hex, "the message")?;
    decode(&data, ty)
}

/// As [`decode_hex`], from bytes.
pub fn decode(data: &[u8], ty: Option<&DeviceType>) -> Result<Json> {
    let ty = smart(ty)?;
    let message = Message::decode(data).context("cannot decode the message")?;
    message_to_json(&message, ty)
}

/// The JSON of a message (see the module docs).
pub fn message_to_json(message: &Message, ty: Option<&DeviceType>) -> Result<Json> {
    let msg_type = message.message_type();
    let mut o = Map::new();
    o.insert("type".into(), json!(msg_type.name()));
    // The value bitmap, for the values that follow it.
    let mut bitmap = 0u16;
    for (field, value) in msg_type.fields().iter().zip(message.field_values()) {
        let name = field.name.to_owned();
        match (field.kind, value) {
            (FieldKind::Params, FieldValue::UInt(params)) => {
                o.insert(name, json!(params));
                if let Some(t) = ty {
                    o.insert("param_names".into(), bitmap_names(t, params as u16));
                }
            }
            (FieldKind::Int, FieldValue::UInt(n)) => {
                o.insert(name, json!(n));
            }
            (FieldKind::ValueBitmap, FieldValue::UInt(bits)) => {
                bitmap = bits as u16;
                o.insert(name, json!(bits));
            }
            (FieldKind::Values, FieldValue::Bytes(values)) => match ty {
                Some(t) => {
                    let params = split_values(t, msg_type, bitmap, &values)?;
                    o.insert(NAMED_VALUES.into(), Json::Object(params));
                }
                None => {
                    o.insert(name, json!(to_hex(&values)));
                }
            },
            (FieldKind::Code, FieldValue::Code(code)) => {
                o.insert(name, json!(code.name()));
            }
            (kind, value) => bail!(
                "field `{name}` of a {} message is a {kind:?} but holds {value:?}",
                msg_type.name()
            ),
        }
    }
    if let Message::SubRes {
        device_id,
        year,
        random,
        ..
    } = message
    {
        let uid = DeviceUid {
            device_id: *device_id,
            year: *year,
            random: *random,
        }
        .to_u128();
        o.insert("uid".into(), json!(uid.to_string()));
    }
    let frame = message.to_frame().context("cannot frame the message")?;
    o.insert("frame".into(), json!(to_hex(&frame)));
    Ok(Json::Object(o))
}

/// The names of the bitmap's parameters (ids the type lacks as `"id N"`).
fn bitmap_names(ty: &DeviceType, bitmap: u16) -> Json {
    bitmap_ids(bitmap)
        .map(|id| match ty.param_by_id(id) {
            Some(p) => json!(p.name),
            None => json!(format!("id {id}")),
        })
        .collect()
}

/// Whether a `DEV_WRITE` (write block) or `DEV_DATA` (update block) may
/// carry `p`, else why not.
fn check_block(ty: &DeviceType, msg_type: MessageType, p: &Param) -> Result<()> {
    let (ok, what) = match msg_type {
        MessageType::DevWrite => (p.writeable, "writeable"),
        _ => (p.readable, "readable"),
    };
    if !ok {
        bail!(
            "{}: parameter `{}` (id {}) of type `{}` is not {what}, so a {} cannot carry it",
            msg_type.name(),
            p.name,
            p.id,
            ty.name,
            msg_type.name()
        );
    }
    Ok(())
}

/// Splits the values of a `DEV_WRITE`/`DEV_DATA` into named parameters,
/// as `DeviceBuffer::update` applies them (`DeviceType::split_values`).
pub fn split_values(
    ty: &DeviceType,
    msg_type: MessageType,
    bitmap: u16,
    values: &[u8],
) -> Result<Map<String, Json>> {
    let plan = ty
        .split_values(msg_type == MessageType::DevWrite, bitmap, values.len())
        .map_err(|e| {
            anyhow!(
                "{}: {e} (type `{}`: {}): the message was not made for this catalog type",
                msg_type.name(),
                ty.name,
                ty.params
                    .iter()
                    .map(|p| format!("{} = id {}, {} bytes", p.name, p.id, p.ty.size()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    Ok(plan
        .into_iter()
        .map(|(p, range)| {
            let v = value::decode(&p.ty, &values[range]);
            (p.name.clone(), v.to_json())
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// A message built from JSON, with the clamps made on the way.
#[derive(Debug)]
pub struct Encoded {
    /// The message.
    pub message: Message,
    /// Float values clamped to their parameter's bounds.
    pub warnings: Vec<Warning>,
}

impl Encoded {
    /// The COBS encoding as hex (lowercase, space-separated), with the
    /// trailing `00` delimiter when `delimited`.
    pub fn to_hex(&self, delimited: bool) -> Result<String> {
        let bytes = if delimited {
            self.message.encode_delimited()
        } else {
            self.message.encode()
        }
        .context("cannot encode the message")?;
        Ok(to_hex(&bytes))
    }
}

/// Parses JSON text (see the module docs) into a message.
pub fn encode_text(text: &str, ty: Option<&DeviceType>) -> Result<Encoded> {
    let json: Json = serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "the message is not valid JSON ({e}); give an object such as '{{\"type\": \"PING\"}}'"
        )
    })?;
    message_from_json(&json, ty)
}

/// Builds a message from its JSON (see the module docs).
pub fn message_from_json(json: &Json, ty: Option<&DeviceType>) -> Result<Encoded> {
    let ty = smart(ty)?;
    let Some(obj) = json.as_object() else {
        bail!("the message must be a JSON object such as {{\"type\": \"PING\"}}, found {json}");
    };
    let type_name = match obj.get("type") {
        Some(Json::String(s)) => s.as_str(),
        Some(other) => bail!("the message's \"type\" must be a string, found {other}"),
        None => bail!("the message has no \"type\": give one of {}", type_names()),
    };
    let msg_type = message_types()
        .find(|t| t.name() == type_name)
        .ok_or_else(|| {
            anyhow!(
                "unknown message type `{type_name}`: the types are {}",
                type_names()
            )
        })?;
    let fields = msg_type.fields();
    let values_field = fields.iter().find(|f| f.kind == FieldKind::Values);
    let names: Vec<&str> = fields
        .iter()
        .map(|f| f.name)
        .chain(values_field.map(|_| NAMED_VALUES))
        .collect();
    for key in obj.keys() {
        if key != "type"
            && !names.contains(&key.as_str())
            && !DERIVED_FIELDS.contains(&key.as_str())
        {
            bail!(
                "unknown field `{key}` in a {} message (its fields: {})",
                msg_type.name(),
                if names.is_empty() {
                    "none besides \"type\"".to_owned()
                } else {
                    names.join(", ")
                }
            );
        }
    }
    let f = Fields { obj, msg_type, ty };
    let mut warnings = Vec::new();
    // The values read with their bitmap, for the values field that follows.
    let mut values = None;
    let message = Message::from_fields(msg_type, |field| -> Result<FieldValue> {
        Ok(match field.kind {
            FieldKind::Params => FieldValue::UInt(f.params(field.name)?.into()),
            FieldKind::Int => FieldValue::UInt(f.uint(field.name, field.max_int())?),
            FieldKind::ValueBitmap => {
                let values_name = values_field.map_or("values", |v| v.name);
                let (bitmap, bytes) = f.values(field.name, values_name, &mut warnings)?;
                values = Some(bytes);
                FieldValue::UInt(bitmap.into())
            }
            FieldKind::Values => FieldValue::Bytes(values.take().unwrap_or_default()),
            FieldKind::Code => FieldValue::Code(f.code(field.name)?),
        })
    })?;
    Ok(Encoded { message, warnings })
}

/// The fields of one message's JSON object.
struct Fields<'a> {
    obj: &'a Map<String, Json>,
    msg_type: MessageType,
    ty: Option<&'a DeviceType>,
}

impl Fields<'_> {
    fn name(&self) -> &'static str {
        self.msg_type.name()
    }

    fn get(&self, field: &str) -> Result<&Json> {
        self.obj
            .get(field)
            .ok_or_else(|| anyhow!("a {} message needs `{field}`", self.name()))
    }

    /// An integer `0..=max`: a JSON number, or a decimal or `0x` hex string
    /// (for 64-bit values that JSON tools round).
    fn uint(&self, field: &str, max: u64) -> Result<u64> {
        let v = self.get(field)?;
        let n = match v {
            Json::Number(n) => n.as_u64(),
            Json::String(s) => match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            },
            _ => None,
        };
        match n {
            Some(n) if n <= max => Ok(n),
            _ => bail!(
                "`{field}` of a {} message must be an integer 0..={max}, found {v}",
                self.name()
            ),
        }
    }

    /// A parameter bitmap: a number, or (with a catalog) an array of names.
    fn params(&self, field: &str) -> Result<u16> {
        let v = self.get(field)?;
        let Json::Array(names) = v else {
            return Ok(self.uint(field, u16::MAX.into())? as u16);
        };
        let Some(ty) = self.ty else {
            bail!(
                "`{field}` of a {} message names parameters: give --catalog and --type, or a \
                 bitmap number",
                self.name()
            );
        };
        names.iter().try_fold(0u16, |acc, n| {
            let Some(name) = n.as_str() else {
                bail!("`{field}`: parameter names must be strings, found {n}");
            };
            Ok(acc | (1 << self.param(ty, name)?.id))
        })
    }

    fn param<'t>(&self, ty: &'t DeviceType, name: &str) -> Result<&'t Param> {
        ty.param(name).ok_or_else(|| {
            anyhow!(
                "type `{}` has no parameter `{name}` (its parameters: {})",
                ty.name,
                ty.param_list()
            )
        })
    }

    fn code(&self, field: &str) -> Result<ErrorCode> {
        let v = self.get(field)?;
        let code = match v {
            Json::String(s) => error_codes().find(|c| c.name() == s),
            Json::Number(n) => n
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .and_then(ErrorCode::from_code),
            _ => None,
        };
        code.ok_or_else(|| anyhow!("unknown error code {v}: the codes are {}", code_names()))
    }

    /// The value bitmap (field `bitmap`) and value bytes (field `values`,
    /// or by name [`NAMED_VALUES`]) of a DEV_WRITE / DEV_DATA.
    fn values(
        &self,
        bitmap: &str,
        values: &str,
        warnings: &mut Vec<Warning>,
    ) -> Result<(u16, Vec<u8>)> {
        let name = self.name();
        let (bitmap_key, params_key) = (bitmap, NAMED_VALUES);
        match (self.obj.get(params_key), self.obj.get(values)) {
            (Some(_), Some(_)) => bail!(
                "a {name} message takes either `{params_key}` (by name) or `{values}` (hex), not both"
            ),
            (None, None) => bail!(
                "a {name} message needs `{params_key}` ({{name: value}}, with --catalog and --type) or \
                 `{bitmap_key}` and `{values}` (hex)"
            ),
            (None, Some(hex_values)) => {
                let bitmap = self.uint(bitmap_key, u16::MAX.into())? as u16;
                let Some(hex) = hex_values.as_str() else {
                    bail!("`{values}` of a {name} message must be a hex string, found {hex_values}");
                };
                let bytes = parse_hex(hex, &format!("`{values}` of the {name} message"))?;
                if let Some(ty) = self.ty {
                    split_values(ty, self.msg_type, bitmap, &bytes)?;
                }
                Ok((bitmap, bytes))
            }
            (Some(params), None) => {
                let Some(ty) = self.ty else {
                    bail!(
                        "`{params_key}` of a {name} message names parameters: give --catalog and \
                         --type, or give `{bitmap_key}` and `{values}` (hex) instead"
                    );
                };
                let Some(params) = params.as_object() else {
                    bail!("`{params_key}` of a {name} message must be an object {{name: value}}, found {params}");
                };
                let mut parts: Vec<(u8, Vec<u8>)> = Vec::with_capacity(params.len());
                for (pname, pvalue) in params {
                    let p = self.param(ty, pname)?;
                    check_block(ty, self.msg_type, p)?;
                    let v = ParamValue::from_json(&p.ty, pvalue)
                        .map_err(|e| anyhow!("parameter `{pname}`: bad value {pvalue}: {e}"))?;
                    let mut bytes = vec![0u8; p.ty.size()];
                    if let Some(w) = value::encode(p, &v, &mut bytes)
                        .map_err(|e| anyhow!("parameter `{pname}`: bad value {pvalue}: {e}"))?
                    {
                        warnings.push(w);
                    }
                    parts.push((p.id, bytes));
                }
                parts.sort_by_key(|(id, _)| *id);
                let bitmap = parts.iter().fold(0u16, |acc, (id, _)| acc | (1 << id));
                if self.obj.contains_key(bitmap_key) {
                    let given = self.uint(bitmap_key, u16::MAX.into())? as u16;
                    if given != bitmap {
                        bail!(
                            "`{bitmap_key}` {given} (0x{given:04X}) of the {name} message does not match \
                             its `{params_key}`, which make {bitmap} (0x{bitmap:04X}); drop `{bitmap_key}` or fix it"
                        );
                    }
                }
                Ok((bitmap, parts.into_iter().flat_map(|(_, b)| b).collect()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitstream_buffer::catalog::Catalog;

    const VECTORS: &str = include_str!("../../../../../fixtures/buffers/vectors.json");

    fn vectors() -> Json {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn example() -> Catalog {
        Catalog::from_json(&vectors()["example_device"]["catalog"].to_string()).unwrap()
    }

    #[test]
    fn every_vector_round_trips() {
        let v = vectors();
        for m in v["messages"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            let cobs = m["cobs"].as_str().unwrap();
            let decoded = decode_hex(cobs, None).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(decoded["frame"], m["raw"], "{name}");
            let again = message_from_json(&decoded, None).unwrap();
            assert_eq!(again.to_hex(false).unwrap(), cobs, "{name}");
            assert_eq!(again.to_hex(true).unwrap(), format!("{cobs} 00"), "{name}");
            // The delimiter is optional on input.
            assert_eq!(
                decode_hex(&format!("{cobs} 00"), None).unwrap(),
                decoded,
                "{name}"
            );
        }
    }

    #[test]
    fn fields_by_type() {
        let d = decode_hex("06 11 04 ff ff 80 02 95", None).unwrap();
        assert_eq!(
            d,
            json!({"type": "SUB_REQ", "params": 65535, "interval_ms": 128, "frame": "11 04 ff ff 80 00 95"})
        );
        let d = decode_hex(
            "04 12 0f 03 02 64 0d ff ff ee ef be ad de ef be de c0 f9",
            None,
        )
        .unwrap();
        assert_eq!(d["device_id"], 0xffff);
        assert_eq!(d["year"], 0xee);
        assert_eq!(d["random"], 0xc0de_beef_dead_beef_u64);
        assert_eq!(
            d["uid"],
            ((0xffffu128 << 72) | (0xeeu128 << 64) | 0xc0de_beef_dead_beef).to_string()
        );
        let d = decode_hex("05ff01fd03", None).unwrap();
        assert_eq!(d["code"], "UNEXPECTED_DELIMITER");
        let d = decode_hex("04 15 0b 07 0b 01 6d e7 fb bd ef be ad de f6", None).unwrap();
        assert_eq!(d["values"], "01 6d e7 fb bd ef be ad de");
        assert_eq!(d["bitmap"], 7);
    }

    #[test]
    fn named_params_with_a_catalog() {
        let c = example();
        let t = c.get("example-device").unwrap();
        let d = decode_hex("04 14 07 05 07 01 ef be ad de 35", Some(t)).unwrap();
        assert_eq!(
            d,
            json!({"type": "DEV_WRITE", "bitmap": 5, "params": {"flag": true, "id": 3735928559u32},
                   "frame": "14 07 05 00 01 ef be ad de 35"})
        );
        let e = message_from_json(&d, Some(t)).unwrap();
        assert_eq!(e.to_hex(false).unwrap(), "04 14 07 05 07 01 ef be ad de 35");
        // Key order does not matter; the bitmap is computed.
        let e = encode_text(
            r#"{"type": "DEV_WRITE", "params": {"id": 3735928559, "flag": true}}"#,
            Some(t),
        )
        .unwrap();
        assert_eq!(e.to_hex(false).unwrap(), "04 14 07 05 07 01 ef be ad de 35");
        // DEV_DATA carries the update block.
        let d = decode_hex("04 15 06 02 06 6d e7 fb bd dd", Some(t)).unwrap();
        assert_eq!(d["params"]["duty_cycle"], f64::from(-0.123f32));
        assert_eq!(
            message_from_json(&d, Some(t))
                .unwrap()
                .to_hex(false)
                .unwrap(),
            "04 15 06 02 06 6d e7 fb bd dd"
        );
        // SUB_REQ by names, and names on decode.
        let e = encode_text(
            r#"{"type": "SUB_REQ", "params": ["duty_cycle", "id"], "interval_ms": 40}"#,
            Some(t),
        )
        .unwrap();
        assert_eq!(
            e.message,
            Message::SubReq {
                params: 0b110,
                interval_ms: 40
            }
        );
        let d = message_to_json(&e.message, Some(t)).unwrap();
        assert_eq!(d["param_names"], json!(["duty_cycle", "id"]));
    }

    #[test]
    fn floats_are_clamped_with_a_warning() {
        let c = example();
        let t = c.get("example-device").unwrap();
        let e = encode_text(
            r#"{"type": "DEV_WRITE", "params": {"pos": -1.01}}"#,
            Some(t),
        )
        .unwrap();
        assert_eq!(e.to_hex(false).unwrap(), "04 14 06 10 01 01 04 80 bf 3d");
        assert_eq!(e.warnings.len(), 1);
        assert!(e.warnings[0]
            .to_string()
            .contains("clamped to its lower bound -1"));
    }

    #[test]
    fn catalog_mismatches_are_clear_errors() {
        let c = example();
        let t = c.get("example-device").unwrap();
        // The vector's DEV_WRITE 0b111 includes duty_cycle, which is not writeable.
        let e = decode_hex("04 14 0b 07 0b 01 6d e7 fb bd ef be ad de f7", Some(t))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`duty_cycle` (id 1)") && e.contains("not writeable"),
            "{e}"
        );
        let e = decode_hex("03 15 0a 02 80 01 01 01 01 01 04 f8 3f 58", Some(t))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no parameter id 15"), "{e}");
        // bitmap 0b100 (id, 4 bytes) with 2 bytes.
        let m = Message::DevData {
            bitmap: 0b100,
            values: vec![1, 2],
        };
        let e = message_to_json(&m, Some(t)).unwrap_err().to_string();
        assert!(
            e.contains("needs 4 value bytes") && e.contains("has 2"),
            "{e}"
        );
        let e = encode_text(r#"{"type": "DEV_WRITE", "params": {"nope": 1}}"#, Some(t))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no parameter `nope`") && e.contains("duty_cycle"),
            "{e}"
        );
        let e = encode_text(r#"{"type": "DEV_WRITE", "params": {"id": -1}}"#, Some(t))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("parameter `id`: bad value -1"), "{e}");
        let plain = Catalog::from_json(r#"{"p": {"params": []}}"#).unwrap();
        let e = decode_hex("02 10 02 10", plain.get("p"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a Smart Device"), "{e}");
    }

    #[test]
    fn decode_errors_are_distinct() {
        let cases = [
            ("02 10 02 11", "bad checksum"),
            ("02 10 00 02 10", "stray zero byte"),
            ("02 10 01", "truncated frame"),
            ("06 10 02", "bad COBS"),
            ("02 42 02 42", "unknown message type 0x42"),
            ("", "bad COBS encoding: no data"),
        ];
        let mut seen = Vec::new();
        for (hex, expected) in cases {
            let e = format!("{:#}", decode_hex(hex, None).unwrap_err());
            assert!(e.starts_with("cannot decode the message: "), "{hex}: {e}");
            assert!(e.contains(expected), "{hex}: {e}");
            assert!(!seen.contains(&e), "{hex}: {e}");
            seen.push(e);
        }
    }

    #[test]
    fn encode_errors_name_what_is_wrong() {
        let err = |text: &str| format!("{:#}", encode_text(text, None).unwrap_err());
        assert!(err(r#"{"type": "PONG"}"#)
            .contains("unknown message type `PONG`: the types are PING, SUB_REQ"));
        assert!(err(r#"{"type": "PING", "x": 1}"#).contains("unknown field `x` in a PING message"));
        assert!(err(r#"{"type": "SUB_REQ", "params": 1}"#).contains("needs `interval_ms`"));
        assert!(
            err(r#"{"type": "SUB_REQ", "params": 1, "interval_ms": 70000}"#).contains(
                "`interval_ms` of a SUB_REQ message must be an integer 0..=65535, found 70000"
            )
        );
        assert!(err(r#"{"type": "ERROR", "code": "NOPE"}"#).contains("unknown error code \"NOPE\""));
        assert!(err(r#"{"type": "DEV_WRITE", "params": {"a": 1}}"#).contains("give --catalog"));
        assert!(err(r#"{"type": "DEV_WRITE", "bitmap": 1}"#).contains("needs `params`"));
        assert!(err(r#"{"params": 1}"#).contains("has no \"type\""));
        assert!(err("[1]").contains("must be a JSON object"));
        assert!(err("{").contains("not valid JSON"));
        let long = format!(
            r#"{{"type": "DEV_DATA", "bitmap": 1, "values": "{}"}}"#,
            "ff ".repeat(254)
        );
        let e = encode_text(&long, None).unwrap().to_hex(false).unwrap_err();
        assert!(
            format!("{e:#}").contains("payload of 256 bytes is too long"),
            "{e:#}"
        );
        // Numbers and names for error codes; strings for 64-bit integers.
        let e = encode_text(r#"{"type": "ERROR", "code": 254}"#, None).unwrap();
        assert_eq!(
            e.message,
            Message::Error {
                code: ErrorCode::BadChecksum
            }
        );
        let e = encode_text(
            r#"{"type": "SUB_RES", "params": 3, "interval_ms": 100, "device_id": 65535, "year": 238, "random": "0xc0debeefdeadbeef"}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            e.to_hex(false).unwrap(),
            "04 12 0f 03 02 64 0d ff ff ee ef be ad de ef be de c0 f9"
        );
    }
}
