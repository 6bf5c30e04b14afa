//! The fleet manifest: a TOML file naming every emulator of a fleet.
//!
//! The format, as `deploy/fleet.example.toml` shows it (a test parses
//! that file, so this example cannot drift):
//!
//! ```toml
#![doc = include_str!("../../../deploy/fleet.example.toml")]
//! ```
//!
//! Every key is optional but an emulator's `id`, `package` and `bind`. An
//! unknown key anywhere is a problem (a misspelt `pulse_perod_ms` would
//! otherwise be silently ignored). [`parse`] reports every unknown key and
//! every missing one with its line, not only the first.

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;

use super::Problem;

/// The keys of `[defaults]`.
pub const DEFAULT_KEYS: [&str; 7] = [
    "pulse_period_ms",
    "handler_timeout_ms",
    "stopped",
    "local_buffers",
    "log_level",
    "header_timeout_ms",
    "body_timeout_ms",
];

/// The keys of an `[[emulator]]` entry.
pub const EMULATOR_KEYS: [&str; 7] = [
    "id",
    "package",
    "bind",
    "pulse_period_ms",
    "handler_timeout_ms",
    "stopped",
    "local_buffers",
];

/// The keys of `[admin]` and `[injector]`.
pub const SERVICE_KEYS: [&str; 1] = ["bind"];

/// The top-level tables.
pub const TOP_KEYS: [&str; 4] = ["defaults", "admin", "injector", "emulator"];

/// A parsed manifest (addresses still text: they are checked with the plan,
/// so that every bad one is reported).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[defaults]`.
    #[serde(default)]
    pub defaults: Defaults,
    /// `[admin]`.
    pub admin: Option<Service>,
    /// `[injector]`.
    pub injector: Option<Service>,
    /// Every `[[emulator]]`, in file order.
    #[serde(default, rename = "emulator")]
    pub emulators: Vec<toml::Spanned<EmulatorEntry>>,
}

/// `[defaults]`: what every emulator takes unless its entry says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Milliseconds between real-time pulses (0: accelerated only).
    pub pulse_period_ms: Option<u64>,
    /// Milliseconds a handler may run before it counts as hung.
    pub handler_timeout_ms: Option<u64>,
    /// Start with real-time pulses stopped.
    pub stopped: Option<bool>,
    /// Device buffers in process memory instead of `/dev/shm`.
    pub local_buffers: Option<bool>,
    /// The process's log level (DEBUG, INFO, WARNING, ERROR, CRITICAL, TRACE).
    pub log_level: Option<String>,
    /// Milliseconds a client may take to send a request head.
    pub header_timeout_ms: Option<u64>,
    /// Milliseconds a client may take to send a body after its head.
    pub body_timeout_ms: Option<u64>,
}

/// `[admin]` or `[injector]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `host:port`.
    pub bind: String,
}

/// One `[[emulator]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorEntry {
    /// The emulator id (`bitstream_emulator_id` in injections).
    pub id: String,
    /// The bitstream package folder (relative to the manifest's folder).
    pub package: PathBuf,
    /// `host:port` of its HTTP API.
    pub bind: String,
    /// Overrides `[defaults] pulse_period_ms`.
    pub pulse_period_ms: Option<u64>,
    /// Overrides `[defaults] handler_timeout_ms`.
    pub handler_timeout_ms: Option<u64>,
    /// Overrides `[defaults] stopped`.
    pub stopped: Option<bool>,
    /// Overrides `[defaults] local_buffers`.
    pub local_buffers: Option<bool>,
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses a manifest's text, reporting every unknown key and every
/// emulator entry that lacks `id`, `package` or `bind` (each with its
/// line); else the first type error serde meets (with its line).
pub fn parse(text: &str) -> Result<Manifest, Vec<Problem>> {
    let document = toml_edit::ImDocument::parse(text).map_err(|err| {
        vec![Problem::at(
            err.span().map(|s| line_of(text, s.start)),
            format!("not valid TOML: {}", err.message()),
        )]
    })?;
    let problems = key_problems(text, document.as_table());
    if !problems.is_empty() {
        return Err(problems);
    }
    toml::from_str(text).map_err(|err| {
        vec![Problem::at(
            err.span().map(|s| line_of(text, s.start)),
            err.message().to_owned(),
        )]
    })
}

