//! Pulses, signal updates, manual events and the virtual clock of a
//! [`Harness`], with the engine's rules.

use std::time::Duration;

use bitstream_host::model::{LogLevel, ManualEvent, ManualEventSubtype, PulseEvent, Severity};
use bitstream_sdk::{Value, ValueMap};
use serde_json::Value as Json;

use crate::harness::{Scheduled, Timer};
use crate::host::Deferred;
use crate::Harness;

impl<B> Harness<B> {
    // -- events -------------------------------------------------------------

    /// The signal the generator sends a `first` block every pulse
    /// (default `{"packet_rate": 1000000}`, as the engine's).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.set_signal([("packet_rate", 5)]);
    /// h.pulse();
    /// assert_eq!(h.input(), [bitstream_sdk::Value::from(serde_json::json!({"packet_rate": 5}))]);
    /// ```
    pub fn set_signal(&mut self, signal: impl Into<ValueMap>) {
        self.signal = signal.into();
    }

    /// One pulse for a `first` block: its signal update on the generated
    /// signal (see [`set_signal`](Self::set_signal)), then its pulse
    /// handler. Answers the list it sends downstream.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use serde_json::json;
    /// let mut h = Harness::<Lamp>::new();
    /// h.post("on", json!({"brightness": 4}));
    /// let out = h.pulse();
    /// assert_eq!(out, [bitstream_sdk::Value::from(json!({"brightness": 4}))]);
    /// assert_eq!(h.block().hours, 1);
    /// ```
    pub fn pulse(&mut self) -> Vec<Value> {
        let signal = Value::Map(self.signal.clone());
        self.pulse_with([signal])
    }

    /// One pulse with `input` as the block's signal-update list (what its
    /// upstream blocks sent), then its pulse handler.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.pulse_with(Vec::<serde_json::Value>::new());
    /// assert_eq!(h.pulses(), 1);
    /// ```
    pub fn pulse_with<V: Into<Value>>(&mut self, input: impl IntoIterator<Item = V>) -> Vec<Value> {
        let input: Vec<Value> = input.into_iter().map(Into::into).collect();
        let event = PulseEvent {
            sequence: self.pulses,
            timestamp_ns: self.now.as_nanos() as u64,
        };
        self.pulses += 1;
        self.last_input = input.clone();
        self.last_output = self.run_signal(input);
        if self.overrides.pulse {
            let (result, deferred) = self.call(|instance, host| instance.pulse(host, &event));
            if let Err(err) = result {
                self.mark_fault("pulse handler", &err);
            }
            self.finish(deferred);
        }
        self.last_output.clone()
    }

    /// Runs only the signal-update handler on `input` (as the engine does
    /// when an upstream block's output changes between pulses). Answers
    /// the list it sends downstream.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// let out = h.signal_update([serde_json::json!({"packet_rate": 1})]);
    /// assert_eq!(out, [bitstream_sdk::Value::from(serde_json::json!({"brightness": 0}))]);
    /// assert_eq!(h.pulses(), 0);
    /// ```
    pub fn signal_update<V: Into<Value>>(
        &mut self,
        input: impl IntoIterator<Item = V>,
    ) -> Vec<Value> {
        let input: Vec<Value> = input.into_iter().map(Into::into).collect();
        self.last_input = input.clone();
        self.last_output = self.run_signal(input);
        self.last_output.clone()
    }

    pub(crate) fn run_signal(&mut self, input: Vec<Value>) -> Vec<Value> {
        if !self.overrides.signal_update {
            return input;
        }
        let owned = input.clone();
        let (result, deferred) = self.call(|instance, host| instance.signal_update(host, owned));
        for work in deferred {
            match work {
                Deferred::ForceSignalUpdate => self.host_log(
                    LogLevel::Debug,
                    "force_signal_update inside a signal-update handler is ignored",
                ),
                Deferred::Delay(delay, action) => self.schedule(delay, Timer::Delayed(action)),
            }
        }
        match result {
            Ok(list) => list,
            Err(err) => {
                self.mark_fault("signal-update handler", &err);
                input
            }
        }
    }

    /// The list the block last received (pulse or signal update).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// assert!(h.input().is_empty());
    /// h.pulse();
    /// assert_eq!(h.input().len(), 1);
    /// ```
    pub fn input(&self) -> &[Value] {
        &self.last_input
    }

    /// The list the block last sent downstream (including after a forced
    /// signal update).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use serde_json::json;
    /// let mut h = Harness::<Lamp>::new();
    /// h.pulse();
    /// h.post("dim/3", json!({}));
    /// assert_eq!(h.output(), [bitstream_sdk::Value::from(json!({"brightness": 0}))]);
    /// h.post("refresh", json!({}));
    /// assert_eq!(h.output(), [bitstream_sdk::Value::from(json!({"brightness": 3}))]);
    /// ```
    pub fn output(&self) -> &[Value] {
        &self.last_output
    }

