//! Hot-swap: replacing the plugin of one ip_block type while the emulator
//! runs.
//!
//! A reload ([`Emulator::reload`]) goes through four stages; any failure
//! leaves the old version serving, is logged at WARN and kept as the type's
//! `last_error`:
//! 1. **stage**: the new library's bytes are read once, checked to be a
//!    whole ELF file (a file still being written is refused), hashed
//!    (SHA-256) and written to a private staged copy; everything after
//!    works on those bytes, whatever happens to the file meanwhile;
//! 2. **isolated check**: the staged copy goes through the checks of
//!    `validate-bitstream` in a child process ([`IsolatedCheck`], set by the
//!    binary), so a library that aborts, crashes or hangs while loading
//!    cannot take the emulator down;
//! 3. **load**: the staged copy is checked again and loaded in this process
//!    (a private copy that is never unloaded, see `plugin::loader`);
//! 4. **swap**: one driver step (between two pulses or other driver work)
//!    locks every block of the type, carries each block's FSM state and
//!    ip_block data over (snapshot, then the new version's restore) and
//!    commits them all, or none.
//!
//! What a swap carries, per block: the FSM state by name (a state the new
//! machine lacks refuses the swap, unless the reload asks for `reset`: the
//! block then starts in the new initial state); the ip_block data (the old
//! instance's snapshot, restored by the new version); the device buffer
//! (the same segment: a swap that changes the buffer type is refused);
//! the last signal lists. Hung and faulted blocks are reset instead (a new
//! instance with the config's constants, the initial state): that is how a
//! swap recovers them, and a hung block's stuck thread is left behind and
//! counted. Pending injections are kept (they are data, delivered to the new
//! version); pending delayed actions of the swapped blocks are dropped
//! (they are closures of the old code) and counted. The pulse count is the
//! emulator's and goes on.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitstream_sdk::Value;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::block::{BlockCell, CellGuard};
use super::queue::Command;
use super::{Emulator, Inner};
use crate::checks::plugin::{check_plugin_library, BlockConstants, PluginCheck};
use crate::fsm::StateId;
use crate::plugin::{loader, BlockInstance, Plugin};
use crate::report::PluginReport;

/// What an isolated check is asked to check: the checks of
/// `validate-bitstream` on `library` (a staged copy) as the plugin of
/// `ip_block_type`, with `folder` for its `catalog.json` and the config's
/// blocks of that type for the `constants` check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRequest {
    /// The type.
    pub ip_block_type: String,
    /// The folder a `catalog.json` is looked up in.
    pub folder: PathBuf,
    /// The library to check.
    pub library: PathBuf,
    /// The config's blocks of the type.
    pub blocks: Vec<BlockConstants>,
}

/// Runs the plugin checks somewhere the plugin cannot harm the emulator (the
/// binary: a child process of itself). Answers each problem found, as
/// `[check] message`.
pub trait IsolatedCheck: Send + Sync {
    /// Checks `request`; `Err` lists the problems.
    fn check(&self, request: &CheckRequest) -> Result<(), Vec<String>>;
}

