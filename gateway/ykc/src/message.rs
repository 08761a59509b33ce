//! Every YKC frame type a platform needs, decoded from a frame's body and encoded into one.
//! Frame types we do not handle decode to [`Message::Other`] with the body kept, so a session
//! can log and skip them without dropping the connection.

use crate::CodecError;
use crate::fields::{Cp56Time, Reader, Writer};
use crate::frame::Frame;
use crate::records::{
    BillingModel, Bms, CardStart, CardStartReply, Login, Realtime, RemoteStart, Transaction,
    read_gun, read_pile, write_gun, write_pile, write_serial,
};

/// A decoded frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// 0x01
    Login(Login),
    /// 0x02: 0x00 success, 0x01 failure.
    LoginReply { pile: String, result: u8 },
    /// 0x03: gun status 0x00 normal, 0x01 fault.
    Heartbeat { pile: String, gun: u8, status: u8 },
    /// 0x04
    HeartbeatReply { pile: String, gun: u8, status: u8 },
    /// 0x05: the pile's model code (`0000` before its first model).
    ModelCheck { pile: String, model: String },
    /// 0x06: 0x00 the same model, 0x01 a different one.
    ModelCheckReply {
        pile: String,
        model: String,
        result: u8,
    },
    /// 0x09
    ModelRequest { pile: String },
    /// 0x0A
    Model(BillingModel),
    /// 0x12
    ReadRealtime { pile: String, gun: u8 },
    /// 0x13
    Realtime(Realtime),
    /// 0x15, 0x17, 0x19, 0x1B, 0x1D, 0x21, 0x23, 0x25
    Bms { kind: u8, frame: Bms },
    /// 0x31
    CardStart(CardStart),
    /// 0x32
    CardStartReply(CardStartReply),
    /// 0x33: result 0x00 failed, 0x01 started; reason 0x00–0x05.
    RemoteStartReply {
        serial: String,
        pile: String,
        gun: u8,
        result: u8,
        reason: u8,
    },
    /// 0x34
    RemoteStart(RemoteStart),
    /// 0x35: result 0x00 failed, 0x01 stopped; reason 0x00–0x03.
    RemoteStopReply {
        pile: String,
        gun: u8,
        result: u8,
        reason: u8,
    },
    /// 0x36
    RemoteStop { pile: String, gun: u8 },
    /// 0x3B
    Transaction(Box<Transaction>),
    /// 0x40: 0x00 accepted, 0x01 an illegal record.
    TransactionAck { serial: String, result: u8 },
    /// 0x41
    BalanceReply {
        pile: String,
        card: [u8; 8],
        result: u8,
    },
    /// 0x42: new balance in 0.01 yuan.
    BalanceUpdate {
        pile: String,
        gun: u8,
        card: [u8; 8],
        balance: u32,
    },
    /// 0x51: 0x00 failed, 0x01 done.
    WorkParamsReply { pile: String, result: u8 },
    /// 0x52: 0x00 allow, 0x01 lock; max output in %.
    WorkParams {
        pile: String,
        locked: u8,
        max_output_pct: u8,
    },
    /// 0x55: the pile's clock.
    TimeSyncReply { pile: String, time: Cp56Time },
    /// 0x56: our clock.
    TimeSync { pile: String, time: Cp56Time },
    /// 0x57: 0x00 failed, 0x01 done.
    ModelSetReply { pile: String, result: u8 },
    /// 0x58
    ModelSet(BillingModel),
    /// 0x91: 0x00 failed, 0x01 done.
    RestartReply { pile: String, result: u8 },
    /// 0x92: 0x01 now, 0x02 when idle.
    Restart { pile: String, when: u8 },
    /// A frame type this codec does not handle, kept as sent.
    Other { kind: u8, body: Vec<u8> },
}

/// The BMS and abort frame types, whose bodies are kept as sent.
pub const BMS_KINDS: [u8; 8] = [0x15, 0x17, 0x19, 0x1B, 0x1D, 0x21, 0x23, 0x25];

