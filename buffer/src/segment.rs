//! Segments: the memory that holds one device buffer.
//!
//! A segment is a fixed [header](#layout) followed by the buffer's C struct
//! (the *data*) and the JSON text of the buffer type's catalog spec. It lives
//! either on the heap ([`Segment::new_local`], process-local) or in POSIX
//! shared memory ([`Segment::create_shared`]) that other processes attach to
//! ([`Segment::attach_shared`], [`Segment::open_shared`]); on Linux a shared
//! segment named `NAME` is the file `/dev/shm/NAME` (mode `0600`).
//!
//! The header holds a process-shared, recursive, *robust* `pthread_mutex_t`
//! ([`Segment::lock`]): when a process dies while holding it, the next locker
//! recovers the lock ([`SegmentGuard::recovered`]) instead of hanging.
//!
//! # Layout
//!
//! All integers are little-endian (x86_64 Linux). Offsets are from the start
//! of the segment, whose base is aligned to at least [`DATA_ALIGN`] bytes
//! (page-aligned when mapped). The offsets of the header members are also in
//! [`header_offsets`].
//!
//! | offset | size | member | contents |
//! |-------:|-----:|--------|----------|
//! | 0   | 8  | `magic: u64`       | [`SEGMENT_MAGIC`], the bytes `BSEMBUF1`; written last by the creator |
//! | 8   | 4  | `version: u32`     | [`SEGMENT_VERSION`] (1) |
//! | 12  | 4  | `header_size: u32` | [`HEADER_SIZE`] (168) |
//! | 16  | 8  | `data_offset: u64` | [`SEGMENT_DATA_OFFSET`] (192): `header_size` rounded up to [`DATA_ALIGN`] |
//! | 24  | 8  | `data_size: u64`   | size in bytes of the buffer struct |
//! | 32  | 8  | `type_hash: u64`   | hash of the buffer type (from the catalog) |
//! | 40  | 8  | `spec_offset: u64` | offset of the spec JSON: `data_offset + data_size` |
//! | 48  | 8  | `spec_len: u64`    | length in bytes of the spec JSON (UTF-8, no NUL) |
//! | 56  | 64 | `type_name: [u8; 64]` | type name, UTF-8, NUL-padded (at most [`MAX_TYPE_NAME`] bytes) |
//! | 120 | 4  | `creator_pid: i32` | process id of the creator |
//! | 124 | 4  | `_reserved: u32`   | zero |
//! | 128 | 40 | `mutex: pthread_mutex_t` | process-shared, recursive, robust mutex |
//! | 168 | 24 | padding            | zero |
//! | 192 | `data_size` | data      | the buffer's `repr(C)` struct, aligned to 64 |
//! | `spec_offset` | `spec_len` | spec | the type's catalog spec as JSON text |
//!
//! The segment is `spec_offset + spec_len` bytes long (a shared segment's
//! file may be longer, never shorter).
//!
//! Readers must load `magic` first (with acquire ordering) and ignore the
//! segment while it is zero: the creator writes every other member first.
//! Everything but the mutex and the data is immutable afterwards. A Python
//! reader:
//!
//! ```python
//! import mmap, struct
//! with open("/dev/shm/NAME", "r+b") as f:
//!     m = mmap.mmap(f.fileno(), 0)
//! (magic, version, header_size, data_offset, data_size, type_hash,
//!  spec_offset, spec_len) = struct.unpack_from("<QIIQQQQQ", m, 0)
//! assert magic == int.from_bytes(b"BSEMBUF1", "little") and version == 1
//! type_name = bytes(m[56:120]).split(b"\0", 1)[0].decode()
//! spec = bytes(m[spec_offset:spec_offset + spec_len]).decode()
//! data = memoryview(m)[data_offset:data_offset + data_size]
//! ```
//!
//! Writers from C (or Python through `ctypes`) must hold the mutex at offset
//! 128 (`pthread_mutex_lock`, handling `EOWNERDEAD` with
//! `pthread_mutex_consistent`) while touching the data.

use std::alloc::{self, Layout};
use std::ffi::CString;
use std::io;
use std::marker::PhantomData;
use std::mem::{offset_of, size_of, ManuallyDrop, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::{self, addr_of, addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Value of the header's `magic` member: the bytes `BSEMBUF1` read as a
/// little-endian `u64`.
pub const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"BSEMBUF1");

/// Version of the segment format described in the [module docs](self).
pub const SEGMENT_VERSION: u32 = 1;

/// Alignment of the data (the buffer struct) and of a segment's base.
pub const DATA_ALIGN: usize = 64;

/// Longest type name in bytes (the header's field is one byte longer, for the NUL).
pub const MAX_TYPE_NAME: usize = 63;

/// Longest segment name in bytes (see [`validate_name`]).
pub const MAX_NAME_LEN: usize = 250;

/// Directory in which Linux keeps POSIX shared memory objects.
pub const SHM_DIR: &str = "/dev/shm";

/// The segment header (see the module docs). Never referenced with `&`:
/// only its layout and `addr_of!`-style member pointers are used.
#[repr(C)]
struct Header {
    magic: u64,
    version: u32,
    header_size: u32,
    data_offset: u64,
    data_size: u64,
    type_hash: u64,
    spec_offset: u64,
    spec_len: u64,
    type_name: [u8; MAX_TYPE_NAME + 1],
    creator_pid: i32,
    _reserved: u32,
    mutex: libc::pthread_mutex_t,
}

/// Size in bytes of the segment header.
pub const HEADER_SIZE: usize = size_of::<Header>();

/// Offset of the data in every segment: [`HEADER_SIZE`] rounded up to [`DATA_ALIGN`].
pub const SEGMENT_DATA_OFFSET: usize = HEADER_SIZE.div_ceil(DATA_ALIGN) * DATA_ALIGN;

/// Byte offsets of the header members, from the start of the segment.
pub mod header_offsets {
    use super::Header;
    use std::mem::offset_of;

    /// `magic: u64`.
    pub const MAGIC: usize = offset_of!(Header, magic);
    /// `version: u32`.
    pub const VERSION: usize = offset_of!(Header, version);
    /// `header_size: u32`.
    pub const HEADER_SIZE: usize = offset_of!(Header, header_size);
    /// `data_offset: u64`.
    pub const DATA_OFFSET: usize = offset_of!(Header, data_offset);
    /// `data_size: u64`.
    pub const DATA_SIZE: usize = offset_of!(Header, data_size);
    /// `type_hash: u64`.
    pub const TYPE_HASH: usize = offset_of!(Header, type_hash);
    /// `spec_offset: u64`.
    pub const SPEC_OFFSET: usize = offset_of!(Header, spec_offset);
    /// `spec_len: u64`.
    pub const SPEC_LEN: usize = offset_of!(Header, spec_len);
    /// `type_name: [u8; 64]`.
    pub const TYPE_NAME: usize = offset_of!(Header, type_name);
    /// `creator_pid: i32`.
    pub const CREATOR_PID: usize = offset_of!(Header, creator_pid);
    /// `mutex: pthread_mutex_t`.
    pub const MUTEX: usize = offset_of!(Header, mutex);
}

// The layout documented above, for the target it is documented for.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const _: () = {
    assert!(header_offsets::VERSION == 8);
    assert!(header_offsets::HEADER_SIZE == 12);
    assert!(header_offsets::DATA_OFFSET == 16);
    assert!(header_offsets::DATA_SIZE == 24);
    assert!(header_offsets::TYPE_HASH == 32);
    assert!(header_offsets::SPEC_OFFSET == 40);
    assert!(header_offsets::SPEC_LEN == 48);
    assert!(header_offsets::TYPE_NAME == 56);
    assert!(header_offsets::CREATOR_PID == 120);
    assert!(offset_of!(Header, _reserved) == 124);
    assert!(header_offsets::MUTEX == 128);
    assert!(HEADER_SIZE == 168);
    assert!(SEGMENT_DATA_OFFSET == 192);
};

