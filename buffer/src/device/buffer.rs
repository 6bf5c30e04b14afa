//! [`Buffer`]: one buffer's struct in a segment. Making, attaching and
//! closing buffers, the valid flag, the lock, and the raw copies in and out
//! of the segment that every operation is built on.

use std::fmt;
use std::ptr;
use std::sync::Arc;

use super::error::{lock_error, BufferError};
use super::types::BufferType;
use crate::catalog::{Catalog, CatalogError};
use crate::segment::{Segment, SegmentError, SegmentGuard};

///
/// The process that creates a buffer owns it: creating sets the valid flag,
/// closing (or dropping) the owner clears it. Attached buffers leave the
/// flag alone. A `Buffer` is `Send + Sync`; its operations serialize on the
/// segment's mutex, which is recursive, so a [`Buffer::transaction`] can
/// group several operations.
pub struct Buffer {
    pub(super) segment: Segment,
    pub(super) ty: Arc<BufferType>,
    owner: bool,
    pub(super) label: String,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("name", &self.label)
            .field("type", &self.ty.name())
            .field("owner", &self.owner)
            .finish()
    }
}

/// The lock of a buffer held by [`Buffer::transaction`]; released on drop.
pub struct Transaction<'a> {
    guard: SegmentGuard<'a>,
}

impl Transaction<'_> {
    /// Whether taking this transaction's lock recovered it from a holder
    /// that died holding it (another process killed inside a transaction):
    /// what that holder was writing may be half-written. The recovery is
    /// also logged as a warning naming the buffer.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use bitstream_buffer::catalog::Catalog;
    /// # use bitstream_buffer::device::{Buffer, BufferType};
    /// let catalog = Catalog::from_json(r#"{"t": {"params": [{"name": "n", "type": "uint8"}]}}"#).unwrap();
    /// let ty = Arc::new(BufferType::from_catalog(&catalog, "t").unwrap());
    /// let buffer = Buffer::new_local(&ty).unwrap();
    /// let tx = buffer.transaction().unwrap();
    /// assert!(!tx.recovered());
    /// ```
    pub fn recovered(&self) -> bool {
        self.guard.recovered()
    }
}

impl Buffer {
    fn with_segment(
        segment: Segment,
        ty: Arc<BufferType>,
        owner: bool,
    ) -> Result<Buffer, BufferError> {
        let label = match segment.name() {
            Some(name) => name.to_owned(),
            None if owner => format!("{} (process-local)", ty.name()),
            None => format!("{} (mapped by the host)", ty.name()),
        };
        // Every typed access relies on this: the layout's offsets are then
        // all inside the segment's data.
        if ty.layout.size > segment.data_size() {
            return Err(BufferError::LayoutTooLarge {
                buffer: label,
                type_size: ty.layout.size,
                data_size: segment.data_size(),
            });
        }
        let buffer = Buffer {
            segment,
            ty,
            owner,
            label,
        };
        if owner {
            buffer.set_valid_flag(true);
        }
        Ok(buffer)
    }

    /// A new process-local (heap) buffer of `ty`, valid, all zero.
    pub fn new_local(ty: &Arc<BufferType>) -> Result<Buffer, BufferError> {
        let segment = Segment::new_local(&ty.segment_spec())?;
        Self::with_segment(segment, ty.clone(), true)
    }

    /// Creates the shared-memory buffer `name` (`/dev/shm/<name>`, mode
    /// 0600) of `ty`, valid, all zero. Fails if it exists.
    pub fn create_shared(name: &str, ty: &Arc<BufferType>) -> Result<Buffer, BufferError> {
        let segment = Segment::create_shared(name, &ty.segment_spec())?;
        Self::with_segment(segment, ty.clone(), true)
    }

    /// Attaches to the shared buffer `name`, which must hold exactly `ty`
    /// (same catalog spec): another catalog is refused.
    pub fn attach_shared(name: &str, ty: &Arc<BufferType>) -> Result<Buffer, BufferError> {
        let segment = Segment::attach_shared(name, &ty.segment_spec())?;
        Self::with_segment(segment, ty.clone(), false)
    }

