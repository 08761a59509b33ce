//! REQ BASE-2: what commissioning asks of trial operation — the most recent `min_days`
//! published trial days, each at or above the availability threshold. The days are the
//! telemetry component's; the rule is the registry's.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

/// What commissioning asks of the trial (REQ BASE-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommissioningSettings {
    /// Published trial days needed before commissioning.
    pub min_days: u32,
    /// The availability each of those days must reach, percent.
    pub min_availability_percent: Decimal,
}

impl Default for CommissioningSettings {
    fn default() -> Self {
        Self {
            min_days: 7,
            min_availability_percent: Decimal::new(95, 0),
        }
    }
}

/// What the gate reads of a published trial day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialDayFigures {
    pub day: NaiveDate,
    /// Percent, 2 places.
    pub availability_percent: Decimal,
}

/// REQ BASE-2: refuses commissioning unless the most recent `min_days` published days (given in
/// any order) each reached the availability required, naming the day and figure that fall short.
pub fn commissioning_gate(
    days: &[TrialDayFigures],
    settings: &CommissioningSettings,
) -> Result<(), Error> {
    if settings.min_days == 0 {
        return Ok(());
    }
    let mut days: Vec<&TrialDayFigures> = days.iter().collect();
    days.sort_by_key(|d| d.day);
    if days.len() < settings.min_days as usize {
        return Err(Error::precondition(
            "BASE-2",
            format!(
                "only {} of the {} trial-operation days needed are published",
                days.len(),
                settings.min_days
            ),
        ));
    }
    let recent = &days[days.len() - settings.min_days as usize..];
    if let Some(short) = recent
        .iter()
        .find(|d| d.availability_percent < settings.min_availability_percent)
    {
        return Err(Error::precondition(
            "BASE-2",
            format!(
                "trial-operation day {} had availability {}%, below the {}% required",
                short.day, short.availability_percent, settings.min_availability_percent
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial_day(day: &str, availability: i64) -> TrialDayFigures {
        TrialDayFigures {
            day: NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date"),
            availability_percent: Decimal::new(availability, 2),
        }
    }

    #[test]
    fn base_2_commissioning_needs_enough_good_trial_days() {
        let settings = CommissioningSettings {
            min_days: 3,
            ..CommissioningSettings::default()
        };
        let two = [trial_day("2026-03-01", 9900), trial_day("2026-03-02", 9900)];
        let err = commissioning_gate(&two, &settings).expect_err("too few");
        assert!(
            err.to_string().contains("only 2 of the 3") && err.to_string().contains("BASE-2"),
            "{err}"
        );
        let weak = [
            trial_day("2026-03-01", 9900),
            trial_day("2026-03-02", 9432),
            trial_day("2026-03-03", 9900),
        ];
        let err = commissioning_gate(&weak, &settings).expect_err("weak day");
        assert!(
            err.to_string().contains("2026-03-02") && err.to_string().contains("94.32%"),
            "{err}"
        );
        let mut better = weak.to_vec();
        better.push(trial_day("2026-03-04", 9500));
        assert!(
            commissioning_gate(&better, &settings).is_err(),
            "the weak day is still among the last 3"
        );
        better.push(trial_day("2026-03-05", 10000));
        assert!(
            commissioning_gate(&better, &settings).is_ok(),
            "the last 3 days are good"
        );
    }
}
