//! The log: levels named as in Python's `logging` (the original engine's),
//! one line per event on standard error.
//!
//! `--log-level` takes `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` (any
//! case; also `TRACE`, and the aliases `WARN` and `FATAL`). Lines name their
//! level the same way; a plugin's `log_critical` is a `CRITICAL` line.
//! `RUST_LOG`, when set, overrides the level with a `tracing` filter.

use std::fmt;
use std::io::IsTerminal;

use anyhow::{Context, Result};
pub use bitstream_host::model::LogLevel;
use tracing::{Event, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::Visit;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The field that marks an event as CRITICAL (tracing's highest level is
/// ERROR): `tracing::error!(critical = true, ...)`.
pub const CRITICAL_FIELD: &str = "critical";

/// The `tracing` filter directive that lets `level` and above through
/// (CRITICAL: ERROR, narrowed to critical events by the layer's filter).
fn directive(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error | LogLevel::Critical => "error",
    }
}

/// Whether an event's callsite is a critical one.
fn is_critical(meta: &Metadata<'_>) -> bool {
    meta.fields().field(CRITICAL_FIELD).is_some()
}

/// The Python name of an event's level.
fn level_name(meta: &Metadata<'_>) -> &'static str {
    match *meta.level() {
        tracing::Level::TRACE => "TRACE",
        tracing::Level::DEBUG => "DEBUG",
        tracing::Level::INFO => "INFO",
        tracing::Level::WARN => "WARNING",
        tracing::Level::ERROR if is_critical(meta) => "CRITICAL",
        tracing::Level::ERROR => "ERROR",
    }
}

/// Installs the log for `level` (or `RUST_LOG`, when set).
pub fn init(level: LogLevel) -> Result<()> {
    let (filter, critical_only) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => (
            EnvFilter::try_new(&spec)
                .with_context(|| format!("RUST_LOG=\"{spec}\" is not a valid filter"))?,
            false,
        ),
        _ => (
            EnvFilter::try_new(directive(level)).expect("the directives are valid"),
            level == LogLevel::Critical,
        ),
    };
    let ansi = std::io::stderr().is_terminal();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(PythonLevels { ansi })
        .with_filter(filter_fn(move |meta| {
            !critical_only || !meta.is_event() || is_critical(meta)
        }));
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .context("installing the log")
}

/// `<time> <LEVEL> <target>: <message> <field>=<value>...`, levels named as
/// in Python; colours only on a terminal.
struct PythonLevels {
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for PythonLevels
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A record of the `log` crate names its own target and level.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        SystemTime.format_time(&mut writer)?;
        let name = level_name(meta);
        if self.ansi {
            let colour = match name {
                "TRACE" => "35",
                "DEBUG" => "34",
                "INFO" => "32",
                "WARNING" => "33",
                _ => "31",
            };
            write!(writer, " \x1b[{colour}m{name:>8}\x1b[0m ")?;
        } else {
            write!(writer, " {name:>8} ")?;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        write!(writer, "{}: {}", meta.target(), fields.message)?;
        for (key, value) in &fields.rest {
            write!(writer, " {key}={value}")?;
        }
        writeln!(writer)
    }
}

/// An event's message and its other fields (the critical marker left out).
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            CRITICAL_FIELD => {}
            // Records from the `log` crate carry their origin as fields.
            name if name.starts_with("log.") => {}
            name => self.rest.push((name, format!("{value:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_lets_through_a_tracing_level() {
        assert_eq!(directive(LogLevel::Warning), "warn");
        assert_eq!(directive(LogLevel::Critical), "error");
        for level in [LogLevel::Trace, LogLevel::Critical] {
            assert!(EnvFilter::try_new(directive(level)).is_ok());
        }
    }
}
