//! Smart Device messages: frames, checksums and COBS framing.
//!
//! A frame is `[type u8][payload length u8][payload 0..=255][checksum u8]`,
//! where the checksum is the XOR of every preceding byte and all values are
//! little-endian and unpadded. On the wire a frame is COBS-encoded (the
//! [`cobs`] crate) and followed by one `0x00` delimiter
//! (`../shared/reference/device-buffers.md`, "Smart Device messages").
//!
//! Decoding is strict: every malformed input is refused with its own
//! [`MessageError`] variant.

use std::fmt;

/// Largest payload a frame can carry (its length is one byte).
pub const MAX_PAYLOAD: usize = 255;

/// Bytes a frame adds around its payload: type, length and checksum.
pub const FRAME_OVERHEAD: usize = 3;

/// The type byte of a Smart Device message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// `PING` (0x10): empty payload.
    Ping = 0x10,
    /// `SUB_REQ` (0x11): subscription request.
    SubReq = 0x11,
    /// `SUB_RES` (0x12): subscription response.
    SubRes = 0x12,
    /// `DEV_READ` (0x13): read parameters.
    DevRead = 0x13,
    /// `DEV_WRITE` (0x14): write parameters.
    DevWrite = 0x14,
    /// `DEV_DATA` (0x15): parameter values from the device.
    DevData = 0x15,
    /// `DEV_DISABLE` (0x16): empty payload.
    DevDisable = 0x16,
    /// `HB_REQ` (0x17): heartbeat request.
    HbReq = 0x17,
    /// `HB_RES` (0x18): heartbeat response.
    HbRes = 0x18,
    /// `ERROR` (0xFF): an [`ErrorCode`].
    Error = 0xFF,
}

impl MessageType {
    /// The type byte on the wire.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The type for a wire byte, or `None` if the byte names no type.
    pub const fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0x10 => Self::Ping,
            0x11 => Self::SubReq,
            0x12 => Self::SubRes,
            0x13 => Self::DevRead,
            0x14 => Self::DevWrite,
            0x15 => Self::DevData,
            0x16 => Self::DevDisable,
            0x17 => Self::HbReq,
            0x18 => Self::HbRes,
            0xFF => Self::Error,
            _ => return None,
        })
    }

    /// The protocol's name for the type, e.g. `"SUB_REQ"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ping => "PING",
            Self::SubReq => "SUB_REQ",
            Self::SubRes => "SUB_RES",
            Self::DevRead => "DEV_READ",
            Self::DevWrite => "DEV_WRITE",
            Self::DevData => "DEV_DATA",
            Self::DevDisable => "DEV_DISABLE",
            Self::HbReq => "HB_REQ",
            Self::HbRes => "HB_RES",
            Self::Error => "ERROR",
        }
    }

    /// The payload lengths the type allows: `(min, max)`, both inclusive.
    pub const fn payload_len(self) -> (usize, usize) {
        match self {
            Self::Ping | Self::DevDisable => (0, 0),
            Self::SubReq => (4, 4),
            Self::SubRes => (15, 15),
            Self::DevRead => (2, 2),
            Self::DevWrite | Self::DevData => (2, MAX_PAYLOAD),
            Self::HbReq | Self::HbRes | Self::Error => (1, 1),
        }
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

/// A Smart Device message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `PING`.
    Ping,
    /// `SUB_REQ`: subscribe to `params` every `interval_ms` (0, 0 unsubscribes).
    SubReq {
        /// Bitmap of parameter ids.
        params: u16,
        /// Update interval in milliseconds.
        interval_ms: u16,
    },
    /// `SUB_RES`: the device's answer to a subscription request.
    SubRes {
        /// Bitmap of subscribed parameter ids.
        params: u16,
        /// Granted update interval in milliseconds.
        interval_ms: u16,
        /// The device type id.
        device_id: u16,
        /// The device's year.
        year: u8,
        /// The device's random identifier.
        random: u64,
    },
    /// `DEV_READ`: ask for the parameters in `params`.
    DevRead {
        /// Bitmap of parameter ids.
        params: u16,
    },
    /// `DEV_WRITE`: set the parameters in `bitmap`.
    DevWrite {
        /// Bitmap of parameter ids.
        bitmap: u16,
        /// The set parameters' bytes in ascending id order, raw.
        values: Vec<u8>,
    },
    /// `DEV_DATA`: the device's values for the parameters in `bitmap`.
    DevData {
        /// Bitmap of parameter ids.
        bitmap: u16,
        /// The set parameters' bytes in ascending id order, raw.
        values: Vec<u8>,
    },
    /// `DEV_DISABLE`.
    DevDisable,
    /// `HB_REQ`: heartbeat request.
    HbReq {
        /// Heartbeat id, echoed in the response.
        id: u8,
    },
    /// `HB_RES`: heartbeat response.
    HbRes {
        /// The id of the request answered.
        id: u8,
    },
    /// `ERROR`.
    Error {
        /// What went wrong.
        code: ErrorCode,
    },
}

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

