//! Device buffers: an IP block's parameters in a catalog-driven `repr(C)`
//! layout that the plugin, the host and outside processes share, and the
//! Smart Device messages that carry them.
//!
//! Since SDK 1.1. The code lives in the `bitstream-buffer` crate (whose
//! documentation describes catalogs, layouts, segments and messages); this
//! module re-exports it whole, so every `bitstream_sdk::buffer::...` path of
//! SDK 1.1 names the same item (`sdk/tests/buffer_paths_1_1.rs` holds that).
//! Plugin code reaches its block's buffer with
//! [`Subcontroller::buffer`](crate::Subcontroller::buffer); a buffer error
//! converts into a route's [`Error`](crate::Error) with `?`.
//!
//! Behind the SDK's default `buffer` feature: a plugin that uses no buffer
//! may build without it (`default-features = false`).
//!
//! ```
//! use std::sync::Arc;
//! use bitstream_sdk::buffer::catalog::Catalog;
//! use bitstream_sdk::buffer::device::{Buffer, BufferType};
//!
//! let catalog = Catalog::from_json(r#"{"meter": {"params": [{"name": "power", "type": "double"}]}}"#)
//!     .unwrap();
//! let ty = Arc::new(BufferType::from_catalog(&catalog, "meter").unwrap());
//! let buffer = Buffer::new_local(&ty).unwrap();
//! buffer.set("power", 0.75).unwrap();
//! assert_eq!(buffer.to_json().unwrap()["power"], 0.75);
//! ```

pub use bitstream_buffer::*;
