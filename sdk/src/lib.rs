//! # bitstream-sdk: write IP block emulators for the bitstream emulator
//!
//! An IP block emulator is a `cdylib` that exports four components, as in
//! the original SKA engine:
//!
//! 1. **ip_block**: the block's data, a type that is `Default` and serde
//!    `Serialize + Deserialize`. Config `constants` are assigned over the
//!    defaults; the current state can be read as JSON.
//! 2. **state_machine**: a [`StateMachine`] of named states and triggers and
//!    labelled [`Transition`]s. The host runs it.
//! 3. **api**: an [`Api`] of HTTP [`Route`]s served at `/<block_id>/<route>`.
//! 4. **event_handler**: an [`EventHandler`] for pulse, signal-update and
//!    manual events.
//!
//! Every route and handler receives the block and its [`Subcontroller`].
//! One plugin library serves every block of its type in a bitstream.
//!
//! ```
//! use bitstream_sdk::prelude::*;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! pub struct Shifter {
//!     shift_frequency: f64,
//! }
//!
//! fn state_machine() -> StateMachine {
//!     StateMachine::new(["ACTIVE", "FAULT"], "ACTIVE")
//!         .triggers(["CRITICAL_FAULT"])
//!         .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
//! }
//!
//! fn api() -> Api<Shifter> {
//!     Api::new().route(Route::get("status", |block: &mut Shifter, _ctx, _req| {
//!         Ok(Response::json(&*block))
//!     }))
//! }
//!
//! fn event_handler() -> EventHandler<Shifter> {
//!     EventHandler::<Shifter>::new().on_manual_event(|_block, ctx, event| {
//!         if event.severity == Severity::FatalError {
//!             ctx.trigger_if_allowed("CRITICAL_FAULT", ());
//!         }
//!         Ok(None)
//!     })
//! }
//!
//! bitstream_sdk::export_plugin! {
//!     ip_block: Shifter,
//!     state_machine: state_machine,
//!     api: api,
//!     event_handler: event_handler,
//! }
//! # fn main() {}
//! ```
//!
//! Build it as a `cdylib` and place the `.so` at
//! `<package>/emulators/<ip_block_type>/emulator/`.
//!
//! ## Panics
//! A panic anywhere in plugin code is caught inside the plugin and returned
//! to the host as an error carrying its message and location: the call
//! fails (a route answers 500), the host goes on.
//!
//! ## Logging
//! [`Subcontroller::log`] and its `log_*` shorthands write to the
//! emulator's log, tagged with the block id. Records logged through the
//! [`log`](https://docs.rs/log) facade by code inside the plugin (the
//! SDK's own device-buffer code, which warns about a clamped value, or the
//! plugin's `log::warn!`) get there too: when the host loads the library,
//! the SDK sets a logger in the plugin's copy of `log` that lets every
//! level through and hands each record, as `<target>: <message>` at its
//! level, to the subcontroller of the block whose route, handler or
//! delayed action is running on that thread. The emulator's
//! `--log-level` decides what is shown.
//!
//! Outside any block's call (while a block is created or its constants
//! applied, or on a thread the plugin spawned) a record at INFO or above
//! goes to stderr, prefixed with the plugin's name; DEBUG and TRACE are
//! dropped there. A record logged while one is being handed to the host
//! also goes to stderr, so logging never loops. If the plugin has set a
//! logger of its own before the host loads it (from a library
//! constructor), the SDK leaves it, and its max level, in place; a plugin
//! that sets one later gets `log`'s `SetLoggerError` (so use a logger's
//! `try_init`, not an `init` that panics on it).
//!
//! ```
//! use bitstream_sdk::prelude::*;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Meter {
//!     power: f64,
//! }
//!
//! let api = Api::<Meter>::new().route(Route::post("sample", |block: &mut Meter, ctx, _req| {
//!     if block.power > 1.0 {
//!         // In the emulator's log as `WARN plugin: my_meter: power 1.5 above 1 block="<id>"`.
//!         log::warn!("power {} above 1", block.power);
//!         block.power = 1.0;
//!     }
//!     ctx.log_info("sampled"); // the same, without the `log` crate
//!     Ok(Response::ok())
//! }));
//! # assert_eq!(api.describe().len(), 1);
//! ```
//!
//! ## Request bodies: declare the schema, the host checks it
//! Declare a route's JSON body with
//! [`Route::body_with_schema`](api::Route::body_with_schema) (JSON Schema,
//! draft 2020-12). The host compiles the schema once when it loads the
//! plugin (a schema that is not valid JSON Schema fails
//! `validate-bitstream` and `run`, naming the route) and answers 400 to a
//! body that breaks it, listing every violation with its JSON pointer
//! (`invalid body: /gain: 9 is greater than the maximum of 6`); the handler
//! only sees bodies that satisfy it and reads them with
//! [`Request::json`]. Plugins link no validator: see [`schema`] for the
//! SDK 1.1 helpers that remain and how they reach the host's.
//!
//! ## The block id and per-block state
//! One plugin library serves every block of its type; each block has its
//! own ip_block value, so **per-block state is the ip_block's fields**.
//! Fields the config must not set and the status must not show (caches,
//! counters, handles) are `#[serde(skip)]` fields, which start from
//! `Default` in every block. [`Subcontroller::block_id`] names the block
//! being called (its `id` in the config), for messages.
//!
//! ```
//! use bitstream_sdk::prelude::*;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Meter {
//!     gain: f64,             // a constant or configured value: public state
//!     #[serde(skip)]
//!     calls: u64,            // handler state: per block, never serialized
//! }
//!
//! let route = Route::post("sample", |block: &mut Meter, ctx, _req| {
//!     block.calls += 1;
//!     let id = ctx.block_id().unwrap_or_default();
//!     Ok(Response::ok().with_body(Value::from(format!("{id}: call {}", block.calls))))
//! });
//! # let _ = route;
//! ```
//!
//! ## Device-buffer catalogs
//! A block may have a *device buffer*: a C struct in shared memory that
//! other processes read and write. Its layout comes from a **catalog**, a
//! JSON object mapping type names to type specs:
//!
//! ```json
//! {"wideband-power-meter": {
//!    "params": [
//!      {"name": "power", "type": "double"},
//!      {"name": "enabled", "type": "bool", "writeable": true},
//!      {"name": "label", "type": "char[32]", "writeable": true}]}}
//! ```
//!
//! A type has `params` (in order; each with `name`, `type` — a scalar such
//! as `bool`, `int32`, `uint64`, `float`, `double`, optionally with `[n]`
//! dimensions — and optional `id`, `lower`/`upper`, `readable`,
//! `writeable`, `subscribed`), and may have `device_id` (a Smart Device),
//! `sub_interval`, `write_interval` and `heartbeat_interval`. The full
//! format, the C layout and the rules a catalog must satisfy are in the
//! documentation of `bitstream_sdk::buffer::catalog` (the `buffer`
//! feature, on by default).
//!
//! **Which catalog type a block gets.** A plugin ships its catalog as
//! `catalog.json` beside its library in `emulators/<type>/emulator/`, or
//! declares it with `export_plugin! { ..., catalog: include_str!("catalog.json") }`
//! (the file wins when both exist). Every block of the plugin's ip_block
//! type gets a buffer of the catalog type named 1. like the ip_block type
//! (`wideband_power_meter`), else 2. its kebab-case spelling
//! (`wideband-power-meter`), else 3. the catalog's only type. Otherwise
//! the plugin fails to load, with a message listing the catalog's types. A
//! plugin without a catalog has no buffers. Plugin code reaches its
//! block's buffer with `Subcontroller::buffer`.
//!
//! ## Build profile
//! `export_plugin!` records how the plugin was built (SDK version, cargo
//! profile, opt-level). `validate-bitstream` warns about a plugin built
//! without optimization: build with `cargo build --release` before
//! packaging.
//!
//! ## Versions
//! A plugin built with SDK `M.m.p` loads in a host built with SDK `M.n.q`
//! when the majors are equal and `m <= n`. See [`version`].