/// Why a reload or rollback did not happen. The old version still serves.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SwapError {
    /// No block of the emulator has this type.
    #[error("no ip_block type \"{ip_block_type}\" in this emulator (types: {types})")]
    UnknownType {
        /// The type asked for.
        ip_block_type: String,
        /// The emulator's types, comma-separated.
        types: String,
    },
    /// The new library cannot be read or staged.
    #[error("{path}: cannot read the new library: {message}")]
    Read {
        /// The library.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file is not a whole ELF file (often: still being written).
    #[error("{path}: not a complete shared object ({message}); if it is still being written, reload when it is complete")]
    Incomplete {
        /// The library.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// The new library failed the plugin checks.
    #[error("{path}: the new library of type \"{ip_block_type}\" failed its checks ({stage}):\n{}", problems.join("\n"))]
    Check {
        /// The type.
        ip_block_type: String,
        /// The library.
        path: PathBuf,
        /// `isolated check` or `load`.
        stage: &'static str,
        /// The problems, as `[check] message`.
        problems: Vec<String>,
    },
    /// The new version's device buffer type differs from the running one.
    #[error("type \"{ip_block_type}\": the new version's device buffer type ({new}) differs from the running one ({old}); a swap keeps each block's buffer, so restart the emulator to change it")]
    BufferTypeChanged {
        /// The type.
        ip_block_type: String,
        /// The running buffer type.
        old: String,
        /// The new one.
        new: String,
    },
    /// A block's FSM state is not a state of the new machine.
    #[error("block \"{block}\" is in state \"{state}\", which the new state machine of type \"{ip_block_type}\" lacks (its states: {states}); reload with reset to start such blocks in the initial state")]
    StateMissing {
        /// The type.
        ip_block_type: String,
        /// The block.
        block: String,
        /// Its state.
        state: String,
        /// The new machine's states, comma-separated.
        states: String,
    },
    /// Carrying a block's data over failed.
    #[error("block \"{block}\": {what} failed: {message}; the old version still serves")]
    Restore {
        /// The block.
        block: String,
        /// `snapshot`, `construct` or `restore`.
        what: &'static str,
        /// The plugin's error.
        message: String,
    },
    /// A block stayed busy (another call held it) past the handler timeout.
    #[error("block \"{block}\" stayed busy for the handler timeout; try the swap again")]
    Busy {
        /// The block.
        block: String,
    },
    /// The driver did not take the swap in time (a long pulse batch).
    #[error("the driver did not reach the swap within {timeout_s} s (a long batch of pulses?); nothing was changed, try again")]
    DriverTimeout {
        /// How long it waited.
        timeout_s: f64,
    },
    /// Nothing to roll back to.
    #[error("type \"{ip_block_type}\" has no previous version to roll back to")]
    NoPrevious {
        /// The type.
        ip_block_type: String,
    },
    /// The emulator has terminated.
    #[error("the emulator has terminated")]
    Terminated,
}

/// How a reload is asked for.
#[derive(Debug, Clone, Default)]
pub struct ReloadOptions {
    /// Load this library instead of the type's own file (this once: a
    /// later reload without it reads the type's own file again).
    pub library: Option<PathBuf>,
    /// Blocks whose state the new machine lacks start in its initial state
    /// instead of refusing the swap.
    pub reset: bool,
}

/// What happened to one block in a swap.
#[derive(Debug, Clone, Serialize)]
pub struct BlockSwap {
    /// The block.
    pub block: String,
    /// Its state before and after.
    pub state: String,
    /// `carried` (state and data), `reset-state` (data carried, state
    /// missing in the new machine), `reset-hung` or `reset-faulted`.
    pub how: &'static str,
}

/// What a swap did.
#[derive(Debug, Clone, Serialize)]
pub struct SwapReport {
    /// The type.
    pub ip_block_type: String,
    /// `<plugin> <version>` before and after.
    pub old_version: String,
    /// See `old_version`.
    pub new_version: String,
    /// SHA-256 of the library before and after.
    pub old_sha256: String,
    /// See `old_sha256`.
    pub new_sha256: String,
    /// Whether this was a rollback.
    pub rollback: bool,
    /// Every block of the type.
    pub blocks: Vec<BlockSwap>,
    /// Delayed actions of the old code, dropped.
    pub delayed_actions_dropped: usize,
    /// Injections pending for the swapped blocks, kept for the new version.
    pub injections_kept: usize,
    /// Threads stuck in hung blocks that this swap left behind.
    pub stuck_threads_left: usize,
    /// Milliseconds in the isolated check, the load and the driver step.
    pub check_ms: f64,
    /// See `check_ms`.
    pub load_ms: f64,
    /// See `check_ms`: how long the blocks of the type were held.
    pub swap_ms: f64,
    /// From the reload's start to the new version serving.
    pub total_ms: f64,
}

/// One loaded version of a type's plugin.
#[derive(Clone)]
struct Version {
    plugin: Arc<Plugin>,
    sha256: String,
    loaded_at: SystemTime,
}

impl Version {
    fn label(&self) -> String {
        format!(
            "{} {}",
            self.plugin.library.plugin_name(),
            self.plugin.library.plugin_version()
        )
    }
}

/// Where a type's library comes from.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The type's `emulators/<type>/emulator` folder (or the explicit
    /// library's folder).
    pub folder: PathBuf,
    /// The library file, when it is not "the one library in `folder`".
    pub library: Option<PathBuf>,
}

