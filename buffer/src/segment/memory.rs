//! [`Segment`]: one segment's memory (heap, shared mapping or borrowed),
//! what it reads from the header, and freeing or unmapping it on drop.

use std::alloc::{self, Layout};
use std::ptr::{self, addr_of, NonNull};

use super::format::{read_type_name, Header, SEGMENT_DATA_OFFSET};

/// Where a segment's memory comes from.
pub(super) enum Backing {
    /// `alloc_zeroed` with this layout; freed on drop.
    Heap(Layout),
    /// A `MAP_SHARED` mapping of `/dev/shm/<name>` of `map_len` bytes; unmapped on drop.
    Shared { name: String, map_len: usize },
    /// Memory owned elsewhere ([`Segment::from_raw`]); left alone on drop.
    Borrowed,
}

/// The memory that holds one device buffer: header, data and spec (see the
/// [module docs](crate::segment)).
///
/// Dropping a segment frees or unmaps its memory; it never removes a shared
/// segment's name (that is its owner's job: [`Segment::unlink`]).
pub struct Segment {
    pub(super) base: NonNull<u8>,
    pub(super) len: usize,
    pub(super) data_size: usize,
    pub(super) spec_offset: usize,
    pub(super) spec_len: usize,
    pub(super) type_hash: u64,
    pub(super) backing: Backing,
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

    /// Start of the data (the buffer struct), aligned to [`DATA_ALIGN`](super::DATA_ALIGN).
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

    /// A label for messages: the shm name, or `local:<type>` / `borrowed:<type>`.
    pub(super) fn label(&self) -> String {
        match &self.backing {
            Backing::Shared { name, .. } => name.clone(),
            Backing::Heap(_) => format!("local:{}", self.type_name()),
            Backing::Borrowed => format!("borrowed:{}", self.type_name()),
        }
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
