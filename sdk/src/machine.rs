//! The state_machine component: states, triggers and labelled transitions.
//!
//! A plugin describes its machine; the host runs it. The machine crosses the
//! boundary as data ([`MachineDesc`]) plus one callback per condition, so the
//! validator and the diagram generator read it without running plugin code
//! and every plugin's machine follows exactly the same rules.
//!
//! ```
//! use bitstream_sdk::{StateMachine, Transition, FROM_ANY, TO_SAME};
//!
//! let machine = StateMachine::new(["RESET", "NO_LINK", "LINK", "FAULT"], "RESET")
//!     .triggers(["START", "PACKET_RATE_UPDATE", "CRITICAL_FAULT"])
//!     .transition(Transition::on("START").from("RESET").to("NO_LINK"))
//!     .transition(
//!         Transition::on("PACKET_RATE_UPDATE")
//!             .from(["NO_LINK", "LINK"])
//!             .to("LINK")
//!             .when("packet rate > 0", |args| {
//!                 args.get("packet_rate").and_then(|v| v.as_f64()).unwrap_or(0.0) > 0.0
//!             }),
//!     )
//!     .transition(Transition::on("PACKET_RATE_UPDATE").from("LINK").to(TO_SAME))
//!     .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"));
//! assert_eq!(machine.describe().transitions.len(), 4);
//! ```

use abi_stable::std_types::RString;

pub use crate::ffi::{ConditionDesc, MachineDesc, StateRef, TransitionDesc};
use crate::value::ValueMap;

/// The source that matches every state. Only valid as the sole source.
pub const FROM_ANY: StateRef = StateRef::FromAny;

/// The destination that keeps the current state. Only valid as a destination.
pub const TO_SAME: StateRef = StateRef::ToSame;

/// A condition predicate: it receives the arguments given to the trigger.
pub type Condition = Box<dyn Fn(&ValueMap) -> bool + Send + Sync>;

/// A state machine being described by a plugin.
pub struct StateMachine {
    states: Vec<String>,
    triggers: Vec<String>,
    initial: String,
    transitions: Vec<Transition>,
}

impl StateMachine {
    /// A machine with these states, starting in `initial`.
    pub fn new<S: Into<String>>(
        states: impl IntoIterator<Item = S>,
        initial: impl Into<String>,
    ) -> Self {
        StateMachine {
            states: states.into_iter().map(Into::into).collect(),
            triggers: Vec::new(),
            initial: initial.into(),
            transitions: Vec::new(),
        }
    }

    /// Declares the triggers (in addition to any declared before).
    pub fn triggers<S: Into<String>>(mut self, triggers: impl IntoIterator<Item = S>) -> Self {
        self.triggers.extend(triggers.into_iter().map(Into::into));
        self
    }

    /// Adds a transition. Transitions are tried in the order they are added;
    /// the first whose source matches and whose conditions all hold fires.
    pub fn transition(mut self, transition: Transition) -> Self {
        self.transitions.push(transition);
        self
    }

    /// The machine as data (condition ids count from 0 in the order the
    /// conditions were added).
    pub fn describe(&self) -> MachineDesc {
        let mut next_id = 0u32;
        let transitions = self
            .transitions
            .iter()
            .map(|t| TransitionDesc {
                trigger: RString::from(t.trigger.as_str()),
                sources: t.sources.iter().cloned().collect(),
                dest: t.dest.clone(),
                conditions: t
                    .conditions
                    .iter()
                    .map(|(label, _)| {
                        let id = next_id;
                        next_id += 1;
                        ConditionDesc {
                            label: RString::from(label.as_str()),
                            id,
                        }
                    })
                    .collect(),
            })
            .collect();
        MachineDesc {
            states: self
                .states
                .iter()
                .map(|s| RString::from(s.as_str()))
                .collect(),
            triggers: self
                .triggers
                .iter()
                .map(|s| RString::from(s.as_str()))
                .collect(),
            initial: RString::from(self.initial.as_str()),
            transitions,
        }
    }

    /// Splits the machine into its description and its condition
    /// predicates, indexed by condition id: the predicate of the condition
    /// with id `n` is the `n`-th element of the returned `Vec`.
    ///
    /// Plugins do not need this (the SDK exports the machine for them). It
    /// is for hosts and test harnesses that run the description themselves
    /// and evaluate its conditions by id.
    ///
    /// ```
    /// use bitstream_sdk::{StateMachine, Transition, ValueMap};
    ///
    /// let machine = StateMachine::new(["IDLE", "BUSY"], "IDLE")
    ///     .triggers(["GO"])
    ///     .transition(
    ///         Transition::on("GO")
    ///             .from("IDLE")
    ///             .to("BUSY")
    ///             .when("ready", |args| args.get("ready").is_some()),
    ///     );
    /// let (desc, conditions) = machine.into_parts();
    /// let id = desc.transitions[0].conditions[0].id;
    /// assert_eq!(desc.transitions[0].conditions[0].label.as_str(), "ready");
    /// assert!(!(conditions[id as usize])(&ValueMap::new()));
    /// assert!((conditions[id as usize])(&[("ready", true)].into()));
    /// ```
    pub fn into_parts(self) -> (MachineDesc, Vec<Condition>) {
        let desc = self.describe();
        let conditions = self
            .transitions
            .into_iter()
            .flat_map(|t| t.conditions.into_iter().map(|(_, predicate)| predicate))
            .collect();
        (desc, conditions)
    }
}

