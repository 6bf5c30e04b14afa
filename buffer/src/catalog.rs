//! Catalogs and buffer layouts.
//!
//! A catalog (`../shared/reference/device-buffers.md`, "Parameters and
//! catalogs") maps kebab-case type names to [`DeviceType`]s, each a list of
//! [`Param`]s. [`DeviceType::layout`] computes the C (`repr(C)`, natural
//! alignment, no packing, x86_64 Linux) layout of the shared buffer of that
//! type ("Layout" in the same document).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Maximum number of parameters of a Smart Device (one bit each in a `u16`).
pub const MAX_SMART_PARAMS: usize = 16;

/// Largest size in bytes of one parameter (keeps layout arithmetic exact).
pub const MAX_PARAM_SIZE: usize = 1 << 32;

/// Default `sub_interval`, in seconds.
pub const DEFAULT_SUB_INTERVAL: f64 = 0.04;
/// Default `write_interval`, in seconds.
pub const DEFAULT_WRITE_INTERVAL: f64 = 0.04;
/// Default `heartbeat_interval`, in seconds.
pub const DEFAULT_HEARTBEAT_INTERVAL: f64 = 1.0;

/// Size in bytes of a `DeviceUID` (`device_id u16 @0, year u8 @2, random u64 @8`).
pub const DEVICE_UID_SIZE: usize = 16;
/// Size in bytes of a Smart Device's `control` struct.
pub const CONTROL_SIZE: usize = 48;
/// Alignment of a Smart Device's `control` struct.
pub const CONTROL_ALIGN: usize = 8;
/// Size in bytes of a Smart Device's `metrics` struct (`send: u64[16], recv: u64[16]`).
pub const METRICS_SIZE: usize = 256;
/// Alignment of a Smart Device's `metrics` struct.
pub const METRICS_ALIGN: usize = 8;

/// Byte offsets of the members of `DeviceUID` and of the `control` struct,
/// relative to the start of that struct.
pub mod control_offsets {
    /// `DeviceUID.device_id: u16`.
    pub const UID_DEVICE_ID: usize = 0;
    /// `DeviceUID.year: u8`.
    pub const UID_YEAR: usize = 2;
    /// `DeviceUID.random: u64`.
    pub const UID_RANDOM: usize = 8;
    /// `control.uid: DeviceUID`.
    pub const UID: usize = 0;
    /// `control.subscription: u16` (bitmap of subscribed parameter ids).
    pub const SUBSCRIPTION: usize = 16;
    /// `control.interval: u16` (subscription interval in ms).
    pub const INTERVAL: usize = 18;
    /// `control.read: u16` (bitmap of parameters to read).
    pub const READ: usize = 20;
    /// `control.write: u16` (bitmap of parameters to write).
    pub const WRITE: usize = 22;
    /// `control.update: u16` (bitmap of updated parameters).
    pub const UPDATE: usize = 24;
    /// `control.last_write: f64`.
    pub const LAST_WRITE: usize = 32;
    /// `control.last_update: f64`.
    pub const LAST_UPDATE: usize = 40;
}

// ---------------------------------------------------------------------------
// Scalars and parameter types
// ---------------------------------------------------------------------------

/// A C scalar type a parameter may have (catalog names, without `c_`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// `bool` (C `bool`, 1 byte).
    Bool,
    /// `char` (C `char`, 1 byte).
    Char,
    /// `byte` (C `signed char`).
    Byte,
    /// `ubyte` (C `unsigned char`).
    UByte,
    /// `short` (C `short`, 2 bytes).
    Short,
    /// `ushort` (C `unsigned short`).
    UShort,
    /// `int` (C `int`, 4 bytes).
    Int,
    /// `uint` (C `unsigned int`).
    UInt,
    /// `long` (C `long`, 8 bytes on x86_64 Linux).
    Long,
    /// `ulong` (C `unsigned long`).
    ULong,
    /// `longlong` (C `long long`, 8 bytes).
    LongLong,
    /// `ulonglong` (C `unsigned long long`).
    ULongLong,
    /// `int8` (`int8_t`).
    Int8,
    /// `int16` (`int16_t`).
    Int16,
    /// `int32` (`int32_t`).
    Int32,
    /// `int64` (`int64_t`).
    Int64,
    /// `uint8` (`uint8_t`).
    UInt8,
    /// `uint16` (`uint16_t`).
    UInt16,
    /// `uint32` (`uint32_t`).
    UInt32,
    /// `uint64` (`uint64_t`).
    UInt64,
    /// `float` (C `float`, 4 bytes).
    Float,
    /// `double`: *stored* as a 4-byte C `float` (the peripheral's width).
    Double,
    /// `size_t` (8 bytes).
    SizeT,
    /// `ssize_t` (8 bytes).
    SSizeT,
}

impl Scalar {
    /// Every scalar, in catalog-documentation order.
    pub const ALL: [Scalar; 24] = [
        Scalar::Bool,
        Scalar::Char,
        Scalar::Byte,
        Scalar::UByte,
        Scalar::Short,
        Scalar::UShort,
        Scalar::Int,
        Scalar::UInt,
        Scalar::Long,
        Scalar::ULong,
        Scalar::LongLong,
        Scalar::ULongLong,
        Scalar::Int8,
        Scalar::Int16,
        Scalar::Int32,
        Scalar::Int64,
        Scalar::UInt8,
        Scalar::UInt16,
        Scalar::UInt32,
        Scalar::UInt64,
        Scalar::Float,
        Scalar::Double,
        Scalar::SizeT,
        Scalar::SSizeT,
    ];

