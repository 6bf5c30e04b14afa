//! # bitstream-buffer: device buffers for the bitstream emulator
//!
//! An IP block's parameters (registers, counters, setpoints) in a
//! catalog-driven `repr(C)` layout that the plugin, the host and outside
//! processes (drivers, test harnesses, Python through ctypes) share, and
//! the Smart Device messages that carry them. The design, the catalog
//! format, the layout rules and the wire format are described in this
//! crate's `README.md`.
//!
//! Plugins reach this crate through the SDK (`bitstream_sdk::buffer`
//! re-exports it whole); the engine and outside tools depend on it
//! directly. It depends on no other crate of the workspace.
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

#![warn(missing_docs)]

pub mod catalog;
#[allow(unsafe_code)] // clock_gettime, pthread_atfork
pub mod clock;
pub mod device;
pub mod message;
#[allow(unsafe_code)] // mappings, the process-shared mutex
pub mod segment;
pub mod store;
pub mod value;

/// Helpers the buffer modules' tests share.
#[cfg(test)]
mod test_support {
    /// `fixtures/buffers/vectors.json`: the reference's byte-exact vectors.
    pub fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../fixtures/buffers/vectors.json"))
            .expect("vectors.json is JSON")
    }

    /// The name the test harness gives test `test` of the module at
    /// `module_path` (a `module_path!()`): the path without the crate.
    pub fn test_path(module_path: &str, test: &str) -> String {
        let in_crate = module_path.split_once("::").map_or("", |(_, rest)| rest);
        format!("{in_crate}::{test}")
    }

    /// Bytes from hex pairs separated by whitespace, the form of
    /// `fixtures/buffers/vectors.json`.
    pub fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect()
    }
}
