//! Patrols (REQ PATROL-1..PATROL-4, MON-3): normal patrols on a schedule, special patrols on the
//! PATROL-2 triggers for the stations concerned, each with its checklist.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatrolKind {
    Normal,
    Special,
}

/// REQ PATROL-2: what calls for a special patrol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    StrongWind,
    Thunderstorm,
    IceSnow,
    Hail,
    Earthquake,
    NewEquipment,
    ReturnToService,
    DefectWorsening,
    HolidayOrEvent,
    ReliabilityDrop,
}

/// REQ PATROL-3: the normal-patrol checklist.
pub const NORMAL_CHECKLIST: &[&str] = &[
    "base and bracket sound, no rust",
    "cable sheath intact",
    "connector pin plating",
    "grounding",
    "no abnormal noise",
    "connections not overheating",
    "locking mechanism",
    "indicators and signals",
    "monitoring server, UI and network",
    "ventilation, lighting, fire equipment, temperature, no flammables",
    "signage complete, fire equipment placed and reachable, fire lane clear",
];

/// REQ PATROL-4: the special-patrol checklist for a trigger.
pub fn special_checklist(trigger: Trigger) -> Vec<&'static str> {
    match trigger {
        Trigger::StrongWind | Trigger::Thunderstorm => {
            vec!["flashover on external insulation (wind, dust, fog, rain)"]
        }
        Trigger::IceSnow | Trigger::Hail => vec!["insulation damage after ice or hail"],
        Trigger::NewEquipment | Trigger::ReturnToService => NORMAL_CHECKLIST.to_vec(),
        Trigger::Earthquake
        | Trigger::DefectWorsening
        | Trigger::HolidayOrEvent
        | Trigger::ReliabilityDrop => {
            vec!["the equipment concerned after the event"]
        }
    }
}

/// How long a special patrol may wait.
pub const SPECIAL_WITHIN: Duration = Duration::hours(24);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patrol {
    pub patrol_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub kind: PatrolKind,
    pub trigger: Option<Trigger>,
    pub area_code: String,
    pub checklist: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    /// The checklist items found wrong, once done.
    #[serde(default)]
    pub failed_items: Vec<String>,
}

/// One checklist item as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub item: String,
    pub ok: bool,
    pub note: String,
}

impl Patrol {
    /// REQ PATROL-2: one special patrol for a station concerned by a trigger.
    pub fn special(
        patrol_id: String,
        operator_id: &str,
        station_id: &str,
        area_code: &str,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            patrol_id,
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
            kind: PatrolKind::Special,
            trigger: Some(trigger),
            area_code: area_code.to_owned(),
            checklist: special_checklist(trigger)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            created_at: now,
            due_at: now + SPECIAL_WITHIN,
            done_at: None,
            failed_items: Vec::new(),
        }
    }

    /// REQ PATROL-1, MON-3: a normal patrol on the schedule, with the PATROL-3 checklist.
    pub fn normal(
        patrol_id: String,
        operator_id: &str,
        station_id: &str,
        area_code: &str,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            patrol_id,
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
            kind: PatrolKind::Normal,
            trigger: None,
            area_code: area_code.to_owned(),
            checklist: NORMAL_CHECKLIST.iter().map(|s| (*s).to_owned()).collect(),
            created_at: now,
            due_at,
            done_at: None,
            failed_items: Vec::new(),
        }
    }

    /// Records the patrol done: every checklist item answered; returns the failed ones, each to
    /// be registered as a defect (REQ PATROL-3, DEF-2).
    pub fn complete(
        &mut self,
        results: &[ItemResult],
        now: DateTime<Utc>,
    ) -> Result<Vec<ItemResult>, chargemesh_kit::Error> {
        if self.done_at.is_some() {
            return Err(chargemesh_kit::Error::state("the patrol is already done"));
        }
        if let Some(missing) = self
            .checklist
            .iter()
            .find(|item| !results.iter().any(|r| &r.item == *item))
        {
            return Err(chargemesh_kit::Error::invalid(
                "results",
                "PATROL-3",
                format!("the checklist item \"{missing}\" has no result"),
            ));
        }
        if let Some(stray) = results.iter().find(|r| !self.checklist.contains(&r.item)) {
            return Err(chargemesh_kit::Error::bad_field(
                "results",
                format!("\"{}\" is not on this patrol's checklist", stray.item),
            ));
        }
        let failed: Vec<ItemResult> = results.iter().filter(|r| !r.ok).cloned().collect();
        self.failed_items = failed.iter().map(|r| r.item.clone()).collect();
        self.done_at = Some(now);
        Ok(failed)
    }

    /// REQ MON-3: a patrol not done by its time shows overdue.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.done_at.is_none() && now > self.due_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patrol_4_weather_triggers_check_insulation_and_returns_to_service_the_full_list() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .expect("t")
            .to_utc();
        let storm = Patrol::special(
            "PT-1".into(),
            "OP",
            "S1",
            "330602",
            Trigger::Thunderstorm,
            now,
        );
        assert!(storm.checklist[0].contains("flashover"));
        assert_eq!(storm.due_at, now + Duration::hours(24));
        assert!(
            !storm.overdue(now + Duration::hours(23)) && storm.overdue(now + Duration::hours(25))
        );
        assert_eq!(
            special_checklist(Trigger::ReturnToService).len(),
            NORMAL_CHECKLIST.len()
        );
    }
}