    /// The catalog name (`"uint64"`, `"double"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::Char => "char",
            Scalar::Byte => "byte",
            Scalar::UByte => "ubyte",
            Scalar::Short => "short",
            Scalar::UShort => "ushort",
            Scalar::Int => "int",
            Scalar::UInt => "uint",
            Scalar::Long => "long",
            Scalar::ULong => "ulong",
            Scalar::LongLong => "longlong",
            Scalar::ULongLong => "ulonglong",
            Scalar::Int8 => "int8",
            Scalar::Int16 => "int16",
            Scalar::Int32 => "int32",
            Scalar::Int64 => "int64",
            Scalar::UInt8 => "uint8",
            Scalar::UInt16 => "uint16",
            Scalar::UInt32 => "uint32",
            Scalar::UInt64 => "uint64",
            Scalar::Float => "float",
            Scalar::Double => "double",
            Scalar::SizeT => "size_t",
            Scalar::SSizeT => "ssize_t",
        }
    }

    /// Parses a catalog scalar name; `None` when unknown.
    pub fn from_name(name: &str) -> Option<Scalar> {
        Scalar::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The C type the value is stored as (`double` is stored as `float`).
    pub fn c_type(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::Char => "char",
            Scalar::Byte => "signed char",
            Scalar::UByte => "unsigned char",
            Scalar::Short => "short",
            Scalar::UShort => "unsigned short",
            Scalar::Int => "int",
            Scalar::UInt => "unsigned int",
            Scalar::Long => "long",
            Scalar::ULong => "unsigned long",
            Scalar::LongLong => "long long",
            Scalar::ULongLong => "unsigned long long",
            Scalar::Int8 => "int8_t",
            Scalar::Int16 => "int16_t",
            Scalar::Int32 => "int32_t",
            Scalar::Int64 => "int64_t",
            Scalar::UInt8 => "uint8_t",
            Scalar::UInt16 => "uint16_t",
            Scalar::UInt32 => "uint32_t",
            Scalar::UInt64 => "uint64_t",
            Scalar::Float | Scalar::Double => "float",
            Scalar::SizeT => "size_t",
            Scalar::SSizeT => "ssize_t",
        }
    }

    /// Stored size in bytes (x86_64 Linux; `double` is stored in 4 bytes).
    pub fn size(self) -> usize {
        match self {
            Scalar::Bool
            | Scalar::Char
            | Scalar::Byte
            | Scalar::UByte
            | Scalar::Int8
            | Scalar::UInt8 => 1,
            Scalar::Short | Scalar::UShort | Scalar::Int16 | Scalar::UInt16 => 2,
            Scalar::Int
            | Scalar::UInt
            | Scalar::Int32
            | Scalar::UInt32
            | Scalar::Float
            | Scalar::Double => 4,
            Scalar::Long
            | Scalar::ULong
            | Scalar::LongLong
            | Scalar::ULongLong
            | Scalar::Int64
            | Scalar::UInt64
            | Scalar::SizeT
            | Scalar::SSizeT => 8,
        }
    }

    /// Alignment in bytes (natural: equal to [`Scalar::size`] for every scalar).
    pub fn align(self) -> usize {
        self.size()
    }

    /// Whether values of this type are floating point (and so clamped to bounds).
    pub fn is_float(self) -> bool {
        matches!(self, Scalar::Float | Scalar::Double)
    }

    /// Whether this is a signed integer type (`char` counts as signed on x86_64).
    pub fn is_signed_int(self) -> bool {
        matches!(
            self,
            Scalar::Char
                | Scalar::Byte
                | Scalar::Short
                | Scalar::Int
                | Scalar::Long
                | Scalar::LongLong
                | Scalar::Int8
                | Scalar::Int16
                | Scalar::Int32
                | Scalar::Int64
                | Scalar::SSizeT
        )
    }

    /// The least and greatest value an integer of this type holds (for a
    /// bool, 0 and 1; not meaningful for floats).
    pub fn int_range(self) -> (i128, i128) {
        let bits = 8 * self.size() as u32;
        if self.is_signed_int() {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        } else if self == Scalar::Bool {
            (0, 1)
        } else {
            (0, (1i128 << bits) - 1)
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parameter type: a scalar, or a (possibly nested) vector of one.
///
/// Parsed from catalog strings such as `double`, `char[253]`, `uint64[8][8]`
/// (outermost dimension first, as in C).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParamType {
    /// The element type.
    pub scalar: Scalar,
    /// Vector dimensions, outermost first; empty for a scalar.
    pub dims: Vec<usize>,
}

/// Why a parameter type string is invalid (see [`ParamType::from_str`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamTypeError {
    /// The scalar part is not a known scalar name.
    #[error("unknown scalar type `{0}`")]
    UnknownScalar(String),
    /// The `[n]` suffix is malformed (empty, zero, not a number, unbalanced).
    #[error("bad vector syntax: {0}")]
    BadVectorSyntax(&'static str),
    /// The type is a pointer (contains `*`).
    #[error("pointer types are not allowed")]
    Pointer,
    /// The parameter would be larger than [`MAX_PARAM_SIZE`] bytes.
    #[error("parameter larger than {MAX_PARAM_SIZE} bytes")]
    TooLarge,
}

impl ParamType {
    /// Whether this is a vector (has at least one dimension).
    pub fn is_vector(&self) -> bool {
        !self.dims.is_empty()
    }

    /// Number of scalar elements (1 for a scalar).
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Always `false`: dimensions are at least 1 (kept for API symmetry with `len`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stored size in bytes.
    pub fn size(&self) -> usize {
        self.scalar.size() * self.len()
    }

    /// Alignment in bytes (that of the scalar).
    pub fn align(&self) -> usize {
        self.scalar.align()
    }

    /// The C declaration type, e.g. `float`, `char[253]`, `uint64_t[8][8]`.
    pub fn c_type(&self) -> String {
        let mut s = self.scalar.c_type().to_owned();
        for d in &self.dims {
            s.push_str(&format!("[{d}]"));
        }
        s
    }
}

impl fmt::Display for ParamType {
    /// The catalog spelling, e.g. `uint64[8][8]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scalar.name())?;
        for d in &self.dims {
            write!(f, "[{d}]")?;
        }
        Ok(())
    }
}

impl FromStr for ParamType {
    type Err = ParamTypeError;

    /// Parses `scalar` followed by zero or more `[n]` (n a positive decimal).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('*') {
            return Err(ParamTypeError::Pointer);
        }
        let (base, mut rest) = match s.find(['[', ']']) {
            Some(i) => s.split_at(i),
            None => (s, ""),
        };
        // Vector syntax is checked before the scalar, so `char4]` is reported
        // as unbalanced rather than as the unknown scalar `char4`.
        let mut dims = Vec::new();
        let mut count: usize = 1;
        while !rest.is_empty() {
            let inner = rest
                .strip_prefix('[')
                .ok_or(ParamTypeError::BadVectorSyntax("expected `[`"))?;
            let close = inner
                .find(']')
                .ok_or(ParamTypeError::BadVectorSyntax("unbalanced `[`"))?;
            let num = &inner[..close];
            if num.is_empty() {
                return Err(ParamTypeError::BadVectorSyntax("empty dimension `[]`"));
            }
            if !num.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParamTypeError::BadVectorSyntax(
                    "dimension is not a decimal number",
                ));
            }
            let n: usize = num.parse().map_err(|_| ParamTypeError::TooLarge)?;
            if n == 0 {
                return Err(ParamTypeError::BadVectorSyntax("zero dimension `[0]`"));
            }
            count = count
                .checked_mul(n)
                .filter(|&c| c <= MAX_PARAM_SIZE)
                .ok_or(ParamTypeError::TooLarge)?;
            dims.push(n);
            rest = &inner[close + 1..];
        }
        let scalar = Scalar::from_name(base)
            .ok_or_else(|| ParamTypeError::UnknownScalar(base.to_owned()))?;
        if count * scalar.size() > MAX_PARAM_SIZE {
            return Err(ParamTypeError::TooLarge);
        }
        Ok(ParamType { scalar, dims })
    }
}

