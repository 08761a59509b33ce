//! The larger YKC bodies: login, billing model, real-time data, BMS frames, card start, remote
//! start and the transaction record. Offsets and scales per `design/ykc.md` §3; every field is
//! kept as sent (raw integers at their wire scale) so a frame re-encodes to the same bytes, and
//! the scaled readings are methods.

use crate::CodecError;
use crate::fields::{Cp56Time, Reader, Writer};

/// A gun number: one BCD byte on the wire.
pub(crate) fn read_gun(r: &mut Reader<'_>) -> Result<u8, CodecError> {
    let text = r.bcd::<1>("gun")?;
    text.parse()
        .map_err(|_| CodecError::NotBcd { field: "gun", text })
}

pub(crate) fn write_gun(w: &mut Writer, gun: u8) -> Result<(), CodecError> {
    if gun > 99 {
        return Err(CodecError::BadField {
            field: "gun",
            reason: format!("{gun} does not fit one BCD byte"),
        });
    }
    w.packed::<1>("gun", &format!("{gun:02}"))?;
    Ok(())
}

pub(crate) fn read_pile(r: &mut Reader<'_>) -> Result<String, CodecError> {
    r.bcd::<7>("pile code")
}

pub(crate) fn write_pile(w: &mut Writer, pile: &str) -> Result<(), CodecError> {
    if pile.len() != 14 || !pile.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodecError::BadField {
            field: "pile code",
            reason: format!("{pile:?} is not 14 digits"),
        });
    }
    w.packed::<7>("pile code", pile)?;
    Ok(())
}

pub(crate) fn write_serial(w: &mut Writer, serial: &str) -> Result<(), CodecError> {
    w.packed::<16>("transaction serial", serial)?;
    Ok(())
}

/// 0x01: a pile logs in (after every reset or reconnection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub pile: String,
    /// 0 DC, 1 AC.
    pub pile_type: u8,
    pub guns: u8,
    /// Version × 10: 0x0F = 1.5, 0x10 = 1.6.
    pub protocol: u8,
    pub software: String,
    /// 0 SIM, 1 LAN, 2 WAN, 3 other.
    pub network: u8,
    /// The SIM's ICCID as hex text (piles put hex nibbles in this "BCD" field).
    pub iccid: String,
    /// The carrier byte as sent (sources disagree on its codes).
    pub carrier: u8,
}

impl Login {
    pub(crate) const LEN: usize = 30;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            pile: read_pile(r)?,
            pile_type: r.u8()?,
            guns: r.u8()?,
            protocol: r.u8()?,
            software: r.ascii::<8>()?,
            network: r.u8()?,
            iccid: r.hex::<10>()?,
            carrier: r.u8()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        write_pile(w, &self.pile)?;
        w.u8(self.pile_type).u8(self.guns).u8(self.protocol);
        w.ascii::<8>("software version", &self.software)?;
        w.u8(self.network);
        w.packed::<10>("ICCID", &self.iccid)?;
        w.u8(self.carrier);
        Ok(())
    }
}

/// The tariff labels, in the order YKC lists them.
pub const LABELS: [&str; 4] = ["cusp", "peak", "flat", "valley"];

/// 0x0A (answer to a model request) and 0x58 (model setting): four price pairs and the label
/// of each half hour of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingModel {
    pub pile: String,
    /// The model code: four digits.
    pub model: String,
    /// (electricity, service) per label (cusp, peak, flat, valley), yuan/kWh × 10⁵.
    pub rates: [(u32, u32); 4],
    /// 计损比例; we send 0.
    pub loss_ratio: u8,
    /// The label index (0 cusp … 3 valley) of each half hour from midnight.
    pub slots: [u8; 48],
}

impl BillingModel {
    pub(crate) const LEN: usize = 90;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let pile = read_pile(r)?;
        let model = r.hex::<2>()?;
        let mut rates = [(0, 0); 4];
        for rate in &mut rates {
            *rate = (r.u32()?, r.u32()?);
        }
        Ok(Self {
            pile,
            model,
            rates,
            loss_ratio: r.u8()?,
            slots: r.bytes()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        write_pile(w, &self.pile)?;
        w.packed::<2>("model code", &self.model)?;
        for (electricity, service) in self.rates {
            w.u32(electricity).u32(service);
        }
        w.u8(self.loss_ratio).bytes(&self.slots);
        Ok(())
    }
}

/// 0x13: a gun's real-time data (every 5 min idle, 15 s charging, on change, on 0x12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realtime {
    /// The session's serial as hex text; all zeros outside a session.
    pub serial: String,
    pub pile: String,
    pub gun: u8,
    /// 0x00 offline, 0x01 fault, 0x02 idle, 0x03 charging.
    pub status: u8,
    /// Gun back in its holder: 0 no, 1 yes, 2 unknown.
    pub returned: u8,
    /// Plugged into the car: 0 no, 1 yes.
    pub plugged: u8,
    /// 0.1 V.
    pub voltage: u16,
    /// 0.1 A.
    pub current: u16,
    /// °C + 50.
    pub gun_temperature: u8,
    pub cable_code: [u8; 8],
    /// %; 0 on AC piles (absent).
    pub soc: u8,
    /// °C + 50.
    pub battery_temperature: u8,
    pub minutes: u16,
    pub remaining_minutes: u16,
    /// This session's energy, 0.0001 kWh (not a register).
    pub energy: u32,
    pub lossy_energy: u32,
    /// 0.0001 yuan.
    pub amount: u32,
    /// Hardware fault bits, bit 0 = emergency stop … bit 12 = door open.
    pub faults: u16,
}

