//! The device buffer the engine makes for each block whose plugin ships a
//! catalog.
//!
//! Shared buffers live in POSIX shared memory as
//! `/dev/shm/bitstream-<emulator id>-<block id>` (characters outside
//! `[A-Za-z0-9._-]` become `_`), mode 0600. They are unlinked when the
//! emulator terminates; a segment left by an emulator that died is
//! replaced, one whose creator still runs is an error.
//!
//! A hot swap that changes a block's buffer type makes a *successor*
//! ([`BlockBuffer::create_successor`]) under the staged name
//! `<name>.next`; only when the swap commits does the successor take the
//! block's name ([`BlockBuffer::take_over`]: an atomic rename, so a process
//! that attaches by name gets the old or the new segment, never none) and
//! the old segment is marked invalid (processes attached to it re-attach).
//! A swap that fails drops the successor, which removes its staged name; a
//! staged name left by an emulator that died is removed when the block's
//! buffer is next created.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bitstream_buffer::clock::ClockTicker;
use bitstream_buffer::device::{Buffer, BufferError, BufferType};
use bitstream_buffer::segment::{Segment, SegmentError};

/// Why a block's buffer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BlockBufferError {
    /// The process clock ticker (for Smart Device stamps) did not start.
    #[error("cannot start the clock ticker: {0}")]
    Clock(std::io::Error),
    /// The buffer or its segment could not be made.
    #[error(transparent)]
    Buffer(#[from] BufferError),
    /// Its shared-memory name is held by a running process.
    #[error(
        "/dev/shm/{name} belongs to a running process (pid {pid}), probably another \
         emulator with the same id: stop it, or give this one another --id"
    )]
    InUse {
        /// The shared-memory name.
        name: String,
        /// The process that holds it.
        pid: i32,
    },
    /// A leftover segment could not be removed.
    #[error("cannot remove the leftover /dev/shm/{name}: {error}")]
    Unlink {
        /// The shared-memory name.
        name: String,
        /// Why.
        error: SegmentError,
    },
}

/// Prefix of every shared buffer the engine creates.
pub const SHM_PREFIX: &str = "bitstream-";

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

/// The staged name of a successor segment of `name`.
fn staged_name(name: &str) -> String {
    format!("{name}.next")
}

