//! Parameter values: the bytes of one parameter, as Rust and as JSON.
//!
//! A value is encoded into the parameter's C representation (little-endian,
//! the scalar's width, vectors row-major) and decoded back. Encoding checks
//! what C would silently wrap: integers must fit their type, vectors must
//! have the declared shape, text must fit its `char[n]`. Float and double
//! values are clamped to the parameter's `[lower, upper]` instead, and the
//! clamp is reported as a [`Warning`].
//!
//! ```
//! use bitstream_buffer::catalog::Catalog;
//! use bitstream_buffer::value::{decode, encode, ParamValue};
//!
//! let catalog = Catalog::from_json(
//!     r#"{"motor": {"params": [{"name": "pos", "type": "double", "lower": -1, "upper": 1}]}}"#,
//! )
//! .unwrap();
//! let pos = catalog.get("motor").unwrap().param("pos").unwrap();
//! let mut bytes = [0u8; 4];
//! let warning = encode(pos, &ParamValue::Float(1.5), &mut bytes).unwrap();
//! assert!(warning.is_some()); // clamped to the upper bound
//! assert_eq!(decode(&pos.ty, &bytes), ParamValue::Float(1.0));
//! ```

use std::fmt;

use serde_json::Value as Json;

use super::catalog::{Param, ParamType, Scalar};

/// A parameter's value, independent of its stored width.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// A `bool`.
    Bool(bool),
    /// A signed integer (`byte`, `short`, `int`, `long`, `int8`..`int64`, `ssize_t`).
    Int(i64),
    /// An unsigned integer (`ubyte`, `ushort`, `uint`, `ulong`, `uint8`..`uint64`, `size_t`)
    /// or a single `char`.
    UInt(u64),
    /// A `float` or `double` (both stored as a 4-byte float).
    Float(f64),
    /// The bytes of a `char[n]`, up to (not including) the first NUL.
    Text(Vec<u8>),
    /// A vector: one value per element of the outermost dimension.
    List(Vec<ParamValue>),
}

impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        ParamValue::Bool(v)
    }
}

macro_rules! from_ints {
    ($variant:ident as $wide:ty: $($t:ty),*) => {$(
        impl From<$t> for ParamValue {
            fn from(v: $t) -> Self {
                ParamValue::$variant(<$wide>::from(v))
            }
        }
    )*};
}
from_ints!(Int as i64: i8, i16, i32, i64);
from_ints!(UInt as u64: u8, u16, u32, u64);

impl From<f32> for ParamValue {
    fn from(v: f32) -> Self {
        ParamValue::Float(f64::from(v))
    }
}

impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        ParamValue::Float(v)
    }
}

impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        ParamValue::Text(v.as_bytes().to_vec())
    }
}

impl<T: Into<ParamValue>> From<Vec<T>> for ParamValue {
    fn from(v: Vec<T>) -> Self {
        ParamValue::List(v.into_iter().map(Into::into).collect())
    }
}

