//! The one definition of the Smart Device messages: each type's id, name
//! and payload fields, in wire order, written once in the table at the end
//! of this file. Everything else is derived from that table:
//!
//! - [`MessageType`]: ids, names, allowed payload lengths, fields;
//! - [`Message`]: one variant per type, one member per field;
//! - the payload's encoding and decoding (used by the framing);
//! - the fields as data ([`MessageType::fields`], [`Message::field_values`],
//!   [`Message::from_fields`]), from which tools build other forms, such
//!   as the JSON of the `message` command-line tool.

use std::fmt;
use std::mem::size_of;

/// Largest payload a frame can carry (its length is one byte).
pub const MAX_PAYLOAD: usize = 255;

/// Bytes a frame adds around its payload: type, length and checksum.
pub const FRAME_OVERHEAD: usize = 3;

/// The most value bytes one `DEV_WRITE` or `DEV_DATA` carries: its payload
/// less its bitmap.
pub(crate) const MAX_VALUES: usize = {
    let (min, max) = MessageType::DevData.payload_len();
    max - min
};

/// The parameter ids whose bits are set in a message's `bitmap`, in
/// ascending order: the order their values take in a payload.
///
/// ```
/// use bitstream_buffer::message::bitmap_ids;
///
/// assert_eq!(bitmap_ids(0b1000_0101).collect::<Vec<_>>(), [0, 2, 7]);
/// assert_eq!(bitmap_ids(0).count(), 0);
/// ```
pub fn bitmap_ids(bitmap: u16) -> impl Iterator<Item = u8> {
    (0..16u8).filter(move |id| bitmap & (1 << id) != 0)
}

// ---------------------------------------------------------------------------
// Fields
// ---------------------------------------------------------------------------

/// One field of a message type's payload ([`MessageType::fields`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field's name, as in [`Message`] (`"interval_ms"`).
    pub name: &'static str,
    /// What the field holds.
    pub kind: FieldKind,
    /// Its least and greatest length in bytes on the wire (equal for every
    /// kind but [`FieldKind::Values`]).
    pub len: (usize, usize),
}

impl Field {
    /// The greatest value of a fixed-size integer field (`u16::MAX` for a
    /// two-byte field); `0` for variable-length fields.
    pub const fn max_int(&self) -> u64 {
        if self.len.0 != self.len.1 || self.len.0 == 0 || self.len.0 > 8 {
            0
        } else {
            u64::MAX >> (64 - 8 * self.len.0)
        }
    }
}

/// What a message field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// A bitmap of parameter ids (bit `i`: the parameter with id `i`).
    Params,
    /// An unsigned integer, little-endian.
    Int,
    /// The bitmap of the parameters whose values follow ([`FieldKind::Values`]).
    ValueBitmap,
    /// The values of the preceding bitmap's parameters: each one's bytes,
    /// in ascending id order (see `DeviceType::split_values`).
    Values,
    /// An [`ErrorCode`].
    Code,
}

/// A field's value, as [`Message::field_values`] gives it and
/// [`Message::from_fields`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// A [`FieldKind::Params`], [`FieldKind::Int`] or [`FieldKind::ValueBitmap`].
    UInt(u64),
    /// A [`FieldKind::Values`].
    Bytes(Vec<u8>),
    /// A [`FieldKind::Code`].
    Code(ErrorCode),
}

/// A value given to [`Message::from_fields`] that does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` of a {} message {reason}", msg_type.name())]
pub struct FieldError {
    /// The message's type.
    pub msg_type: MessageType,
    /// The field.
    pub field: &'static str,
    /// What is wrong with the value.
    pub reason: String,
}

/// How one field's Rust type is written, read and given as a [`FieldValue`].
trait Wire: Sized {
    /// Least and greatest length in bytes on the wire.
    const LEN: (usize, usize);
    fn put(&self, put: &mut impl FnMut(&[u8]));
    fn take(reader: &mut Reader<'_>) -> Result<Self, MessageError>;
    fn to_field(&self) -> FieldValue;
    /// The value, or why it does not fit (a phrase after the field's name).
    fn from_field(value: FieldValue) -> Result<Self, String>;
}

macro_rules! wire_uint {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            const LEN: (usize, usize) = (size_of::<$t>(), size_of::<$t>());

            #[inline]
            fn put(&self, put: &mut impl FnMut(&[u8])) {
                put(&self.to_le_bytes());
            }

            #[inline]
            fn take(reader: &mut Reader<'_>) -> Result<Self, MessageError> {
                reader.array().map(<$t>::from_le_bytes)
            }

            fn to_field(&self) -> FieldValue {
                FieldValue::UInt(u64::from(*self))
            }

            fn from_field(value: FieldValue) -> Result<Self, String> {
                match value {
                    FieldValue::UInt(n) => <$t>::try_from(n)
                        .map_err(|_| format!("must be an integer 0..={}, found {n}", <$t>::MAX)),
                    other => Err(format!("must be an integer, found {other:?}")),
                }
            }
        }
    )*};
}
wire_uint!(u8, u16, u64);

