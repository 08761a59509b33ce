//! YKC's field types: little-endian integers, packed BCD, zero-padded ASCII and CP56Time2a
//! times, read from and written to a frame body.

use chrono::{DateTime, Datelike as _, FixedOffset, NaiveDate, TimeZone as _, Timelike as _, Utc};

use crate::CodecError;

/// China Standard Time, in which piles keep their clocks (the spec names no zone).
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// A CP56Time2a time, every bit kept so a frame re-encodes to the same bytes (piles set the
/// day-of-week bits, or the invalid and summer-time flags, and we pass them through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cp56Time {
    /// Milliseconds within the minute.
    pub millis: u16,
    pub minute: u8,
    pub hour: u8,
    pub day: u8,
    /// 1 = Monday … 7 = Sunday; 0 when not given.
    pub weekday: u8,
    pub month: u8,
    /// Years since 2000.
    pub year: u8,
    /// The IV bit: the pile says the time is not valid.
    pub invalid: bool,
    /// The SU bit.
    pub summer: bool,
}

impl Cp56Time {
    /// The time of `at`, in China Standard Time, without a weekday.
    pub fn from_utc(at: DateTime<Utc>) -> Self {
        let local = at.with_timezone(&china());
        Self {
            millis: (local.second() * 1000 + local.timestamp_subsec_millis().min(999)) as u16,
            minute: local.minute() as u8,
            hour: local.hour() as u8,
            day: local.day() as u8,
            weekday: 0,
            month: local.month() as u8,
            year: (local.year() - 2000).clamp(0, 127) as u8,
            invalid: false,
            summer: false,
        }
    }

    /// The instant it names, read as China Standard Time; an error for a date that does not
    /// exist (a pile's clock before its first sync often sends zeros).
    pub fn to_utc(&self) -> Result<DateTime<Utc>, CodecError> {
        let bad = || CodecError::BadTime(*self);
        let date = NaiveDate::from_ymd_opt(
            2000 + i32::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        )
        .ok_or_else(bad)?;
        let seconds = u32::from(self.millis / 1000);
        let time = date
            .and_hms_milli_opt(
                u32::from(self.hour),
                u32::from(self.minute),
                seconds,
                u32::from(self.millis % 1000),
            )
            .ok_or_else(bad)?;
        china()
            .from_local_datetime(&time)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(bad)
    }

    fn from_bytes(b: [u8; 7]) -> Self {
        Self {
            millis: u16::from_le_bytes([b[0], b[1]]),
            minute: b[2] & 0x3F,
            invalid: b[2] & 0x80 != 0,
            hour: b[3] & 0x1F,
            summer: b[3] & 0x80 != 0,
            day: b[4] & 0x1F,
            weekday: b[4] >> 5,
            month: b[5] & 0x0F,
            year: b[6] & 0x7F,
        }
    }

    fn to_bytes(self) -> [u8; 7] {
        let [m0, m1] = self.millis.to_le_bytes();
        [
            m0,
            m1,
            (self.minute & 0x3F) | if self.invalid { 0x80 } else { 0 },
            (self.hour & 0x1F) | if self.summer { 0x80 } else { 0 },
            (self.day & 0x1F) | (self.weekday << 5),
            self.month & 0x0F,
            self.year & 0x7F,
        ]
    }
}

/// Reads a body front to back; every read names the field it was for.
pub(crate) struct Reader<'a> {
    kind: u8,
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader of frame type `kind`'s body, which must hold at least `needs` bytes.
    pub(crate) fn new(kind: u8, body: &'a [u8], needs: usize) -> Result<Self, CodecError> {
        if body.len() < needs {
            return Err(CodecError::ShortBody {
                kind,
                len: body.len(),
                needs,
            });
        }
        Ok(Self { kind, body, at: 0 })
    }

    pub(crate) fn bytes<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let slice = self
            .body
            .get(self.at..self.at + N)
            .ok_or(CodecError::ShortBody {
                kind: self.kind,
                len: self.body.len(),
                needs: self.at + N,
            })?;
        self.at += N;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.bytes()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    /// A 5-byte little-endian integer (the 0x3B meter readings).
    pub(crate) fn u40(&mut self) -> Result<u64, CodecError> {
        let b: [u8; 5] = self.bytes()?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)))
    }

    /// Packed BCD that must be decimal digits (pile codes, guns, model codes).
    pub(crate) fn bcd<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<String, CodecError> {
        let raw: [u8; N] = self.bytes()?;
        let text = hex(&raw);
        if text.bytes().all(|c| c.is_ascii_digit()) {
            Ok(text)
        } else {
            Err(CodecError::NotBcd { field, text })
        }
    }

    /// Packed BCD read as hex text, for fields piles fill with any nibbles (serials, ICCIDs,
    /// logical card numbers): an opaque key, never refused.
    pub(crate) fn hex<const N: usize>(&mut self) -> Result<String, CodecError> {
        Ok(hex(&self.bytes::<N>()?))
    }

    /// Zero-padded ASCII.
    pub(crate) fn ascii<const N: usize>(&mut self) -> Result<String, CodecError> {
        let raw: [u8; N] = self.bytes()?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(N);
        Ok(raw[..end].iter().map(|&b| char::from(b)).collect())
    }

    pub(crate) fn time(&mut self) -> Result<Cp56Time, CodecError> {
        Ok(Cp56Time::from_bytes(self.bytes()?))
    }
}

