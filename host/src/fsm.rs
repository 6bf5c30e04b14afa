//! The FSM engine: the one state-machine engine that runs every plugin's
//! machine.
//!
//! A plugin only exports its machine as data ([`MachineDesc`]) and one
//! callback that evaluates a condition by id. [`Machine::new`] checks the
//! description (with [`check_machine`]) and compiles it once per plugin
//! type: states and triggers become small integer ids, and the candidate
//! transitions of every (state, trigger) pair are precomputed, so
//! [`Machine::fire`] is one hash lookup of the trigger name, one table
//! lookup, and the condition calls. A [`Machine`] is immutable and shared
//! by every block of its type; each block only keeps its current
//! [`StateId`].
//!
//! # Semantics (as pytransitions, which the original engine used)
//! The candidates of a trigger are its transitions whose source matches the
//! current state, in declaration order. The first whose conditions all hold
//! fires; conditions are evaluated lazily, in order, stopping at the first
//! that fails. A destination of `TO_SAME` keeps the current state. See
//! [`Machine::fire`] for the modes and the failures.
//!
//! # Diagrams
//! [`Machine::to_dot`] (Graphviz) and [`Machine::to_mermaid`]
//! (`stateDiagram-v2`) draw one edge per (source, transition), labelled
//! `TRIGGER` or `TRIGGER [cond1, cond2]`. The initial state is marked by an
//! arrow from a start pseudo-state (a filled dot in DOT, `[*]` in Mermaid).
//! `FROM_ANY` transitions are drawn once, from a dashed pseudo-state
//! labelled `any state`, rather than from every state; a `FROM_ANY` ->
//! `TO_SAME` transition is a loop on that pseudo-state. Other `TO_SAME`
//! transitions are loops on their source states.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::model::{
    MachineDesc, PluginError, StateRef, TriggerFailure, TriggerFailureKind, TriggerMode,
};
use bitstream_sdk::ValueMap;

use crate::checks::machine::{check_machine, describe_transition, quote_list};
use crate::report::{Problem, Severity};

/// A state of a [`Machine`]: its index in the declared states.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateId(pub u16);

/// A trigger of a [`Machine`]: its index in the declared triggers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TriggerId(pub u16);

/// What [`Machine::fire`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TriggerOutcome {
    /// Whether a transition fired (for [`TriggerMode::MayTrigger`]: whether
    /// one would fire).
    pub fired: bool,
    /// The state the trigger was fired from.
    pub from: StateId,
    /// The state the block is in afterwards (for
    /// [`TriggerMode::MayTrigger`]: the state it would enter). Equal to
    /// `from` when nothing fired.
    pub to: StateId,
}

/// The most cells (states × triggers) of the candidate table.
const MAX_TABLE_CELLS: usize = 1 << 24;

/// One compiled transition.
#[derive(Debug, Clone, Copy)]
struct CompiledTransition {
    /// The destination; `None` for `TO_SAME`.
    dest: Option<StateId>,
    /// Its condition ids are `condition_ids[cond_start..cond_end]`.
    cond_start: u32,
    /// See `cond_start`.
    cond_end: u32,
}

/// A compiled state machine, built once per plugin type and shared by all
/// its blocks (it is `Send + Sync` and never changes).
#[derive(Debug)]
pub struct Machine {
    desc: MachineDesc,
    state_names: Box<[Box<str>]>,
    state_ids: HashMap<Box<str>, StateId>,
    trigger_names: Box<[Box<str>]>,
    trigger_ids: HashMap<Box<str>, TriggerId>,
    initial: StateId,
    /// Indexed like `desc.transitions`.
    transitions: Box<[CompiledTransition]>,
    /// The condition ids of every transition, back to back.
    condition_ids: Box<[u32]>,
    /// The candidates of (state `s`, trigger `t`) are
    /// `candidates[offsets[c]..offsets[c + 1]]` with `c = s * triggers + t`.
    offsets: Box<[u32]>,
    /// Transition indices, in declaration order within each cell.
    candidates: Box<[u32]>,
}

impl Machine {
    /// Checks and compiles a machine description.
    ///
    /// Fails with the error problems of [`check_machine`] when the
    /// description is not well formed (its warnings are dropped; run the
    /// check yourself to see them).
    pub fn new(desc: MachineDesc) -> Result<Machine, Vec<Problem>> {
        let errors: Vec<Problem> = check_machine(&desc)
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Self::compile(desc).map_err(|message| vec![Problem::error(message)])
    }

