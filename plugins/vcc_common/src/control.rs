//! [`Control`]: the part of the SDK's `Subcontroller` the VCC handlers use.

use bitstream_sdk::prelude::*;

/// The part of the SDK's [`Subcontroller`] the VCC blocks' handlers use.
///
/// The shared handlers take any `Control`; the implementation below
/// forwards every call to the block's real `Subcontroller` (the unit tests
/// run whole blocks with `bitstream-testkit`, so they get the real one
/// too).
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
