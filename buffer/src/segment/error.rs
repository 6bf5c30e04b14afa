//! [`SegmentError`]: why a segment could not be made, attached, removed or
//! locked; every message names the segment and what to do.

use std::io;

use super::format::{MAX_NAME_LEN, SEGMENT_MAGIC, SEGMENT_VERSION, SHM_DIR};

/// Why a segment could not be created, attached, removed or locked.
///
/// `name` is the shared memory name of the segment (without the leading
/// `/`), or `local:<type>` / `borrowed:<type>` for segments that have none.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The segment name is not valid (see [`validate_name`](super::validate_name)).
    #[error(
        "invalid segment name {name:?}: {reason}; use 1 to {MAX_NAME_LEN} characters from \
         [A-Za-z0-9._-], without a leading '/'"
    )]
    BadName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The buffer type description cannot be stored in a segment.
    #[error("segment `{name}`: invalid buffer type: {reason}; fix the type in the catalog")]
    BadSpec {
        /// The segment.
        name: String,
        /// What is wrong with the type.
        reason: String,
    },
    /// A shared segment of that name already exists.
    #[error(
        "shared segment `{name}` already exists ({SHM_DIR}/{name}): another emulator may be \
         using it; stop it, or remove the stale segment (Segment::unlink) if none is"
    )]
    Exists {
        /// The segment.
        name: String,
    },
    /// No shared segment of that name exists.
    #[error(
        "shared segment `{name}` does not exist ({SHM_DIR}/{name}): start the emulator that \
         creates it first, or check the name"
    )]
    NotFound {
        /// The segment.
        name: String,
    },
    /// The segment exists but its creator has not finished initialising it.
    #[error(
        "shared segment `{name}` is not initialised yet: its creator is still setting it up \
         (retry shortly) or died while doing so (remove it with Segment::unlink)"
    )]
    NotInitialized {
        /// The segment.
        name: String,
    },
    /// The memory does not start with [`SEGMENT_MAGIC`].
    #[error(
        "segment `{name}` is not a device buffer segment (magic {found:#018x}, expected \
         {SEGMENT_MAGIC:#018x}): check the name; remove it if it is a stale file"
    )]
    BadMagic {
        /// The segment.
        name: String,
        /// The magic found.
        found: u64,
    },
    /// The segment has a format version this SDK does not read.
    #[error(
        "segment `{name}` has format version {found}, this SDK reads version {SEGMENT_VERSION}: \
         use the same SDK version as the segment's creator"
    )]
    BadVersion {
        /// The segment.
        name: String,
        /// The version found.
        found: u32,
    },
    /// The header is inconsistent with itself or with the memory's length.
    #[error(
        "segment `{name}` is corrupt or truncated: {reason}; remove it (Segment::unlink) and \
         restart its creator"
    )]
    Corrupt {
        /// The segment.
        name: String,
        /// What is inconsistent.
        reason: String,
    },
    /// The pointer given to [`Segment::from_raw`](super::Segment::from_raw) cannot be a segment.
    #[error("segment `{name}`: {reason}; pass the base address of a segment made by this SDK")]
    BadPointer {
        /// The segment.
        name: String,
        /// What is wrong with the pointer.
        reason: &'static str,
    },
    /// The segment holds another buffer type than the one expected.
    #[error(
        "segment `{name}` holds type `{found_type}` (hash {found_hash:#018x}) but \
         `{expected_type}` (hash {expected_hash:#018x}) was expected: the catalog used to \
         attach differs from the creator's; attach with the creator's catalog"
    )]
    TypeMismatch {
        /// The segment.
        name: String,
        /// The type the attacher expected.
        expected_type: String,
        /// The hash the attacher expected.
        expected_hash: u64,
        /// The type stored in the segment.
        found_type: String,
        /// The hash stored in the segment.
        found_hash: u64,
    },
    /// The lock's previous holder died and the lock can no longer be used.
    #[error(
        "the lock of segment `{name}` is unrecoverable (a holder died and the lock was not made \
         consistent): remove the segment (Segment::unlink) and restart its creator"
    )]
    LockUnrecoverable {
        /// The segment.
        name: String,
    },
    /// Locking failed for another reason.
    #[error(
        "could not lock segment `{name}`: {} (errno {errno}); the segment may be corrupt: \
         remove it and restart its creator",
        io::Error::from_raw_os_error(*errno)
    )]
    Lock {
        /// The segment.
        name: String,
        /// The error number `pthread_mutex_lock` returned.
        errno: i32,
    },
    /// Memory for a local segment could not be allocated.
    #[error(
        "could not allocate {size} bytes for segment `{name}`: free memory or use a smaller \
         buffer type"
    )]
    OutOfMemory {
        /// The segment.
        name: String,
        /// The size requested.
        size: usize,
    },
    /// A system call failed.
    #[error(
        "segment `{name}`: {op} failed: {source}; check the permissions and free space of \
         {SHM_DIR}"
    )]
    Io {
        /// The segment (or directory) concerned.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// A failed system call `op` on segment (or directory) `name`.
pub(super) fn io_error(name: &str, op: &'static str, source: io::Error) -> SegmentError {
    SegmentError::Io {
        name: name.to_owned(),
        op,
        source,
    }
}
