//! A readable account of an ABI mismatch: abi_stable's layout check
//! reports hundreds of lines, with the cause at the very end. This reruns
//! the check to get its findings as data and says, in a few lines, which
//! type differs, where it is reached from, what was expected and found,
//! and what to do. abi_stable's full report is kept as the detail.

use abi_stable::abi_stability::abi_checking::{
    check_layout_compatibility, AbiInstability, AbiInstabilityError, AbiInstabilityErrors,
};
use abi_stable::library::LibHeader;
use abi_stable::type_layout::TLFieldOrFunction;
use abi_stable::StableAbi;
use bitstream_sdk::ffi::PluginModuleRef;

/// How many differing types the summary names.
const SHOWN: usize = 3;

/// A layout mismatch, short and long.
pub(super) struct Mismatch {
    /// A few lines: type, field, expected vs found, what to do.
    pub(super) summary: String,
    /// abi_stable's full report, when the check could be rerun.
    pub(super) detail: Option<String>,
}

/// Describes why the plugin behind `header` fails the layout check.
pub(super) fn describe(header: &LibHeader) -> Mismatch {
    let errors = header
        .layout()
        .map(|found| check_layout_compatibility(<PluginModuleRef as StableAbi>::LAYOUT, found));
    match errors {
        Some(Err(errors)) => Mismatch {
            summary: summarize(&errors),
            detail: Some(errors.to_string()),
        },
        _ => Mismatch {
            summary: format!("abi_stable's layout check failed.\n{}", what_to_do()),
            detail: None,
        },
    }
}

fn what_to_do() -> String {
    format!(
        "To fix: rebuild the plugin against an unmodified bitstream-sdk 1.x no newer than this \
         host's {} (the SDK's ffi types must not be changed). The full layout report: \
         `validate-bitstream --verbose`, or `detail` in `--format json`.",
        bitstream_sdk::SDK_VERSION
    )
}

fn summarize(errors: &AbiInstabilityErrors) -> String {
    let mut lines: Vec<String> = errors
        .errors
        .iter()
        .filter(|e| !e.errs.is_empty())
        .take(SHOWN)
        .map(describe_one)
        .collect();
    let more = errors.errors.iter().filter(|e| !e.errs.is_empty()).count();
    if more > SHOWN {
        lines.push(format!("... and {} more", more - SHOWN));
    }
    if lines.is_empty() {
        lines.push("the root module's layout differs".to_owned());
    }
    lines.push(what_to_do());
    lines.join("\n")
}

/// The name a person knows a step of the path by: named fields only
/// (abi_stable's own steps, such as `0`, `field_0`, `param_2` and the
/// function behind a field, are left out).
fn entry_name(entry: &TLFieldOrFunction) -> Option<&'static str> {
    match entry {
        TLFieldOrFunction::Field(field) => {
            let name = field.name();
            let generated = name.chars().all(|c| c.is_ascii_digit())
                || name.starts_with("field_")
                || name.starts_with("param_");
            (!generated).then_some(name)
        }
        TLFieldOrFunction::Function(_) => None,
    }
}

/// `type PulseEvent (reached through event_handler → pulse): size
/// 16 expected, 24 found; 2 fields expected, 3 found`.
fn describe_one(error: &AbiInstabilityError) -> String {
    let type_name = error
        .stack_trace
        .iter()
        .rev()
        .find_map(|entry| match &entry.expected {
            TLFieldOrFunction::Field(field) => Some(field.layout().name().to_owned()),
            TLFieldOrFunction::Function(_) => None,
        })
        .unwrap_or_else(|| "PluginModule".to_owned());
    let path: Vec<&str> = error
        .stack_trace
        .iter()
        .filter_map(|e| entry_name(&e.expected))
        .collect();
    let findings: Vec<String> = error.errs.iter().map(finding).collect();
    let place = if path.is_empty() {
        String::from("the root module")
    } else {
        format!("reached through {}", path.join(" → "))
    };
    format!("type `{type_name}` ({place}): {}", findings.join("; "))
}

fn finding(kind: &AbiInstability) -> String {
    use AbiInstability as AI;
    match kind {
        AI::Size(v) => format!("size {} bytes expected, {} found", v.expected, v.found),
        AI::Alignment(v) => format!("alignment {} expected, {} found", v.expected, v.found),
        AI::FieldCountMismatch(v) => {
            format!("{} fields expected, {} found", v.expected, v.found)
        }
        AI::UnexpectedField(v) => format!(
            "field `{}` expected, `{}` found",
            v.expected.name(),
            v.found.name()
        ),
        AI::Name(v) => format!("type `{}` expected, `{}` found", v.expected, v.found),
        AI::TooManyVariants(v) => {
            format!("{} variants expected, {} found", v.expected, v.found)
        }
        AI::UnexpectedVariant(v) => {
            format!("variant `{}` expected, `{}` found", v.expected, v.found)
        }
        AI::MismatchedPrefixSize(v) => {
            format!("{} prefix fields expected, {} found", v.expected, v.found)
        }
        AI::PackageVersion(v) => {
            format!("package version {} expected, {} found", v.expected, v.found)
        }
        other => {
            // The variant's name is enough here; the detail has the rest.
            let debug = format!("{other:?}");
            let name = debug.split(['(', ' ', '{']).next().unwrap_or("layout");
            format!("{name} differs")
        }
    }
}