    /// Compiles a description that passed the checks. Still fails (rather
    /// than panics) on anything unexpected.
    fn compile(desc: MachineDesc) -> Result<Machine, String> {
        let mut state_ids: HashMap<Box<str>, StateId> = HashMap::new();
        for (i, name) in desc.states.iter().enumerate() {
            let id =
                u16::try_from(i).map_err(|_| format!("too many states ({})", desc.states.len()))?;
            state_ids.entry(name.as_str().into()).or_insert(StateId(id));
        }
        let mut trigger_ids: HashMap<Box<str>, TriggerId> = HashMap::new();
        for (i, name) in desc.triggers.iter().enumerate() {
            let id = u16::try_from(i)
                .map_err(|_| format!("too many triggers ({})", desc.triggers.len()))?;
            trigger_ids
                .entry(name.as_str().into())
                .or_insert(TriggerId(id));
        }
        let initial = *state_ids
            .get(desc.initial.as_str())
            .ok_or_else(|| format!("initial state \"{}\" is not declared", desc.initial))?;

        let n_states = desc.states.len();
        let n_triggers = desc.triggers.len();
        let cells = n_states
            .checked_mul(n_triggers)
            .filter(|&c| c <= MAX_TABLE_CELLS)
            .ok_or_else(|| {
                format!(
                    "the machine is too large: {n_states} states × {n_triggers} triggers exceeds {MAX_TABLE_CELLS}"
                )
            })?;

        // Compile the transitions and list each one's (deduplicated) cells.
        let mut transitions = Vec::with_capacity(desc.transitions.len());
        let mut condition_ids: Vec<u32> = Vec::new();
        let mut cells_of: Vec<Vec<usize>> = Vec::with_capacity(desc.transitions.len());
        for (i, t) in desc.transitions.iter().enumerate() {
            let name = || describe_transition(i, t);
            let trigger = trigger_ids
                .get(t.trigger.as_str())
                .ok_or_else(|| format!("{}: undeclared trigger", name()))?;
            let dest = match &t.dest {
                StateRef::ToSame => None,
                StateRef::State(d) => Some(
                    *state_ids
                        .get(d.as_str())
                        .ok_or_else(|| format!("{}: undeclared destination", name()))?,
                ),
                StateRef::FromAny => return Err(format!("{}: FROM_ANY destination", name())),
            };
            let cond_start =
                u32::try_from(condition_ids.len()).map_err(|_| "too many conditions".to_owned())?;
            condition_ids.extend(t.conditions.iter().map(|c| c.id));
            let cond_end =
                u32::try_from(condition_ids.len()).map_err(|_| "too many conditions".to_owned())?;
            transitions.push(CompiledTransition {
                dest,
                cond_start,
                cond_end,
            });

            let mut sources: Vec<usize> = Vec::new();
            for source in t.sources.iter() {
                match source {
                    StateRef::FromAny => sources.extend(0..n_states),
                    StateRef::State(s) => sources.push(usize::from(
                        state_ids
                            .get(s.as_str())
                            .ok_or_else(|| format!("{}: undeclared source", name()))?
                            .0,
                    )),
                    StateRef::ToSame => return Err(format!("{}: TO_SAME source", name())),
                }
            }
            sources.sort_unstable();
            sources.dedup();
            let t_index = usize::from(trigger.0);
            cells_of.push(
                sources
                    .into_iter()
                    .map(|s| s * n_triggers + t_index)
                    .collect(),
            );
        }

        // Two passes: count per cell, then fill in declaration order.
        let mut counts = vec![0usize; cells];
        for c in cells_of.iter().flatten() {
            if let Some(n) = counts.get_mut(*c) {
                *n += 1;
            }
        }
        let mut offsets = Vec::with_capacity(cells + 1);
        let mut total = 0usize;
        offsets.push(0u32);
        for n in &counts {
            total += n;
            offsets.push(u32::try_from(total).map_err(|_| "too many transitions".to_owned())?);
        }
        let mut next: Vec<usize> = offsets.iter().map(|&o| o as usize).collect();
        let mut candidates = vec![0u32; total];
        for (t, cells) in cells_of.iter().enumerate() {
            let t = u32::try_from(t).map_err(|_| "too many transitions".to_owned())?;
            for &c in cells {
                if let Some(slot) = next.get_mut(c) {
                    if let Some(entry) = candidates.get_mut(*slot) {
                        *entry = t;
                    }
                    *slot += 1;
                }
            }
        }

        Ok(Machine {
            state_names: desc.states.iter().map(|s| s.as_str().into()).collect(),
            trigger_names: desc.triggers.iter().map(|s| s.as_str().into()).collect(),
            state_ids,
            trigger_ids,
            initial,
            transitions: transitions.into(),
            condition_ids: condition_ids.into(),
            offsets: offsets.into(),
            candidates: candidates.into(),
            desc,
        })
    }

    /// The description the machine was built from.
    pub fn desc(&self) -> &MachineDesc {
        &self.desc
    }

    /// The state a new block starts in.
    pub fn initial(&self) -> StateId {
        self.initial
    }

    /// The name of a state; `"<invalid state>"` for an id that is not one
    /// of this machine's.
    pub fn state_name(&self, id: StateId) -> &str {
        self.state_names
            .get(usize::from(id.0))
            .map(|s| &**s)
            .unwrap_or("<invalid state>")
    }

    /// The id of the state called `name`.
    pub fn state_id(&self, name: &str) -> Option<StateId> {
        self.state_ids.get(name).copied()
    }

    /// Every state, in declaration order.
    pub fn states(&self) -> impl Iterator<Item = (StateId, &str)> {
        self.state_names
            .iter()
            .enumerate()
            .map(|(i, s)| (StateId(i as u16), &**s))
    }

    /// The id of the trigger called `name`, to fire it with
    /// [`fire_id`](Self::fire_id) without looking the name up each time.
    pub fn trigger_id(&self, name: &str) -> Option<TriggerId> {
        self.trigger_ids.get(name).copied()
    }

    /// The name of a trigger; `"<invalid trigger>"` for an id that is not
    /// one of this machine's.
    pub fn trigger_name(&self, id: TriggerId) -> &str {
        self.trigger_names
            .get(usize::from(id.0))
            .map(|s| &**s)
            .unwrap_or("<invalid trigger>")
    }

    /// Every trigger, in declaration order.
    pub fn triggers(&self) -> impl Iterator<Item = (TriggerId, &str)> {
        self.trigger_names
            .iter()
            .enumerate()
            .map(|(i, s)| (TriggerId(i as u16), &**s))
    }