// ---------------------------------------------------------------------------
// Catalog model
// ---------------------------------------------------------------------------

/// One parameter of a device type.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Parameter name (unique within its type).
    pub name: String,
    /// Parameter type.
    pub ty: ParamType,
    /// Parameter id (default: index in the type's list; the bit in Smart Device bitmaps).
    pub id: u8,
    /// Lower bound for float/double values (default `-inf`).
    pub lower: f64,
    /// Upper bound for float/double values (default `+inf`).
    pub upper: f64,
    /// Whether the parameter is in the update block (default `true`).
    pub readable: bool,
    /// Whether the parameter is in the write block (default `false`).
    pub writeable: bool,
    /// Whether the parameter is subscribed by default (default `true`).
    pub subscribed: bool,
}

/// A buffer type of a catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceType {
    /// Kebab-case type name (the catalog key).
    pub name: String,
    /// Smart Device id; `None` for a plain buffer.
    pub device_id: Option<u16>,
    /// Subscription interval in seconds (default 0.04).
    pub sub_interval: f64,
    /// Write interval in seconds (default 0.04).
    pub write_interval: f64,
    /// Heartbeat interval in seconds (default 1.0).
    pub heartbeat_interval: f64,
    /// Parameters, in catalog order.
    pub params: Vec<Param>,
}

/// Why the values of a `DEV_WRITE`/`DEV_DATA` do not fit a type
/// ([`DeviceType::split_values`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The bitmap names an id the type lacks.
    #[error("type `{type_name}` has no parameter id {id}")]
    NoSuchId {
        /// The type.
        type_name: String,
        /// The id.
        id: u8,
    },
    /// The parameter is not in the block the message carries.
    #[error("parameter `{param}` (id {id}) is not {needs}")]
    NotInBlock {
        /// The parameter.
        param: String,
        /// Its id.
        id: u8,
        /// `readable` (DEV_DATA) or `writeable` (DEV_WRITE).
        needs: &'static str,
    },
    /// The values are not as long as the bitmap's parameters.
    #[error("bitmap 0x{bitmap:04X} needs {needed} value bytes, the message has {found}")]
    Length {
        /// The bitmap.
        bitmap: u16,
        /// Bytes its parameters take.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
}

/// A parsed, validated catalog: device types in catalog order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Catalog {
    types: Vec<DeviceType>,
}