impl Message {
    /// Decodes a plain frame's body; an encrypted frame is an error (no key is configured).
    pub fn decode(frame: &Frame) -> Result<Self, CodecError> {
        if frame.encryption != 0 {
            return Err(CodecError::Encrypted {
                kind: frame.kind,
                flag: frame.encryption,
            });
        }
        let (kind, body) = (frame.kind, frame.body.as_slice());
        let reader = |needs| Reader::new(kind, body, needs);
        let pile_and = |needs: usize| -> Result<(Reader<'_>, String), CodecError> {
            let mut r = Reader::new(kind, body, needs)?;
            let pile = read_pile(&mut r)?;
            Ok((r, pile))
        };
        Ok(match kind {
            0x01 => Self::Login(Login::read(&mut reader(Login::LEN)?)?),
            0x02 => {
                let (mut r, pile) = pile_and(8)?;
                Self::LoginReply {
                    pile,
                    result: r.u8()?,
                }
            }
            0x03 | 0x04 => {
                let (mut r, pile) = pile_and(9)?;
                let (gun, status) = (read_gun(&mut r)?, r.u8()?);
                if kind == 0x03 {
                    Self::Heartbeat { pile, gun, status }
                } else {
                    Self::HeartbeatReply { pile, gun, status }
                }
            }
            0x05 => {
                let (mut r, pile) = pile_and(9)?;
                Self::ModelCheck {
                    pile,
                    model: r.hex::<2>()?,
                }
            }
            0x06 => {
                let (mut r, pile) = pile_and(10)?;
                Self::ModelCheckReply {
                    pile,
                    model: r.hex::<2>()?,
                    result: r.u8()?,
                }
            }
            0x09 => Self::ModelRequest {
                pile: pile_and(7)?.1,
            },
            0x0A => Self::Model(BillingModel::read(&mut reader(BillingModel::LEN)?)?),
            0x12 => {
                let (mut r, pile) = pile_and(8)?;
                Self::ReadRealtime {
                    pile,
                    gun: read_gun(&mut r)?,
                }
            }
            0x13 => Self::Realtime(Realtime::read(&mut reader(Realtime::LEN)?)?),
            k if BMS_KINDS.contains(&k) => Self::Bms {
                kind,
                frame: Bms::read(&mut reader(Bms::LEN)?, body)?,
            },
            0x31 => Self::CardStart(CardStart::read(&mut reader(CardStart::LEN)?)?),
            0x32 => Self::CardStartReply(CardStartReply::read(&mut reader(CardStartReply::LEN)?)?),
            0x33 => {
                let mut r = reader(26)?;
                Self::RemoteStartReply {
                    serial: r.hex::<16>()?,
                    pile: read_pile(&mut r)?,
                    gun: read_gun(&mut r)?,
                    result: r.u8()?,
                    reason: r.u8()?,
                }
            }
            0x34 => Self::RemoteStart(RemoteStart::read(&mut reader(RemoteStart::LEN)?)?),
            0x35 => {
                let (mut r, pile) = pile_and(10)?;
                Self::RemoteStopReply {
                    pile,
                    gun: read_gun(&mut r)?,
                    result: r.u8()?,
                    reason: r.u8()?,
                }
            }
            0x36 => {
                let (mut r, pile) = pile_and(8)?;
                Self::RemoteStop {
                    pile,
                    gun: read_gun(&mut r)?,
                }
            }
            0x3B => Self::Transaction(Box::new(Transaction::read(&mut reader(Transaction::LEN)?)?)),
            0x40 => {
                let mut r = reader(17)?;
                Self::TransactionAck {
                    serial: r.hex::<16>()?,
                    result: r.u8()?,
                }
            }
            0x41 => {
                let (mut r, pile) = pile_and(16)?;
                Self::BalanceReply {
                    pile,
                    card: r.bytes()?,
                    result: r.u8()?,
                }
            }
            0x42 => {
                let (mut r, pile) = pile_and(20)?;
                Self::BalanceUpdate {
                    pile,
                    gun: read_gun(&mut r)?,
                    card: r.bytes()?,
                    balance: r.u32()?,
                }
            }
            0x51 | 0x57 | 0x91 => {
                let (mut r, pile) = pile_and(8)?;
                let result = r.u8()?;
                match kind {
                    0x51 => Self::WorkParamsReply { pile, result },
                    0x57 => Self::ModelSetReply { pile, result },
                    _ => Self::RestartReply { pile, result },
                }
            }
            0x52 => {
                let (mut r, pile) = pile_and(9)?;
                Self::WorkParams {
                    pile,
                    locked: r.u8()?,
                    max_output_pct: r.u8()?,
                }
            }
            0x55 | 0x56 => {
                let (mut r, pile) = pile_and(14)?;
                let time = r.time()?;
                if kind == 0x55 {
                    Self::TimeSyncReply { pile, time }
                } else {
                    Self::TimeSync { pile, time }
                }
            }
            0x58 => Self::ModelSet(BillingModel::read(&mut reader(BillingModel::LEN)?)?),
            0x92 => {
                let (mut r, pile) = pile_and(8)?;
                Self::Restart {
                    pile,
                    when: r.u8()?,
                }
            }
            _ => Self::Other {
                kind,
                body: body.to_vec(),
            },
        })
    }

