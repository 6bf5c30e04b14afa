//! [`Buffer`] and [`DeviceBuffer`]: a device type's C struct in a segment
//! (heap or POSIX shared memory), read and written by offset under the
//! segment's robust, recursive mutex.
//!
//! Every operation takes the lock and checks the valid flag first: on a
//! buffer marked invalid it fails with "device does not exist (marked as
//! invalid)". Values are copied in and out with `ptr::copy_nonoverlapping`;
//! no Rust reference to the segment's bytes is ever formed, so other
//! processes may map the same bytes.
//!
//! ```
//! use std::sync::Arc;
//! use bitstream_buffer::catalog::Catalog;
//! use bitstream_buffer::device::{Buffer, BufferType};
//! use bitstream_buffer::value::ParamValue;
//!
//! let catalog = Catalog::from_json(
//!     r#"{"motor": {"params": [
//!         {"name": "pos", "type": "double", "lower": -1, "upper": 1},
//!         {"name": "target", "type": "int32", "readable": false, "writeable": true}]}}"#,
//! )
//! .unwrap();
//! let ty = Arc::new(BufferType::from_catalog(&catalog, "motor").unwrap());
//! let buffer = Buffer::new_local(&ty).unwrap();
//! buffer.set("pos", 0.5).unwrap();
//! assert_eq!(buffer.get("pos").unwrap(), ParamValue::Float(0.5));
//! let warning = buffer.set("pos", 7.0).unwrap();
//! assert!(warning.is_some()); // clamped to 1
//! buffer.write("target", 42).unwrap();
//! assert!(buffer.get("target").is_err()); // not readable
//! ```
//!
//! - `buffer`: [`Buffer`], made, attached and closed; its lock and valid flag.
//! - `types`: [`BufferType`], a catalog type ready for buffers; [`ParamHandle`].
//! - `param`: `get`, `set` and `write` of a parameter, by name, handle or JSON.
//! - `smart`: [`DeviceBuffer`], a Smart Device's control block and metrics.
//! - `messages`: Smart Device messages built from and applied to a buffer.
//! - `error`: [`BufferError`].

#[allow(unsafe_code)] // unaligned copies in and out of a checked segment
mod buffer;
mod error;
mod messages;
mod param;
mod smart;
mod types;

pub use buffer::{Buffer, Transaction};
pub use error::BufferError;
pub use messages::{MAX_INTERVAL_MS, MIN_INTERVAL_MS};
pub use smart::{DeviceBuffer, DeviceUid, PendingBits};
pub use types::{BufferType, ParamHandle};

#[cfg(test)]
#[allow(unsafe_code)] // views of a segment by address, as the host makes them
mod tests;
