//! The bitstream emulator engine.
//!
//! - [`loader`] finds and loads plugin shared objects (abi_stable headers,
//!   version policy, copies to unique paths).
//! - [`plugin`] wraps a loaded plugin's four components in safe types.
//! - [`checks`] validates plugins and configs; the validator and the
//!   engine's startup both use it.
//! - [`config`] reads `emulators/config.json`.
//! - [`fsm`] is the one state-machine engine that runs every plugin's machine.
//! - [`report`] holds the check results.
//! - [`engine`] runs an emulator: blocks, signal chain, pulses and events.
//! - [`http`] serves an emulator over HTTP.
//!
//! The `bitstream-emulator` binary (`src/bin/bitstream-emulator/`) is the
//! command line; its `buffer` and `message` tools live there, not here.

pub mod buffers;
pub mod checks;
pub mod config;
pub mod engine;
pub mod fsm;
pub mod http;
pub mod loader;
pub mod plugin;
pub mod report;

#[cfg(test)]
mod test_machines;
