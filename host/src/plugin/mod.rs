//! The one edge between the host and plugin code.
//!
//! Every call into a plugin, and every abi_stable or `bitstream_sdk::ffi`
//! type, stays inside this module: [`loader`] finds and loads libraries,
//! [`Components`] and [`BlockInstance`] call a plugin's four components,
//! `host_calls` answers the plugin's subcontroller calls through
//! [`BlockHost`], and `convert` maps the ABI types onto the host's own
//! [`crate::model`] types, which are all the rest of the host sees. The test
//! `host/tests/architecture.rs` fails when another module names an ABI type.
//!
//! The plugin catches its own panics (the SDK guards every entry point), so
//! each call returns a `Result` and never unwinds into the host.

mod convert;
mod host_calls;
pub mod loader;

use std::sync::Arc;

use abi_stable::std_types::{RResult, RVec};
use bitstream_sdk::ffi::{
    self, ApiVTableRef, BlockPtr, EventHandlerVTableRef, IpBlockVTableRef, StateMachineVTableRef,
};
use bitstream_sdk::{Value, ValueMap};

pub use host_calls::{BlockHost, DelayedCall};
pub use loader::LoadedLibrary;

/// Hands the host's extension table (the block id, the host's JSON Schema
/// validator; see `bitstream_sdk::ffi::HostExtensions`) to plugin code
/// linked into this process rather than loaded from a library, as a test
/// harness that runs a block in-process does. The loader does this for
/// every library it loads. Calling it again changes nothing.
pub fn install_host_extensions_in_process() {
    bitstream_sdk::runtime::set_host_extensions(*host_calls::HOST_EXTENSIONS);
}

use crate::catalog::PluginCatalog;
use crate::fsm::Machine;
use crate::model::{
    HandlerOverrides, MachineDesc, ManualEvent, PluginError, PulseEvent, RouteDesc, RouteRequest,
    RouteResponse,
};

fn result<T, U: Into<T>>(result: RResult<U, ffi::PluginError>) -> Result<T, PluginError> {
    match result {
        RResult::ROk(value) => Ok(value.into()),
        RResult::RErr(err) => Err(err.into()),
    }
}

/// The function that builds a plugin's root module: what `export_plugin!`
/// defines at a plugin crate's root as `__bitstream_root_module` (see
/// [`Components::from_root_module`]).
pub type RootModuleFn = fn() -> ffi::PluginModuleRef;

/// The four component tables of a loaded plugin.
#[derive(Clone, Copy)]
pub struct Components {
    restore: Option<ffi::RestoreFn>,
    ip_block: IpBlockVTableRef,
    state_machine: StateMachineVTableRef,
    api: ApiVTableRef,
    event_handler: EventHandlerVTableRef,
}

/// The names of the four components, in the order the SDK documents them.
pub const COMPONENT_NAMES: [&str; 4] = ["ip_block", "state_machine", "api", "event_handler"];