impl Realtime {
    pub(crate) const LEN: usize = 60;

    /// Whether a session's serial is set.
    pub fn in_session(&self) -> bool {
        self.serial.bytes().any(|b| b != b'0')
    }

    /// Output power in W (V × I).
    pub fn power_w(&self) -> f64 {
        f64::from(self.voltage) * 0.1 * f64::from(self.current) * 0.1
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            serial: r.hex::<16>()?,
            pile: read_pile(r)?,
            gun: read_gun(r)?,
            status: r.u8()?,
            returned: r.u8()?,
            plugged: r.u8()?,
            voltage: r.u16()?,
            current: r.u16()?,
            gun_temperature: r.u8()?,
            cable_code: r.bytes()?,
            soc: r.u8()?,
            battery_temperature: r.u8()?,
            minutes: r.u16()?,
            remaining_minutes: r.u16()?,
            energy: r.u32()?,
            lossy_energy: r.u32()?,
            amount: r.u32()?,
            faults: r.u16()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        write_serial(w, &self.serial)?;
        write_pile(w, &self.pile)?;
        write_gun(w, self.gun)?;
        w.u8(self.status).u8(self.returned).u8(self.plugged);
        w.u16(self.voltage)
            .u16(self.current)
            .u8(self.gun_temperature);
        w.bytes(&self.cable_code)
            .u8(self.soc)
            .u8(self.battery_temperature);
        w.u16(self.minutes).u16(self.remaining_minutes);
        w.u32(self.energy).u32(self.lossy_energy).u32(self.amount);
        w.u16(self.faults);
        Ok(())
    }
}

/// The hardware fault bits of 0x13, least significant first.
pub const FAULT_BITS: [&str; 13] = [
    "emergency-stop",
    "no-rectifier-module",
    "air-outlet-over-temperature",
    "ac-surge-protector",
    "dc20-module-comms-lost",
    "fc08-insulation-monitor-comms-lost",
    "meter-comms-lost",
    "card-reader-comms-lost",
    "rc10-comms-lost",
    "fan-board",
    "dc-fuse",
    "hv-contactor",
    "door-open",
];

/// 0x15, 0x17, 0x19, 0x1B, 0x1D, 0x21, 0x23, 0x25: BMS and abort frames. The session's serial,
/// pile and gun are read; the rest is kept as sent, with the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bms {
    pub serial: String,
    pub pile: String,
    pub gun: u8,
    pub data: Vec<u8>,
}

impl Bms {
    pub(crate) const LEN: usize = 24;

    pub(crate) fn read(r: &mut Reader<'_>, body: &[u8]) -> Result<Self, CodecError> {
        Ok(Self {
            serial: r.hex::<16>()?,
            pile: read_pile(r)?,
            gun: read_gun(r)?,
            data: body[Self::LEN..].to_vec(),
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        write_serial(w, &self.serial)?;
        write_pile(w, &self.pile)?;
        write_gun(w, self.gun)?;
        w.bytes(&self.data);
        Ok(())
    }
}

/// 0x31: the pile asks to start a session for a card or a VIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardStart {
    pub pile: String,
    pub gun: u8,
    /// 0x01 card, 0x03 VIN.
    pub mode: u8,
    /// 0x00 no password, 0x01 password.
    pub password_flag: u8,
    pub card: [u8; 8],
    pub password_md5: [u8; 16],
    /// The VIN as sent: ASCII, reversed.
    pub vin_reversed: [u8; 17],
}

impl CardStart {
    pub(crate) const LEN: usize = 51;