    /// The frame type this message travels as.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Login(_) => 0x01,
            Self::LoginReply { .. } => 0x02,
            Self::Heartbeat { .. } => 0x03,
            Self::HeartbeatReply { .. } => 0x04,
            Self::ModelCheck { .. } => 0x05,
            Self::ModelCheckReply { .. } => 0x06,
            Self::ModelRequest { .. } => 0x09,
            Self::Model(_) => 0x0A,
            Self::ReadRealtime { .. } => 0x12,
            Self::Realtime(_) => 0x13,
            Self::Bms { kind, .. } | Self::Other { kind, .. } => *kind,
            Self::CardStart(_) => 0x31,
            Self::CardStartReply(_) => 0x32,
            Self::RemoteStartReply { .. } => 0x33,
            Self::RemoteStart(_) => 0x34,
            Self::RemoteStopReply { .. } => 0x35,
            Self::RemoteStop { .. } => 0x36,
            Self::Transaction(_) => 0x3B,
            Self::TransactionAck { .. } => 0x40,
            Self::BalanceReply { .. } => 0x41,
            Self::BalanceUpdate { .. } => 0x42,
            Self::WorkParamsReply { .. } => 0x51,
            Self::WorkParams { .. } => 0x52,
            Self::TimeSyncReply { .. } => 0x55,
            Self::TimeSync { .. } => 0x56,
            Self::ModelSetReply { .. } => 0x57,
            Self::ModelSet(_) => 0x58,
            Self::RestartReply { .. } => 0x91,
            Self::Restart { .. } => 0x92,
        }
    }

    /// The message's body.
    pub fn body(&self) -> Result<Vec<u8>, CodecError> {
        let mut w = Writer::default();
        match self {
            Self::Login(login) => login.write(&mut w)?,
            Self::LoginReply { pile, result }
            | Self::WorkParamsReply { pile, result }
            | Self::ModelSetReply { pile, result }
            | Self::RestartReply { pile, result }
            | Self::Restart { pile, when: result } => {
                write_pile(&mut w, pile)?;
                w.u8(*result);
            }
            Self::Heartbeat { pile, gun, status } | Self::HeartbeatReply { pile, gun, status } => {
                write_pile(&mut w, pile)?;
                write_gun(&mut w, *gun)?;
                w.u8(*status);
            }
            Self::ModelCheck { pile, model } => {
                write_pile(&mut w, pile)?;
                w.packed::<2>("model code", model)?;
            }
            Self::ModelCheckReply {
                pile,
                model,
                result,
            } => {
                write_pile(&mut w, pile)?;
                w.packed::<2>("model code", model)?.u8(*result);
            }
            Self::ModelRequest { pile } => write_pile(&mut w, pile)?,
            Self::Model(model) | Self::ModelSet(model) => model.write(&mut w)?,
            Self::ReadRealtime { pile, gun } | Self::RemoteStop { pile, gun } => {
                write_pile(&mut w, pile)?;
                write_gun(&mut w, *gun)?;
            }
            Self::Realtime(data) => data.write(&mut w)?,
            Self::Bms { frame, .. } => frame.write(&mut w)?,
            Self::CardStart(start) => start.write(&mut w)?,
            Self::CardStartReply(reply) => reply.write(&mut w)?,
            Self::RemoteStartReply {
                serial,
                pile,
                gun,
                result,
                reason,
            } => {
                write_serial(&mut w, serial)?;
                write_pile(&mut w, pile)?;
                write_gun(&mut w, *gun)?;
                w.u8(*result).u8(*reason);
            }
            Self::RemoteStart(start) => start.write(&mut w)?,
            Self::RemoteStopReply {
                pile,
                gun,
                result,
                reason,
            } => {
                write_pile(&mut w, pile)?;
                write_gun(&mut w, *gun)?;
                w.u8(*result).u8(*reason);
            }
            Self::Transaction(record) => record.write(&mut w)?,
            Self::TransactionAck { serial, result } => {
                write_serial(&mut w, serial)?;
                w.u8(*result);
            }
            Self::BalanceReply { pile, card, result } => {
                write_pile(&mut w, pile)?;
                w.bytes(card).u8(*result);
            }
            Self::BalanceUpdate {
                pile,
                gun,
                card,
                balance,
            } => {
                write_pile(&mut w, pile)?;
                write_gun(&mut w, *gun)?;
                w.bytes(card).u32(*balance);
            }
            Self::WorkParams {
                pile,
                locked,
                max_output_pct,
            } => {
                write_pile(&mut w, pile)?;
                w.u8(*locked).u8(*max_output_pct);
            }
            Self::TimeSyncReply { pile, time } | Self::TimeSync { pile, time } => {
                write_pile(&mut w, pile)?;
                w.time(*time);
            }
            Self::Other { body, .. } => {
                w.bytes(body);
            }
        }
        Ok(w.body)
    }

    /// The message as a plain frame with `sequence`.
    pub fn to_frame(&self, sequence: [u8; 2]) -> Result<Frame, CodecError> {
        Ok(Frame::new(sequence, self.kind(), self.body()?))
    }

    /// The pile code the message is about, where it names one.
    pub fn pile(&self) -> Option<&str> {
        match self {
            Self::Login(Login { pile, .. })
            | Self::LoginReply { pile, .. }
            | Self::Heartbeat { pile, .. }
            | Self::HeartbeatReply { pile, .. }
            | Self::ModelCheck { pile, .. }
            | Self::ModelCheckReply { pile, .. }
            | Self::ModelRequest { pile }
            | Self::Model(BillingModel { pile, .. })
            | Self::ModelSet(BillingModel { pile, .. })
            | Self::ReadRealtime { pile, .. }
            | Self::Realtime(Realtime { pile, .. })
            | Self::Bms {
                frame: Bms { pile, .. },
                ..
            }
            | Self::CardStart(CardStart { pile, .. })
            | Self::CardStartReply(CardStartReply { pile, .. })
            | Self::RemoteStartReply { pile, .. }
            | Self::RemoteStart(RemoteStart { pile, .. })
            | Self::RemoteStopReply { pile, .. }
            | Self::RemoteStop { pile, .. }
            | Self::BalanceReply { pile, .. }
            | Self::BalanceUpdate { pile, .. }
            | Self::WorkParamsReply { pile, .. }
            | Self::WorkParams { pile, .. }
            | Self::TimeSyncReply { pile, .. }
            | Self::TimeSync { pile, .. }
            | Self::ModelSetReply { pile, .. }
            | Self::RestartReply { pile, .. }
            | Self::Restart { pile, .. } => Some(pile),
            Self::Transaction(record) => Some(&record.pile),
            Self::TransactionAck { .. } | Self::Other { .. } => None,
        }
    }
}
