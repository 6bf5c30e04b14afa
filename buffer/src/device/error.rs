//! [`BufferError`]: why a buffer operation failed.

use crate::catalog::CatalogError;
use crate::message::MessageType;
use crate::segment::SegmentError;
use crate::value::ValueError;

/// An error of a buffer operation. Every variant names the buffer, and the
/// parameter where there is one.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The valid flag is clear: the owner closed the buffer.
    #[error("buffer `{buffer}`: device does not exist (marked as invalid)")]
    Invalid {
        /// The buffer.
        buffer: String,
    },
    /// The type has no parameter of that name.
    #[error("buffer `{buffer}`: no parameter `{param}` (the type has: {known})")]
    UnknownParam {
        /// The buffer.
        buffer: String,
        /// The name asked for.
        param: String,
        /// The type's parameters, comma-separated.
        known: String,
    },
    /// `get`/`set` of a parameter that is not readable (not in the update block).
    #[error("buffer `{buffer}`: parameter `{param}` is not readable (set \"readable\": true in the catalog)")]
    NotReadable {
        /// The buffer.
        buffer: String,
        /// The parameter.
        param: String,
    },
    /// `write` of a parameter that is not writeable (not in the write block).
    #[error("buffer `{buffer}`: parameter `{param}` is not writeable (set \"writeable\": true in the catalog)")]
    NotWriteable {
        /// The buffer.
        buffer: String,
        /// The parameter.
        param: String,
    },
    /// A value that does not fit the parameter.
    #[error("buffer `{buffer}`: bad value for parameter `{param}`: {source}")]
    BadValue {
        /// The buffer.
        buffer: String,
        /// The parameter.
        param: String,
        /// What is wrong with the value.
        source: Box<ValueError>,
    },
    /// A Smart Device operation on a plain buffer type.
    #[error("buffer `{buffer}`: `{operation}` needs a Smart Device type (one with a device_id); `{type_name}` has none")]
    NotSmartDevice {
        /// The buffer.
        buffer: String,
        /// The operation.
        operation: &'static str,
        /// The buffer's type.
        type_name: String,
    },
    /// A message that does not fit the buffer's type.
    #[error("buffer `{buffer}`: cannot apply {msg_type}: {reason}")]
    BadMessage {
        /// The buffer.
        buffer: String,
        /// The message's type.
        msg_type: MessageType,
        /// Why.
        reason: String,
    },
    /// A catalog that does not have the type asked for.
    #[error("no buffer type `{type_name}` in the catalog (it has: {known})")]
    UnknownType {
        /// The type asked for.
        type_name: String,
        /// The catalog's types, comma-separated.
        known: String,
    },
    /// The segment's stored spec is not a valid catalog.
    #[error("buffer `{buffer}`: its stored type spec is not a valid catalog: {source}")]
    Catalog {
        /// The buffer.
        buffer: String,
        /// The catalog error.
        source: Box<CatalogError>,
    },
    /// Creating, attaching or locking the segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A segment whose data is smaller than its stored type's layout (a
    /// header written by an incompatible program).
    #[error("buffer `{buffer}`: its type needs {type_size} bytes but the segment holds {data_size}; it was not made by this SDK's layout rules: recreate it")]
    LayoutTooLarge {
        /// The buffer.
        buffer: String,
        /// The layout's size.
        type_size: usize,
        /// The segment's data size.
        data_size: usize,
    },
    /// A [`ParamHandle`](super::ParamHandle) made for a buffer of another type.
    #[error("buffer `{buffer}`: the parameter handle belongs to a buffer of another type")]
    ForeignHandle {
        /// The buffer.
        buffer: String,
    },
    /// The block has no buffer (the SDK's `Subcontroller::buffer` says why).
    #[error("no device buffer: {reason}")]
    Unavailable {
        /// Why, and what to do.
        reason: String,
    },
}

/// A lock failure (kept out of line: the hot paths only branch to it).
#[cold]
pub(super) fn lock_error(e: SegmentError) -> BufferError {
    BufferError::Segment(e)
}