    /// How many pulses ran.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.pulse();
    /// h.pulse();
    /// assert_eq!(h.pulses(), 2);
    /// ```
    pub fn pulses(&self) -> u64 {
        self.pulses
    }

    /// How many times plugin code called `force_signal_update`.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.post("refresh", serde_json::json!({}));
    /// assert_eq!(h.forced_updates(), 1);
    /// ```
    pub fn forced_updates(&self) -> usize {
        self.records.forced.get()
    }

    /// Delivers a manual event now (an injection, or an event from
    /// upstream) to the manual-event handler; answers the events it
    /// forwards downstream. A block without that handler ignores it, as in
    /// the engine. Takes the SDK's `ManualEvent` or the host's.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use bitstream_sdk::{ManualEvent, Severity};
    /// let mut h = Harness::<Lamp>::new();
    /// let forwarded = h.inject(ManualEvent::injection(Severity::FatalError, serde_json::json!({})));
    /// assert!(forwarded.is_empty());
    /// assert_eq!(h.state(), "FAULT");
    /// ```
    pub fn inject(&mut self, event: impl Into<ManualEvent>) -> Vec<ManualEvent> {
        let event = event.into();
        if !self.overrides.manual_event {
            return Vec::new();
        }
        let (result, deferred) = self.call(|instance, host| instance.manual_event(host, &event));
        let forwarded = match result {
            Ok(events) => events,
            Err(err) => {
                self.mark_fault("manual-event handler", &err);
                Vec::new()
            }
        };
        self.finish(deferred);
        forwarded
    }

    /// An injection of `severity` carrying `value` (`POST /inject`'s event),
    /// delivered now.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.inject_value(bitstream_testkit::Severity::Warning, serde_json::json!({"x": 1}));
    /// assert_eq!(h.state(), "OFF");
    /// ```
    pub fn inject_value(&mut self, severity: Severity, value: Json) -> Vec<ManualEvent> {
        self.inject(ManualEvent {
            subtype: ManualEventSubtype::Injection,
            severity,
            value: value.into(),
        })
    }

    /// Delivers a manual event after `delay` on the virtual clock (as
    /// `POST /inject` with a delay).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use std::time::Duration;
    /// use bitstream_sdk::{ManualEvent, Severity};
    /// let mut h = Harness::<Lamp>::new();
    /// h.inject_after(Duration::from_secs(1), ManualEvent::injection(Severity::FatalError, serde_json::json!({})));
    /// assert_eq!(h.state(), "OFF");
    /// h.advance(Duration::from_secs(1));
    /// assert_eq!(h.state(), "FAULT");
    /// ```
    pub fn inject_after(&mut self, delay: Duration, event: impl Into<ManualEvent>) {
        self.schedule(delay, Timer::Manual(event.into()));
    }

    // -- virtual clock ------------------------------------------------------

    /// The virtual clock: time since the harness was made, moved only by
    /// [`advance`](Self::advance).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use std::time::Duration;
    /// let mut h = Harness::<Lamp>::new();
    /// h.advance(Duration::from_millis(5));
    /// assert_eq!(h.now(), Duration::from_millis(5));
    /// ```
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Moves the virtual clock forward by `by`, running every delayed
    /// action and delayed manual event that falls due, in due order (ties
    /// in the order they were scheduled), each at its due time; an action
    /// scheduled by one that runs is itself run if it falls due in the
    /// window.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use std::time::Duration;
    /// let mut h = Harness::<Lamp>::new();
    /// h.post("on", serde_json::json!({"brightness": 1}));
    /// h.post("off?after_ms=10", serde_json::json!({}));
    /// assert_eq!(h.pending(), 1);
    /// h.advance(Duration::from_millis(10));
    /// assert_eq!((h.pending(), h.state().as_str()), (0, "OFF"));
    /// ```
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(next) = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.due <= until)
            .min_by_key(|(_, t)| (t.due, t.seq))
            .map(|(i, _)| i)
        {
            let Scheduled { due, timer, .. } = self.timers.remove(next);
            self.now = due;
            match timer {
                Timer::Manual(event) => {
                    self.inject(event);
                }
                Timer::Delayed(action) => {
                    let (result, deferred) =
                        self.call(|instance, host| instance.run_delayed(host, action));
                    if let Err(err) = result {
                        self.host_log(LogLevel::Error, &format!("delayed action failed: {err}"));
                    }
                    self.finish(deferred);
                }
            }
        }
        self.now = until;
    }

    /// How many delayed actions and events wait on the clock.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(Harness::<Lamp>::new().pending(), 0);
    /// ```
    pub fn pending(&self) -> usize {
        self.timers.len()
    }
}
