//! [`Buffer`] and [`DeviceBuffer`]: a device type's C struct in a segment
//! (heap or POSIX shared memory), read and written by offset under the
//! segment's robust, recursive mutex.
//!
//! Every operation takes the lock and checks the valid flag first: on a
//! buffer marked invalid it fails with "device does not exist (marked as
//! invalid)". Values are copied in and out with `ptr::copy_nonoverlapping`;
//! no Rust reference to the segment's bytes is ever formed, so other
//! processes may map the same bytes.
//!
//! ```
//! use std::sync::Arc;
//! use bitstream_buffer::catalog::Catalog;
//! use bitstream_buffer::device::{Buffer, BufferType};
//! use bitstream_buffer::value::ParamValue;
//!
//! let catalog = Catalog::from_json(
//!     r#"{"motor": {"params": [
//!         {"name": "pos", "type": "double", "lower": -1, "upper": 1},
//!         {"name": "target", "type": "int32", "readable": false, "writeable": true}]}}"#,
//! )
//! .unwrap();
//! let ty = Arc::new(BufferType::from_catalog(&catalog, "motor").unwrap());
//! let buffer = Buffer::new_local(&ty).unwrap();
//! buffer.set("pos", 0.5).unwrap();
//! assert_eq!(buffer.get("pos").unwrap(), ParamValue::Float(0.5));
//! let warning = buffer.set("pos", 7.0).unwrap();
//! assert!(warning.is_some()); // clamped to 1
//! buffer.write("target", 42).unwrap();
//! assert!(buffer.get("target").is_err()); // not readable
//! ```

use std::fmt;
use std::ops::Deref;
use std::ptr;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};

use super::catalog::{control_offsets as ctl, Catalog, CatalogError, DeviceType, Layout, Param};
use super::clock::now;
use super::message::{bitmap_ids, Message, MessageType, MAX_PAYLOAD};
use super::segment::{Segment, SegmentError, SegmentGuard, SegmentSpec};
use super::value::{decode, encode, ParamValue, ValueError, Warning};

/// Least non-zero subscription interval a device grants, in milliseconds.
pub const MIN_INTERVAL_MS: u16 = 40;
/// Greatest subscription interval a device grants, in milliseconds.
pub const MAX_INTERVAL_MS: u16 = 250;

/// An error of a buffer operation. Every variant names the buffer, and the
/// parameter where there is one.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The valid flag is clear: the owner closed the buffer.
    #[error("buffer `{buffer}`: device does not exist (marked as invalid)")]
    Invalid {
        /// The buffer.
        buffer: String,
    },
    /// The type has no parameter of that name.
    #[error("buffer `{buffer}`: no parameter `{param}` (the type has: {known})")]
    UnknownParam {
        /// The buffer.
        buffer: String,
        /// The name asked for.
        param: String,
        /// The type's parameters, comma-separated.
        known: String,
    },
    /// `get`/`set` of a parameter that is not readable (not in the update block).
    #[error("buffer `{buffer}`: parameter `{param}` is not readable (set \"readable\": true in the catalog)")]
    NotReadable {
        /// The buffer.
        buffer: String,
        /// The parameter.
        param: String,
    },
    /// `write` of a parameter that is not writeable (not in the write block).
    #[error("buffer `{buffer}`: parameter `{param}` is not writeable (set \"writeable\": true in the catalog)")]
    NotWriteable {
        /// The buffer.
        buffer: String,
        /// The parameter.
        param: String,
    },
    /// A value that does not fit the parameter.
    #[error("buffer `{buffer}`: bad value for parameter `{param}`: {source}")]
    BadValue {
        /// The buffer.
        buffer: String,
        /// The parameter.
        param: String,
        /// What is wrong with the value.
        source: Box<ValueError>,
    },
    /// A Smart Device operation on a plain buffer type.
    #[error("buffer `{buffer}`: `{operation}` needs a Smart Device type (one with a device_id); `{type_name}` has none")]
    NotSmartDevice {
        /// The buffer.
        buffer: String,
        /// The operation.
        operation: &'static str,
        /// The buffer's type.
        type_name: String,
    },
    /// A message that does not fit the buffer's type.
    #[error("buffer `{buffer}`: cannot apply {msg_type}: {reason}")]
    BadMessage {
        /// The buffer.
        buffer: String,
        /// The message's type.
        msg_type: MessageType,
        /// Why.
        reason: String,
    },
    /// A catalog that does not have the type asked for.
    #[error("no buffer type `{type_name}` in the catalog (it has: {known})")]
    UnknownType {
        /// The type asked for.
        type_name: String,
        /// The catalog's types, comma-separated.
        known: String,
    },
    /// The segment's stored spec is not a valid catalog.
    #[error("buffer `{buffer}`: its stored type spec is not a valid catalog: {source}")]
    Catalog {
        /// The buffer.
        buffer: String,
        /// The catalog error.
        source: Box<CatalogError>,
    },
    /// Creating, attaching or locking the segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A segment whose data is smaller than its stored type's layout (a
    /// header written by an incompatible program).
    #[error("buffer `{buffer}`: its type needs {type_size} bytes but the segment holds {data_size}; it was not made by this SDK's layout rules: recreate it")]
    LayoutTooLarge {
        /// The buffer.
        buffer: String,
        /// The layout's size.
        type_size: usize,
        /// The segment's data size.
        data_size: usize,
    },
    /// A [`ParamHandle`] made for a buffer of another type.
    #[error("buffer `{buffer}`: the parameter handle belongs to a buffer of another type")]
    ForeignHandle {
        /// The buffer.
        buffer: String,
    },
    /// The block has no buffer (the SDK's `Subcontroller::buffer` says why).
    #[error("no device buffer: {reason}")]
    Unavailable {
        /// Why, and what to do.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// Buffer types
// ---------------------------------------------------------------------------

/// A parameter's place in the struct (offsets from the struct's start).
#[derive(Clone, Debug)]
struct Slot {
    param: Param,
    update_offset: Option<usize>,
    write_offset: Option<usize>,
    size: usize,
    /// How a scalar of at most 8 bytes is encoded without the general
    /// machinery (`None` for vectors).
    fast: Option<FastScalar>,
}

impl Slot {
    /// A scalar of at most 8 bytes: read as one integer.
    #[inline]
    fn is_small_scalar(&self) -> bool {
        self.param.ty.dims.is_empty() && self.size <= 8
    }

    /// Its offset in the update or the write block, if it has one there.
    #[inline]
    fn offset(&self, block: Block) -> Option<usize> {
        match block {
            Block::Update => self.update_offset,
            Block::Write => self.write_offset,
        }
    }
}

/// A scalar parameter's encoding, decided once per type.
#[derive(Clone, Copy, Debug)]
enum FastScalar {
    /// float/double: stored as 4 bytes when within `[lower, upper]`, the
    /// parameter's bounds narrowed to the finite `f32` range (outside them
    /// the general encoder clamps with a warning, or refuses).
    Float { lower: f64, upper: f64 },
    /// bool: one byte, 0 or 1.
    Bool,
    /// Any integer: range-checked, `size` little-endian bytes.
    Int { min: i128, max: i128 },
}

impl FastScalar {
    fn of(p: &Param) -> Option<FastScalar> {
        use super::catalog::Scalar;
        if p.ty.is_vector() {
            return None;
        }
        let scalar = p.ty.scalar;
        let f32_max = f64::from(f32::MAX);
        Some(if scalar.is_float() {
            FastScalar::Float {
                lower: p.lower.max(-f32_max),
                upper: p.upper.min(f32_max),
            }
        } else if scalar == Scalar::Bool {
            FastScalar::Bool
        } else {
            let (min, max) = scalar.int_range();
            FastScalar::Int { min, max }
        })
    }

    /// Encodes `value` as the little-endian bytes of `out` when it is
    /// stored as given; `None` when it needs clamping (and a warning) or is
    /// refused: the general encoder then does that, or says why.
    #[inline(always)]
    fn encode(self, value: &ParamValue) -> Option<u64> {
        match self {
            FastScalar::Float { lower, upper } => {
                let v = match *value {
                    ParamValue::Float(f) => f,
                    ParamValue::Int(i) => i as f64,
                    ParamValue::UInt(u) => u as f64,
                    _ => return None,
                };
                // False for NaN too. Within these bounds the `f32` is finite.
                if v >= lower && v <= upper {
                    Some(u64::from((v as f32).to_bits()))
                } else {
                    None
                }
            }
            FastScalar::Bool => match *value {
                ParamValue::Bool(b) => Some(u64::from(b)),
                _ => None,
            },
            FastScalar::Int { min, max } => {
                let wide = match *value {
                    ParamValue::Int(i) => i128::from(i),
                    ParamValue::UInt(u) => i128::from(u),
                    _ => return None,
                };
                if wide < min || wide > max {
                    return None;
                }
                // Two's complement: the low `size` bytes are the C value.
                Some(wide as i64 as u64)
            }
        }
    }
}

/// A device type ready for buffers: its layout, per-parameter offsets, the
/// canonical spec stored in shared segments and the hash that guards them.
/// Build it once and share it (`Arc`) between buffers of the type.
#[derive(Clone, Debug)]
pub struct BufferType {
    ty: DeviceType,
    layout: Layout,
    spec_json: String,
    hash: u64,
    slots: Vec<Slot>,
    by_id: [Option<u8>; 16],
    readable_mask: u16,
    subscribed_mask: u16,
}

impl BufferType {
    /// Prepares `ty` for buffers.
    pub fn new(ty: &DeviceType) -> BufferType {
        let layout = ty.layout();
        let mut slots = Vec::with_capacity(ty.params.len());
        let mut by_id = [None; 16];
        let (mut readable_mask, mut subscribed_mask) = (0u16, 0u16);
        for (index, p) in ty.params.iter().enumerate() {
            let update_offset = layout
                .update_block
                .field(&p.name)
                .map(|f| layout.update_block.offset + f.offset);
            let write_offset = layout
                .write_block
                .field(&p.name)
                .map(|f| layout.write_block.offset + f.offset);
            if ty.is_smart() && p.id < 16 {
                by_id[usize::from(p.id)] = u8::try_from(index).ok();
                let bit = 1u16 << p.id;
                if p.readable {
                    readable_mask |= bit;
                }
                if p.subscribed {
                    subscribed_mask |= bit;
                }
            }
            slots.push(Slot {
                param: p.clone(),
                update_offset,
                write_offset,
                size: p.ty.size(),
                fast: FastScalar::of(p),
            });
        }
        let spec_json = spec_json(ty);
        BufferType {
            hash: fnv1a(spec_json.as_bytes()),
            ty: ty.clone(),
            layout,
            spec_json,
            slots,
            by_id,
            readable_mask,
            subscribed_mask,
        }
    }

    /// The type `name` of `catalog`.
    pub fn from_catalog(catalog: &Catalog, name: &str) -> Result<BufferType, BufferError> {
        catalog
            .get(name)
            .map(BufferType::new)
            .ok_or_else(|| BufferError::UnknownType {
                type_name: name.to_owned(),
                known: catalog.names().collect::<Vec<_>>().join(", "),
            })
    }

    /// The device type.
    pub fn device_type(&self) -> &DeviceType {
        &self.ty
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.ty.name
    }

    /// The C layout of the struct.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The canonical catalog JSON of this one type (`{"<name>": {...}}`),
    /// stored in shared segments so other processes can read the type.
    pub fn spec_json(&self) -> &str {
        &self.spec_json
    }

    /// FNV-1a 64 of [`BufferType::spec_json`]: equal hashes mean equal
    /// types, layouts, ids, flags and bounds.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    fn segment_spec(&self) -> SegmentSpec<'_> {
        SegmentSpec {
            type_name: &self.ty.name,
            type_hash: self.hash,
            data_size: self.layout.size,
            data_align: self.layout.align,
            spec_json: &self.spec_json,
        }
    }

    #[inline]
    fn slot(&self, buffer: &str, name: &str) -> Result<&Slot, BufferError> {
        self.slot_index(buffer, name)
            .map(|index| &self.slots[index])
    }

    /// Where parameter `name` is in `slots`.
    #[inline]
    fn slot_index(&self, buffer: &str, name: &str) -> Result<usize, BufferError> {
        match self
            .slots
            .iter()
            .position(|s| name_eq(s.param.name.as_bytes(), name.as_bytes()))
        {
            Some(index) => Ok(index),
            None => Err(self.unknown_param(buffer, name)),
        }
    }

    #[cold]
    fn unknown_param(&self, buffer: &str, name: &str) -> BufferError {
        BufferError::UnknownParam {
            buffer: buffer.to_owned(),
            param: name.to_owned(),
            known: self.ty.param_list(),
        }
    }

    fn slot_by_id(&self, id: u8) -> Option<&Slot> {
        self.by_id
            .get(usize::from(id))
            .copied()
            .flatten()
            .map(|i| &self.slots[usize::from(i)])
    }
}