impl Wire for Vec<u8> {
    const LEN: (usize, usize) = (0, MAX_PAYLOAD);

    #[inline]
    fn put(&self, put: &mut impl FnMut(&[u8])) {
        put(self);
    }

    fn take(reader: &mut Reader<'_>) -> Result<Self, MessageError> {
        Ok(reader.rest().to_vec())
    }

    fn to_field(&self) -> FieldValue {
        FieldValue::Bytes(self.clone())
    }

    fn from_field(value: FieldValue) -> Result<Self, String> {
        match value {
            FieldValue::Bytes(bytes) => Ok(bytes),
            other => Err(format!("must be bytes, found {other:?}")),
        }
    }
}

impl Wire for ErrorCode {
    const LEN: (usize, usize) = (1, 1);

    fn put(&self, put: &mut impl FnMut(&[u8])) {
        put(&[self.code()]);
    }

    fn take(reader: &mut Reader<'_>) -> Result<Self, MessageError> {
        let [code] = reader.array()?;
        ErrorCode::try_from(code)
    }

    fn to_field(&self) -> FieldValue {
        FieldValue::Code(*self)
    }

    fn from_field(value: FieldValue) -> Result<Self, String> {
        match value {
            FieldValue::Code(code) => Ok(code),
            other => Err(format!("must be an error code, found {other:?}")),
        }
    }
}

/// Reads a payload's fields in order.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        match self.rest.split_first_chunk::<N>() {
            Some((bytes, rest)) => {
                self.rest = rest;
                Ok(*bytes)
            }
            None => Err(MessageError::Truncated {
                needed: N,
                found: self.rest.len(),
            }),
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// Field `name` of `msg_type`, from `value`.
fn field_from<T: Wire, E: From<FieldError>>(
    msg_type: MessageType,
    name: &'static str,
    value: &mut impl FnMut(&'static Field) -> Result<FieldValue, E>,
) -> Result<T, E> {
    let field = msg_type
        .fields()
        .iter()
        .find(|f| f.name == name)
        .expect("every field of the table is in MessageType::fields");
    T::from_field(value(field)?).map_err(|reason| {
        E::from(FieldError {
            msg_type,
            field: name,
            reason,
        })
    })
}

// ---------------------------------------------------------------------------
// Error codes and errors
// ---------------------------------------------------------------------------

/// The code carried by an `ERROR` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// `OK` (0x00).
    Ok = 0x00,
    /// `BACKOFF` (0xFA).
    Backoff = 0xFA,
    /// `INVALID_TYPE` (0xFB).
    InvalidType = 0xFB,
    /// `BUFFER_OVERFLOW` (0xFC).
    BufferOverflow = 0xFC,
    /// `UNEXPECTED_DELIMITER` (0xFD).
    UnexpectedDelimiter = 0xFD,
    /// `BAD_CHECKSUM` (0xFE).
    BadChecksum = 0xFE,
    /// `GENERIC_ERROR` (0xFF).
    GenericError = 0xFF,
}

impl ErrorCode {
    /// The code byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The error code for a wire byte, or `None` if the byte names no code.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::Ok,
            0xFA => Self::Backoff,
            0xFB => Self::InvalidType,
            0xFC => Self::BufferOverflow,
            0xFD => Self::UnexpectedDelimiter,
            0xFE => Self::BadChecksum,
            0xFF => Self::GenericError,
            _ => return None,
        })
    }

    /// The protocol's name for the code, e.g. `"BAD_CHECKSUM"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Backoff => "BACKOFF",
            Self::InvalidType => "INVALID_TYPE",
            Self::BufferOverflow => "BUFFER_OVERFLOW",
            Self::UnexpectedDelimiter => "UNEXPECTED_DELIMITER",
            Self::BadChecksum => "BAD_CHECKSUM",
            Self::GenericError => "GENERIC_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.code())
    }
}

impl TryFrom<u8> for ErrorCode {
    type Error = MessageError;

    fn try_from(code: u8) -> Result<Self, MessageError> {
        Self::from_code(code).ok_or(MessageError::UnknownErrorCode(code))
    }
}

