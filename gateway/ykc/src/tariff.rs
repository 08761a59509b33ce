//! A station's tariff as a YKC billing model (计费模型, `design/ykc.md` §4.4; REQ MON-10,
//! BASE-3): one (electricity, service) price pair per label (cusp, peak, flat, valley) to 5
//! places, and the label of each of the day's 48 half hours. Our price boards say the same with
//! periods; a board YKC cannot carry (a boundary off :00 or :30, a label with two price pairs)
//! is refused, naming what is wrong, rather than sent wrong.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;

use chargemesh_kit::tariff::{PeriodLabel, PricePeriod, TariffVersion};

use crate::records::BillingModel;

/// The 4-digit model code of a tariff version: the version counted in 1..=9999 (never `0000`,
/// which a pile reports before its first model).
pub fn model_code(version: u32) -> String {
    format!("{:04}", (version.max(1) - 1) % 9999 + 1)
}

fn label_index(label: PeriodLabel) -> usize {
    match label {
        PeriodLabel::Cusp => 0,
        PeriodLabel::Peak => 1,
        PeriodLabel::Flat => 2,
        PeriodLabel::Valley => 3,
    }
}

/// A price in yuan per kWh as YKC's rate: × 10⁵, exact for our 4 places.
fn rate(price: Decimal) -> Result<u32, String> {
    let scaled = price * Decimal::from(100_000);
    if scaled.fract() != Decimal::ZERO || scaled.is_sign_negative() {
        return Err(format!("the price {price} has more than 5 places"));
    }
    scaled
        .to_u32()
        .ok_or_else(|| format!("the price {price} is too large for YKC"))
}

/// The billing model of `version` for `pile`, or why its board cannot be one.
pub fn billing_model(pile: &str, version: &TariffVersion) -> Result<BillingModel, String> {
    let mut rates: [Option<(u32, u32)>; 4] = [None; 4];
    let mut slots = [u8::MAX; 48];
    for period in &version.periods {
        let label = label_index(period.label);
        if period.start_minute % 30 != 0 || period.end_minute % 30 != 0 {
            return Err(format!(
                "tariff version {}: the period {}-{} does not start and end on a half hour, as YKC's 48 slots need",
                version.version,
                chargemesh_kit::tariff::format_clock(period.start_minute),
                chargemesh_kit::tariff::format_clock(period.end_minute)
            ));
        }
        let pair = pair(period)?;
        match rates[label] {
            Some(existing) if existing != pair => {
                return Err(format!(
                    "tariff version {}: the label {:?} has two price pairs; YKC carries one per label",
                    version.version, period.label
                ));
            }
            _ => rates[label] = Some(pair),
        }
        for slot in usize::from(period.start_minute / 30)..usize::from(period.end_minute / 30) {
            if let Some(s) = slots.get_mut(slot) {
                *s = label as u8;
            }
        }
    }
    if let Some(gap) = slots.iter().position(|s| *s == u8::MAX) {
        return Err(format!(
            "tariff version {}: no period covers {}",
            version.version,
            chargemesh_kit::tariff::format_clock(gap as u16 * 30)
        ));
    }
    Ok(BillingModel {
        pile: pile.to_owned(),
        model: model_code(version.version),
        rates: rates.map(|r| r.unwrap_or((0, 0))),
        loss_ratio: 0,
        slots,
    })
}

fn pair(period: &PricePeriod) -> Result<(u32, u32), String> {
    Ok((rate(period.electricity_price)?, rate(period.service_fee)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr as _;

    fn period(start: u16, end: u16, label: PeriodLabel, e: &str, s: &str) -> PricePeriod {
        PricePeriod {
            start_minute: start,
            end_minute: end,
            label,
            electricity_price: Decimal::from_str(e).unwrap_or_default(),
            service_fee: Decimal::from_str(s).unwrap_or_default(),
        }
    }

    fn version(periods: Vec<PricePeriod>) -> TariffVersion {
        TariffVersion {
            version: 3,
            effective_from: chrono::DateTime::UNIX_EPOCH,
            periods,
        }
    }

    #[test]
    fn mon_10_a_board_of_half_hours_becomes_48_slots_and_4_rate_pairs() {
        let model = billing_model(
            "20231212000010",
            &version(vec![
                period(0, 480, PeriodLabel::Valley, "0.3500", "0.4000"),
                period(480, 690, PeriodLabel::Peak, "1.0500", "0.8000"),
                period(690, 1140, PeriodLabel::Flat, "0.6800", "0.8000"),
                period(1140, 1440, PeriodLabel::Peak, "1.0500", "0.8000"),
            ]),
        )
        .expect("a model");
        assert_eq!(model.model, "0003");
        assert_eq!(model.rates[1], (105_000, 80_000));
        assert_eq!(model.rates[2], (68_000, 80_000));
        assert_eq!(model.rates[3], (35_000, 40_000));
        assert_eq!(model.rates[0], (0, 0), "no cusp period");
        assert_eq!(&model.slots[..16], &[3; 16]);
        assert_eq!(model.slots[16], 1, "08:00 is peak");
        assert_eq!(model.slots[23], 2, "11:30 is flat");
        assert_eq!(model.slots[47], 1);
    }

    #[test]
    fn mon_10_a_board_ykc_cannot_carry_is_refused_by_name() {
        let off_half_hour = billing_model(
            "20231212000010",
            &version(vec![
                period(0, 495, PeriodLabel::Valley, "0.35", "0.4"),
                period(495, 1440, PeriodLabel::Flat, "0.68", "0.8"),
            ]),
        );
        assert!(off_half_hour.is_err_and(|e| e.contains("08:15")));
        let two_pairs = billing_model(
            "20231212000010",
            &version(vec![
                period(0, 720, PeriodLabel::Flat, "0.68", "0.8"),
                period(720, 1440, PeriodLabel::Flat, "0.70", "0.8"),
            ]),
        );
        assert!(two_pairs.is_err_and(|e| e.contains("two price pairs")));
    }

    #[test]
    fn model_codes_are_never_0000() {
        assert_eq!(model_code(1), "0001");
        assert_eq!(model_code(9999), "9999");
        assert_eq!(model_code(10_000), "0001");
        assert_eq!(model_code(0), "0001");
    }
}
