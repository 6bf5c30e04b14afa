//! The compiled [`Machine`] and firing its triggers (see the module
//! [`crate::fsm`] for the semantics).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::model::{
    MachineDesc, PluginError, StateRef, TriggerFailure, TriggerFailureKind, TriggerMode,
};
use bitstream_sdk::ValueMap;

use super::check::{check_machine, describe_transition, quote_list};
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
}

fn failure(kind: TriggerFailureKind, message: String) -> TriggerFailure {
    TriggerFailure { kind, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConditionDesc, TransitionDesc};
    use bitstream_sdk::machine::Condition;
    use bitstream_sdk::{StateMachine, Transition, Value, FROM_ANY, TO_SAME};

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

    /// The `name` argument, NaN if missing or not a number (so that both
    /// of a pair of opposite conditions fail).
    fn arg(args: &ValueMap, name: &str) -> f64 {
        args.get(name).and_then(Value::as_f64).unwrap_or(f64::NAN)
    }

    /// A small machine with every kind of transition: states `CLOSED`
    /// (initial), `OPEN`, `STUCK`; conditions by id: 0 `pressure > 0`,
    /// 1 `flow >= 10`, 2 `flow < 10`. (The real plugins' machines are
    /// exercised in `host/tests/fsm_real_machines.rs`.)
    fn valve() -> Fixture {
        Fixture::new(
            StateMachine::new(["CLOSED", "OPEN", "STUCK"], "CLOSED")
                .triggers(["OPEN", "CLOSE", "FLOW", "JAM"])
                .transition(
                    Transition::on("OPEN")
                        .from("CLOSED")
                        .to("OPEN")
                        .when("pressure > 0", |a| arg(a, "pressure") > 0.0),
                )
                .transition(Transition::on("OPEN").from("OPEN").to(TO_SAME))
                .transition(
                    Transition::on("CLOSE")
                        .from(["OPEN", "CLOSED"])
                        .to("CLOSED"),
                )
                .transition(
                    Transition::on("FLOW")
                        .from("OPEN")
                        .to("STUCK")
                        .when("flow >= 10", |a| arg(a, "flow") >= 10.0),
                )
                .transition(
                    Transition::on("FLOW")
                        .from("OPEN")
                        .to(TO_SAME)
                        .when("flow < 10", |a| arg(a, "flow") < 10.0),
                )
                .transition(Transition::on("JAM").from(FROM_ANY).to("STUCK")),
        )
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
        let f = valve();
        let m = &f.machine;
        assert_eq!(m.initial(), StateId(0));
        assert_eq!(m.state_name(m.initial()), "CLOSED");
        assert_eq!(m.state_id("STUCK"), Some(StateId(2)));
        assert_eq!(m.state_id("NOPE"), None);
        assert_eq!(m.state_name(StateId(99)), "<invalid state>");
        let states: Vec<_> = m.states().map(|(_, s)| s).collect();
        assert_eq!(states, ["CLOSED", "OPEN", "STUCK"]);
        assert_eq!(m.trigger_id("FLOW"), Some(TriggerId(2)));
        assert_eq!(m.trigger_id("NOPE"), None);
        assert_eq!(m.trigger_name(TriggerId(2)), "FLOW");
        assert_eq!(m.trigger_name(TriggerId(9)), "<invalid trigger>");
        assert_eq!(m.triggers().count(), 4);
        assert_eq!(m.desc().transitions.len(), 6);
    }

    #[test]
    fn sequence() {
        let f = valve();
        let mut state = "CLOSED".to_owned();
        for (trigger, args, expected) in [
            ("OPEN", [("pressure", 2)].into(), "OPEN"),
            ("OPEN", ValueMap::new(), "OPEN"),
            ("FLOW", [("flow", 3)].into(), "OPEN"),
            ("CLOSE", ValueMap::new(), "CLOSED"),
            ("CLOSE", ValueMap::new(), "CLOSED"),
            ("OPEN", [("pressure", 0.5)].into(), "OPEN"),
            ("FLOW", [("flow", 12)].into(), "STUCK"),
            ("JAM", ValueMap::new(), "STUCK"),
        ] {
            state = f.step(&state, trigger, args);
            assert_eq!(state, expected, "after {trigger}");
        }
        for (_, state) in f.machine.states() {
            assert_eq!(f.step(state, "JAM", ()), "STUCK");
        }
    }

    #[test]
    fn unknown_trigger_fails_in_every_mode() {
        let f = valve();
        for mode in [
            TriggerMode::Trigger,
            TriggerMode::MayTrigger,
            TriggerMode::IfAllowed,
        ] {
            let err = f
                .machine
                .fire(
                    f.id("CLOSED"),
                    "BOGUS",
                    &ValueMap::new(),
                    mode,
                    &mut never_called,
                )
                .unwrap_err();
            assert_eq!(err.kind, TriggerFailureKind::UnknownTrigger);
            assert_eq!(
                err.message.as_str(),
                "unknown trigger \"BOGUS\"; triggers: \"OPEN\", \"CLOSE\", \"FLOW\", \"JAM\""
            );
        }
        let err = f
            .machine
            .fire_id(
                f.id("CLOSED"),
                TriggerId(77),
                &ValueMap::new(),
                TriggerMode::Trigger,
                &mut never_called,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::UnknownTrigger);
        assert_eq!(
            err.message.as_str(),
            "unknown trigger id 77; the machine has 4 triggers"
        );
    }

    #[test]
    fn triggers_no_transition_uses() {
        let desc: MachineDesc = StateMachine::new(["A"], "A").describe().into();
        let machine = Machine::new(desc).unwrap();
        let err = machine
            .fire(
                StateId(0),
                "GO",
                &ValueMap::new(),
                TriggerMode::Trigger,
                &mut never_called,
            )
            .unwrap_err();
        assert_eq!(
            err.message.as_str(),
            "unknown trigger \"GO\"; the machine declares no triggers"
        );

        let desc: MachineDesc = StateMachine::new(["A"], "A")
            .triggers(["UNUSED"])
            .describe()
            .into();
        let machine = Machine::new(desc).unwrap();
        let err = machine
            .fire(
                StateId(0),
                "UNUSED",
                &ValueMap::new(),
                TriggerMode::Trigger,
                &mut never_called,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::NotAllowed);
        assert_eq!(
            err.message.as_str(),
            "trigger \"UNUSED\" is not allowed from state \"A\"; no transition uses it"
        );
    }

    #[test]
    fn no_transition_from_state() {
        let f = valve();
        let err = f
            .machine
            .fire(
                f.id("CLOSED"),
                "FLOW",
                &ValueMap::new(),
                TriggerMode::Trigger,
                &mut never_called,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::NotAllowed);
        assert_eq!(
            err.message.as_str(),
            "trigger \"FLOW\" is not allowed from state \"CLOSED\"; it is allowed from \"OPEN\""
        );
        let err = f
            .fire("STUCK", "CLOSE", (), TriggerMode::Trigger)
            .unwrap_err();
        assert_eq!(
            err.message.as_str(),
            "trigger \"CLOSE\" is not allowed from state \"STUCK\"; it is allowed from \"CLOSED\", \"OPEN\""
        );
        for mode in [TriggerMode::MayTrigger, TriggerMode::IfAllowed] {
            let outcome = f
                .machine
                .fire(
                    f.id("CLOSED"),
                    "FLOW",
                    &ValueMap::new(),
                    mode,
                    &mut never_called,
                )
                .unwrap();
            assert_eq!(
                outcome,
                TriggerOutcome {
                    fired: false,
                    from: f.id("CLOSED"),
                    to: f.id("CLOSED")
                }
            );
        }
    }

    #[test]
    fn conditions_not_met() {
        let f = valve();
        let err = f
            .fire("OPEN", "FLOW", [("flow", "lots")], TriggerMode::Trigger)
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::NotAllowed);
        assert_eq!(
            err.message.as_str(),
            "trigger \"FLOW\" is not allowed from state \"OPEN\": conditions not met: \"flow >= 10\", \"flow < 10\""
        );
        let err = f
            .fire("CLOSED", "OPEN", [("pressure", 0)], TriggerMode::Trigger)
            .unwrap_err();
        assert_eq!(
            err.message.as_str(),
            "trigger \"OPEN\" is not allowed from state \"CLOSED\": conditions not met: \"pressure > 0\""
        );
        for mode in [TriggerMode::MayTrigger, TriggerMode::IfAllowed] {
            let outcome = f.fire("CLOSED", "OPEN", [("pressure", 0)], mode).unwrap();
            assert!(!outcome.fired);
            assert_eq!(outcome.to, f.id("CLOSED"));
        }
    }

    #[test]
    fn condition_error_fails_in_every_mode() {
        let f = valve();
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
                .fire(f.id("OPEN"), "FLOW", &ValueMap::new(), mode, &mut eval)
                .unwrap_err();
            assert_eq!(err.kind, TriggerFailureKind::ConditionFailed);
            assert_eq!(
                err.message.as_str(),
                "condition \"flow >= 10\" of transition #4 (FLOW: OPEN -> STUCK) failed while firing trigger \"FLOW\" from state \"OPEN\": plugin panicked: index out of bounds at src/lib.rs:3"
            );
        }
    }

    #[test]
    fn may_trigger_reports_without_changing_state() {
        let f = valve();
        let outcome = f
            .fire("CLOSED", "OPEN", [("pressure", 3)], TriggerMode::MayTrigger)
            .unwrap();
        assert_eq!(
            outcome,
            TriggerOutcome {
                fired: true,
                from: f.id("CLOSED"),
                to: f.id("OPEN")
            }
        );
        let outcome = f.fire("OPEN", "CLOSE", (), TriggerMode::IfAllowed).unwrap();
        assert!(outcome.fired);
        assert_eq!(outcome.to, f.id("CLOSED"));
    }

    #[test]
    fn to_same_stays() {
        let f = valve();
        for (trigger, args) in [("OPEN", ValueMap::new()), ("FLOW", [("flow", 1)].into())] {
            let outcome = f.fire("OPEN", trigger, args, TriggerMode::Trigger).unwrap();
            assert!(outcome.fired);
            assert_eq!(outcome.to, f.id("OPEN"));
        }
    }

    #[test]
    fn invalid_state_id_fails() {
        let f = valve();
        let err = f
            .machine
            .fire(
                StateId(40),
                "OPEN",
                &ValueMap::new(),
                TriggerMode::IfAllowed,
                &mut never_called,
            )
            .unwrap_err();
        assert_eq!(err.kind, TriggerFailureKind::NotAllowed);
        assert_eq!(
            err.message.as_str(),
            "state id 40 is not a state of this machine (it has 3 states)"
        );
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
            sources: vec![StateRef::ToSame],
            dest: StateRef::FromAny,
            conditions: vec![ConditionDesc {
                label: String::from("x"),
                id: 0,
            }],
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
}
