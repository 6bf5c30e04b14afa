//! Device buffers of blocks: which catalog a plugin ships, and the one
//! buffer the engine makes for each block whose plugin has one.
//!
//! A plugin ships a catalog as `catalog.json` beside its library in
//! `emulators/<type>/emulator/`, or declares one through the SDK
//! (`export_plugin! { …, catalog: … }`); the file wins when both exist.
//! The block's buffer type is the catalog's type named like the ip_block
//! type (`wideband_power_meter` or `wideband-power-meter`), or the
//! catalog's only type.
//!
//! Shared buffers live in POSIX shared memory as
//! `/dev/shm/bitstream-<emulator id>-<block id>` (characters outside
//! `[A-Za-z0-9._-]` become `_`), mode 0600. They are unlinked when the
//! emulator terminates; a segment left by an emulator that died is
//! replaced, one whose creator still runs is an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitstream_sdk::buffer::catalog::Catalog;
use bitstream_sdk::buffer::clock::ClockTicker;
use bitstream_sdk::buffer::device::{Buffer, BufferError, BufferType};
use bitstream_sdk::buffer::segment::{Segment, SegmentError};
use bitstream_sdk::ffi::BufferRegion;

use crate::plugin::Components;

/// The catalog file a plugin folder may hold.
pub const CATALOG_FILE: &str = "catalog.json";

/// Prefix of every shared buffer the engine creates.
pub const SHM_PREFIX: &str = "bitstream-";

/// Where a plugin's catalog came from, and the buffer type of its blocks.
#[derive(Debug, Clone)]
pub struct PluginCatalog {
    /// `emulators/<type>/emulator/catalog.json`, or `None` when declared
    /// through the SDK.
    pub file: Option<PathBuf>,
    /// The buffer type of every block of the plugin's type.
    pub buffer_type: Arc<BufferType>,
}

impl PluginCatalog {
    /// Where the catalog came from, for messages.
    pub fn source(&self) -> String {
        catalog_source(self.file.as_deref())
    }
}

/// A catalog's file, or where a catalog without one was declared.
fn catalog_source(file: Option<&Path>) -> String {
    match file {
        Some(path) => path.display().to_string(),
        None => "the catalog declared in the plugin (export_plugin! catalog:)".to_owned(),
    }
}

/// The catalog of a plugin, if it ships one. Errors name the file (or the
/// plugin) and say what to fix.
pub fn plugin_catalog(
    components: &Components,
    folder: &Path,
    ip_block_type: &str,
) -> Result<Option<PluginCatalog>, String> {
    let file = folder.join(CATALOG_FILE);
    let (text, file) = if file.is_file() {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("{}: cannot read the catalog: {e}", file.display()))?;
        (text, Some(file))
    } else {
        match components.declared_catalog() {
            Some(text) => (text, None),
            None => return Ok(None),
        }
    };
    let source = || catalog_source(file.as_deref());
    let catalog = Catalog::from_json(&text).map_err(|e| format!("{}: {e}", source()))?;
    let kebab = ip_block_type.replace('_', "-");
    let type_name = if catalog.get(ip_block_type).is_some() {
        ip_block_type.to_owned()
    } else if catalog.get(&kebab).is_some() {
        kebab
    } else if catalog.len() == 1 {
        catalog.types()[0].name.clone()
    } else {
        return Err(format!(
            "{}: no buffer type for ip_block type \"{ip_block_type}\": name one of its types \
             \"{ip_block_type}\" or \"{kebab}\", or keep a single type (it has: {})",
            source(),
            catalog.names().collect::<Vec<_>>().join(", ")
        ));
    };
    let buffer_type =
        BufferType::from_catalog(&catalog, &type_name).map_err(|e| format!("{}: {e}", source()))?;
    Ok(Some(PluginCatalog {
        file,
        buffer_type: Arc::new(buffer_type),
    }))
}

/// Where the engine keeps block buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferMode {
    /// POSIX shared memory, readable by other processes (the default).
    #[default]
    Shared,
    /// Process-local heap memory (tests, or hosts without /dev/shm).
    Local,
}

/// The shared-memory name of a block's buffer.
pub fn shm_name(emulator_id: &str, block_id: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{SHM_PREFIX}{}-{}", clean(emulator_id), clean(block_id))
}