impl ParamValue {
    /// The value as JSON: booleans, numbers, strings for `char[n]` text
    /// (an array of byte values when it is not UTF-8) and nested arrays.
    pub fn to_json(&self) -> Json {
        match self {
            ParamValue::Bool(b) => Json::Bool(*b),
            ParamValue::Int(i) => Json::from(*i),
            ParamValue::UInt(u) => Json::from(*u),
            ParamValue::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number)
            }
            ParamValue::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => Json::String(s.to_owned()),
                Err(_) => Json::Array(bytes.iter().map(|&b| Json::from(b)).collect()),
            },
            ParamValue::List(items) => Json::Array(items.iter().map(Self::to_json).collect()),
        }
    }

    /// Reads a JSON value meant for a parameter of type `ty`; shape and
    /// ranges are checked when the value is encoded.
    pub fn from_json(ty: &ParamType, json: &Json) -> Result<ParamValue, ValueError> {
        from_json_dims(ty.scalar, &ty.dims, json)
    }

    /// The value as an `f64`, if it is a number or a bool.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ParamValue::Bool(b) => Some(f64::from(u8::from(b))),
            ParamValue::Int(i) => Some(i as f64),
            ParamValue::UInt(u) => Some(u as f64),
            ParamValue::Float(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

fn from_json_dims(scalar: Scalar, dims: &[usize], json: &Json) -> Result<ParamValue, ValueError> {
    let is_text = scalar == Scalar::Char && dims.len() == 1;
    match (dims.first(), json) {
        (Some(_), Json::String(s)) if is_text => Ok(ParamValue::Text(s.as_bytes().to_vec())),
        (Some(_), Json::Array(items)) => items
            .iter()
            .map(|item| from_json_dims(scalar, &dims[1..], item))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| {
                if is_text {
                    // An array of byte values for a char[n]: keep it as text bytes.
                    let bytes: Option<Vec<u8>> = v
                        .iter()
                        .map(|x| match x {
                            ParamValue::UInt(u) => u8::try_from(*u).ok(),
                            _ => None,
                        })
                        .collect();
                    bytes.map_or(ParamValue::List(v), ParamValue::Text)
                } else {
                    ParamValue::List(v)
                }
            }),
        (Some(_), other) => Err(ValueError::Shape {
            expected: if is_text {
                "a string or an array".to_owned()
            } else {
                format!("an array of {}", dims[0])
            },
            found: json_kind(other),
        }),
        (None, Json::Bool(b)) => Ok(ParamValue::Bool(*b)),
        (None, Json::String(s)) if scalar == Scalar::Char && s.len() == 1 => {
            Ok(ParamValue::UInt(u64::from(s.as_bytes()[0])))
        }
        (None, Json::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(ParamValue::UInt(u))
            } else if let Some(i) = n.as_i64() {
                Ok(ParamValue::Int(i))
            } else {
                Ok(ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        (None, other) => Err(ValueError::Shape {
            expected: format!("a {} value", scalar.name()),
            found: json_kind(other),
        }),
    }
}

fn json_kind(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(_) => "a boolean".into(),
        Json::Number(n) => format!("the number {n}"),
        Json::String(_) => "a string".into(),
        Json::Array(a) => format!("an array of {}", a.len()),
        Json::Object(_) => "an object".into(),
    }
}

/// Why a value cannot be stored in a parameter. The caller adds the
/// parameter's name (see [`super::device::BufferError::BadValue`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// The value's shape does not match the parameter's type.
    #[error("expected {expected}, found {found}")]
    Shape {
        /// What the type needs.
        expected: String,
        /// What was given.
        found: String,
    },
    /// An integer outside its C type's range (C would wrap it silently).
    #[error("{value} is out of range for {scalar} ({min}..={max})")]
    OutOfRange {
        /// The value given.
        value: String,
        /// The parameter's scalar type.
        scalar: &'static str,
        /// The type's least value.
        min: i128,
        /// The type's greatest value.
        max: i128,
    },
    /// Text longer than its `char[n]`.
    #[error("text of {len} bytes does not fit char[{capacity}]")]
    TextTooLong {
        /// Bytes given.
        len: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// A float that is NaN, or finite but too large for a 4-byte float.
    #[error("{value} cannot be stored as a 4-byte float")]
    BadFloat {
        /// The value given.
        value: f64,
    },
}

/// Which bound a value was clamped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The parameter's `lower`.
    Lower,
    /// The parameter's `upper`.
    Upper,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Lower => "lower",
            Bound::Upper => "upper",
        })
    }
}

/// Something a buffer operation did other than what was asked, and went on.
/// Every warning is also logged through the `log` facade (targets under
/// `bitstream_buffer`).
#[derive(Clone, Debug, PartialEq)]
pub enum Warning {
    /// A float value (or, for vectors, `count` elements) was clamped.
    Clamped {
        /// The parameter's name.
        param: String,
        /// The (first) value given.
        value: f64,
        /// The bound it was clamped to.
        bound: Bound,
        /// The bound's value.
        limit: f64,
        /// How many elements were clamped (1 for a scalar).
        count: usize,
    },
    /// A subscription interval outside 40..=250 ms was clamped.
    IntervalClamped {
        /// The interval asked for, in milliseconds.
        requested_ms: u16,
        /// The interval granted.
        granted_ms: u16,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Clamped {
                param,
                value,
                bound,
                limit,
                count,
            } => {
                write!(
                    f,
                    "parameter `{param}`: {value} clamped to its {bound} bound {limit}"
                )?;
                if *count > 1 {
                    write!(f, " ({count} elements clamped)")?;
                }
                Ok(())
            }
            Warning::IntervalClamped {
                requested_ms,
                granted_ms,
            } => write!(
                f,
                "subscription interval {requested_ms} ms clamped to {granted_ms} ms (allowed 40..=250)"
            ),
        }
    }
}

