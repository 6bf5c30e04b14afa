//! Smart Device messages: frames, checksums and COBS framing.
//!
//! A frame is `[type u8][payload length u8][payload 0..=255][checksum u8]`,
//! where the checksum is the XOR of every preceding byte and all values are
//! little-endian and unpadded. On the wire a frame is COBS-encoded (the
//! [`cobs`] crate) and followed by one `0x00` delimiter (the crate's
//! `README.md`, "Smart Device messages").
//!
//! Decoding is strict: every malformed input is refused with its own
//! [`MessageError`] variant.
//!
//! - `spec`: the one definition of every message type and its fields, and
//!   everything derived from it ([`MessageType`], [`Message`], [`Field`]).
//! - `frame`: frames, checksums and COBS.

mod frame;
mod spec;

pub use frame::checksum;
pub(crate) use spec::MAX_VALUES;
pub use spec::{
    bitmap_ids, ErrorCode, Field, FieldError, FieldKind, FieldValue, Message, MessageError,
    MessageType, FRAME_OVERHEAD, MAX_PAYLOAD,
};

#[cfg(test)]
mod tests;
