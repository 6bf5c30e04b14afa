//! Safe wrappers over a loaded plugin's four components.
//!
//! Every call into plugin code goes through here. The plugin catches its own
//! panics (the SDK guards every entry point), so each call returns a
//! `Result` and never unwinds into the host.

use std::sync::Arc;

use bitstream_sdk::ffi::{
    ApiVTableRef, BlockPtr, EventHandlerVTableRef, HandlerOverrides, IpBlockVTableRef, MachineDesc,
    PluginError, PluginModuleRef, RouteDesc, StateMachineVTableRef,
};
use bitstream_sdk::{Value, ValueMap};

use crate::fsm::Machine;
use crate::loader::LoadedLibrary;

/// The four component tables of a plugin.
#[derive(Clone, Copy)]
pub struct Components {
    /// ip_block.
    pub ip_block: IpBlockVTableRef,
    /// state_machine.
    pub state_machine: StateMachineVTableRef,
    /// api.
    pub api: ApiVTableRef,
    /// event_handler.
    pub event_handler: EventHandlerVTableRef,
}

/// The names of the four components, in the order the SDK documents them.
pub const COMPONENT_NAMES: [&str; 4] = ["ip_block", "state_machine", "api", "event_handler"];

impl Components {
    /// The components of a root module, or the names of those missing.
    pub fn from_module(module: PluginModuleRef) -> Result<Self, Vec<&'static str>> {
        let ip_block = module.ip_block().into_option();
        let state_machine = module.state_machine().into_option();
        let api = module.api().into_option();
        let event_handler = module.event_handler().into_option();
        match (ip_block, state_machine, api, event_handler) {
            (Some(ip_block), Some(state_machine), Some(api), Some(event_handler)) => {
                Ok(Components {
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
        (self.state_machine.describe())().into_result()
    }

    /// The routes as data.
    pub fn describe_routes(&self) -> Result<Vec<RouteDesc>, PluginError> {
        (self.api.describe())()
            .into_result()
            .map(|routes| routes.into_vec())
    }

    /// Which event handlers the plugin overrides.
    pub fn overrides(&self) -> HandlerOverrides {
        self.event_handler.overrides()
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
        let ptr = (self.ip_block.create())().into_result()?;
        Ok(BlockInstance {
            ptr,
            vtable: self.ip_block,
        })
    }
}

/// One ip_block instance, owned by the plugin that made it and destroyed
/// through it when dropped.
pub struct BlockInstance {
    ptr: BlockPtr,
    vtable: IpBlockVTableRef,
}

// SAFETY: the SDK requires every ip_block type to be `Send` (`IpBlock:
// Send`), and `BlockInstance` gives no shared access: every call takes
// `&mut self` or is made through `&mut self` by the engine's per-block
// executor.
unsafe impl Send for BlockInstance {}

impl BlockInstance {
    /// The raw pointer, for calls into the plugin's other components.
    pub fn ptr(&mut self) -> BlockPtr {
        self.ptr
    }

    /// Assigns config constants over the current values.
    pub fn apply_constants(&mut self, constants: &ValueMap) -> Result<(), PluginError> {
        (self.vtable.apply_constants())(self.ptr, constants).into_result()
    }

    /// The current state of the ip_block, serialized.
    pub fn snapshot(&mut self) -> Result<Value, PluginError> {
        (self.vtable.snapshot())(self.ptr).into_result()
    }
}

impl Drop for BlockInstance {
    fn drop(&mut self) {
        (self.vtable.destroy())(self.ptr);
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
    /// Its routes, in declaration order (the index is the route id).
    pub routes: Vec<RouteDesc>,
    /// Which event handlers it overrides.
    pub overrides: HandlerOverrides,
    /// Its device-buffer catalog, when it ships one.
    pub catalog: Option<crate::buffers::PluginCatalog>,
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
