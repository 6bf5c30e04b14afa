//! The bitstream emulator engine: loads a bitstream package's IP block
//! plugins, checks them, wires their blocks into a signal chain and serves
//! them over HTTP. Data flows top to bottom in this list:
//!
//! - [`model`]: the host's own types for what a plugin declares and
//!   exchanges (no ABI type outside [`plugin`]).
//! - [`plugin`]: the one FFI edge: the loader, safe calls into a plugin's
//!   four components, the subcontroller it calls back.
//! - [`fsm`]: the one state-machine engine (checks, firing, diagrams).
//! - [`config`]: `emulators/config.json`, its model and its checks.
//! - [`catalog`]: which device-buffer catalog a plugin ships.
//! - [`route`]: a route call's path, query and body into the request a
//!   plugin receives, with the body checked against the route's JSON
//!   Schema (the host's one validator), independent of HTTP.
//! - [`checks`]: the per-plugin checks that engine startup and
//!   `validate-bitstream` share; [`report`] holds their results.
//! - [`engine`]: one running emulator: blocks, signal chain, pulses, events,
//!   the driver and the watchdog, each block's device buffer.
//! - [`http`]: the HTTP API over an [`engine::Emulator`].
//! - [`fleet`]: many emulators in one process: the manifest, the plan and
//!   its checks, starting them all or none, the fleet's admin index.
//! - [`injector`]: one service that hands `injector_event_groups` to
//!   several emulators (in-process or over HTTP) and answers per group.
//!
//! The `bitstream-emulator` binary (`src/bin/bitstream-emulator/`) is the
//! command line; its `buffer` and `message` tools live there, not here.

pub mod catalog;
pub mod checks;
pub mod config;
pub mod engine;
pub mod fleet;
pub mod fsm;
pub mod http;
pub mod injector;
pub mod model;
#[allow(unsafe_code)] // the one FFI edge
pub mod plugin;
pub mod report;
pub mod route;
