//! Segments in this process's own memory: a new one on the heap, or a view
//! of one that lives elsewhere in the process (handed over FFI).

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use super::error::SegmentError;
use super::format::DATA_ALIGN;
use super::header::{check_header, init_segment, SegmentSpec, Sizes};
use super::memory::{Backing, Segment};

impl Segment {
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

    /// A borrowed view of a segment allocated or mapped elsewhere in this
    /// process (for example one whose base address was passed over FFI).
    /// The header is checked as by [`Segment::open_shared`]; dropping the
    /// view does nothing.
    ///
    /// # Safety
    /// `base` must point to `len` bytes that are readable and writable, that
    /// stay allocated (or mapped) and do not move for as long as the returned
    /// `Segment` lives, and that hold a segment initialised by this crate (or
    /// by a compatible writer) — or at least memory whose first 8 bytes may
    /// be read atomically. Whoever owns the memory must not free it while
    /// the returned view (or one of its [`SegmentGuard`](super::SegmentGuard)s) exists.
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
}
