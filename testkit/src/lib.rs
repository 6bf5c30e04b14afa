//! # bitstream-testkit: test an IP block emulator in-process
//!
//! [`Harness`] runs one block of a plugin inside the test process with the
//! host's own code, not a copy of it: the host's state machine
//! (`bitstream_host::fsm`), its plugin wrapper (`bitstream_host::plugin`,
//! over the plugin's own root module, the tables a loaded library would
//! hand over), its route checks and parameter parsing, and the engine's
//! rules for pulses, signal updates, manual events, `force_signal_update`
//! and `delay_action`. Time is virtual ([`Harness::advance`]), log lines are
//! captured ([`Harness::logs`]), the device buffer is in process memory
//! ([`Harness::buffer`]).
//!
//! Add it as a dev-dependency of the plugin crate, and make the crate an
//! `rlib` as well as a `cdylib`, so its tests link the plugin:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dev-dependencies]
//! bitstream-testkit = "1.1"
//! serde_json = "1"
//! ```
//!
//! A test then reads:
//!
//! ```
//! use std::time::Duration;
//! use bitstream_testkit::example::Lamp; // your ip_block type instead
//! use bitstream_testkit::Harness;
//! use serde_json::json;
//!
//! let mut h = Harness::<Lamp>::new();
//! let r = h.post("on", json!({"brightness": 30}));
//! assert_eq!(r.status(), 200);
//! assert_eq!(h.state(), "ON");
//! let r = h.post("on", json!({"brightness": 0})); // the body schema, checked by the host
//! assert_eq!(r.status(), 400);
//! assert_eq!(r.error(), Some("invalid body: /brightness: 0 is less than the minimum of 1"));
//! h.pulse();
//! assert_eq!(h.get("status").json()["hours"], 1);
//! h.post("off?after_ms=100", json!({}));
//! h.advance(Duration::from_millis(100));
//! assert_eq!(h.state(), "OFF");
//! ```
//!
//! `Harness::<MyBlock>::new()` finds the plugin from its ip_block type: the
//! SDK's `export_plugin!` (and `define_plugin!`) ties the two together.
//! [`Harness::for_plugin`] takes the module the crate exports instead
//! (`Harness::<MyBlock>::for_plugin(my_plugin::__bitstream_root_module)`),
//! the one its library hands the emulator's loader.

#![warn(missing_docs)]

mod describe;
mod dispatch;
mod events;
pub mod example;
mod harness;
mod host;
mod inspect;
mod response;

pub use bitstream_host::model::{LogLevel, ManualEvent, ManualEventSubtype, Severity};
pub use harness::{default_signal, Harness, DEFAULT_BLOCK_ID};
pub use response::Response;

/// One captured log line.
///
/// ```
/// # use bitstream_testkit::{example::Lamp, Harness, LogLevel};
/// let mut h = Harness::<Lamp>::new();
/// h.post("on", serde_json::json!({"brightness": 2}));
/// assert_eq!(h.logs()[0].level, LogLevel::Info);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Its level.
    pub level: LogLevel,
    /// The message, as logged.
    pub message: String,
}
