//! Frames and their COBS encoding: `[type u8][payload length u8][payload
//! 0..=255][checksum u8]`, the checksum the XOR of every preceding byte;
//! on the wire COBS-encoded (the [`cobs`] crate) and followed by one
//! `0x00` delimiter. Decoding is strict: every malformed input is refused
//! with its own [`MessageError`] variant.

use super::spec::{Message, MessageError, MessageType, FRAME_OVERHEAD, MAX_PAYLOAD};

/// XOR of all bytes: the frame checksum.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

impl Message {
    /// The payload bytes (not yet checked against [`MAX_PAYLOAD`]).
    pub fn payload(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        self.payload_parts(|part| payload.extend_from_slice(part));
        payload
    }

    /// The raw frame: `[type][payload len][payload][checksum]`.
    ///
    /// Fails with [`MessageError::PayloadTooLong`] if the payload exceeds
    /// [`MAX_PAYLOAD`] bytes.
    pub fn to_frame(&self) -> Result<Vec<u8>, MessageError> {
        let mut frame = [0u8; MAX_PAYLOAD + FRAME_OVERHEAD];
        let n = self.frame_into(&mut frame)?;
        Ok(frame[..n].to_vec())
    }

    /// The COBS encoding of the frame, without the trailing `0x00` delimiter.
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        // The frame on the stack, the COBS output in one exact allocation.
        let mut frame = [0u8; MAX_PAYLOAD + FRAME_OVERHEAD];
        let n = self.frame_into(&mut frame)?;
        let mut out = vec![0u8; cobs::max_encoding_length(n)];
        let len = cobs::encode(&frame[..n], &mut out);
        out.truncate(len);
        Ok(out)
    }

    /// Writes the frame into `frame`; answers its length.
    fn frame_into(
        &self,
        frame: &mut [u8; MAX_PAYLOAD + FRAME_OVERHEAD],
    ) -> Result<usize, MessageError> {
        let mut len = 0;
        self.payload_parts(|part| len += part.len());
        if len > MAX_PAYLOAD {
            return Err(MessageError::PayloadTooLong { len });
        }
        let mut n = 2;
        self.payload_parts(|part| {
            frame[n..n + part.len()].copy_from_slice(part);
            n += part.len();
        });
        frame[0] = self.message_type().id();
        frame[1] = len as u8;
        frame[n] = checksum(&frame[..n]);
        Ok(n + 1)
    }

    /// The COBS encoding of the frame followed by the `0x00` delimiter, as
    /// sent on the wire.
    pub fn encode_delimited(&self) -> Result<Vec<u8>, MessageError> {
        let mut out = self.encode()?;
        out.push(0);
        Ok(out)
    }

    /// Decodes COBS data (without delimiter, or with exactly one trailing
    /// `0x00`) into a message, strictly (see [`Message::from_frame`]).
    pub fn decode(data: &[u8]) -> Result<Self, MessageError> {
        let body = data.strip_suffix(&[0]).unwrap_or(data);
        if let Some(offset) = body.iter().position(|&b| b == 0) {
            return Err(MessageError::StrayZero { offset });
        }
        if body.is_empty() {
            return Err(MessageError::BadCobs {
                reason: "no data".into(),
            });
        }
        // Into a stack frame (a COBS decoding is never longer than its
        // input); an over-long input is still decoded, to be reported as such.
        let mut stack = [0u8; 2 * (MAX_PAYLOAD + FRAME_OVERHEAD)];
        let mut heap = Vec::new();
        let out: &mut [u8] = if body.len() <= stack.len() {
            &mut stack
        } else {
            heap.resize(body.len(), 0);
            &mut heap
        };
        let n = cobs::decode(body, out).map_err(|e| MessageError::BadCobs {
            reason: e.to_string(),
        })?;
        Self::from_frame(&out[..n])
    }

    /// Parses a raw frame, refusing truncated or over-long frames, bad
    /// checksums, unknown types and error codes, and payload lengths the
    /// type does not allow.
    pub fn from_frame(frame: &[u8]) -> Result<Self, MessageError> {
        if frame.len() < FRAME_OVERHEAD {
            return Err(MessageError::Truncated {
                needed: FRAME_OVERHEAD,
                found: frame.len(),
            });
        }
        let len = usize::from(frame[1]);
        let total = len + FRAME_OVERHEAD;
        if frame.len() < total {
            return Err(MessageError::Truncated {
                needed: total,
                found: frame.len(),
            });
        }
        if frame.len() > total {
            return Err(MessageError::OverLong {
                expected: total,
                found: frame.len(),
            });
        }
        let expected = checksum(&frame[..total - 1]);
        let found = frame[total - 1];
        if expected != found {
            return Err(MessageError::BadChecksum { expected, found });
        }
        let msg_type = MessageType::try_from(frame[0])?;
        let (min, max) = msg_type.payload_len();
        if len < min || len > max {
            return Err(MessageError::BadPayloadLength {
                msg_type,
                min,
                max,
                found: len,
            });
        }
        Self::from_payload(msg_type, &frame[2..2 + len])
    }
}