/// Builds a body front to back.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) body: Vec<u8>,
}

impl Writer {
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.body.extend_from_slice(bytes);
        self
    }

    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes(&[value])
    }

    pub(crate) fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    pub(crate) fn u40(&mut self, value: u64) -> &mut Self {
        let b = value.to_le_bytes();
        self.bytes(&b[..5])
    }

    /// Hex or BCD text as packed nibbles into `N` bytes, left-padded with zeros.
    pub(crate) fn packed<const N: usize>(
        &mut self,
        field: &'static str,
        text: &str,
    ) -> Result<&mut Self, CodecError> {
        let packed = pack::<N>(field, text)?;
        Ok(self.bytes(&packed))
    }

    /// ASCII right-padded with zeros to `N` bytes.
    pub(crate) fn ascii<const N: usize>(
        &mut self,
        field: &'static str,
        text: &str,
    ) -> Result<&mut Self, CodecError> {
        if text.len() > N || !text.is_ascii() {
            return Err(CodecError::BadField {
                field,
                reason: format!("{text:?} is not ASCII of at most {N} bytes"),
            });
        }
        let mut raw = [0u8; N];
        raw[..text.len()].copy_from_slice(text.as_bytes());
        Ok(self.bytes(&raw))
    }

    pub(crate) fn time(&mut self, time: Cp56Time) -> &mut Self {
        self.bytes(&time.to_bytes())
    }
}

/// Bytes as upper-case hex text, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    bytes
        .iter()
        .flat_map(|&b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xF)]])
        .map(char::from)
        .collect()
}

/// Hex text (digits for BCD) packed into `N` bytes, left-padded with zeros.
pub(crate) fn pack<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], CodecError> {
    let bad = |reason: String| CodecError::BadField { field, reason };
    if text.len() > 2 * N {
        return Err(bad(format!("{text:?} has more than {} digits", 2 * N)));
    }
    let nibbles: Vec<u8> = text
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()
        .ok_or_else(|| bad(format!("{text:?} is not made of digits")))?;
    let mut out = [0u8; N];
    let pad = 2 * N - nibbles.len();
    for (i, nibble) in nibbles.into_iter().enumerate() {
        let at = pad + i;
        out[at / 2] |= if at.is_multiple_of(2) {
            nibble << 4
        } else {
            nibble
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp56_reads_the_spec_example_in_china_standard_time() {
        let time = Cp56Time::from_bytes([0x98, 0xB7, 0x0E, 0x11, 0x10, 0x03, 0x14]);
        let utc = time.to_utc().expect("a valid time");
        assert_eq!(utc.to_rfc3339(), "2020-03-16T09:14:47+00:00");
        assert_eq!(
            Cp56Time::from_utc(utc).to_bytes(),
            [0x98, 0xB7, 0x0E, 0x11, 0x10, 0x03, 0x14]
        );
    }

    #[test]
    fn cp56_masks_the_weekday_bits_and_keeps_them() {
        // 0x6D: day 13 with weekday 3 (Wednesday), as a real pile's transaction record sends.
        let time = Cp56Time::from_bytes([0xB0, 0x36, 0x04, 0x11, 0x6D, 0x0C, 0x17]);
        assert_eq!((time.day, time.weekday), (13, 3));
        assert_eq!(time.to_bytes(), [0xB0, 0x36, 0x04, 0x11, 0x6D, 0x0C, 0x17]);
    }

    #[test]
    fn an_impossible_date_is_an_error_not_a_panic() {
        assert!(Cp56Time::from_bytes([0; 7]).to_utc().is_err());
    }

    #[test]
    fn packing_pads_on_the_left_and_refuses_what_does_not_fit() {
        assert_eq!(pack::<2>("model", "1").ok(), Some([0x00, 0x01]));
        assert_eq!(
            pack::<7>("pile", "20231212000010").ok(),
            Some([0x20, 0x23, 0x12, 0x12, 0x00, 0x00, 0x10])
        );
        assert!(pack::<1>("gun", "123").is_err());
        assert!(pack::<1>("gun", "x").is_err());
    }
}
