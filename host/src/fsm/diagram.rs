//! State diagrams of a [`Machine`]: Graphviz DOT and Mermaid
//! `stateDiagram-v2` (see the module [`crate::fsm`] for what they show).

use std::fmt::Write as _;

use crate::model::StateRef;

use super::machine::{Machine, StateId};

impl Machine {
    /// The edges to draw: (source node, dest node, label), where a node is
    /// `Some(state)` or `None` for the `any state` pseudo-state.
    fn edges(&self) -> Vec<(Option<StateId>, Option<StateId>, String)> {
        let mut edges = Vec::new();
        for t in self.desc().transitions.iter() {
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
        self.write_dot(name, None, false)
    }

    /// The graph of [`to_dot`](Self::to_dot) for drawing: the pseudo-nodes'
    /// ids quoted (`"__start"`, `"__any"`: some DOT readers take bare ids
    /// only when they begin with a letter) and state `current`, if given,
    /// filled with its colour (a DOT colour such as `"#9fd3ff"`:
    /// `style="rounded,filled"` and `fillcolor` on its node line).
    pub fn to_dot_marked(&self, name: &str, current: Option<(StateId, &str)>) -> String {
        self.write_dot(name, current, true)
    }

    fn write_dot(&self, name: &str, current: Option<(StateId, &str)>, quoted: bool) -> String {
        let (start, any) = if quoted {
            ("\"__start\"", "\"__any\"")
        } else {
            ("__start", "__any")
        };
        let dot_node = |node: Option<StateId>| match node {
            Some(id) => format!("s{}", id.0),
            None => any.to_owned(),
        };
        let edges = self.edges();
        let uses_any = edges.iter().any(|(from, _, _)| from.is_none());
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(name));
        let _ = writeln!(out, "    label=\"{}\";", dot_escape(name));
        out.push_str("    labelloc=t;\n");
        out.push_str("    rankdir=LR;\n");
        out.push_str("    node [shape=box, style=rounded];\n");
        let _ = writeln!(out, "    {start} [shape=point, width=0.15, label=\"\"];");
        for (id, state) in self.states() {
            match current {
                Some((marked, colour)) if marked == id => {
                    let _ = writeln!(
                        out,
                        "    s{} [label=\"{}\", style=\"rounded,filled\", fillcolor=\"{}\"];",
                        id.0,
                        dot_escape(state),
                        dot_escape(colour)
                    );
                }
                _ => {
                    let _ = writeln!(out, "    s{} [label=\"{}\"];", id.0, dot_escape(state));
                }
            }
        }
        if uses_any {
            let _ = writeln!(
                out,
                "    {any} [label=\"any state\", style=\"rounded,dashed\"];"
            );
        }
        let _ = writeln!(out, "    {start} -> s{};", self.initial().0);
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
        let _ = writeln!(out, "    [*] --> s{}", self.initial().0);
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
pub(crate) mod tests {
    use crate::fsm::Machine;
    use crate::model::MachineDesc;
    use bitstream_sdk::{StateMachine, Transition, FROM_ANY, TO_SAME};

    /// `A` (initial) and `B`: a conditioned edge, a loop, and one
    /// transition from any state.
    pub(crate) fn small() -> Machine {
        let desc: MachineDesc = StateMachine::new(["A", "B"], "A")
            .triggers(["GO", "STAY", "RESET"])
            .transition(
                Transition::on("GO")
                    .from("A")
                    .to("B")
                    .when("ready", |_| true),
            )
            .transition(Transition::on("STAY").from(["A", "B"]).to(TO_SAME))
            .transition(Transition::on("RESET").from(FROM_ANY).to("A"))
            .describe()
            .into();
        Machine::new(desc).unwrap()
    }

    #[test]
    fn dot_of_a_small_machine() {
        assert_eq!(
            small().to_dot("small"),
            concat!(
                "digraph \"small\" {\n",
                "    label=\"small\";\n",
                "    labelloc=t;\n",
                "    rankdir=LR;\n",
                "    node [shape=box, style=rounded];\n",
                "    __start [shape=point, width=0.15, label=\"\"];\n",
                "    s0 [label=\"A\"];\n",
                "    s1 [label=\"B\"];\n",
                "    __any [label=\"any state\", style=\"rounded,dashed\"];\n",
                "    __start -> s0;\n",
                "    s0 -> s1 [label=\"GO [ready]\"];\n",
                "    s0 -> s0 [label=\"STAY\"];\n",
                "    s1 -> s1 [label=\"STAY\"];\n",
                "    __any -> s0 [label=\"RESET\"];\n",
                "}\n",
            )
        );
    }

    #[test]
    fn marked_dot_fills_only_the_current_state() {
        let machine = small();
        let b = machine.state_id("B").unwrap();
        let marked = machine.to_dot_marked("small", Some((b, "#9fd3ff")));
        let plain = machine.to_dot("small");
        assert_eq!(
            marked
                .replace("\"__start\"", "__start")
                .replace("\"__any\"", "__any")
                .replace(
                    "    s1 [label=\"B\", style=\"rounded,filled\", fillcolor=\"#9fd3ff\"];\n",
                    "    s1 [label=\"B\"];\n"
                ),
            plain
        );
        assert_ne!(marked, plain);
        assert_eq!(
            machine
                .to_dot_marked("small", None)
                .replace("\"__start\"", "__start")
                .replace("\"__any\"", "__any"),
            plain
        );
    }

    #[test]
    fn mermaid_of_a_small_machine() {
        assert_eq!(
            small().to_mermaid(),
            concat!(
                "stateDiagram-v2\n",
                "    state \"A\" as s0\n",
                "    state \"B\" as s1\n",
                "    state \"any state\" as any_state\n",
                "    [*] --> s0\n",
                "    s0 --> s1 : GO [ready]\n",
                "    s0 --> s0 : STAY\n",
                "    s1 --> s1 : STAY\n",
                "    any_state --> s0 : RESET\n",
                "    classDef anyState stroke-dasharray: 5 5\n",
                "    class any_state anyState\n",
            )
        );
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