/// An error reading a catalog. Every variant names the offending type (and
/// parameter where there is one).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// The text is not valid JSON or does not have the catalog's shape.
    #[error("invalid catalog JSON at line {line}, column {column} (at `{path}`): {message}")]
    Json {
        /// Path of the offending value (`type.params[2].name`), `.` for the root.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A parameter's scalar type is unknown.
    #[error("type `{type_name}`, parameter `{param}`: unknown scalar type `{scalar}` in `{ty}`")]
    UnknownScalar {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The full type string.
        ty: String,
        /// The unknown scalar name.
        scalar: String,
    },
    /// A parameter's vector suffix is malformed.
    #[error("type `{type_name}`, parameter `{param}`: bad vector syntax in `{ty}`: {reason}")]
    BadVectorSyntax {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The full type string.
        ty: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A parameter has a pointer type.
    #[error("type `{type_name}`, parameter `{param}`: pointer type `{ty}` is not allowed")]
    PointerType {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The full type string.
        ty: String,
    },
    /// A parameter is larger than [`MAX_PARAM_SIZE`].
    #[error(
        "type `{type_name}`, parameter `{param}`: `{ty}` is larger than {MAX_PARAM_SIZE} bytes"
    )]
    ParamTooLarge {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The full type string.
        ty: String,
    },
    /// A Smart Device has more than [`MAX_SMART_PARAMS`] parameters.
    #[error(
        "type `{type_name}`: a Smart Device may have at most {MAX_SMART_PARAMS} parameters, found {count}"
    )]
    TooManyParams {
        /// Device type name.
        type_name: String,
        /// Number of parameters.
        count: usize,
    },
    /// A Smart Device parameter has an id of 16 or more.
    #[error(
        "type `{type_name}`, parameter `{param}`: id {id} is out of range for a Smart Device (0..{MAX_SMART_PARAMS})"
    )]
    ParamIdOutOfRange {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The id.
        id: u8,
    },
    /// Two parameters of a type share a name.
    #[error("type `{type_name}`: duplicate parameter name `{param}`")]
    DuplicateParamName {
        /// Device type name.
        type_name: String,
        /// The repeated name.
        param: String,
    },
    /// Two parameters of a type share an id.
    #[error("type `{type_name}`: parameters `{first}` and `{second}` have the same id {id}")]
    DuplicateParamId {
        /// Device type name.
        type_name: String,
        /// The repeated id.
        id: u8,
        /// The earlier parameter.
        first: String,
        /// The later parameter.
        second: String,
    },
    /// A parameter's `lower` bound is above its `upper` bound.
    #[error(
        "type `{type_name}`, parameter `{param}`: lower bound {lower} is above upper bound {upper}"
    )]
    InvalidBounds {
        /// Device type name.
        type_name: String,
        /// Parameter name.
        param: String,
        /// The lower bound.
        lower: f64,
        /// The upper bound.
        upper: f64,
    },
    /// Two types share a device_id.
    #[error("types `{first}` and `{second}` have the same device_id {device_id}")]
    DuplicateDeviceId {
        /// The repeated device id.
        device_id: u16,
        /// The earlier type.
        first: String,
        /// The later type.
        second: String,
    },
    /// A type name appears twice in the catalog.
    #[error("duplicate type name `{type_name}`")]
    DuplicateTypeName {
        /// The repeated name.
        type_name: String,
    },
}

// Raw serde shapes ----------------------------------------------------------

fn default_sub() -> f64 {
    DEFAULT_SUB_INTERVAL
}
fn default_write() -> f64 {
    DEFAULT_WRITE_INTERVAL
}
fn default_heartbeat() -> f64 {
    DEFAULT_HEARTBEAT_INTERVAL
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    #[serde(default)]
    device_id: Option<u16>,
    #[serde(default = "default_sub")]
    sub_interval: f64,
    #[serde(default = "default_write")]
    write_interval: f64,
    #[serde(default = "default_heartbeat")]
    heartbeat_interval: f64,
    #[serde(default)]
    params: Vec<RawParam>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    id: Option<u8>,
    #[serde(default)]
    lower: Option<f64>,
    #[serde(default)]
    upper: Option<f64>,
    #[serde(default)]
    readable: Option<bool>,
    #[serde(default)]
    writeable: Option<bool>,
    #[serde(default)]
    subscribed: Option<bool>,
}

/// The top-level object as an ordered list of entries, so duplicate keys are seen.
struct RawCatalog(Vec<(String, RawType)>);

impl<'de> Deserialize<'de> for RawCatalog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCatalog;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object mapping type names to type specs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawCatalog, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    let t = m.next_value::<RawType>()?;
                    v.push((k, t));
                }
                Ok(RawCatalog(v))
            }
        }
        d.deserialize_map(V)
    }
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> CatalogError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    // serde_json's Display appends " at line L column C"; strip it, we print our own.
    let full = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    CatalogError::Json {
        path,
        line: inner.line(),
        column: inner.column(),
        message,
    }
}

impl DeviceType {
    fn from_raw(name: String, raw: RawType) -> Result<DeviceType, CatalogError> {
        let smart = raw.device_id.is_some();
        if smart && raw.params.len() > MAX_SMART_PARAMS {
            return Err(CatalogError::TooManyParams {
                type_name: name,
                count: raw.params.len(),
            });
        }
        let mut params: Vec<Param> = Vec::with_capacity(raw.params.len());
        let mut ids: HashMap<u8, usize> = HashMap::new();
        for (index, rp) in raw.params.into_iter().enumerate() {
            let tn = || name.clone();
            if params.iter().any(|p| p.name == rp.name) {
                return Err(CatalogError::DuplicateParamName {
                    type_name: tn(),
                    param: rp.name,
                });
            }
            let ty = rp.ty.parse::<ParamType>().map_err(|e| match e {
                ParamTypeError::UnknownScalar(scalar) => CatalogError::UnknownScalar {
                    type_name: tn(),
                    param: rp.name.clone(),
                    ty: rp.ty.clone(),
                    scalar,
                },
                ParamTypeError::BadVectorSyntax(reason) => CatalogError::BadVectorSyntax {
                    type_name: tn(),
                    param: rp.name.clone(),
                    ty: rp.ty.clone(),
                    reason,
                },
                ParamTypeError::Pointer => CatalogError::PointerType {
                    type_name: tn(),
                    param: rp.name.clone(),
                    ty: rp.ty.clone(),
                },
                ParamTypeError::TooLarge => CatalogError::ParamTooLarge {
                    type_name: tn(),
                    param: rp.name.clone(),
                    ty: rp.ty.clone(),
                },
            })?;
            // Default id is the index. Past index 255 (only possible on a plain
            // buffer) it saturates to 255, which then collides with another id
            // and is reported as a duplicate id: give such params explicit ids.
            let id = match rp.id {
                Some(id) => id,
                None => u8::try_from(index).unwrap_or(u8::MAX),
            };
            if smart && usize::from(id) >= MAX_SMART_PARAMS {
                return Err(CatalogError::ParamIdOutOfRange {
                    type_name: tn(),
                    param: rp.name,
                    id,
                });
            }
            if let Some(&first) = ids.get(&id) {
                return Err(CatalogError::DuplicateParamId {
                    type_name: tn(),
                    id,
                    first: params[first].name.clone(),
                    second: rp.name,
                });
            }
            let lower = rp.lower.unwrap_or(f64::NEG_INFINITY);
            let upper = rp.upper.unwrap_or(f64::INFINITY);
            if lower > upper {
                return Err(CatalogError::InvalidBounds {
                    type_name: tn(),
                    param: rp.name,
                    lower,
                    upper,
                });
            }
            ids.insert(id, params.len());
            params.push(Param {
                name: rp.name,
                ty,
                id,
                lower,
                upper,
                readable: rp.readable.unwrap_or(true),
                writeable: rp.writeable.unwrap_or(false),
                subscribed: rp.subscribed.unwrap_or(true),
            });
        }
        Ok(DeviceType {
            name,
            device_id: raw.device_id,
            sub_interval: raw.sub_interval,
            write_interval: raw.write_interval,
            heartbeat_interval: raw.heartbeat_interval,
            params,
        })
    }