/// Every unknown key and missing required key of the document.
fn key_problems(text: &str, top: &toml_edit::Table) -> Vec<Problem> {
    let mut problems = Vec::new();
    let line = |span: Option<Range<usize>>| span.map(|s| line_of(text, s.start));
    let mut unknown = |table: &toml_edit::Table, known: &[&str], place: &str| {
        for (key, _) in table.iter() {
            if !known.contains(&key) {
                let span = table.key(key).and_then(toml_edit::Key::span);
                problems.push(Problem::at(
                    line(span),
                    format!(
                        "unknown key `{key}` in {place}; the keys there are: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
    };
    unknown(top, &TOP_KEYS, "the manifest's top level");
    for (name, known) in [
        ("defaults", &DEFAULT_KEYS[..]),
        ("admin", &SERVICE_KEYS[..]),
        ("injector", &SERVICE_KEYS[..]),
    ] {
        if let Some(table) = top.get(name).and_then(toml_edit::Item::as_table) {
            unknown(table, known, &format!("[{name}]"));
        }
    }
    let mut missing = Vec::new();
    if let Some(entries) = top
        .get("emulator")
        .and_then(toml_edit::Item::as_array_of_tables)
    {
        for (index, entry) in entries.iter().enumerate() {
            let id = entry
                .get("id")
                .and_then(toml_edit::Item::as_str)
                .map_or_else(
                    || format!("[[emulator]] number {}", index + 1),
                    |id| format!("[[emulator]] \"{id}\""),
                );
            unknown(entry, &EMULATOR_KEYS, &id);
            for required in ["id", "package", "bind"] {
                if !entry.contains_key(required) {
                    missing.push(Problem::at(
                        line(entry.span()),
                        format!(
                            "{id} has no `{required}`; every emulator needs id, package and bind"
                        ),
                    ));
                }
            }
        }
    }
    problems.extend(missing);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest_parses_with_lines() {
        let text = "[defaults]\npulse_period_ms = 100\n\n[admin]\nbind = \"127.0.0.1:0\"\n\n\
                    [[emulator]]\nid = \"a\"\npackage = \"pkg\"\nbind = \"127.0.0.1:5001\"\n\n\
                    [[emulator]]\nid = \"b\"\npackage = \"/abs/pkg\"\nbind = \"127.0.0.1:5002\"\nstopped = true\n";
        let manifest = parse(text).unwrap();
        assert_eq!(manifest.defaults.pulse_period_ms, Some(100));
        assert_eq!(manifest.admin.unwrap().bind, "127.0.0.1:0");
        assert_eq!(manifest.emulators.len(), 2);
        assert_eq!(manifest.emulators[1].get_ref().stopped, Some(true));
        let second = manifest.emulators[1].span().start;
        assert_eq!(line_of(text, second), 12);
    }

    #[test]
    fn every_unknown_and_missing_key_is_reported_with_its_line() {
        let text =
            "colour = 1\n[defaults]\npulse_perod_ms = 5\n[[emulator]]\nid = \"a\"\nbind = \"x\"\n\
                    package = \"p\"\nspeed = 3\n[[emulator]]\nid = \"b\"\n";
        let problems = parse(text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|p| p.starts_with("line 1: unknown key `colour`")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.starts_with("line 3: unknown key `pulse_perod_ms` in [defaults]")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.starts_with("line 8: unknown key `speed` in [[emulator]] \"a\"")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.contains("[[emulator]] \"b\" has no `package`")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.contains("[[emulator]] \"b\" has no `bind`")),
            "{shown:?}"
        );
        assert_eq!(shown.len(), 5, "{shown:?}");
    }

    #[test]
    fn bad_toml_and_bad_types_name_their_line() {
        let problems = parse("[defaults]\npulse_period_ms = \n").unwrap_err();
        assert!(
            problems[0]
                .to_string()
                .starts_with("line 2: not valid TOML"),
            "{problems:?}"
        );
        let problems = parse("[defaults]\n\npulse_period_ms = \"fast\"\n").unwrap_err();
        assert!(
            problems[0].to_string().starts_with("line 3: "),
            "{problems:?}"
        );
    }
}
