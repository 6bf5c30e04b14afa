//! Starting an emulator: loading and checking the package, creating every
//! block (instance, constants, device buffer), starting the driver and the
//! watchdog.

use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use bitstream_sdk::Value;
use parking_lot::{Condvar, Mutex};

use super::block::Block;
use super::block_buffer::BlockBuffer;
use super::queue::Queue;
use super::signal::SignalList;
use super::{default_signal, Emulator, EngineOptions, Inner, RunState, SignalChain, NO_BLOCK};
use crate::checks::plugin::{check_plugin, BlockConstants, PluginCheck};
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

impl Emulator {
    /// Loads and checks a package (config and plugins, with the same checks
    /// as `validate-bitstream`), creates every block, and starts the driver
    /// and watchdog threads. Nothing half-starts: any problem is an error.
    /// An empty `options.id` takes the config's id.
    pub fn load(package: &Path, mut options: EngineOptions) -> Result<Emulator, StartupError> {
        let emulators = package.join("emulators");
        if !emulators.is_dir() {
            return Err(StartupError::NotAPackage(package.to_path_buf()));
        }
        let folders = loader::find_plugin_folders(&emulators)?;
        let types: Vec<String> = folders.iter().map(|f| f.ip_block_type.clone()).collect();
        let config = config::load_config(&emulators.join(CONFIG_FILE), Some(&types))?;
        if options.id.is_empty() {
            options.id = config.id.clone();
        }

        let mut plugins: Vec<Arc<Plugin>> = Vec::new();
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
            let (plugin, report) = check_plugin(input, &mut |_| {});
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
            plugins.push(Arc::new(plugin));
        }

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
            ));
        }
        Ok(Self::launch(options, config, plugins, blocks))
    }

    fn launch(
        options: EngineOptions,
        config: BitstreamConfig,
        plugins: Vec<Arc<Plugin>>,
        blocks: Vec<Block>,
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
        let inner = Arc::new(Inner {
            options,
            config,
            chain,
            blocks,
            plugins,
            signal: Mutex::new((signal, list)),
            queue: Mutex::new(Queue {
                run_state,
                commands: VecDeque::new(),
                timers: BinaryHeap::new(),
                timer_seq: 0,
                next_tick,
            }),
            queue_changed: Condvar::new(),
            pulses: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            in_flight: AtomicUsize::new(NO_BLOCK),
            progress: AtomicU64::new(0),
            last_declared_hung: AtomicUsize::new(NO_BLOCK),
            terminating: AtomicBool::new(false),
            terminated: (Mutex::new(false), Condvar::new()),
        });
        Inner::spawn_driver(&inner, 0);
        let watchdog = inner.clone();
        thread::Builder::new()
            .name(format!("{}-watchdog", watchdog.options.id))
            .spawn(move || watchdog.watch())
            .expect("spawning the watchdog thread");
        Emulator { inner }
    }
}