    /// Whether this is a Smart Device (has a `device_id`).
    pub fn is_smart(&self) -> bool {
        self.device_id.is_some()
    }

    /// Its parameters' names for messages: `"a, b, c"`, or `"no parameters"`.
    ///
    /// ```
    /// use bitstream_buffer::catalog::Catalog;
    ///
    /// let catalog = Catalog::from_json(
    ///     r#"{"m": {"params": [{"name": "pos", "type": "double"}, {"name": "n", "type": "int8"}]},
    ///         "e": {"params": []}}"#,
    /// )
    /// .unwrap();
    /// assert_eq!(catalog.get("m").unwrap().param_list(), "pos, n");
    /// assert_eq!(catalog.get("e").unwrap().param_list(), "no parameters");
    /// ```
    pub fn param_list(&self) -> String {
        if self.params.is_empty() {
            return "no parameters".to_owned();
        }
        self.params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The parameter with id `id`.
    pub fn param_by_id(&self, id: u8) -> Option<&Param> {
        self.params.iter().find(|p| p.id == id)
    }

    /// Where each value of a `DEV_WRITE` (`writes`: parameters of the write
    /// block) or `DEV_DATA` (of the update block) payload lies: each set
    /// bit's parameter, in ascending id order, takes its size in bytes.
    /// Checks the ids, the block and the total length `values_len`.
    pub fn split_values(
        &self,
        writes: bool,
        bitmap: u16,
        values_len: usize,
    ) -> Result<Vec<(&Param, std::ops::Range<usize>)>, SplitError> {
        let mut plan = Vec::new();
        let mut at = 0;
        for id in super::message::bitmap_ids(bitmap) {
            let p = self.param_by_id(id).ok_or_else(|| SplitError::NoSuchId {
                type_name: self.name.clone(),
                id,
            })?;
            let (carried, needs) = if writes {
                (p.writeable, "writeable")
            } else {
                (p.readable, "readable")
            };
            if !carried {
                return Err(SplitError::NotInBlock {
                    param: p.name.clone(),
                    id,
                    needs,
                });
            }
            plan.push((p, at..at + p.ty.size()));
            at += p.ty.size();
        }
        if at != values_len {
            return Err(SplitError::Length {
                bitmap,
                needed: at,
                found: values_len,
            });
        }
        Ok(plan)
    }

    /// The C layout of this type's buffer.
    pub fn layout(&self) -> Layout {
        let mut offset = 1; // valid_flag: bool @0
        let mut align = 1;
        let mut update_block = BlockLayout::of(self.params.iter().filter(|p| p.readable));
        update_block.offset = align_up(offset, update_block.align);
        offset = update_block.offset + update_block.size;
        align = align.max(update_block.align);
        let mut write_block = BlockLayout::of(self.params.iter().filter(|p| p.writeable));
        write_block.offset = align_up(offset, write_block.align);
        offset = write_block.offset + write_block.size;
        align = align.max(write_block.align);
        let (control_offset, metrics_offset) = if self.is_smart() {
            let control = align_up(offset, CONTROL_ALIGN);
            let metrics = align_up(control + CONTROL_SIZE, METRICS_ALIGN);
            offset = metrics + METRICS_SIZE;
            align = align.max(CONTROL_ALIGN).max(METRICS_ALIGN);
            (Some(control), Some(metrics))
        } else {
            (None, None)
        };
        Layout {
            size: align_up(offset, align),
            align,
            valid_flag_offset: 0,
            update_block,
            write_block,
            control_offset,
            metrics_offset,
        }
    }
}

impl Catalog {
    /// Parses and validates a catalog from JSON text.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: RawCatalog = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
        de.end().map_err(|e| CatalogError::Json {
            path: ".".to_owned(),
            line: e.line(),
            column: e.column(),
            message: "trailing characters".to_owned(),
        })?;
        let mut types: Vec<DeviceType> = Vec::with_capacity(raw.0.len());
        for (name, rt) in raw.0 {
            if types.iter().any(|t| t.name == name) {
                return Err(CatalogError::DuplicateTypeName { type_name: name });
            }
            let t = DeviceType::from_raw(name, rt)?;
            if let Some(id) = t.device_id {
                if let Some(first) = types.iter().find(|o| o.device_id == Some(id)) {
                    return Err(CatalogError::DuplicateDeviceId {
                        device_id: id,
                        first: first.name.clone(),
                        second: t.name,
                    });
                }
            }
            types.push(t);
        }
        Ok(Catalog { types })
    }

