//! The `emulators` check: every block type has an emulator folder.

use super::fields::Raw;
use super::json::q;
use super::model::LEGACY_DISH_TYPE;
use super::suggest::suggest_name;
use crate::report::Problem;

/// Checks the block types against `available`, the types that have an
/// `emulators/<type>/emulator` folder.
pub(super) fn check_emulators(p: &str, raw: &Raw, available: &[String]) -> Vec<Problem> {
    let mut names: Vec<&str> = available.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let listed = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    let mut problems = Vec::new();
    for block in &raw.blocks {
        let Some(ty) = block.block_type.as_deref() else {
            continue;
        };
        if ty == LEGACY_DISH_TYPE || names.contains(&ty) {
            continue;
        }
        let mut message = format!(
            "{p}: {} has type {}, but there is no emulators/{ty}/emulator folder (available: {listed})",
            block.name(),
            q(ty)
        );
        if let Some(s) = suggest_name(ty, names.iter().copied()) {
            message.push_str(&format!("; did you mean {}?", q(s)));
        }
        problems.push(Problem::error(message));
    }
    problems
}