    /// Attaches to the shared buffer `name`, reading its type from the spec
    /// its creator stored (for tools that have no catalog).
    pub fn open_shared(name: &str) -> Result<Buffer, BufferError> {
        let segment = Segment::open_shared(name)?;
        let ty = Self::stored_type(&segment, name)?;
        Self::with_segment(segment, Arc::new(ty), false)
    }

    fn stored_type(segment: &Segment, name: &str) -> Result<BufferType, BufferError> {
        let catalog =
            Catalog::from_json(&segment.spec_json()).map_err(|source| BufferError::Catalog {
                buffer: name.to_owned(),
                source: Box::new(source),
            })?;
        let ty = BufferType::from_catalog(&catalog, &segment.type_name())?;
        if ty.hash() != segment.type_hash() || ty.layout.size != segment.data_size() {
            return Err(BufferError::Catalog {
                buffer: name.to_owned(),
                source: Box::new(CatalogError::Json {
                    path: ".".into(),
                    line: 0,
                    column: 0,
                    message: "the stored spec does not match the stored type hash or size".into(),
                }),
            });
        }
        Ok(ty)
    }

    /// A buffer over a segment that lives elsewhere in this process (for
    /// example the host's mapping, handed to a plugin). Not the owner.
    ///
    /// # Safety
    /// `base..base + len` must be a segment made by [`Segment`] (heap or
    /// shared) that stays mapped, and is not freed, while the returned
    /// buffer exists.
    pub unsafe fn from_raw_segment(
        base: *mut u8,
        len: usize,
        ty: &Arc<BufferType>,
    ) -> Result<Buffer, BufferError> {
        // SAFETY: the caller guarantees the region is a live segment.
        let segment = unsafe { Segment::from_raw(base, len)? };
        if segment.type_hash() != ty.hash() {
            return Err(BufferError::Segment(SegmentError::TypeMismatch {
                name: segment.name().unwrap_or("(in-process)").to_owned(),
                expected_type: ty.name().to_owned(),
                expected_hash: ty.hash(),
                found_type: segment.type_name(),
                found_hash: segment.type_hash(),
            }));
        }
        Self::with_segment(segment, ty.clone(), false)
    }

    /// A buffer over a raw region of this process's memory, `base` and
    /// `len` bytes long, holding a segment mapped or allocated elsewhere
    /// (the engine hands a plugin its block's segment this way, as a
    /// pointer and a length). The buffer's type is read from the segment's
    /// stored spec (parsed once per type and process); the buffer is not
    /// the owner. The header is checked (magic, version, sizes, spec) before
    /// anything else is read, and a bad one is an error, not undefined
    /// behaviour.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use bitstream_buffer::catalog::Catalog;
    /// use bitstream_buffer::device::{Buffer, BufferType};
    ///
    /// let catalog = Catalog::from_json(r#"{"t": {"params": [{"name": "n", "type": "uint8"}]}}"#)
    ///     .unwrap();
    /// let owner = Buffer::new_local(&Arc::new(BufferType::from_catalog(&catalog, "t").unwrap()))
    ///     .unwrap();
    /// let segment = owner.segment();
    /// // SAFETY: `owner` keeps the segment allocated for as long as `view` lives.
    /// let view = unsafe { Buffer::from_region(segment.base(), segment.len()) }.unwrap();
    /// view.set("n", 7u8).unwrap();
    /// assert_eq!(owner.get("n").unwrap(), 7u8.into());
    /// ```
    ///
    /// # Safety
    /// - `base` must point to `len` bytes of this process that are readable
    ///   and writable, and stay so, at the same address, for as long as the
    ///   returned buffer lives: whoever owns the memory must not free or
    ///   unmap it before then.
    /// - The bytes must hold a segment made by [`Segment`] (heap or shared)
    ///   or by a writer of the same format, or at least memory whose first
    ///   eight bytes may be read atomically (the magic is read first).
    /// - Other accesses to the segment's data go through its mutex, as
    ///   this crate's do (another process's included).
    pub unsafe fn from_region(base: *mut u8, len: usize) -> Result<Buffer, BufferError> {
        static TYPES: std::sync::Mutex<Vec<Arc<BufferType>>> = std::sync::Mutex::new(Vec::new());
        // SAFETY: the caller guarantees the region is a live segment.
        let segment = unsafe { Segment::from_raw(base, len)? };
        let hash = segment.type_hash();
        let mut types = TYPES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ty = match types.iter().find(|t| t.hash() == hash) {
            Some(t) => t.clone(),
            None => {
                let label = segment.name().unwrap_or("(in-process)").to_owned();
                let t = Arc::new(Self::stored_type(&segment, &label)?);
                types.push(t.clone());
                t
            }
        };
        drop(types);
        Self::with_segment(segment, ty, false)
    }