/// The canonical, re-parseable catalog JSON of one type. Infinite bounds are
/// left out (JSON has no infinity; they are the defaults).
fn spec_json(ty: &DeviceType) -> String {
    let params: Vec<Json> = ty
        .params
        .iter()
        .map(|p| {
            let mut o = Map::new();
            o.insert("name".into(), json!(p.name));
            o.insert("type".into(), json!(p.ty.to_string()));
            o.insert("id".into(), json!(p.id));
            if p.lower.is_finite() {
                o.insert("lower".into(), json!(p.lower));
            }
            if p.upper.is_finite() {
                o.insert("upper".into(), json!(p.upper));
            }
            o.insert("readable".into(), json!(p.readable));
            o.insert("writeable".into(), json!(p.writeable));
            o.insert("subscribed".into(), json!(p.subscribed));
            Json::Object(o)
        })
        .collect();
    let mut spec = Map::new();
    if let Some(id) = ty.device_id {
        spec.insert("device_id".into(), json!(id));
    }
    spec.insert("sub_interval".into(), json!(ty.sub_interval));
    spec.insert("write_interval".into(), json!(ty.write_interval));
    spec.insert("heartbeat_interval".into(), json!(ty.heartbeat_interval));
    spec.insert("params".into(), Json::Array(params));
    json!({ ty.name.clone(): spec }).to_string()
}

/// FNV-1a, 64 bits: stable across processes, builds and Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `a == b` for parameter names, compared eight bytes at a time without a
/// call to `memcmp` (the lookup is on every by-name `get`/`set`).
#[inline(always)]
fn name_eq(a: &[u8], b: &[u8]) -> bool {
    #[inline(always)]
    fn word(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    }
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut at = 0;
    while at + 8 < len {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last (possibly overlapping) word.
    word(a, len - 8) == word(b, len - 8)
}

// ---------------------------------------------------------------------------
// Buffer
// ---------------------------------------------------------------------------

/// Which of a parameter's two copies an operation uses.
#[derive(Clone, Copy)]
enum Block {
    Update,
    Write,
}

/// A parameter looked up once ([`Buffer::param`]); valid for every buffer
/// of the same type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamHandle {
    index: usize,
    type_hash: u64,
}

/// One device buffer: a [`BufferType`]'s struct in a [`Segment`].
///
/// The process that creates a buffer owns it: creating sets the valid flag,
/// closing (or dropping) the owner clears it. Attached buffers leave the
/// flag alone. A `Buffer` is `Send + Sync`; its operations serialize on the
/// segment's mutex, which is recursive, so a [`Buffer::transaction`] can
/// group several operations.
pub struct Buffer {
    segment: Segment,
    ty: Arc<BufferType>,
    owner: bool,
    label: String,
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
    _guard: SegmentGuard<'a>,
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

