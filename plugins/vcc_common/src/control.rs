//! [`Control`]: the part of the SDK's `Subcontroller` the VCC handlers use.

use bitstream_sdk::prelude::*;

/// The part of the SDK's [`Subcontroller`] the VCC blocks' handlers use.
///
/// Handlers are written against this trait rather than against
/// `Subcontroller` because the SDK offers no way to build a
/// `Subcontroller` outside a host: in the engine they receive the real
/// one (the implementation below forwards every call to it), and the unit
/// tests give them the stand-in engine of `vcc_common::testing` (feature
/// `testing`), which runs the plugin's real state machine.
pub trait Control {
    /// The block's current state.
    fn get_state(&self) -> String;
    /// Whether `trigger` would fire now.
    fn may_trigger(&self, trigger: &str, args: impl Into<ValueMap>) -> bool;
    /// Fires `trigger`; not allowed now is an error (409 from a route).
    fn trigger(&self, trigger: &str, args: impl Into<ValueMap>) -> Result<(), Error>;
    /// Fires `trigger` if allowed; answers whether it fired.
    fn trigger_if_allowed(&self, trigger: &str, args: impl Into<ValueMap>) -> bool;
    /// Re-runs the signal-update handler after the current call.
    fn force_signal_update(&self) -> Result<(), Error>;
    /// Logs, tagged with the block.
    fn log(&self, level: LogLevel, message: &str);
}

impl<B: IpBlock> Control for Subcontroller<'_, B> {
    fn get_state(&self) -> String {
        Subcontroller::get_state(self)
    }
    fn may_trigger(&self, trigger: &str, args: impl Into<ValueMap>) -> bool {
        Subcontroller::may_trigger(self, trigger, args)
    }
    fn trigger(&self, trigger: &str, args: impl Into<ValueMap>) -> Result<(), Error> {
        Subcontroller::trigger(self, trigger, args).map_err(Error::from)
    }
    fn trigger_if_allowed(&self, trigger: &str, args: impl Into<ValueMap>) -> bool {
        Subcontroller::trigger_if_allowed(self, trigger, args)
    }
    fn force_signal_update(&self) -> Result<(), Error> {
        Subcontroller::force_signal_update(self)
    }
    fn log(&self, level: LogLevel, message: &str) {
        Subcontroller::log(self, level, message)
    }
}
