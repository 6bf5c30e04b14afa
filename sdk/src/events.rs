//! The event_handler component: pulse, signal-update and manual events.
//!
//! A plugin sets only the handlers it needs. The others keep the engine's
//! default behaviour, applied by the host without calling into the plugin:
//! a pulse does nothing, a signal-update list passes through unchanged, and
//! a manual event forwards nothing downstream.
//!
//! ```
//! use bitstream_sdk::{EventHandler, Severity, Value};
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Meter { packet_rate: f64 }
//!
//! let events = EventHandler::<Meter>::new()
//!     .on_signal_update(|block, _ctx, events| {
//!         // Several upstream blocks: keep the smallest packet rate.
//!         block.packet_rate = events
//!             .iter()
//!             .map(|e| e.get("packet_rate").and_then(Value::as_f64).unwrap_or(0.0))
//!             .fold(f64::INFINITY, f64::min);
//!         Ok(events)
//!     })
//!     .on_manual_event(|_block, ctx, event| {
//!         if event.severity == Severity::FatalError {
//!             ctx.trigger_if_allowed("CRITICAL_FAULT", ());
//!         }
//!         Ok(None)
//!     });
//! assert!(events.overrides().signal_update && !events.overrides().pulse);
//! ```

pub use crate::ffi::{HandlerOverrides, ManualEvent, ManualEventSubtype, PulseEvent, Severity};
use crate::subcontroller::Subcontroller;
use crate::value::Value;
use crate::Error;

/// A pulse handler.
pub type PulseHandler<B> =
    Box<dyn Fn(&mut B, &Subcontroller<'_, B>, &PulseEvent) -> Result<(), Error> + Send + Sync>;

/// A signal-update handler: the list in, the list for downstream out.
pub type SignalUpdateHandler<B> = Box<
    dyn Fn(&mut B, &Subcontroller<'_, B>, Vec<Value>) -> Result<Vec<Value>, Error> + Send + Sync,
>;

/// A manual-event handler: optionally returns events for downstream blocks.
pub type ManualEventHandler<B> = Box<
    dyn Fn(&mut B, &Subcontroller<'_, B>, &ManualEvent) -> Result<Option<Vec<ManualEvent>>, Error>
        + Send
        + Sync,
>;

/// The event handlers of one block type.
pub struct EventHandler<B> {
    pub(crate) pulse: Option<PulseHandler<B>>,
    pub(crate) signal_update: Option<SignalUpdateHandler<B>>,
    pub(crate) manual_event: Option<ManualEventHandler<B>>,
}

impl<B> Default for EventHandler<B> {
    fn default() -> Self {
        EventHandler {
            pulse: None,
            signal_update: None,
            manual_event: None,
        }
    }
}

impl<B> EventHandler<B> {
    /// Handlers with every default behaviour.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles each pulse. Within a pulse, a block sees its signal update
    /// before its pulse.
    pub fn on_pulse(
        mut self,
        handler: impl Fn(&mut B, &Subcontroller<'_, B>, &PulseEvent) -> Result<(), Error>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.pulse = Some(Box::new(handler));
        self
    }

    /// Handles the signal-update list: the concatenation of what every
    /// upstream block returned in this pulse. What it returns goes to every
    /// downstream block.
    pub fn on_signal_update(
        mut self,
        handler: impl Fn(&mut B, &Subcontroller<'_, B>, Vec<Value>) -> Result<Vec<Value>, Error>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.signal_update = Some(Box::new(handler));
        self
    }

    /// Handles a manual event (an injection, or an event from upstream).
    /// Events it returns go to the downstream blocks' manual handlers.
    pub fn on_manual_event(
        mut self,
        handler: impl Fn(
                &mut B,
                &Subcontroller<'_, B>,
                &ManualEvent,
            ) -> Result<Option<Vec<ManualEvent>>, Error>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.manual_event = Some(Box::new(handler));
        self
    }

    /// Which handlers are set.
    pub fn overrides(&self) -> HandlerOverrides {
        HandlerOverrides {
            pulse: self.pulse.is_some(),
            signal_update: self.signal_update.is_some(),
            manual_event: self.manual_event.is_some(),
        }
    }
}

impl ManualEvent {
    /// A general event, as blocks send downstream.
    ///
    /// ```
    /// use bitstream_sdk::{ManualEvent, Severity, Value};
    /// let e = ManualEvent::general(Severity::Warning, [("reason", "overflow")].into_iter().collect::<Value>());
    /// assert_eq!(e.value.get("reason").and_then(Value::as_str), Some("overflow"));
    /// ```
    pub fn general(severity: Severity, value: impl Into<Value>) -> Self {
        ManualEvent {
            subtype: ManualEventSubtype::General,
            severity,
            value: value.into(),
        }
    }

    /// An injected event.
    pub fn injection(severity: Severity, value: impl Into<Value>) -> Self {
        ManualEvent {
            subtype: ManualEventSubtype::Injection,
            severity,
            value: value.into(),
        }
    }

    /// `value.injection_type`, when present.
    pub fn injection_type(&self) -> Option<&str> {
        self.value.get("injection_type").and_then(Value::as_str)
    }
}

impl Severity {
    /// The name used on the wire: `GENERAL`, `WARNING`, `FATAL_ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::General => "GENERAL",
            Severity::Warning => "WARNING",
            Severity::FatalError => "FATAL_ERROR",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "GENERAL" => Some(Severity::General),
            "WARNING" => Some(Severity::Warning),
            "FATAL_ERROR" => Some(Severity::FatalError),
            _ => None,
        }
    }
}

impl ManualEventSubtype {
    /// The name used on the wire: `GENERAL`, `INJECTION`.
    pub fn as_str(self) -> &'static str {
        match self {
            ManualEventSubtype::General => "GENERAL",
            ManualEventSubtype::Injection => "INJECTION",
        }
    }
}
