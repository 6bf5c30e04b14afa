//! The segment format's constants and the header struct, the one
//! definition of the header layout (the module docs' table; the offsets in
//! [`header_offsets`] are derived from it).

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
use std::mem::offset_of;
use std::mem::size_of;
use std::ptr;

/// Value of the header's `magic` member: the bytes `BSEMBUF1` read as a
/// little-endian `u64`.
pub const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"BSEMBUF1");

/// Version of the segment format described in the [module docs](crate::segment).
pub const SEGMENT_VERSION: u32 = 1;

/// Alignment of the data (the buffer struct) and of a segment's base.
pub const DATA_ALIGN: usize = 64;

/// Longest type name in bytes (the header's field is one byte longer, for the NUL).
pub const MAX_TYPE_NAME: usize = 63;

/// Longest segment name in bytes (see [`validate_name`](super::validate_name)).
pub const MAX_NAME_LEN: usize = 250;

/// Directory in which Linux keeps POSIX shared memory objects.
pub const SHM_DIR: &str = "/dev/shm";

/// The segment header (see the module docs). Never referenced with `&`:
/// only its layout and `addr_of!`-style member pointers are used.
#[repr(C)]
pub(super) struct Header {
    pub(super) magic: u64,
    pub(super) version: u32,
    pub(super) header_size: u32,
    pub(super) data_offset: u64,
    pub(super) data_size: u64,
    pub(super) type_hash: u64,
    pub(super) spec_offset: u64,
    pub(super) spec_len: u64,
    pub(super) type_name: [u8; MAX_TYPE_NAME + 1],
    pub(super) creator_pid: i32,
    pub(super) _reserved: u32,
    pub(super) mutex: libc::pthread_mutex_t,
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

/// Copies the type name (up to its NUL) out of a header; `None` without a NUL.
///
/// # Safety
/// `base` must be valid for reads of [`HEADER_SIZE`] bytes.
pub(super) unsafe fn read_type_name(base: *const u8) -> Option<Vec<u8>> {
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