/// Decodes a parameter's bytes (`bytes.len()` must be `ty.size()`).
pub fn decode(ty: &ParamType, bytes: &[u8]) -> ParamValue {
    decode_dims(ty.scalar, &ty.dims, bytes)
}

fn decode_dims(scalar: Scalar, dims: &[usize], bytes: &[u8]) -> ParamValue {
    match dims.split_first() {
        None => decode_scalar(scalar, bytes),
        Some((_, rest)) if rest.is_empty() && scalar == Scalar::Char => {
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            ParamValue::Text(bytes[..end].to_vec())
        }
        Some((&n, rest)) => {
            let stride = bytes.len() / n.max(1);
            ParamValue::List(
                bytes
                    .chunks_exact(stride.max(1))
                    .take(n)
                    .map(|chunk| decode_dims(scalar, rest, chunk))
                    .collect(),
            )
        }
    }
}

/// Decodes one scalar from its little-endian bytes.
#[inline]
pub fn decode_scalar(scalar: Scalar, bytes: &[u8]) -> ParamValue {
    let mut raw = [0u8; 8];
    let n = scalar.size().min(bytes.len());
    raw[..n].copy_from_slice(&bytes[..n]);
    decode_scalar_bits(scalar, u64::from_le_bytes(raw))
}

/// [`decode_scalar`] of a scalar already read as an integer: its
/// `scalar.size()` low bytes, little-endian, the rest zero.
#[inline]
pub fn decode_scalar_bits(scalar: Scalar, bits: u64) -> ParamValue {
    match scalar {
        Scalar::Bool => ParamValue::Bool(bits & 0xff != 0),
        Scalar::Float | Scalar::Double => ParamValue::Float(f64::from(f32::from_bits(bits as u32))),
        s if s.is_signed_int() => {
            // Sign-extend from the scalar's width.
            let shift = 64 - 8 * s.size().min(8) as u32;
            ParamValue::Int(((bits << shift) as i64) >> shift)
        }
        _ => ParamValue::UInt(bits),
    }
}

/// Encodes `value` into `out` (`out.len()` must be `param.ty.size()`),
/// clamping floats to the parameter's bounds. On error `out` may be
/// partly written: encode into scratch space, then copy.
#[inline]
pub fn encode(
    param: &Param,
    value: &ParamValue,
    out: &mut [u8],
) -> Result<Option<Warning>, ValueError> {
    let mut clamp = ClampTally::default();
    if param.ty.dims.is_empty() {
        // The hot path (one scalar): no recursion, no allocation.
        encode_scalar(param, value, out, &mut clamp)?;
    } else {
        encode_dims(param, &param.ty.dims, value, out, &mut clamp)?;
    }
    Ok(match clamp.first {
        None => None,
        Some(_) => clamp.into_warning(&param.name),
    })
}

#[derive(Default)]
struct ClampTally {
    first: Option<(f64, Bound, f64)>,
    count: usize,
}

impl ClampTally {
    #[cold]
    fn into_warning(self, param: &str) -> Option<Warning> {
        self.first.map(|(value, bound, limit)| Warning::Clamped {
            param: param.to_owned(),
            value,
            bound,
            limit,
            count: self.count,
        })
    }
}

fn encode_dims(
    param: &Param,
    dims: &[usize],
    value: &ParamValue,
    out: &mut [u8],
    clamp: &mut ClampTally,
) -> Result<(), ValueError> {
    let scalar = param.ty.scalar;
    match (dims.split_first(), value) {
        (None, v) => encode_scalar(param, v, out, clamp),
        (Some((&n, rest)), ParamValue::Text(text)) if rest.is_empty() && scalar == Scalar::Char => {
            if text.len() > n {
                return Err(ValueError::TextTooLong {
                    len: text.len(),
                    capacity: n,
                });
            }
            out[..text.len()].copy_from_slice(text);
            out[text.len()..].fill(0);
            Ok(())
        }
        (Some((&n, rest)), ParamValue::List(items)) if items.len() == n => {
            let stride = out.len() / n;
            for (item, chunk) in items.iter().zip(out.chunks_exact_mut(stride)) {
                encode_dims(param, rest, item, chunk, clamp)?;
            }
            Ok(())
        }
        (Some((&n, _)), other) => Err(ValueError::Shape {
            expected: format!("an array of {n}"),
            found: match other {
                ParamValue::List(items) => format!("an array of {}", items.len()),
                ParamValue::Text(t) => format!("text of {} bytes", t.len()),
                v => format!("the scalar {v}"),
            },
        }),
    }
}

