//! A buffer's parameters: `get`, `set` and `write` by name, by
//! [`ParamHandle`] and from JSON, and the whole update or write block as
//! JSON. On a Smart Device `set` and `write` also mark the parameter in
//! the control block's bitmaps and stamp the time.

use serde_json::{Map, Value as Json};

use super::buffer::Buffer;
use super::error::BufferError;
use super::types::{Block, ParamHandle, Slot};
use crate::catalog::control_offsets as ctl;
use crate::clock::now;
use crate::value::{decode, encode, ParamValue, ValueError, Warning};

impl Buffer {
    /// Reads readable parameter `name` (the update block).
    pub fn get(&self, name: &str) -> Result<ParamValue, BufferError> {
        self.load(name, Block::Update)
    }

    /// Reads the pending (write-block) value of writeable parameter `name`.
    pub fn get_written(&self, name: &str) -> Result<ParamValue, BufferError> {
        self.load(name, Block::Write)
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
        self.store_to(name, value, Block::Update)
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
        self.store_to(name, value, Block::Write)
    }

    /// [`Buffer::get`] through a handle from [`Buffer::param`].
    #[inline]
    pub fn get_at(&self, handle: ParamHandle) -> Result<ParamValue, BufferError> {
        self.load(handle, Block::Update)
    }

    /// [`Buffer::set`] through a handle from [`Buffer::param`].
    #[inline]
    pub fn set_at(
        &self,
        handle: ParamHandle,
        value: impl Into<ParamValue>,
    ) -> Result<Option<Warning>, BufferError> {
        self.store_to(handle, value, Block::Update)
    }

    /// [`Buffer::write`] through a handle from [`Buffer::param`].
    #[inline]
    pub fn write_at(
        &self,
        handle: ParamHandle,
        value: impl Into<ParamValue>,
    ) -> Result<Option<Warning>, BufferError> {
        self.store_to(handle, value, Block::Write)
    }

    /// The one implementation of `get`, `get_written` and `get_at`.
    #[inline]
    fn load(&self, param: impl ParamKey, block: Block) -> Result<ParamValue, BufferError> {
        let slot = param.slot_in(self)?;
        let offset = self.offset_of(slot, block)?;
        self.read_value(slot, offset)
    }

    /// The one implementation of `set`, `write`, `set_at` and `write_at`.
    #[inline]
    fn store_to(
        &self,
        param: impl ParamKey,
        value: impl Into<ParamValue>,
        block: Block,
    ) -> Result<Option<Warning>, BufferError> {
        let slot = param.slot_in(self)?;
        let offset = self.offset_of(slot, block)?;
        self.store(slot, offset, &value.into(), block)
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
            return Ok(crate::value::decode_scalar_bits(slot.param.ty.scalar, bits));
        }
        let _guard = self.lock_valid()?;
        Ok(self.value_at(slot, offset))
    }

    /// The value of `slot` at `offset`; the caller holds the lock.
    fn value_at(&self, slot: &Slot, offset: usize) -> ParamValue {
        if slot.is_small_scalar() {
            let bits = self.read_small(offset, slot.size);
            return crate::value::decode_scalar_bits(slot.param.ty.scalar, bits);
        }
        let mut scratch = Scratch::new(slot.size);
        self.read_bytes(offset, scratch.as_mut());
        decode(&slot.param.ty, scratch.as_mut())
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
        let slot = name.slot_in(self)?;
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
}

/// How an operation names its parameter: by name (looked up in the type)
/// or by a [`ParamHandle`] (checked to belong to the buffer's type). The
/// by-name and `*_at` operations share one implementation through it.
trait ParamKey: Copy {
    /// The parameter's slot in `buffer`'s type, or why there is none.
    fn slot_in(self, buffer: &Buffer) -> Result<&Slot, BufferError>;
}

impl ParamKey for &str {
    #[inline(always)]
    fn slot_in(self, buffer: &Buffer) -> Result<&Slot, BufferError> {
        buffer.ty.slot(&buffer.label, self)
    }
}

impl ParamKey for ParamHandle {
    #[inline(always)]
    fn slot_in(self, buffer: &Buffer) -> Result<&Slot, BufferError> {
        buffer.slot_at(self)
    }
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
