//! The C layout of a buffer type: `repr(C)`, natural alignment, no packing,
//! x86_64 Linux (the crate's `README.md`, "Layout"). A buffer is
//! `valid_flag: bool`, the update block (readable parameters), the write
//! block (writeable parameters) and, for a Smart Device, the `control` and
//! `metrics` structs defined here.

use std::mem::{align_of, offset_of, size_of};

use serde::Serialize;

use super::model::{DeviceType, Param};

/// A Smart Device's Universal ID as stored in its `control` struct. The one
/// definition of that layout: the constants below are derived from it.
#[repr(C)]
struct DeviceUidC {
    device_id: u16,
    year: u8,
    random: u64,
}

/// A Smart Device's `control` struct (the one definition of its layout).
#[repr(C)]
struct Control {
    uid: DeviceUidC,
    subscription: u16,
    interval: u16,
    read: u16,
    write: u16,
    update: u16,
    last_write: f64,
    last_update: f64,
}

/// A Smart Device's `metrics` struct: messages sent and received, per type.
#[repr(C)]
struct Metrics {
    send: [u64; 16],
    recv: [u64; 16],
}

/// Size in bytes of a `DeviceUID` (`device_id u16 @0, year u8 @2, random u64 @8`).
pub const DEVICE_UID_SIZE: usize = size_of::<DeviceUidC>();
/// Size in bytes of a Smart Device's `control` struct.
pub const CONTROL_SIZE: usize = size_of::<Control>();
/// Alignment of a Smart Device's `control` struct.
pub const CONTROL_ALIGN: usize = align_of::<Control>();
/// Size in bytes of a Smart Device's `metrics` struct (`send: u64[16], recv: u64[16]`).
pub const METRICS_SIZE: usize = size_of::<Metrics>();
/// Alignment of a Smart Device's `metrics` struct.
pub const METRICS_ALIGN: usize = align_of::<Metrics>();
/// Offset of `metrics.recv` within `metrics` (`send` is at 0).
pub(crate) const METRICS_RECV: usize = offset_of!(Metrics, recv);

/// Byte offsets of the members of `DeviceUID` and of the `control` struct,
/// relative to the start of that struct.
pub mod control_offsets {
    use super::{Control, DeviceUidC};
    use std::mem::offset_of;

    /// `DeviceUID.device_id: u16`.
    pub const UID_DEVICE_ID: usize = offset_of!(DeviceUidC, device_id);
    /// `DeviceUID.year: u8`.
    pub const UID_YEAR: usize = offset_of!(DeviceUidC, year);
    /// `DeviceUID.random: u64`.
    pub const UID_RANDOM: usize = offset_of!(DeviceUidC, random);
    /// `control.uid: DeviceUID`.
    pub const UID: usize = offset_of!(Control, uid);
    /// `control.subscription: u16` (bitmap of subscribed parameter ids).
    pub const SUBSCRIPTION: usize = offset_of!(Control, subscription);
    /// `control.interval: u16` (subscription interval in ms).
    pub const INTERVAL: usize = offset_of!(Control, interval);
    /// `control.read: u16` (bitmap of parameters to read).
    pub const READ: usize = offset_of!(Control, read);
    /// `control.write: u16` (bitmap of parameters to write).
    pub const WRITE: usize = offset_of!(Control, write);
    /// `control.update: u16` (bitmap of updated parameters).
    pub const UPDATE: usize = offset_of!(Control, update);
    /// `control.last_write: f64`.
    pub const LAST_WRITE: usize = offset_of!(Control, last_write);
    /// `control.last_update: f64`.
    pub const LAST_UPDATE: usize = offset_of!(Control, last_update);
}