/// XOR of all bytes: the frame checksum.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

impl Message {
    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Ping => MessageType::Ping,
            Self::SubReq { .. } => MessageType::SubReq,
            Self::SubRes { .. } => MessageType::SubRes,
            Self::DevRead { .. } => MessageType::DevRead,
            Self::DevWrite { .. } => MessageType::DevWrite,
            Self::DevData { .. } => MessageType::DevData,
            Self::DevDisable => MessageType::DevDisable,
            Self::HbReq { .. } => MessageType::HbReq,
            Self::HbRes { .. } => MessageType::HbRes,
            Self::Error { .. } => MessageType::Error,
        }
    }

    /// The payload bytes (not yet checked against [`MAX_PAYLOAD`]).
    pub fn payload(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        self.payload_parts(|part| payload.extend_from_slice(part));
        payload
    }

    /// Hands each little-endian field of the payload, in order, to `put`:
    /// the one place the wire layout of every message type is written down.
    fn payload_parts(&self, mut put: impl FnMut(&[u8])) {
        match self {
            Self::Ping | Self::DevDisable => {}
            Self::SubReq {
                params,
                interval_ms,
            } => {
                put(&params.to_le_bytes());
                put(&interval_ms.to_le_bytes());
            }
            Self::SubRes {
                params,
                interval_ms,
                device_id,
                year,
                random,
            } => {
                put(&params.to_le_bytes());
                put(&interval_ms.to_le_bytes());
                put(&device_id.to_le_bytes());
                put(&[*year]);
                put(&random.to_le_bytes());
            }
            Self::DevRead { params } => put(&params.to_le_bytes()),
            Self::DevWrite { bitmap, values } | Self::DevData { bitmap, values } => {
                put(&bitmap.to_le_bytes());
                put(values);
            }
            Self::HbReq { id } | Self::HbRes { id } => put(&[*id]),
            Self::Error { code } => put(&[code.code()]),
        }
    }

    /// The raw frame: `[type][payload len][payload][checksum]`.
    ///
    /// Fails with [`MessageError::PayloadTooLong`] if the payload exceeds
    /// [`MAX_PAYLOAD`] bytes.
    pub fn to_frame(&self) -> Result<Vec<u8>, MessageError> {
        let mut frame = [0u8; MAX_PAYLOAD + FRAME_OVERHEAD];
        let n = self.frame_into(&mut frame)?;
        Ok(frame[..n].to_vec())
    }

    /// The COBS encoding of the frame, without the trailing `0x00` delimiter.
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        // The frame on the stack, the COBS output in one exact allocation.
        let mut frame = [0u8; MAX_PAYLOAD + FRAME_OVERHEAD];
        let n = self.frame_into(&mut frame)?;
        let mut out = vec![0u8; cobs::max_encoding_length(n)];
        let len = cobs::encode(&frame[..n], &mut out);
        out.truncate(len);
        Ok(out)
    }

    /// Writes the frame into `frame`; answers its length.
    fn frame_into(
        &self,
        frame: &mut [u8; MAX_PAYLOAD + FRAME_OVERHEAD],
    ) -> Result<usize, MessageError> {
        let mut len = 0;
        self.payload_parts(|part| len += part.len());
        if len > MAX_PAYLOAD {
            return Err(MessageError::PayloadTooLong { len });
        }
        let mut n = 2;
        self.payload_parts(|part| {
            frame[n..n + part.len()].copy_from_slice(part);
            n += part.len();
        });
        frame[0] = self.message_type().id();
        frame[1] = len as u8;
        frame[n] = checksum(&frame[..n]);
        Ok(n + 1)
    }

    /// The COBS encoding of the frame followed by the `0x00` delimiter, as
    /// sent on the wire.
    pub fn encode_delimited(&self) -> Result<Vec<u8>, MessageError> {
        let mut out = self.encode()?;
        out.push(0);
        Ok(out)
    }

    /// Decodes COBS data (without delimiter, or with exactly one trailing
    /// `0x00`) into a message, strictly (see [`Message::from_frame`]).
    pub fn decode(data: &[u8]) -> Result<Self, MessageError> {
        let body = data.strip_suffix(&[0]).unwrap_or(data);
        if let Some(offset) = body.iter().position(|&b| b == 0) {
            return Err(MessageError::StrayZero { offset });
        }
        if body.is_empty() {
            return Err(MessageError::BadCobs {
                reason: "no data".into(),
            });
        }
        // Into a stack frame (a COBS decoding is never longer than its
        // input); an over-long input is still decoded, to be reported as such.
        let mut stack = [0u8; 2 * (MAX_PAYLOAD + FRAME_OVERHEAD)];
        let mut heap = Vec::new();
        let out: &mut [u8] = if body.len() <= stack.len() {
            &mut stack
        } else {
            heap.resize(body.len(), 0);
            &mut heap
        };
        let n = cobs::decode(body, out).map_err(|e| MessageError::BadCobs {
            reason: e.to_string(),
        })?;
        Self::from_frame(&out[..n])
    }

    /// Parses a raw frame, refusing truncated or over-long frames, bad
    /// checksums, unknown types and error codes, and payload lengths the
    /// type does not allow.
    pub fn from_frame(frame: &[u8]) -> Result<Self, MessageError> {
        if frame.len() < FRAME_OVERHEAD {
            return Err(MessageError::Truncated {
                needed: FRAME_OVERHEAD,
                found: frame.len(),
            });
        }
        let len = usize::from(frame[1]);
        let total = len + FRAME_OVERHEAD;
        if frame.len() < total {
            return Err(MessageError::Truncated {
                needed: total,
                found: frame.len(),
            });
        }
        if frame.len() > total {
            return Err(MessageError::OverLong {
                expected: total,
                found: frame.len(),
            });
        }
        let expected = checksum(&frame[..total - 1]);
        let found = frame[total - 1];
        if expected != found {
            return Err(MessageError::BadChecksum { expected, found });
        }
        let msg_type = MessageType::try_from(frame[0])?;
        let (min, max) = msg_type.payload_len();
        if len < min || len > max {
            return Err(MessageError::BadPayloadLength {
                msg_type,
                min,
                max,
                found: len,
            });
        }
        let p = &frame[2..2 + len];
        let u16_at = |i: usize| u16::from_le_bytes([p[i], p[i + 1]]);
        Ok(match msg_type {
            MessageType::Ping => Self::Ping,
            MessageType::SubReq => Self::SubReq {
                params: u16_at(0),
                interval_ms: u16_at(2),
            },
            MessageType::SubRes => Self::SubRes {
                params: u16_at(0),
                interval_ms: u16_at(2),
                device_id: u16_at(4),
                year: p[6],
                random: u64::from_le_bytes(p[7..15].try_into().expect("8 bytes")),
            },
            MessageType::DevRead => Self::DevRead { params: u16_at(0) },
            MessageType::DevWrite => Self::DevWrite {
                bitmap: u16_at(0),
                values: p[2..].to_vec(),
            },
            MessageType::DevData => Self::DevData {
                bitmap: u16_at(0),
                values: p[2..].to_vec(),
            },
            MessageType::DevDisable => Self::DevDisable,
            MessageType::HbReq => Self::HbReq { id: p[0] },
            MessageType::HbRes => Self::HbRes { id: p[0] },
            MessageType::Error => Self::Error {
                code: ErrorCode::try_from(p[0])?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::hex;

    /// A frame with a correct checksum appended.
    fn framed(head: &[u8]) -> Vec<u8> {
        let mut f = head.to_vec();
        f.push(checksum(head));
        f
    }

    #[test]
    fn all_vectors() {
        let json = crate::test_support::vectors();
        let vectors = json["messages"].as_array().unwrap();
        assert_eq!(vectors.len(), 17);
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let raw = hex(v["raw"].as_str().unwrap());
            let enc = hex(v["cobs"].as_str().unwrap());
            let msg = Message::from_frame(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(msg.to_frame().unwrap(), raw, "{name}: to_frame");
            assert_eq!(msg.encode().unwrap(), enc, "{name}: encode");
            assert_eq!(Message::decode(&enc).unwrap(), msg, "{name}: decode");
            let mut delimited = enc.clone();
            delimited.push(0);
            assert_eq!(msg.encode_delimited().unwrap(), delimited, "{name}");
            assert_eq!(Message::decode(&delimited).unwrap(), msg, "{name}");
        }
    }

    #[test]
    fn parses_fields() {
        let m = Message::from_frame(&hex(
            "12 0f 03 00 64 00 ff ff ee ef be ad de ef be de c0 f9",
        ))
        .unwrap();
        assert_eq!(
            m,
            Message::SubRes {
                params: 0b11,
                interval_ms: 100,
                device_id: 0xffff,
                year: 0xee,
                random: 0xc0de_beef_dead_beef,
            }
        );
        assert_eq!(
            Message::from_frame(&hex("ff 01 fd 03")).unwrap(),
            Message::Error {
                code: ErrorCode::UnexpectedDelimiter
            }
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Message::from_frame(&[0x10, 0x00]),
            Err(MessageError::Truncated {
                needed: 3,
                found: 2
            })
        );
        let err = Message::from_frame(&hex("11 04 ff ff 80 95")).unwrap_err();
        assert_eq!(
            err,
            MessageError::Truncated {
                needed: 7,
                found: 6
            }
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn over_long() {
        let err = Message::from_frame(&hex("10 00 10 00")).unwrap_err();
        assert_eq!(
            err,
            MessageError::OverLong {
                expected: 3,
                found: 4
            }
        );
    }

    #[test]
    fn bad_checksum() {
        let err = Message::from_frame(&hex("10 00 11")).unwrap_err();
        assert_eq!(
            err,
            MessageError::BadChecksum {
                expected: 0x10,
                found: 0x11
            }
        );
        assert_eq!(err.to_string(), "bad checksum: expected 0x10, found 0x11");
    }

    #[test]
    fn stray_zero() {
        assert_eq!(
            Message::decode(&hex("02 10 00 02 10")),
            Err(MessageError::StrayZero { offset: 2 })
        );
        // Two trailing zeros: only one delimiter is allowed.
        assert_eq!(
            Message::decode(&hex("02 10 02 10 00 00")),
            Err(MessageError::StrayZero { offset: 4 })
        );
    }

    #[test]
    fn bad_cobs() {
        // The code byte claims 5 bytes follow, only 2 do.
        assert!(matches!(
            Message::decode(&hex("06 10 02")),
            Err(MessageError::BadCobs { .. })
        ));
        assert!(matches!(
            Message::decode(&[]),
            Err(MessageError::BadCobs { .. })
        ));
        assert!(matches!(
            Message::decode(&[0]),
            Err(MessageError::BadCobs { .. })
        ));
    }

    #[test]
    fn unknown_type() {
        let err = Message::from_frame(&framed(&[0x42, 0x00])).unwrap_err();
        assert_eq!(err, MessageError::UnknownType(0x42));
        assert!(err.to_string().contains("0x42"), "{err}");
    }

    #[test]
    fn wrong_payload_length() {
        let err = Message::from_frame(&framed(&[0x11, 0x02, 0x01, 0x00])).unwrap_err();
        assert_eq!(
            err,
            MessageError::BadPayloadLength {
                msg_type: MessageType::SubReq,
                min: 4,
                max: 4,
                found: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "SUB_REQ (0x11) payload must be exactly 4 bytes, found 2"
        );
        let err = Message::from_frame(&framed(&[0x14, 0x01, 0x01])).unwrap_err();
        assert!(err.to_string().contains("at least 2"), "{err}");
        assert!(matches!(
            Message::from_frame(&framed(&[0x10, 0x01, 0x01])),
            Err(MessageError::BadPayloadLength { .. })
        ));
    }

    #[test]
    fn unknown_error_code() {
        assert_eq!(
            Message::from_frame(&framed(&[0xff, 0x01, 0x01])),
            Err(MessageError::UnknownErrorCode(0x01))
        );
    }

    #[test]
    fn payload_too_long() {
        let msg = Message::DevWrite {
            bitmap: 1,
            values: vec![0xff; 254],
        };
        assert_eq!(
            msg.to_frame(),
            Err(MessageError::PayloadTooLong { len: 256 })
        );
        assert!(msg.encode().is_err());
        let max = Message::DevData {
            bitmap: 1,
            values: vec![0xff; 253],
        };
        assert_eq!(max.to_frame().unwrap().len(), 258);
    }

    #[test]
    fn ids() {
        for id in 0..=u8::MAX {
            if let Some(t) = MessageType::from_id(id) {
                assert_eq!(t.id(), id);
            }
            if let Some(c) = ErrorCode::from_code(id) {
                assert_eq!(c.code(), id);
            }
        }
        assert_eq!(MessageType::from_id(0x19), None);
    }
}