#[inline]
fn encode_scalar(
    param: &Param,
    value: &ParamValue,
    out: &mut [u8],
    clamp: &mut ClampTally,
) -> Result<(), ValueError> {
    let scalar = param.ty.scalar;
    if scalar.is_float() {
        let Some(mut v) = value.as_f64() else {
            return Err(shape_error(scalar, value));
        };
        if v.is_nan() {
            return Err(bad_float(v));
        }
        let given = v;
        if v < param.lower {
            v = param.lower;
            clamp.count += 1;
            clamp
                .first
                .get_or_insert((given, Bound::Lower, param.lower));
        } else if v > param.upper {
            v = param.upper;
            clamp.count += 1;
            clamp
                .first
                .get_or_insert((given, Bound::Upper, param.upper));
        }
        let narrow = v as f32;
        if v.is_finite() && !narrow.is_finite() {
            return Err(bad_float(v));
        }
        out[..4].copy_from_slice(&narrow.to_le_bytes());
        return Ok(());
    }
    if scalar == Scalar::Bool {
        let b = match *value {
            ParamValue::Bool(b) => b,
            ParamValue::Int(0) | ParamValue::UInt(0) => false,
            ParamValue::Int(1) | ParamValue::UInt(1) => true,
            _ => return Err(shape_error(scalar, value)),
        };
        out[0] = u8::from(b);
        return Ok(());
    }
    let wide: i128 = match *value {
        ParamValue::Int(i) => i128::from(i),
        ParamValue::UInt(u) => i128::from(u),
        ParamValue::Bool(b) => i128::from(b),
        ParamValue::Float(f) if f.fract() == 0.0 && f.abs() < 1.8e19 => f as i128,
        ParamValue::Text(ref t) if scalar == Scalar::Char && t.len() == 1 => i128::from(t[0]),
        _ => return Err(shape_error(scalar, value)),
    };
    let (min, max) = scalar.int_range();
    if wide < min || wide > max {
        return Err(out_of_range(scalar, value, min, max));
    }
    let size = scalar.size();
    out[..size].copy_from_slice(&(wide as i64).to_le_bytes()[..size]);
    Ok(())
}

#[cold]
fn bad_float(value: f64) -> ValueError {
    ValueError::BadFloat { value }
}

#[cold]
fn out_of_range(scalar: Scalar, value: &ParamValue, min: i128, max: i128) -> ValueError {
    ValueError::OutOfRange {
        value: value.to_string(),
        scalar: scalar.name(),
        min,
        max,
    }
}