    /// A buffer over a segment mapped elsewhere in this process, its type
    /// read from the segment's stored spec (parsed once per type and process).
    ///
    /// # Safety
    /// As [`Buffer::from_raw_segment`].
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
            _guard: self.lock_valid()?,
        })
    }

    #[inline]
    fn lock_valid(&self) -> Result<SegmentGuard<'_>, BufferError> {
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

    /// Reads readable parameter `name` (the update block).
    pub fn get(&self, name: &str) -> Result<ParamValue, BufferError> {
        let slot = self.ty.slot(&self.label, name)?;
        let offset = self.offset_of(slot, Block::Update)?;
        self.read_value(slot, offset)
    }

    /// Reads the pending (write-block) value of writeable parameter `name`.
    pub fn get_written(&self, name: &str) -> Result<ParamValue, BufferError> {
        let slot = self.ty.slot(&self.label, name)?;
        let offset = self.offset_of(slot, Block::Write)?;
        self.read_value(slot, offset)
    }

    /// Where `slot` sits in `block`, or why it is not there.
    #[inline]
    fn offset_of(&self, slot: &Slot, block: Block) -> Result<usize, BufferError> {
        match slot.offset(block) {
            Some(offset) => Ok(offset),
            None => Err(self.not_in_block(slot, block)),
        }
    }

    #[cold]
    fn not_in_block(&self, slot: &Slot, block: Block) -> BufferError {
        let (buffer, param) = (self.label.clone(), slot.param.name.clone());
        match block {
            Block::Update => BufferError::NotReadable { buffer, param },
            Block::Write => BufferError::NotWriteable { buffer, param },
        }
    }

    #[inline]
    fn read_value(&self, slot: &Slot, offset: usize) -> Result<ParamValue, BufferError> {
        if slot.is_small_scalar() {
            // Only the copy under the lock; decoding after it.
            let bits = {
                let _guard = self.lock_valid()?;
                self.read_small(offset, slot.size)
            };
            return Ok(super::value::decode_scalar_bits(slot.param.ty.scalar, bits));
        }
        let _guard = self.lock_valid()?;
        Ok(self.value_at(slot, offset))
    }

    /// The value of `slot` at `offset`; the caller holds the lock.
    fn value_at(&self, slot: &Slot, offset: usize) -> ParamValue {
        if slot.is_small_scalar() {
            let bits = self.read_small(offset, slot.size);
            return super::value::decode_scalar_bits(slot.param.ty.scalar, bits);
        }
        let mut scratch = Scratch::new(slot.size);
        self.read_bytes(offset, scratch.as_mut());
        decode(&slot.param.ty, scratch.as_mut())
    }

    /// Sets readable parameter `name` (the update block); on a Smart Device
    /// marks it updated and stamps `last_update`. Floats are clamped to the
    /// parameter's bounds: the clamp is returned and logged.
    #[inline]
    pub fn set(
        &self,
        name: &str,
        value: impl Into<ParamValue>,
    ) -> Result<Option<Warning>, BufferError> {
        let slot = self.ty.slot(&self.label, name)?;
        let offset = self.offset_of(slot, Block::Update)?;
        self.store(slot, offset, &value.into(), Block::Update)
    }

    /// A handle to parameter `name`, for the `*_at` operations: the name is
    /// looked up once instead of on every call (hot loops, drivers).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use bitstream_buffer::catalog::Catalog;
    /// # use bitstream_buffer::device::{Buffer, BufferType};
    /// # use bitstream_buffer::value::ParamValue;
    /// # let catalog = Catalog::from_json(r#"{"t": {"params": [{"name": "n", "type": "uint32"}]}}"#).unwrap();
    /// # let ty = Arc::new(BufferType::from_catalog(&catalog, "t").unwrap());
    /// let buffer = Buffer::new_local(&ty).unwrap();
    /// let n = buffer.param("n").unwrap();
    /// for i in 0..10u32 {
    ///     buffer.set_at(n, i).unwrap();
    /// }
    /// assert_eq!(buffer.get_at(n).unwrap(), ParamValue::UInt(9));
    /// ```
    pub fn param(&self, name: &str) -> Result<ParamHandle, BufferError> {
        Ok(ParamHandle {
            index: self.ty.slot_index(&self.label, name)?,
            type_hash: self.ty.hash,
        })
    }

    #[inline]
    fn slot_at(&self, handle: ParamHandle) -> Result<&Slot, BufferError> {
        match self.ty.slots.get(handle.index) {
            Some(slot) if handle.type_hash == self.ty.hash => Ok(slot),
            _ => Err(self.foreign_handle()),
        }
    }

    #[cold]
    fn foreign_handle(&self) -> BufferError {
        BufferError::ForeignHandle {
            buffer: self.label.clone(),
        }
    }

    /// [`Buffer::set`] through a handle from [`Buffer::param`].
    #[inline]
    pub fn set_at(
        &self,
        handle: ParamHandle,
        value: impl Into<ParamValue>,
    ) -> Result<Option<Warning>, BufferError> {
        let slot = self.slot_at(handle)?;
        let offset = self.offset_of(slot, Block::Update)?;
        self.store(slot, offset, &value.into(), Block::Update)
    }

    /// [`Buffer::get`] through a handle from [`Buffer::param`].
    #[inline]
    pub fn get_at(&self, handle: ParamHandle) -> Result<ParamValue, BufferError> {
        let slot = self.slot_at(handle)?;
        let offset = self.offset_of(slot, Block::Update)?;
        self.read_value(slot, offset)
    }

    /// [`Buffer::write`] through a handle from [`Buffer::param`].
    #[inline]
    pub fn write_at(
        &self,
        handle: ParamHandle,
        value: impl Into<ParamValue>,
    ) -> Result<Option<Warning>, BufferError> {
        let slot = self.slot_at(handle)?;
        let offset = self.offset_of(slot, Block::Write)?;
        self.store(slot, offset, &value.into(), Block::Write)
    }

    /// Requests a write of writeable parameter `name` (the write block); on
    /// a Smart Device marks it for the next `DEV_WRITE` and stamps
    /// `last_write`. Floats are clamped as in [`Buffer::set`].
    #[inline]
    pub fn write(
        &self,
        name: &str,
        value: impl Into<ParamValue>,
    ) -> Result<Option<Warning>, BufferError> {
        let slot = self.ty.slot(&self.label, name)?;
        let offset = self.offset_of(slot, Block::Write)?;
        self.store(slot, offset, &value.into(), Block::Write)
    }

    /// Sets readable parameter `name` from JSON (as `PUT /<block>/buffer/<param>`).
    pub fn set_json(&self, name: &str, value: &Json) -> Result<Option<Warning>, BufferError> {
        self.store_json(name, value, Block::Update)
    }

    /// Writes writeable parameter `name` from JSON.
    pub fn write_json(&self, name: &str, value: &Json) -> Result<Option<Warning>, BufferError> {
        self.store_json(name, value, Block::Write)
    }

    fn store_json(
        &self,
        name: &str,
        value: &Json,
        block: Block,
    ) -> Result<Option<Warning>, BufferError> {
        let slot = self.ty.slot(&self.label, name)?;
        let value = ParamValue::from_json(&slot.param.ty, value)
            .map_err(|source| self.bad_value(slot, source))?;
        let offset = self.offset_of(slot, block)?;
        self.store(slot, offset, &value, block)
    }

    #[inline]
    fn store(
        &self,
        slot: &Slot,
        offset: usize,
        value: &ParamValue,
        block: Block,
    ) -> Result<Option<Warning>, BufferError> {
        if let Some(fast) = slot.fast {
            // Refused or clamped values take the general path below, which
            // explains the refusal or builds the warning.
            if let Some(bits) = fast.encode(value) {
                self.commit_small(offset, bits, slot.size, slot.param.id, block)?;
                return Ok(None);
            }
        }
        self.store_general(slot, offset, value, block)
    }

    #[inline(never)]
    fn store_general(
        &self,
        slot: &Slot,
        offset: usize,
        value: &ParamValue,
        block: Block,
    ) -> Result<Option<Warning>, BufferError> {
        let mut scratch = Scratch::new(slot.size);
        let warning = match encode(&slot.param, value, scratch.as_mut()) {
            Ok(warning) => warning,
            Err(source) => return Err(self.bad_value(slot, source)),
        };
        self.commit(offset, scratch.as_mut(), slot.param.id, block)?;
        if let Some(w) = &warning {
            self.log_warning(w);
        }
        Ok(warning)
    }

    /// Copies encoded bytes in under the lock; on a Smart Device marks the
    /// bitmap and stamps the time (read before locking, to keep the
    /// critical section short).
    #[inline]
    fn commit(&self, offset: usize, bytes: &[u8], id: u8, block: Block) -> Result<(), BufferError> {
        self.commit_with(id, block, || self.write_bytes(offset, bytes))
    }

    /// As `commit`, for a scalar of 1, 2, 4 or 8 bytes (the low `size`
    /// bytes of `bits`, little-endian): one fixed-size store.
    #[inline(always)]
    fn commit_small(
        &self,
        offset: usize,
        bits: u64,
        size: usize,
        id: u8,
        block: Block,
    ) -> Result<(), BufferError> {
        self.commit_with(id, block, || match size {
            1 => self.write_u8(offset, bits as u8),
            2 => self.write_u16(offset, bits as u16),
            4 => self.write_plain(offset, (bits as u32).to_le()),
            _ => self.write_u64(offset, bits),
        })
    }

    /// Runs `copy` under the lock, then marks parameter `id` in the Smart
    /// Device bitmap of `block` and stamps its time.
    #[inline(always)]
    fn commit_with(&self, id: u8, block: Block, copy: impl FnOnce()) -> Result<(), BufferError> {
        let control = self.ty.layout.control_offset;
        let stamp = if control.is_some() { now() } else { 0.0 };
        let _guard = self.lock_valid()?;
        copy();
        if let Some(control) = control {
            let (bitmap, at) = match block {
                Block::Update => (ctl::UPDATE, ctl::LAST_UPDATE),
                Block::Write => (ctl::WRITE, ctl::LAST_WRITE),
            };
            self.write_u16(
                control + bitmap,
                self.read_u16(control + bitmap) | (1 << (id & 15)),
            );
            self.write_f64(control + at, stamp);
        }
        Ok(())
    }

    #[cold]
    fn bad_value(&self, slot: &Slot, source: ValueError) -> BufferError {
        BufferError::BadValue {
            buffer: self.label.clone(),
            param: slot.param.name.clone(),
            source: Box::new(source),
        }
    }

    #[cold]
    fn log_warning(&self, warning: &Warning) {
        log::warn!("buffer `{}`: {warning}", self.label);
    }

    /// Every readable parameter as a JSON object (`{"name": value}`), read
    /// under one lock.
    pub fn to_json(&self) -> Result<Json, BufferError> {
        self.block_to_json(Block::Update)
    }

    /// Every pending (write-block) value as a JSON object.
    pub fn written_to_json(&self) -> Result<Json, BufferError> {
        self.block_to_json(Block::Write)
    }

    fn block_to_json(&self, block: Block) -> Result<Json, BufferError> {
        let _guard = self.lock_valid()?;
        let mut out = Map::new();
        for slot in &self.ty.slots {
            if let Some(offset) = slot.offset(block) {
                let v = self.value_at(slot, offset);
                out.insert(slot.param.name.clone(), v.to_json());
            }
        }
        Ok(Json::Object(out))
    }

    // -- raw access ---------------------------------------------------------

    #[inline]
    fn check_range(&self, offset: usize, len: usize) {
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
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        self.check_range(offset, out.len());
        // SAFETY: the range is inside the segment's data (checked above);
        // `out` is our own memory and cannot overlap the segment. Raw copy:
        // no reference to shared memory is formed.
        unsafe {
            ptr::copy_nonoverlapping(self.segment.data().add(offset), out.as_mut_ptr(), out.len())
        }
    }

    #[inline]
    fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        self.check_range(offset, bytes.len());
        // SAFETY: as in `read_bytes`; callers hold the segment lock.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), self.segment.data().add(offset), bytes.len())
        }
    }

    /// Reads the `T` at `offset`, an offset from the buffer's layout (a
    /// parameter's slot, the valid flag, the control or metrics block).
    #[inline(always)]
    fn read_plain<T: Plain>(&self, offset: usize) -> T {
        debug_assert!(offset + std::mem::size_of::<T>() <= self.segment.data_size());
        // SAFETY: `offset` comes from the layout, and `with_segment` checked
        // that the layout fits in the segment's data, so the read is in
        // bounds. Unaligned raw read: no reference to shared memory formed.
        unsafe { self.segment.data().add(offset).cast::<T>().read_unaligned() }
    }

    /// Writes `v` at `offset`, an offset from the buffer's layout; callers
    /// hold the segment lock.
    #[inline(always)]
    fn write_plain<T: Plain>(&self, offset: usize, v: T) {
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
    fn read_small(&self, offset: usize, size: usize) -> u64 {
        match size {
            1 => u64::from(self.read_u8(offset)),
            2 => u64::from(self.read_u16(offset)),
            4 => u64::from(u32::from_le(self.read_plain(offset))),
            _ => self.read_u64(offset),
        }
    }

    #[inline(always)]
    fn read_u8(&self, offset: usize) -> u8 {
        self.read_plain(offset)
    }

    #[inline(always)]
    fn write_u8(&self, offset: usize, v: u8) {
        self.write_plain(offset, v);
    }

    #[inline(always)]
    fn read_u16(&self, offset: usize) -> u16 {
        u16::from_le(self.read_plain(offset))
    }

    #[inline(always)]
    fn write_u16(&self, offset: usize, v: u16) {
        self.write_plain(offset, v.to_le());
    }

    #[inline(always)]
    fn read_u64(&self, offset: usize) -> u64 {
        u64::from_le(self.read_plain(offset))
    }

    #[inline(always)]
    fn write_u64(&self, offset: usize, v: u64) {
        self.write_plain(offset, v.to_le());
    }

    fn read_f64(&self, offset: usize) -> f64 {
        f64::from_bits(self.read_u64(offset))
    }

    #[inline(always)]
    fn write_f64(&self, offset: usize, v: f64) {
        self.write_u64(offset, v.to_bits());
    }
}

