//! The FSM: the one state-machine engine that runs every plugin's machine.
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
//! - [`check`]: whether a description is well formed (errors the engine
//!   refuses, warnings about likely mistakes), as data, running no plugin
//!   code.
//! - `machine`: the compiled [`Machine`] and firing.
//! - `diagram`: [`Machine::to_dot`] and [`Machine::to_mermaid`].
//!
//! This module depends only on [`crate::model`] (the machine as data) and
//! [`crate::report`] (the check's problems); it never calls plugin code.
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
//!
//! [`MachineDesc`]: crate::model::MachineDesc

pub mod check;
mod diagram;
/// A small machine for tests elsewhere in the host (the SVG renderer).
#[cfg(test)]
pub(crate) use diagram::tests::small as small_test_machine;
mod machine;

pub use check::{check_machine, MAX_STATES, MAX_TRIGGERS};
pub use machine::{Machine, StateId, TriggerId, TriggerOutcome};
