//! Checks of plugins and configs: the one implementation behind both
//! `validate-bitstream` and the engine's startup.
//!
//! - [`machine`]: a state machine description is well formed.
//! - [`api`]: a route table is well formed.
//! - [`plugin`]: every check of one plugin folder, in order.
//! - config checks live in [`crate::config`].

pub mod api;
pub mod machine;
pub mod plugin;
