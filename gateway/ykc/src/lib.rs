//! YKC (云快充) pile protocol, V1.6 with V1.5 compatibility: the codec the gateway's YKC edge
//! speaks. `design/ykc.md` is the note this follows (frame layout, the CRC and its byte-order
//! quirk, the length quirk, field layouts and scales).
//!
//! - [`frame`]: framing that survives real piles ([`FrameReader`]) and strict encoding;
//! - [`fields`]: BCD, little-endian integers, CP56Time2a times in China Standard Time;
//! - [`message`]: every frame type a platform needs, decoded and encoded ([`Message`]);
//! - [`records`]: the larger bodies (login, billing model, real-time data, transaction record);
//! - [`translate`]: YKC's numbers in Chargemesh's terms (states, faults, stop reasons, energy);
//! - [`edge`]: the listeners, plain TCP and [`tls`] (source networks, pile codes, replacement),
//!   [`connection`] a connection's loop and [`session`], one logged-in pile as a telemetry
//!   stream, kept up to date by `upkeep` (billing model, clock); [`config`] their settings.

mod bms;
mod commands;
pub mod config;
pub mod connection;
pub mod edge;
pub mod fields;
pub mod frame;
pub mod message;
mod readings;
pub mod records;
pub mod session;
pub mod station_tariffs;
pub mod tariff;
pub mod tls;
pub mod translate;
mod upkeep;

pub use config::YkcConfig;
pub use fields::Cp56Time;
pub use frame::{CrcOrder, Frame, FrameReader, Received};
pub use message::Message;

/// Why a frame or a field could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("frame type 0x{kind:02X}: the body is {len} bytes, at least {needs} expected")]
    ShortBody { kind: u8, len: usize, needs: usize },
    #[error("frame type 0x{kind:02X}: a body of {len} bytes does not fit a frame (at most 251)")]
    BodyTooLong { kind: u8, len: usize },
    #[error("{field}: {text:?} is not packed BCD")]
    NotBcd { field: &'static str, text: String },
    #[error("{field}: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("a CP56Time2a time that names no instant: {0:?}")]
    BadTime(Cp56Time),
    #[error("frame type 0x{kind:02X} is encrypted (flag 0x{flag:02X}) and no key is configured")]
    Encrypted { kind: u8, flag: u8 },
}
