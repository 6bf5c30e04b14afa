//! Checks of plugins and configs: the one implementation behind both
//! `validate-bitstream` and the engine's startup.
//!
//! - [`api`]: a route table is well formed.
//! - [`plugin`]: every check of one plugin folder, in order.
//! - state machine checks live in [`crate::fsm::check`], beside the engine
//!   that relies on them; config checks live in [`crate::config`].

pub mod api;
pub mod plugin;