impl Components {
    /// The components of a loaded library, or the names of those missing.
    pub fn from_library(library: &LoadedLibrary) -> Result<Self, Vec<&'static str>> {
        Self::from_module(library.module, library.restore)
    }

    /// The components of the plugin that exports ip_block `B` (through its
    /// definition `P`), linked into this process: the same tables a loaded
    /// library hands over, built by the same SDK runtime, without `dlopen`.
    /// For running one block in-process (the `bitstream-testkit` crate);
    /// the engine always loads libraries.
    pub fn in_process<B, P>() -> Result<Self, Vec<&'static str>>
    where
        P: bitstream_sdk::runtime::PluginDefinition<Block = B>,
        B: bitstream_sdk::runtime::InProcess<P>,
    {
        // What the loader hands a library after loading it.
        install_host_extensions_in_process();
        // No hot-swap in-process: the restore symbol is not needed.
        Self::from_module(B::root_module(), None)
    }

    /// The components of the module a plugin crate exports, linked into
    /// this process: `root_module` is the function `export_plugin!` (or
    /// `export_plugin_module!`) defines at the crate's root,
    /// `__bitstream_root_module`, which builds the module the library
    /// hands the loader. For running one block in-process through exactly
    /// what the plugin exports (`bitstream_testkit::Harness::for_plugin`);
    /// the engine always loads libraries.
    pub fn from_root_module(root_module: RootModuleFn) -> Result<Self, Vec<&'static str>> {
        install_host_extensions_in_process();
        Self::from_module(root_module(), None)
    }

    fn from_module(
        module: ffi::PluginModuleRef,
        restore: Option<ffi::RestoreFn>,
    ) -> Result<Self, Vec<&'static str>> {
        let ip_block = module.ip_block().into_option();
        let state_machine = module.state_machine().into_option();
        let api = module.api().into_option();
        let event_handler = module.event_handler().into_option();
        match (ip_block, state_machine, api, event_handler) {
            (Some(ip_block), Some(state_machine), Some(api), Some(event_handler)) => {
                Ok(Components {
                    restore,
                    ip_block,
                    state_machine,
                    api,
                    event_handler,
                })
            }
            _ => {
                let present = [
                    ip_block.is_some(),
                    state_machine.is_some(),
                    api.is_some(),
                    event_handler.is_some(),
                ];
                Err(COMPONENT_NAMES
                    .iter()
                    .zip(present)
                    .filter(|(_, present)| !present)
                    .map(|(name, _)| *name)
                    .collect())
            }
        }
    }

    /// The state machine as data.
    pub fn describe_machine(&self) -> Result<MachineDesc, PluginError> {
        result((self.state_machine.describe())())
    }

    /// The routes as data, in declaration order (the index is the route id).
    pub fn describe_routes(&self) -> Result<Vec<RouteDesc>, PluginError> {
        match (self.api.describe())() {
            RResult::ROk(routes) => Ok(routes.into_iter().map(Into::into).collect()),
            RResult::RErr(err) => Err(err.into()),
        }
    }

    /// Which event handlers the plugin overrides.
    pub fn overrides(&self) -> HandlerOverrides {
        self.event_handler.overrides().into()
    }

    /// Evaluates the machine's condition `id` on a trigger's arguments.
    pub fn eval_condition(&self, id: u32, args: &ValueMap) -> Result<bool, PluginError> {
        result((self.state_machine.eval_condition())(id, args))
    }

    /// The device-buffer catalog the plugin declares through the SDK
    /// (plugins built with SDK 1.1 or later), if any.
    pub fn declared_catalog(&self) -> Option<String> {
        let catalog = self.ip_block.catalog()?;
        let text = catalog().as_str();
        (!text.trim().is_empty()).then(|| text.to_owned())
    }

    /// The Rust type name of the ip_block.
    pub fn ip_block_type_name(&self) -> &'static str {
        (self.ip_block.type_name())().as_str()
    }

    /// Constructs a new ip_block instance.
    pub fn create_block(&self) -> Result<BlockInstance, PluginError> {
        let ptr = match (self.ip_block.create())() {
            RResult::ROk(ptr) => ptr,
            RResult::RErr(err) => return Err(err.into()),
        };
        Ok(BlockInstance {
            ptr,
            components: *self,
        })
    }
}

/// One ip_block instance, owned by the plugin that made it and destroyed
/// through it when dropped. Every call takes `&mut self`: the host never
/// makes two calls on one instance at once.
pub struct BlockInstance {
    ptr: BlockPtr,
    components: Components,
}

// SAFETY: the SDK requires every ip_block type to be `Send` (`IpBlock:
// Send`), and `BlockInstance` gives no shared access: every call takes
// `&mut self`.
unsafe impl Send for BlockInstance {}

impl BlockInstance {
    /// Assigns config constants over the current values.
    pub fn apply_constants(&mut self, constants: &ValueMap) -> Result<(), PluginError> {
        result((self.components.ip_block.apply_constants())(
            self.ptr, constants,
        ))
    }

    /// The current state of the ip_block, serialized.
    pub fn snapshot(&mut self) -> Result<Value, PluginError> {
        result((self.components.ip_block.snapshot())(self.ptr))
    }

