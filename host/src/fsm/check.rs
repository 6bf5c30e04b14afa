//! Checks of a state machine description.
//!
//! [`check_machine`] reads a [`MachineDesc`] as data (no plugin code runs)
//! and reports what would make the engine refuse it (errors) and what is
//! probably a mistake (warnings). The engine ([`Machine::new`]) refuses
//! exactly the descriptions this check reports errors for, and the
//! plugin checks (`checks::plugin`) run it on every plugin's machine.
//!
//! Transitions are named in messages by their 1-based position in the
//! description and a short form, for example
//! `transition #3 (START: RESET -> NO_LINK)`.
//!
//! [`Machine::new`]: super::Machine::new

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::model::{MachineDesc, StateRef, TransitionDesc};

use crate::report::Problem;

/// The most states (and the most triggers) a machine may declare: their ids
/// are 16-bit.
pub const MAX_STATES: usize = u16::MAX as usize + 1;

/// The most triggers a machine may declare: their ids are 16-bit.
pub const MAX_TRIGGERS: usize = u16::MAX as usize + 1;

/// Checks a state machine description.
///
/// Errors: no states; a duplicate or empty state or trigger name; an
/// initial state that is not declared; a transition with no source, naming
/// an undeclared state or trigger, with `FROM_ANY` among other sources,
/// `TO_SAME` as a source or `FROM_ANY` as a destination; two transitions
/// without conditions for the same source state and trigger (only the first
/// could ever fire).
///
/// Warnings: a state no chain of transitions leads to from the initial
/// state (conditions ignored); a declared trigger no transition uses; a
/// transition with conditions that can never fire from some state because
/// an earlier transition without conditions always wins there; a condition
/// with an empty label.
pub fn check_machine(desc: &MachineDesc) -> Vec<Problem> {
    let mut problems = Vec::new();
    let states: Vec<&str> = desc.states.iter().map(|s| s.as_str()).collect();
    let triggers: Vec<&str> = desc.triggers.iter().map(|t| t.as_str()).collect();

    check_names(&states, "state", "states", MAX_STATES, &mut problems);
    check_names(
        &triggers,
        "trigger",
        "triggers",
        MAX_TRIGGERS,
        &mut problems,
    );

    // The first index of every non-empty state name.
    let mut state_index: HashMap<&str, usize> = HashMap::new();
    for (i, s) in states.iter().enumerate() {
        if !s.is_empty() {
            state_index.entry(s).or_insert(i);
        }
    }
    let trigger_set: HashMap<&str, usize> = triggers
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.is_empty())
        .map(|(i, t)| (*t, i))
        .collect();

    let initial = desc.initial.as_str();
    let initial_index = state_index.get(initial).copied();
    if !states.is_empty() && initial_index.is_none() {
        if initial.is_empty() {
            problems.push(Problem::error(format!(
                "the initial state is empty; set it to one of the declared states: {}",
                quote_list(states.iter().copied())
            )));
        } else {
            problems.push(Problem::error(format!(
                "initial state \"{initial}\" is not a declared state; set it to one of the declared states ({}) or declare it",
                quote_list(states.iter().copied())
            )));
        }
    }

    for (i, t) in desc.transitions.iter().enumerate() {
        check_transition(
            i,
            t,
            &states,
            &state_index,
            &triggers,
            &trigger_set,
            &mut problems,
        );
    }

    check_ambiguity(desc, &states, &mut problems);

    if let Some(initial_index) = initial_index {
        check_reachability(desc, &states, &state_index, initial_index, &mut problems);
    }

    for (i, trigger) in triggers.iter().enumerate() {
        let first = trigger_set.get(trigger).copied();
        if trigger.is_empty() || first != Some(i) {
            continue;
        }
        if !desc
            .transitions
            .iter()
            .any(|t| t.trigger.as_str() == *trigger)
        {
            problems.push(Problem::warning(format!(
                "trigger \"{trigger}\" is declared but no transition uses it; add a transition for it or remove it from the triggers"
            )));
        }
    }

    problems
}

