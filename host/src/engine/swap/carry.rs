//! Carrying a block's device-buffer values over to a buffer of another
//! type, when a swap changes the block's catalog type.
//!
//! For each parameter of the new type that the old type has by the same
//! name, the old value is read and put in the new buffer when that loses
//! nothing: the same type as is; another scalar width, signedness, float
//! width, text length or vector length when the value survives the round
//! trip exactly (an integer that fits, a float the new type stores
//! exactly and within its bounds, text that fits, the same number of
//! elements). Otherwise the parameter is left at its default (zero) and
//! reported with the reason. Readable values (the update block) are
//! carried; pending writes (the write block) are carried too, except on a
//! Smart Device, where writing them would request them again from the
//! device (they are reported). Parameters the new type lacks are dropped,
//! new parameters start at their default (zero); both are reported.

use bitstream_buffer::catalog::Param;
use bitstream_buffer::device::Buffer;
use bitstream_buffer::value::{decode, encode, ParamValue};
use serde::Serialize;

/// A parameter whose type or size changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParamChange {
    /// The parameter.
    pub param: String,
    /// Its old type (`uint32`, `char[16]`, …).
    pub from: String,
    /// Its new type.
    pub to: String,
    /// Why its value was not carried (absent when it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a swap did with a block's device buffer whose type changed.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct BufferCarry {
    /// The old buffer type (`None`: the block had no buffer).
    pub old_type: Option<String>,
    /// The new buffer type (`None`: the block has no buffer any more).
    pub new_type: Option<String>,
    /// The new segment's shared-memory name, when shared.
    pub shared_memory: Option<String>,
    /// Parameters of the same name and type, copied as they were.
    pub carried: Vec<String>,
    /// Parameters whose type or size changed, converted without loss.
    pub converted: Vec<ParamChange>,
    /// Parameters of the same name whose value could not be carried without
    /// loss (left at the default, zero), each with why.
    pub not_carried: Vec<ParamChange>,
    /// Parameters the new type lacks: their values are gone.
    pub dropped: Vec<String>,
    /// Parameters new in the new type: at their default (zero).
    pub new_at_default: Vec<String>,
}

