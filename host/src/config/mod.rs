//! Reads and checks `emulators/config.json`, the bitstream configuration.
//!
//! The config names the bitstream (`id`, `version`), lists its IP blocks
//! (`ip_blocks`: each with an `id`, a `type` naming the emulator plugin at
//! `emulators/<type>/emulator`, optional `display_name`,
//! `downstream_block_ids` and `constants`) and says which blocks receive the
//! generated signal (`first`).
//!
//! [`check_config`] runs six named checks, in this order, and records each
//! in a [`ConfigReport`]:
//!
//! | check        | what it checks |
//! |--------------|----------------|
//! | `json`       | the file can be read and is valid JSON (errors give line and column) |
//! | `fields`     | required fields are present with the right types; unknown keys are warnings |
//! | `block_ids`  | block ids are unique and not reserved (`plugins`) |
//! | `emulators`  | every block type has an emulator folder (only when the available types are given) |
//! | `references` | every downstream id and every `first` id names a block; unreachable blocks are warnings |
//! | `cycles`     | the signal chain is acyclic (an error names one concrete cycle) |
//!
//! A check that an earlier failure makes meaningless is recorded as skipped.
//! The parsed [`BitstreamConfig`] is returned only when no check failed.
//!
//! ## Legacy configs
//!
//! Configs up to version 0.0.14 had a pseudo-block of type `"dish"` standing
//! for the signal generator, and `"first": "<dish id>"` (a string). Such a
//! config is normalised: the dish is dropped from
//! [`BitstreamConfig::ip_blocks`], its id is kept in
//! [`BitstreamConfig::legacy_dish`], and [`BitstreamConfig::first`] becomes
//! the dish's `downstream_block_ids`.
//!
//! ## Leniencies
//!
//! - A leading UTF-8 byte order mark is ignored (with a warning).
//! - `null` for an optional block field means "absent".
//! - When a key appears twice in one object, the last value is used (with a
//!   warning), as Python's `json` module does.
//! - A block listing the same downstream id twice, or `first` listing an id
//!   twice, gets a warning; the duplicate is ignored.
//!
//! ## Modules
//!
//! `model` (the checked config), `json` (the text into an ordered tree),
//! `fields`, `emulators` and `graph` (the checks), `suggest` ("did you
//! mean"), `checks` (runs them in order). This module holds the entry
//! points.

mod checks;
mod emulators;
mod fields;
mod graph;
pub use graph::RESERVED_BLOCK_IDS;
mod json;
mod model;
mod suggest;

use std::path::Path;

use crate::report::{CheckOutcome, ConfigReport, Problem, Severity};

pub use checks::CHECK_NAMES;
pub use model::{
    check_signal, BitstreamConfig, BlockConfig, SignalError, CONFIG_FILE, LEGACY_DISH_TYPE,
    SIGNAL_KEYS,
};

use checks::{run_checks, skip_rest};

/// A config that could not be used: every error [`check_config`] found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", describe_errors(.report))]
pub struct ConfigError {
    /// The full report, including warnings and skipped checks.
    pub report: ConfigReport,
}

impl ConfigError {
    /// The error problems, in check order.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.report
            .checks
            .iter()
            .flat_map(|c| c.problems.iter())
            .filter(|p| p.severity == Severity::Error)
    }
}

fn describe_errors(report: &ConfigReport) -> String {
    let errors: Vec<&Problem> = report
        .checks
        .iter()
        .flat_map(|c| c.problems.iter())
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let mut text = format!("invalid bitstream config {}", report.path.display());
    match errors.len() {
        0 => {}
        1 => text.push_str(" (1 error):"),
        n => text.push_str(&format!(" ({n} errors):")),
    }
    for error in errors {
        text.push_str("\n  ");
        text.push_str(&error.message);
    }
    text
}