/// The fixed-size integers the buffer's fields are read and written as
/// (every bit pattern valid).
trait Plain: Copy {}
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

#[cold]
fn lock_error(e: SegmentError) -> BufferError {
    BufferError::Segment(e)
}

/// Stack space for a parameter's bytes (heap only for large vectors).
enum Scratch {
    Small([u8; 32], usize),
    Large(Vec<u8>),
}

impl Scratch {
    #[inline(always)]
    fn new(size: usize) -> Scratch {
        if size <= 32 {
            Scratch::Small([0; 32], size)
        } else {
            Scratch::Large(vec![0; size])
        }
    }

    #[inline]
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            Scratch::Small(b, n) => &mut b[..*n],
            Scratch::Large(v) => v,
        }
    }
}

// ---------------------------------------------------------------------------
// Smart Devices
// ---------------------------------------------------------------------------

/// A Smart Device's bitmaps (bit i: parameter id i), from
/// [`DeviceBuffer::pending`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingBits {
    /// Reads requested, not yet sent (`DEV_READ`).
    pub read: u16,
    /// Writes requested, not yet sent (`DEV_WRITE`).
    pub write: u16,
    /// Parameters updated since the last `DEV_DATA`.
    pub update: u16,
}

/// A Smart Device's Universal ID, stored in the control block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceUid {
    /// The device type id.
    pub device_id: u16,
    /// The device's year.
    pub year: u8,
    /// The device's random identifier.
    pub random: u64,
}

impl DeviceUid {
    /// The integer form: `device_id << 72 | year << 64 | random`.
    pub fn to_u128(self) -> u128 {
        (u128::from(self.device_id) << 72) | (u128::from(self.year) << 64) | u128::from(self.random)
    }

    /// From the integer form (bits above 88 are ignored).
    pub fn from_u128(uid: u128) -> DeviceUid {
        DeviceUid {
            device_id: (uid >> 72) as u16,
            year: (uid >> 64) as u8,
            random: uid as u64,
        }
    }
}

/// A [`Buffer`] of a Smart Device type, with the control block's bitmaps,
/// UID, subscription and the messages built from them. Dereferences to
/// [`Buffer`] for `get`, `set`, `write` and `transaction`.
///
/// ```
/// use std::sync::Arc;
/// use bitstream_buffer::catalog::Catalog;
/// use bitstream_buffer::device::{Buffer, BufferType, DeviceBuffer};
/// use bitstream_buffer::message::Message;
///
/// let catalog = Catalog::from_json(
///     r#"{"switch": {"device_id": 0, "params": [
///         {"name": "on", "type": "bool", "writeable": true}]}}"#,
/// )
/// .unwrap();
/// let ty = Arc::new(BufferType::from_catalog(&catalog, "switch").unwrap());
/// let device = DeviceBuffer::try_from(Buffer::new_local(&ty).unwrap()).unwrap();
/// device.write("on", true).unwrap();
/// let sent = device.emit_dev_rw().unwrap();
/// assert_eq!(sent, vec![Message::DevWrite { bitmap: 1, values: vec![1] }]);
/// ```
#[derive(Debug)]
pub struct DeviceBuffer {
    buffer: Buffer,
    control: usize,
    metrics: usize,
}

impl TryFrom<Buffer> for DeviceBuffer {
    type Error = BufferError;

    /// Fails with [`BufferError::NotSmartDevice`] for a plain type.
    fn try_from(buffer: Buffer) -> Result<Self, Self::Error> {
        let layout = &buffer.ty.layout;
        match (layout.control_offset, layout.metrics_offset) {
            (Some(control), Some(metrics)) => Ok(DeviceBuffer {
                buffer,
                control,
                metrics,
            }),
            _ => Err(BufferError::NotSmartDevice {
                buffer: buffer.label.clone(),
                operation: "DeviceBuffer",
                type_name: buffer.ty.name().to_owned(),
            }),
        }
    }
}

impl Deref for DeviceBuffer {
    type Target = Buffer;

    fn deref(&self) -> &Buffer {
        &self.buffer
    }
}

impl DeviceBuffer {
    /// The underlying buffer.
    pub fn into_buffer(self) -> Buffer {
        self.buffer
    }

    fn ctl_u16(&self, field: usize) -> Result<u16, BufferError> {
        let _guard = self.lock_valid()?;
        Ok(self.read_u16(self.control + field))
    }

    /// Returns and clears a bitmap.
    fn take_bitmap(&self, field: usize) -> Result<u16, BufferError> {
        let _guard = self.lock_valid()?;
        let v = self.read_u16(self.control + field);
        self.write_u16(self.control + field, 0);
        Ok(v)
    }

    /// The device's UID.
    pub fn uid(&self) -> Result<DeviceUid, BufferError> {
        let _guard = self.lock_valid()?;
        let c = self.control + ctl::UID;
        Ok(DeviceUid {
            device_id: self.read_u16(c + ctl::UID_DEVICE_ID),
            year: self.read_u8(c + ctl::UID_YEAR),
            random: self.read_u64(c + ctl::UID_RANDOM),
        })
    }

    /// Stores the device's UID.
    pub fn set_uid(&self, uid: DeviceUid) -> Result<(), BufferError> {
        let _guard = self.lock_valid()?;
        let c = self.control + ctl::UID;
        self.write_u16(c + ctl::UID_DEVICE_ID, uid.device_id);
        self.write_u8(c + ctl::UID_YEAR, uid.year);
        self.write_u64(c + ctl::UID_RANDOM, uid.random);
        Ok(())
    }

    /// The subscribed parameters' bitmap.
    pub fn subscription(&self) -> Result<u16, BufferError> {
        self.ctl_u16(ctl::SUBSCRIPTION)
    }

    /// The subscription interval in milliseconds.
    pub fn interval(&self) -> Result<u16, BufferError> {
        self.ctl_u16(ctl::INTERVAL)
    }

    /// When a parameter was last written (`write`, `DEV_WRITE`), in Unix seconds.
    pub fn last_write(&self) -> Result<f64, BufferError> {
        let _guard = self.lock_valid()?;
        Ok(self.read_f64(self.control + ctl::LAST_WRITE))
    }

    /// When a parameter was last updated (`set`, `DEV_DATA`), in Unix seconds.
    pub fn last_update(&self) -> Result<f64, BufferError> {
        let _guard = self.lock_valid()?;
        Ok(self.read_f64(self.control + ctl::LAST_UPDATE))
    }