    /// Fires or tests `trigger` from state `current` with arguments `args`.
    ///
    /// `eval(condition_id, args)` evaluates one condition (it calls into the
    /// plugin); it is called lazily, in order, and not at all for a trigger
    /// with no candidate transition.
    ///
    /// - An undeclared trigger fails with
    ///   [`UnknownTrigger`](TriggerFailureKind::UnknownTrigger) in every mode.
    /// - When no transition of the trigger leaves `current`, or none of their
    ///   condition sets holds: [`TriggerMode::Trigger`] fails with
    ///   [`NotAllowed`](TriggerFailureKind::NotAllowed) (naming the state and
    ///   the conditions that did not hold); the other modes answer
    ///   `fired: false`.
    /// - A condition that fails to evaluate fails with
    ///   [`ConditionFailed`](TriggerFailureKind::ConditionFailed) in every
    ///   mode, naming the condition.
    /// - Otherwise the first candidate whose conditions all hold fires:
    ///   `fired: true` and `to` is its destination (`current` for `TO_SAME`).
    ///
    /// The machine holds no state: the caller moves its block to `to` when
    /// `fired` is true and the mode is not [`TriggerMode::MayTrigger`] (which
    /// only answers whether the trigger would fire, and where to).
    pub fn fire(
        &self,
        current: StateId,
        trigger: &str,
        args: &ValueMap,
        mode: TriggerMode,
        eval: &mut dyn FnMut(u32, &ValueMap) -> Result<bool, PluginError>,
    ) -> Result<TriggerOutcome, TriggerFailure> {
        match self.trigger_ids.get(trigger) {
            Some(&id) => self.fire_id(current, id, args, mode, eval),
            None => Err(self.unknown_trigger(trigger)),
        }
    }

