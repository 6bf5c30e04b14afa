//! Hot-swap: replacing the plugin of one ip_block type while the emulator
//! runs.
//!
//! A reload ([`Emulator::reload`]) goes through four stages; any failure
//! leaves the old version serving, is logged at WARN and kept as the type's
//! `last_error`:
//! 1. **stage**: the new library's bytes are read once, checked to be a
//!    whole ELF file (a file still being written is refused), hashed
//!    (SHA-256) and written to a private staged copy (in memory: see
//!    `stage`); everything after works on those bytes, whatever happens to
//!    the file meanwhile;
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
//! instance's snapshot, restored by the new version, on a thread of its
//! own: a restore that does not return within the handler timeout refuses
//! the swap and its thread is left behind and counted); the device buffer
//! (the same segment when the buffer type is unchanged; otherwise a new
//! segment, made before the commit, with the values of same-named
//! parameters carried over when nothing is lost and a report of what was
//! not, see `carry`; the old segment is released only when the swap
//! commits); the last signal lists. Hung and faulted blocks are reset instead (a new
//! instance with the config's constants, the initial state): that is how a
//! swap recovers them, and a hung block's stuck thread is left behind and
//! counted. Pending injections are kept (they are data, delivered to the new
//! version); pending delayed actions of the swapped blocks are dropped
//! (they are closures of the old code) and counted. The pulse count is the
//! emulator's and goes on.

mod carry;
mod stage;
mod step;
mod types;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use super::Emulator;
use crate::checks::plugin::{check_plugin_library, BlockConstants, PluginCheck};
use crate::plugin::{loader, Plugin};
use crate::report::PluginReport;

pub use carry::{BufferCarry, ParamChange};
use stage::stage;
pub use stage::{check_complete_elf, sha256_hex};
pub use types::{
    BlockSwap, CheckRequest, IsolatedCheck, PluginSource, PluginStatus, ReloadOptions, SwapError,
    SwapReport,
};

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

struct TypeState {
    source: PluginSource,
    current: Version,
    previous: Option<Version>,
    swaps: u64,
    last_error: Option<String>,
    last_swap: Option<SwapReport>,
}

/// Libraries swaps may load in one emulator by default (each stays
/// resident: about 0.7 MiB for a release VCC plugin).
const DEFAULT_MAX_SWAP_LIBRARIES: usize = 256;

/// A library loaded in this process: its type, the file and its SHA-256.
type LibraryKey = (String, std::path::PathBuf, String);

/// The swap side of an emulator: each type's versions and the isolated
/// check.
pub(in crate::engine) struct Swaps {
    types: Mutex<BTreeMap<String, TypeState>>,
    /// Every library loaded for a swap (libraries are never unloaded): a
    /// reload of bytes loaded before from the same file reuses it, so
    /// swapping back and forth between versions loads each once.
    loaded: Mutex<BTreeMap<LibraryKey, Arc<Plugin>>>,
    /// Libraries swaps have loaded (startup's excluded), and how many they
    /// may.
    swap_loads: AtomicUsize,
    max_swap_loads: AtomicUsize,
    /// One reload at a time.
    serial: Mutex<()>,
    checker: RwLock<Option<Arc<dyn IsolatedCheck>>>,
    stuck_threads: AtomicU64,
    /// Swap jobs queued for the driver.
    pub(in crate::engine) waiting: AtomicUsize,
}