    /// The buffer's name: its shared-memory name, or `<type> (process-local)`.
    pub fn name(&self) -> &str {
        &self.label
    }

    /// The buffer's type.
    pub fn buffer_type(&self) -> &Arc<BufferType> {
        &self.ty
    }

    /// The segment holding the buffer.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Whether this process created (owns) the buffer.
    pub fn is_owner(&self) -> bool {
        self.owner
    }

    /// Whether the valid flag is set (takes the lock).
    pub fn is_valid(&self) -> Result<bool, BufferError> {
        let _guard = self.segment.lock()?;
        Ok(self.read_u8(0) != 0)
    }

    /// Whether the valid flag is set, read without taking the lock (an
    /// atomic load of the flag byte): a snapshot for listings that must not
    /// wait for a lock another process holds.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use bitstream_buffer::catalog::Catalog;
    /// # use bitstream_buffer::device::{Buffer, BufferType};
    /// let catalog = Catalog::from_json(r#"{"t": {"params": [{"name": "n", "type": "uint8"}]}}"#).unwrap();
    /// let ty = Arc::new(BufferType::from_catalog(&catalog, "t").unwrap());
    /// let buffer = Buffer::new_local(&ty).unwrap();
    /// let _tx = buffer.transaction().unwrap();
    /// assert!(buffer.is_valid_unlocked());
    /// ```
    pub fn is_valid_unlocked(&self) -> bool {
        self.check_range(0, 1);
        // SAFETY: byte 0 of the data is inside the segment (checked above);
        // it is read atomically since a lock holder may be writing it.
        let flag = unsafe { std::sync::atomic::AtomicU8::from_ptr(self.segment.data()) };
        flag.load(std::sync::atomic::Ordering::Acquire) != 0
    }

    /// Sets or clears the valid flag (the owner does this on create and
    /// close; an emulator may mark a device gone).
    pub fn set_valid(&self, valid: bool) -> Result<(), BufferError> {
        let _guard = self.segment.lock()?;
        self.write_u8(0, u8::from(valid));
        Ok(())
    }

    fn set_valid_flag(&self, valid: bool) {
        if let Err(e) = self.set_valid(valid) {
            log::warn!("buffer `{}`: cannot set the valid flag: {e}", self.label);
        }
    }

