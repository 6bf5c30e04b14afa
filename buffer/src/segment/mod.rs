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
//! Attaching checks the mutex bytes that can be checked without taking it
//! ([`Segment::check_lock`]): its kind must be the one this format makes,
//! its owner field and lock word must hold plausible thread ids, and a lock
//! word naming a thread that does not exist must carry the kernel's
//! owner-died bit. A segment that fails is refused as
//! [`SegmentError::Corrupt`], so damaged lock bytes never make a locker wait
//! forever or glibc abort. [`Segment::lock_holder`] tells who holds the lock
//! without taking it; [`Segment::lock_timeout`] waits a bounded time.
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
//!
//! # Modules
//!
//! - `format`: the constants and the header struct (the layout above).
//! - `header`: [`SegmentSpec`], [`HeaderInfo`]; writing and checking a header.
//! - `memory`: [`Segment`], its accessors and its drop.
//! - `local`: heap segments and borrowed views ([`Segment::new_local`],
//!   [`Segment::from_raw`]).
//! - `shm`: POSIX shared memory ([`Segment::create_shared`], attach, list,
//!   unlink; [`validate_name`]).
//! - `mutex`: the robust mutex and [`SegmentGuard`].
//! - `error`: [`SegmentError`].

mod error;
mod format;
mod header;
mod local;
mod memory;
mod mutex;
mod shm;

pub use error::SegmentError;
pub use format::{
    header_offsets, DATA_ALIGN, HEADER_SIZE, MAX_NAME_LEN, MAX_TYPE_NAME, SEGMENT_DATA_OFFSET,
    SEGMENT_MAGIC, SEGMENT_VERSION, SHM_DIR,
};
pub use header::{HeaderInfo, SegmentSpec};
pub use memory::Segment;
pub use mutex::{LockHolder, SegmentGuard};
pub use shm::validate_name;

#[cfg(test)]
mod tests;