struct TypeState {
    source: PluginSource,
    current: Version,
    previous: Option<Version>,
    swaps: u64,
    last_error: Option<String>,
    last_swap: Option<SwapReport>,
}

/// The swap side of an emulator: each type's versions and the isolated
/// check.
pub(super) struct Swaps {
    types: Mutex<BTreeMap<String, TypeState>>,
    /// One reload at a time.
    serial: Mutex<()>,
    checker: RwLock<Option<Arc<dyn IsolatedCheck>>>,
    stuck_threads: AtomicU64,
    /// Swap jobs queued for the driver.
    pub(super) waiting: AtomicUsize,
}

impl Swaps {
    /// The record of each type loaded at startup.
    pub(super) fn new(loaded: Vec<(Arc<Plugin>, PluginSource)>) -> Self {
        let now = SystemTime::now();
        let types = loaded
            .into_iter()
            .map(|(plugin, source)| {
                let sha256 = std::fs::read(&plugin.library.path)
                    .map(|bytes| sha256_hex(&bytes))
                    .unwrap_or_default();
                let state = TypeState {
                    source,
                    current: Version {
                        plugin: plugin.clone(),
                        sha256,
                        loaded_at: now,
                    },
                    previous: None,
                    swaps: 0,
                    last_error: None,
                    last_swap: None,
                };
                (plugin.ip_block_type.clone(), state)
            })
            .collect();
        Swaps {
            types: Mutex::new(types),
            serial: Mutex::new(()),
            checker: RwLock::new(None),
            stuck_threads: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }
}

/// One type's plugin as `GET /plugins` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// The type.
    pub ip_block_type: String,
    /// The library file it was loaded from.
    pub library: PathBuf,
    /// SHA-256 of the bytes loaded.
    pub sha256: String,
    /// The plugin crate's name and version.
    pub plugin: String,
    /// See `plugin`.
    pub version: String,
    /// The SDK that built it.
    pub sdk_version: String,
    /// When it was loaded (seconds since the Unix epoch).
    pub loaded_at: f64,
    /// Swaps of this type so far (rollbacks included).
    pub swaps: u64,
    /// The version a rollback goes back to, if any.
    pub previous: Option<String>,
    /// Why the last reload failed, if it did (cleared by a swap).
    pub last_error: Option<String>,
    /// What the last swap did.
    pub last_swap: Option<SwapReport>,
    /// Its blocks.
    pub blocks: Vec<String>,
}

/// A swap for the driver to run.
pub(super) struct SwapJob {
    ip_block_type: String,
    plugin: Arc<Plugin>,
    from_version: String,
    reset: bool,
    /// `PENDING`, `TAKEN` by the driver or `ABANDONED` by the waiter.
    state: Arc<AtomicU8>,
    reply: mpsc::SyncSender<Result<Committed, SwapError>>,
}

const PENDING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

/// What the driver step did.
struct Committed {
    blocks: Vec<BlockSwap>,
    delayed_dropped: usize,
    injections_kept: usize,
    stuck: usize,
    held: Duration,
}

/// SHA-256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks that `bytes` are a whole ELF file: its section headers (written
/// last by linkers, and at the end of the file) are within it.
pub fn check_complete_elf(bytes: &[u8]) -> Result<(), String> {
    use object::read::elf::{ElfFile64, FileHeader};
    use object::Endianness;
    let file = ElfFile64::<Endianness>::parse(bytes).map_err(|e| e.to_string())?;
    let header = file.elf_header();
    let endian = file.endian();
    let shoff = header.e_shoff(endian);
    let end = shoff
        + u64::from(header.e_shnum(endian)) * u64::from(header.e_shentsize(endian));
    if shoff == 0 || end > bytes.len() as u64 {
        return Err(format!(
            "{} bytes, but its section headers end at byte {end}",
            bytes.len()
        ));
    }
    Ok(())
}