    /// The type called `name`.
    pub fn get(&self, name: &str) -> Option<&DeviceType> {
        self.types.iter().find(|t| t.name == name)
    }

    /// The Smart Device type with `device_id`.
    pub fn by_device_id(&self, device_id: u16) -> Option<&DeviceType> {
        self.types.iter().find(|t| t.device_id == Some(device_id))
    }

    /// All types, in catalog order.
    pub fn types(&self) -> &[DeviceType] {
        &self.types
    }

    /// Type names, in catalog order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(|t| t.name.as_str())
    }

    /// Number of types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether the catalog has no types.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

impl FromStr for Catalog {
    type Err = CatalogError;

    /// Same as [`Catalog::from_json`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Catalog::from_json(s)
    }
}

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------

fn align_up(x: usize, align: usize) -> usize {
    x.div_ceil(align) * align
}

/// One field of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldLayout {
    /// Parameter name.
    pub name: String,
    /// Offset within the block.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Alignment in bytes.
    pub align: usize,
    /// C declaration type, e.g. `float`, `char[253]`, `uint64_t[8][8]`.
    pub c_type: String,
}

/// A nested struct of parameters (the update block or the write block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockLayout {
    /// Offset of the block within the buffer.
    pub offset: usize,
    /// Size in bytes (0 when empty), rounded up to `align`.
    pub size: usize,
    /// Alignment: the largest member alignment, 1 when empty.
    pub align: usize,
    /// Fields in catalog order.
    pub fields: Vec<FieldLayout>,
}

