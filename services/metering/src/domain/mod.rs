//! Metering rules as pure functions over plain types.

pub mod abnormal;
pub mod bounds;
pub mod order;
pub mod order_id;
pub mod reconcile;
pub mod session;
pub mod settlement;

/// Shared test fixtures: a three-period board and a tariff in force from 1 January 2026.
#[cfg(test)]
pub(crate) mod fixtures {
    use chargemesh_kit::tariff::{PeriodLabel, PricePeriod, Tariff};
    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;

    pub fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn p(start: u16, end: u16, label: PeriodLabel, elec: i64, fee: i64) -> PricePeriod {
        PricePeriod {
            start_minute: start,
            end_minute: end,
            label,
            electricity_price: Decimal::new(elec, 4),
            service_fee: Decimal::new(fee, 4),
        }
    }

    /// Valley 00:00-08:00 at 0.3000 + 0.4000, peak 08:00-22:00 at 1.0000 + 0.8000, flat
    /// 22:00-24:00 at 0.6000 + 0.5000.
    pub fn board() -> Vec<PricePeriod> {
        vec![
            p(0, 480, PeriodLabel::Valley, 3000, 4000),
            p(480, 1320, PeriodLabel::Peak, 10000, 8000),
            p(1320, 1440, PeriodLabel::Flat, 6000, 5000),
        ]
    }

    pub fn tariff() -> Tariff {
        let mut tariff = Tariff::default();
        tariff
            .add_version(
                "periods",
                t("2026-01-01T00:00:00+08:00"),
                board(),
                t("2025-12-01T00:00:00Z"),
            )
            .expect("version 1");
        tariff
    }
}
