//! The validator's three output formats. The JSON schema is documented in
//! `validate/README.md` and versioned by `schema_version`.

use std::path::PathBuf;

use anyhow::Result;
use bitstream_host::report::{CheckOutcome, CheckStatus, ConfigReport, PluginReport, Severity};
use quick_xml::events::{BytesCData, BytesDecl, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde::Serialize;

/// The version of the JSON output's schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything the validator found.
#[derive(Debug, Serialize)]
pub struct ValidationReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The directory given on the command line.
    pub target: PathBuf,
    /// `true` when no plugin and no config check failed.
    pub valid: bool,
    /// One entry per plugin checked.
    pub plugins: Vec<PluginEntry>,
    /// The config's checks, when there is a config.
    pub config: Option<ConfigEntry>,
    /// Counts.
    pub summary: Summary,
}

/// A plugin's report with its verdict.
#[derive(Debug, Serialize)]
pub struct PluginEntry {
    /// `true` when no check failed.
    pub valid: bool,
    /// The report.
    #[serde(flatten)]
    pub report: PluginReport,
}

/// The config's report with its verdict.
#[derive(Debug, Serialize)]
pub struct ConfigEntry {
    /// `true` when no check failed.
    pub valid: bool,
    /// The report.
    #[serde(flatten)]
    pub report: ConfigReport,
}

/// Counts over the whole run.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Plugins checked.
    pub plugins: usize,
    /// Plugins with a failed check.
    pub invalid_plugins: usize,
    /// Problems of severity error.
    pub errors: usize,
    /// Problems of severity warning (skipped checks not counted).
    pub warnings: usize,
}

impl ValidationReport {
    /// Assembles the report.
    pub fn new(target: PathBuf, plugins: Vec<PluginReport>, config: Option<ConfigReport>) -> Self {
        let all_checks = || {
            plugins
                .iter()
                .flat_map(|p| p.checks.iter())
                .chain(config.iter().flat_map(|c| c.checks.iter()))
        };
        let count = |severity| {
            all_checks()
                .filter(|c| c.status != CheckStatus::Skipped)
                .flat_map(|c| c.problems.iter())
                .filter(|p| p.severity == severity)
                .count()
        };
        let summary = Summary {
            plugins: plugins.len(),
            invalid_plugins: plugins.iter().filter(|p| !p.is_valid()).count(),
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
        };
        let valid =
            summary.invalid_plugins == 0 && config.as_ref().is_none_or(ConfigReport::is_valid);
        ValidationReport {
            schema_version: SCHEMA_VERSION,
            target,
            valid,
            plugins: plugins
                .into_iter()
                .map(|report| PluginEntry {
                    valid: report.is_valid(),
                    report,
                })
                .collect(),
            config: config.map(|report| ConfigEntry {
                valid: report.is_valid(),
                report,
            }),
            summary,
        }
    }
}

/// Text for people: one line per plugin, then each of its problems; with
/// `verbose`, each problem's long form (abi_stable's full layout report of
/// an ABI mismatch) under it.
pub fn text(report: &ValidationReport, verbose: bool) -> String {
    let mut out = String::new();
    for entry in &report.plugins {
        let p = &entry.report;
        let verdict = if entry.valid { "ok     " } else { "INVALID" };
        let built = match (&p.plugin_name, &p.plugin_version, &p.sdk_version) {
            (Some(name), Some(version), Some(sdk)) => format!(" ({name} {version}, SDK {sdk})"),
            (_, _, Some(sdk)) => format!(" (SDK {sdk})"),
            _ => String::new(),
        };
        let path = p.library.as_ref().unwrap_or(&p.folder);
        out.push_str(&format!(
            "{verdict} {}{built}: {}\n",
            p.ip_block_type,
            path.display()
        ));
        push_problems(&mut out, &p.checks, verbose);
    }
    if let Some(entry) = &report.config {
        let verdict = if entry.valid { "ok     " } else { "INVALID" };
        out.push_str(&format!(
            "{verdict} config: {}\n",
            entry.report.path.display()
        ));
        push_problems(&mut out, &entry.report.checks, verbose);
    }
    let s = &report.summary;
    let config = match &report.config {
        Some(c) if c.valid => "; config valid",
        Some(_) => "; config INVALID",
        None => "",
    };
    out.push_str(&format!(
        "{} plugin(s) checked, {} invalid{config}; {} error(s), {} warning(s)\n",
        s.plugins, s.invalid_plugins, s.errors, s.warnings
    ));
    out
}

fn push_problems(out: &mut String, checks: &[CheckOutcome], verbose: bool) {
    for check in checks.iter().filter(|c| c.status != CheckStatus::Skipped) {
        for problem in &check.problems {
            let severity = match problem.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            // Continuation lines of a multi-line message line up under it.
            let message = problem.message.replace('\n', "\n        ");
            out.push_str(&format!("    {severity} [{}]: {message}\n", check.name));
            match &problem.detail {
                Some(detail) if verbose => {
                    out.push_str("        detail:\n");
                    for line in detail.lines() {
                        out.push_str(&format!("          {line}\n"));
                    }
                }
                _ => {}
            }
        }
    }
}