/// The staged copy of a new library: its bytes are fixed from here on.
struct Staged {
    file: tempfile::NamedTempFile,
    sha256: String,
}

fn stage(path: &Path) -> Result<Staged, SwapError> {
    let read_error = |e: std::io::Error| SwapError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    check_complete_elf(&bytes).map_err(|message| SwapError::Incomplete {
        path: path.to_path_buf(),
        message,
    })?;
    let dir = std::env::var_os(loader::COPY_DIR_ENV).map_or_else(std::env::temp_dir, PathBuf::from);
    let mut file = tempfile::Builder::new()
        .prefix("bitstream-stage-")
        .suffix(loader::LIBRARY_SUFFIX)
        .tempfile_in(&dir)
        .map_err(read_error)?;
    file.write_all(&bytes)
        .and_then(|()| file.flush())
        .map_err(read_error)?;
    Ok(Staged {
        file,
        sha256: sha256_hex(&bytes),
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Emulator {
    /// Sets the isolated check run on every new library before it is
    /// loaded. Without one, new libraries are only checked in this process.
    pub fn set_isolated_check(&self, check: Arc<dyn IsolatedCheck>) {
        *self.inner.swaps.checker.write() = Some(check);
    }

    /// Each type's plugin: library, hash, versions, swaps, last error.
    pub fn plugin_status(&self) -> Vec<PluginStatus> {
        let types = self.inner.swaps.types.lock();
        types
            .iter()
            .map(|(name, t)| {
                let library = &t.current.plugin.library;
                PluginStatus {
                    ip_block_type: name.clone(),
                    library: library.path.clone(),
                    sha256: t.current.sha256.clone(),
                    plugin: library.plugin_name().to_owned(),
                    version: library.plugin_version().to_owned(),
                    sdk_version: library.sdk_version.to_string(),
                    loaded_at: t
                        .current
                        .loaded_at
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                    swaps: t.swaps,
                    previous: t
                        .previous
                        .as_ref()
                        .map(|p| format!("{} ({})", p.label(), p.plugin.library.path.display())),
                    last_error: t.last_error.clone(),
                    last_swap: t.last_swap.clone(),
                    blocks: self.blocks_of(name).map(|i| self.blocks()[i].id.clone()).collect(),
                }
            })
            .collect()
    }

    /// Threads stuck in hung blocks that swaps have left behind.
    pub fn stuck_threads(&self) -> u64 {
        self.inner.swaps.stuck_threads.load(Ordering::Relaxed)
    }

    /// The library file a reload of `ip_block_type` reads (its folder's one
    /// library, or the explicit one), and the folder it watches.
    pub fn plugin_source(&self, ip_block_type: &str) -> Option<PluginSource> {
        let types = self.inner.swaps.types.lock();
        types.get(ip_block_type).map(|t| t.source.clone())
    }

    fn blocks_of<'a>(&'a self, ip_block_type: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.config()
            .ip_blocks
            .iter()
            .enumerate()
            .filter(move |(_, b)| b.block_type == ip_block_type)
            .map(|(i, _)| i)
    }

    /// Loads a new version of `ip_block_type`'s plugin and swaps every
    /// block of the type to it (see the module documentation). On failure
    /// the old version goes on serving; the error is logged at WARN and
    /// shown as the type's `last_error`.
    pub fn reload(
        &self,
        ip_block_type: &str,
        options: ReloadOptions,
    ) -> Result<SwapReport, SwapError> {
        let _serial = self.inner.swaps.serial.lock();
        let started = Instant::now();
        let (source, current) = self.type_state(ip_block_type)?;
        let path = match (&options.library, &source.library) {
            (Some(path), _) | (None, Some(path)) => path.clone(),
            (None, None) => loader::find_library(&source.folder).map_err(|e| SwapError::Read {
                path: source.folder.clone(),
                message: e.to_string(),
            })?,
        };
        // A `catalog.json` comes from the type's folder, whatever the file.
        let folder = source.folder.clone();
        let result = self.load_and_swap(ip_block_type, &path, &folder, &current, &options, started);
        let mut types = self.inner.swaps.types.lock();
        let state = types.get_mut(ip_block_type).expect("checked above");
        match result {
            Ok((report, version)) => {
                state.previous = Some(std::mem::replace(&mut state.current, version));
                Ok(record_success(state, report))
            }
            Err(err) => Err(record_failure(state, ip_block_type, &current, &path, err)),
        }
    }

    /// Swaps `ip_block_type` back to the version before its last swap (which
    /// stays loaded); the version it replaces becomes the one to roll back
    /// to.
    pub fn rollback(&self, ip_block_type: &str, reset: bool) -> Result<SwapReport, SwapError> {
        let _serial = self.inner.swaps.serial.lock();
        let started = Instant::now();
        let (previous, current) = {
            let types = self.inner.swaps.types.lock();
            let state = types.get(ip_block_type).ok_or_else(|| self.unknown(ip_block_type))?;
            let previous = state.previous.clone().ok_or_else(|| SwapError::NoPrevious {
                ip_block_type: ip_block_type.to_owned(),
            })?;
            (previous, state.current.clone())
        };
        let result = self
            .swap_to(ip_block_type, &previous.plugin, &current, reset)
            .map(|committed| {
                let mut report = report(ip_block_type, &current, &previous, committed, started);
                report.rollback = true;
                report
            });
        let mut types = self.inner.swaps.types.lock();
        let state = types.get_mut(ip_block_type).expect("checked above");
        match result {
            Ok(report) => {
                let mut version = previous;
                version.loaded_at = SystemTime::now();
                state.previous = Some(std::mem::replace(&mut state.current, version));
                Ok(record_success(state, report))
            }
            Err(err) => {
                let path = previous.plugin.library.path.clone();
                Err(record_failure(state, ip_block_type, &current, &path, err))
            }
        }
    }

    fn unknown(&self, ip_block_type: &str) -> SwapError {
        SwapError::UnknownType {
            ip_block_type: ip_block_type.to_owned(),
            types: self.inner.swaps.types.lock().keys().cloned().collect::<Vec<_>>().join(", "),
        }
    }

    fn type_state(&self, ip_block_type: &str) -> Result<(PluginSource, Version), SwapError> {
        let types = self.inner.swaps.types.lock();
        match types.get(ip_block_type) {
            Some(t) => Ok((t.source.clone(), t.current.clone())),
            None => {
                drop(types);
                Err(self.unknown(ip_block_type))
            }
        }
    }

    fn load_and_swap(
        &self,
        ip_block_type: &str,
        path: &Path,
        folder: &Path,
        current: &Version,
        options: &ReloadOptions,
        started: Instant,
    ) -> Result<(SwapReport, Version), SwapError> {
        let staged = stage(path)?;
        let blocks: Vec<BlockConstants> = self
            .config()
            .blocks_of_type(ip_block_type)
            .map(|b| BlockConstants {
                block_id: b.id.clone(),
                constants: b.constants.clone(),
            })
            .collect();
        let staged_path = staged.file.path().to_path_buf();
        let name_user_file = |problem: String| {
            problem.replace(&*staged_path.to_string_lossy(), &path.to_string_lossy())
        };

        // The isolated check.
        let check_started = Instant::now();
        let checker = self.inner.swaps.checker.read().clone();
        if let Some(checker) = checker {
            let request = CheckRequest {
                ip_block_type: ip_block_type.to_owned(),
                folder: folder.to_path_buf(),
                library: staged_path.clone(),
                blocks: blocks.clone(),
            };
            checker.check(&request).map_err(|problems| SwapError::Check {
                ip_block_type: ip_block_type.to_owned(),
                path: path.to_path_buf(),
                stage: "isolated check",
                problems: problems.into_iter().map(name_user_file).collect(),
            })?;
        }
        let check_time = check_started.elapsed();

        // The load, with the same checks in this process.
        let load_started = Instant::now();
        let input = PluginCheck {
            ip_block_type,
            folder,
            blocks: Some(&blocks),
        };
        let (plugin, checked) = check_plugin_library(input, Some(&staged_path), &mut |_| {});
        let mut plugin = plugin.ok_or_else(|| SwapError::Check {
            ip_block_type: ip_block_type.to_owned(),
            path: path.to_path_buf(),
            stage: "load",
            problems: problems_of(&checked).into_iter().map(name_user_file).collect(),
        })?;
        plugin.library.path = path.to_path_buf();
        let sha256 = staged.sha256.clone();
        drop(staged);
        check_buffer_type(ip_block_type, &current.plugin, &plugin)?;
        let load_time = load_started.elapsed();

        let version = Version {
            plugin: Arc::new(plugin),
            sha256,
            loaded_at: SystemTime::now(),
        };
        let committed = self.swap_to(ip_block_type, &version.plugin, current, options.reset)?;
        let mut report = report(ip_block_type, current, &version, committed, started);
        report.check_ms = ms(check_time);
        report.load_ms = ms(load_time);
        Ok((report, version))
    }

    /// Hands the swap to the driver and waits for it.
    fn swap_to(
        &self,
        ip_block_type: &str,
        plugin: &Arc<Plugin>,
        current: &Version,
        reset: bool,
    ) -> Result<Committed, SwapError> {
        if let Some(p) = self.plugins().iter().find(|p| p.ip_block_type == ip_block_type) {
            check_buffer_type(ip_block_type, p, plugin)?;
        }
        let state = Arc::new(AtomicU8::new(PENDING));
        let (reply, answer) = mpsc::sync_channel(1);
        let job = SwapJob {
            ip_block_type: ip_block_type.to_owned(),
            plugin: plugin.clone(),
            from_version: current.plugin.library.plugin_version().to_owned(),
            reset,
            state: state.clone(),
            reply,
        };
        self.inner.push_swap(job)?;
        let blocks = self.blocks_of(ip_block_type).count() as u32;
        let limit = self.options().handler_timeout * (blocks + 2);
        match answer.recv_timeout(limit) {
            Ok(result) => result,
            Err(_) => {
                if state
                    .compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Err(SwapError::DriverTimeout {
                        timeout_s: limit.as_secs_f64(),
                    });
                }
                // The driver has it: its answer comes.
                answer.recv().unwrap_or(Err(SwapError::Terminated))
            }
        }
    }
}

fn problems_of(report: &PluginReport) -> Vec<String> {
    report
        .checks
        .iter()
        .filter(|c| c.failed())
        .flat_map(|c| {
            c.problems
                .iter()
                .map(move |p| format!("[{}] {}", c.name, p.message))
        })
        .collect()
}

fn check_buffer_type(ip_block_type: &str, old: &Plugin, new: &Plugin) -> Result<(), SwapError> {
    let describe = |p: &Plugin| {
        p.catalog.as_ref().map_or_else(
            || "none".to_owned(),
            |c| format!("\"{}\" from {}", c.buffer_type.name(), c.source()),
        )
    };
    let same = match (&old.catalog, &new.catalog) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.buffer_type.name() == b.buffer_type.name() && a.buffer_type.hash() == b.buffer_type.hash()
        }
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(SwapError::BufferTypeChanged {
            ip_block_type: ip_block_type.to_owned(),
            old: describe(old),
            new: describe(new),
        })
    }
}