    /// Returns and clears the pending-read bitmap.
    pub fn get_read(&self) -> Result<u16, BufferError> {
        self.take_bitmap(ctl::READ)
    }

    /// Returns and clears the pending-write bitmap.
    pub fn get_write(&self) -> Result<u16, BufferError> {
        self.take_bitmap(ctl::WRITE)
    }

    /// Returns and clears the updated bitmap.
    pub fn get_update(&self) -> Result<u16, BufferError> {
        self.take_bitmap(ctl::UPDATE)
    }

    /// The three bitmaps as they stand, read under one lock and left as
    /// they are (for inspection: `get_read`/`get_write`/`get_update` take
    /// and clear them).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use bitstream_buffer::catalog::Catalog;
    /// # use bitstream_buffer::device::{Buffer, BufferType, DeviceBuffer};
    /// # let catalog = Catalog::from_json(r#"{"d": {"device_id": 3, "params": [{"name": "n", "type": "uint32", "writeable": true}]}}"#).unwrap();
    /// # let ty = Arc::new(BufferType::from_catalog(&catalog, "d").unwrap());
    /// let device = DeviceBuffer::try_from(Buffer::new_local(&ty).unwrap()).unwrap();
    /// device.set("n", 1u32).unwrap();
    /// assert_eq!(device.pending().unwrap().update, 0b1);
    /// assert_eq!(device.get_update().unwrap(), 0b1); // still there: now taken
    /// ```
    pub fn pending(&self) -> Result<PendingBits, BufferError> {
        let _guard = self.lock_valid()?;
        Ok(PendingBits {
            read: self.read_u16(self.control + ctl::READ),
            write: self.read_u16(self.control + ctl::WRITE),
            update: self.read_u16(self.control + ctl::UPDATE),
        })
    }

    /// Messages sent and received, per message type (index: the type id's
    /// low four bits; `ERROR` counts at 15).
    pub fn metrics(&self) -> Result<([u64; 16], [u64; 16]), BufferError> {
        let _guard = self.lock_valid()?;
        let mut sent = [0u64; 16];
        let mut received = [0u64; 16];
        for i in 0..16 {
            sent[i] = self.read_u64(self.metrics + 8 * i);
            received[i] = self.read_u64(self.metrics + 128 + 8 * i);
        }
        Ok((sent, received))
    }

    fn count(&self, messages: &[Message], received: bool) {
        for m in messages {
            let slot = self.metrics
                + if received { 128 } else { 0 }
                + 8 * usize::from(m.message_type().id() & 0x0f);
            self.write_u64(slot, self.read_u64(slot).wrapping_add(1));
        }
    }

    fn bitmap_of(&self, params: &[&str]) -> Result<u16, BufferError> {
        params.iter().try_fold(0u16, |acc, name| {
            Ok(acc | (1 << self.ty.slot(&self.label, name)?.param.id))
        })
    }

    /// Marks parameters to read from the device (default: every readable
    /// one); unreadable ones are masked out.
    pub fn read(&self, params: Option<&[&str]>) -> Result<(), BufferError> {
        let bits = match params {
            Some(names) => self.bitmap_of(names)?,
            None => u16::MAX,
        } & self.ty.readable_mask;
        let _guard = self.lock_valid()?;
        let c = self.control + ctl::READ;
        self.write_u16(c, self.read_u16(c) | bits);
        Ok(())
    }

    /// `DEV_WRITE` for the pending writes, then `DEV_READ` for the pending
    /// reads not just written; clears both. Values that do not fit one
    /// message's 255-byte payload are split over several, packed in
    /// ascending id order (the reference's example device, all four
    /// writeable parameters with the 253-byte `large`: three messages).
    pub fn emit_dev_rw(&self) -> Result<Vec<Message>, BufferError> {
        let _guard = self.lock_valid()?;
        let mut out = Vec::new();
        let write = self.read_u16(self.control + ctl::WRITE);
        let mut read = self.read_u16(self.control + ctl::READ);
        if write != 0 {
            self.values_messages_into(write, Block::Write, MessageType::DevWrite, &mut out)?;
            read &= !write;
            self.write_u16(self.control + ctl::WRITE, 0);
        }
        if read != 0 {
            out.push(Message::DevRead { params: read });
        }
        self.write_u16(self.control + ctl::READ, 0);
        self.count(&out, false);
        Ok(out)
    }

    /// `DEV_DATA` for the updated parameters that are not subscribed
    /// (subscribed ones are sent by [`DeviceBuffer::emit_subscription`]);
    /// clears the updated bitmap. Nothing when none remain.
    pub fn emit_dev_data(&self) -> Result<Vec<Message>, BufferError> {
        let _guard = self.lock_valid()?;
        let subscribed = self.read_u16(self.control + ctl::SUBSCRIPTION);
        let update = self.read_u16(self.control + ctl::UPDATE) & !subscribed;
        self.write_u16(self.control + ctl::UPDATE, 0);
        let out = if update != 0 {
            self.values_messages(update, Block::Update, MessageType::DevData)?
        } else {
            Vec::new()
        };
        self.count(&out, false);
        Ok(out)
    }

    /// `DEV_DATA` for the subscribed parameters. Nothing when none are.
    pub fn emit_subscription(&self) -> Result<Vec<Message>, BufferError> {
        let _guard = self.lock_valid()?;
        let subscribed = self.read_u16(self.control + ctl::SUBSCRIPTION) & self.ty.readable_mask;
        let out = if subscribed != 0 {
            self.values_messages(subscribed, Block::Update, MessageType::DevData)?
        } else {
            Vec::new()
        };
        self.count(&out, false);
        Ok(out)
    }

    /// `SUB_REQ` for `params` (default: those marked subscribed) every
    /// `interval` seconds (default: the type's `sub_interval`), in whole
    /// milliseconds.
    pub fn make_sub_req(
        &self,
        params: Option<&[&str]>,
        interval: Option<f64>,
    ) -> Result<Message, BufferError> {
        let _guard = self.lock_valid()?;
        let bits = match params {
            Some(names) => self.bitmap_of(names)?,
            None => self.ty.subscribed_mask,
        };
        let seconds = interval.unwrap_or(self.ty.ty.sub_interval);
        let ms = (seconds * 1000.0).round().clamp(0.0, f64::from(u16::MAX)) as u16;
        Ok(Message::SubReq {
            params: bits,
            interval_ms: ms,
        })
    }

    /// `SUB_RES` from the control block: subscription, interval and UID.
    pub fn make_sub_res(&self) -> Result<Message, BufferError> {
        let _guard = self.lock_valid()?;
        let uid = self.uid()?;
        Ok(Message::SubRes {
            params: self.read_u16(self.control + ctl::SUBSCRIPTION),
            interval_ms: self.read_u16(self.control + ctl::INTERVAL),
            device_id: uid.device_id,
            year: uid.year,
            random: uid.random,
        })
    }

    /// Applies a received message: `DEV_DATA` copies values into the update
    /// block and marks them updated; `DEV_READ` marks reads (readable
    /// only); `DEV_WRITE` copies into the write block and marks writes;
    /// `SUB_REQ` sets the subscription (readable only) and the interval,
    /// clamped to 40..=250 ms when non-zero (a warning); `SUB_RES` copies
    /// subscription, interval and UID. Other types change nothing.
    /// A message naming parameters the type lacks, or whose values have the
    /// wrong length, is refused before anything is written.
    pub fn update(&self, message: &Message) -> Result<Option<Warning>, BufferError> {
        let _guard = self.lock_valid()?;
        let c = self.control;
        let mut warning = None;
        match message {
            Message::DevData { bitmap, values } => {
                let plan =
                    self.plan_values(*bitmap, values, Block::Update, MessageType::DevData)?;
                for (offset, range) in plan {
                    self.write_bytes(offset, &values[range]);
                }
                self.write_u16(c + ctl::UPDATE, self.read_u16(c + ctl::UPDATE) | bitmap);
                self.write_f64(c + ctl::LAST_UPDATE, now());
            }
            Message::DevWrite { bitmap, values } => {
                let plan =
                    self.plan_values(*bitmap, values, Block::Write, MessageType::DevWrite)?;
                for (offset, range) in plan {
                    self.write_bytes(offset, &values[range]);
                }
                self.write_u16(c + ctl::WRITE, self.read_u16(c + ctl::WRITE) | bitmap);
                self.write_f64(c + ctl::LAST_WRITE, now());
            }
            Message::DevRead { params } => {
                let bits = params & self.ty.readable_mask;
                self.write_u16(c + ctl::READ, self.read_u16(c + ctl::READ) | bits);
            }
            Message::SubReq {
                params,
                interval_ms,
            } => {
                let granted = if *interval_ms == 0 {
                    0
                } else {
                    (*interval_ms).clamp(MIN_INTERVAL_MS, MAX_INTERVAL_MS)
                };
                if granted != *interval_ms {
                    let w = Warning::IntervalClamped {
                        requested_ms: *interval_ms,
                        granted_ms: granted,
                    };
                    log::warn!("buffer `{}`: {w}", self.label);
                    warning = Some(w);
                }
                self.write_u16(c + ctl::SUBSCRIPTION, params & self.ty.readable_mask);
                self.write_u16(c + ctl::INTERVAL, granted);
            }
            Message::SubRes {
                params,
                interval_ms,
                device_id,
                year,
                random,
            } => {
                if Some(*device_id) != self.ty.ty.device_id {
                    return Err(self.bad_message(
                        MessageType::SubRes,
                        format!(
                            "device_id {device_id} is not the type's ({})",
                            self.ty.ty.device_id.unwrap_or_default()
                        ),
                    ));
                }
                self.write_u16(c + ctl::SUBSCRIPTION, *params);
                self.write_u16(c + ctl::INTERVAL, *interval_ms);
                self.set_uid(DeviceUid {
                    device_id: *device_id,
                    year: *year,
                    random: *random,
                })?;
            }
            _ => {}
        }
        self.count(std::slice::from_ref(message), true);
        Ok(warning)
    }

