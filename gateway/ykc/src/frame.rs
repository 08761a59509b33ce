//! YKC framing: `68 L seq(2) enc type body CRC(2)`, where L counts the sequence number, the
//! encryption flag, the type and the body, and the CRC-16/MODBUS covers the same L bytes.
//!
//! Real piles get parts of it wrong, so the reader is lenient and the writer is strict:
//! - the CRC is accepted in either byte order (11 of 32 verifying pile samples send it high
//!   byte first); which one a pile used is reported so the session can record it; we always
//!   send it low byte first, as Modbus RTU does;
//! - a length byte that counts only the body (some platforms' downlinks) is accepted when the
//!   CRC proves that reading; we always send the right L;
//! - bytes before a frame's 0x68, or a 0x68 that begins no frame, are skipped and counted;
//! - the reader holds at most one frame's worth of bytes beyond what it was just given, so a
//!   client cannot make it hold more.

use crate::CodecError;

/// The byte every frame starts with.
pub const START: u8 = 0x68;
/// The longest frame on the wire: start, L, L ≤ 255 bytes, CRC.
pub const MAX_FRAME: usize = 2 + 255 + 2;
/// The longest body a frame can carry (L = 4 + body ≤ 255).
pub const MAX_BODY: usize = 255 - 4;

/// How a pile orders the two CRC bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrcOrder {
    /// Low byte first: the documented order, and ours.
    LowFirst,
    /// High byte first: the quirk of some pile firmware.
    HighFirst,
}

impl CrcOrder {
    /// The two CRC bytes of `crc` in this order.
    pub fn bytes(self, crc: u16) -> [u8; 2] {
        match self {
            Self::LowFirst => crc.to_le_bytes(),
            Self::HighFirst => crc.to_be_bytes(),
        }
    }
}

/// CRC-16/MODBUS: initial 0xFFFF, reflected polynomial 0xA001, no final XOR.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0xFFFF_u16, |crc, &byte| {
        let index = ((crc ^ u16::from(byte)) & 0xFF) as usize;
        (crc >> 8) ^ CRC_TABLE[index]
    })
}

const CRC_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// One frame, its fields as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The sequence number's two bytes as they came: a reply echoes them verbatim (implementations
    /// disagree on their byte order).
    pub sequence: [u8; 2],
    /// 0x00 plain, 0x01 3DES over the body.
    pub encryption: u8,
    /// The frame type: odd from the pile, even from the platform (with exceptions such as 0x12).
    pub kind: u8,
    pub body: Vec<u8>,
}

impl Frame {
    /// A plain frame.
    pub fn new(sequence: [u8; 2], kind: u8, body: Vec<u8>) -> Self {
        Self {
            sequence,
            encryption: 0,
            kind,
            body,
        }
    }

    /// The frame on the wire, with the right length byte and the CRC in `order`.
    pub fn encode_with(&self, order: CrcOrder) -> Result<Vec<u8>, CodecError> {
        if self.body.len() > MAX_BODY {
            return Err(CodecError::BodyTooLong {
                kind: self.kind,
                len: self.body.len(),
            });
        }
        let mut out = Vec::with_capacity(self.body.len() + 8);
        out.push(START);
        out.push((self.body.len() + 4) as u8);
        out.extend_from_slice(&self.sequence);
        out.push(self.encryption);
        out.push(self.kind);
        out.extend_from_slice(&self.body);
        let crc = crc16(&out[2..]);
        out.extend_from_slice(&order.bytes(crc));
        Ok(out)
    }

    /// The frame on the wire as we send it: CRC low byte first.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        self.encode_with(CrcOrder::LowFirst)
    }
}

/// A frame read from the wire, with the quirks it showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub frame: Frame,
    pub crc_order: CrcOrder,
    /// The length byte counted only the body.
    pub body_length_quirk: bool,
}

/// Whether a frame begins at a position.
enum Attempt {
    /// A frame of this many bytes.
    Frame(Received, usize),
    /// Not enough bytes yet to tell.
    Incomplete,
    /// No frame begins here.
    Invalid,
}

/// Checks the `len` bytes at `bytes[0..]` as a frame whose covered span (sequence to body end)
/// is `span` bytes; `None` when its CRC fails in both orders.
fn check(bytes: &[u8], span: usize, quirk: bool) -> Option<(Received, usize)> {
    let covered = bytes.get(2..2 + span)?;
    let stored = bytes.get(2 + span..4 + span)?;
    let crc = crc16(covered);
    let order = [CrcOrder::LowFirst, CrcOrder::HighFirst]
        .into_iter()
        .find(|order| order.bytes(crc) == stored)?;
    let frame = Frame {
        sequence: [covered[0], covered[1]],
        encryption: covered[2],
        kind: covered[3],
        body: covered[4..].to_vec(),
    };
    Some((
        Received {
            frame,
            crc_order: order,
            body_length_quirk: quirk,
        },
        span + 4,
    ))
}

/// Tries to read a frame at the start of `bytes` (which begins with 0x68).
fn attempt(bytes: &[u8]) -> Attempt {
    let Some(&length) = bytes.get(1) else {
        return Attempt::Incomplete;
    };
    let length = usize::from(length);
    // The documented reading: L covers sequence, flag, type and body.
    if length >= 4 {
        if bytes.len() < length + 4 {
            return Attempt::Incomplete;
        }
        if let Some((received, len)) = check(bytes, length, false) {
            return Attempt::Frame(received, len);
        }
    }
    // The quirk: L counts only the body.
    let span = length + 4;
    if bytes.len() < span + 4 {
        return Attempt::Incomplete;
    }
    match check(bytes, span, true) {
        Some((received, len)) => Attempt::Frame(received, len),
        None => Attempt::Invalid,
    }
}

/// Reads frames out of a byte stream, however it is split or coalesced.
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    skipped: u64,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, if the bytes so far hold one. Bytes that begin no frame are
    /// dropped (and counted); what is kept is at most the start of one frame.
    pub fn next_frame(&mut self) -> Option<Received> {
        let mut waiting: Option<usize> = None;
        let mut at = 0;
        while let Some(offset) = self.buffer[at..].iter().position(|&b| b == START) {
            let start = at + offset;
            match attempt(&self.buffer[start..]) {
                Attempt::Frame(received, len) => {
                    self.skipped += start as u64;
                    self.buffer.drain(..start + len);
                    return Some(received);
                }
                // A frame may still be arriving here; a later 0x68 may already hold a whole
                // one (this one was noise), so look on.
                Attempt::Incomplete => {
                    waiting.get_or_insert(start);
                }
                Attempt::Invalid => {}
            }
            at = start + 1;
        }
        let keep_from = waiting.unwrap_or(self.buffer.len());
        self.skipped += keep_from as u64;
        self.buffer.drain(..keep_from);
        None
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn held(&self) -> usize {
        self.buffer.len()
    }

    /// Bytes dropped so far because they began no frame.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_modbus() {
        assert_eq!(crc16(b"123456789"), 0x4B37);
    }
}