/// Why a message could not be framed, encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The payload does not fit the one-byte length field.
    #[error("payload of {len} bytes is too long: a frame carries at most {MAX_PAYLOAD}")]
    PayloadTooLong {
        /// The payload's length.
        len: usize,
    },
    /// A zero byte inside the COBS data (only one trailing delimiter is allowed).
    #[error("stray zero byte at offset {offset} inside the COBS data")]
    StrayZero {
        /// Offset of the zero byte in the input.
        offset: usize,
    },
    /// The COBS data is malformed (empty, or a code byte points past its end).
    #[error("bad COBS encoding: {reason}")]
    BadCobs {
        /// What the COBS decoder reported.
        reason: String,
    },
    /// The frame ends before its header or before its payload and checksum.
    #[error("truncated frame: {found} bytes, needs {needed}")]
    Truncated {
        /// Bytes the frame needs (3, or 3 + the payload length).
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// Bytes follow the checksum.
    #[error("over-long frame: {found} bytes, expected {expected} (bytes after the checksum)")]
    OverLong {
        /// Bytes the frame should have (3 + the payload length).
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The checksum byte is not the XOR of the preceding bytes.
    #[error("bad checksum: expected 0x{expected:02X}, found 0x{found:02X}")]
    BadChecksum {
        /// The XOR of the bytes before the checksum.
        expected: u8,
        /// The checksum byte in the frame.
        found: u8,
    },
    /// The type byte names no message type.
    #[error("unknown message type 0x{0:02X}")]
    UnknownType(u8),
    /// The payload length does not suit the message type.
    #[error("{msg_type} payload must be {} bytes, found {found}", len_range(*min, *max))]
    BadPayloadLength {
        /// The message's type.
        msg_type: MessageType,
        /// Least payload length the type allows.
        min: usize,
        /// Greatest payload length the type allows.
        max: usize,
        /// The payload length in the frame.
        found: usize,
    },
    /// An `ERROR` message carries an unknown code.
    #[error("unknown error code 0x{0:02X}")]
    UnknownErrorCode(u8),
}

fn len_range(min: usize, max: usize) -> String {
    if min == max {
        format!("exactly {min}")
    } else if max == MAX_PAYLOAD {
        format!("at least {min}")
    } else {
        format!("{min} to {max}")
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.id())
    }
}

impl TryFrom<u8> for MessageType {
    type Error = MessageError;

    fn try_from(id: u8) -> Result<Self, MessageError> {
        Self::from_id(id).ok_or(MessageError::UnknownType(id))
    }
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// Defines [`MessageType`] and [`Message`] and everything derived from
/// them, from one entry per message type:
/// `Variant = id, "NAME", "type doc" { field: Type as FieldKind, ... };`
/// (no braces for an empty payload; fields in wire order).
macro_rules! messages {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $id:literal, $name:literal, $type_doc:literal
        $({
            $( $(#[doc = $field_doc:literal])* $field:ident : $ty:ty as $kind:ident ),+ $(,)?
        })?;
    )+) => {
        /// The type byte of a Smart Device message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum MessageType {
            $( #[doc = $type_doc] $variant = $id, )+
        }

        impl MessageType {
            /// Every message type, in id order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$variant),+];

            /// The type byte on the wire.
            pub const fn id(self) -> u8 {
                self as u8
            }

            /// The type for a wire byte, or `None` if the byte names no type.
            pub const fn from_id(id: u8) -> Option<Self> {
                Some(match id {
                    $( $id => Self::$variant, )+
                    _ => return None,
                })
            }

            /// The protocol's name for the type, e.g. `"SUB_REQ"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )+
                }
            }

            /// The payload's fields, in wire order.
            pub const fn fields(self) -> &'static [Field] {
                match self {
                    $( Self::$variant => {
                        const FIELDS: &[Field] = &[$($(Field {
                            name: stringify!($field),
                            kind: FieldKind::$kind,
                            len: <$ty as Wire>::LEN,
                        },)+)?];
                        FIELDS
                    } )+
                }
            }