/// Empty, duplicate and too many names in a list of states or triggers.
fn check_names(names: &[&str], what: &str, plural: &str, max: usize, problems: &mut Vec<Problem>) {
    if names.is_empty() && what == "state" {
        problems.push(Problem::error(
            "the machine declares no states; declare at least the initial state",
        ));
    }
    if names.len() > max {
        problems.push(Problem::error(format!(
            "the machine declares {} {plural}; at most {max} are supported",
            names.len()
        )));
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for name in names.iter().filter(|n| !n.is_empty()) {
        *counts.entry(name).or_insert(0) += 1;
    }
    let mut reported: HashMap<&str, ()> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            problems.push(Problem::error(format!(
                "{what} #{} has an empty name; give every {what} a non-empty name",
                i + 1
            )));
            continue;
        }
        let count = counts.get(name).copied().unwrap_or(0);
        if count > 1 && reported.insert(name, ()).is_none() {
            problems.push(Problem::error(format!(
                "duplicate {what} \"{name}\": it is declared {count} times; declare each {what} once"
            )));
        }
    }
}

/// The per-transition rules.
fn check_transition(
    i: usize,
    t: &TransitionDesc,
    states: &[&str],
    state_index: &HashMap<&str, usize>,
    triggers: &[&str],
    trigger_set: &HashMap<&str, usize>,
    problems: &mut Vec<Problem>,
) {
    let name = describe_transition(i, t);
    let trigger = t.trigger.as_str();
    if trigger.is_empty() {
        problems.push(Problem::error(format!(
            "{name} has an empty trigger; set it to one of the declared triggers ({})",
            declared_list(triggers)
        )));
    } else if !trigger_set.contains_key(trigger) {
        problems.push(Problem::error(format!(
            "{name} uses undeclared trigger \"{trigger}\"; declare it in the triggers or fix the name (declared triggers: {})",
            declared_list(triggers)
        )));
    }

    if t.sources.is_empty() {
        problems.push(Problem::error(format!(
            "{name} has no source; give it a source state, a list of states, or FROM_ANY"
        )));
    }
    let has_any = t.sources.contains(&StateRef::FromAny);
    if has_any && t.sources.len() > 1 {
        problems.push(Problem::error(format!(
            "{name}: FROM_ANY must be the only source; remove the other sources, or replace FROM_ANY with a list of states"
        )));
    }
    let mut reported_to_same = false;
    let mut reported_undeclared: Vec<&str> = Vec::new();
    for source in t.sources.iter() {
        match source {
            StateRef::FromAny => {}
            StateRef::ToSame => {
                if !reported_to_same {
                    reported_to_same = true;
                    problems.push(Problem::error(format!(
                        "{name}: TO_SAME is not a valid source (it is valid only as a destination); name the source state(s) or use FROM_ANY"
                    )));
                }
            }
            StateRef::State(s) => {
                let s = s.as_str();
                if !state_index.contains_key(s) && !reported_undeclared.contains(&s) {
                    reported_undeclared.push(s);
                    problems.push(Problem::error(format!(
                        "{name} leaves from undeclared state \"{s}\"; declare it in the states or fix the name (declared states: {})",
                        declared_list(states)
                    )));
                }
            }
        }
    }
    match &t.dest {
        StateRef::ToSame => {}
        StateRef::FromAny => problems.push(Problem::error(format!(
            "{name}: FROM_ANY is not a valid destination (it is valid only as the sole source); name the destination state, or use TO_SAME to stay in the current state"
        ))),
        StateRef::State(d) => {
            let d = d.as_str();
            if !state_index.contains_key(d) {
                problems.push(Problem::error(format!(
                    "{name} enters undeclared state \"{d}\"; declare it in the states or fix the name (declared states: {})",
                    declared_list(states)
                )));
            }
        }
    }
    for (k, c) in t.conditions.iter().enumerate() {
        if c.label.as_str().trim().is_empty() {
            problems.push(Problem::warning(format!(
                "{name}: condition #{} (id {}) has an empty label; give it a label, which state diagrams and error messages show",
                k + 1,
                c.id
            )));
        }
    }
}