/// Offset of the futex word (which holds the owner's thread id for robust
/// mutexes) inside `pthread_mutex_t`.
#[cfg(target_env = "musl")]
const FUTEX_WORD_OFFSET: usize = 4;
#[cfg(not(target_env = "musl"))]
const FUTEX_WORD_OFFSET: usize = 0;

/// Bits of a robust futex word that hold the owner's thread id.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// What identifies the buffer type stored in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSpec<'a> {
    /// Catalog type name (1 to [`MAX_TYPE_NAME`] bytes, no NUL).
    pub type_name: &'a str,
    /// Hash of the type's layout, compared when attaching.
    pub type_hash: u64,
    /// Size in bytes of the buffer struct.
    pub data_size: usize,
    /// Alignment of the buffer struct (a power of two, at most [`DATA_ALIGN`]).
    pub data_align: usize,
    /// The type's catalog spec as JSON text, stored after the data.
    pub spec_json: &'a str,
}

/// The header of a segment, decoded (see the module docs for the layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Format version ([`SEGMENT_VERSION`]).
    pub version: u32,
    /// Size of the header ([`HEADER_SIZE`]).
    pub header_size: u32,
    /// Offset of the data ([`SEGMENT_DATA_OFFSET`]).
    pub data_offset: usize,
    /// Size of the data.
    pub data_size: usize,
    /// Hash of the buffer type.
    pub type_hash: u64,
    /// Offset of the spec JSON.
    pub spec_offset: usize,
    /// Length of the spec JSON.
    pub spec_len: usize,
    /// Name of the buffer type.
    pub type_name: String,
    /// Process id of the creator.
    pub creator_pid: i32,
}

impl HeaderInfo {
    /// Total length of the segment (`spec_offset + spec_len`).
    pub fn total_len(&self) -> usize {
        self.spec_offset + self.spec_len
    }
}

/// Why a segment could not be created, attached, removed or locked.
///
/// `name` is the shared memory name of the segment (without the leading
/// `/`), or `local:<type>` / `borrowed:<type>` for segments that have none.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The segment name is not valid (see [`validate_name`]).
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
    /// The pointer given to [`Segment::from_raw`] cannot be a segment.
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

/// Checks a segment name: non-empty, at most [`MAX_NAME_LEN`] bytes, only
/// ASCII letters, digits, `.`, `_` and `-` (so no `/` and no NUL), and not
/// made of dots only (`.`, `..`).
pub fn validate_name(name: &str) -> Result<(), SegmentError> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name.len() > MAX_NAME_LEN {
        "the name is too long"
    } else if name.contains('/') {
        "the name contains '/'"
    } else if name.contains('\0') {
        "the name contains a NUL byte"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "the name contains a character outside [A-Za-z0-9._-]"
    } else if name.bytes().all(|b| b == b'.') {
        "`.` and `..` are not names"
    } else {
        return Ok(());
    };
    Err(SegmentError::BadName {
        name: name.to_owned(),
        reason,
    })
}