// The layout the README documents (and Python's ctypes computes), for the
// target it is documented for.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const _: () = {
    use control_offsets as c;
    assert!(DEVICE_UID_SIZE == 16 && CONTROL_SIZE == 48 && CONTROL_ALIGN == 8);
    assert!(METRICS_SIZE == 256 && METRICS_ALIGN == 8 && METRICS_RECV == 128);
    assert!(c::UID_DEVICE_ID == 0 && c::UID_YEAR == 2 && c::UID_RANDOM == 8 && c::UID == 0);
    assert!(c::SUBSCRIPTION == 16 && c::INTERVAL == 18 && c::READ == 20);
    assert!(c::WRITE == 22 && c::UPDATE == 24 && c::LAST_WRITE == 32 && c::LAST_UPDATE == 40);
};

impl DeviceType {
    /// The C layout of this type's buffer.
    pub fn layout(&self) -> Layout {
        let mut offset = 1; // valid_flag: bool @0
        let mut align = 1;
        let mut update_block = BlockLayout::of(self.params.iter().filter(|p| p.readable));
        update_block.offset = align_up(offset, update_block.align);
        offset = update_block.offset + update_block.size;
        align = align.max(update_block.align);
        let mut write_block = BlockLayout::of(self.params.iter().filter(|p| p.writeable));
        write_block.offset = align_up(offset, write_block.align);
        offset = write_block.offset + write_block.size;
        align = align.max(write_block.align);
        let (control_offset, metrics_offset) = if self.is_smart() {
            let control = align_up(offset, CONTROL_ALIGN);
            let metrics = align_up(control + CONTROL_SIZE, METRICS_ALIGN);
            offset = metrics + METRICS_SIZE;
            align = align.max(CONTROL_ALIGN).max(METRICS_ALIGN);
            (Some(control), Some(metrics))
        } else {
            (None, None)
        };
        Layout {
            size: align_up(offset, align),
            align,
            valid_flag_offset: 0,
            update_block,
            write_block,
            control_offset,
            metrics_offset,
        }
    }
}

fn align_up(x: usize, align: usize) -> usize {
    x.div_ceil(align) * align
}

/// One field of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldLayout {
    /// Parameter name.
    pub name: String,
    /// Offset within the block.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Alignment in bytes.
    pub align: usize,
    /// C declaration type, e.g. `float`, `char[253]`, `uint64_t[8][8]`.
    pub c_type: String,
}

/// A nested struct of parameters (the update block or the write block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockLayout {
    /// Offset of the block within the buffer.
    pub offset: usize,
    /// Size in bytes (0 when empty), rounded up to `align`.
    pub size: usize,
    /// Alignment: the largest member alignment, 1 when empty.
    pub align: usize,
    /// Fields in catalog order.
    pub fields: Vec<FieldLayout>,
}

impl BlockLayout {
    fn of<'a>(params: impl Iterator<Item = &'a Param>) -> BlockLayout {
        let mut fields = Vec::new();
        let mut end = 0;
        let mut align = 1;
        for p in params {
            let a = p.ty.align();
            let offset = align_up(end, a);
            let size = p.ty.size();
            end = offset + size;
            align = align.max(a);
            fields.push(FieldLayout {
                name: p.name.clone(),
                offset,
                size,
                align: a,
                c_type: p.ty.c_type(),
            });
        }
        BlockLayout {
            offset: 0,
            size: align_up(end, align),
            align,
            fields,
        }
    }

    /// The field for parameter `name`.
    pub fn field(&self, name: &str) -> Option<&FieldLayout> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The C layout of a buffer type (all offsets in bytes from the buffer start,
/// except [`FieldLayout::offset`], which is within its block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// Total size, rounded up to `align`.
    pub size: usize,
    /// Alignment of the whole struct.
    pub align: usize,
    /// Offset of `valid_flag: bool` (always 0).
    pub valid_flag_offset: usize,
    /// The readable parameters.
    pub update_block: BlockLayout,
    /// The writeable parameters.
    pub write_block: BlockLayout,
    /// Offset of `control` (Smart Devices only).
    pub control_offset: Option<usize>,
    /// Offset of `metrics` (Smart Devices only).
    pub metrics_offset: Option<usize>,
}
