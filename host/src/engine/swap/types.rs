//! The public types of hot-swap: requests, reports, errors, status.

use std::path::PathBuf;

use serde::Serialize;

use super::carry::BufferCarry;
use crate::checks::plugin::BlockConstants;

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
    /// The new device buffer of a block (its type changed) cannot be made.
    #[error("block \"{block}\": its new device buffer (type \"{buffer_type}\") cannot be created: {message}; the old version and buffer still serve")]
    Buffer {
        /// The block.
        block: String,
        /// The new buffer type.
        buffer_type: String,
        /// Why.
        message: String,
    },
    /// A call into the new version did not return within the handler
    /// timeout; its thread is left behind (counted in stuck threads).
    #[error("block \"{block}\": the new version's {what} did not return within {timeout_s} s (the handler timeout); the swap is refused and the old version still serves; the thread stuck in it is left behind (GET /plugins: stuck_threads)")]
    Hung {
        /// The block.
        block: String,
        /// `restore`.
        what: &'static str,
        /// The handler timeout.
        timeout_s: f64,
    },
    /// The driver took the swap but its step did not finish in time (a
    /// block's snapshot hung); nothing was committed.
    #[error("the swap step did not finish within {timeout_s} s (a block's snapshot did not return?); nothing was changed, the old version still serves")]
    StepTimeout {
        /// How long the reload waited.
        timeout_s: f64,
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
    /// Swaps have loaded as many libraries as they may (libraries are never
    /// unloaded).
    #[error("{path}: not loaded: swaps have loaded {limit} libraries in this emulator, the limit (--max-swap-libraries), and libraries are never unloaded; restart the emulator (or reload a file loaded before, which is reused)")]
    TooManyLibraries {
        /// The library.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// The emulator has terminated.
    #[error("the emulator has terminated")]
    Terminated,
    /// The file is the serving version, byte for byte (asked with
    /// `skip_unchanged`; not an error of the file).
    #[error("{path} is the version serving now")]
    Unchanged {
        /// The library.
        path: PathBuf,
    },
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
    /// Do nothing when the file's bytes are the serving version's
    /// ([`SwapError::Unchanged`]); the watcher asks for this.
    pub skip_unchanged: bool,
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
    /// What happened to its device buffer when the new version changed its
    /// type (absent: the same segment, unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferCarry>,
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
    /// Whether these bytes of this file were loaded before in this process
    /// and that library was reused (no isolated check, no new load).
    pub reused_library: bool,
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

/// Where a type's library comes from.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The type's `emulators/<type>/emulator` folder (or the explicit
    /// library's folder).
    pub folder: PathBuf,
    /// The library file, when it is not "the one library in `folder`".
    pub library: Option<PathBuf>,
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
    /// Libraries of this type loaded in this process (never unloaded: each
    /// stays resident; identical bytes from the same file are loaded once).
    pub loaded_libraries: usize,
    /// Its blocks.
    pub blocks: Vec<String>,
}