/// Reads and checks a config.
///
/// `available_types`: the ip_block types that have an emulator folder
/// (`None` = do not check that; the `emulators` check is then skipped).
/// Returns the parsed config when it is usable (no check failed) and the
/// report. Never panics on bad input.
pub fn check_config(
    path: &Path,
    available_types: Option<&[String]>,
) -> (Option<BitstreamConfig>, ConfigReport) {
    let p = path.display().to_string();
    let failed_json = |message: String| {
        let mut checks = vec![CheckOutcome::from_problems(
            "json",
            vec![Problem::error(message)],
        )];
        skip_rest(&mut checks, "the config file could not be read");
        (
            None,
            ConfigReport {
                path: path.to_path_buf(),
                checks,
            },
        )
    };
    let bytes = match read_regular_file(path) {
        Ok(bytes) => bytes,
        Err(ReadError::NotRegular(kind)) => {
            return failed_json(format!(
                "{p}: is not a regular file (it is {kind}); the config must be a JSON file, \
                 replace it with one"
            ))
        }
        Err(ReadError::Io(e)) => {
            return failed_json(format!("{p}: cannot read the config file: {e}"))
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => check_config_text(path, &text, available_types),
        Err(e) => failed_json(format!(
            "{p}: the config file is not valid UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )),
    }
}

/// Why [`read_regular_file`] read nothing.
#[derive(Debug)]
pub enum ReadError {
    /// The path is not a regular file: what it is ("a FIFO", "a directory", ...).
    NotRegular(&'static str),
    /// Opening or reading failed.
    Io(std::io::Error),
}

/// Reads a file that must be a regular file, without ever blocking on
/// something else: it is opened non-blocking (opening a FIFO for reading
/// would otherwise wait for a writer) and its type checked on the open
/// file, before anything is read.
pub fn read_regular_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(ReadError::Io)?;
    let file_type = file.metadata().map_err(ReadError::Io)?.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_dir() {
            "a directory"
        } else if file_type.is_socket() {
            "a socket"
        } else if file_type.is_char_device() {
            "a character device"
        } else if file_type.is_block_device() {
            "a block device"
        } else {
            "not a file"
        };
        return Err(ReadError::NotRegular(kind));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(ReadError::Io)?;
    Ok(bytes)
}

/// The same checks as [`check_config`], on text already read. `path` is used
/// only in messages and in the report.
pub fn check_config_text(
    path: &Path,
    text: &str,
    available_types: Option<&[String]>,
) -> (Option<BitstreamConfig>, ConfigReport) {
    let p = path.display().to_string();
    let mut checks = Vec::with_capacity(CHECK_NAMES.len());
    let config = run_checks(&p, text, available_types, &mut checks);
    let report = ConfigReport {
        path: path.to_path_buf(),
        checks,
    };
    let config = config.filter(|_| report.is_valid());
    (config, report)
}

/// Reads and checks a config for the engine: the config, or a
/// [`ConfigError`] whose message lists every error.
pub fn load_config(
    path: &Path,
    available_types: Option<&[String]>,
) -> Result<BitstreamConfig, ConfigError> {
    match check_config(path, available_types) {
        (Some(config), _) => Ok(config),
        (None, report) => Err(ConfigError { report }),
    }
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::report::CheckStatus;
    use bitstream_sdk::Value;

    #[test]
    fn real_config_parses() {
        let available = types(&REAL_TYPES);
        let (config, report) = check_config(&real_config("vcc_processing"), Some(&available));
        assert!(report.is_valid(), "{report:#?}");
        assert_eq!(names(&report), CHECK_NAMES);
        assert!(
            report
                .checks
                .iter()
                .all(|c| c.status == CheckStatus::Passed),
            "{report:#?}"
        );
        let config = config.expect("valid");
        assert_eq!(config.id, "vcc_processing");
        assert_eq!(config.version, "0.0.16");
        assert_eq!(config.ip_blocks.len(), 36);
        assert_eq!(config.first, ["ethernet_200g"]);
        assert_eq!(config.legacy_dish, None);
        assert_eq!(config.edges().count(), 60);
        assert_eq!(config.block_types(), REAL_TYPES);
        assert_eq!(config.blocks_of_type("wideband_power_meter").count(), 29);

        let eth = config.block("ethernet_200g").expect("ethernet");
        assert_eq!(eth.display_name.as_deref(), Some("200Gb Ethernet"));
        assert_eq!(eth.block_type, "ftile_ethernet");
        assert_eq!(
            eth.constants.keys().collect::<Vec<_>>(),
            ["num_fibres", "num_lanes"]
        );
        assert_eq!(eth.constants.get("num_fibres"), Some(&Value::Int(4)));
        assert!(config
            .block("wideband_input_buffer")
            .unwrap()
            .constants
            .is_empty());

        // 26-way fan-out then 26-way fan-in.
        let selection = config.block("fs_selection_26_2_1").unwrap();
        assert_eq!(selection.downstream_block_ids.len(), 26);
        assert_eq!(
            selection.downstream_block_ids[0],
            "fs1_wideband_power_meter"
        );
        let upstream = config.upstream_block_ids("packetizer");
        assert_eq!(upstream.len(), 26);
        assert!(upstream.contains(&"fs26_wideband_power_meter"));
        assert!(config
            .block("packetizer")
            .unwrap()
            .downstream_block_ids
            .is_empty());
        assert!(config.block("no_such_block").is_none());
    }

    #[test]
    fn real_fan_in_config_parses() {
        let available = types(&REAL_TYPES);
        let path = real_config("vcc_processing_fan_in");
        let config = load_config(&path, Some(&available)).expect("valid");
        assert_eq!(config.ip_blocks.len(), 37);
        assert_eq!(config.first, ["ethernet_200g"]);
        assert_eq!(
            config.block("ethernet_200g").unwrap().downstream_block_ids,
            ["packet_validation_a", "packet_validation_b"]
        );
        assert_eq!(
            config.upstream_block_ids("wideband_input_buffer"),
            ["packet_validation_a", "packet_validation_b"]
        );
        assert_eq!(config.blocks_of_type("packet_validation").count(), 2);
    }

    /// (file, failing check, message fragment)
    const BROKEN: [(&str, &str, &str); 8] = [
        ("syntax_error.json", "json", "invalid JSON at line 9, column 7: expected `,` or `}`"),
        ("missing_fields.json", "fields", "missing required field \"version\""),
        ("duplicate_ids.json", "block_ids", "block id \"b45a_wideband_power_meter\" is used by ip_blocks[4] and ip_blocks[5]"),
        ("unknown_downstream.json", "references", "block \"wideband_input_buffer\" lists downstream block \"b5b_wideband_power_meter\", which does not exist"),
        ("unknown_first.json", "references", "field \"first\" names block \"ethernet_100g\", which does not exist; did you mean \"ethernet_200g\"?"),
        ("cycle.json", "cycles", "cycle in the signal chain: wideband_input_buffer -> wideband_frequency_shifter -> b123vcc -> wideband_input_buffer"),
        ("wrong_types.json", "fields", "ip_blocks[3] (id \"b45a_wideband_power_meter\"): field \"downstream_block_ids\" must be a list of block ids, found a string"),
        ("unknown_type.json", "emulators", "block \"b123vcc\" has type \"vcc_ch20\", but there is no emulators/vcc_ch20/emulator folder (available: counter)"),
    ];

    #[test]
    fn every_broken_fixture_fails_exactly_its_check() {
        let available = types(&["counter"]);
        for (file, check, fragment) in BROKEN {
            let path = fixture(file);
            let (config, report) = check_config(&path, Some(&available));
            assert!(config.is_none(), "{file}: accepted");
            assert_eq!(names(&report), CHECK_NAMES, "{file}");
            assert_eq!(failed(&report), [check], "{file}: {report:#?}");
            let errors = errors(&report);
            assert!(
                errors.iter().any(|e| e.contains(fragment)),
                "{file}: no error contains {fragment:?}: {errors:#?}"
            );
            let shown = path.display().to_string();
            assert!(
                errors.iter().all(|e| e.starts_with(&shown)),
                "{file}: {errors:#?}"
            );
            // The engine's error lists the same errors.
            let err = load_config(&path, Some(&available)).unwrap_err();
            assert!(err.to_string().contains(fragment), "{file}: {err}");
            assert_eq!(err.errors().count(), errors.len());
        }
    }

    #[test]
    fn fixture_details() {
        let available = types(&["counter"]);
        let check = |file: &str| check_config(&fixture(file), Some(&available)).1;

        // Everything after a syntax error is skipped.
        let report = check("syntax_error.json");
        for c in &report.checks[1..] {
            assert_eq!(c.status, CheckStatus::Skipped, "{report:#?}");
        }
        assert!(
            errors(&report)[0].contains("is a comma missing"),
            "{report:#?}"
        );

        let report = check("missing_fields.json");
        let errs = errors(&report);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[1].contains(
            "ip_blocks[2] (id \"wideband_input_buffer\"): missing required field \"type\""
        ));

        let report = check("wrong_types.json");
        let errs = errors(&report);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].contains(
            "ip_blocks[1] (id \"packet_validation\"): field \"constants\" must be an object of constant values (name: value), found a list"
        ));
        // The later checks still run on what could be read.
        assert_eq!(status(&report, "references"), CheckStatus::Passed);
        assert_eq!(status(&report, "cycles"), CheckStatus::Passed);

        let report = check("cycle.json");
        assert_eq!(errors(&report).len(), 1);

        // unknown_type.json is fine when emulator folders are not checked.
        let (config, report) = check_config(&fixture("unknown_type.json"), None);
        assert!(config.is_some(), "{report:#?}");
        assert_eq!(status(&report, "emulators"), CheckStatus::Skipped);
        // ... or when its types are there.
        let all = types(&["counter", "vcc_ch20"]);
        assert!(check_config(&fixture("unknown_type.json"), Some(&all))
            .0
            .is_some());
    }

    #[test]
    fn a_block_named_plugins_is_refused_because_the_api_keeps_that_path() {
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.1", "first": ["a"],
                "ip_blocks": [{"id": "a", "type": "counter", "downstream_block_ids": ["plugins"]},
                              {"id": "plugins", "type": "counter"}]}"#,
        );
        assert!(config.is_none(), "{report:#?}");
        assert_eq!(failed(&report), ["block_ids"]);
        let errs = errors(&report);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("ip_blocks[1] has the id \"plugins\", which the HTTP API keeps")
                && errs[0].contains("give the block another id"),
            "{errs:#?}"
        );
    }

    #[test]
    fn warnings_do_not_fail_a_config() {
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["a", "a"], "comment": "hi",
                "ip_blocks": [
                  {"id": "a", "type": "counter", "downstream_block_ids": ["b", "b"],
                   "downstream_blocks": ["c"], "constants": {"label": "one", "label": "two"}},
                  {"id": "b", "type": "counter", "display_name": null},
                  {"id": "c", "type": "counter"}]}"#,
        );
        assert!(report.is_valid(), "{report:#?}");
        let config = config.expect("warnings only");
        assert_eq!(config.first, ["a"]);
        assert_eq!(config.block("a").unwrap().downstream_block_ids, ["b"]);
        assert_eq!(
            config.block("a").unwrap().constants.get("label"),
            Some(&Value::from("two"))
        );
        assert_eq!(status(&report, "fields"), CheckStatus::Warning);
        assert_eq!(status(&report, "references"), CheckStatus::Warning);
        let fields = warnings_of(&report, "fields");
        assert!(
            fields
                .iter()
                .any(|w| w.contains("top level: unknown key \"comment\"")),
            "{fields:#?}"
        );
        assert!(
            fields.iter().any(|w| w.contains(
                "unknown key \"downstream_blocks\" (did you mean \"downstream_block_ids\"?)"
            )),
            "{fields:#?}"
        );
        let references = warnings_of(&report, "references");
        assert!(
            references
                .iter()
                .any(|w| w.contains("block \"c\" is not reachable from \"first\"")),
            "{references:#?}"
        );
    }

    #[test]
    fn bad_input_never_panics() {
        let inputs = [
            "null", "1", "\"s\"", "{}", "{\"ip_blocks\": {}}", "{\"ip_blocks\": [null, [], 1]}",
            "\u{feff}{}", "{\"first\": [null], \"ip_blocks\": [{\"id\": \"a\", \"type\": \"dish\"}]}",
            "{\"first\": \"a\", \"ip_blocks\": [{\"id\": \"a\", \"type\": \"dish\", \"downstream_block_ids\": [\"a\"]}]}",
            "{\"first\": \"a\", \"ip_blocks\": [{\"id\": \"a\", \"type\": \"dish\"}]}",
            "{\"first\": [\"a\"], \"ip_blocks\": [{\"id\": \"a\", \"type\": \"t\", \"constants\": {\"n\": 1e400}}]}",
            "{\"first\": [\"a\"], \"ip_blocks\": [{\"id\": \"a\", \"type\": \"t\", \"constants\": {\"n\": 18446744073709551615}}]}",
        ];
        for input in inputs {
            let (_, report) = text(input);
            assert_eq!(names(&report), CHECK_NAMES, "{input}");
        }
        let deep = "[".repeat(100_000);
        let (_, report) = text(&deep);
        assert_eq!(failed(&report), ["json"]);
        let (_, report) = check_config(Path::new(env!("CARGO_MANIFEST_DIR")), None);
        assert_eq!(failed(&report), ["json"]);
    }

    #[test]
    fn config_error_lists_every_error() {
        let dir =
            std::env::temp_dir().join(format!("bitstream-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        std::fs::write(
            &path,
            r#"{"id": "x", "ip_blocks": [{"id": "a"}], "first": ["a"]}"#,
        )
        .unwrap();
        let err = load_config(&path, None).unwrap_err();
        let shown = err.to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            shown.starts_with(&format!(
                "invalid bitstream config {} (2 errors):",
                path.display()
            )),
            "{shown}"
        );
        assert!(
            shown.contains("missing required field \"version\""),
            "{shown}"
        );
        assert!(shown.contains("missing required field \"type\""), "{shown}");
    }
}