/// `shm_open(path, flags, mode)` as an owned descriptor: an existing name
/// (with `O_EXCL`) is [`SegmentError::Exists`], a missing one
/// [`SegmentError::NotFound`].
fn shm_open(
    name: &str,
    path: &std::ffi::CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> Result<OwnedFd, SegmentError> {
    // SAFETY: `path` is a NUL-terminated string.
    let fd = unsafe { libc::shm_open(path.as_ptr(), flags, mode) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let name = name.to_owned();
        return Err(match err.raw_os_error() {
            Some(libc::EEXIST) => SegmentError::Exists { name },
            Some(libc::ENOENT) => SegmentError::NotFound { name },
            _ => io_error(&name, "shm_open", err),
        });
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The `/name` form that `shm_open` takes, for a name that passed [`validate_name`].
fn shm_path(name: &str) -> Result<CString, SegmentError> {
    validate_name(name)?;
    CString::new(format!("/{name}")).map_err(|_| SegmentError::BadName {
        name: name.to_owned(),
        reason: "the name contains a NUL byte",
    })
}

fn io_error(name: &str, op: &'static str, source: io::Error) -> SegmentError {
    SegmentError::Io {
        name: name.to_owned(),
        op,
        source,
    }
}

/// Sizes of a segment for a spec, checked.
struct Sizes {
    data_size: usize,
    spec_offset: usize,
    spec_len: usize,
    len: usize,
}

impl Sizes {
    /// The sizes a checked header gives.
    fn of_header(info: &HeaderInfo) -> Sizes {
        Sizes {
            data_size: info.data_size,
            spec_offset: info.spec_offset,
            spec_len: info.spec_len,
            len: info.total_len(),
        }
    }

    fn for_spec(label: &str, spec: &SegmentSpec) -> Result<Sizes, SegmentError> {
        let bad = |reason: String| SegmentError::BadSpec {
            name: label.to_owned(),
            reason,
        };
        if spec.type_name.is_empty() {
            return Err(bad("the type name is empty".into()));
        }
        if spec.type_name.len() > MAX_TYPE_NAME {
            return Err(bad(format!(
                "type name `{}` is {} bytes long, at most {MAX_TYPE_NAME} fit",
                spec.type_name,
                spec.type_name.len()
            )));
        }
        if spec.type_name.contains('\0') {
            return Err(bad(format!(
                "type name {:?} contains a NUL byte",
                spec.type_name
            )));
        }
        if !spec.data_align.is_power_of_two() || spec.data_align > DATA_ALIGN {
            return Err(bad(format!(
                "type `{}` has alignment {}, which is not a power of two up to {DATA_ALIGN}",
                spec.type_name, spec.data_align
            )));
        }
        let spec_offset = SEGMENT_DATA_OFFSET.checked_add(spec.data_size);
        let len = spec_offset.and_then(|o| o.checked_add(spec.spec_json.len()));
        match (spec_offset, len) {
            (Some(spec_offset), Some(len)) if len <= isize::MAX as usize => Ok(Sizes {
                data_size: spec.data_size,
                spec_offset,
                spec_len: spec.spec_json.len(),
                len,
            }),
            _ => Err(bad(format!(
                "type `{}` is too large ({} bytes of data)",
                spec.type_name, spec.data_size
            ))),
        }
    }
}

/// Initialises a robust, recursive, process-shared mutex; returns the errno on failure.
///
/// # Safety
/// `mutex` must be valid for writes of a `pthread_mutex_t`, not in use, and
/// never move afterwards.
unsafe fn init_mutex(mutex: *mut libc::pthread_mutex_t) -> Result<(), i32> {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    let attr = attr.as_mut_ptr();
    // SAFETY: `attr` points to writable storage for an attribute object,
    // initialised by `pthread_mutexattr_init` before any other use and
    // destroyed once; the caller vouches for `mutex`.
    unsafe {
        let rc = libc::pthread_mutexattr_init(attr);
        if rc != 0 {
            return Err(rc);
        }
        let mut rc = libc::pthread_mutexattr_settype(attr, libc::PTHREAD_MUTEX_RECURSIVE);
        if rc == 0 {
            rc = libc::pthread_mutexattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED);
        }
        if rc == 0 {
            rc = libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST);
        }
        if rc == 0 {
            rc = libc::pthread_mutex_init(mutex, attr);
        }
        libc::pthread_mutexattr_destroy(attr);
        if rc == 0 {
            Ok(())
        } else {
            Err(rc)
        }
    }
}

/// Fills the header, the spec and the mutex of zeroed memory, `magic` last.
///
/// # Safety
/// `base` must be aligned to [`DATA_ALIGN`], valid for writes of `sizes.len`
/// bytes, zeroed, and not yet visible as a segment to anyone else (its
/// magic is zero).
unsafe fn init_segment(
    label: &str,
    base: *mut u8,
    sizes: &Sizes,
    spec: &SegmentSpec,
) -> Result<(), SegmentError> {
    let h = base.cast::<Header>();
    // SAFETY: the caller guarantees `base` is aligned and writable for
    // `sizes.len >= HEADER_SIZE + spec_len` bytes; every write goes through
    // raw member pointers (no reference to the memory is created), and the
    // type name fits its field (checked by `Sizes::for_spec`).
    unsafe {
        addr_of_mut!((*h).version).write(SEGMENT_VERSION);
        addr_of_mut!((*h).header_size).write(HEADER_SIZE as u32);
        addr_of_mut!((*h).data_offset).write(SEGMENT_DATA_OFFSET as u64);
        addr_of_mut!((*h).data_size).write(sizes.data_size as u64);
        addr_of_mut!((*h).type_hash).write(spec.type_hash);
        addr_of_mut!((*h).spec_offset).write(sizes.spec_offset as u64);
        addr_of_mut!((*h).spec_len).write(sizes.spec_len as u64);
        let name_field = addr_of_mut!((*h).type_name).cast::<u8>();
        ptr::write_bytes(name_field, 0, MAX_TYPE_NAME + 1);
        ptr::copy_nonoverlapping(spec.type_name.as_ptr(), name_field, spec.type_name.len());
        addr_of_mut!((*h).creator_pid).write(libc::getpid());
        addr_of_mut!((*h)._reserved).write(0);
        ptr::copy_nonoverlapping(
            spec.spec_json.as_ptr(),
            base.add(sizes.spec_offset),
            sizes.spec_len,
        );
        if let Err(errno) = init_mutex(addr_of_mut!((*h).mutex)) {
            return Err(io_error(
                label,
                "initialising the segment's mutex",
                io::Error::from_raw_os_error(errno),
            ));
        }
        // Publish: attachers load `magic` with Acquire before reading the rest.
        AtomicU64::from_ptr(addr_of_mut!((*h).magic)).store(SEGMENT_MAGIC, Ordering::Release);
    }
    Ok(())
}

/// Validates the header of `avail` bytes at `base` and decodes it.
///
/// # Safety
/// `base` must be non-null, aligned to 8 and valid for reads of `avail` bytes.
unsafe fn check_header(
    base: *const u8,
    avail: usize,
    label: &str,
) -> Result<HeaderInfo, SegmentError> {
    let corrupt = |reason: String| SegmentError::Corrupt {
        name: label.to_owned(),
        reason,
    };
    if avail < size_of::<u64>() {
        return Err(corrupt(format!("it is only {avail} bytes long")));
    }
    let h = base.cast::<Header>().cast_mut();
    // SAFETY: `base` is aligned to 8 and at least 8 bytes are readable (the
    // caller's contract and the check above); other processes only ever
    // access `magic` atomically.
    let magic = unsafe { AtomicU64::from_ptr(addr_of_mut!((*h).magic)) }.load(Ordering::Acquire);
    if magic == 0 {
        return Err(SegmentError::NotInitialized {
            name: label.to_owned(),
        });
    }
    if magic != SEGMENT_MAGIC {
        return Err(SegmentError::BadMagic {
            name: label.to_owned(),
            found: magic,
        });
    }
    if avail < HEADER_SIZE {
        return Err(corrupt(format!(
            "it is {avail} bytes long, shorter than the {HEADER_SIZE}-byte header"
        )));
    }
    // SAFETY: the whole header is readable (checked above), and the creator
    // wrote these members before publishing the magic that was loaded with
    // Acquire; the reads go through raw member pointers.
    let (version, header_size, data_offset, data_size, type_hash, spec_offset, spec_len, pid) = unsafe {
        (
            addr_of!((*h).version).read(),
            addr_of!((*h).header_size).read(),
            addr_of!((*h).data_offset).read(),
            addr_of!((*h).data_size).read(),
            addr_of!((*h).type_hash).read(),
            addr_of!((*h).spec_offset).read(),
            addr_of!((*h).spec_len).read(),
            addr_of!((*h).creator_pid).read(),
        )
    };
    if version != SEGMENT_VERSION {
        return Err(SegmentError::BadVersion {
            name: label.to_owned(),
            found: version,
        });
    }
    if header_size as usize != HEADER_SIZE {
        return Err(corrupt(format!(
            "header_size is {header_size}, expected {HEADER_SIZE}"
        )));
    }
    if data_offset != SEGMENT_DATA_OFFSET as u64 {
        return Err(corrupt(format!(
            "data_offset is {data_offset}, expected {SEGMENT_DATA_OFFSET}"
        )));
    }
    if data_offset.checked_add(data_size) != Some(spec_offset) {
        return Err(corrupt(format!(
            "spec_offset is {spec_offset}, expected data_offset + data_size = {data_offset} + {data_size}"
        )));
    }
    let total = spec_offset.checked_add(spec_len);
    if total.is_none_or(|t| t > avail as u64) {
        return Err(corrupt(format!(
            "the header describes {spec_offset} + {spec_len} bytes but only {avail} are there"
        )));
    }
    // SAFETY: reads the header's fixed-size name field through a raw pointer.
    let type_name = unsafe { read_type_name(base) }
        .ok_or_else(|| corrupt("the type name is not NUL-terminated".into()))?;
    // All three are at most `avail` (checked above), so they fit a usize.
    Ok(HeaderInfo {
        version,
        header_size,
        data_offset: data_offset as usize,
        data_size: data_size as usize,
        type_hash,
        spec_offset: spec_offset as usize,
        spec_len: spec_len as usize,
        type_name: String::from_utf8_lossy(&type_name).into_owned(),
        creator_pid: pid,
    })
}

/// Copies the type name (up to its NUL) out of a header; `None` without a NUL.
///
/// # Safety
/// `base` must be valid for reads of [`HEADER_SIZE`] bytes.
unsafe fn read_type_name(base: *const u8) -> Option<Vec<u8>> {
    let mut field = [0u8; MAX_TYPE_NAME + 1];
    // SAFETY: the field lies inside the header (caller's contract); the
    // destination is a local array of the same length.
    unsafe {
        ptr::copy_nonoverlapping(
            base.add(header_offsets::TYPE_NAME),
            field.as_mut_ptr(),
            field.len(),
        );
    }
    let end = field.iter().position(|&b| b == 0)?;
    Some(field[..end].to_vec())
}

/// A shared mapping not yet handed to a [`Segment`]; unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn map(fd: &OwnedFd, len: usize, label: &str) -> Result<Mapping, SegmentError> {
        // SAFETY: a fresh shared mapping of an open descriptor; the kernel
        // picks the address, so no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io_error(label, "mmap", io::Error::last_os_error()));
        }
        match NonNull::new(p.cast::<u8>()) {
            Some(base) => Ok(Mapping { base, len }),
            None => Err(io_error(
                label,
                "mmap",
                io::Error::other("mapped at address 0"),
            )),
        }
    }

    fn into_raw(self) -> (NonNull<u8>, usize) {
        let this = ManuallyDrop::new(self);
        (this.base, this.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what `mmap` returned and nothing
        // refers to the mapping any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Removes a shared memory object on drop unless disarmed (creation cleanup).
struct UnlinkOnFailure<'a> {
    path: &'a CString,
    armed: bool,
}

impl Drop for UnlinkOnFailure<'_> {
    fn drop(&mut self) {
        if self.armed {
            // SAFETY: `path` is a NUL-terminated string.
            unsafe { libc::shm_unlink(self.path.as_ptr()) };
        }
    }
}