#![warn(missing_docs)]

pub mod api;
#[cfg(feature = "buffer")]
pub mod buffer;
#[allow(unsafe_code)] // a pointer to the running call's context
mod call;
pub mod error;
pub mod events;
#[allow(unsafe_code)] // abi_stable's derives of the ABI types
#[doc(hidden)]
pub mod ffi;
mod logging;
pub mod machine;
#[allow(unsafe_code)] // the plugin side of the FFI edge
#[doc(hidden)]
pub mod runtime;
pub mod schema;
#[allow(unsafe_code)] // calls the host's subcontroller table
pub mod subcontroller;
pub mod value;
pub mod version;

pub use api::{Api, Method, ParamKind, Request, Response, Route};
pub use error::{Error, TriggerError};
pub use events::{EventHandler, ManualEvent, ManualEventSubtype, PulseEvent, Severity};
pub use ffi::LogLevel;
pub use machine::{StateMachine, Transition, FROM_ANY, TO_SAME};
pub use schema::JsonSchema;
pub use subcontroller::Subcontroller;
pub use value::{Value, ValueMap};
pub use version::SDK_VERSION;

/// What a plugin author usually needs, plus serde's derives.
pub mod prelude {
    pub use crate::{
        Api, Error, EventHandler, IpBlock, JsonSchema, LogLevel, ManualEvent, ManualEventSubtype,
        Method, ParamKind, PulseEvent, Request, Response, Route, Severity, StateMachine,
        Subcontroller, Transition, Value, ValueMap, FROM_ANY, TO_SAME,
    };
    pub use serde::{Deserialize, Serialize};
}

