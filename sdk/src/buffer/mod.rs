//! Device buffers: an IP block's parameters in a catalog-driven `repr(C)`
//! layout that the plugin, the host and outside processes share, and the
//! Smart Device messages that carry them (`../shared/reference/device-buffers.md`).
//!
//! - [`catalog`]: catalogs, parameter types and the C layout of a buffer type.
//! - [`message`]: Smart Device frames, checksums and COBS framing.

pub mod catalog;
pub mod message;