fn report(
    ip_block_type: &str,
    old: &Version,
    new: &Version,
    committed: Committed,
    started: Instant,
) -> SwapReport {
    SwapReport {
        ip_block_type: ip_block_type.to_owned(),
        old_version: old.label(),
        new_version: new.label(),
        old_sha256: old.sha256.clone(),
        new_sha256: new.sha256.clone(),
        rollback: false,
        blocks: committed.blocks,
        delayed_actions_dropped: committed.delayed_dropped,
        injections_kept: committed.injections_kept,
        stuck_threads_left: committed.stuck,
        check_ms: 0.0,
        load_ms: 0.0,
        swap_ms: ms(committed.held),
        total_ms: ms(started.elapsed()),
    }
}

fn record_success(state: &mut TypeState, report: SwapReport) -> SwapReport {
    state.swaps += 1;
    state.last_error = None;
    state.last_swap = Some(report.clone());
    tracing::info!(
        ip_block_type = %report.ip_block_type,
        blocks = report.blocks.len(),
        "{} {} -> {} in {:.1} ms ({} blocks swapped; check {:.1} ms, load {:.1} ms, blocks held {:.2} ms; {} delayed actions dropped, {} injections kept, {} stuck threads left behind)",
        if report.rollback { "rolled back" } else { "swapped" },
        report.old_version,
        report.new_version,
        report.total_ms,
        report.blocks.len(),
        report.check_ms,
        report.load_ms,
        report.swap_ms,
        report.delayed_actions_dropped,
        report.injections_kept,
        report.stuck_threads_left,
    );
    report
}