            /// The payload lengths the type allows: `(min, max)`, both
            /// inclusive (the sums of its fields' lengths).
            pub const fn payload_len(self) -> (usize, usize) {
                let fields = self.fields();
                let (mut min, mut max, mut i) = (0, 0, 0);
                while i < fields.len() {
                    min += fields[i].len.0;
                    max += fields[i].len.1;
                    i += 1;
                }
                (min, if max > MAX_PAYLOAD { MAX_PAYLOAD } else { max })
            }
        }

        /// A Smart Device message.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $(
                $(#[doc = $doc])*
                $variant $({ $( $(#[doc = $field_doc])* $field: $ty, )+ })?,
            )+
        }

        impl Message {
            /// The message's type.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $( Self::$variant $({ $($field: _,)+ })? => MessageType::$variant, )+
                }
            }

            /// The payload's fields, in wire order (their names and kinds:
            /// [`MessageType::fields`]).
            ///
            /// ```
            /// use bitstream_buffer::message::{FieldValue, Message};
            ///
            /// let m = Message::SubReq { params: 0b11, interval_ms: 40 };
            /// assert_eq!(m.field_values(), [FieldValue::UInt(3), FieldValue::UInt(40)]);
            /// ```
            pub fn field_values(&self) -> Vec<FieldValue> {
                match self {
                    $( Self::$variant $({ $($field,)+ })? => vec![$($(Wire::to_field($field),)+)?], )+
                }
            }

            /// A message of `msg_type` whose fields `value` gives, asked for
            /// each of [`MessageType::fields`] in order; a value that does
            /// not fit its field is a [`FieldError`].
            ///
            /// ```
            /// use bitstream_buffer::message::{FieldError, FieldValue, Message, MessageType};
            ///
            /// let m = Message::from_fields(MessageType::HbReq, |_| {
            ///     Ok::<_, FieldError>(FieldValue::UInt(7))
            /// });
            /// assert_eq!(m, Ok(Message::HbReq { id: 7 }));
            /// ```
            pub fn from_fields<E: From<FieldError>>(
                msg_type: MessageType,
                mut value: impl FnMut(&'static Field) -> Result<FieldValue, E>,
            ) -> Result<Message, E> {
                let _ = &mut value;
                Ok(match msg_type {
                    $( MessageType::$variant => Self::$variant $({ $(
                        $field: field_from::<$ty, E>(msg_type, stringify!($field), &mut value)?,
                    )+ })?, )+
                })
            }

            /// Hands each field of the payload, in wire order, to `put`, as
            /// its little-endian bytes.
            pub(super) fn payload_parts(&self, mut put: impl FnMut(&[u8])) {
                let _ = &mut put;
                match self {
                    $( Self::$variant $({ $($field,)+ })? => { $($( Wire::put($field, &mut put); )+)? } )+
                }
            }

            /// The message of `msg_type` whose payload (of a length the type
            /// allows) is `payload`.
            pub(super) fn from_payload(
                msg_type: MessageType,
                payload: &[u8],
            ) -> Result<Message, MessageError> {
                let mut reader = Reader { rest: payload };
                let _ = &mut reader;
                Ok(match msg_type {
                    $( MessageType::$variant => Self::$variant $({ $(
                        $field: <$ty as Wire>::take(&mut reader)?,
                    )+ })?, )+
                })
            }
        }
    };
}

messages! {
    /// `PING`.
    Ping = 0x10, "PING", "`PING` (0x10): empty payload.";
    /// `SUB_REQ`: subscribe to `params` every `interval_ms` (0, 0 unsubscribes).
    SubReq = 0x11, "SUB_REQ", "`SUB_REQ` (0x11): subscription request." {
        /// Bitmap of parameter ids.
        params: u16 as Params,
        /// Update interval in milliseconds.
        interval_ms: u16 as Int,
    };
    /// `SUB_RES`: the device's answer to a subscription request.
    SubRes = 0x12, "SUB_RES", "`SUB_RES` (0x12): subscription response." {
        /// Bitmap of subscribed parameter ids.
        params: u16 as Params,
        /// Granted update interval in milliseconds.
        interval_ms: u16 as Int,
        /// The device type id.
        device_id: u16 as Int,
        /// The device's year.
        year: u8 as Int,
        /// The device's random identifier.
        random: u64 as Int,
    };
    /// `DEV_READ`: ask for the parameters in `params`.
    DevRead = 0x13, "DEV_READ", "`DEV_READ` (0x13): read parameters." {
        /// Bitmap of parameter ids.
        params: u16 as Params,
    };
    /// `DEV_WRITE`: set the parameters in `bitmap`.
    DevWrite = 0x14, "DEV_WRITE", "`DEV_WRITE` (0x14): write parameters." {
        /// Bitmap of parameter ids.
        bitmap: u16 as ValueBitmap,
        /// The set parameters' bytes in ascending id order, raw.
        values: Vec<u8> as Values,
    };
    /// `DEV_DATA`: the device's values for the parameters in `bitmap`.
    DevData = 0x15, "DEV_DATA", "`DEV_DATA` (0x15): parameter values from the device." {
        /// Bitmap of parameter ids.
        bitmap: u16 as ValueBitmap,
        /// The set parameters' bytes in ascending id order, raw.
        values: Vec<u8> as Values,
    };
    /// `DEV_DISABLE`.
    DevDisable = 0x16, "DEV_DISABLE", "`DEV_DISABLE` (0x16): empty payload.";
    /// `HB_REQ`: heartbeat request.
    HbReq = 0x17, "HB_REQ", "`HB_REQ` (0x17): heartbeat request." {
        /// Heartbeat id, echoed in the response.
        id: u8 as Int,
    };
    /// `HB_RES`: heartbeat response.
    HbRes = 0x18, "HB_RES", "`HB_RES` (0x18): heartbeat response." {
        /// The id of the request answered.
        id: u8 as Int,
    };
    /// `ERROR`.
    Error = 0xFF, "ERROR", "`ERROR` (0xFF): an [`ErrorCode`]." {
        /// What went wrong.
        code: ErrorCode as Code,
    };
}