impl Swaps {
    /// The record of each type loaded at startup.
    pub(in crate::engine) fn new(loaded: Vec<(Arc<Plugin>, PluginSource)>) -> Self {
        stage::remove_stale_copies();
        let now = SystemTime::now();
        let mut libraries = BTreeMap::new();
        let types = loaded
            .into_iter()
            .map(|(plugin, source)| {
                let sha256 = std::fs::read(&plugin.library.path)
                    .map(|bytes| sha256_hex(&bytes))
                    .unwrap_or_default();
                libraries.insert(
                    (
                        plugin.ip_block_type.clone(),
                        plugin.library.path.clone(),
                        sha256.clone(),
                    ),
                    plugin.clone(),
                );
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
            loaded: Mutex::new(libraries),
            swap_loads: AtomicUsize::new(0),
            max_swap_loads: AtomicUsize::new(DEFAULT_MAX_SWAP_LIBRARIES),
            serial: Mutex::new(()),
            checker: RwLock::new(None),
            stuck_threads: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }
}

/// A swap for the driver to run.
pub(in crate::engine) struct SwapJob {
    ip_block_type: String,
    plugin: Arc<Plugin>,
    from_version: String,
    reset: bool,
    /// `PENDING`, `TAKEN` by the driver, `COMMITTING` (the driver is past the
    /// point of no return) or `ABANDONED` by the waiter.
    state: Arc<AtomicU8>,
    reply: mpsc::SyncSender<Result<Committed, SwapError>>,
}

const PENDING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;
const COMMITTING: u8 = 3;

/// What the driver step did.
struct Committed {
    blocks: Vec<BlockSwap>,
    delayed_dropped: usize,
    injections_kept: usize,
    stuck: usize,
    held: Duration,
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

    /// Sets how many libraries swaps may load (they are never unloaded);
    /// beyond, a reload of a library not loaded before is refused
    /// ([`SwapError::TooManyLibraries`]).
    pub fn set_swap_library_limit(&self, limit: usize) {
        self.inner
            .swaps
            .max_swap_loads
            .store(limit, Ordering::Relaxed);
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
                    loaded_libraries: self
                        .inner
                        .swaps
                        .loaded
                        .lock()
                        .keys()
                        .filter(|(ty, _, _)| ty == name)
                        .count(),
                    blocks: self
                        .blocks_of(name)
                        .map(|i| self.blocks()[i].id.clone())
                        .collect(),
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
                let report = record_success(state, report);
                let library = state.current.plugin.library.path.clone();
                drop(types);
                self.plugin_swapped(ip_block_type, &library);
                Ok(report)
            }
            Err(err @ SwapError::Unchanged { .. }) => {
                tracing::debug!(ip_block_type, "not swapped: {err}");
                Err(err)
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
        let (_, current) = self.type_state(ip_block_type)?;
        let previous = self.inner.swaps.types.lock()[ip_block_type]
            .previous
            .clone()
            .ok_or_else(|| SwapError::NoPrevious {
                ip_block_type: ip_block_type.to_owned(),
            })?;
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
                let report = record_success(state, report);
                let library = state.current.plugin.library.path.clone();
                drop(types);
                self.plugin_swapped(ip_block_type, &library);
                Ok(report)
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
            types: self
                .inner
                .swaps
                .types
                .lock()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
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
        if options.skip_unchanged && staged.sha256 == current.sha256 {
            return Err(SwapError::Unchanged {
                path: path.to_path_buf(),
            });
        }
        let blocks: Vec<BlockConstants> = self
            .config()
            .blocks_of_type(ip_block_type)
            .map(|b| BlockConstants {
                block_id: b.id.clone(),
                constants: b.constants.clone(),
            })
            .collect();
        if let Some(plugin) = self.loaded_before(ip_block_type, path, &staged.sha256, folder) {
            let version = Version {
                plugin,
                sha256: staged.sha256.clone(),
                loaded_at: SystemTime::now(),
            };
            drop(staged);
            let committed = self.swap_to(ip_block_type, &version.plugin, current, options.reset)?;
            let mut report = report(ip_block_type, current, &version, committed, started);
            report.reused_library = true;
            return Ok((report, version));
        }
        let staged_path = staged.path();
        let name_user_file = |problem: String| {
            problem.replace(&*staged_path.to_string_lossy(), &path.to_string_lossy())
        };

        let limit = self.inner.swaps.max_swap_loads.load(Ordering::Relaxed);
        if self.inner.swaps.swap_loads.load(Ordering::Relaxed) >= limit {
            return Err(SwapError::TooManyLibraries {
                path: path.to_path_buf(),
                limit,
            });
        }

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
            checker
                .check(&request)
                .map_err(|problems| SwapError::Check {
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
            problems: problems_of(&checked)
                .into_iter()
                .map(name_user_file)
                .collect(),
        })?;
        plugin.library.path = path.to_path_buf();
        let sha256 = staged.sha256.clone();
        drop(staged);
        let load_time = load_started.elapsed();

        let version = Version {
            plugin: Arc::new(plugin),
            sha256,
            loaded_at: SystemTime::now(),
        };
        self.inner.swaps.swap_loads.fetch_add(1, Ordering::Relaxed);
        self.inner.swaps.loaded.lock().insert(
            (
                ip_block_type.to_owned(),
                path.to_path_buf(),
                version.sha256.clone(),
            ),
            version.plugin.clone(),
        );
        let committed = self.swap_to(ip_block_type, &version.plugin, current, options.reset)?;
        let mut report = report(ip_block_type, current, &version, committed, started);
        report.check_ms = ms(check_time);
        report.load_ms = ms(load_time);
        Ok((report, version))
    }

    /// The library loaded before from `path` with these bytes, if its
    /// catalog is still the one it would get now (`catalog.json` in
    /// `folder` may have changed since).
    fn loaded_before(
        &self,
        ip_block_type: &str,
        path: &Path,
        sha256: &str,
        folder: &Path,
    ) -> Option<Arc<Plugin>> {
        let key = (
            ip_block_type.to_owned(),
            path.to_path_buf(),
            sha256.to_owned(),
        );
        let plugin = self.inner.swaps.loaded.lock().get(&key).cloned()?;
        let now = crate::catalog::plugin_catalog(
            plugin.components.declared_catalog(),
            folder,
            ip_block_type,
        )
        .ok()?;
        let identity = |c: Option<&crate::catalog::PluginCatalog>| {
            c.map(|c| (c.buffer_type.name().to_owned(), c.buffer_type.hash()))
        };
        (identity(now.as_ref()) == identity(plugin.catalog.as_ref())).then_some(plugin)
    }

    /// Hands the swap to the driver and waits for it.
    fn swap_to(
        &self,
        ip_block_type: &str,
        plugin: &Arc<Plugin>,
        current: &Version,
        reset: bool,
    ) -> Result<Committed, SwapError> {
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
        // Each block: its lock and its restore, each within the handler
        // timeout; and the driver's work in flight.
        let blocks = self.blocks_of(ip_block_type).count() as u32;
        let limit = self.options().handler_timeout * (2 * blocks + 2);
        let abandon = |from: u8| {
            state
                .compare_exchange(from, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        };
        match answer.recv_timeout(limit) {
            Ok(result) => result,
            // The queue was dropped: the emulator terminated.
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(SwapError::Terminated),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let timeout_s = limit.as_secs_f64();
                if abandon(PENDING) {
                    return Err(SwapError::DriverTimeout { timeout_s });
                }
                if abandon(TAKEN) {
                    // The driver will not commit (it checks before).
                    return Err(SwapError::StepTimeout { timeout_s });
                }
                // The driver is committing (no plugin code): its answer comes.
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
        reused_library: false,
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
    for block in &report.blocks {
        if let Some(carry) = &block.buffer {
            tracing::info!(
                ip_block_type = %report.ip_block_type,
                block = %block.block,
                "new device buffer: {}",
                carry.summary()
            );
        }
    }
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