    fn bad_message(&self, msg_type: MessageType, reason: String) -> BufferError {
        BufferError::BadMessage {
            buffer: self.label.clone(),
            msg_type,
            reason,
        }
    }

    /// Where each value of a DEV_DATA/DEV_WRITE payload goes: (struct offset,
    /// payload range), in ascending id order; checks ids and total length.
    fn plan_values(
        &self,
        bitmap: u16,
        values: &[u8],
        block: Block,
        msg_type: MessageType,
    ) -> Result<Vec<(usize, std::ops::Range<usize>)>, BufferError> {
        let writes = matches!(block, Block::Write);
        let split = self
            .ty
            .ty
            .split_values(writes, bitmap, values.len())
            .map_err(|e| self.bad_message(msg_type, e.to_string()))?;
        split
            .into_iter()
            .map(|(p, range)| {
                self.ty
                    .slot_by_id(p.id)
                    .and_then(|slot| slot.offset(block))
                    .map(|offset| (offset, range))
                    .ok_or_else(|| {
                        self.bad_message(msg_type, format!("no slot for parameter `{}`", p.name))
                    })
            })
            .collect()
    }

    /// Messages carrying the values of `bitmap`'s parameters from `block`,
    /// packed as `emit_dev_rw` describes. Called with the lock held.
    fn values_messages(
        &self,
        bitmap: u16,
        block: Block,
        msg_type: MessageType,
    ) -> Result<Vec<Message>, BufferError> {
        let mut out = Vec::new();
        self.values_messages_into(bitmap, block, msg_type, &mut out)?;
        Ok(out)
    }

