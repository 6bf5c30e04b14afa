//! The kit's side of the subcontroller: what plugin code reaches during a
//! call, with the engine's rules (the trigger goes through the host's own
//! [`Machine`]; `force_signal_update` and `delay_action` are recorded and
//! done after the call).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use bitstream_host::fsm::{Machine, StateId};
use bitstream_host::model::{LogLevel, TriggerFailure, TriggerFailureKind, TriggerMode};
use bitstream_host::plugin::{BlockHost, Components, DelayedCall};
use bitstream_sdk::ValueMap;

use crate::LogLine;

/// Work a call asked for, done after it returns.
pub(crate) enum Deferred {
    ForceSignalUpdate,
    Delay(Duration, DelayedCall),
}

/// What the harness records across calls.
#[derive(Default)]
pub(crate) struct Records {
    pub logs: RefCell<Vec<LogLine>>,
    pub fired: RefCell<Vec<String>>,
    pub forced: Cell<usize>,
}

/// One call's host: the block's state while the call runs, and what it
/// deferred.
pub(crate) struct KitCtx<'a> {
    pub block_id: &'a str,
    pub machine: &'a Machine,
    pub components: &'a Components,
    pub buffer: Option<(*mut u8, usize)>,
    pub records: &'a Records,
    pub state: Cell<StateId>,
    pub deferred: RefCell<Vec<Deferred>>,
}

/// Fires `trigger` on `machine` from `*state` as the engine does: the
/// host's [`Machine::fire`], conditions evaluated by the plugin.
pub(crate) fn fire(
    machine: &Machine,
    components: &Components,
    state: &Cell<StateId>,
    trigger: &str,
    args: &ValueMap,
    mode: TriggerMode,
) -> Result<bool, TriggerFailure> {
    let mut eval = |id: u32, args: &ValueMap| components.eval_condition(id, args);
    let outcome = machine.fire(state.get(), trigger, args, mode, &mut eval)?;
    if mode != TriggerMode::MayTrigger && outcome.fired {
        state.set(outcome.to);
    }
    Ok(outcome.fired)
}

impl BlockHost for KitCtx<'_> {
    fn block_id(&self) -> &str {
        self.block_id
    }

    fn state_name(&self) -> String {
        self.machine.state_name(self.state.get()).to_owned()
    }

    fn trigger(
        &self,
        trigger: &str,
        args: &ValueMap,
        mode: TriggerMode,
    ) -> Result<bool, TriggerFailure> {
        match fire(
            self.machine,
            self.components,
            &self.state,
            trigger,
            args,
            mode,
        ) {
            Ok(fired) => {
                if fired && mode != TriggerMode::MayTrigger {
                    self.records.fired.borrow_mut().push(trigger.to_owned());
                }
                Ok(fired)
            }
            Err(failure) => {
                if failure.kind == TriggerFailureKind::ConditionFailed {
                    self.log(LogLevel::Error, &failure.message);
                }
                Err(failure)
            }
        }
    }

    fn force_signal_update(&self) {
        self.records.forced.set(self.records.forced.get() + 1);
        self.deferred.borrow_mut().push(Deferred::ForceSignalUpdate);
    }

    fn delay_action(&self, delay: Duration, action: DelayedCall) {
        self.deferred
            .borrow_mut()
            .push(Deferred::Delay(delay, action));
    }

    fn buffer(&self) -> Option<(*mut u8, usize)> {
        self.buffer
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.records.logs.borrow_mut().push(LogLine {
            level,
            message: message.to_owned(),
        });
    }
}