/// Where a segment's memory comes from.
enum Backing {
    /// `alloc_zeroed` with this layout; freed on drop.
    Heap(Layout),
    /// A `MAP_SHARED` mapping of `/dev/shm/<name>` of `map_len` bytes; unmapped on drop.
    Shared { name: String, map_len: usize },
    /// Memory owned elsewhere ([`Segment::from_raw`]); left alone on drop.
    Borrowed,
}

/// The memory that holds one device buffer: header, data and spec (see the
/// [module docs](self)).
///
/// Dropping a segment frees or unmaps its memory; it never removes a shared
/// segment's name (that is its owner's job: [`Segment::unlink`]).
pub struct Segment {
    base: NonNull<u8>,
    len: usize,
    data_size: usize,
    spec_offset: usize,
    spec_len: usize,
    type_hash: u64,
    backing: Backing,
}

// SAFETY: a `Segment` owns (or, for `from_raw`, has been promised) its
// memory for its whole life and only accesses it through raw pointers; the
// header is immutable after creation, the mutex is a process-shared pthread
// mutex usable from any thread, and access to the data is synchronised by
// callers through `lock`. Nothing in it is tied to the creating thread.
unsafe impl Send for Segment {}
// SAFETY: see `Send`: every `&self` method either reads immutable header
// members or calls thread-safe pthread functions.
unsafe impl Sync for Segment {}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("label", &self.label())
            .field("base", &self.base)
            .field("len", &self.len)
            .field("data_size", &self.data_size)
            .field("type_hash", &self.type_hash)
            .finish()
    }
}

impl Segment {
    /// The segment at `base` with the (checked) `sizes`.
    fn assemble(base: NonNull<u8>, sizes: &Sizes, type_hash: u64, backing: Backing) -> Segment {
        Segment {
            base,
            len: sizes.len,
            data_size: sizes.data_size,
            spec_offset: sizes.spec_offset,
            spec_len: sizes.spec_len,
            type_hash,
            backing,
        }
    }

    /// A process-local segment on the heap: zeroed, aligned to
    /// [`DATA_ALIGN`], header filled and mutex initialised.
    pub fn new_local(spec: &SegmentSpec) -> Result<Segment, SegmentError> {
        let label = format!("local:{}", spec.type_name);
        let sizes = Sizes::for_spec(&label, spec)?;
        let layout = Layout::from_size_align(sizes.len, DATA_ALIGN).map_err(|_| {
            SegmentError::OutOfMemory {
                name: label.clone(),
                size: sizes.len,
            }
        })?;
        // SAFETY: `layout` has a non-zero size (it includes the header).
        let p = unsafe { alloc::alloc_zeroed(layout) };
        let Some(base) = NonNull::new(p) else {
            return Err(SegmentError::OutOfMemory {
                name: label,
                size: sizes.len,
            });
        };
        let segment = Segment::assemble(base, &sizes, spec.type_hash, Backing::Heap(layout));
        // SAFETY: fresh zeroed allocation of `sizes.len` bytes aligned to
        // DATA_ALIGN, not visible to anyone else.
        unsafe { init_segment(&label, base.as_ptr(), &sizes, spec)? };
        Ok(segment)
    }