    /// As `values_messages`, appending to `out`, in one pass with one
    /// allocation per message.
    fn values_messages_into(
        &self,
        bitmap: u16,
        block: Block,
        msg_type: MessageType,
        out: &mut Vec<Message>,
    ) -> Result<(), BufferError> {
        let make = |bitmap: u16, values: Vec<u8>| match msg_type {
            MessageType::DevWrite => Message::DevWrite { bitmap, values },
            _ => Message::DevData { bitmap, values },
        };
        let mut bits = 0u16;
        let mut values: Vec<u8> = Vec::new();
        for id in bitmap_ids(bitmap) {
            let Some(slot) = self.ty.slot_by_id(id) else {
                continue;
            };
            let Some(offset) = slot.offset(block) else {
                continue;
            };
            if slot.size + 2 > MAX_PAYLOAD {
                return Err(self.bad_message(
                    msg_type,
                    format!(
                        "parameter `{}` has {} bytes: a message carries at most {}",
                        slot.param.name,
                        slot.size,
                        MAX_PAYLOAD - 2
                    ),
                ));
            }
            if bits != 0 && 2 + values.len() + slot.size > MAX_PAYLOAD {
                out.push(make(bits, std::mem::take(&mut values)));
                bits = 0;
            }
            if values.capacity() == 0 {
                values.reserve_exact(MAX_PAYLOAD - 2);
            }
            bits |= 1 << id;
            let at = values.len();
            values.resize(at + slot.size, 0);
            self.read_bytes(offset, &mut values[at..]);
        }
        if bits != 0 {
            out.push(make(bits, values));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{hex, vectors};
    use crate::value::Bound;

    fn example() -> DeviceBuffer {
        let catalog =
            Catalog::from_json(&vectors()["example_device"]["catalog"].to_string()).unwrap();
        let ty = Arc::new(BufferType::from_catalog(&catalog, "example-device").unwrap());
        DeviceBuffer::try_from(Buffer::new_local(&ty).unwrap()).unwrap()
    }

    fn cobs(messages: &[Message]) -> Vec<Vec<u8>> {
        messages.iter().map(|m| m.encode().unwrap()).collect()
    }

    /// The `cases` of vectors.json, in order, each run on a fresh buffer.
    #[test]
    fn example_device_cases_of_the_vectors() {
        let v = vectors();
        let cases = v["example_device"]["cases"].as_array().unwrap();
        let expect_cobs = |i: usize| -> Vec<Vec<u8>> {
            cases[i]["expect_cobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| hex(c.as_str().unwrap()))
                .collect()
        };
        let update = |d: &DeviceBuffer, i: usize| {
            let m = Message::decode(&hex(cases[i]["cobs"].as_str().unwrap())).unwrap();
            d.update(&m).unwrap()
        };
        assert_eq!(cases.len(), 12, "a new case in vectors.json needs a test");

        let d = example();
        update(&d, 0);
        assert_eq!(d.get("id").unwrap(), ParamValue::UInt(0xDEAD_BEEF));

        let d = example();
        update(&d, 1);
        assert_eq!(
            d.get("duty_cycle").unwrap(),
            ParamValue::Float(f64::from(-0.123f32))
        );

        let d = example();
        d.read(Some(&["flag", "duty_cycle"])).unwrap();
        d.read(Some(&["id"])).unwrap();
        assert_eq!(cobs(&d.emit_dev_rw().unwrap()), expect_cobs(2));

        let d = example();
        d.read(None).unwrap();
        assert_eq!(cobs(&d.emit_dev_rw().unwrap()), expect_cobs(3));

        let d = example();
        d.write("flag", true).unwrap();
        d.write("id", 0xDEAD_BEEFu32).unwrap();
        assert_eq!(cobs(&d.emit_dev_rw().unwrap()), expect_cobs(4));

        for (i, value, warnings) in [(5, -1.0, 0), (6, -1.01, 1), (7, 1.0, 0)] {
            let d = example();
            let w = d.write("pos", value).unwrap();
            assert_eq!(usize::from(w.is_some()), warnings, "case {i}");
            assert_eq!(cobs(&d.emit_dev_rw().unwrap()), expect_cobs(i), "case {i}");
        }

        let d = example();
        d.write("flag", true).unwrap();
        d.write("id", 7u32).unwrap();
        d.write("large", "x".repeat(253).as_str()).unwrap();
        d.write("pos", 0.5).unwrap();
        let sent = d.emit_dev_rw().unwrap();
        assert_eq!(sent.len(), 3, "{sent:?}");
        let bitmaps: Vec<u16> = sent
            .iter()
            .map(|m| match m {
                Message::DevWrite { bitmap, .. } => *bitmap,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(bitmaps, [0b101, 0b1000, 0b10000], "flag+id, large, pos");
        for m in &sent {
            m.encode().unwrap(); // every part fits a frame
        }

        let d = example();
        assert_eq!(
            d.make_sub_req(None, None).unwrap(),
            Message::SubReq {
                params: 0b11110,
                interval_ms: 40
            }
        );

        let d = example();
        let w = d
            .update(&Message::SubReq {
                params: 0b100,
                interval_ms: 5,
            })
            .unwrap();
        assert_eq!(d.interval().unwrap(), 40);
        assert_eq!(d.subscription().unwrap(), 0b100);
        assert_eq!(
            w,
            Some(Warning::IntervalClamped {
                requested_ms: 5,
                granted_ms: 40
            })
        );

        let d = example();
        d.set_valid(false).unwrap();
        let invalid = |r: Result<(), BufferError>| {
            let e = r.unwrap_err();
            assert!(
                e.to_string()
                    .contains("device does not exist (marked as invalid)"),
                "{e}"
            );
        };
        invalid(d.get("id").map(drop));
        invalid(d.set("id", 1u32).map(drop));
        invalid(d.write("id", 1u32).map(drop));
        invalid(d.get_written("id").map(drop));
        invalid(d.read(None));
        invalid(d.emit_dev_rw().map(drop));
        invalid(d.emit_dev_data().map(drop));
        invalid(d.emit_subscription().map(drop));
        invalid(d.make_sub_req(None, None).map(drop));
        invalid(d.make_sub_res().map(drop));
        invalid(d.get_read().map(drop));
        invalid(d.get_write().map(drop));
        invalid(d.get_update().map(drop));
        invalid(d.update(&Message::DevRead { params: 1 }).map(drop));
        invalid(d.uid().map(drop));
        invalid(d.subscription().map(drop));
        invalid(d.interval().map(drop));
        invalid(d.last_write().map(drop));
        invalid(d.last_update().map(drop));
        invalid(d.transaction().map(drop));
        invalid(d.to_json().map(drop));
    }

    #[test]
    fn layout_matches_the_reference() {
        let d = example();
        assert_eq!(d.buffer_type().layout().size, 848);
        assert_eq!(d.segment().data_size(), 848);
        assert_eq!(
            d.segment().data() as usize % 64,
            0,
            "struct aligned in its segment"
        );
    }

    #[test]
    fn bitmaps_are_returned_and_cleared() {
        let d = example();
        d.set("id", 5u32).unwrap();
        d.write("pos", 0.25).unwrap();
        d.read(Some(&["id"])).unwrap();
        assert!(d.last_update().unwrap() > 1.6e9);
        assert!(d.last_write().unwrap() > 1.6e9);
        assert_eq!(d.get_update().unwrap(), 0b100);
        assert_eq!(d.get_update().unwrap(), 0);
        assert_eq!(d.get_write().unwrap(), 0b10000);
        assert_eq!(d.get_read().unwrap(), 0b100);
        assert_eq!(d.get_read().unwrap(), 0);
    }

    #[test]
    fn emit_dev_rw_drops_reads_just_written() {
        let d = example();
        d.read(None).unwrap();
        d.write("id", 1u32).unwrap();
        let sent = d.emit_dev_rw().unwrap();
        assert_eq!(
            sent,
            vec![
                Message::DevWrite {
                    bitmap: 0b100,
                    values: 1u32.to_le_bytes().to_vec()
                },
                Message::DevRead { params: 0b11010 }
            ]
        );
        assert!(d.emit_dev_rw().unwrap().is_empty());
        let (sent, _) = d.metrics().unwrap();
        assert_eq!(sent[4], 1, "one DEV_WRITE counted");
        assert_eq!(sent[3], 1, "one DEV_READ counted");
    }

    #[test]
    fn emit_dev_data_leaves_subscribed_parameters_to_the_subscription() {
        let d = example();
        d.update(&Message::SubReq {
            params: 0b10,
            interval_ms: 100,
        })
        .unwrap();
        d.set("duty_cycle", 0.5).unwrap();
        d.set("id", 9u32).unwrap();
        assert_eq!(
            d.emit_dev_data().unwrap(),
            vec![Message::DevData {
                bitmap: 0b100,
                values: 9u32.to_le_bytes().to_vec()
            }]
        );
        assert!(d.emit_dev_data().unwrap().is_empty());
        assert_eq!(
            d.emit_subscription().unwrap(),
            vec![Message::DevData {
                bitmap: 0b10,
                values: 0.5f32.to_le_bytes().to_vec()
            }]
        );
    }

    #[test]
    fn dev_write_and_sub_res_update_the_buffer() {
        let d = example();
        d.update(&Message::DevWrite {
            bitmap: 0b10001,
            values: vec![1, 0, 0, 0x80, 0x3f],
        })
        .unwrap();
        assert_eq!(d.get_written("flag").unwrap(), ParamValue::Bool(true));
        assert_eq!(d.get_written("pos").unwrap(), ParamValue::Float(1.0));
        assert_eq!(d.get_write().unwrap(), 0b10001);
        let res = Message::SubRes {
            params: 0b110,
            interval_ms: 100,
            device_id: 128,
            year: 0xee,
            random: 0xc0de_beef_dead_beef,
        };
        d.update(&res).unwrap();
        assert_eq!(d.make_sub_res().unwrap(), res);
        assert_eq!(
            d.uid().unwrap().to_u128(),
            (128u128 << 72) | (0xeeu128 << 64) | 0xc0de_beef_dead_beef
        );
        let wrong = Message::SubRes {
            params: 0b110,
            interval_ms: 100,
            device_id: 7,
            year: 0xee,
            random: 1,
        };
        assert!(d
            .update(&wrong)
            .unwrap_err()
            .to_string()
            .contains("device_id 7"));
    }

    #[test]
    fn bad_messages_are_refused_before_writing() {
        let d = example();
        // flag (id 0) is not readable: DEV_DATA cannot carry it.
        let err = d
            .update(&Message::DevData {
                bitmap: 0b101,
                values: vec![1, 2, 3, 4, 5],
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("`flag` (id 0) is not readable"),
            "{err}"
        );
        assert_eq!(d.get("id").unwrap(), ParamValue::UInt(0));
        let err = d
            .update(&Message::DevData {
                bitmap: 0b100,
                values: vec![1, 2],
            })
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("needs 4 value bytes, the message has 2"),
            "{err}"
        );
        let err = d
            .update(&Message::DevData {
                bitmap: 1 << 9,
                values: vec![],
            })
            .unwrap_err();
        assert!(err.to_string().contains("no parameter id 9"), "{err}");
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let d = example();
        let e = d.get("nope").unwrap_err().to_string();
        assert!(
            e.contains("no parameter `nope`") && e.contains("duty_cycle"),
            "{e}"
        );
        let e = d.get("flag").unwrap_err().to_string();
        assert!(e.contains("`flag` is not readable"), "{e}");
        let e = d.write("duty_cycle", 1.0).unwrap_err().to_string();
        assert!(e.contains("`duty_cycle` is not writeable"), "{e}");
        let e = d.set("id", -1).unwrap_err().to_string();
        assert!(e.contains("bad value for parameter `id`"), "{e}");
        let e = d
            .set_json("id", &serde_json::json!("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("parameter `id`"), "{e}");
        let w = d.set("duty_cycle", 2.0).unwrap();
        assert!(w.is_none(), "no bounds on duty_cycle");
        let w = d.write("pos", 3.0).unwrap().unwrap();
        assert!(matches!(w, Warning::Clamped { bound: Bound::Upper, limit, .. } if limit == 1.0));
    }

    #[test]
    fn transactions_nest_and_exclude_other_threads() {
        let catalog =
            Catalog::from_json(r#"{"counter": {"params": [{"name": "n", "type": "uint64"}]}}"#)
                .unwrap();
        let ty = Arc::new(BufferType::from_catalog(&catalog, "counter").unwrap());
        let buffer = Arc::new(Buffer::new_local(&ty).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = buffer.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let _tx = b.transaction().unwrap();
                        let ParamValue::UInt(n) = b.get("n").unwrap() else {
                            panic!()
                        };
                        b.set("n", n + 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(buffer.get("n").unwrap(), ParamValue::UInt(40_000));
        assert_eq!(buffer.to_json().unwrap(), serde_json::json!({"n": 40_000}));
    }

    #[test]
    fn spec_json_reparses_to_the_same_type_and_hash_tells_catalogs_apart() {
        let d = example();
        let ty = d.buffer_type();
        let again = Catalog::from_json(ty.spec_json()).unwrap();
        let again = BufferType::from_catalog(&again, "example-device").unwrap();
        assert_eq!(again.hash(), ty.hash());
        assert_eq!(again.device_type(), ty.device_type());
        let other = vectors()["example_device"]["catalog"]
            .to_string()
            .replace("\"upper\":1", "\"upper\":2");
        let other = Catalog::from_json(&other).unwrap();
        let other = BufferType::from_catalog(&other, "example-device").unwrap();
        assert_ne!(
            other.hash(),
            ty.hash(),
            "a different bound is a different catalog"
        );
    }

    #[test]
    fn plain_types_are_not_smart_devices() {
        let catalog =
            Catalog::from_json(r#"{"plain": {"params": [{"name": "n", "type": "int"}]}}"#).unwrap();
        let ty = Arc::new(BufferType::from_catalog(&catalog, "plain").unwrap());
        let e = DeviceBuffer::try_from(Buffer::new_local(&ty).unwrap()).unwrap_err();
        assert!(e.to_string().contains("needs a Smart Device type"), "{e}");
        let e = BufferType::from_catalog(&catalog, "nope").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no buffer type `nope` in the catalog (it has: plain)"
        );
    }

    // -- shared buffers between real processes ---------------------------

    const CHILD_ENV: &str = "BSE_DEVICE_TEST_BUFFER";
    const INCREMENTS: u64 = 100_000;

    fn counter_type() -> Arc<BufferType> {
        let catalog = Catalog::from_json(
            r#"{"counter": {"params": [{"name": "n", "type": "uint64"}, {"name": "holder", "type": "int32"}]}}"#,
        )
        .unwrap();
        Arc::new(BufferType::from_catalog(&catalog, "counter").unwrap())
    }

    fn unique(tag: &str) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        format!(
            "bsedev-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = Segment::unlink(&self.0);
        }
    }

    fn spawn_child(test: &str, name: &str) -> std::process::Child {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &crate::test_support::test_path(module_path!(), test),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, name)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn add_one(buffer: &Buffer) {
        let _tx = buffer.transaction().unwrap();
        let ParamValue::UInt(n) = buffer.get("n").unwrap() else {
            panic!("n is a uint64")
        };
        buffer.set("n", n + 1).unwrap();
    }

    /// Two real processes (plus this one) add to one counter in shared
    /// memory, each in a transaction: no update is lost.
    #[test]
    fn two_processes_add_without_losing_updates() {
        let name = unique("add");
        let _unlink = Unlink(name.clone());
        let ty = counter_type();
        let buffer = Buffer::create_shared(&name, &ty).unwrap();
        let children: Vec<_> = (0..2).map(|_| spawn_child("child_adds", &name)).collect();
        for _ in 0..INCREMENTS {
            add_one(&buffer);
        }
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "child failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(buffer.get("n").unwrap(), ParamValue::UInt(3 * INCREMENTS));
    }

    /// Child of `two_processes_add_without_losing_updates`.
    #[test]
    #[ignore]
    fn child_adds() {
        let Ok(name) = std::env::var(CHILD_ENV) else {
            return;
        };
        let buffer = Buffer::attach_shared(&name, &counter_type()).unwrap();
        assert!(!buffer.is_owner());
        for _ in 0..INCREMENTS {
            add_one(&buffer);
        }
    }

    /// A process killed (SIGKILL) in the middle of a transaction: the next
    /// locker recovers the mutex instead of blocking forever.
    #[test]
    fn a_holder_killed_mid_transaction_does_not_block_the_others() {
        let name = unique("kill");
        let _unlink = Unlink(name.clone());
        let buffer = Arc::new(Buffer::create_shared(&name, &counter_type()).unwrap());
        let mut child = spawn_child("child_holds_forever", &name);
        // The child says on stdout when it holds the lock (reading the
        // buffer would wait for that very lock).
        let stdout = child.stdout.take().unwrap();
        let (said, heard) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("HOLDING THE LOCK") {
                    let _ = said.send(());
                }
            }
        });
        let held = heard.recv_timeout(std::time::Duration::from_secs(20));
        child.kill().unwrap();
        held.expect("the child never took the lock");
        child.wait().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let b = buffer.clone();
        std::thread::spawn(move || {
            let _ = tx.send(b.set("n", 5u64).map(drop).map_err(|e| e.to_string()));
        });
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("locking after the holder was killed hung")
            .unwrap();
        assert_eq!(buffer.get("n").unwrap(), ParamValue::UInt(5));
        assert!(matches!(buffer.get("holder").unwrap(), ParamValue::Int(pid) if pid > 0));
    }

    /// Child of `a_holder_killed_mid_transaction_does_not_block_the_others`.
    #[test]
    #[ignore]
    fn child_holds_forever() {
        let Ok(name) = std::env::var(CHILD_ENV) else {
            return;
        };
        let buffer = Buffer::attach_shared(&name, &counter_type()).unwrap();
        let _tx = buffer.transaction().unwrap();
        // Announce from inside the transaction (the lock is recursive),
        // then hold it until killed.
        buffer.set("holder", std::process::id() as i32).unwrap();
        println!("HOLDING THE LOCK");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }

    #[test]
    fn attaching_with_another_catalog_is_refused_and_open_reads_the_stored_type() {
        let name = unique("mismatch");
        let _unlink = Unlink(name.clone());
        let created = Buffer::create_shared(&name, &counter_type()).unwrap();
        created.set("n", 9u64).unwrap();
        let other = Catalog::from_json(
            r#"{"counter": {"params": [{"name": "n", "type": "uint32"}, {"name": "holder", "type": "int32"}]}}"#,
        )
        .unwrap();
        let other = Arc::new(BufferType::from_catalog(&other, "counter").unwrap());
        let err = Buffer::attach_shared(&name, &other)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&name) && err.contains("counter"), "{err}");
        let opened = Buffer::open_shared(&name).unwrap();
        assert_eq!(opened.buffer_type().hash(), counter_type().hash());
        assert_eq!(opened.get("n").unwrap(), ParamValue::UInt(9));
        // Closing the owner marks the buffer invalid for everyone.
        created.close();
        let err = opened.get("n").unwrap_err().to_string();
        assert!(
            err.contains("device does not exist (marked as invalid)"),
            "{err}"
        );
        assert!(!opened.is_valid().unwrap());
    }

    #[test]
    fn handles_work_like_names_and_refuse_other_types() {
        let d = example();
        let id = d.param("id").unwrap();
        d.set_at(id, 41u32).unwrap();
        assert_eq!(d.get_at(id).unwrap(), ParamValue::UInt(41));
        assert_eq!(d.get("id").unwrap(), ParamValue::UInt(41));
        let pos = d.param("pos").unwrap();
        assert!(
            d.write_at(pos, 5.0).unwrap().is_some(),
            "clamped as by name"
        );
        assert_eq!(d.get_written("pos").unwrap(), ParamValue::Float(1.0));
        let flag = d.param("flag").unwrap();
        assert!(d
            .get_at(flag)
            .unwrap_err()
            .to_string()
            .contains("`flag` is not readable"));
        assert!(d.param("nope").is_err());
        let other = Buffer::new_local(&counter_type()).unwrap();
        let n = other.param("n").unwrap();
        let e = d.set_at(n, 1u64).unwrap_err().to_string();
        assert!(
            e.contains("handle belongs to a buffer of another type"),
            "{e}"
        );
    }

    /// `set` and `get` take fixed-size fast paths for scalars; whatever they
    /// do must be exactly what the general encoder and decoder do: same
    /// bytes, values, warnings and refusals.
    #[test]
    fn the_scalar_fast_path_agrees_with_the_general_encoder() {
        let catalog = Catalog::from_json(
            r#"{"t": {"params": [
                {"name": "bounded", "type": "float", "lower": -1, "upper": 1},
                {"name": "free", "type": "float"},
                {"name": "dbl", "type": "double", "lower": 0, "upper": 1e300},
                {"name": "i8", "type": "int8"},
                {"name": "u16", "type": "uint16"},
                {"name": "i32", "type": "int32"},
                {"name": "u64", "type": "uint64"},
                {"name": "b", "type": "bool"}
            ]}}"#,
        )
        .unwrap();
        let ty = Arc::new(BufferType::from_catalog(&catalog, "t").unwrap());
        let buffer = Buffer::new_local(&ty).unwrap();
        let max = f64::from(f32::MAX);
        let values = [
            ParamValue::Float(0.5),
            ParamValue::Float(-0.0),
            ParamValue::Float(1.0),
            ParamValue::Float(-1.0),
            ParamValue::Float(1.5),
            ParamValue::Float(-7.0),
            ParamValue::Float(f64::NAN),
            ParamValue::Float(f64::INFINITY),
            ParamValue::Float(f64::NEG_INFINITY),
            ParamValue::Float(max),
            ParamValue::Float(-max),
            ParamValue::Float(max * 1.000_000_01),
            ParamValue::Float(1e39),
            ParamValue::Float(1e-50),
            ParamValue::Int(-129),
            ParamValue::Int(-128),
            ParamValue::Int(-1),
            ParamValue::Int(127),
            ParamValue::UInt(128),
            ParamValue::UInt(65_535),
            ParamValue::UInt(65_536),
            ParamValue::Int(i64::MIN),
            ParamValue::UInt(u64::MAX),
            ParamValue::Bool(true),
            ParamValue::Bool(false),
            ParamValue::Text("x".into()),
        ];
        for slot in &ty.slots {
            let name = &slot.param.name;
            for value in &values {
                let mut expected = vec![0u8; slot.size];
                let general = encode(&slot.param, value, &mut expected);
                // A marker, so an unchanged field is told from a stored zero.
                buffer.write_bytes(slot.update_offset.unwrap(), &vec![0xA5; slot.size]);
                let result = buffer.set(name, value.clone());
                let mut stored = vec![0u8; slot.size];
                buffer.read_bytes(slot.update_offset.unwrap(), &mut stored);
                match (&general, &result) {
                    (Ok(warning), Ok(got)) => {
                        assert_eq!(got, warning, "{name} = {value:?}: warning");
                        assert_eq!(stored, expected, "{name} = {value:?}: bytes");
                        // And `get`'s fast path decodes as the general decoder.
                        assert_eq!(
                            buffer.get(name).unwrap(),
                            decode(&slot.param.ty, &expected),
                            "{name} = {value:?}: get"
                        );
                    }
                    (Err(_), Err(BufferError::BadValue { param, .. })) => {
                        assert_eq!(param, name);
                        assert_eq!(stored, vec![0xA5; slot.size], "{name} = {value:?}: written");
                    }
                    _ => panic!("{name} = {value:?}: general {general:?}, set {result:?}"),
                }
            }
        }
    }

    /// A segment whose data is smaller than the type it claims (a header
    /// from an incompatible writer) is refused, never accessed.
    #[test]
    fn a_segment_smaller_than_its_type_is_refused() {
        let ty = counter_type();
        let spec = SegmentSpec {
            data_size: 1,
            ..ty.segment_spec()
        };
        let segment = Segment::new_local(&spec).unwrap();
        // SAFETY: the region is `segment`'s, alive until the end of the test.
        let err =
            unsafe { Buffer::from_raw_segment(segment.base(), segment.len(), &ty) }.unwrap_err();
        assert!(matches!(err, BufferError::LayoutTooLarge { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("needs 24 bytes") && text.contains("recreate"),
            "{text}"
        );
    }
}