#[cold]
fn shape_error(scalar: Scalar, value: &ParamValue) -> ValueError {
    ValueError::Shape {
        expected: format!("a {} value", scalar.name()),
        found: match value {
            ParamValue::List(items) => format!("an array of {}", items.len()),
            ParamValue::Text(_) => "text".to_owned(),
            v => format!("{v}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use serde_json::json;

    fn param(ty: &str, extra: Json) -> Param {
        let mut spec = json!({"name": "p", "type": ty});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let catalog = json!({"t": {"params": [spec]}}).to_string();
        Catalog::from_json(&catalog).unwrap().types()[0].params[0].clone()
    }

    fn roundtrip(p: &Param, v: ParamValue) -> ParamValue {
        let mut out = vec![0u8; p.ty.size()];
        encode(p, &v, &mut out).unwrap();
        decode(&p.ty, &out)
    }

    #[test]
    fn scalars_round_trip_with_their_width() {
        let cases = [
            ("bool", ParamValue::Bool(true)),
            ("int8", ParamValue::Int(-128)),
            ("uint8", ParamValue::UInt(255)),
            ("short", ParamValue::Int(-2)),
            ("uint32", ParamValue::UInt(0xDEAD_BEEF)),
            ("int64", ParamValue::Int(i64::MIN)),
            ("uint64", ParamValue::UInt(u64::MAX)),
            ("float", ParamValue::Float(1.5)),
            ("double", ParamValue::Float(-0.25)),
        ];
        for (ty, v) in cases {
            let p = param(ty, json!({}));
            assert_eq!(roundtrip(&p, v.clone()), v, "{ty}");
        }
        let p = param("int16", json!({}));
        let mut out = [0u8; 2];
        encode(&p, &ParamValue::Int(-2), &mut out).unwrap();
        assert_eq!(out, [0xfe, 0xff]);
    }

    #[test]
    fn double_is_stored_as_four_byte_float() {
        let p = param("double", json!({}));
        assert_eq!(p.ty.size(), 4);
        let ParamValue::Float(f) = roundtrip(&p, ParamValue::Float(-0.123)) else {
            panic!()
        };
        assert_eq!(f, f64::from(-0.123f32));
    }

    #[test]
    fn integers_out_of_range_are_refused_not_wrapped() {
        let p = param("uint8", json!({}));
        let mut out = [0u8; 1];
        let err = encode(&p, &ParamValue::UInt(256), &mut out).unwrap_err();
        assert!(
            err.to_string().contains("out of range for uint8 (0..=255)"),
            "{err}"
        );
        let err = encode(&p, &ParamValue::Int(-1), &mut out).unwrap_err();
        assert!(matches!(err, ValueError::OutOfRange { .. }));
        let err = encode(&p, &ParamValue::Float(1.5), &mut out).unwrap_err();
        assert!(matches!(err, ValueError::Shape { .. }), "{err}");
        // Integers are never clamped, even with bounds.
        let p = param("int", json!({"lower": 0, "upper": 10}));
        assert_eq!(roundtrip(&p, ParamValue::Int(50)), ParamValue::Int(50));
    }

    #[test]
    fn floats_are_clamped_with_a_warning_naming_the_bound() {
        let p = param("double", json!({"lower": -1, "upper": 1}));
        let mut out = [0u8; 4];
        assert_eq!(
            encode(&p, &ParamValue::Float(-1.0), &mut out).unwrap(),
            None
        );
        let w = encode(&p, &ParamValue::Float(-1.01), &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(decode(&p.ty, &out), ParamValue::Float(-1.0));
        assert_eq!(
            w.to_string(),
            "parameter `p`: -1.01 clamped to its lower bound -1"
        );
        let w = encode(&p, &ParamValue::Int(3), &mut out).unwrap().unwrap();
        assert!(matches!(
            w,
            Warning::Clamped {
                bound: Bound::Upper,
                ..
            }
        ));
        let err = encode(&p, &ParamValue::Float(f64::NAN), &mut out).unwrap_err();
        assert!(matches!(err, ValueError::BadFloat { .. }));
        let p = param("float", json!({}));
        let err = encode(&p, &ParamValue::Float(1e300), &mut out).unwrap_err();
        assert!(matches!(err, ValueError::BadFloat { .. }));
    }

    #[test]
    fn vectors_and_text() {
        let p = param("uint16[2][3]", json!({}));
        let v = ParamValue::from_json(&p.ty, &json!([[1, 2, 3], [4, 5, 6]])).unwrap();
        assert_eq!(roundtrip(&p, v.clone()), v);
        assert_eq!(v.to_json(), json!([[1, 2, 3], [4, 5, 6]]));
        let bad = ParamValue::from_json(&p.ty, &json!([[1, 2], [4, 5, 6]])).unwrap();
        let mut out = vec![0u8; p.ty.size()];
        let err = encode(&p, &bad, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected an array of 3, found an array of 2"
        );

        let p = param("char[8]", json!({}));
        let v = ParamValue::from_json(&p.ty, &json!("hello")).unwrap();
        assert_eq!(roundtrip(&p, v).to_json(), json!("hello"));
        let long = ParamValue::from("too long text");
        let mut out = vec![0u8; 8];
        assert!(matches!(
            encode(&p, &long, &mut out),
            Err(ValueError::TextTooLong {
                len: 13,
                capacity: 8
            })
        ));

        let p = param("float[3]", json!({"upper": 1}));
        let mut out = vec![0u8; 12];
        let w = encode(&p, &ParamValue::from(vec![0.5, 2.0, 3.0]), &mut out)
            .unwrap()
            .unwrap();
        assert!(matches!(w, Warning::Clamped { count: 2, value, .. } if value == 2.0));
    }

    #[test]
    fn json_shapes_are_checked() {
        let p = param("bool", json!({}));
        assert!(ParamValue::from_json(&p.ty, &json!("yes")).is_err());
        assert!(ParamValue::from_json(&p.ty, &json!(null)).is_err());
        let p = param("int[2]", json!({}));
        let err = ParamValue::from_json(&p.ty, &json!(3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected an array of 2, found the number 3"
        );
    }
}