    /// Creates the shared segment `name` (`/dev/shm/<name>`, mode `0600`)
    /// for a buffer of type `spec`, zeroed.
    ///
    /// Fails with [`SegmentError::Exists`] if the name is taken. On any
    /// failure after the object was created, it is removed again.
    pub fn create_shared(name: &str, spec: &SegmentSpec) -> Result<Segment, SegmentError> {
        let path = shm_path(name)?;
        let sizes = Sizes::for_spec(name, spec)?;
        let fd = shm_open(
            name,
            &path,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )?;
        let mut cleanup = UnlinkOnFailure {
            path: &path,
            armed: true,
        };
        // SAFETY: plain system calls on a descriptor we own.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o600) } != 0 {
            return Err(io_error(name, "fchmod", io::Error::last_os_error()));
        }
        // `sizes.len <= isize::MAX`, so it fits an off_t (i64).
        // SAFETY: as above.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), sizes.len as libc::off_t) } != 0 {
            return Err(io_error(name, "ftruncate", io::Error::last_os_error()));
        }
        let (base, map_len) = Mapping::map(&fd, sizes.len, name)?.into_raw();
        drop(fd);
        let backing = Backing::Shared {
            name: name.to_owned(),
            map_len,
        };
        let segment = Segment::assemble(base, &sizes, spec.type_hash, backing);
        // SAFETY: a page-aligned mapping of `sizes.len` bytes of a file that
        // `ftruncate` just zero-filled; others see magic 0 until it is done.
        unsafe { init_segment(name, base.as_ptr(), &sizes, spec)? };
        cleanup.armed = false;
        Ok(segment)
    }

    /// Attaches to the shared segment `name`, checking that it holds the
    /// buffer type `expected` (name, hash and data size).
    ///
    /// Fails with [`SegmentError::TypeMismatch`] when the type differs, and
    /// with the errors of [`Segment::open_shared`].
    pub fn attach_shared(name: &str, expected: &SegmentSpec) -> Result<Segment, SegmentError> {
        Sizes::for_spec(name, expected)?;
        let segment = Self::open_shared(name)?;
        // SAFETY: the header was validated by `open_shared`.
        let found_type = unsafe { read_type_name(segment.base.as_ptr()) }.unwrap_or_default();
        if found_type != expected.type_name.as_bytes()
            || segment.type_hash != expected.type_hash
            || segment.data_size != expected.data_size
        {
            return Err(SegmentError::TypeMismatch {
                name: name.to_owned(),
                expected_type: expected.type_name.to_owned(),
                expected_hash: expected.type_hash,
                found_type: String::from_utf8_lossy(&found_type).into_owned(),
                found_hash: segment.type_hash,
            });
        }
        Ok(segment)
    }

    /// Attaches to the shared segment `name` whatever type it holds (for
    /// tools that read the type from the header).
    ///
    /// Fails with [`SegmentError::NotFound`], [`SegmentError::NotInitialized`]
    /// (still being created), [`SegmentError::BadMagic`] (not a segment),
    /// [`SegmentError::BadVersion`] or [`SegmentError::Corrupt`].
    ///
    /// The file must not be truncated while mapped (the process would get
    /// `SIGBUS`); segments made by this SDK never are.
    pub fn open_shared(name: &str) -> Result<Segment, SegmentError> {
        let path = shm_path(name)?;
        let fd = shm_open(name, &path, libc::O_RDWR | libc::O_CLOEXEC, 0)?;
        let mut stat = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `stat` is writable storage for a `struct stat`.
        if unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
            return Err(io_error(name, "fstat", io::Error::last_os_error()));
        }
        // SAFETY: `fstat` succeeded, so it filled `stat`.
        let size = unsafe { stat.assume_init() }.st_size;
        if size == 0 {
            // Created, not yet sized by `ftruncate`.
            return Err(SegmentError::NotInitialized {
                name: name.to_owned(),
            });
        }
        let Ok(file_len) = usize::try_from(size) else {
            return Err(SegmentError::Corrupt {
                name: name.to_owned(),
                reason: format!("its size {size} is invalid"),
            });
        };
        let mapping = Mapping::map(&fd, file_len, name)?;
        drop(fd);
        // SAFETY: a page-aligned mapping of `file_len` readable bytes.
        let info = unsafe { check_header(mapping.base.as_ptr(), file_len, name)? };
        let (base, map_len) = mapping.into_raw();
        let backing = Backing::Shared {
            name: name.to_owned(),
            map_len,
        };
        Ok(Segment::assemble(
            base,
            &Sizes::of_header(&info),
            info.type_hash,
            backing,
        ))
    }

    /// A borrowed view of a segment allocated or mapped elsewhere in this
    /// process (for example one whose base address was passed over FFI).
    /// The header is checked as by [`Segment::open_shared`]; dropping the
    /// view does nothing.
    ///
    /// # Safety
    /// `base` must point to `len` bytes that are readable and writable, that
    /// stay allocated (or mapped) and do not move for as long as the returned
    /// `Segment` lives, and that hold a segment initialised by this SDK (or
    /// by a compatible writer) — or at least memory whose first 8 bytes may
    /// be read atomically. Whoever owns the memory must not free it while
    /// the returned view (or one of its [`SegmentGuard`]s) exists.
    pub unsafe fn from_raw(base: *mut u8, len: usize) -> Result<Segment, SegmentError> {
        let label = format!("borrowed@{base:p}");
        let Some(nn) = NonNull::new(base) else {
            return Err(SegmentError::BadPointer {
                name: label,
                reason: "the base pointer is null",
            });
        };
        if base as usize % DATA_ALIGN != 0 {
            return Err(SegmentError::BadPointer {
                name: label,
                reason: "the base pointer is not aligned to 64 bytes",
            });
        }
        // SAFETY: non-null and aligned (checked), `len` bytes readable
        // (caller's contract).
        let info = unsafe { check_header(base, len, &label)? };
        Ok(Segment::assemble(
            nn,
            &Sizes::of_header(&info),
            info.type_hash,
            Backing::Borrowed,
        ))
    }

    /// Removes the shared segment `name` (processes that attached keep
    /// their mappings). Fails with [`SegmentError::NotFound`] if there is none.
    pub fn unlink(name: &str) -> Result<(), SegmentError> {
        let path = shm_path(name)?;
        // SAFETY: `path` is a NUL-terminated string.
        if unsafe { libc::shm_unlink(path.as_ptr()) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        Err(if err.raw_os_error() == Some(libc::ENOENT) {
            SegmentError::NotFound {
                name: name.to_owned(),
            }
        } else {
            io_error(name, "shm_unlink", err)
        })
    }

    /// Names of the shared memory objects whose name starts with `prefix`,
    /// sorted. They are not necessarily segments: open them to find out.
    pub fn list_shared(prefix: &str) -> Result<Vec<String>, SegmentError> {
        let entries = std::fs::read_dir(SHM_DIR).map_err(|e| io_error(SHM_DIR, "listing", e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(SHM_DIR, "listing", e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && name.starts_with(prefix) && validate_name(&name).is_ok() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The shared memory name (without the leading `/`), for shared segments.
    pub fn name(&self) -> Option<&str> {
        match &self.backing {
            Backing::Shared { name, .. } => Some(name),
            Backing::Heap(_) | Backing::Borrowed => None,
        }
    }

    /// Whether the segment is a shared memory mapping made by this value.
    pub fn is_shared(&self) -> bool {
        matches!(self.backing, Backing::Shared { .. })
    }

    /// Start of the segment (the header).
    #[inline]
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Length of the segment in bytes (header, data and spec).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a segment holds at least its header.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the data (the buffer struct), aligned to [`DATA_ALIGN`].
    /// Access it through raw pointers only, while holding [`Segment::lock`].
    #[inline]
    pub fn data(&self) -> *mut u8 {
        // SAFETY: SEGMENT_DATA_OFFSET <= len (checked at creation/attach).
        unsafe { self.base.as_ptr().add(SEGMENT_DATA_OFFSET) }
    }

    /// Size of the data in bytes.
    #[inline]
    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// Name of the buffer type (copied out of the header).
    pub fn type_name(&self) -> String {
        // SAFETY: the header lies within the segment.
        let name = unsafe { read_type_name(self.base.as_ptr()) }.unwrap_or_default();
        String::from_utf8_lossy(&name).into_owned()
    }

    /// Hash of the buffer type.
    #[inline]
    pub fn type_hash(&self) -> u64 {
        self.type_hash
    }

    /// The type's catalog spec JSON (copied out of the segment; invalid
    /// UTF-8 is replaced).
    pub fn spec_json(&self) -> String {
        let mut bytes = vec![0u8; self.spec_len];
        // SAFETY: `spec_offset + spec_len <= len` was checked when the
        // segment was made or attached; the destination is a fresh buffer.
        unsafe {
            ptr::copy_nonoverlapping(
                self.base.as_ptr().add(self.spec_offset),
                bytes.as_mut_ptr(),
                self.spec_len,
            );
        }
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Process id of the segment's creator.
    pub fn creator_pid(&self) -> i32 {
        // SAFETY: the member lies within the header; read through a raw pointer.
        unsafe { addr_of!((*self.base.as_ptr().cast::<Header>()).creator_pid).read() }
    }

    /// The whole header, decoded.
    pub fn header_info(&self) -> HeaderInfo {
        let h = self.base.as_ptr().cast::<Header>();
        // SAFETY: the members lie within the header; read through raw pointers.
        unsafe {
            HeaderInfo {
                version: addr_of!((*h).version).read(),
                header_size: addr_of!((*h).header_size).read(),
                data_offset: SEGMENT_DATA_OFFSET,
                data_size: self.data_size,
                type_hash: self.type_hash,
                spec_offset: self.spec_offset,
                spec_len: self.spec_len,
                type_name: self.type_name(),
                creator_pid: addr_of!((*h).creator_pid).read(),
            }
        }
    }

    /// A label for messages: the shm name, or `local:<type>` / `borrowed:<type>`.
    fn label(&self) -> String {
        match &self.backing {
            Backing::Shared { name, .. } => name.clone(),
            Backing::Heap(_) => format!("local:{}", self.type_name()),
            Backing::Borrowed => format!("borrowed:{}", self.type_name()),
        }
    }

    #[inline]
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the mutex lies within the header.
        unsafe { self.base.as_ptr().add(header_offsets::MUTEX).cast() }
    }

    /// Locks the segment's mutex (recursive: a thread may lock it again
    /// while holding it). Released when the guard is dropped.
    ///
    /// If the previous holder died while holding the lock, the lock is
    /// recovered, a warning is logged and [`SegmentGuard::recovered`] is
    /// `true`: the data may be half-written. Fails with
    /// [`SegmentError::LockUnrecoverable`] or [`SegmentError::Lock`].
    #[inline]
    pub fn lock(&self) -> Result<SegmentGuard<'_>, SegmentError> {
        // SAFETY: the mutex was initialised by the segment's creator before
        // publishing the magic, and stays in place while `self` lives.
        let rc = unsafe { libc::pthread_mutex_lock(self.mutex()) };
        if rc == 0 {
            Ok(SegmentGuard {
                segment: self,
                recovered: false,
                _not_send: PhantomData,
            })
        } else {
            self.lock_failed(rc)
        }
    }

    /// Like [`Segment::lock`], but gives up after `timeout` (another
    /// process may hold the lock for long, e.g. stopped in a debugger):
    /// `Ok(None)` when the time ran out.
    pub fn lock_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<SegmentGuard<'_>>, SegmentError> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
        let total_ns = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
        let deadline = libc::timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(timeout.as_secs().min(i32::MAX as u64) as libc::time_t)
                .saturating_add((total_ns / 1_000_000_000) as libc::time_t),
            tv_nsec: (total_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: as in `lock`; `deadline` is a valid timespec.
        let rc = unsafe { libc::pthread_mutex_timedlock(self.mutex(), &deadline) };
        match rc {
            0 => Ok(Some(SegmentGuard {
                segment: self,
                recovered: false,
                _not_send: PhantomData,
            })),
            libc::ETIMEDOUT => Ok(None),
            rc => self.lock_failed(rc).map(Some),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_failed(&self, rc: i32) -> Result<SegmentGuard<'_>, SegmentError> {
        match rc {
            libc::EOWNERDEAD => {
                // SAFETY: we now hold the mutex in the inconsistent state,
                // which is what `pthread_mutex_consistent` requires.
                let rc = unsafe { libc::pthread_mutex_consistent(self.mutex()) };
                if rc != 0 {
                    // SAFETY: we hold the mutex.
                    unsafe { libc::pthread_mutex_unlock(self.mutex()) };
                    return Err(SegmentError::Lock {
                        name: self.label(),
                        errno: rc,
                    });
                }
                log::warn!(
                    "segment `{}`: previous holder (a process that died) left the lock; recovered",
                    self.label()
                );
                Ok(SegmentGuard {
                    segment: self,
                    recovered: true,
                    _not_send: PhantomData,
                })
            }
            libc::ENOTRECOVERABLE => Err(SegmentError::LockUnrecoverable { name: self.label() }),
            errno => Err(SegmentError::Lock {
                name: self.label(),
                errno,
            }),
        }
    }

    /// Whether a live thread of this process holds the mutex (read from the
    /// robust futex word, which holds the owner's thread id).
    fn lock_held_in_this_process(&self) -> bool {
        // SAFETY: the futex word is an aligned u32 inside the mutex, which
        // lies within the header; others only access it atomically.
        let word = unsafe {
            AtomicU32::from_ptr(
                self.mutex()
                    .cast::<u8>()
                    .add(FUTEX_WORD_OFFSET)
                    .cast::<u32>(),
            )
        }
        .load(Ordering::Relaxed);
        let tid = word & FUTEX_TID_MASK;
        if tid == 0 {
            return false;
        }
        // SAFETY: `gettid` has no preconditions.
        if tid as libc::pid_t == unsafe { libc::gettid() } {
            return true;
        }
        std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if matches!(self.backing, Backing::Borrowed) {
            return;
        }
        // A leaked guard (`mem::forget`) leaves the mutex on its thread's
        // robust list, which the C library and the kernel write through:
        // keep the memory rather than free it under them.
        if self.lock_held_in_this_process() {
            log::warn!(
                "segment `{}` dropped while a thread of this process holds its lock (a leaked \
                 SegmentGuard); its memory is leaked",
                self.label()
            );
            return;
        }
        match &self.backing {
            // SAFETY: allocated by `alloc_zeroed` with this layout, and no
            // guard can outlive `self`.
            Backing::Heap(layout) => unsafe { alloc::dealloc(self.base.as_ptr(), *layout) },
            // SAFETY: exactly the range `mmap` returned; no guard can outlive `self`.
            Backing::Shared { map_len, .. } => unsafe {
                libc::munmap(self.base.as_ptr().cast(), *map_len);
            },
            Backing::Borrowed => {}
        }
    }
}

/// The held lock of a [`Segment`] ([`Segment::lock`]); unlocks on drop.
///
/// Not `Send`: a pthread mutex must be unlocked by the thread that locked it.
pub struct SegmentGuard<'a> {
    segment: &'a Segment,
    recovered: bool,
    _not_send: PhantomData<*const ()>,
}

impl SegmentGuard<'_> {
    /// Whether this lock was recovered from a holder that died holding it
    /// (the data may be inconsistent).
    #[inline]
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The locked segment.
    #[inline]
    pub fn segment(&self) -> &Segment {
        self.segment
    }
}

impl std::fmt::Debug for SegmentGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentGuard")
            .field("segment", &self.segment.label())
            .field("recovered", &self.recovered)
            .finish()
    }
}

