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
    /// The normal-patrol schedule it was made from (REQ PATROL-1).
    #[serde(default)]
    pub schedule_id: Option<String>,
}

/// The longest a normal-patrol schedule may leave between patrols: a quarter.
pub const MAX_EVERY_DAYS: u32 = 92;

/// REQ PATROL-1: normal patrols of a station on a schedule. Period `k` is the patrol due at
/// `first_due + k × every`; it is made when the period before it falls due (period 0 at once),
/// so the next patrol is always on the list ahead of its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatrolSchedule {
    pub schedule_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub every_days: u32,
    pub first_due: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

impl PatrolSchedule {
    /// A schedule as requested, checked: a period of 1 to 92 days and a first patrol to come.
    pub fn new(
        schedule_id: String,
        operator_id: &str,
        station_id: &str,
        every_days: u32,
        first_due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Self, chargemesh_kit::Error> {
        if !(1..=MAX_EVERY_DAYS).contains(&every_days) {
            return Err(chargemesh_kit::Error::invalid(
                "every_days",
                "PATROL-1",
                format!("normal patrols repeat every 1 to {MAX_EVERY_DAYS} days"),
            ));
        }
        if first_due <= now {
            return Err(chargemesh_kit::Error::invalid(
                "first_due_time",
                "PATROL-1",
                "the first patrol is scheduled for a time to come",
            ));
        }
        Ok(Self {
            schedule_id,
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
            every_days,
            first_due,
            created_at: now,
            stopped_at: None,
        })
    }

    fn every(&self) -> Duration {
        Duration::days(i64::from(self.every_days))
    }

    /// When the patrol of period `k` is due.
    pub fn due_of(&self, k: u32) -> DateTime<Utc> {
        self.first_due + self.every() * i32::try_from(k).unwrap_or(i32::MAX)
    }

    /// When the patrol of period `k` is made: when period `k - 1` falls due; period 0 at once.
    pub fn opens_at(&self, k: u32) -> DateTime<Utc> {
        match k.checked_sub(1) {
            Some(previous) => self.due_of(previous),
            None => self.created_at,
        }
    }

    /// The patrol of period `k`; its id is derived so that making it twice makes it once.
    pub fn patrol(&self, k: u32, area_code: &str, now: DateTime<Utc>) -> Patrol {
        let mut patrol = Patrol::normal(
            format!("{}-{k}", self.schedule_id),
            &self.operator_id,
            &self.station_id,
            area_code,
            self.due_of(k),
            now,
        );
        patrol.schedule_id = Some(self.schedule_id.clone());
        patrol
    }

    /// Stops making patrols; those already made stay to be done.
    pub fn stop(&mut self, now: DateTime<Utc>) -> Result<(), chargemesh_kit::Error> {
        if self.stopped_at.is_some() {
            return Err(chargemesh_kit::Error::state(
                "the schedule is already stopped",
            ));
        }
        self.stopped_at = Some(now);
        Ok(())
    }

    /// The next patrol due, as of `now`, while the schedule runs.
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.stopped_at.is_some() {
            return None;
        }
        let every = self.every().num_seconds().max(1);
        let elapsed = (now - self.first_due).num_seconds();
        let k = if elapsed < 0 { 0 } else { elapsed / every + 1 };
        Some(self.due_of(u32::try_from(k).unwrap_or(u32::MAX)))
    }
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
            schedule_id: None,
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
            schedule_id: None,
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

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("t").to_utc()
    }

    #[test]
    fn patrol_1_a_weekly_schedule_makes_each_patrol_when_the_one_before_falls_due() {
        let now = t("2026-03-01T08:00:00Z");
        let mut s =
            PatrolSchedule::new("PS-1".into(), "OP", "S1", 7, t("2026-03-02T09:00:00Z"), now)
                .expect("schedule");
        assert_eq!(s.opens_at(0), now, "the first at once");
        assert_eq!(s.due_of(0), t("2026-03-02T09:00:00Z"));
        assert_eq!(s.opens_at(1), t("2026-03-02T09:00:00Z"));
        assert_eq!(s.due_of(1), t("2026-03-09T09:00:00Z"));
        let p = s.patrol(1, "330602", now);
        assert_eq!(p.patrol_id, "PS-1-1");
        assert_eq!((p.kind, p.due_at), (PatrolKind::Normal, s.due_of(1)));
        assert_eq!(p.schedule_id.as_deref(), Some("PS-1"));
        assert_eq!(p.checklist.len(), NORMAL_CHECKLIST.len(), "REQ PATROL-3");
        assert_eq!(s.next_due(now), Some(s.due_of(0)));
        assert_eq!(s.next_due(t("2026-03-02T09:00:01Z")), Some(s.due_of(1)));
        s.stop(now).expect("stopped");
        assert_eq!(s.next_due(now), None);
        assert!(s.stop(now).is_err());
    }

    #[test]
    fn patrol_1_a_schedule_repeats_within_a_quarter_and_starts_ahead() {
        let now = t("2026-03-01T08:00:00Z");
        for every in [0, 93] {
            let err = PatrolSchedule::new(
                "PS".into(),
                "OP",
                "S1",
                every,
                t("2026-03-02T00:00:00Z"),
                now,
            )
            .expect_err("period");
            assert!(matches!(
                err,
                chargemesh_kit::Error::Invalid {
                    rule: Some("PATROL-1"),
                    ..
                }
            ));
        }
        assert!(PatrolSchedule::new("PS".into(), "OP", "S1", 7, now, now).is_err());
    }

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
