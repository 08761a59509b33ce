//! REQ PATROL-1: normal patrols made from their schedules on the durable clock. Each period of a
//! schedule is a deadline row `patrol:<k>` on the schedule; firing it makes the patrol of period
//! `k` and sets the row of period `k + 1`, so a schedule survives restarts and makes each patrol
//! once.

use chrono::{DateTime, Utc};

use chargemesh_kit::Error;
use chargemesh_kit::db::StoreError;

use crate::domain::patrol::PatrolSchedule;
use crate::engine::Engine;
use crate::store::DueDeadline;

/// The deadline kind of a schedule's period: `patrol:<k>`.
const PERIOD: &str = "patrol:";

/// The deadline kind of period `k`.
pub fn period_kind(k: u32) -> String {
    format!("{PERIOD}{k}")
}

/// The period a deadline kind names, when it is a schedule's.
pub fn period_of(kind: &str) -> Option<u32> {
    kind.strip_prefix(PERIOD)?.parse().ok()
}

impl Engine {
    /// Starts a schedule: its record, then the clock of its first period, due at once.
    pub async fn start_schedule(&self, schedule: &PatrolSchedule) -> Result<(), Error> {
        self.store.insert(schedule, schedule.created_at).await?;
        self.store
            .add_deadline(
                &schedule.operator_id,
                &schedule.schedule_id,
                &period_kind(0),
                schedule.opens_at(0),
            )
            .await?;
        Ok(())
    }

    /// Fires a schedule's period: makes its patrol unless the schedule stopped, sets the next
    /// period's clock, then marks this one fired. A pass repeated after a crash makes nothing
    /// twice.
    pub(crate) async fn open_period(
        &self,
        due: &DueDeadline,
        k: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let schedule = self
            .store
            .load::<PatrolSchedule>(&due.operator_id, &due.subject_id)
            .await?
            .map(|(schedule, _)| schedule);
        if let Some(schedule) = schedule.filter(|s| s.stopped_at.is_none()) {
            let area_code = self
                .station(&schedule.operator_id, &schedule.station_id)
                .await?
                .area_code;
            let patrol = schedule.patrol(k, &area_code, now);
            match self.store.insert(&patrol, now).await {
                Ok(()) | Err(StoreError::Unique(_)) => {}
                Err(other) => return Err(other.into()),
            }
            self.store
                .add_deadline(
                    &schedule.operator_id,
                    &schedule.schedule_id,
                    &period_kind(k + 1),
                    schedule.opens_at(k + 1),
                )
                .await?;
            tracing::info!(patrol = %patrol.patrol_id, due = %patrol.due_at, "normal patrol scheduled (REQ PATROL-1)");
        }
        Ok(self.store.fire(due, None, now).await?)
    }
}