/// A block's buffer, owned by the engine.
pub struct BlockBuffer {
    buffer: Buffer,
    /// The block's shared-memory name, when shared.
    shm_name: Option<String>,
    /// A successor not yet committed: the name it was created under.
    staged: parking_lot::Mutex<Option<String>>,
    /// Whether dropping it removes `shm_name`: false for a successor not
    /// yet committed and for a buffer whose successor took the name.
    owns_name: AtomicBool,
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
    ) -> Result<BlockBuffer, BlockBufferError> {
        let clock = if ty.device_type().is_smart() {
            Some(ClockTicker::start().map_err(BlockBufferError::Clock)?)
        } else {
            None
        };
        let (buffer, shm_name) = match mode {
            BufferMode::Local => (Buffer::new_local(ty)?, None),
            BufferMode::Shared => {
                let name = shm_name(emulator_id, block_id);
                let buffer = create_replacing_stale(&name, ty)?;
                remove_stale_staged(&name);
                (buffer, Some(name))
            }
        };
        Ok(BlockBuffer {
            buffer,
            shm_name,
            staged: parking_lot::Mutex::new(None),
            owns_name: AtomicBool::new(true),
            _clock: clock,
        })
    }

    /// A new buffer of type `ty` for block `block_id`, to replace its
    /// current one when a swap commits ([`BlockBuffer::take_over`]). Shared,
    /// it is created under the staged name `<name>.next` (a leftover of an
    /// emulator that died is replaced); dropped uncommitted, it removes
    /// that name and leaves the block's buffer as it was.
    pub fn create_successor(
        ty: &Arc<BufferType>,
        mode: BufferMode,
        emulator_id: &str,
        block_id: &str,
    ) -> Result<BlockBuffer, BlockBufferError> {
        if mode == BufferMode::Local {
            return Self::create(ty, mode, emulator_id, block_id);
        }
        let clock = if ty.device_type().is_smart() {
            Some(ClockTicker::start().map_err(BlockBufferError::Clock)?)
        } else {
            None
        };
        let name = shm_name(emulator_id, block_id);
        let staged = staged_name(&name);
        let buffer = create_replacing_stale(&staged, ty)?;
        Ok(BlockBuffer {
            buffer,
            shm_name: Some(name),
            staged: parking_lot::Mutex::new(Some(staged)),
            owns_name: AtomicBool::new(false),
            _clock: clock,
        })
    }

    /// Commits this successor in place of `old` (the block's buffer until
    /// now, if it had one): it takes the block's shared-memory name (an atomic rename over
    /// the old segment's) and `old` is released (marked invalid; its
    /// mapping stays for as long as someone holds it). Never fails: a
    /// rename that fails is logged and the successor keeps its staged name.
    pub fn take_over(&self, old: Option<&BlockBuffer>) {
        let staged = self.staged.lock().take();
        if let (Some(staged), Some(name)) = (staged, &self.shm_name) {
            match Segment::rename_shared(&staged, name) {
                Ok(()) => {
                    if let Some(old) = old {
                        old.owns_name.store(false, Ordering::Release);
                    }
                    self.owns_name.store(true, Ordering::Release);
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot rename /dev/shm/{staged} to /dev/shm/{name}: {e}; the block's \
                         new buffer stays /dev/shm/{staged}"
                    );
                    *self.staged.lock() = Some(staged);
                }
            }
        }
        if let Some(old) = old {
            old.release();
        }
    }

    /// The buffer.
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// Its shared-memory name, when shared (a successor not yet committed:
    /// its staged name).
    pub fn shm_name(&self) -> Option<String> {
        self.staged.lock().clone().or_else(|| self.shm_name.clone())
    }

    /// The segment's first byte and length, as handed to the block's
    /// plugin.
    pub fn region(&self) -> (*mut u8, usize) {
        let segment = self.buffer.segment();
        (segment.base(), segment.len())
    }

    /// Unlinks the shared-memory name and marks the buffer invalid (the
    /// mapping stays until the block is dropped). Idempotent. Never waits
    /// long: a process stopped while holding the buffer's lock cannot keep
    /// the emulator from terminating.
    pub fn release(&self) {
        let unlink = |name: &str| match Segment::unlink(name) {
            Ok(()) | Err(SegmentError::NotFound { .. }) => {}
            Err(e) => tracing::warn!("cannot unlink /dev/shm/{name}: {e}"),
        };
        if let Some(staged) = self.staged.lock().take() {
            unlink(&staged);
        }
        if self.owns_name.swap(false, Ordering::AcqRel) {
            if let Some(name) = &self.shm_name {
                unlink(name);
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

/// Creates the shared buffer `name`, replacing a leftover of an emulator
/// that died.
fn create_replacing_stale(name: &str, ty: &Arc<BufferType>) -> Result<Buffer, BlockBufferError> {
    match Buffer::create_shared(name, ty) {
        Err(BufferError::Segment(SegmentError::Exists { .. })) => {
            replace_stale(name)?;
            Ok(Buffer::create_shared(name, ty)?)
        }
        other => Ok(other?),
    }
}

/// Removes the staged successor of `name` left by a swap of an emulator
/// that died mid-swap (one whose creator runs is left alone).
fn remove_stale_staged(name: &str) {
    let staged = staged_name(name);
    if Segment::open_shared(&staged).is_err()
        && !std::path::Path::new("/dev/shm").join(&staged).exists()
    {
        return;
    }
    if let Err(e) = replace_stale(&staged) {
        tracing::warn!("{e}");
    }
}

/// Unlinks `name` if the process that created it is gone; else explains.
fn replace_stale(name: &str) -> Result<(), BlockBufferError> {
    let creator = match Segment::open_shared(name) {
        Ok(segment) => Some(segment.creator_pid()),
        // Not a segment we can read (foreign or half-made): a leftover too.
        Err(_) => None,
    };
    if let Some(pid) = creator.filter(|&pid| process_alive(pid)) {
        return Err(BlockBufferError::InUse {
            name: name.to_owned(),
            pid,
        });
    }
    tracing::warn!(
        "replacing /dev/shm/{name}, left by an emulator that is no longer running (pid {})",
        creator.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
    );
    Segment::unlink(name).map_err(|error| BlockBufferError::Unlink {
        name: name.to_owned(),
        error,
    })
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