fn record_failure(
    state: &mut TypeState,
    ip_block_type: &str,
    current: &Version,
    path: &Path,
    err: SwapError,
) -> SwapError {
    tracing::warn!(
        ip_block_type,
        "swap to {} failed; {} still serves: {err}",
        path.display(),
        current.label()
    );
    state.last_error = Some(err.to_string());
    err
}

impl Inner {
    fn push_swap(&self, job: SwapJob) -> Result<(), SwapError> {
        let mut queue = self.queue.lock();
        if queue.run_state == super::RunState::Terminated {
            return Err(SwapError::Terminated);
        }
        // First in line: a swap waits for no queued work.
        queue.commands.push_front(Command::Swap(Box::new(job)));
        self.swaps.waiting.fetch_add(1, Ordering::AcqRel);
        self.queue_changed.notify_all();
        Ok(())
    }

    /// Runs the swaps queued at the front (between two pulses of a batch).
    pub(super) fn run_waiting_swaps(&self) {
        loop {
            let job = {
                let mut queue = self.queue.lock();
                match queue.commands.front() {
                    Some(Command::Swap(_)) => match queue.commands.pop_front() {
                        Some(Command::Swap(job)) => job,
                        _ => unreachable!("just peeked"),
                    },
                    _ => return,
                }
            };
            self.run_swap(job);
        }
    }

