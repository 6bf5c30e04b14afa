//! Errors that plugin code returns to the host.

use std::fmt;

use crate::ffi::{PluginError, TriggerFailure, TriggerFailureKind};
use crate::value::DeserializeError;

/// An error from a route or an event handler, with the HTTP status it maps
/// to when it ends a route call.
///
/// ```
/// use bitstream_sdk::Error;
///
/// let err = Error::conflict("Cannot start ethernet_200g while in state FAULT");
/// assert_eq!(err.status(), 409);
/// assert_eq!(Error::internal("disk on fire").status(), 500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    message: String,
}

impl Error {
    /// An error with any HTTP status.
    pub fn with_status(status: u16, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or fails its schema.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::with_status(400, message)
    }

    /// 404: the thing asked for does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::with_status(404, message)
    }

    /// 409: not allowed in the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::with_status(409, message)
    }

    /// 500: something failed inside the block.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::with_status(500, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for PluginError {
    fn from(err: Error) -> Self {
        PluginError::failed(err.status, err.message)
    }
}

/// A request body that does not fit the route's type is a bad request.
impl From<DeserializeError> for Error {
    fn from(err: DeserializeError) -> Self {
        Error::bad_request(err.to_string())
    }
}

/// A trigger that is not allowed now is a conflict; any other trigger
/// failure is an internal error.
impl From<TriggerError> for Error {
    fn from(err: TriggerError) -> Self {
        let status = match err.kind {
            TriggerFailureKind::NotAllowed => 409,
            TriggerFailureKind::UnknownTrigger | TriggerFailureKind::ConditionFailed => 500,
        };
        Error::with_status(status, err.message)
    }
}

/// Why [`Subcontroller::trigger`](crate::Subcontroller::trigger) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerError {
    /// The kind of failure.
    pub kind: TriggerFailureKind,
    /// The host's message, naming the trigger and the state.
    pub message: String,
}

impl fmt::Display for TriggerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TriggerError {}

impl From<TriggerFailure> for TriggerError {
    fn from(failure: TriggerFailure) -> Self {
        TriggerError {
            kind: failure.kind,
            message: failure.message.into_string(),
        }
    }
}

/// A buffer error in a route: a bad value or a parameter the type lacks is
/// the client's mistake (400 / 404), an invalid buffer a conflict (409),
/// anything else (segment, lock, missing buffer) an internal error.
#[cfg(feature = "buffer")]
impl From<crate::buffer::device::BufferError> for Error {
    fn from(err: crate::buffer::device::BufferError) -> Self {
        use crate::buffer::device::BufferError as B;
        let status = match &err {
            B::BadValue { .. } | B::NotReadable { .. } | B::NotWriteable { .. } => 400,
            B::UnknownParam { .. } => 404,
            B::Invalid { .. } => 409,
            _ => 500,
        };
        Error::with_status(status, err.to_string())
    }
}
