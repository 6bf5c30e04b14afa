//! [`DeviceBuffer`]: a Smart Device's buffer, with its control block's
//! UID, subscription, interval, bitmaps and time stamps, and its metrics.

use std::ops::Deref;

use super::buffer::Buffer;
use super::error::BufferError;
use crate::catalog::{control_offsets as ctl, METRICS_RECV};

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
    pub(super) control: usize,
    pub(super) metrics: usize,
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
            received[i] = self.read_u64(self.metrics + METRICS_RECV + 8 * i);
        }
        Ok((sent, received))
    }

    pub(super) fn bitmap_of(&self, params: &[&str]) -> Result<u16, BufferError> {
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
}
