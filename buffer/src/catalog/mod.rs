//! Catalogs and buffer layouts.
//!
//! A catalog (the crate's `README.md`, "Catalogs") maps kebab-case type
//! names to [`DeviceType`]s, each a list of [`Param`]s. [`DeviceType::layout`]
//! computes the C (`repr(C)`, natural alignment, no packing, x86_64 Linux)
//! layout of the shared buffer of that type ("Layout" in the same document).
//!
//! - `scalar`: [`Scalar`] and [`ParamType`], parsed from catalog strings.
//! - `model`: [`Catalog`], [`DeviceType`], [`Param`] and their queries.
//! - `parse`: [`Catalog::from_json`], its defaults and checks.
//! - `error`: [`CatalogError`].
//! - `layout`: [`Layout`] and the Smart Device `control` and `metrics` structs.

mod error;
mod layout;
mod model;
mod parse;
mod scalar;

pub use error::CatalogError;
pub(crate) use layout::METRICS_RECV;
pub use layout::{
    control_offsets, BlockLayout, FieldLayout, Layout, CONTROL_ALIGN, CONTROL_SIZE,
    DEVICE_UID_SIZE, METRICS_ALIGN, METRICS_SIZE,
};
pub use model::{
    Catalog, DeviceType, Param, SplitError, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_SUB_INTERVAL,
    DEFAULT_WRITE_INTERVAL, MAX_SMART_PARAMS,
};
pub use scalar::{ParamType, ParamTypeError, Scalar, MAX_PARAM_SIZE};

#[cfg(test)]
mod tests;