    /// [`fire`](Self::fire) with a trigger id from
    /// [`trigger_id`](Self::trigger_id).
    pub fn fire_id(
        &self,
        current: StateId,
        trigger: TriggerId,
        args: &ValueMap,
        mode: TriggerMode,
        eval: &mut dyn FnMut(u32, &ValueMap) -> Result<bool, PluginError>,
    ) -> Result<TriggerOutcome, TriggerFailure> {
        if usize::from(trigger.0) >= self.trigger_names.len() {
            return Err(failure(
                TriggerFailureKind::UnknownTrigger,
                format!(
                    "unknown trigger id {}; the machine has {} triggers",
                    trigger.0,
                    self.trigger_names.len()
                ),
            ));
        }
        if usize::from(current.0) >= self.state_names.len() {
            return Err(failure(
                TriggerFailureKind::NotAllowed,
                format!(
                    "state id {} is not a state of this machine (it has {} states)",
                    current.0,
                    self.state_names.len()
                ),
            ));
        }
        let candidates = self.candidates(current, trigger);
        let not_fired = TriggerOutcome {
            fired: false,
            from: current,
            to: current,
        };
        if candidates.is_empty() {
            return match mode {
                TriggerMode::Trigger => Err(self.not_allowed(current, trigger)),
                TriggerMode::MayTrigger | TriggerMode::IfAllowed => Ok(not_fired),
            };
        }

        // (transition, position of its first failed condition), kept only
        // for the message of `Trigger` mode.
        let mut failed: Vec<(u32, u32)> = Vec::new();
        'candidates: for &t in candidates {
            let Some(ct) = self.transitions.get(t as usize) else {
                continue;
            };
            let ids = self
                .condition_ids
                .get(ct.cond_start as usize..ct.cond_end as usize)
                .unwrap_or_default();
            for (k, &id) in ids.iter().enumerate() {
                match eval(id, args) {
                    Ok(true) => {}
                    Ok(false) => {
                        if mode == TriggerMode::Trigger {
                            failed.push((t, k as u32));
                        }
                        continue 'candidates;
                    }
                    Err(error) => {
                        return Err(self.condition_failed(current, trigger, t, k, &error));
                    }
                }
            }
            return Ok(TriggerOutcome {
                fired: true,
                from: current,
                to: ct.dest.unwrap_or(current),
            });
        }
        match mode {
            TriggerMode::Trigger => Err(self.conditions_not_met(current, trigger, &failed)),
            TriggerMode::MayTrigger | TriggerMode::IfAllowed => Ok(not_fired),
        }
    }

    /// The candidate transitions of (`state`, `trigger`).
    fn candidates(&self, state: StateId, trigger: TriggerId) -> &[u32] {
        let cell = usize::from(state.0) * self.trigger_names.len() + usize::from(trigger.0);
        match (self.offsets.get(cell), self.offsets.get(cell + 1)) {
            (Some(&start), Some(&end)) => self
                .candidates
                .get(start as usize..end as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    fn unknown_trigger(&self, trigger: &str) -> TriggerFailure {
        let message = if self.trigger_names.is_empty() {
            format!("unknown trigger \"{trigger}\"; the machine declares no triggers")
        } else {
            format!(
                "unknown trigger \"{trigger}\"; triggers: {}",
                quote_list(self.trigger_names.iter().map(|s| &**s))
            )
        };
        failure(TriggerFailureKind::UnknownTrigger, message)
    }

    fn not_allowed(&self, current: StateId, trigger: TriggerId) -> TriggerFailure {
        let allowed_from: Vec<&str> = self
            .states()
            .filter(|(s, _)| !self.candidates(*s, trigger).is_empty())
            .map(|(_, name)| name)
            .collect();
        let mut message = format!(
            "trigger \"{}\" is not allowed from state \"{}\"",
            self.trigger_name(trigger),
            self.state_name(current)
        );
        if allowed_from.is_empty() {
            message.push_str("; no transition uses it");
        } else {
            let _ = write!(
                message,
                "; it is allowed from {}",
                quote_list(allowed_from.iter().copied())
            );
        }
        failure(TriggerFailureKind::NotAllowed, message)
    }

    fn conditions_not_met(
        &self,
        current: StateId,
        trigger: TriggerId,
        failed: &[(u32, u32)],
    ) -> TriggerFailure {
        let mut labels: Vec<&str> = Vec::new();
        for &(t, k) in failed {
            if let Some(label) = self.condition_label(t as usize, k as usize) {
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
        }
        failure(
            TriggerFailureKind::NotAllowed,
            format!(
                "trigger \"{}\" is not allowed from state \"{}\": conditions not met: {}",
                self.trigger_name(trigger),
                self.state_name(current),
                quote_list(labels)
            ),
        )
    }

    fn condition_failed(
        &self,
        current: StateId,
        trigger: TriggerId,
        transition: u32,
        position: usize,
        error: &PluginError,
    ) -> TriggerFailure {
        let label = self
            .condition_label(transition as usize, position)
            .unwrap_or("?");
        let transition = self
            .desc
            .transitions
            .get(transition as usize)
            .map(|t| describe_transition(transition as usize, t))
            .unwrap_or_default();
        failure(
            TriggerFailureKind::ConditionFailed,
            format!(
                "condition \"{label}\" of {transition} failed while firing trigger \"{}\" from state \"{}\": {error}",
                self.trigger_name(trigger),
                self.state_name(current)
            ),
        )
    }

    fn condition_label(&self, transition: usize, position: usize) -> Option<&str> {
        self.desc
            .transitions
            .get(transition)?
            .conditions
            .get(position)
            .map(|c| c.label.as_str())
    }

    /// The edges to draw: (source node, dest node, label), where a node is
    /// `Some(state)` or `None` for the `any state` pseudo-state.
    fn edges(&self) -> Vec<(Option<StateId>, Option<StateId>, String)> {
        let mut edges = Vec::new();
        for t in self.desc.transitions.iter() {
            let mut label = t.trigger.to_string();
            if !t.conditions.is_empty() {
                label.push_str(" [");
                for (k, c) in t.conditions.iter().enumerate() {
                    if k > 0 {
                        label.push_str(", ");
                    }
                    label.push_str(&c.label);
                }
                label.push(']');
            }
            let mut sources: Vec<Option<StateId>> = Vec::new();
            for source in t.sources.iter() {
                let node = match source {
                    StateRef::FromAny => None,
                    StateRef::State(s) => match self.state_id(s) {
                        Some(id) => Some(id),
                        None => continue,
                    },
                    StateRef::ToSame => continue,
                };
                if !sources.contains(&node) {
                    sources.push(node);
                }
            }
            for from in sources {
                let to = match &t.dest {
                    StateRef::State(d) => match self.state_id(d) {
                        Some(id) => Some(id),
                        None => continue,
                    },
                    _ => from,
                };
                edges.push((from, to, label.clone()));
            }
        }
        edges
    }

    /// The machine as a Graphviz digraph called `name`.
    ///
    /// States are nodes `s0`, `s1`, ... labelled with their names; a filled
    /// dot (`__start`) points at the initial state; `FROM_ANY` transitions
    /// leave from one dashed `__any` node labelled `any state`. Edge labels
    /// are `TRIGGER` or `TRIGGER [cond1, cond2]`.
    pub fn to_dot(&self, name: &str) -> String {
        let edges = self.edges();
        let uses_any = edges.iter().any(|(from, _, _)| from.is_none());
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(name));
        let _ = writeln!(out, "    label=\"{}\";", dot_escape(name));
        out.push_str("    labelloc=t;\n");
        out.push_str("    rankdir=LR;\n");
        out.push_str("    node [shape=box, style=rounded];\n");
        out.push_str("    __start [shape=point, width=0.15, label=\"\"];\n");
        for (id, state) in self.states() {
            let _ = writeln!(out, "    s{} [label=\"{}\"];", id.0, dot_escape(state));
        }
        if uses_any {
            out.push_str("    __any [label=\"any state\", style=\"rounded,dashed\"];\n");
        }
        let _ = writeln!(out, "    __start -> s{};", self.initial.0);
        for (from, to, label) in edges {
            let _ = writeln!(
                out,
                "    {} -> {} [label=\"{}\"];",
                dot_node(from),
                dot_node(to),
                dot_escape(&label)
            );
        }
        out.push_str("}\n");
        out
    }

    /// The machine as a Mermaid `stateDiagram-v2`.
    ///
    /// States are `s0`, `s1`, ... declared with their names; `[*] -->`
    /// marks the initial state; `FROM_ANY` transitions leave from one
    /// dashed `any_state` pseudo-state labelled `any state`. Edge labels are
    /// `TRIGGER` or `TRIGGER [cond1, cond2]`.
    pub fn to_mermaid(&self) -> String {
        let edges = self.edges();
        let uses_any = edges.iter().any(|(from, _, _)| from.is_none());
        let mut out = String::from("stateDiagram-v2\n");
        for (id, state) in self.states() {
            let _ = writeln!(
                out,
                "    state \"{}\" as s{}",
                mermaid_escape(state, true),
                id.0
            );
        }
        if uses_any {
            out.push_str("    state \"any state\" as any_state\n");
        }
        let _ = writeln!(out, "    [*] --> s{}", self.initial.0);
        for (from, to, label) in edges {
            let _ = writeln!(
                out,
                "    {} --> {} : {}",
                mermaid_node(from),
                mermaid_node(to),
                mermaid_escape(&label, false)
            );
        }
        if uses_any {
            out.push_str("    classDef anyState stroke-dasharray: 5 5\n");
            out.push_str("    class any_state anyState\n");
        }
        out
    }
}

fn failure(kind: TriggerFailureKind, message: String) -> TriggerFailure {
    TriggerFailure {
        kind,
        message: String::from(message),
    }
}

fn dot_node(node: Option<StateId>) -> String {
    match node {
        Some(id) => format!("s{}", id.0),
        None => "__any".to_owned(),
    }
}

fn mermaid_node(node: Option<StateId>) -> String {
    match node {
        Some(id) => format!("s{}", id.0),
        None => "any_state".to_owned(),
    }
}

/// Escapes text for a double-quoted DOT string.
fn dot_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Makes text safe for one Mermaid line: no line breaks, no `;` (a
/// statement separator), and inside a quoted state name no `"`.
fn mermaid_escape(text: &str, quoted: bool) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' => ' ',
            ';' => ',',
            '"' if quoted => '\'',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConditionDesc, TransitionDesc};
    use crate::test_machines;
    use bitstream_sdk::machine::Condition;
    use bitstream_sdk::{StateMachine, Transition, FROM_ANY, TO_SAME};

    /// A machine with its predicates, indexed by condition id.
    struct Fixture {
        machine: Machine,
        preds: Vec<Condition>,
    }

    impl Fixture {
        /// Builds the engine's machine and keeps the builder's predicates.
        fn new(builder: StateMachine) -> Fixture {
            let (desc, preds) = builder.into_parts();
            let desc: MachineDesc = desc.into();
            let ids: Vec<u32> = desc
                .transitions
                .iter()
                .flat_map(|t| t.conditions.iter().map(|c| c.id))
                .collect();
            assert_eq!(ids, (0..preds.len() as u32).collect::<Vec<_>>());
            Fixture {
                machine: Machine::new(desc).expect("valid machine"),
                preds,
            }
        }

        fn id(&self, name: &str) -> StateId {
            self.machine.state_id(name).expect("state")
        }

        fn fire(
            &self,
            current: &str,
            trigger: &str,
            args: impl Into<ValueMap>,
            mode: TriggerMode,
        ) -> Result<TriggerOutcome, TriggerFailure> {
            let preds = &self.preds;
            let mut eval = |id: u32, args: &ValueMap| {
                preds
                    .get(id as usize)
                    .map(|p| p(args))
                    .ok_or_else(|| PluginError::failed(500, "no such condition"))
            };
            self.machine
                .fire(self.id(current), trigger, &args.into(), mode, &mut eval)
        }

        /// Fires in `Trigger` mode and answers the new state's name.
        fn step(&self, current: &str, trigger: &str, args: impl Into<ValueMap>) -> String {
            let outcome = self
                .fire(current, trigger, args, TriggerMode::Trigger)
                .unwrap_or_else(|e| panic!("{}", e.message));
            assert!(outcome.fired);
            assert_eq!(outcome.from, self.id(current));
            self.machine.state_name(outcome.to).to_owned()
        }
    }

    fn ftile_ethernet() -> Fixture {
        Fixture::new(test_machines::ftile_ethernet())
    }

    fn packet_validation() -> Fixture {
        Fixture::new(test_machines::packet_validation())
    }

    fn never_called(_: u32, _: &ValueMap) -> Result<bool, PluginError> {
        panic!("no condition should be evaluated")
    }

    #[test]
    fn machine_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Machine>();
    }

    #[test]
    fn ids_and_names() {
        let f = ftile_ethernet();
        let m = &f.machine;
        assert_eq!(m.initial(), StateId(0));
        assert_eq!(m.state_name(m.initial()), "RESET");
        assert_eq!(m.state_id("DEGRADED"), Some(StateId(3)));
        assert_eq!(m.state_id("NOPE"), None);
        assert_eq!(m.state_name(StateId(99)), "<invalid state>");
        let states: Vec<_> = m.states().map(|(_, s)| s).collect();
        assert_eq!(states, ["RESET", "NO_LINK", "LINK", "DEGRADED", "FAULT"]);
        assert_eq!(m.trigger_id("UPDATE_BADNESS"), Some(TriggerId(4)));
        assert_eq!(m.trigger_name(TriggerId(4)), "UPDATE_BADNESS");
        assert_eq!(m.triggers().count(), 6);
        assert_eq!(m.desc().transitions.len(), 8);
    }

    #[test]
    fn ftile_ethernet_real_sequence() {
        let f = ftile_ethernet();
        let mut state = "RESET".to_owned();
        for (trigger, args, expected) in [
            ("START", ValueMap::new(), "NO_LINK"),
            ("PACKET_RATE_UPDATE", [("packet_rate", 100)].into(), "LINK"),
            ("PACKET_RATE_UPDATE", [("packet_rate", 50)].into(), "LINK"),
            ("UPDATE_BADNESS", [("badness", 0.75)].into(), "DEGRADED"),
            ("UPDATE_BADNESS", [("badness", 0.25)].into(), "LINK"),
            ("PACKET_RATE_UPDATE", [("packet_rate", 0)].into(), "NO_LINK"),
            ("CRITICAL_FAULT", ValueMap::new(), "FAULT"),
            ("STOP", ValueMap::new(), "RESET"),
            ("START", ValueMap::new(), "NO_LINK"),
            ("RESET", ValueMap::new(), "RESET"),
        ] {
            state = f.step(&state, trigger, args);
            assert_eq!(state, expected, "after {trigger}");
        }
    }

    #[test]
    fn critical_fault_from_every_state() {
        let f = ftile_ethernet();
        for (_, state) in f.machine.states() {
            assert_eq!(f.step(state, "CRITICAL_FAULT", ()), "FAULT");
            assert_eq!(f.step(state, "STOP", ()), "RESET");
        }
    }

    #[test]
    fn degraded_link_losing_packets_goes_to_no_link() {
        let f = ftile_ethernet();
        assert_eq!(
            f.step("DEGRADED", "PACKET_RATE_UPDATE", [("packet_rate", 0)]),
            "NO_LINK"
        );
        let err = f
            .fire(
                "DEGRADED",
                "PACKET_RATE_UPDATE",
                [("packet_rate", 5)],
                TriggerMode::Trigger,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::NotAllowed);
        assert_eq!(
            err.message.as_str(),
            "trigger \"PACKET_RATE_UPDATE\" is not allowed from state \"DEGRADED\": conditions not met: \"packet rate = 0\""
        );
    }

    #[test]
    fn packet_validation_real_sequence() {
        let f = packet_validation();
        let mut state = "RESET".to_owned();
        for (trigger, args, expected) in [
            ("RECEIVE_PULSE", ValueMap::new(), "RESET"),
            ("STOP", ValueMap::new(), "RESET"),
            ("START", ValueMap::new(), "ENABLING"),
            ("START", ValueMap::new(), "ENABLING"),
            ("RECEIVE_PULSE", [("packet_rate", 0)].into(), "ENABLING"),
            ("RECEIVE_PULSE", [("packet_rate", 10)].into(), "ENABLED"),
            ("RECEIVE_PULSE", [("packet_rate", 10)].into(), "ENABLED"),
            ("START", ValueMap::new(), "ENABLED"),
            ("STOP", ValueMap::new(), "DISABLING"),
            ("STOP", ValueMap::new(), "DISABLING"),
            ("RECEIVE_PULSE", ValueMap::new(), "RESET"),
            ("START", ValueMap::new(), "ENABLING"),
            ("STOP", ValueMap::new(), "RESET"),
            ("CRITICAL_FAULT", ValueMap::new(), "FAULT"),
            ("RESET", ValueMap::new(), "RESET"),
        ] {
            state = f.step(&state, trigger, args);
            assert_eq!(state, expected, "after {trigger}");
        }
    }

    #[test]
    fn unknown_trigger_fails_in_every_mode() {
        let f = ftile_ethernet();
        for mode in [
            TriggerMode::Trigger,
            TriggerMode::MayTrigger,
            TriggerMode::IfAllowed,
        ] {
            let err = f
                .machine
                .fire(
                    f.id("RESET"),
                    "BOGUS",
                    &ValueMap::new(),
                    mode,
                    &mut never_called,
                )
                .unwrap_err();
            assert_eq!(err.kind, TriggerFailureKind::UnknownTrigger);
            assert_eq!(
                err.message.as_str(),
                "unknown trigger \"BOGUS\"; triggers: \"START\", \"STOP\", \"RESET\", \"PACKET_RATE_UPDATE\", \"UPDATE_BADNESS\", \"CRITICAL_FAULT\""
            );
        }
        let err = f
            .machine
            .fire_id(
                f.id("RESET"),
                TriggerId(77),
                &ValueMap::new(),
                TriggerMode::Trigger,
                &mut never_called,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::UnknownTrigger);
    }

    #[test]
    fn no_transition_from_state() {
        let f = ftile_ethernet();
        let err = f
            .machine
            .fire(
                f.id("LINK"),
                "START",
                &ValueMap::new(),
                TriggerMode::Trigger,
                &mut never_called,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::NotAllowed);
        assert_eq!(
            err.message.as_str(),
            "trigger \"START\" is not allowed from state \"LINK\"; it is allowed from \"RESET\""
        );
        for mode in [TriggerMode::MayTrigger, TriggerMode::IfAllowed] {
            let outcome = f
                .machine
                .fire(
                    f.id("LINK"),
                    "START",
                    &ValueMap::new(),
                    mode,
                    &mut never_called,
                )
                .unwrap();
            assert_eq!(
                outcome,
                TriggerOutcome {
                    fired: false,
                    from: f.id("LINK"),
                    to: f.id("LINK")
                }
            );
        }
    }

    #[test]
    fn conditions_not_met() {
        let f = ftile_ethernet();
        let err = f
            .fire(
                "NO_LINK",
                "PACKET_RATE_UPDATE",
                [("packet_rate", -1)],
                TriggerMode::Trigger,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::NotAllowed);
        assert_eq!(
            err.message.as_str(),
            "trigger \"PACKET_RATE_UPDATE\" is not allowed from state \"NO_LINK\": conditions not met: \"packet rate > 0\", \"packet rate = 0\""
        );
        let err = f
            .fire(
                "LINK",
                "UPDATE_BADNESS",
                [("badness", 0.1)],
                TriggerMode::Trigger,
            )
            .unwrap_err();
        assert_eq!(
            err.message.as_str(),
            "trigger \"UPDATE_BADNESS\" is not allowed from state \"LINK\": conditions not met: \">= 0.5\""
        );
        for mode in [TriggerMode::MayTrigger, TriggerMode::IfAllowed] {
            let outcome = f
                .fire("LINK", "UPDATE_BADNESS", [("badness", 0.1)], mode)
                .unwrap();
            assert!(!outcome.fired);
            assert_eq!(outcome.to, f.id("LINK"));
        }
    }

    #[test]
    fn condition_error_fails_in_every_mode() {
        let f = ftile_ethernet();
        for mode in [
            TriggerMode::Trigger,
            TriggerMode::MayTrigger,
            TriggerMode::IfAllowed,
        ] {
            let mut eval = |_: u32, _: &ValueMap| -> Result<bool, PluginError> {
                Err(PluginError::panicked("index out of bounds at src/lib.rs:3"))
            };
            let err = f
                .machine
                .fire(
                    f.id("LINK"),
                    "UPDATE_BADNESS",
                    &ValueMap::new(),
                    mode,
                    &mut eval,
                )
                .unwrap_err();
            assert_eq!(err.kind, TriggerFailureKind::ConditionFailed);
            assert_eq!(
                err.message.as_str(),
                "condition \">= 0.5\" of transition #4 (UPDATE_BADNESS: LINK -> DEGRADED) failed while firing trigger \"UPDATE_BADNESS\" from state \"LINK\": plugin panicked: index out of bounds at src/lib.rs:3"
            );
        }
    }

    #[test]
    fn may_trigger_reports_without_changing_state() {
        let f = ftile_ethernet();
        let outcome = f
            .fire(
                "NO_LINK",
                "PACKET_RATE_UPDATE",
                [("packet_rate", 100)],
                TriggerMode::MayTrigger,
            )
            .unwrap();
        assert_eq!(
            outcome,
            TriggerOutcome {
                fired: true,
                from: f.id("NO_LINK"),
                to: f.id("LINK")
            }
        );
        let outcome = f
            .fire("RESET", "START", (), TriggerMode::IfAllowed)
            .unwrap();
        assert!(outcome.fired);
        assert_eq!(outcome.to, f.id("NO_LINK"));
    }

    #[test]
    fn to_same_stays() {
        let f = packet_validation();
        let outcome = f
            .fire("ENABLED", "START", (), TriggerMode::Trigger)
            .unwrap();
        assert!(outcome.fired);
        assert_eq!(outcome.to, f.id("ENABLED"));
    }

    #[test]
    fn conditions_are_lazy_and_short_circuit_in_order() {
        let desc: MachineDesc = StateMachine::new(["A", "B", "C"], "A")
            .triggers(["GO"])
            .transition(
                Transition::on("GO")
                    .from("A")
                    .to("B")
                    .when("first", |_| false)
                    .when("second", |_| true),
            )
            .transition(
                Transition::on("GO")
                    .from("A")
                    .to("C")
                    .when("third", |_| true)
                    .when("fourth", |_| true),
            )
            .transition(
                Transition::on("GO")
                    .from("A")
                    .to("A")
                    .when("fifth", |_| true),
            )
            .describe()
            .into();
        let machine = Machine::new(desc).unwrap();
        let answers = [false, true, true, true, true];
        let mut calls: Vec<u32> = Vec::new();
        let mut eval = |id: u32, _: &ValueMap| {
            calls.push(id);
            Ok(answers[id as usize])
        };
        let outcome = machine
            .fire(
                StateId(0),
                "GO",
                &ValueMap::new(),
                TriggerMode::Trigger,
                &mut eval,
            )
            .unwrap();
        assert_eq!(machine.state_name(outcome.to), "C");
        assert_eq!(calls, [0, 2, 3]);

        // No candidate from B: no condition is evaluated.
        calls.clear();
        let mut eval = |id: u32, _: &ValueMap| {
            calls.push(id);
            Ok(true)
        };
        let outcome = machine
            .fire(
                StateId(1),
                "GO",
                &ValueMap::new(),
                TriggerMode::IfAllowed,
                &mut eval,
            )
            .unwrap();
        assert!(!outcome.fired);
        assert!(calls.is_empty());
    }

    #[test]
    fn invalid_state_id_fails() {
        let f = ftile_ethernet();
        let err = f
            .machine
            .fire(
                StateId(40),
                "START",
                &ValueMap::new(),
                TriggerMode::IfAllowed,
                &mut never_called,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::NotAllowed);
        assert_eq!(
            err.message.as_str(),
            "state id 40 is not a state of this machine (it has 5 states)"
        );
    }

    #[test]
    fn new_refuses_bad_descriptions_with_the_check_errors() {
        let desc: MachineDesc = StateMachine::new(["A", "B"], "C")
            .triggers(["GO"])
            .transition(Transition::on("GO").from("A").to("B"))
            .describe()
            .into();
        let problems = Machine::new(desc).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0]
            .message
            .contains("initial state \"C\" is not a declared state"));

        // Warnings alone do not refuse: UNUSED is unused, D unreachable.
        let desc: MachineDesc = StateMachine::new(["A", "B", "D"], "A")
            .triggers(["GO", "UNUSED"])
            .transition(Transition::on("GO").from("A").to("B"))
            .describe()
            .into();
        assert!(Machine::new(desc).is_ok());

        assert!(Machine::new(MachineDesc::default()).is_err());

        let mut desc: MachineDesc = StateMachine::new(["A"], "A")
            .triggers(["GO"])
            .describe()
            .into();
        desc.transitions.push(TransitionDesc {
            trigger: String::from("GO"),
            sources: vec![StateRef::ToSame].into(),
            dest: StateRef::FromAny,
            conditions: vec![ConditionDesc {
                label: String::from("x"),
                id: 0,
            }]
            .into(),
        });
        assert_eq!(Machine::new(desc).unwrap_err().len(), 2);
    }

    #[test]
    fn a_state_listed_twice_is_one_candidate() {
        let desc: MachineDesc = StateMachine::new(["A", "B"], "A")
            .triggers(["GO"])
            .transition(
                Transition::on("GO")
                    .from(["A", "A"])
                    .to("B")
                    .when("c", |_| false),
            )
            .describe()
            .into();
        let machine = Machine::new(desc).unwrap();
        let mut calls = 0;
        let mut eval = |_: u32, _: &ValueMap| {
            calls += 1;
            Ok(false)
        };
        let err = machine
            .fire(
                StateId(0),
                "GO",
                &ValueMap::new(),
                TriggerMode::Trigger,
                &mut eval,
            )
            .unwrap_err();
        assert_eq!(calls, 1);
        assert!(err.message.ends_with("conditions not met: \"c\""));
    }

    #[test]
    fn dot_output() {
        let dot = ftile_ethernet().machine.to_dot("ftile_ethernet");
        assert!(dot.starts_with("digraph \"ftile_ethernet\" {\n"), "{dot}");
        assert!(dot.ends_with("}\n"));
        for line in [
            "    __start [shape=point, width=0.15, label=\"\"];",
            "    s0 [label=\"RESET\"];",
            "    s3 [label=\"DEGRADED\"];",
            "    __any [label=\"any state\", style=\"rounded,dashed\"];",
            "    __start -> s0;",
            "    s0 -> s1 [label=\"START\"];",
            "    s1 -> s2 [label=\"PACKET_RATE_UPDATE [packet rate > 0]\"];",
            "    s2 -> s2 [label=\"PACKET_RATE_UPDATE [packet rate > 0]\"];",
            "    s3 -> s1 [label=\"PACKET_RATE_UPDATE [packet rate = 0]\"];",
            "    s2 -> s3 [label=\"UPDATE_BADNESS [>= 0.5]\"];",
            "    s3 -> s2 [label=\"UPDATE_BADNESS [< 0.5]\"];",
            "    __any -> s4 [label=\"CRITICAL_FAULT\"];",
            "    __any -> s0 [label=\"STOP\"];",
        ] {
            assert!(dot.lines().any(|l| l == line), "missing {line:?} in\n{dot}");
        }
        // One edge per (source, transition): 1 + 2 + 3 + 1 + 1 + 3 from any.
        assert_eq!(dot.matches(" -> ").count(), 1 + 11);
    }

    #[test]
    fn dot_escapes_and_to_same() {
        let desc: MachineDesc = StateMachine::new(["A \"x\"", "B"], "B")
            .triggers(["GO", "ANY"])
            .transition(
                Transition::on("GO")
                    .from("B")
                    .to(TO_SAME)
                    .when("a\\b", |_| true),
            )
            .transition(Transition::on("ANY").from(FROM_ANY).to(TO_SAME))
            .transition(
                Transition::on("GO")
                    .from("B")
                    .to("A \"x\"")
                    .when("c", |_| true),
            )
            .describe()
            .into();
        let m = Machine::new(desc).unwrap();
        let dot = m.to_dot("we\"ird");
        assert!(dot.contains("digraph \"we\\\"ird\""), "{dot}");
        assert!(dot.contains("    s0 [label=\"A \\\"x\\\"\"];"), "{dot}");
        assert!(dot.contains("    __start -> s1;"), "{dot}");
        assert!(
            dot.contains("    s1 -> s1 [label=\"GO [a\\\\b]\"];"),
            "{dot}"
        );
        assert!(dot.contains("    __any -> __any [label=\"ANY\"];"), "{dot}");
        let mermaid = m.to_mermaid();
        assert!(mermaid.contains("    state \"A 'x'\" as s0\n"), "{mermaid}");
        assert!(mermaid.contains("    s1 --> s1 : GO [a\\b]\n"), "{mermaid}");
        assert!(
            mermaid.contains("    any_state --> any_state : ANY\n"),
            "{mermaid}"
        );
    }

    #[test]
    fn no_any_node_without_from_any() {
        let desc: MachineDesc = StateMachine::new(["A", "B"], "A")
            .triggers(["GO"])
            .transition(Transition::on("GO").from("A").to("B"))
            .describe()
            .into();
        let m = Machine::new(desc).unwrap();
        assert!(!m.to_dot("x").contains("__any"));
        assert!(!m.to_mermaid().contains("any_state"));
    }

    #[test]
    fn mermaid_output() {
        let mermaid = packet_validation().machine.to_mermaid();
        assert!(mermaid.starts_with("stateDiagram-v2\n"), "{mermaid}");
        for line in [
            "    state \"RESET\" as s0",
            "    state \"ENABLING\" as s1",
            "    state \"any state\" as any_state",
            "    [*] --> s0",
            "    s0 --> s1 : START",
            "    s1 --> s1 : START",
            "    s1 --> s2 : RECEIVE_PULSE [packet rate > 0]",
            "    s1 --> s1 : RECEIVE_PULSE [packet rate = 0]",
            "    s3 --> s0 : RECEIVE_PULSE",
            "    any_state --> s4 : CRITICAL_FAULT",
            "    any_state --> s0 : RESET",
            "    classDef anyState stroke-dasharray: 5 5",
            "    class any_state anyState",
        ] {
            assert!(
                mermaid.lines().any(|l| l == line),
                "missing {line:?} in\n{mermaid}"
            );
        }
        let ftile = ftile_ethernet().machine.to_mermaid();
        assert!(
            ftile.contains("s2 --> s3 : UPDATE_BADNESS [>= 0.5]"),
            "{ftile}"
        );
        assert!(
            ftile.contains("s3 --> s2 : UPDATE_BADNESS [< 0.5]"),
            "{ftile}"
        );
    }

    #[test]
    fn multiple_conditions_in_labels() {
        let desc: MachineDesc = StateMachine::new(["A", "B"], "A")
            .triggers(["GO"])
            .transition(
                Transition::on("GO")
                    .from("A")
                    .to("B")
                    .when("x > 1", |_| true)
                    .when("y; z", |_| true),
            )
            .describe()
            .into();
        let m = Machine::new(desc).unwrap();
        assert!(m.to_dot("m").contains("label=\"GO [x > 1, y; z]\""));
        assert!(m.to_mermaid().contains("s0 --> s1 : GO [x > 1, y, z]"));
    }
}