/// The ip_block component: the simulated block's data.
///
/// Implemented for every `Default + Serialize + DeserializeOwned + Send`
/// type. Constants from the bitstream config are assigned over the
/// defaults by name; an unknown name or a value of the wrong type is an
/// error naming both the field and the type.
pub trait IpBlock:
    Default + serde::Serialize + serde::de::DeserializeOwned + Send + 'static
{
}

impl<T: Default + serde::Serialize + serde::de::DeserializeOwned + Send + 'static> IpBlock for T {}

/// Exports a plugin from its four components.
///
/// `ip_block` is a type; the three others are functions (or closures) with
/// no arguments returning a [`StateMachine`], an [`Api<Block>`](Api) and an
/// [`EventHandler<Block>`](EventHandler). Invoke it once, at the root of a
/// `cdylib` crate; see the crate documentation for a whole plugin.
///
/// An optional last entry, `catalog: "<JSON>"` (a `&'static str`, often
/// `include_str!("catalog.json")`), declares the device-buffer catalog of
/// the plugin's blocks: the engine then gives every block a buffer of the
/// catalog's type (see [`Subcontroller::buffer`]). A `catalog.json` beside
/// the library in its emulator folder does the same without rebuilding.
///
/// At the crate's root it defines `pub fn __bitstream_root_module()`, which
/// builds the module the library hands the host's loader: the test kit's
/// `Harness::<Block>::for_plugin(my_plugin::__bitstream_root_module)` runs a
/// block through it in-process (the crate must also be an `rlib`).
///
/// Another optional last entry, `restore: <fn(&Value, &str) -> Result<Block, String>>`,
/// migrates a block's data when the engine swaps the plugin of a running
/// emulator: it gets the old version's snapshot (its ip_block serialized)
/// and the old plugin version, and builds the new block. Without it the
/// SDK assigns the fields both versions share
/// ([`runtime::restore_fields`]). Since SDK 1.2.
///
/// ```
/// use bitstream_sdk::prelude::*;
///
/// #[derive(Default, Serialize, Deserialize)]
/// pub struct Gain { gain_db: f64 }
///
/// /// Version 1 stored a linear `gain`; this version stores decibels.
/// fn migrate(old: &Value, _from_version: &str) -> Result<Gain, String> {
///     let linear = match old {
///         Value::Map(fields) => fields.get("gain").and_then(Value::as_f64),
///         _ => None,
///     };
///     let gain_db = linear.map_or(0.0, |g| 20.0 * g.log10());
///     Ok(Gain { gain_db })
/// }
///
/// bitstream_sdk::export_plugin! {
///     ip_block: Gain,
///     state_machine: || StateMachine::new(["ACTIVE"], "ACTIVE"),
///     api: Api::new,
///     event_handler: EventHandler::new,
///     restore: migrate,
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    (
        ip_block: $block:ty,
        state_machine: $machine:expr,
        api: $api:expr,
        event_handler: $events:expr
        $(, catalog: $catalog:expr)?
        $(, restore: $restore:expr)? $(,)?
    ) => {
        $crate::define_plugin!(__BitstreamPlugin,
            ip_block: $block, state_machine: $machine, api: $api, event_handler: $events
            $(, catalog: $catalog)? $(, restore: $restore)?);
        $crate::export_plugin_module!($crate::runtime::plugin_module::<__BitstreamPlugin>(
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
        ));
        $crate::export_plugin_restore!(__BitstreamPlugin);
    };
}

/// Exports the restore of the plugin defined as `$name` (see
/// [`define_plugin!`]) as [`ffi::RESTORE_SYMBOL`]. Low level: use
/// [`export_plugin!`].
#[doc(hidden)]
#[macro_export]
macro_rules! export_plugin_restore {
    ($name:ident) => {
        #[doc(hidden)]
        #[export_name = "bitstream_plugin_restore"]
        pub extern "C" fn __bitstream_plugin_restore(
            block: $crate::ffi::BlockPtr,
            snapshot: &$crate::Value,
            from_version: $crate::__private::abi_stable::std_types::RStr<'_>,
        ) -> $crate::ffi::FfiResult<()> {
            $crate::runtime::restore_ffi::<$name>(block, snapshot, from_version)
        }
        const _: $crate::ffi::RestoreFn = __bitstream_plugin_restore;
    };
}

