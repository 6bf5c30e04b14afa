//! Device buffers: an IP block's parameters in a catalog-driven `repr(C)`
//! layout that the plugin, the host and outside processes share, and the
//! Smart Device messages that carry them (`../shared/reference/device-buffers.md`).
//!
//! - [`catalog`]: catalogs, parameter types and the C layout of a buffer type.
//! - [`clock`]: the time Smart Device stamps hold, optionally cached by a
//!   ticker thread so a stamp costs one load.
//! - [`value`]: one parameter's value, as bytes, as Rust and as JSON.
//! - [`segment`]: the memory of one buffer (heap or POSIX shared memory),
//!   its header and its robust, recursive, process-shared mutex.
//! - [`device`]: [`Buffer`](device::Buffer) and
//!   [`DeviceBuffer`](device::DeviceBuffer), every operation on a buffer.
//! - [`store`]: buffers keyed by (type, uid) or Smart Device UID.
//! - [`message`]: Smart Device frames, checksums and COBS framing.

pub mod catalog;
pub mod clock;
pub mod device;
pub mod message;
pub mod segment;
pub mod store;
pub mod value;

/// Helpers the buffer modules' tests share.
#[cfg(test)]
mod test_support {
    /// `fixtures/buffers/vectors.json`: the reference's byte-exact vectors.
    pub fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../../fixtures/buffers/vectors.json"))
            .expect("vectors.json is JSON")
    }

    /// Bytes from hex pairs separated by whitespace, the form of
    /// `fixtures/buffers/vectors.json`.
    pub fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect()
    }
}