/// One transition, built with [`Transition::on`].
pub struct Transition {
    trigger: String,
    sources: Vec<StateRef>,
    dest: StateRef,
    conditions: Vec<(String, Condition)>,
}

impl Transition {
    /// A transition fired by `trigger`. Give it a source with
    /// [`from`](Self::from) and a destination with [`to`](Self::to).
    pub fn on(trigger: impl Into<String>) -> Self {
        Transition {
            trigger: trigger.into(),
            sources: Vec::new(),
            dest: StateRef::ToSame,
            conditions: Vec::new(),
        }
    }

    /// The state(s) it leaves from: a state name, a list of names, or
    /// [`FROM_ANY`].
    pub fn from(mut self, sources: impl IntoSources) -> Self {
        self.sources = sources.into_sources();
        self
    }

    /// The state it enters: a state name or [`TO_SAME`] (the default).
    pub fn to(mut self, dest: impl Into<StateRef>) -> Self {
        self.dest = dest.into();
        self
    }

    /// Adds a labelled condition; the transition fires only if every
    /// condition returns `true` for the trigger's arguments.
    pub fn when(
        mut self,
        label: impl Into<String>,
        predicate: impl Fn(&ValueMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.conditions.push((label.into(), Box::new(predicate)));
        self
    }
}

impl From<&str> for StateRef {
    fn from(name: &str) -> Self {
        StateRef::State(RString::from(name))
    }
}

impl From<String> for StateRef {
    fn from(name: String) -> Self {
        StateRef::State(RString::from(name))
    }
}

impl std::fmt::Display for StateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateRef::State(name) => f.write_str(name),
            StateRef::FromAny => f.write_str("FROM_ANY"),
            StateRef::ToSame => f.write_str("TO_SAME"),
        }
    }
}

/// What [`Transition::from`] accepts: one state, [`FROM_ANY`], or a list.
pub trait IntoSources {
    /// The sources as a list.
    fn into_sources(self) -> Vec<StateRef>;
}

impl IntoSources for StateRef {
    fn into_sources(self) -> Vec<StateRef> {
        vec![self]
    }
}

impl IntoSources for &str {
    fn into_sources(self) -> Vec<StateRef> {
        vec![self.into()]
    }
}

impl IntoSources for String {
    fn into_sources(self) -> Vec<StateRef> {
        vec![self.into()]
    }
}

impl<T: Into<StateRef>, const N: usize> IntoSources for [T; N] {
    fn into_sources(self) -> Vec<StateRef> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<T: Into<StateRef>> IntoSources for Vec<T> {
    fn into_sources(self) -> Vec<StateRef> {
        self.into_iter().map(Into::into).collect()
    }
}

impl MachineDesc {
    /// Whether `name` is a declared state.
    pub fn has_state(&self, name: &str) -> bool {
        self.states.iter().any(|s| s.as_str() == name)
    }

    /// Whether `name` is a declared trigger.
    pub fn has_trigger(&self, name: &str) -> bool {
        self.triggers.iter().any(|t| t.as_str() == name)
    }
}

impl TransitionDesc {
    /// Whether this transition may leave from `state`.
    pub fn leaves_from(&self, state: &str) -> bool {
        self.sources.iter().any(|s| match s {
            StateRef::FromAny => true,
            StateRef::State(name) => name.as_str() == state,
            StateRef::ToSame => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_ids_follow_declaration_order() {
        let machine = StateMachine::new(["A", "B"], "A")
            .triggers(["GO"])
            .transition(
                Transition::on("GO")
                    .from("A")
                    .to("B")
                    .when("x", |_| true)
                    .when("y", |_| false),
            )
            .transition(
                Transition::on("GO")
                    .from("B")
                    .to(TO_SAME)
                    .when("z", |_| true),
            );
        let (desc, conditions) = machine.into_parts();
        let ids: Vec<_> = desc
            .transitions
            .iter()
            .flat_map(|t| t.conditions.iter().map(|c| (c.label.to_string(), c.id)))
            .collect();
        assert_eq!(ids, [("x".into(), 0), ("y".into(), 1), ("z".into(), 2)]);
        assert_eq!(conditions.len(), 3);
        assert!(!(conditions[1])(&ValueMap::new()));
    }

    #[test]
    fn leaves_from_matches_names_and_from_any() {
        let desc = StateMachine::new(["A", "B"], "A")
            .transition(Transition::on("T").from(["A"]).to("B"))
            .transition(Transition::on("T").from(FROM_ANY).to("A"))
            .describe();
        assert!(desc.transitions[0].leaves_from("A"));
        assert!(!desc.transitions[0].leaves_from("B"));
        assert!(desc.transitions[1].leaves_from("B"));
    }
}
