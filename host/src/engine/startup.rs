//! Starting an emulator: loading and checking the package, creating every
//! block (instance, constants, device buffer), and registering it on its
//! runtime (shared, or its own).

use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bitstream_sdk::Value;
use parking_lot::{Condvar, Mutex, RwLock};

use super::block::Block;
use super::block_buffer::BlockBuffer;
use super::events::EventBus;
use super::queue::{Queue, Sched};
use super::signal::SignalList;
use super::swap::{PluginSource, Swaps};
use super::{
    default_signal, Emulator, EngineOptions, Inner, RunState, Runtime, SignalChain, NO_BLOCK,
};
use crate::checks::plugin::{
    check_plugin_library, check_plugin_shared, BlockConstants, PluginCheck,
};
use crate::config::{self, BitstreamConfig, CONFIG_FILE};
use crate::plugin::{loader, Plugin};

/// Why an emulator could not start. Each names the file, type or block.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The package has no `emulators/` folder.
    #[error("{0}: no emulators/ folder; give the bitstream package folder")]
    NotAPackage(std::path::PathBuf),
    /// Plugin folders could not be listed.
    #[error(transparent)]
    Load(#[from] loader::LoadError),
    /// The config failed its checks.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A plugin failed its checks.
    #[error("plugin \"{ip_block_type}\" is not valid:\n{}", problems.join("\n"))]
    Plugin {
        /// The type.
        ip_block_type: String,
        /// Each failed check's problems, as `[check] message`.
        problems: Vec<String>,
    },
    /// A block could not be created.
    #[error("block \"{block}\": {message}")]
    Block {
        /// The block id.
        block: String,
        /// What failed.
        message: String,
    },
}

/// How a package's plugin libraries are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Libraries {
    /// A private copy of each library for this package (what `run` does).
    Private,
    /// Through the process-wide cache: a library this process has loaded
    /// before (same file, same content) is reused
    /// ([`loader::shared::load_library_shared`]).
    Shared,
}

/// A bitstream package loaded and checked: its config and its checked
/// plugins, what every emulator started from it shares. Cheap to clone.
#[derive(Clone)]
pub struct Package {
    path: std::path::PathBuf,
    config: Arc<BitstreamConfig>,
    plugins: Vec<(Arc<Plugin>, PluginSource)>,
    plugin_files: Vec<(String, std::path::PathBuf)>,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("path", &self.path)
            .field("plugins", &self.plugins.len())
            .finish_non_exhaustive()
    }
}

impl Package {
    /// Loads and checks a package: its config and every plugin it uses,
    /// with the same checks as `validate-bitstream`. `plugin_files` serves
    /// types from given library files (`--plugin <type>=<path>`).
    pub fn load(
        package: &Path,
        plugin_files: &[(String, std::path::PathBuf)],
        libraries: Libraries,
    ) -> Result<Package, StartupError> {
        let emulators = package.join("emulators");
        if !emulators.is_dir() {
            return Err(StartupError::NotAPackage(package.to_path_buf()));
        }
        let mut folders = loader::find_plugin_folders(&emulators)?;
        // A type served from a given file keeps its package folder (for a
        // `catalog.json`) when it has one, else the file's folder.
        for (ip_block_type, file) in plugin_files {
            if folders.iter().any(|f| &f.ip_block_type == ip_block_type) {
                continue;
            }
            let folder = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            folders.push(loader::PluginFolder {
                ip_block_type: ip_block_type.clone(),
                folder,
            });
        }
        folders.sort_by(|a, b| a.ip_block_type.cmp(&b.ip_block_type));
        let types: Vec<String> = folders.iter().map(|f| f.ip_block_type.clone()).collect();
        let config = config::load_config(&emulators.join(CONFIG_FILE), Some(&types))?;

        let mut plugins = Vec::new();
        for ip_block_type in config.block_types() {
            let folder = folders
                .iter()
                .find(|f| f.ip_block_type == ip_block_type)
                .expect("the config's emulators check found a folder for every type");
            let blocks: Vec<BlockConstants> = config
                .blocks_of_type(ip_block_type)
                .map(|b| BlockConstants {
                    block_id: b.id.clone(),
                    constants: b.constants.clone(),
                })
                .collect();
            let input = PluginCheck {
                ip_block_type,
                folder: &folder.folder,
                blocks: Some(&blocks),
            };
            let file = plugin_files
                .iter()
                .find(|(t, _)| t == ip_block_type)
                .map(|(_, file)| file.clone());
            let (plugin, report) = match libraries {
                Libraries::Private => check_plugin_library(input, file.as_deref(), &mut |_| {}),
                Libraries::Shared => check_plugin_shared(input, file.as_deref(), &mut |_| {}),
            };
            let plugin = plugin.ok_or_else(|| StartupError::Plugin {
                ip_block_type: ip_block_type.to_owned(),
                problems: report
                    .checks
                    .iter()
                    .filter(|c| c.failed())
                    .flat_map(|c| {
                        c.problems.iter().map(move |p| {
                            // Continuation lines line up under the first.
                            let message = p.message.replace('\n', "\n    ");
                            format!("  [{}] {message}", c.name)
                        })
                    })
                    .collect(),
            })?;
            for check in report
                .checks
                .iter()
                .filter(|c| c.status == crate::report::CheckStatus::Warning)
            {
                for problem in &check.problems {
                    tracing::warn!(ip_block_type, "[{}] {}", check.name, problem.message);
                }
            }
            plugins.push((
                Arc::new(plugin),
                PluginSource {
                    folder: folder.folder.clone(),
                    library: file,
                },
            ));
        }
        Ok(Package {
            path: package.to_path_buf(),
            config: Arc::new(config),
            plugins,
            plugin_files: plugin_files.to_vec(),
        })
    }