impl BufferCarry {
    /// One line for the log.
    pub fn summary(&self) -> String {
        let names = |v: &[String]| v.join(", ");
        let changes = |v: &[ParamChange]| {
            v.iter()
                .map(|c| match &c.reason {
                    Some(reason) => format!("{} ({} -> {}: {reason})", c.param, c.from, c.to),
                    None => format!("{} ({} -> {})", c.param, c.from, c.to),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "buffer {} -> {}: carried [{}], converted [{}], not carried [{}], dropped [{}], new at default [{}]",
            self.old_type.as_deref().unwrap_or("none"),
            self.new_type.as_deref().unwrap_or("none"),
            names(&self.carried),
            changes(&self.converted),
            changes(&self.not_carried),
            names(&self.dropped),
            names(&self.new_at_default),
        )
    }
}

/// Which block of a buffer a value is in.
#[derive(Clone, Copy)]
enum Side {
    Update,
    Write,
}

/// Copies what can be carried from `old` to `new` (see the module
/// documentation). The caller holds `old`'s lock, so no writer changes it
/// meanwhile; when it could not take it, `unreadable` says why and no value
/// is read (every same-named parameter is reported not carried).
pub(super) fn carry(
    old: Option<&Buffer>,
    new: Option<&Buffer>,
    unreadable: Option<&str>,
) -> BufferCarry {
    let params = |b: Option<&Buffer>| -> Vec<Param> {
        b.map(|b| b.buffer_type().device_type().params.clone())
            .unwrap_or_default()
    };
    let (old_params, new_params) = (params(old), params(new));
    let mut report = BufferCarry {
        old_type: old.map(|b| b.buffer_type().name().to_owned()),
        new_type: new.map(|b| b.buffer_type().name().to_owned()),
        ..BufferCarry::default()
    };
    for p in &old_params {
        if !new_params.iter().any(|n| n.name == p.name) {
            report.dropped.push(p.name.clone());
        }
    }
    let (Some(old), Some(new)) = (old, new) else {
        report.new_at_default = new_params.iter().map(|p| p.name.clone()).collect();
        return report;
    };
    let smart = new.buffer_type().device_type().is_smart();
    for to in &new_params {
        let Some(from) = old_params.iter().find(|p| p.name == to.name) else {
            report.new_at_default.push(to.name.clone());
            continue;
        };
        let mut problems = Vec::new();
        let mut sides = Vec::new();
        if let Some(why) = unreadable {
            problems.push(why.to_owned());
        }
        if from.readable && to.readable {
            sides.push(Side::Update);
        } else if from.readable {
            problems.push("not readable in the new type".to_owned());
        }
        if from.writeable && to.writeable {
            if smart {
                problems.push("a pending write of a Smart Device is not requested again".into());
            } else {
                sides.push(Side::Write);
            }
        }
        for side in sides.into_iter().filter(|_| unreadable.is_none()) {
            if let Err(reason) = carry_one(old, new, from, to, side) {
                problems.push(reason);
            }
        }
        let same = from.ty == to.ty && same_bounds(from, to);
        let change = |reason: Option<String>| ParamChange {
            param: to.name.clone(),
            from: describe(from),
            to: describe(to),
            reason,
        };
        if !problems.is_empty() {
            report.not_carried.push(change(Some(problems.join("; "))));
        } else if same {
            report.carried.push(to.name.clone());
        } else {
            report.converted.push(change(None));
        }
    }
    report
}

fn same_bounds(a: &Param, b: &Param) -> bool {
    a.lower.total_cmp(&b.lower).is_eq() && a.upper.total_cmp(&b.upper).is_eq()
}

/// `double`, or `double [0, 10]` when bounded.
fn describe(p: &Param) -> String {
    if p.lower.is_finite() || p.upper.is_finite() {
        format!("{} [{}, {}]", p.ty, p.lower, p.upper)
    } else {
        p.ty.to_string()
    }
}

/// Carries one value of `from` (in `old`) to `to` (in `new`) when the
/// round trip is exact; else says why.
fn carry_one(
    old: &Buffer,
    new: &Buffer,
    from: &Param,
    to: &Param,
    side: Side,
) -> Result<(), String> {
    let value = match side {
        Side::Update => old.get(&from.name),
        Side::Write => old.get_written(&from.name),
    }
    .map_err(|e| format!("cannot read it: {e}"))?;
    if value_is_zero(&value) {
        return Ok(()); // the new buffer's default already
    }
    let converted = ParamValue::from_json(&to.ty, &value.to_json())
        .map_err(|e| format!("{value} does not convert: {e}"))?;
    let mut bytes = vec![0u8; to.ty.size()];
    match encode(to, &converted, &mut bytes) {
        Ok(None) => {}
        Ok(Some(warning)) => return Err(format!("{value} would change: {warning}")),
        Err(e) => return Err(format!("{value} does not fit: {e}")),
    }
    let stored = decode(&to.ty, &bytes);
    if !same_value(&value, &stored) {
        return Err(format!("{value} would become {stored}"));
    }
    match side {
        Side::Update => new.set(&to.name, stored),
        Side::Write => new.write(&to.name, stored),
    }
    .map(|_| ())
    .map_err(|e| format!("cannot store it: {e}"))
}

fn value_is_zero(v: &ParamValue) -> bool {
    match v {
        ParamValue::Bool(b) => !b,
        ParamValue::Int(i) => *i == 0,
        ParamValue::UInt(u) => *u == 0,
        ParamValue::Float(f) => *f == 0.0 && f.is_sign_positive(),
        ParamValue::Text(t) => t.is_empty(),
        ParamValue::List(items) => items.iter().all(value_is_zero),
    }
}

/// Whether two values are the same number, text, bool or list of them,
/// whatever their widths.
fn same_value(a: &ParamValue, b: &ParamValue) -> bool {
    use ParamValue::*;
    let int = |v: &ParamValue| match *v {
        Int(i) => Some(i128::from(i)),
        UInt(u) => Some(i128::from(u)),
        _ => None,
    };
    let float_is_int =
        |f: f64, n: i128| f.is_finite() && f.fract() == 0.0 && f.abs() < 1.7e38 && f as i128 == n;
    match (a, b) {
        (Bool(x), Bool(y)) => x == y,
        (Float(x), Float(y)) => x.to_bits() == y.to_bits() || x == y,
        (Float(f), other) | (other, Float(f)) => int(other).is_some_and(|n| float_is_int(*f, n)),
        (Text(x), Text(y)) => x == y,
        (List(x), List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b)),
        _ => matches!((int(a), int(b)), (Some(x), Some(y)) if x == y),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bitstream_buffer::catalog::Catalog;
    use bitstream_buffer::device::{Buffer, BufferType};
    use serde_json::json;

    use super::*;

    fn buffer(params: serde_json::Value) -> Buffer {
        let catalog = Catalog::from_json(&json!({"t": {"params": params}}).to_string()).unwrap();
        let ty = Arc::new(BufferType::from_catalog(&catalog, "t").unwrap());
        Buffer::new_local(&ty).unwrap()
    }

    #[test]
    fn same_named_values_are_carried_converted_or_reported() {
        let old = buffer(json!([
            {"name": "count", "type": "uint32"},
            {"name": "gain", "type": "double", "lower": 0, "upper": 10},
            {"name": "label", "type": "char[16]"},
            {"name": "taps", "type": "int16[4]"},
            {"name": "small", "type": "int16[2]"},
            {"name": "shape", "type": "int16[4]"},
            {"name": "ratio", "type": "double"},
            {"name": "pulses", "type": "uint64"},
            {"name": "target", "type": "float", "readable": false, "writeable": true},
        ]));
        old.set("count", 70_000u32).unwrap();
        old.set("gain", 2.5).unwrap();
        old.set_json("label", &json!("alpha")).unwrap();
        old.set_json("taps", &json!([1, 2, 300, 4])).unwrap();
        old.set_json("small", &json!([-1, 2])).unwrap();
        old.set_json("shape", &json!([1, 2, 3, 4])).unwrap();
        old.set("ratio", 0.5).unwrap();
        old.set("pulses", 9u64).unwrap();
        old.write("target", 1.5f32).unwrap();
        let new = buffer(json!([
            {"name": "count", "type": "uint64"},
            {"name": "gain", "type": "double", "lower": 0, "upper": 10},
            {"name": "label", "type": "char[32]"},
            {"name": "taps", "type": "int8[4]"},
            {"name": "small", "type": "int8[2]"},
            {"name": "shape", "type": "int16[2]"},
            {"name": "ratio", "type": "int32"},
            {"name": "target", "type": "float", "readable": false, "writeable": true},
            {"name": "offset", "type": "double"},
        ]));
        let report = carry(Some(&old), Some(&new), None);
        assert_eq!(report.carried, ["gain", "target"], "{report:?}");
        let names = |v: &[ParamChange]| v.iter().map(|c| c.param.clone()).collect::<Vec<_>>();
        assert_eq!(names(&report.converted), ["count", "label", "small"]);
        assert_eq!(names(&report.not_carried), ["taps", "shape", "ratio"]);
        assert!(report.not_carried.iter().all(|c| c.reason.is_some()));
        assert_eq!(report.dropped, ["pulses"]);
        assert_eq!(report.new_at_default, ["offset"]);
        assert_eq!(new.get("count").unwrap(), ParamValue::UInt(70_000));
        assert_eq!(new.get("gain").unwrap(), ParamValue::Float(2.5));
        assert_eq!(new.get("label").unwrap().to_json(), json!("alpha"));
        assert_eq!(new.get("small").unwrap().to_json(), json!([-1, 2]));
        assert_eq!(new.get_written("target").unwrap(), ParamValue::Float(1.5));
        // Not carried: left at the default.
        assert_eq!(new.get("taps").unwrap().to_json(), json!([0, 0, 0, 0]));
        assert_eq!(new.get("ratio").unwrap(), ParamValue::Int(0));
        assert_eq!(new.get("offset").unwrap(), ParamValue::Float(0.0));
        assert!(
            report.summary().contains("taps (int16[4] -> int8[4]: "),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn a_value_clamped_by_new_bounds_is_not_carried_and_whole_numbers_convert() {
        let old = buffer(json!([
            {"name": "gain", "type": "double"},
            {"name": "steps", "type": "double"},
        ]));
        old.set("gain", 7.0).unwrap();
        old.set("steps", 3.0).unwrap();
        let new = buffer(json!([
            {"name": "gain", "type": "double", "lower": 0, "upper": 5},
            {"name": "steps", "type": "uint8"},
        ]));
        let report = carry(Some(&old), Some(&new), None);
        assert_eq!(report.not_carried.len(), 1, "{report:?}");
        assert_eq!(report.not_carried[0].param, "gain");
        assert_eq!(new.get("gain").unwrap(), ParamValue::Float(0.0));
        assert_eq!(report.converted[0].param, "steps");
        assert_eq!(new.get("steps").unwrap(), ParamValue::UInt(3));
    }

    #[test]
    fn a_buffer_that_appears_or_goes_is_all_default_or_all_dropped() {
        let b = buffer(json!([{"name": "n", "type": "uint8"}]));
        let report = carry(None, Some(&b), None);
        assert_eq!(report.new_at_default, ["n"]);
        let report = carry(Some(&b), None, None);
        assert_eq!(report.dropped, ["n"]);
        assert_eq!(report.new_type, None);
    }

    #[test]
    fn an_old_buffer_that_stayed_locked_is_reported_and_nothing_read() {
        let old = buffer(json!([{"name": "n", "type": "uint8"}]));
        old.set("n", 7u8).unwrap();
        let new = buffer(json!([{"name": "n", "type": "uint16"}]));
        let report = carry(Some(&old), Some(&new), Some("its lock stayed held"));
        assert_eq!(report.not_carried.len(), 1, "{report:?}");
        assert_eq!(
            report.not_carried[0].reason.as_deref(),
            Some("its lock stayed held")
        );
        assert_eq!(new.get("n").unwrap(), ParamValue::UInt(0));
    }
}