    /// Sets or clears the valid flag unless the lock stays held by someone
    /// else for longer than `timeout`; answers whether it was set. Owners
    /// closing down use this, so a client stopped inside a transaction
    /// cannot keep them from exiting.
    pub fn set_valid_within(
        &self,
        valid: bool,
        timeout: std::time::Duration,
    ) -> Result<bool, BufferError> {
        match self.segment.lock_timeout(timeout)? {
            Some(_guard) => {
                self.write_u8(0, u8::from(valid));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Closes the buffer: the owner clears the valid flag. (Dropping does
    /// the same; unlinking a shared buffer is the store's or creator's job.)
    pub fn close(self) {}

    /// Takes the buffer's lock and checks the valid flag; other operations
    /// of this thread nest inside it, other threads and processes wait.
    pub fn transaction(&self) -> Result<Transaction<'_>, BufferError> {
        Ok(Transaction {
            guard: self.lock_valid()?,
        })
    }

    #[inline]
    pub(super) fn lock_valid(&self) -> Result<SegmentGuard<'_>, BufferError> {
        let guard = match self.segment.lock() {
            Ok(guard) => guard,
            Err(e) => return Err(lock_error(e)),
        };
        if self.read_u8(0) == 0 {
            return Err(self.invalid());
        }
        Ok(guard)
    }

    #[cold]
    fn invalid(&self) -> BufferError {
        BufferError::Invalid {
            buffer: self.label.clone(),
        }
    }

    // -- raw access: every read and write of the struct goes through these --

    #[inline]
    pub(super) fn check_range(&self, offset: usize, len: usize) {
        // Offsets come from the type's layout, whose size the segment was
        // checked against; this guards the invariant in every build.
        assert!(
            offset + len <= self.segment.data_size(),
            "buffer `{}`: access {offset}+{len} past the struct's {} bytes",
            self.label,
            self.segment.data_size()
        );
    }

    #[inline]
    pub(super) fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        self.check_range(offset, out.len());
        // SAFETY: the range is inside the segment's data (checked above);
        // `out` is our own memory and cannot overlap the segment. Raw copy:
        // no reference to shared memory is formed.
        unsafe {
            ptr::copy_nonoverlapping(self.segment.data().add(offset), out.as_mut_ptr(), out.len())
        }
    }

    #[inline]
    pub(super) fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        self.check_range(offset, bytes.len());
        // SAFETY: as in `read_bytes`; callers hold the segment lock.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), self.segment.data().add(offset), bytes.len())
        }
    }

    /// Reads the `T` at `offset`, an offset from the buffer's layout (a
    /// parameter's slot, the valid flag, the control or metrics block).
    #[inline(always)]
    pub(super) fn read_plain<T: Plain>(&self, offset: usize) -> T {
        debug_assert!(offset + std::mem::size_of::<T>() <= self.segment.data_size());
        // SAFETY: `offset` comes from the layout, and `with_segment` checked
        // that the layout fits in the segment's data, so the read is in
        // bounds. Unaligned raw read: no reference to shared memory formed.
        unsafe { self.segment.data().add(offset).cast::<T>().read_unaligned() }
    }

    /// Writes `v` at `offset`, an offset from the buffer's layout; callers
    /// hold the segment lock.
    #[inline(always)]
    pub(super) fn write_plain<T: Plain>(&self, offset: usize, v: T) {
        debug_assert!(offset + std::mem::size_of::<T>() <= self.segment.data_size());
        // SAFETY: as in `read_plain`.
        unsafe {
            self.segment
                .data()
                .add(offset)
                .cast::<T>()
                .write_unaligned(v)
        }
    }

    /// The scalar of `size` (1, 2, 4 or 8) bytes at `offset`, zero-extended.
    #[inline(always)]
    pub(super) fn read_small(&self, offset: usize, size: usize) -> u64 {
        match size {
            1 => u64::from(self.read_u8(offset)),
            2 => u64::from(self.read_u16(offset)),
            4 => u64::from(u32::from_le(self.read_plain(offset))),
            _ => self.read_u64(offset),
        }
    }

    #[inline(always)]
    pub(super) fn read_u8(&self, offset: usize) -> u8 {
        self.read_plain(offset)
    }

    #[inline(always)]
    pub(super) fn write_u8(&self, offset: usize, v: u8) {
        self.write_plain(offset, v);
    }

    #[inline(always)]
    pub(super) fn read_u16(&self, offset: usize) -> u16 {
        u16::from_le(self.read_plain(offset))
    }

    #[inline(always)]
    pub(super) fn write_u16(&self, offset: usize, v: u16) {
        self.write_plain(offset, v.to_le());
    }

    #[inline(always)]
    pub(super) fn read_u64(&self, offset: usize) -> u64 {
        u64::from_le(self.read_plain(offset))
    }

    #[inline(always)]
    pub(super) fn write_u64(&self, offset: usize, v: u64) {
        self.write_plain(offset, v.to_le());
    }

    pub(super) fn read_f64(&self, offset: usize) -> f64 {
        f64::from_bits(self.read_u64(offset))
    }

    #[inline(always)]
    pub(super) fn write_f64(&self, offset: usize, v: f64) {
        self.write_u64(offset, v.to_bits());
    }
}

/// The fixed-size integers the buffer's fields are read and written as
/// (every bit pattern valid).
pub(super) trait Plain: Copy {}
impl Plain for u8 {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for u64 {}

/// How long a closing owner waits for the lock to clear the valid flag.
const CLOSE_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.owner {
            match self.set_valid_within(false, CLOSE_LOCK_TIMEOUT) {
                Ok(true) => {}
                Ok(false) => log::warn!(
                    "buffer `{}`: closed without clearing the valid flag: another process held \
                     its lock for over {CLOSE_LOCK_TIMEOUT:?}",
                    self.label
                ),
                Err(e) => log::warn!("buffer `{}`: cannot clear the valid flag: {e}", self.label),
            }
        }
    }
}