    /// The VIN in reading order, without padding.
    pub fn vin(&self) -> String {
        self.vin_reversed
            .iter()
            .rev()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(|&b| char::from(b))
            .collect()
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            pile: read_pile(r)?,
            gun: read_gun(r)?,
            mode: r.u8()?,
            password_flag: r.u8()?,
            card: r.bytes()?,
            password_md5: r.bytes()?,
            vin_reversed: r.bytes()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        write_pile(w, &self.pile)?;
        write_gun(w, self.gun)?;
        w.u8(self.mode).u8(self.password_flag).bytes(&self.card);
        w.bytes(&self.password_md5).bytes(&self.vin_reversed);
        Ok(())
    }
}

/// 0x32: the platform's answer to 0x31.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardStartReply {
    pub serial: String,
    pub pile: String,
    pub gun: u8,
    /// The logical card number as hex text (shown on the pile's screen).
    pub logical_card: String,
    /// 0.01 yuan.
    pub balance: u32,
    /// 0x00 refused, 0x01 accepted.
    pub accepted: u8,
    /// 0x00 none, 0x01–0x0B: why it was refused.
    pub reason: u8,
}

impl CardStartReply {
    pub(crate) const LEN: usize = 38;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            serial: r.hex::<16>()?,
            pile: read_pile(r)?,
            gun: read_gun(r)?,
            logical_card: r.hex::<8>()?,
            balance: r.u32()?,
            accepted: r.u8()?,
            reason: r.u8()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        write_serial(w, &self.serial)?;
        write_pile(w, &self.pile)?;
        write_gun(w, self.gun)?;
        w.packed::<8>("logical card", &self.logical_card)?;
        w.u32(self.balance).u8(self.accepted).u8(self.reason);
        Ok(())
    }
}

/// 0x34: the platform starts a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStart {
    pub serial: String,
    pub pile: String,
    pub gun: u8,
    pub logical_card: String,
    pub physical_card: [u8; 8],
    /// 0.01 yuan.
    pub balance: u32,
}

impl RemoteStart {
    pub(crate) const LEN: usize = 44;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            serial: r.hex::<16>()?,
            pile: read_pile(r)?,
            gun: read_gun(r)?,
            logical_card: r.hex::<8>()?,
            physical_card: r.bytes()?,
            balance: r.u32()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        write_serial(w, &self.serial)?;
        write_pile(w, &self.pile)?;
        write_gun(w, self.gun)?;
        w.packed::<8>("logical card", &self.logical_card)?;
        w.bytes(&self.physical_card).u32(self.balance);
        Ok(())
    }
}

/// One tariff label's part of a transaction record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodUse {
    /// Electricity + service, yuan/kWh × 10⁵.
    pub price: u32,
    /// 0.0001 kWh.
    pub energy: u32,
    pub lossy_energy: u32,
    /// 0.0001 yuan.
    pub amount: u32,
}

/// 0x3B: the record of a session, due within 30 s of its end (and resent until confirmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub serial: String,
    pub pile: String,
    pub gun: u8,
    pub start: Cp56Time,
    pub end: Cp56Time,
    /// Per label: cusp, peak, flat, valley.
    pub periods: [PeriodUse; 4],
    /// 0.0001 kWh, 5 bytes on the wire.
    pub meter_start: u64,
    pub meter_stop: u64,
    /// 0.0001 kWh.
    pub energy: u32,
    pub lossy_energy: u32,
    /// 0.0001 yuan, electricity + service.
    pub amount: u32,
    pub vin: String,
    /// 0x01 app, 0x02 card, 0x04 offline card, 0x05 VIN.
    pub start_type: u8,
    pub trade_time: Cp56Time,
    pub stop_reason: u8,
    pub physical_card: [u8; 8],
}

impl Transaction {
    pub(crate) const LEN: usize = 158;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let (serial, pile, gun) = (r.hex::<16>()?, read_pile(r)?, read_gun(r)?);
        let (start, end) = (r.time()?, r.time()?);
        let mut periods = [PeriodUse::default(); 4];
        for period in &mut periods {
            *period = PeriodUse {
                price: r.u32()?,
                energy: r.u32()?,
                lossy_energy: r.u32()?,
                amount: r.u32()?,
            };
        }
        Ok(Self {
            serial,
            pile,
            gun,
            start,
            end,
            periods,
            meter_start: r.u40()?,
            meter_stop: r.u40()?,
            energy: r.u32()?,
            lossy_energy: r.u32()?,
            amount: r.u32()?,
            vin: r.ascii::<17>()?,
            start_type: r.u8()?,
            trade_time: r.time()?,
            stop_reason: r.u8()?,
            physical_card: r.bytes()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        write_serial(w, &self.serial)?;
        write_pile(w, &self.pile)?;
        write_gun(w, self.gun)?;
        w.time(self.start).time(self.end);
        for period in &self.periods {
            w.u32(period.price).u32(period.energy);
            w.u32(period.lossy_energy).u32(period.amount);
        }
        w.u40(self.meter_start).u40(self.meter_stop);
        w.u32(self.energy).u32(self.lossy_energy).u32(self.amount);
        w.ascii::<17>("VIN", &self.vin)?;
        w.u8(self.start_type)
            .time(self.trade_time)
            .u8(self.stop_reason);
        w.bytes(&self.physical_card);
        Ok(())
    }
}
