//! Smart Device messages from and into a [`DeviceBuffer`]: `DEV_WRITE`,
//! `DEV_READ` and `DEV_DATA` built from the pending bitmaps, `SUB_REQ` and
//! `SUB_RES` from the control block, and every received message applied.

use super::error::BufferError;
use super::smart::{DeviceBuffer, DeviceUid};
use super::types::Block;
use crate::catalog::{control_offsets as ctl, METRICS_RECV};
use crate::clock::now;
use crate::message::{bitmap_ids, Message, MessageType, MAX_VALUES};
use crate::value::Warning;

/// Least non-zero subscription interval a device grants, in milliseconds.
pub const MIN_INTERVAL_MS: u16 = 40;
/// Greatest subscription interval a device grants, in milliseconds.
pub const MAX_INTERVAL_MS: u16 = 250;

impl DeviceBuffer {
    fn count(&self, messages: &[Message], received: bool) {
        for m in messages {
            let slot = self.metrics
                + if received { METRICS_RECV } else { 0 }
                + 8 * usize::from(m.message_type().id() & 0x0f);
            self.write_u64(slot, self.read_u64(slot).wrapping_add(1));
        }
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
            if slot.size > MAX_VALUES {
                return Err(self.bad_message(
                    msg_type,
                    format!(
                        "parameter `{}` has {} bytes: a message carries at most {}",
                        slot.param.name, slot.size, MAX_VALUES
                    ),
                ));
            }
            if bits != 0 && values.len() + slot.size > MAX_VALUES {
                out.push(make(bits, std::mem::take(&mut values)));
                bits = 0;
            }
            if values.capacity() == 0 {
                values.reserve_exact(MAX_VALUES);
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