/// Two unconditioned transitions for the same (source state, trigger), and
/// conditioned transitions shadowed by an earlier unconditioned one.
fn check_ambiguity(desc: &MachineDesc, states: &[&str], problems: &mut Vec<Problem>) {
    // (source state, trigger) -> the first transition without conditions.
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    // (earlier, later) -> the states where `earlier` shadows `later`.
    let mut shadowed: Vec<((usize, usize), Vec<&str>)> = Vec::new();
    let mut shadowed_index: HashMap<(usize, usize), usize> = HashMap::new();

    for (j, t) in desc.transitions.iter().enumerate() {
        let trigger = t.trigger.as_str();
        let unconditioned = t.conditions.is_empty();
        for source in expand_sources(t, states) {
            match first.get(&(source, trigger)) {
                Some(&i) => {
                    let slot = *shadowed_index.entry((i, j)).or_insert_with(|| {
                        shadowed.push(((i, j), Vec::new()));
                        shadowed.len() - 1
                    });
                    let list = &mut shadowed[slot].1;
                    if !list.contains(&source) {
                        list.push(source);
                    }
                }
                None => {
                    if unconditioned {
                        first.insert((source, trigger), j);
                    }
                }
            }
        }
    }

    for ((i, j), sources) in shadowed {
        let (Some(earlier), Some(later)) = (desc.transitions.get(i), desc.transitions.get(j))
        else {
            continue;
        };
        let trigger = later.trigger.as_str();
        let from = if sources.len() == 1 {
            format!("state {}", quote_list(sources.iter().copied()))
        } else {
            format!("states {}", quote_list(sources.iter().copied()))
        };
        let earlier_name = describe_transition(i, earlier);
        let later_name = describe_transition(j, later);
        if later.conditions.is_empty() {
            let dests = if earlier.dest == later.dest {
                format!("both go to {}", describe_dest(&earlier.dest))
            } else {
                format!(
                    "destinations {} and {}",
                    describe_dest(&earlier.dest),
                    describe_dest(&later.dest)
                )
            };
            problems.push(Problem::error(format!(
                "ambiguous transitions: {earlier_name} and {later_name} both fire on trigger \"{trigger}\" from {from} with no conditions ({dests}); only #{} can ever fire there. Add a condition to one of them, or remove one",
                i + 1
            )));
        } else {
            problems.push(Problem::warning(format!(
                "{later_name} can never fire from {from}: {earlier_name} has no conditions and is tried first for trigger \"{trigger}\"; move #{} before #{}, or add a condition to #{}",
                j + 1,
                i + 1,
                i + 1
            )));
        }
    }
}

/// Warns about states no chain of transitions reaches from the initial one.
fn check_reachability(
    desc: &MachineDesc,
    states: &[&str],
    state_index: &HashMap<&str, usize>,
    initial_index: usize,
    problems: &mut Vec<Problem>,
) {
    let mut reached = vec![false; states.len()];
    if let Some(r) = reached.get_mut(initial_index) {
        *r = true;
    }
    let mut changed = true;
    while changed {
        changed = false;
        for t in desc.transitions.iter() {
            let StateRef::State(dest) = &t.dest else {
                continue;
            };
            let Some(&d) = state_index.get(dest.as_str()) else {
                continue;
            };
            if reached.get(d).copied().unwrap_or(true) {
                continue;
            }
            let leaves_reached = t.sources.iter().any(|s| match s {
                StateRef::FromAny => true,
                StateRef::State(name) => state_index
                    .get(name.as_str())
                    .and_then(|&k| reached.get(k).copied())
                    .unwrap_or(false),
                StateRef::ToSame => false,
            });
            if leaves_reached {
                reached[d] = true;
                changed = true;
            }
        }
    }
    let initial = states.get(initial_index).copied().unwrap_or_default();
    for (i, s) in states.iter().enumerate() {
        // Report each name once, at its first declaration.
        if s.is_empty() || state_index.get(s) != Some(&i) || reached[i] {
            continue;
        }
        problems.push(Problem::warning(format!(
            "state \"{s}\" is unreachable: no chain of transitions from the initial state \"{initial}\" leads to it (conditions ignored); add a transition into it or remove it"
        )));
    }
}

/// The declared states a transition leaves from: `FROM_ANY` stands for every
/// state; undeclared names and `TO_SAME` are left out; each state once.
fn expand_sources<'a>(t: &'a TransitionDesc, states: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for source in t.sources.iter() {
        match source {
            StateRef::FromAny => {
                for s in states {
                    if !s.is_empty() && !out.contains(s) {
                        out.push(s);
                    }
                }
            }
            StateRef::State(name) => {
                let name = name.as_str();
                if states.contains(&name) && !out.contains(&name) {
                    out.push(name);
                }
            }
            StateRef::ToSame => {}
        }
    }
    out
}