    /// The driver's step: swap every block of the type, or none.
    pub(super) fn run_swap(&self, job: Box<SwapJob>) {
        self.swaps.waiting.fetch_sub(1, Ordering::AcqRel);
        if job
            .state
            .compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // the reload gave up waiting; it reported that
        }
        let result = self.swap_blocks(&job);
        let _ = job.reply.send(result);
    }

    fn swap_blocks(&self, job: &SwapJob) -> Result<Committed, SwapError> {
        let started = Instant::now();
        let new = &job.plugin;
        let indices: Vec<usize> = self
            .config
            .ip_blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.block_type == job.ip_block_type)
            .map(|(i, _)| i)
            .collect();

        // Hold every block of the type (a hung one cannot be held: it is
        // replaced whole).
        let mut held: Vec<Option<CellGuard>> = Vec::with_capacity(indices.len());
        for &i in &indices {
            let block = &self.blocks[i];
            if block.hung_reason().is_some() {
                held.push(None);
                continue;
            }
            let guard = block
                .cell()
                .try_lock_arc_for(self.options.handler_timeout)
                .ok_or_else(|| SwapError::Busy {
                    block: block.id.clone(),
                })?;
            held.push(Some(guard));
        }

        // Prepare each block's new instance and state; nothing changes yet.
        let mut prepared: Vec<(BlockInstance, StateId, BlockSwap)> = Vec::new();
        for (slot, &i) in held.iter_mut().zip(&indices) {
            prepared.push(self.prepare_block(job, i, slot.as_deref_mut())?);
        }

        // Commit all of them.
        let mut delayed_dropped = 0;
        let mut injections_kept = 0;
        {
            let queue = self.queue.lock();
            for timer in queue.timers.iter() {
                match &timer.command {
                    Command::Delayed { block, .. } if indices.contains(block) => {
                        delayed_dropped += 1
                    }
                    Command::Manual { block, .. } if indices.contains(block) => {
                        injections_kept += 1
                    }
                    _ => {}
                }
            }
        }
        let mut stuck = 0;
        let mut blocks = Vec::with_capacity(indices.len());
        let mut old_instances = Vec::with_capacity(indices.len());
        for ((slot, &i), (instance, state, swap)) in held.iter_mut().zip(&indices).zip(prepared) {
            let block = &self.blocks[i];
            let epoch = block.epoch() + 1;
            match slot {
                Some(cell) => {
                    old_instances.push(std::mem::replace(&mut cell.instance, instance));
                    cell.plugin = new.clone();
                    cell.state = state;
                    cell.epoch = epoch;
                }
                None => {
                    let mut cell = BlockCell::new(new.clone(), epoch, instance);
                    cell.state = state;
                    block.replace_cell(cell);
                    stuck += 1;
                }
            }
            block.clear_fault();
            block.set_plugin(new.clone(), epoch);
            blocks.push(swap);
        }
        {
            let mut plugins = self.plugins.write();
            if let Some(p) = plugins.iter_mut().find(|p| p.ip_block_type == job.ip_block_type) {
                *p = new.clone();
            }
        }
        let held_for = started.elapsed();
        drop(held);
        drop(old_instances);
        self.swaps
            .stuck_threads
            .fetch_add(stuck as u64, Ordering::Relaxed);
        Ok(Committed {
            blocks,
            delayed_dropped,
            injections_kept,
            stuck,
            held: held_for,
        })
    }

    /// The new instance and state of block `i` (`cell`: its held cell, or
    /// `None` when it is hung).
    fn prepare_block(
        &self,
        job: &SwapJob,
        i: usize,
        cell: Option<&mut BlockCell>,
    ) -> Result<(BlockInstance, StateId, BlockSwap), SwapError> {
        let block = &self.blocks[i];
        let new = &job.plugin;
        let failed = |what: &'static str| {
            move |e: crate::model::PluginError| SwapError::Restore {
                block: block.id.clone(),
                what,
                message: e.to_string(),
            }
        };
        let initial = new.machine.initial();
        let initial_name = new.machine.state_name(initial).to_owned();
        let fresh = || {
            let mut instance = new.components.create_block().map_err(failed("construct"))?;
            instance
                .apply_constants(&self.config.ip_blocks[i].constants)
                .map_err(failed("constants"))?;
            Ok::<_, SwapError>(instance)
        };
        let reset = |how: &'static str, from: &str| {
            Ok((
                fresh()?,
                initial,
                BlockSwap {
                    block: block.id.clone(),
                    state: format!("{from} -> {initial_name}"),
                    how,
                },
            ))
        };
        let Some(cell) = cell else {
            return reset("reset-hung", "(hung)");
        };
        let old_state = cell.plugin.machine.state_name(cell.state).to_owned();
        if block.fault_reason().is_some() {
            return reset("reset-faulted", &old_state);
        }
        let (state, how) = match new.machine.state_id(&old_state) {
            Some(state) => (state, "carried"),
            None if job.reset => (initial, "reset-state"),
            None => {
                return Err(SwapError::StateMissing {
                    ip_block_type: job.ip_block_type.clone(),
                    block: block.id.clone(),
                    state: old_state,
                    states: new
                        .machine
                        .states()
                        .map(|(_, n)| n)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        self.enter(i);
        let snapshot: Result<Value, _> = cell.instance.snapshot();
        self.leave(i);
        let snapshot = snapshot.map_err(failed("snapshot"))?;
        let mut instance = new.components.create_block().map_err(failed("construct"))?;
        self.enter(i);
        let restored = instance.restore(&snapshot, &job.from_version);
        self.leave(i);
        restored.map_err(failed("restore"))?;
        Ok((
            instance,
            state,
            BlockSwap {
                block: block.id.clone(),
                state: format!("{old_state} -> {}", new.machine.state_name(state)),
                how,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_library_is_not_complete() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        check_complete_elf(&exe).expect("a whole ELF file");
        for cut in [exe.len() - 1, exe.len() / 2, 64, 10] {
            let err = check_complete_elf(&exe[..cut]).unwrap_err();
            assert!(!err.is_empty(), "{cut}");
        }
    }

    #[test]
    fn sha256_is_the_usual_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