    /// The package folder it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its checked config.
    pub fn config(&self) -> &BitstreamConfig {
        &self.config
    }

    /// Its checked plugins, one per type the config uses.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.iter().map(|(plugin, _)| plugin)
    }
}

impl Emulator {
    /// Loads and checks a package (config and plugins, with the same checks
    /// as `validate-bitstream`), creates every block, and registers the
    /// emulator on `options.runtime` (or starts a runtime of its own).
    /// Nothing half-starts: any problem is an error. An empty `options.id`
    /// takes the config's id.
    pub fn load(package: &Path, options: EngineOptions) -> Result<Emulator, StartupError> {
        let package = Package::load(package, &options.plugin_files, Libraries::Private)?;
        Self::from_package(&package, options)
    }

    /// Starts an emulator of a loaded package: creates every block
    /// (instance, constants, device buffer) and registers the emulator on
    /// `options.runtime` (or starts a runtime of its own). The package's plugins are shared with every other
    /// emulator started from it (a swap in one emulator replaces that
    /// emulator's plugin only). `options.plugin_files` is replaced by the
    /// package's. An empty `options.id` takes the config's id. Nothing
    /// half-starts: on an error, the buffers made so far are released.
    pub fn from_package(
        package: &Package,
        mut options: EngineOptions,
    ) -> Result<Emulator, StartupError> {
        let config = BitstreamConfig::clone(&package.config);
        if options.id.is_empty() {
            options.id = config.id.clone();
        }
        options.plugin_files = package.plugin_files.clone();
        let plugins: Vec<Arc<Plugin>> = package.plugins().cloned().collect();
        let sources = package.plugins.clone();

        let events = Arc::new(EventBus::new());
        let mut blocks = Vec::with_capacity(config.ip_blocks.len());
        for (index, block) in config.ip_blocks.iter().enumerate() {
            let plugin = plugins
                .iter()
                .find(|p| p.ip_block_type == block.block_type)
                .expect("every type was loaded")
                .clone();
            let block_error = |message: String| StartupError::Block {
                block: block.id.clone(),
                message,
            };
            let mut instance = plugin
                .components
                .create_block()
                .map_err(|e| block_error(format!("constructing its ip_block failed: {e}")))?;
            instance.apply_constants(&block.constants).map_err(|e| {
                block_error(format!("its constants were not accepted: {}", e.message))
            })?;
            let buffer = match &plugin.catalog {
                None => None,
                Some(catalog) => Some(
                    BlockBuffer::create(
                        &catalog.buffer_type,
                        options.buffers,
                        &options.id,
                        &block.id,
                    )
                    .map_err(|e| {
                        block_error(format!(
                            "its device buffer (type \"{}\" from {}) cannot be created: {e}",
                            catalog.buffer_type.name(),
                            catalog.source()
                        ))
                    })?,
                ),
            };
            blocks.push(Block::new(
                block.id.clone(),
                index,
                plugin,
                instance,
                buffer,
                events.clone(),
            ));
        }
        Ok(Self::launch(
            options,
            config,
            plugins,
            blocks,
            Swaps::new(sources),
            events,
        ))
    }

    fn launch(
        options: EngineOptions,
        config: BitstreamConfig,
        plugins: Vec<Arc<Plugin>>,
        blocks: Vec<Block>,
        swaps: Swaps,
        events: Arc<EventBus>,
    ) -> Self {
        let chain = SignalChain::new(&config);
        let signal = config.signal.clone().unwrap_or_else(default_signal);
        let list = SignalList::from_values(vec![Value::Map(signal.clone())]);
        let run_state = if options.start_running {
            RunState::Running
        } else {
            RunState::Stopped
        };
        // The first pulse comes at once, as a PPS tick would.
        let next_tick = options
            .pulse_period
            .filter(|_| options.start_running)
            .map(|_| Instant::now());
        let private_runtime = options.runtime.is_none();
        let runtime = options
            .runtime
            .clone()
            .unwrap_or_else(|| Runtime::named(&options.id, 1));
        let pulses_at_start = (Instant::now(), 0);
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| Inner {
            options,
            config,
            chain,
            blocks,
            plugins: RwLock::new(plugins),
            swaps,
            signal: Mutex::new((signal, list)),
            queue: Mutex::new(Queue {
                run_state,
                commands: VecDeque::new(),
                timers: BinaryHeap::new(),
                timer_seq: 0,
                next_tick,
                injections: 0,
                injection_bytes: 0,
                sched: Sched::Idle,
                wake_at: None,
            }),
            pulses: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            in_flight: AtomicUsize::new(NO_BLOCK),
            progress: AtomicU64::new(0),
            last_declared_hung: AtomicUsize::new(NO_BLOCK),
            terminating: AtomicBool::new(false),
            batch_epoch: AtomicU64::new(0),
            batches: AtomicUsize::new(0),
            terminated: (Mutex::new(false), Condvar::new()),
            terminate_hooks: Mutex::new(Vec::new()),
            is_terminated: AtomicBool::new(false),
            events,
            key: runtime.shared().new_key(),
            runtime,
            private_runtime,
            me: me.clone(),
            watched: Mutex::new(None),
            summarized: Mutex::new(pulses_at_start),
        });
        inner.runtime.shared().register(Arc::downgrade(&inner));
        // Work ready at once (the first real-time tick) or ahead.
        inner.kick(&mut inner.queue.lock());
        Emulator { inner }
    }
}