/// A transition for messages: `transition #3 (START: RESET -> NO_LINK)`,
/// numbered from 1 in declaration order.
pub(super) fn describe_transition(index: usize, t: &TransitionDesc) -> String {
    let mut out = format!("transition #{} ({}: ", index + 1, t.trigger);
    if t.sources.is_empty() {
        out.push_str("<no source>");
    } else {
        for (k, s) in t.sources.iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{s}");
        }
    }
    let _ = write!(out, " -> {})", t.dest);
    out
}

/// A destination for messages: `"LINK"` or `TO_SAME (stay)`.
fn describe_dest(dest: &StateRef) -> String {
    match dest {
        StateRef::State(s) => format!("\"{s}\""),
        StateRef::ToSame => "TO_SAME (stay in the current state)".to_owned(),
        StateRef::FromAny => "FROM_ANY".to_owned(),
    }
}

/// `"A", "B", "C"`.
pub(super) fn quote_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "\"{name}\"");
    }
    out
}

/// `"A", "B"`, or `none are declared`.
fn declared_list(names: &[&str]) -> String {
    if names.is_empty() {
        "none are declared".to_owned()
    } else {
        quote_list(names.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConditionDesc, TransitionDesc};
    use crate::report::Severity;
    use bitstream_sdk::{StateMachine, Transition, FROM_ANY, TO_SAME};

    fn errors(problems: &[Problem]) -> Vec<&str> {
        problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.message.as_str())
            .collect()
    }

    fn warnings(problems: &[Problem]) -> Vec<&str> {
        problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .map(|p| p.message.as_str())
            .collect()
    }

    /// Asserts exactly one problem of `severity` and that it contains every
    /// fragment.
    #[track_caller]
    fn assert_one(problems: &[Problem], severity: Severity, fragments: &[&str]) {
        let matching: Vec<&Problem> = problems.iter().filter(|p| p.severity == severity).collect();
        assert_eq!(
            matching.len(),
            1,
            "expected one {severity:?}, got {problems:#?}"
        );
        for fragment in fragments {
            assert!(
                matching[0].message.contains(fragment),
                "{:?} does not contain {fragment:?}",
                matching[0].message
            );
        }
    }

    fn always(_: &bitstream_sdk::ValueMap) -> bool {
        true
    }

    fn simple() -> StateMachine {
        StateMachine::new(["A", "B"], "A")
            .triggers(["GO"])
            .transition(Transition::on("GO").from("A").to("B"))
    }

    fn transition(trigger: &str, sources: Vec<StateRef>, dest: StateRef) -> TransitionDesc {
        TransitionDesc {
            trigger: String::from(trigger),
            sources,
            dest,
            conditions: Vec::new(),
        }
    }

    fn state(name: &str) -> StateRef {
        StateRef::State(String::from(name))
    }

    // The real plugins' machines (and the fixtures' two-state machine) are
    // checked in `host/tests/fsm_real_machines.rs`, loaded from the plugins.

    #[test]
    fn simple_machine_has_no_problems() {
        assert_eq!(check_machine(&simple().describe().into()), []);
    }

    #[test]
    fn every_kind_of_transition_without_problems() {
        let desc: MachineDesc = StateMachine::new(["A", "B", "C"], "A")
            .triggers(["GO", "STAY", "FAIL"])
            .transition(Transition::on("GO").from("A").to("B").when("x", always))
            .transition(Transition::on("GO").from(["A", "B"]).to("C"))
            .transition(Transition::on("STAY").from(["A", "B"]).to(TO_SAME))
            .transition(Transition::on("FAIL").from(FROM_ANY).to("A"))
            .describe()
            .into();
        assert_eq!(check_machine(&desc), []);
    }

    #[test]
    fn no_states() {
        let desc: MachineDesc = MachineDesc::default();
        let problems = check_machine(&desc);
        assert_one(&problems, Severity::Error, &["declares no states"]);
    }

    #[test]
    fn duplicate_state() {
        let desc: MachineDesc = StateMachine::new(["A", "B", "A", "A"], "A")
            .triggers(["GO"])
            .transition(Transition::on("GO").from("A").to("B"))
            .describe()
            .into();
        let problems = check_machine(&desc);
        assert_one(
            &problems,
            Severity::Error,
            &["duplicate state \"A\": it is declared 3 times; declare each state once"],
        );
    }

    #[test]
    fn duplicate_trigger() {
        let desc: MachineDesc = simple().triggers(["GO"]).describe().into();
        let problems = check_machine(&desc);
        assert_one(
            &problems,
            Severity::Error,
            &["duplicate trigger \"GO\": it is declared 2 times"],
        );
    }

    #[test]
    fn empty_state_name() {
        let desc: MachineDesc = StateMachine::new(["A", "B", ""], "A")
            .triggers(["GO"])
            .transition(Transition::on("GO").from("A").to("B"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["state #3 has an empty name; give every state a non-empty name"],
        );
    }

    #[test]
    fn empty_trigger_name() {
        let desc: MachineDesc = simple().triggers([""]).describe().into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["trigger #2 has an empty name; give every trigger a non-empty name"],
        );
    }

    #[test]
    fn initial_not_declared() {
        let desc: MachineDesc = StateMachine::new(["A", "B"], "C")
            .triggers(["GO", "BACK"])
            .transition(Transition::on("GO").from("A").to("B"))
            .transition(Transition::on("BACK").from("B").to("A"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["initial state \"C\" is not a declared state; set it to one of the declared states (\"A\", \"B\")"],
        );
    }

    #[test]
    fn empty_initial() {
        let desc: MachineDesc = StateMachine::new(["A", "B"], "")
            .triggers(["GO", "BACK"])
            .transition(Transition::on("GO").from("A").to("B"))
            .transition(Transition::on("BACK").from("B").to("A"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["the initial state is empty"],
        );
    }

    #[test]
    fn undeclared_source() {
        let desc: MachineDesc = simple()
            .transition(Transition::on("GO").from(["B", "X"]).to("A"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["transition #2 (GO: B, X -> A) leaves from undeclared state \"X\"; declare it in the states or fix the name (declared states: \"A\", \"B\")"],
        );
    }

    #[test]
    fn undeclared_dest() {
        let desc: MachineDesc = simple()
            .transition(Transition::on("GO").from("B").to("Z"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["transition #2 (GO: B -> Z) enters undeclared state \"Z\""],
        );
    }

    #[test]
    fn undeclared_trigger() {
        let desc: MachineDesc = simple()
            .transition(Transition::on("BACK").from("B").to("A"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["transition #2 (BACK: B -> A) uses undeclared trigger \"BACK\"; declare it in the triggers or fix the name (declared triggers: \"GO\")"],
        );
    }

    #[test]
    fn empty_trigger_in_transition() {
        let desc: MachineDesc = simple()
            .transition(Transition::on("").from("B").to("A"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["transition #2 (: B -> A) has an empty trigger"],
        );
    }

    #[test]
    fn no_source() {
        let mut desc: MachineDesc = simple().describe().into();
        desc.transitions.push(transition("GO", vec![], state("A")));
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["transition #2 (GO: <no source> -> A) has no source; give it a source state, a list of states, or FROM_ANY"],
        );
    }

    #[test]
    fn from_any_with_other_sources() {
        let mut desc: MachineDesc = simple().triggers(["FAIL"]).describe().into();
        desc.transitions.push(transition(
            "FAIL",
            vec![StateRef::FromAny, state("A")],
            state("A"),
        ));
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["transition #2 (FAIL: FROM_ANY, A -> A): FROM_ANY must be the only source"],
        );
    }

    #[test]
    fn to_same_as_source() {
        let mut desc: MachineDesc = simple().triggers(["BACK"]).describe().into();
        desc.transitions.push(transition(
            "BACK",
            vec![state("B"), StateRef::ToSame],
            state("A"),
        ));
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["transition #2 (BACK: B, TO_SAME -> A): TO_SAME is not a valid source"],
        );
    }

    #[test]
    fn from_any_as_dest() {
        let mut desc: MachineDesc = simple().triggers(["BACK"]).describe().into();
        desc.transitions
            .push(transition("BACK", vec![state("B")], StateRef::FromAny));
        let problems = check_machine(&desc);
        assert!(errors(&problems).iter().any(|m| m
            .contains("transition #2 (BACK: B -> FROM_ANY): FROM_ANY is not a valid destination")));
        assert_eq!(errors(&problems).len(), 1, "{problems:#?}");
    }

    #[test]
    fn ambiguous_unconditioned_transitions() {
        let desc: MachineDesc = simple()
            .transition(Transition::on("GO").from(["A", "B"]).to(TO_SAME))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["ambiguous transitions: transition #1 (GO: A -> B) and transition #2 (GO: A, B -> TO_SAME) both fire on trigger \"GO\" from state \"A\" with no conditions (destinations \"B\" and TO_SAME (stay in the current state)); only #1 can ever fire there"],
        );
    }

    #[test]
    fn ambiguity_with_from_any_is_reported_once_per_pair() {
        let desc: MachineDesc = StateMachine::new(["A", "B", "C"], "A")
            .triggers(["GO", "FAIL"])
            .transition(Transition::on("GO").from("A").to("B"))
            .transition(Transition::on("GO").from("B").to("C"))
            .transition(Transition::on("FAIL").from(FROM_ANY).to("C"))
            .transition(Transition::on("FAIL").from(FROM_ANY).to("A"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &[
                "transition #3 (FAIL: FROM_ANY -> C) and transition #4 (FAIL: FROM_ANY -> A)",
                "from states \"A\", \"B\", \"C\"",
                "destinations \"C\" and \"A\"",
            ],
        );
    }

    #[test]
    fn duplicate_transition_is_ambiguous() {
        let desc: MachineDesc = simple()
            .transition(Transition::on("GO").from("A").to("B"))
            .describe()
            .into();
        assert_one(
            &check_machine(&desc),
            Severity::Error,
            &["both go to \"B\""],
        );
    }

    #[test]
    fn conditioned_transitions_are_not_ambiguous() {
        let desc: MachineDesc = simple()
            .transition(Transition::on("GO").from("B").to("A").when("x", always))
            .transition(Transition::on("GO").from("B").to(TO_SAME))
            .describe()
            .into();
        assert_eq!(check_machine(&desc), []);
    }

    #[test]
    fn shadowed_conditioned_transition_warns() {
        let desc: MachineDesc = simple()
            .transition(Transition::on("GO").from("A").to("A").when("x", always))
            .describe()
            .into();
        let problems = check_machine(&desc);
        assert_eq!(errors(&problems), Vec::<&str>::new());
        assert_one(
            &problems,
            Severity::Warning,
            &["transition #2 (GO: A -> A) can never fire from state \"A\": transition #1 (GO: A -> B) has no conditions and is tried first"],
        );
    }

    #[test]
    fn unreachable_state() {
        let desc: MachineDesc = StateMachine::new(["A", "B", "C", "D"], "A")
            .triggers(["GO", "ON"])
            .transition(Transition::on("GO").from("A").to("B"))
            .transition(Transition::on("ON").from("C").to("D"))
            .describe()
            .into();
        let problems = check_machine(&desc);
        assert_eq!(errors(&problems), Vec::<&str>::new());
        assert_eq!(
            warnings(&problems),
            [
                "state \"C\" is unreachable: no chain of transitions from the initial state \"A\" leads to it (conditions ignored); add a transition into it or remove it",
                "state \"D\" is unreachable: no chain of transitions from the initial state \"A\" leads to it (conditions ignored); add a transition into it or remove it",
            ]
        );
    }

    #[test]
    fn reachability_ignores_conditions_and_follows_from_any() {
        let desc: MachineDesc = StateMachine::new(["A", "B", "C"], "A")
            .triggers(["GO", "FAIL"])
            .transition(
                Transition::on("GO")
                    .from("A")
                    .to("B")
                    .when("never", |_| false),
            )
            .transition(Transition::on("FAIL").from(FROM_ANY).to("C"))
            .describe()
            .into();
        assert_eq!(check_machine(&desc), []);
    }

    #[test]
    fn unused_trigger() {
        let desc: MachineDesc = simple().triggers(["UNUSED"]).describe().into();
        assert_one(
            &check_machine(&desc),
            Severity::Warning,
            &["trigger \"UNUSED\" is declared but no transition uses it; add a transition for it or remove it from the triggers"],
        );
    }

    #[test]
    fn empty_condition_label_warns() {
        let mut desc: MachineDesc = simple().describe().into();
        desc.transitions[0].conditions.push(ConditionDesc {
            label: String::from(" "),
            id: 0,
        });
        assert_one(
            &check_machine(&desc),
            Severity::Warning,
            &["transition #1 (GO: A -> B): condition #1 (id 0) has an empty label"],
        );
    }

    #[test]
    fn too_many_states() {
        let states: Vec<String> = (0..=MAX_STATES).map(|i| format!("S{i}")).collect();
        let desc: MachineDesc = StateMachine::new(states, "S0").describe().into();
        let problems = check_machine(&desc);
        assert!(errors(&problems)
            .iter()
            .any(|m| m.contains("declares 65537 states; at most 65536 are supported")));
    }
}
