//! [`BufferType`]: a catalog type prepared for buffers (its layout, each
//! parameter's slot and fast encoding, the stored spec and its hash), and
//! [`ParamHandle`], a parameter looked up once.

use serde_json::{json, Map, Value as Json};

use super::error::BufferError;
use crate::catalog::{Catalog, DeviceType, Layout, Param};
use crate::segment::SegmentSpec;
use crate::value::ParamValue;

/// A parameter's place in the struct (offsets from the struct's start).
#[derive(Clone, Debug)]
pub(super) struct Slot {
    pub(super) param: Param,
    pub(super) update_offset: Option<usize>,
    pub(super) write_offset: Option<usize>,
    pub(super) size: usize,
    /// How a scalar of at most 8 bytes is encoded without the general
    /// machinery (`None` for vectors).
    pub(super) fast: Option<FastScalar>,
}

impl Slot {
    /// A scalar of at most 8 bytes: read as one integer.
    #[inline]
    pub(super) fn is_small_scalar(&self) -> bool {
        self.param.ty.dims.is_empty() && self.size <= 8
    }

    /// Its offset in the update or the write block, if it has one there.
    #[inline]
    pub(super) fn offset(&self, block: Block) -> Option<usize> {
        match block {
            Block::Update => self.update_offset,
            Block::Write => self.write_offset,
        }
    }
}

/// A scalar parameter's encoding, decided once per type.
#[derive(Clone, Copy, Debug)]
pub(super) enum FastScalar {
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
        use crate::catalog::Scalar;
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
    pub(super) fn encode(self, value: &ParamValue) -> Option<u64> {
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
    pub(super) ty: DeviceType,
    pub(super) layout: Layout,
    spec_json: String,
    pub(super) hash: u64,
    pub(super) slots: Vec<Slot>,
    by_id: [Option<u8>; 16],
    pub(super) readable_mask: u16,
    pub(super) subscribed_mask: u16,
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

    pub(super) fn segment_spec(&self) -> SegmentSpec<'_> {
        SegmentSpec {
            type_name: &self.ty.name,
            type_hash: self.hash,
            data_size: self.layout.size,
            data_align: self.layout.align,
            spec_json: &self.spec_json,
        }
    }

    #[inline]
    pub(super) fn slot(&self, buffer: &str, name: &str) -> Result<&Slot, BufferError> {
        self.slot_index(buffer, name)
            .map(|index| &self.slots[index])
    }

    /// Where parameter `name` is in `slots`.
    #[inline]
    pub(super) fn slot_index(&self, buffer: &str, name: &str) -> Result<usize, BufferError> {
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

    pub(super) fn slot_by_id(&self, id: u8) -> Option<&Slot> {
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

/// Which of a parameter's two copies an operation uses.
#[derive(Clone, Copy)]
pub(super) enum Block {
    /// The update block: readable parameters (`get`, `set`, `DEV_DATA`).
    Update,
    /// The write block: writeable parameters (`write`, `DEV_WRITE`).
    Write,
}

/// A parameter looked up once ([`Buffer::param`](super::Buffer::param)); valid for every buffer
/// of the same type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamHandle {
    pub(super) index: usize,
    pub(super) type_hash: u64,
}