/// JSON, pretty-printed, with the schema in `validate/README.md`.
pub fn json(report: &ValidationReport) -> Result<String> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}

/// JUnit XML: one test suite per plugin and one for the config, one test
/// case per check.
pub fn junit(report: &ValidationReport) -> Result<String> {
    let mut suites: Vec<(String, Option<&str>, &[CheckOutcome])> = report
        .plugins
        .iter()
        .map(|p| {
            (
                format!("plugin {}", p.report.ip_block_type),
                p.report.sdk_version.as_deref(),
                p.report.checks.as_slice(),
            )
        })
        .collect();
    if let Some(config) = &report.config {
        suites.push(("config".to_owned(), None, config.report.checks.as_slice()));
    }
    let count =
        |checks: &[CheckOutcome], status| checks.iter().filter(|c| c.status == status).count();

    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let all: Vec<&CheckOutcome> = suites.iter().flat_map(|(_, _, c)| c.iter()).collect();
    let total = all.len().to_string();
    let failures = all.iter().filter(|c| c.failed()).count().to_string();
    let skipped = all
        .iter()
        .filter(|c| c.status == CheckStatus::Skipped)
        .count()
        .to_string();
    writer.write_event(Event::Start(BytesStart::new("testsuites").with_attributes(
        [
            ("name", "validate-bitstream"),
            ("tests", total.as_str()),
            ("failures", failures.as_str()),
            ("errors", "0"),
            ("skipped", skipped.as_str()),
        ],
    )))?;
    for (suite, sdk_version, checks) in &suites {
        let tests = checks.len().to_string();
        let failures = count(checks, CheckStatus::Failed).to_string();
        let skipped = count(checks, CheckStatus::Skipped).to_string();
        writer.write_event(Event::Start(BytesStart::new("testsuite").with_attributes(
            [
                ("name", suite.as_str()),
                ("tests", tests.as_str()),
                ("failures", failures.as_str()),
                ("errors", "0"),
                ("skipped", skipped.as_str()),
            ],
        )))?;
        if let Some(sdk_version) = sdk_version {
            // The SDK version that built the plugin, also when it is refused.
            writer.write_event(Event::Start(BytesStart::new("properties")))?;
            writer.write_event(Event::Empty(
                BytesStart::new("property")
                    .with_attributes([("name", "sdk_version"), ("value", *sdk_version)]),
            ))?;
            writer.write_event(Event::End(BytesStart::new("properties").to_end()))?;
        }
        for check in *checks {
            write_case(&mut writer, suite, check)?;
        }
        writer.write_event(Event::End(BytesStart::new("testsuite").to_end()))?;
    }
    writer.write_event(Event::End(BytesStart::new("testsuites").to_end()))?;
    let mut xml = String::from_utf8(writer.into_inner())?;
    xml.push('\n');
    Ok(xml)
}

fn write_case(writer: &mut Writer<Vec<u8>>, suite: &str, check: &CheckOutcome) -> Result<()> {
    let case = BytesStart::new("testcase")
        .with_attributes([("classname", suite), ("name", check.name.as_str())]);
    let messages: Vec<&str> = check.problems.iter().map(|p| p.message.as_str()).collect();
    match check.status {
        CheckStatus::Passed => {
            writer.write_event(Event::Empty(case))?;
        }
        CheckStatus::Failed | CheckStatus::Skipped | CheckStatus::Warning => {
            writer.write_event(Event::Start(case.borrow()))?;
            let first = messages.first().copied().unwrap_or_default();
            match check.status {
                CheckStatus::Failed => {
                    let failure = BytesStart::new("failure")
                        .with_attributes([("message", first), ("type", "error")]);
                    writer.write_event(Event::Start(failure))?;
                    writer.write_event(Event::Text(BytesText::new(&messages.join("\n"))))?;
                    writer.write_event(Event::End(BytesStart::new("failure").to_end()))?;
                }
                CheckStatus::Skipped => {
                    writer.write_event(Event::Empty(
                        BytesStart::new("skipped").with_attributes([("message", first)]),
                    ))?;
                }
                _ => {
                    writer.write_event(Event::Start(BytesStart::new("system-out")))?;
                    let warnings = messages
                        .iter()
                        .map(|m| format!("warning: {m}"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    writer.write_event(Event::CData(BytesCData::new(warnings)))?;
                    writer.write_event(Event::End(BytesStart::new("system-out").to_end()))?;
                }
            }
            writer.write_event(Event::End(BytesStart::new("testcase").to_end()))?;
        }
    }
    Ok(())
}
