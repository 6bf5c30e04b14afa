//! Parameter types: the C scalars a parameter may have and the (possibly
//! nested) vectors of them, as catalogs spell them (`double`, `char[253]`,
//! `uint64[8][8]`).

use std::fmt;
use std::str::FromStr;

/// Largest size in bytes of one parameter (keeps layout arithmetic exact).
pub const MAX_PARAM_SIZE: usize = 1 << 32;

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