/// Defines the marker type `$name` tying four components together, without
/// exporting it. Low level: use [`export_plugin!`] unless you need to build
/// the [`ffi::PluginModule`] yourself (the validator's test fixtures do).
#[doc(hidden)]
#[macro_export]
macro_rules! define_plugin {
    (
        $name:ident,
        ip_block: $block:ty,
        state_machine: $machine:expr,
        api: $api:expr,
        event_handler: $events:expr
        $(, catalog: $catalog:expr)?
        $(, restore: $restore:expr)? $(,)?
    ) => {
        #[doc(hidden)]
        pub struct $name;

        impl $crate::runtime::PluginDefinition for $name {
            type Block = $block;
            fn state_machine() -> $crate::StateMachine {
                ($machine)()
            }
            fn api() -> $crate::Api<$block> {
                ($api)()
            }
            fn event_handler() -> $crate::EventHandler<$block> {
                ($events)()
            }
            fn runtime() -> &'static $crate::runtime::Runtime<$block> {
                static RUNTIME: $crate::runtime::Runtime<$block> = $crate::runtime::Runtime::new();
                &RUNTIME
            }
            $(
                fn catalog() -> ::core::option::Option<&'static str> {
                    ::core::option::Option::Some($catalog)
                }
            )?
            $(
                fn restore(
                    snapshot: &$crate::Value,
                    from_version: &str,
                ) -> ::core::result::Result<$block, ::std::string::String> {
                    ($restore)(snapshot, from_version)
                }
            )?
        }

        impl $crate::runtime::InProcess<$name> for $block {
            fn root_module() -> $crate::ffi::PluginModuleRef {
                static MODULE: ::std::sync::OnceLock<$crate::ffi::PluginModuleRef> =
                    ::std::sync::OnceLock::new();
                *MODULE.get_or_init(|| {
                    $crate::__private::PrefixTypeTrait::leak_into_prefix(
                        $crate::runtime::plugin_module::<$name>(
                            ::core::env!("CARGO_PKG_NAME"),
                            ::core::env!("CARGO_PKG_VERSION"),
                        ),
                    )
                })
            }
        }
    };
}

/// Exports a [`ffi::PluginModule`] value as the library's root module.
/// Low level: use [`export_plugin!`].
#[doc(hidden)]
#[macro_export]
macro_rules! export_plugin_module {
    ($module:expr) => {
        #[doc(hidden)]
        pub fn __bitstream_root_module() -> $crate::ffi::PluginModuleRef {
            $crate::__private::PrefixTypeTrait::leak_into_prefix($module)
        }

        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __BITSTREAM_PLUGIN_HEADER: $crate::__private::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::__private::RootModuleResult {
                $crate::__private::call_root_module_loader(__bitstream_root_module)
            }
            // SAFETY: `erased_root_module` returns the erased form of a
            // `PluginModuleRef`, which is the module type named here.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::ffi::PluginModuleRef>(
                    erased_root_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };

        /// The build record (SDK version, profile), readable without the
        /// layout check. Since SDK 1.2.
        #[doc(hidden)]
        #[export_name = "bitstream_sdk_plugin_info"]
        pub extern "C" fn __bitstream_plugin_info() -> *const ::core::ffi::c_char {
            $crate::runtime::plugin_info(::core::cfg!(debug_assertions))
        }

        /// Receives the host functions added after SDK 1.1. Since SDK 1.2.
        #[doc(hidden)]
        #[export_name = "bitstream_sdk_set_host_extensions"]
        pub extern "C" fn __bitstream_set_host_extensions(
            extensions: $crate::ffi::HostExtensionsRef,
        ) {
            $crate::runtime::set_host_extensions(extensions)
        }
    };
}

/// Re-exports for the macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
    pub use abi_stable::library::{
        __call_root_module_loader as call_root_module_loader, CheckTypeLayout, LibHeader,
        RootModuleResult,
    };
    pub use abi_stable::prefix_type::PrefixTypeTrait;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_record_is_json_with_the_sdk_version() {
        let text = crate::runtime::plugin_info(true);
        // SAFETY: `plugin_info` returns a NUL-terminated string kept for
        // the life of the library.
        #[allow(unsafe_code)]
        let text = unsafe { std::ffi::CStr::from_ptr(text) };
        let info: serde_json::Value = serde_json::from_str(text.to_str().unwrap()).unwrap();
        assert_eq!(info["sdk_version"], crate::SDK_VERSION);
        assert_eq!(info["debug_assertions"], true);
        assert!(
            ["debug", "release"].contains(&info["profile"].as_str().unwrap()),
            "{info}"
        );
        assert!(!info["opt_level"].as_str().unwrap().is_empty(), "{info}");
    }

    #[test]
    fn the_restore_symbol_is_the_one_the_macro_exports() {
        // `export_plugin_restore!` spells the name out (an attribute takes
        // no constant).
        assert_eq!(crate::ffi::RESTORE_SYMBOL, "bitstream_plugin_restore");
    }

    #[test]
    fn exported_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            crate::ffi::ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