impl BlockLayout {
    fn of<'a>(params: impl Iterator<Item = &'a Param>) -> BlockLayout {
        let mut fields = Vec::new();
        let mut end = 0;
        let mut align = 1;
        for p in params {
            let a = p.ty.align();
            let offset = align_up(end, a);
            let size = p.ty.size();
            end = offset + size;
            align = align.max(a);
            fields.push(FieldLayout {
                name: p.name.clone(),
                offset,
                size,
                align: a,
                c_type: p.ty.c_type(),
            });
        }
        BlockLayout {
            offset: 0,
            size: align_up(end, align),
            align,
            fields,
        }
    }

    /// The field for parameter `name`.
    pub fn field(&self, name: &str) -> Option<&FieldLayout> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The C layout of a buffer type (all offsets in bytes from the buffer start,
/// except [`FieldLayout::offset`], which is within its block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// Total size, rounded up to `align`.
    pub size: usize,
    /// Alignment of the whole struct.
    pub align: usize,
    /// Offset of `valid_flag: bool` (always 0).
    pub valid_flag_offset: usize,
    /// The readable parameters.
    pub update_block: BlockLayout,
    /// The writeable parameters.
    pub write_block: BlockLayout,
    /// Offset of `control` (Smart Devices only).
    pub control_offset: Option<usize>,
    /// Offset of `metrics` (Smart Devices only).
    pub metrics_offset: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIE: &str = include_str!("../../fixtures/buffers/pie-catalog.json");

    fn pie() -> Catalog {
        Catalog::from_json(PIE).expect("pie catalog parses")
    }

    /// The first type whose params are exactly `names` (found by params, not by name).
    fn find_by_params<'a>(c: &'a Catalog, names: &[&str]) -> &'a DeviceType {
        c.types()
            .iter()
            .find(|t| {
                t.params
                    .iter()
                    .map(|p| p.name.as_str())
                    .eq(names.iter().copied())
            })
            .expect("type with these params")
    }

    fn err(json: &str) -> CatalogError {
        Catalog::from_json(json).expect_err("catalog must be rejected")
    }

    #[test]
    fn every_pie_type_parses_and_lays_out() {
        let c = pie();
        assert_eq!(c.len(), 13);
        assert_eq!(c.names().next(), Some("limit-switch"));
        assert_eq!(c.names().last(), Some("field"));
        for t in c.types() {
            let l = t.layout();
            assert_eq!(l.size % l.align, 0, "{}", t.name);
            assert_eq!(l.control_offset.is_some(), t.is_smart(), "{}", t.name);
            let readable = t.params.iter().filter(|p| p.readable).count();
            let writeable = t.params.iter().filter(|p| p.writeable).count();
            assert_eq!(l.update_block.fields.len(), readable);
            assert_eq!(l.write_block.fields.len(), writeable);
            serde_json::to_string(&l).unwrap();
        }
        let field = c.get("field").unwrap();
        assert_eq!(field.device_id, None);
        assert_eq!(field.params[2].ty.c_type(), "uint8_t[4096]");
        // 1 + 1 + 1 + 4096 + 4096, valid flag first, no control: 8194 bytes.
        let l = field.layout();
        assert_eq!(l.update_block.offset, 1);
        assert_eq!(l.update_block.size, 8194);
        assert_eq!(l.write_block.offset, 8195);
        assert_eq!(l.size, 8195);
        assert_eq!(c.by_device_id(11).unwrap().name, "rfid");
        assert_eq!(c.get("rfid").unwrap().sub_interval, 0.1);
        assert_eq!(c.get("rfid").unwrap().write_interval, 0.04);
        assert_eq!(c.get("rfid").unwrap().heartbeat_interval, 1.0);
        assert_eq!(c.get("koala-bear").unwrap().params.len(), 16);
    }

    #[test]
    fn limit_switch_is_312_bytes() {
        let c = pie();
        let t = find_by_params(&c, &["switch0", "switch1", "switch2"]);
        let l = t.layout();
        assert_eq!(l.size, 312);
        assert_eq!(l.align, 8);
        assert_eq!(l.valid_flag_offset, 0);
        assert_eq!((l.update_block.offset, l.update_block.size), (1, 3));
        assert_eq!((l.write_block.offset, l.write_block.size), (4, 0));
        assert_eq!(l.write_block.align, 1);
        assert_eq!(l.control_offset, Some(8));
        assert_eq!(l.metrics_offset, Some(56));
    }

    #[test]
    fn servo_is_328_bytes() {
        let c = pie();
        let t = find_by_params(&c, &["servo0", "servo1"]);
        let l = t.layout();
        assert_eq!(l.size, 328);
        assert_eq!((l.update_block.offset, l.update_block.size), (4, 8));
        assert_eq!((l.write_block.offset, l.write_block.size), (12, 8));
        assert_eq!(l.control_offset, Some(24));
        assert_eq!(l.metrics_offset, Some(72));
        assert_eq!(t.params[0].lower, -1.0);
        assert_eq!(t.params[0].upper, 1.0);
    }

    #[test]
    fn null_device_is_312_bytes() {
        let c = Catalog::from_json(r#"{"null-device": {"device_id": 99, "params": []}}"#).unwrap();
        let l = c.get("null-device").unwrap().layout();
        assert_eq!(l.size, 312);
        assert_eq!((l.update_block.offset, l.update_block.size), (1, 0));
        assert_eq!((l.write_block.offset, l.write_block.size), (1, 0));
        assert_eq!(l.control_offset, Some(8));
        assert_eq!(l.metrics_offset, Some(56));
        // `params` may be omitted; a plain buffer with no params is just the flag.
        let c = Catalog::from_json(r#"{"empty": {}}"#).unwrap();
        assert_eq!(c.get("empty").unwrap().layout().size, 1);
    }

    #[test]
    fn example_device_layout() {
        let v = crate::test_support::vectors();
        let text = serde_json::to_string(&v["example_device"]["catalog"]).unwrap();
        let c = Catalog::from_json(&text).unwrap();
        let t = c.get("example-device").unwrap();
        assert_eq!(t.device_id, Some(128));
        let ids: Vec<u8> = t.params.iter().map(|p| p.id).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert!(!t.params[0].readable && t.params[0].writeable && !t.params[0].subscribed);
        assert_eq!(t.param("duty_cycle").unwrap().ty.size(), 4); // double stored as float
                                                                 // By hand:
                                                                 //   valid_flag bool                                   @0
                                                                 //   update_block (align 4)                            @4 (1 -> 4)
                                                                 //     duty_cycle float @0, id uint32_t @4, large char[253] @8..261,
                                                                 //     pos float @264 (261 -> 264) => size 268
                                                                 //   write_block (align 4)                             @272 (4 + 268)
                                                                 //     flag bool @0, id uint32_t @4, large char[253] @8..261,
                                                                 //     pos float @264 => size 268
                                                                 //   control (align 8)                                 @544 (540 -> 544)
                                                                 //   metrics                                           @592 (544 + 48)
                                                                 //   size 592 + 256 = 848, align 8
        let l = t.layout();
        let fields = |b: &BlockLayout| -> Vec<(String, usize, usize, String)> {
            b.fields
                .iter()
                .map(|f| (f.name.clone(), f.offset, f.size, f.c_type.clone()))
                .collect()
        };
        let f = |n: &str, o, s, c: &str| (n.to_owned(), o, s, c.to_owned());
        assert_eq!(
            fields(&l.update_block),
            [
                f("duty_cycle", 0, 4, "float"),
                f("id", 4, 4, "uint32_t"),
                f("large", 8, 253, "char[253]"),
                f("pos", 264, 4, "float"),
            ]
        );
        assert_eq!(
            fields(&l.write_block),
            [
                f("flag", 0, 1, "bool"),
                f("id", 4, 4, "uint32_t"),
                f("large", 8, 253, "char[253]"),
                f("pos", 264, 4, "float"),
            ]
        );
        assert_eq!(
            (
                l.update_block.offset,
                l.update_block.size,
                l.update_block.align
            ),
            (4, 268, 4)
        );
        assert_eq!(
            (
                l.write_block.offset,
                l.write_block.size,
                l.write_block.align
            ),
            (272, 268, 4)
        );
        assert_eq!(l.control_offset, Some(544));
        assert_eq!(l.metrics_offset, Some(592));
        assert_eq!((l.size, l.align), (848, 8));
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["update_block"]["fields"][2]["c_type"], "char[253]");
        assert_eq!(json["control_offset"], 544);
    }

    #[test]
    fn param_types_parse() {
        let t: ParamType = "uint64[8][8]".parse().unwrap();
        assert_eq!(t.dims, [8, 8]);
        assert_eq!((t.size(), t.align(), t.len()), (512, 8, 64));
        assert_eq!(t.c_type(), "uint64_t[8][8]");
        assert_eq!(t.to_string(), "uint64[8][8]");
        let d: ParamType = "double".parse().unwrap();
        assert_eq!((d.size(), d.align(), d.c_type().as_str()), (4, 4, "float"));
        for s in Scalar::ALL {
            assert_eq!(Scalar::from_name(s.name()), Some(s));
            assert_eq!(s.align(), s.size());
        }
        assert_eq!(Scalar::Long.size(), 8);
        assert_eq!(Scalar::Short.size(), 2);
        assert_eq!(Scalar::SizeT.c_type(), "size_t");
        assert_eq!(
            "char[]".parse::<ParamType>(),
            Err(ParamTypeError::BadVectorSyntax("empty dimension `[]`"))
        );
        for bad in [
            "char[0]", "char[x]", "char[8", "char]", "char[8]x", "char[-1]", "char[ 8]",
        ] {
            assert!(
                matches!(
                    bad.parse::<ParamType>(),
                    Err(ParamTypeError::BadVectorSyntax(_))
                ),
                "{bad}"
            );
        }
        assert_eq!("int*".parse::<ParamType>(), Err(ParamTypeError::Pointer));
        assert_eq!(
            "Int".parse::<ParamType>(),
            Err(ParamTypeError::UnknownScalar("Int".into()))
        );
        assert_eq!(
            "uint64[99999999999][99999999999]".parse::<ParamType>(),
            Err(ParamTypeError::TooLarge)
        );
    }

    #[test]
    fn error_invalid_json() {
        let e = err("{\n  \"a\": {\"params\": [}\n}");
        let CatalogError::Json { line, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, 2);
        assert!(
            e.to_string()
                .starts_with("invalid catalog JSON at line 2, column"),
            "{e}"
        );
        let e = err(r#"{"t": {"params": [{"name": "x", "type": "bool", "writable": true}]}}"#);
        assert!(e.to_string().contains("t.params[0]"), "{e}");
        assert!(e.to_string().contains("writable"), "{e}");
        assert!(matches!(err("{} x"), CatalogError::Json { .. }));
        assert!(matches!(err("[]"), CatalogError::Json { .. }));
    }

    #[test]
    fn error_unknown_scalar() {
        let e = err(r#"{"t": {"params": [{"name": "p", "type": "quad[2]"}]}}"#);
        assert_eq!(
            e.to_string(),
            "type `t`, parameter `p`: unknown scalar type `quad` in `quad[2]`"
        );
    }

    #[test]
    fn error_bad_vector_syntax() {
        for ty in ["char[]", "char[0]", "char[x]", "char[4", "char4]"] {
            let e = err(&format!(
                r#"{{"t": {{"params": [{{"name": "p", "type": "{ty}"}}]}}}}"#
            ));
            assert!(
                matches!(e, CatalogError::BadVectorSyntax { .. }),
                "{ty}: {e:?}"
            );
            assert!(
                e.to_string().starts_with(&format!(
                    "type `t`, parameter `p`: bad vector syntax in `{ty}`"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn error_pointer_type() {
        let e = err(r#"{"t": {"params": [{"name": "p", "type": "char*"}]}}"#);
        assert_eq!(
            e.to_string(),
            "type `t`, parameter `p`: pointer type `char*` is not allowed"
        );
    }

    #[test]
    fn error_param_too_large() {
        let e = err(r#"{"t": {"params": [{"name": "p", "type": "uint64[4294967296]"}]}}"#);
        assert!(matches!(e, CatalogError::ParamTooLarge { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("type `t`, parameter `p`: `uint64[4294967296]`"));
    }

    fn bools(n: usize) -> String {
        (0..n)
            .map(|i| format!(r#"{{"name": "p{i}", "type": "bool"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn error_too_many_params() {
        let e = err(&format!(
            r#"{{"t": {{"device_id": 1, "params": [{}]}}}}"#,
            bools(17)
        ));
        assert_eq!(
            e.to_string(),
            "type `t`: a Smart Device may have at most 16 parameters, found 17"
        );
        // 16 is fine, and a plain buffer may have more.
        Catalog::from_json(&format!(
            r#"{{"t": {{"device_id": 1, "params": [{}]}}}}"#,
            bools(16)
        ))
        .unwrap();
        Catalog::from_json(&format!(r#"{{"t": {{"params": [{}]}}}}"#, bools(40))).unwrap();
    }

    #[test]
    fn error_param_id_out_of_range() {
        let e =
            err(r#"{"t": {"device_id": 1, "params": [{"name": "p", "type": "bool", "id": 16}]}}"#);
        assert_eq!(
            e.to_string(),
            "type `t`, parameter `p`: id 16 is out of range for a Smart Device (0..16)"
        );
        // A plain buffer may use any u8 id.
        Catalog::from_json(r#"{"t": {"params": [{"name": "p", "type": "bool", "id": 200}]}}"#)
            .unwrap();
    }

    #[test]
    fn error_duplicate_param_name() {
        let e = err(
            r#"{"t": {"params": [{"name": "p", "type": "bool"}, {"name": "p", "type": "int"}]}}"#,
        );
        assert_eq!(e.to_string(), "type `t`: duplicate parameter name `p`");
    }

    #[test]
    fn error_duplicate_param_id() {
        let e = err(
            r#"{"t": {"params": [{"name": "a", "type": "bool", "id": 1}, {"name": "b", "type": "bool"}]}}"#,
        );
        assert_eq!(
            e.to_string(),
            "type `t`: parameters `a` and `b` have the same id 1"
        );
    }

    #[test]
    fn error_invalid_bounds() {
        let e =
            err(r#"{"t": {"params": [{"name": "p", "type": "float", "lower": 1, "upper": -1}]}}"#);
        assert_eq!(
            e.to_string(),
            "type `t`, parameter `p`: lower bound 1 is above upper bound -1"
        );
    }

    #[test]
    fn error_duplicate_device_id() {
        let e = err(r#"{"a": {"device_id": 3}, "b": {"device_id": 4}, "c": {"device_id": 3}}"#);
        assert_eq!(e.to_string(), "types `a` and `c` have the same device_id 3");
    }

    #[test]
    fn error_duplicate_type_name() {
        let e = err(r#"{"a": {"params": []}, "a": {"device_id": 3}}"#);
        assert_eq!(e.to_string(), "duplicate type name `a`");
    }
}