/// A block's buffer, owned by the engine.
pub struct BlockBuffer {
    buffer: Buffer,
    shm_name: Option<String>,
    /// Held for Smart Device types, whose `set`/`write` stamp the time:
    /// the stamps then come from the process's cached clock (one load)
    /// instead of a clock read.
    _clock: Option<ClockTicker>,
}

impl std::fmt::Debug for BlockBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuffer")
            .field("name", &self.buffer.name())
            .finish()
    }
}

impl BlockBuffer {
    /// Creates the buffer of block `block_id`.
    pub fn create(
        ty: &Arc<BufferType>,
        mode: BufferMode,
        emulator_id: &str,
        block_id: &str,
    ) -> Result<BlockBuffer, String> {
        let clock = if ty.device_type().is_smart() {
            Some(ClockTicker::start().map_err(|e| format!("cannot start the clock ticker: {e}"))?)
        } else {
            None
        };
        let (buffer, shm_name) = match mode {
            BufferMode::Local => (Buffer::new_local(ty).map_err(|e| e.to_string())?, None),
            BufferMode::Shared => {
                let name = shm_name(emulator_id, block_id);
                let buffer = match Buffer::create_shared(&name, ty) {
                    Err(BufferError::Segment(SegmentError::Exists { .. })) => {
                        replace_stale(&name)?;
                        Buffer::create_shared(&name, ty)
                    }
                    other => other,
                }
                .map_err(|e| e.to_string())?;
                (buffer, Some(name))
            }
        };
        Ok(BlockBuffer {
            buffer,
            shm_name,
            _clock: clock,
        })
    }

    /// The buffer.
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// Its shared-memory name, when shared.
    pub fn shm_name(&self) -> Option<&str> {
        self.shm_name.as_deref()
    }

    /// The segment, as handed to the block's plugin.
    pub fn region(&self) -> BufferRegion {
        let segment = self.buffer.segment();
        BufferRegion {
            base: segment.base(),
            len: segment.len(),
        }
    }

    /// Unlinks the shared-memory name and marks the buffer invalid (the
    /// mapping stays until the block is dropped). Idempotent. Never waits
    /// long: a process stopped while holding the buffer's lock cannot keep
    /// the emulator from terminating.
    pub fn release(&self) {
        if let Some(name) = &self.shm_name {
            match Segment::unlink(name) {
                Ok(()) | Err(SegmentError::NotFound { .. }) => {}
                Err(e) => tracing::warn!("cannot unlink /dev/shm/{name}: {e}"),
            }
        }
        match self
            .buffer
            .set_valid_within(false, std::time::Duration::from_millis(200))
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "buffer {}: another process holds its lock; left without clearing its valid flag",
                self.buffer.name()
            ),
            Err(e) => tracing::warn!("buffer {}: {e}", self.buffer.name()),
        }
    }
}

impl Drop for BlockBuffer {
    fn drop(&mut self) {
        self.release();
    }
}

/// Unlinks `name` if the process that created it is gone; else explains.
fn replace_stale(name: &str) -> Result<(), String> {
    let creator = match Segment::open_shared(name) {
        Ok(segment) => Some(segment.creator_pid()),
        // Not a segment we can read (foreign or half-made): a leftover too.
        Err(_) => None,
    };
    if let Some(pid) = creator.filter(|&pid| process_alive(pid)) {
        return Err(format!(
            "/dev/shm/{name} belongs to a running process (pid {pid}), probably another \
             emulator with the same id: stop it, or give this one another --id"
        ));
    }
    tracing::warn!(
        "replacing /dev/shm/{name}, left by an emulator that is no longer running (pid {})",
        creator.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
    );
    Segment::unlink(name).map_err(|e| e.to_string())
}

/// Whether process `pid` exists (signal 0 probes without sending). Not
/// for 0 or negative numbers, which `kill` reads as process groups.
pub fn process_alive(pid: i32) -> bool {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(shm_name("vcc-1", "fs sel/0"), "bitstream-vcc-1-fs_sel_0");
        assert_eq!(shm_name("a.b", "c_d"), "bitstream-a.b-c_d");
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(0) && !process_alive(-1));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }
}
