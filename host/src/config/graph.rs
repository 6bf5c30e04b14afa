//! The checks on the signal chain as a graph: `block_ids` (each node once),
//! `references` (every edge and `first` names a block; the legacy dish;
//! reachability) and `cycles` (the chain is acyclic).

use std::collections::{HashMap, HashSet, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::fields::{First, Raw, RawBlock};
use super::json::q;
use super::suggest::suggest_name;
use crate::report::{Problem, Severity};

// ---------------------------------------------------------------------------
// block_ids
// ---------------------------------------------------------------------------

/// The `block_ids` check: no two blocks share an id.
/// Block ids the HTTP API keeps for itself: `plugins` (its
/// `/plugins/<type>/reload` and `/rollback` have the shape of a block route
/// with a parameter, `/<block>/<route>/<param>`). The API's other paths
/// are one segment and never shadow a block's routes.
pub const RESERVED_BLOCK_IDS: [&str; 1] = ["plugins"];

pub(super) fn check_block_ids(p: &str, raw: &Raw) -> Vec<Problem> {
    let mut reserved: Vec<Problem> = raw
        .blocks
        .iter()
        .filter_map(|block| {
            let id = block.id.as_deref()?;
            RESERVED_BLOCK_IDS.contains(&id).then(|| {
                Problem::error(format!(
                    "{p}: ip_blocks[{}] has the id {}, which the HTTP API keeps for itself \
                     (/{id}/<type>/reload and /rollback hot-swap plugins); give the block \
                     another id",
                    block.index,
                    q(id)
                ))
            })
        })
        .collect();
    let mut order: Vec<&str> = Vec::new();
    let mut indexes: HashMap<&str, Vec<usize>> = HashMap::new();
    for block in &raw.blocks {
        if let Some(id) = &block.id {
            let list = indexes.entry(id).or_default();
            if list.is_empty() {
                order.push(id);
            }
            list.push(block.index);
        }
    }
    reserved.extend(order.into_iter().filter_map(|id| {
        let list = indexes.get(id)?;
        (list.len() > 1).then(|| {
            let names: Vec<String> = list.iter().map(|i| format!("ip_blocks[{i}]")).collect();
            Problem::error(format!(
                "{p}: block id {} is used by {}; block ids must be unique",
                q(id),
                join_and(&names)
            ))
        })
    }));
    reserved
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

// ---------------------------------------------------------------------------
// references
// ---------------------------------------------------------------------------

/// The effective start of the signal chain.
pub(super) struct Resolved {
    /// The ids of the blocks that receive the generated signal, without
    /// repeats.
    pub(super) first: Vec<String>,
    /// The legacy dish pseudo-block's id, if any.
    pub(super) legacy_dish: Option<String>,
}

/// The `references` check. Also resolves the start of the chain (`None`
/// when `first` could not be read).
pub(super) fn check_references(p: &str, raw: &Raw) -> (Vec<Problem>, Option<Resolved>) {
    let mut problems = Vec::new();
    let mut by_id: HashMap<&str, &RawBlock> = HashMap::new();
    for block in &raw.blocks {
        if let Some(id) = &block.id {
            by_id.entry(id).or_insert(block);
        }
    }
    let all_ids = || raw.blocks.iter().filter_map(|b| b.id.as_deref());
    let unknown = |what: String, id: &str| {
        let mut message = format!("{p}: {what} {}, which does not exist", q(id));
        if let Some(s) = suggest_name(id, all_ids()) {
            message.push_str(&format!("; did you mean {}?", q(s)));
        }
        Problem::error(message)
    };

    // The start of the chain, and the legacy dish.
    let mut legacy_dish: Option<&str> = None;
    let first: Option<Vec<String>> = match &raw.first {
        None => None,
        Some(First::Legacy(id)) => match by_id.get(id.as_str()) {
            None => {
                problems.push(unknown("field \"first\" names block".into(), id));
                None
            }
            Some(dish) if dish.is_dish() => {
                legacy_dish = Some(id);
                let downstream = dish.downstream.clone();
                if downstream.as_ref().is_some_and(Vec::is_empty) {
                    problems.push(Problem::error(format!(
                        "{p}: the dish pseudo-block {} (the legacy \"first\") has no \
                         downstream_block_ids, so no block receives the generated signal",
                        q(id)
                    )));
                }
                downstream
            }
            Some(_) => {
                problems.push(Problem::warning(format!(
                    "{p}: field \"first\" is a single block id, the format of configs up to \
                     0.0.14; write it as a list: [{}]",
                    q(id)
                )));
                Some(vec![id.clone()])
            }
        },
        Some(First::List(ids)) => {
            if ids.is_empty() {
                problems.push(Problem::error(format!(
                    "{p}: field \"first\" is empty, so no block receives the generated signal; \
                     list the blocks that do"
                )));
            }
            let mut seen = HashSet::new();
            for id in ids {
                if !seen.insert(id.as_str()) {
                    problems.push(Problem::warning(format!(
                        "{p}: field \"first\" lists {} more than once; the duplicate is ignored",
                        q(id)
                    )));
                    continue;
                }
                match by_id.get(id.as_str()) {
                    None => problems.push(unknown("field \"first\" names block".into(), id)),
                    Some(b) if b.is_dish() => problems.push(Problem::error(format!(
                        "{p}: field \"first\" names {}, a legacy \"dish\" pseudo-block; list the \
                         blocks it feeds instead",
                        q(id)
                    ))),
                    Some(_) => {}
                }
            }
            Some(dedup(ids))
        }
    };

    // Every downstream id.
    for block in &raw.blocks {
        let name = block.name();
        if block.is_dish() && block.id.as_deref() != legacy_dish {
            problems.push(Problem::error(format!(
                "{p}: {name} has type \"dish\", the signal-generator pseudo-block of configs up to \
                 0.0.14, which is only allowed when \"first\" is its id as a string; remove it and \
                 list the blocks it feeds in \"first\""
            )));
        }
        let Some(downstream) = &block.downstream else {
            continue;
        };
        let mut seen = HashSet::new();
        for d in downstream {
            if !seen.insert(d.as_str()) {
                problems.push(Problem::warning(format!(
                    "{p}: {name} lists downstream block {} more than once; the duplicate is \
                     ignored",
                    q(d)
                )));
                continue;
            }
            if block.id.as_deref() == Some(d.as_str()) {
                problems.push(Problem::error(format!(
                    "{p}: {name} lists itself in downstream_block_ids; a block cannot feed itself"
                )));
                continue;
            }
            match by_id.get(d.as_str()) {
                None => problems.push(unknown(format!("{name} lists downstream block"), d)),
                Some(target) if target.is_dish() => problems.push(Problem::error(format!(
                    "{p}: {name} lists {} downstream, but it is a legacy \"dish\" pseudo-block \
                     (the signal generator), which cannot receive signals",
                    q(d)
                ))),
                Some(_) => {}
            }
        }
    }

    // Reachability, when the chain is complete.
    let has_errors = problems.iter().any(|p| p.severity == Severity::Error);
    let complete = raw.blocks.iter().all(|b| b.downstream.is_some());
    if let (Some(first), false, true) = (&first, has_errors, complete) {
        let mut reached: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = first.iter().map(String::as_str).collect();
        while let Some(id) = queue.pop_front() {
            if !reached.insert(id) {
                continue;
            }
            if let Some(next) = by_id.get(id).and_then(|b| b.downstream.as_ref()) {
                queue.extend(next.iter().map(String::as_str));
            }
        }
        let start = first.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
        for block in &raw.blocks {
            match block.id.as_deref() {
                Some(id) if Some(id) != legacy_dish && !reached.contains(id) => {
                    problems.push(Problem::warning(format!(
                        "{p}: {} is not reachable from \"first\" ({start}): it will never receive \
                         a signal update",
                        block.name()
                    )));
                }
                _ => {}
            }
        }
    }

    let resolved = first.map(|first| Resolved {
        first,
        legacy_dish: legacy_dish.map(str::to_owned),
    });
    (problems, resolved)
}

/// The list without repeats, in order.
pub(super) fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// cycles
// ---------------------------------------------------------------------------

/// The `cycles` check: one error per cycle, naming one concrete cycle.
pub(super) fn check_cycles(p: &str, raw: &Raw, legacy_dish: Option<&str>) -> Vec<Problem> {
    let blocks: Vec<&RawBlock> = raw
        .blocks
        .iter()
        .filter(|b| b.id.is_some() && b.id.as_deref() != legacy_dish)
        .collect();
    // Node weights are positions in `blocks`.
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(blocks.len(), blocks.len());
    let mut nodes: HashMap<&str, NodeIndex> = HashMap::new();
    for (i, block) in blocks.iter().enumerate() {
        if let Some(id) = block.id.as_deref() {
            nodes.insert(id, graph.add_node(i));
        }
    }
    for block in &blocks {
        let (Some(id), Some(downstream)) = (block.id.as_deref(), &block.downstream) else {
            continue;
        };
        let Some(&from) = nodes.get(id) else { continue };
        for d in dedup(downstream) {
            if let Some(&to) = nodes.get(d.as_str()) {
                graph.add_edge(from, to, ());
            }
        }
    }

    let mut cycles: Vec<(usize, Vec<NodeIndex>)> = Vec::new();
    for scc in tarjan_scc(&graph) {
        let is_cycle = scc.len() > 1 || scc.iter().any(|&n| graph.contains_edge(n, n));
        if !is_cycle {
            continue;
        }
        if let Some(cycle) = find_cycle(&graph, &scc) {
            let position = scc.iter().map(|&n| graph[n]).min().unwrap_or(0);
            cycles.push((position, cycle));
        }
    }
    cycles.sort_by_key(|(position, _)| *position);
    cycles
        .into_iter()
        .map(|(_, cycle)| {
            let ids: Vec<&str> = cycle
                .iter()
                .chain(cycle.first())
                .filter_map(|&n| blocks.get(graph[n]).and_then(|b| b.id.as_deref()))
                .collect();
            Problem::error(format!(
                "{p}: cycle in the signal chain: {}; the signal chain must be acyclic",
                ids.join(" -> ")
            ))
        })
        .collect()
}

/// A shortest cycle through the first (in file order) node of a strongly
/// connected component, as its nodes in order (the start not repeated).
fn find_cycle(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Option<Vec<NodeIndex>> {
    let members: HashSet<NodeIndex> = scc.iter().copied().collect();
    let start = *scc.iter().min_by_key(|&&n| graph[n])?;
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        // Visit successors in file order, for stable messages.
        let mut next: Vec<NodeIndex> = graph
            .neighbors(node)
            .filter(|n| members.contains(n))
            .collect();
        next.sort_by_key(|&n| graph[n]);
        for succ in next {
            if succ == start {
                let mut path = vec![node];
                let mut at = node;
                while at != start {
                    at = *parent.get(&at)?;
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            if succ != start && !parent.contains_key(&succ) {
                parent.insert(succ, node);
                queue.push_back(succ);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::config::check_config;
    use crate::config::test_support::{errors, failed, fixture, status, text, types};
    use crate::report::CheckStatus;

    #[test]
    fn legacy_dish_is_normalised() {
        let available = types(&["counter"]);
        let (config, report) = check_config(&fixture("legacy_dish.json"), Some(&available));
        assert!(
            report
                .checks
                .iter()
                .all(|c| c.status == CheckStatus::Passed),
            "{report:#?}"
        );
        let config = config.expect("valid");
        assert_eq!(config.version, "0.0.14");
        assert_eq!(config.legacy_dish.as_deref(), Some("dish"));
        assert_eq!(config.first, ["ethernet_200g"]);
        assert!(config.block("dish").is_none());
        assert_eq!(config.ip_blocks.len(), 4);
        assert_eq!(config.block_types(), ["counter"]);
        assert!(config.ip_blocks.iter().all(|b| b.id != "dish"));
        assert_eq!(
            config.upstream_block_ids("ethernet_200g"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn legacy_dish_rules() {
        // A dish with two downstream blocks gives two first blocks.
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.12", "first": "sky",
                "ip_blocks": [
                  {"id": "sky", "type": "dish", "downstream_block_ids": ["a", "b"]},
                  {"id": "a", "type": "counter"},
                  {"id": "b", "type": "counter"}]}"#,
        );
        let config = config.unwrap_or_else(|| panic!("{report:#?}"));
        assert_eq!(config.first, ["a", "b"]);
        assert_eq!(config.legacy_dish.as_deref(), Some("sky"));

        // A dish in a current-format config is an error.
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["a"],
                "ip_blocks": [
                  {"id": "dish", "type": "dish", "downstream_block_ids": ["a"]},
                  {"id": "a", "type": "counter"}]}"#,
        );
        assert!(config.is_none());
        assert_eq!(failed(&report), ["references"]);

        // A block may not feed the dish.
        let (_, report) = text(
            r#"{"id": "x", "version": "0.0.14", "first": "dish",
                "ip_blocks": [
                  {"id": "dish", "type": "dish", "downstream_block_ids": ["a"]},
                  {"id": "a", "type": "counter", "downstream_block_ids": ["dish"]}]}"#,
        );
        assert_eq!(failed(&report), ["references"]);
        assert!(errors(&report)[0].contains("cannot receive signals"));

        // A string "first" naming a real block is accepted with a warning.
        let (config, report) = text(
            r#"{"id": "x", "version": "0.0.14", "first": "a",
                "ip_blocks": [{"id": "a", "type": "counter"}]}"#,
        );
        assert_eq!(config.unwrap().first, ["a"]);
        assert_eq!(status(&report, "references"), CheckStatus::Warning);
    }

    #[test]
    fn self_reference_and_unknown_ids() {
        let (_, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["a"],
                "ip_blocks": [{"id": "a", "type": "counter", "downstream_block_ids": ["a"]}]}"#,
        );
        assert_eq!(failed(&report), ["references"]);
        assert!(errors(&report)[0].contains("block \"a\" lists itself"));
        assert_eq!(status(&report, "cycles"), CheckStatus::Skipped);

        let (_, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": [],
                "ip_blocks": [{"id": "a", "type": "counter"}]}"#,
        );
        assert_eq!(failed(&report), ["references"]);
        assert!(errors(&report)[0].contains("field \"first\" is empty"));
    }

    #[test]
    fn cycles_are_named() {
        // Two separate cycles, and a block feeding into one of them.
        let (_, report) = text(
            r#"{"id": "x", "version": "0.0.16", "first": ["s"],
                "ip_blocks": [
                  {"id": "s", "type": "counter", "downstream_block_ids": ["p", "x"]},
                  {"id": "x", "type": "counter", "downstream_block_ids": ["y"]},
                  {"id": "y", "type": "counter", "downstream_block_ids": ["x"]},
                  {"id": "p", "type": "counter", "downstream_block_ids": ["q"]},
                  {"id": "q", "type": "counter", "downstream_block_ids": ["r", "s"]},
                  {"id": "r", "type": "counter", "downstream_block_ids": ["p"]}]}"#,
        );
        let errs = errors(&report);
        assert_eq!(
            errs,
            [
                "emulators/config.json: cycle in the signal chain: s -> p -> q -> s; the signal chain must be acyclic",
                "emulators/config.json: cycle in the signal chain: x -> y -> x; the signal chain must be acyclic",
            ]
        );
    }
}
