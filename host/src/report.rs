//! The results of checking plugins and configs, shared by the validator's
//! outputs and the engine's startup. The JSON form is the validator's
//! documented schema (see `validate/README.md`): add fields, never rename.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How bad a problem is.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Makes the plugin or config invalid.
    Error,
    /// Worth fixing; does not make it invalid.
    Warning,
}

/// One problem found by a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the file, block, state, route or field, and
    /// what to do about it (a few lines at most).
    pub message: String,
    /// The long form, when there is one (abi_stable's full layout report
    /// of an ABI mismatch). Shown by `validate-bitstream --verbose`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    /// An error.
    pub fn error(message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            message: message.into(),
            detail: None,
        }
    }

    /// A warning.
    pub fn warning(message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            message: message.into(),
            detail: None,
        }
    }

    /// The same problem with a long form.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// The outcome of one check.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// No problem.
    Passed,
    /// Only warnings.
    Warning,
    /// At least one error.
    Failed,
    /// Not run because an earlier check failed.
    Skipped,
}

/// One named check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The check's stable name, for example `state_machine`.
    pub name: String,
    /// Derived from `problems`, or `skipped`.
    pub status: CheckStatus,
    /// What it found (for a skipped check: one warning saying why).
    pub problems: Vec<Problem>,
}

impl CheckOutcome {
    /// A check that ran and found `problems` (possibly none).
    pub fn from_problems(name: impl Into<String>, problems: Vec<Problem>) -> Self {
        let status = if problems.iter().any(|p| p.severity == Severity::Error) {
            CheckStatus::Failed
        } else if problems.is_empty() {
            CheckStatus::Passed
        } else {
            CheckStatus::Warning
        };
        CheckOutcome {
            name: name.into(),
            status,
            problems,
        }
    }

    /// A check that did not run.
    pub fn skipped(name: impl Into<String>, reason: impl Into<String>) -> Self {
        CheckOutcome {
            name: name.into(),
            status: CheckStatus::Skipped,
            problems: vec![Problem::warning(reason)],
        }
    }

    /// Whether the check found an error.
    pub fn failed(&self) -> bool {
        self.status == CheckStatus::Failed
    }
}

/// Everything found about one plugin (one `emulators/<type>/emulator` folder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginReport {
    /// The folder name under `emulators/`.
    pub ip_block_type: String,
    /// The `emulators/<type>/emulator` folder.
    pub folder: PathBuf,
    /// The shared object, when the folder holds exactly one.
    pub library: Option<PathBuf>,
    /// The plugin crate's name, once loaded.
    pub plugin_name: Option<String>,
    /// The plugin crate's version, once loaded.
    pub plugin_version: Option<String>,
    /// The SDK version that built it, once its header is read.
    pub sdk_version: Option<String>,
    /// Every check, in the order they ran.
    pub checks: Vec<CheckOutcome>,
}

impl PluginReport {
    /// A report with no checks yet.
    pub fn new(ip_block_type: impl Into<String>, folder: impl Into<PathBuf>) -> Self {
        PluginReport {
            ip_block_type: ip_block_type.into(),
            folder: folder.into(),
            library: None,
            plugin_name: None,
            plugin_version: None,
            sdk_version: None,
            checks: Vec::new(),
        }
    }

    /// Whether no check failed.
    pub fn is_valid(&self) -> bool {
        !self.checks.iter().any(CheckOutcome::failed)
    }
}

/// Everything found about `emulators/config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// The config file.
    pub path: PathBuf,
    /// Every check, in the order they ran.
    pub checks: Vec<CheckOutcome>,
}

impl ConfigReport {
    /// Whether no check failed.
    pub fn is_valid(&self) -> bool {
        !self.checks.iter().any(CheckOutcome::failed)
    }
}
