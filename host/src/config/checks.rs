//! Runs the six checks in order, skipping those an earlier failure makes
//! meaningless, and builds the [`BitstreamConfig`] when none failed.

use super::emulators::check_emulators;
use super::fields::{check_fields, Raw};
use super::graph::{check_block_ids, check_cycles, check_references, dedup, Resolved};
use super::json::check_json;
use super::model::{BitstreamConfig, BlockConfig};
use crate::report::CheckOutcome;

/// The names of the checks [`check_config`](super::check_config) records,
/// in order.
pub const CHECK_NAMES: [&str; 6] = [
    "json",
    "fields",
    "block_ids",
    "emulators",
    "references",
    "cycles",
];

/// Marks every check not yet in `checks` as skipped.
pub(super) fn skip_rest(checks: &mut Vec<CheckOutcome>, why: &str) {
    for name in CHECK_NAMES.iter().skip(checks.len()) {
        checks.push(CheckOutcome::skipped(*name, format!("not checked: {why}")));
    }
}

/// Runs the checks in order, recording each in `checks`; the config when
/// none failed.
pub(super) fn run_checks(
    p: &str,
    text: &str,
    available_types: Option<&[String]>,
    checks: &mut Vec<CheckOutcome>,
) -> Option<BitstreamConfig> {
    // json
    let (problems, parsed) = check_json(p, text);
    checks.push(CheckOutcome::from_problems("json", problems));
    let Some((root, repeats)) = parsed else {
        skip_rest(checks, "the config is not valid JSON");
        return None;
    };

    // fields
    let (problems, raw) = check_fields(p, &root, &repeats);
    checks.push(CheckOutcome::from_problems("fields", problems));
    let Some(raw) = raw else {
        skip_rest(
            checks,
            "the top level or its \"ip_blocks\" list is unusable (see the \"fields\" check)",
        );
        return None;
    };
    if raw.blocks.is_empty() {
        skip_rest(checks, "the config has no ip_blocks");
        return None;
    }

    // block_ids
    checks.push(CheckOutcome::from_problems(
        "block_ids",
        check_block_ids(p, &raw),
    ));
    let ids_unique = !checks[2].failed();

    // emulators
    checks.push(match available_types {
        Some(types) => CheckOutcome::from_problems("emulators", check_emulators(p, &raw, types)),
        None => CheckOutcome::skipped(
            "emulators",
            "not checked: no list of available emulator types was given",
        ),
    });

    // references
    let references = if raw.all_ids_known {
        let (problems, resolved) = check_references(p, &raw);
        let outcome = CheckOutcome::from_problems("references", problems);
        let ok = !outcome.failed();
        checks.push(outcome);
        ok.then_some(resolved)
    } else {
        checks.push(CheckOutcome::skipped(
            "references",
            "not checked: some blocks have no valid id (see the \"fields\" check)",
        ));
        None
    };

    // cycles
    let resolved = match references {
        None => {
            checks.push(CheckOutcome::skipped(
                "cycles",
                "not checked: the block references are not all valid",
            ));
            return None;
        }
        Some(_) if !ids_unique => {
            checks.push(CheckOutcome::skipped(
                "cycles",
                "not checked: block ids are not unique",
            ));
            return None;
        }
        // `None` when "first" could not be read (a "fields" error): the
        // chain's edges can still be checked.
        Some(resolved) => resolved,
    };
    let legacy_dish = resolved.as_ref().and_then(|r| r.legacy_dish.as_deref());
    checks.push(CheckOutcome::from_problems(
        "cycles",
        check_cycles(p, &raw, legacy_dish),
    ));

    match resolved {
        Some(resolved) if !checks.iter().any(CheckOutcome::failed) => {
            Some(build_config(raw, resolved))
        }
        _ => None,
    }
}

/// The config from what the checks read.
fn build_config(raw: Raw, resolved: Resolved) -> BitstreamConfig {
    let legacy_dish = resolved.legacy_dish;
    let ip_blocks = raw
        .blocks
        .into_iter()
        .filter(|b| b.id.is_none() || b.id != legacy_dish)
        .map(|b| BlockConfig {
            id: b.id.unwrap_or_default(),
            display_name: b.display_name,
            block_type: b.block_type.unwrap_or_default(),
            downstream_block_ids: dedup(&b.downstream.unwrap_or_default()),
            constants: b.constants,
        })
        .collect();
    BitstreamConfig {
        id: raw.id.unwrap_or_default(),
        version: raw.version.unwrap_or_default(),
        ip_blocks,
        first: resolved.first,
        legacy_dish,
        signal: raw.signal,
    }
}
