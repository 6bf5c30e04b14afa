//! What the config tests share: fixture paths and report readers.

use std::path::{Path, PathBuf};

use super::{check_config_text, BitstreamConfig};
use crate::report::{CheckStatus, ConfigReport, Severity};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed config of a real bitstream package under `fixtures/`.
pub(super) fn real_config(package: &str) -> PathBuf {
    manifest()
        .join("../fixtures")
        .join(package)
        .join("emulators/config.json")
}

/// A config under `fixtures/configs/`.
pub(super) fn fixture(name: &str) -> PathBuf {
    manifest().join("../fixtures/configs").join(name)
}

/// The check names, in report order.
pub(super) fn names(report: &ConfigReport) -> Vec<&str> {
    report.checks.iter().map(|c| c.name.as_str()).collect()
}

/// The status of the check `name`.
pub(super) fn status(report: &ConfigReport, name: &str) -> CheckStatus {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.status)
        .unwrap_or_else(|| panic!("no check {name}"))
}

/// The names of the failed checks.
pub(super) fn failed(report: &ConfigReport) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| c.failed())
        .map(|c| c.name.as_str())
        .collect()
}

/// Every error message, in check order.
pub(super) fn errors(report: &ConfigReport) -> Vec<&str> {
    report
        .checks
        .iter()
        .flat_map(|c| &c.problems)
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.message.as_str())
        .collect()
}

/// The warning messages of the check `check`.
pub(super) fn warnings_of<'a>(report: &'a ConfigReport, check: &str) -> Vec<&'a str> {
    report
        .checks
        .iter()
        .filter(|c| c.name == check)
        .flat_map(|c| &c.problems)
        .filter(|p| p.severity == Severity::Warning)
        .map(|p| p.message.as_str())
        .collect()
}

/// Checks config text shown as `emulators/config.json`, without the
/// `emulators` check.
pub(super) fn text(json: &str) -> (Option<BitstreamConfig>, ConfigReport) {
    check_config_text(Path::new("emulators/config.json"), json, None)
}

/// Owned type names.
pub(super) fn types(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The block types of the real VCC package.
pub(super) const REAL_TYPES: [&str; 8] = [
    "ftile_ethernet",
    "packet_validation",
    "wideband_input_buffer",
    "wideband_power_meter",
    "frequency_shifter",
    "vcc_ch20",
    "vcc_fs_selection",
    "packetizer",
];