impl Drop for SegmentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex (the guard is not Send) and
        // the segment outlives the guard.
        unsafe { libc::pthread_mutex_unlock(self.segment.mutex()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::AtomicUsize;
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    const TEST_SPEC: SegmentSpec<'static> = SegmentSpec {
        type_name: "test-counter",
        type_hash: 0x1234_5678_9abc_def0,
        data_size: 64,
        data_align: 8,
        spec_json: r#"{"params":[{"name":"count","type":"uint64"}],"note":"é"}"#,
    };
    const ENV: &str = "BSE_SEGMENT";
    const ITERATIONS: u64 = 100_000;
    const MARKER: u64 = 0xdead_beef_cafe_f00d;

    fn unique(tag: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("bsetest-{}-{tag}-{n}", std::process::id())
    }

    /// Unlinks a test segment at the end of the test, even on failure.
    struct Unlinker(String);
    impl Drop for Unlinker {
        fn drop(&mut self) {
            let _ = Segment::unlink(&self.0);
        }
    }

    fn read_u64(seg: &Segment) -> u64 {
        // SAFETY: the data is 64-aligned and at least 8 bytes long.
        unsafe { ptr::read(seg.data().cast::<u64>()) }
    }

    fn write_u64(seg: &Segment, v: u64) {
        // SAFETY: as in `read_u64`.
        unsafe { ptr::write(seg.data().cast::<u64>(), v) }
    }

    fn increment(seg: &Segment, times: u64) {
        for _ in 0..times {
            let _guard = seg.lock().unwrap();
            write_u64(seg, read_u64(seg) + 1);
        }
    }

    /// Counts this process in at the data's second `u64` and waits until
    /// `total` processes have, so that they really contend.
    fn rendezvous(seg: &Segment, total: u64) {
        // SAFETY: the second u64 of the data is aligned and inside the
        // segment; every process accesses it only atomically.
        let ready = unsafe { AtomicU64::from_ptr(seg.data().cast::<u64>().add(1)) };
        ready.fetch_add(1, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ready.load(Ordering::SeqCst) < total {
            assert!(std::time::Instant::now() < deadline, "rendezvous timed out");
            std::thread::yield_now();
        }
    }

    fn spawn_child(test: &str, name: &str) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &crate::test_support::test_path(module_path!(), test),
                "--ignored",
                "--nocapture",
            ])
            .env(ENV, name)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn local_segment() {
        let seg = Segment::new_local(&TEST_SPEC).unwrap();
        assert!(!seg.is_shared());
        assert_eq!(seg.name(), None);
        assert_eq!(seg.data() as usize % DATA_ALIGN, 0);
        assert_eq!(
            seg.data() as usize - seg.base() as usize,
            SEGMENT_DATA_OFFSET
        );
        assert_eq!(seg.data_size(), 64);
        assert_eq!(seg.type_name(), "test-counter");
        assert_eq!(seg.type_hash(), TEST_SPEC.type_hash);
        assert_eq!(seg.spec_json(), TEST_SPEC.spec_json);
        assert_eq!(seg.creator_pid() as u32, std::process::id());
        let info = seg.header_info();
        assert_eq!(info.version, SEGMENT_VERSION);
        assert_eq!(info.header_size as usize, HEADER_SIZE);
        assert_eq!(info.data_offset, SEGMENT_DATA_OFFSET);
        assert_eq!(info.spec_offset, SEGMENT_DATA_OFFSET + 64);
        assert_eq!(info.spec_len, TEST_SPEC.spec_json.len());
        assert_eq!(seg.len(), info.total_len());
        // SAFETY: the magic lies at offset 0 of the segment.
        let magic = unsafe { ptr::read(seg.base().cast::<u64>()) };
        assert_eq!(magic.to_le_bytes(), *b"BSEMBUF1");

        let outer = seg.lock().unwrap();
        let inner = seg.lock().unwrap();
        assert!(!outer.recovered() && !inner.recovered());
        write_u64(&seg, 7);
        drop(inner);
        drop(outer);
        assert_eq!(read_u64(&seg), 7);

        // A borrowed view sees the same memory and leaves it alone on drop.
        // SAFETY: `seg` outlives the view and is a valid segment.
        let view = unsafe { Segment::from_raw(seg.base(), seg.len()) }.unwrap();
        assert_eq!(read_u64(&view), 7);
        assert_eq!(view.type_name(), "test-counter");
        drop(view.lock().unwrap());
        drop(view);
        assert_eq!(read_u64(&seg), 7);
        // SAFETY: as above; the length is too short.
        let short = unsafe { Segment::from_raw(seg.base(), seg.len() - 1) };
        assert!(
            matches!(short, Err(SegmentError::Corrupt { .. })),
            "{short:?}"
        );
        // SAFETY: as above; the pointer is misaligned (the error is reported first).
        let odd = unsafe { Segment::from_raw(seg.base().add(8), 8) };
        assert!(
            matches!(odd, Err(SegmentError::BadPointer { .. })),
            "{odd:?}"
        );
    }

    #[test]
    fn bad_specs_are_errors() {
        let long = "x".repeat(MAX_TYPE_NAME + 1);
        for spec in [
            SegmentSpec {
                type_name: &long,
                ..TEST_SPEC
            },
            SegmentSpec {
                type_name: "",
                ..TEST_SPEC
            },
            SegmentSpec {
                data_align: 128,
                ..TEST_SPEC
            },
            SegmentSpec {
                data_align: 3,
                ..TEST_SPEC
            },
            SegmentSpec {
                data_size: usize::MAX - 10,
                ..TEST_SPEC
            },
        ] {
            let err = Segment::new_local(&spec).unwrap_err();
            assert!(matches!(err, SegmentError::BadSpec { .. }), "{err:?}");
        }
        let max = "y".repeat(MAX_TYPE_NAME);
        let seg = Segment::new_local(&SegmentSpec {
            type_name: &max,
            ..TEST_SPEC
        })
        .unwrap();
        assert_eq!(seg.type_name(), max);
    }

    #[test]
    fn leaked_guard_keeps_memory() {
        let seg = Segment::new_local(&TEST_SPEC).unwrap();
        std::mem::forget(seg.lock().unwrap());
        drop(seg); // must not free memory that is on this thread's robust list
    }

    #[test]
    fn shared_round_trip() {
        let name = unique("shared");
        let _unlink = Unlinker(name.clone());
        let a = Segment::create_shared(&name, &TEST_SPEC).unwrap();
        assert!(a.is_shared());
        assert_eq!(a.name(), Some(name.as_str()));
        let mode = std::fs::metadata(format!("{SHM_DIR}/{name}"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let b = Segment::attach_shared(&name, &TEST_SPEC).unwrap();
        assert_ne!(a.base(), b.base());
        write_u64(&a, 0x0102_0304_0506_0708);
        assert_eq!(read_u64(&b), 0x0102_0304_0506_0708);
        assert_eq!(b.header_info(), a.header_info());
        assert_eq!(b.spec_json(), TEST_SPEC.spec_json);
        assert_eq!(b.creator_pid() as u32, std::process::id());
        let g = b.lock().unwrap();
        let g2 = a.lock().unwrap(); // same thread, other mapping: recursive
        drop(g2);
        drop(g);

        let opened = Segment::open_shared(&name).unwrap();
        assert_eq!(opened.type_name(), "test-counter");
        assert!(
            Segment::list_shared(&format!("bsetest-{}-shared-", std::process::id()))
                .unwrap()
                .contains(&name)
        );

        let err = Segment::create_shared(&name, &TEST_SPEC).unwrap_err();
        assert!(matches!(err, SegmentError::Exists { .. }), "{err:?}");
        assert!(err.to_string().contains(&name));

        let other = SegmentSpec {
            type_name: "other-type",
            type_hash: 42,
            ..TEST_SPEC
        };
        let err = Segment::attach_shared(&name, &other).unwrap_err();
        assert!(matches!(err, SegmentError::TypeMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("test-counter") && msg.contains("other-type") && msg.contains(&name),
            "{msg}"
        );
        let err = Segment::attach_shared(
            &name,
            &SegmentSpec {
                type_hash: 1,
                ..TEST_SPEC
            },
        )
        .unwrap_err();
        assert!(matches!(err, SegmentError::TypeMismatch { .. }), "{err:?}");

        drop((a, b, opened));
        Segment::unlink(&name).unwrap();
        let err = Segment::unlink(&name).unwrap_err();
        assert!(matches!(err, SegmentError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn missing_and_bad_names() {
        let name = unique("missing");
        let err = Segment::attach_shared(&name, &TEST_SPEC).unwrap_err();
        assert!(matches!(err, SegmentError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains(&name));
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "/lead",
            "a/b",
            "nul\0",
            "sp ace",
            "é",
            ".",
            "..",
            long.as_str(),
        ] {
            for err in [
                Segment::create_shared(bad, &TEST_SPEC).unwrap_err(),
                Segment::attach_shared(bad, &TEST_SPEC).unwrap_err(),
                Segment::open_shared(bad).unwrap_err(),
                Segment::unlink(bad).unwrap_err(),
            ] {
                assert!(
                    matches!(err, SegmentError::BadName { .. }),
                    "{bad:?}: {err:?}"
                );
            }
        }
        validate_name(&"a".repeat(MAX_NAME_LEN)).unwrap();
        validate_name("Ok.name_-1").unwrap();
    }

    /// Creates a plain shared memory object holding `bytes`.
    fn raw_shm(name: &str, bytes: &[u8]) {
        let path = shm_path(name).unwrap();
        // SAFETY: NUL-terminated path; the descriptor is closed below.
        let fd = unsafe {
            libc::shm_open(
                path.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                0o600,
            )
        };
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        // SAFETY: `bytes` is readable for its length; `fd` is ours.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        assert_eq!(written, bytes.len() as isize);
    }

    #[test]
    fn foreign_files_are_rejected() {
        let garbage = unique("garbage");
        let _u1 = Unlinker(garbage.clone());
        raw_shm(&garbage, &[0xab; 4096]);
        let err = Segment::open_shared(&garbage).unwrap_err();
        assert!(matches!(err, SegmentError::BadMagic { .. }), "{err:?}");
        assert!(err.to_string().contains(&garbage));
        let err = Segment::attach_shared(&garbage, &TEST_SPEC).unwrap_err();
        assert!(matches!(err, SegmentError::BadMagic { .. }), "{err:?}");

        let empty = unique("empty");
        let _u2 = Unlinker(empty.clone());
        raw_shm(&empty, &[]);
        let err = Segment::open_shared(&empty).unwrap_err();
        assert!(
            matches!(err, SegmentError::NotInitialized { .. }),
            "{err:?}"
        );

        let tiny = unique("tiny");
        let _u3 = Unlinker(tiny.clone());
        raw_shm(&tiny, &[1, 2, 3]);
        let err = Segment::open_shared(&tiny).unwrap_err();
        assert!(matches!(err, SegmentError::Corrupt { .. }), "{err:?}");

        // A valid header whose sizes claim more than the file holds.
        let truncated = unique("truncated");
        let _u4 = Unlinker(truncated.clone());
        let local = Segment::new_local(&TEST_SPEC).unwrap();
        let mut bytes = vec![0u8; local.len()];
        // SAFETY: copies the local segment's bytes into a fresh buffer.
        unsafe { ptr::copy_nonoverlapping(local.base(), bytes.as_mut_ptr(), local.len()) };
        raw_shm(&truncated, &bytes[..local.len() - 1]);
        let err = Segment::open_shared(&truncated).unwrap_err();
        assert!(matches!(err, SegmentError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn two_processes_contend() {
        let name = unique("contend");
        let _unlink = Unlinker(name.clone());
        let seg = Segment::create_shared(&name, &TEST_SPEC).unwrap();
        let children: Vec<Child> = (0..2)
            .map(|_| spawn_child("child_increment", &name))
            .collect();
        rendezvous(&seg, 3);
        increment(&seg, ITERATIONS);
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "child failed: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _guard = seg.lock().unwrap();
        assert_eq!(read_u64(&seg), 3 * ITERATIONS);
    }

    /// Child of `two_processes_contend` (does nothing unless `BSE_SEGMENT` is set).
    #[test]
    #[ignore]
    fn child_increment() {
        let Ok(name) = std::env::var(ENV) else {
            return;
        };
        let seg = Segment::attach_shared(&name, &TEST_SPEC).unwrap();
        rendezvous(&seg, 3);
        increment(&seg, ITERATIONS);
    }

    #[test]
    fn dead_holder_is_recovered() {
        let name = unique("dead");
        let _unlink = Unlinker(name.clone());
        let seg = Segment::create_shared(&name, &TEST_SPEC).unwrap();
        let out = spawn_child("child_lock_and_die", &name)
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "child failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(read_u64(&seg), MARKER, "the child did not take the lock");

        let seg = Arc::new(seg);
        let (tx, rx) = mpsc::channel();
        let locker = Arc::clone(&seg);
        std::thread::spawn(move || {
            let first = locker.lock().map(|g| g.recovered());
            let second = locker.lock().map(|g| g.recovered());
            let _ = tx.send((first, second));
        });
        let (first, second) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("locking after the holder died hung");
        assert!(
            first.unwrap(),
            "the first lock was not reported as recovered"
        );
        assert!(
            !second.unwrap(),
            "the second lock was reported as recovered"
        );
    }

    /// Child of `dead_holder_is_recovered`: locks, writes a marker and exits
    /// without unlocking (does nothing unless `BSE_SEGMENT` is set).
    #[test]
    #[ignore]
    fn child_lock_and_die() {
        let Ok(name) = std::env::var(ENV) else {
            return;
        };
        let seg = Segment::attach_shared(&name, &TEST_SPEC).unwrap();
        let guard = seg.lock().unwrap();
        write_u64(&seg, MARKER);
        std::mem::forget(guard);
        // SAFETY: ends the process at once, lock held; nothing else to clean up.
        unsafe { libc::_exit(0) };
    }
}
