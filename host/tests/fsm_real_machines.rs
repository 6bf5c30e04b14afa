//! The FSM engine on the real plugins' state machines: each machine is
//! taken from its built plugin library (`lib<type>.so`, built by `cargo
//! build --workspace`) through `plugin::Components::describe_machine`,
//! compiled with `fsm::Machine::new`, and fired with the plugin's own
//! condition callback (`Components::eval_condition`), so these tests follow
//! the plugins as they are, with no copy of their machines.

mod support;

use std::sync::OnceLock;

use bitstream_host::fsm::{check_machine, Machine, StateId, TriggerId, TriggerOutcome};
use bitstream_host::model::{PluginError, TriggerFailure, TriggerFailureKind, TriggerMode};
use bitstream_host::plugin::{loader, Components};
use bitstream_sdk::ValueMap;

/// A real plugin's machine, compiled, with the plugin's conditions.
struct Fixture {
    machine: Machine,
    components: Components,
}

/// The components of `lib<ip_block_type>.so` in the build dir.
fn components(ip_block_type: &str) -> Components {
    let library = loader::load_library(&support::plugin_library(ip_block_type))
        .unwrap_or_else(|e| panic!("{ip_block_type}: {e}"));
    Components::from_library(&library)
        .unwrap_or_else(|missing| panic!("{ip_block_type}: missing {missing:?}"))
}

impl Fixture {
    /// Loads the plugin `ip_block_type` and compiles its machine.
    fn load(ip_block_type: &str) -> Fixture {
        let components = components(ip_block_type);
        let desc = components
            .describe_machine()
            .unwrap_or_else(|e| panic!("{ip_block_type}: {e}"));
        Fixture {
            machine: Machine::new(desc).expect("valid machine"),
            components,
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
        let components = self.components;
        let mut eval = |id: u32, args: &ValueMap| components.eval_condition(id, args);
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

/// The ftile_ethernet machine: states `RESET` (initial), `NO_LINK`,
/// `LINK`, `DEGRADED`, `FAULT`; six triggers; eight transitions.
fn ftile_ethernet() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture::load("ftile_ethernet"))
}

/// The packet_validation machine: states `RESET` (initial), `ENABLING`,
/// `ENABLED`, `DISABLING`, `FAULT`; five triggers; eleven transitions.
fn packet_validation() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture::load("packet_validation"))
}

fn never_called(_: u32, _: &ValueMap) -> Result<bool, PluginError> {
    panic!("no condition should be evaluated")
}

/// The nine real VCC plugins (`plugins/<type>/`).
const REAL_TYPES: [&str; 9] = [
    "ftile_ethernet",
    "packet_validation",
    "wideband_input_buffer",
    "wideband_power_meter",
    "frequency_shifter",
    "vcc_ch20",
    "vcc_fs_selection",
    "packetizer",
    "circuit_switch",
];

/// The real plugins with the two-state machine (`vcc_common`'s).
const TWO_STATE_TYPES: [&str; 6] = [
    "wideband_power_meter",
    "frequency_shifter",
    "vcc_ch20",
    "vcc_fs_selection",
    "packetizer",
    "circuit_switch",
];

#[test]
fn real_machines_have_no_problems() {
    for ip_block_type in REAL_TYPES {
        let desc = components(ip_block_type).describe_machine().unwrap();
        assert_eq!(check_machine(&desc), [], "{ip_block_type}");
    }
}

#[test]
fn two_state_machine_has_no_problems() {
    for ip_block_type in TWO_STATE_TYPES {
        let desc = components(ip_block_type).describe_machine().unwrap();
        assert_eq!(desc.states, ["ACTIVE", "FAULT"], "{ip_block_type}");
        assert_eq!(desc.triggers, ["CRITICAL_FAULT"], "{ip_block_type}");
        assert_eq!(check_machine(&desc), [], "{ip_block_type}");
    }
    // The fixtures' plugins share the same machine.
    let library = loader::load_library(&support::fixture("minimal")).unwrap();
    let desc = Components::from_library(&library)
        .unwrap()
        .describe_machine()
        .unwrap();
    assert_eq!(desc.states, ["ACTIVE", "FAULT"]);
    assert_eq!(check_machine(&desc), []);
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
