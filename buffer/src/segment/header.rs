//! What a segment's header holds: the type it stores ([`SegmentSpec`]), the
//! header decoded ([`HeaderInfo`]), the sizes checked for a spec, and the
//! unsafe code that writes a new header and checks an existing one.

use std::io;
use std::mem::size_of;
use std::ptr::{self, addr_of, addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{io_error, SegmentError};
use super::format::{
    read_type_name, Header, DATA_ALIGN, HEADER_SIZE, MAX_TYPE_NAME, SEGMENT_DATA_OFFSET,
    SEGMENT_MAGIC, SEGMENT_VERSION,
};
use super::memory::{Backing, Segment};
use super::mutex::{check_mutex, init_mutex};

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

/// Sizes of a segment for a spec, checked.
pub(super) struct Sizes {
    pub(super) data_size: usize,
    pub(super) spec_offset: usize,
    pub(super) spec_len: usize,
    pub(super) len: usize,
}

impl Sizes {
    /// The sizes a checked header gives.
    pub(super) fn of_header(info: &HeaderInfo) -> Sizes {
        Sizes {
            data_size: info.data_size,
            spec_offset: info.spec_offset,
            spec_len: info.spec_len,
            len: info.total_len(),
        }
    }

    pub(super) fn for_spec(label: &str, spec: &SegmentSpec) -> Result<Sizes, SegmentError> {
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

/// Fills the header, the spec and the mutex of zeroed memory, `magic` last.
///
/// # Safety
/// `base` must be aligned to [`DATA_ALIGN`], valid for writes of `sizes.len`
/// bytes, zeroed, and not yet visible as a segment to anyone else (its
/// magic is zero).
pub(super) unsafe fn init_segment(
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
pub(super) unsafe fn check_header(
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
    // SAFETY: the mutex lies inside the readable header, aligned (the base
    // is aligned to 8 and the mutex's offset is a multiple of 8).
    unsafe { check_mutex(base.add(super::format::header_offsets::MUTEX)) }.map_err(corrupt)?;
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

impl Segment {
    /// The segment at `base` with the (checked) `sizes`.
    pub(super) fn assemble(
        base: NonNull<u8>,
        sizes: &Sizes,
        type_hash: u64,
        backing: Backing,
    ) -> Segment {
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
}