    /// Restores the instance from `snapshot`, taken from a block of version
    /// `from_version` of the plugin (a hot-swap), with the plugin's own
    /// restore (SDK 1.2 and later: its block type's fields through serde,
    /// or the plugin's migration). A plugin built with an earlier SDK has
    /// none: the host then assigns, like config constants, the snapshot's
    /// fields that a new instance also serializes (a field whose type
    /// changed fails; fields the new version lacks are left out). Answers
    /// whether the plugin's own restore ran.
    pub fn restore(&mut self, snapshot: &Value, from_version: &str) -> Result<bool, PluginError> {
        if let Some(restore) = self.components.restore {
            result::<(), ()>(restore(self.ptr, snapshot, from_version.into()))?;
            return Ok(true);
        }
        let Value::Map(old) = snapshot else {
            return Err(PluginError::failed(
                409,
                format!(
                    "the snapshot is a {}, not a map of fields, so it cannot be restored",
                    snapshot.kind_name()
                ),
            ));
        };
        let known = match self.snapshot()? {
            Value::Map(fields) => fields,
            _ => ValueMap::new(),
        };
        let shared: ValueMap = old
            .iter()
            .filter(|(name, _)| known.get(name).is_some())
            .map(|(name, value)| (name.to_owned(), value.clone()))
            .collect();
        self.apply_constants(&shared).map(|()| false)
    }

    /// Calls route `route` (its index in the plugin's route table).
    pub fn call_route(
        &mut self,
        host: &dyn BlockHost,
        route: u32,
        request: &RouteRequest,
    ) -> Result<RouteResponse, PluginError> {
        let request = ffi::RouteRequest::from(request);
        let call = self.components.api.call();
        host_calls::with_subcontroller(host, |ctx| result(call(self.ptr, route, &request, ctx)))
    }

    /// Runs the pulse handler.
    pub fn pulse(&mut self, host: &dyn BlockHost, pulse: &PulseEvent) -> Result<(), PluginError> {
        let pulse = ffi::PulseEvent::from(pulse);
        let handler = self.components.event_handler.pulse();
        host_calls::with_subcontroller(host, |ctx| result(handler(self.ptr, ctx, &pulse)))
    }

    /// Runs the signal-update handler on `events`, answering the list for
    /// downstream.
    pub fn signal_update(
        &mut self,
        host: &dyn BlockHost,
        events: Vec<Value>,
    ) -> Result<Vec<Value>, PluginError> {
        let handler = self.components.event_handler.signal_update();
        host_calls::with_subcontroller(host, |ctx| {
            match handler(self.ptr, ctx, RVec::from(events)) {
                RResult::ROk(list) => Ok(list.into_vec()),
                RResult::RErr(err) => Err(err.into()),
            }
        })
    }

    /// Runs the manual-event handler, answering the events it forwards
    /// downstream.
    pub fn manual_event(
        &mut self,
        host: &dyn BlockHost,
        event: &ManualEvent,
    ) -> Result<Vec<ManualEvent>, PluginError> {
        let event = ffi::ManualEvent::from(event);
        let handler = self.components.event_handler.manual_event();
        host_calls::with_subcontroller(host, |ctx| match handler(self.ptr, ctx, &event) {
            RResult::ROk(events) => Ok(events
                .into_option()
                .map(|events| events.into_iter().map(Into::into).collect())
                .unwrap_or_default()),
            RResult::RErr(err) => Err(err.into()),
        })
    }

    /// Runs a delayed action the block's plugin code asked for, consuming it.
    pub fn run_delayed(
        &mut self,
        host: &dyn BlockHost,
        mut action: DelayedCall,
    ) -> Result<(), PluginError> {
        let Some(action) = action.0.take() else {
            return Ok(());
        };
        host_calls::with_subcontroller(host, |ctx| result((action.run)(action.data, self.ptr, ctx)))
    }
}

impl Drop for BlockInstance {
    fn drop(&mut self) {
        (self.components.ip_block.destroy())(self.ptr);
    }
}

/// A plugin that passed every check: loaded, complete, with a well-formed
/// machine and route table. One serves every block of its type.
pub struct Plugin {
    /// The `emulators/<type>` folder name.
    pub ip_block_type: String,
    /// The library it came from.
    pub library: LoadedLibrary,
    /// Its components.
    pub components: Components,
    /// Its state machine, ready to run.
    pub machine: Arc<Machine>,
    /// Its routes, in declaration order (the index is the route id), each
    /// with its body schema compiled once, when the plugin was checked.
    pub routes: Vec<crate::route::Route>,
    /// Which event handlers it overrides.
    pub overrides: HandlerOverrides,
    /// Its device-buffer catalog, when it ships one.
    pub catalog: Option<PluginCatalog>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("ip_block_type", &self.ip_block_type)
            .field("library", &self.library.path)
            .field("sdk_version", &self.library.sdk_version)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}
