//! REQ BASE-2: each closed local day of a station in trial operation is computed from the status
//! log and the meter registers and published to the regulator, once.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use chargemesh_kit::Error;
use chargemesh_kit::clock::china_date;
use chargemesh_kit::time::from_timestamp;
use chargemesh_proto::asset::v1 as apb;

use crate::ingest::Telemetry;
use crate::trial::{Timeline, TrialDay, day_figures, day_window, energy_from_registers};

impl Telemetry {
    /// REQ BASE-2: computes and publishes every closed, unpublished trial day of every station in
    /// trial operation. Idempotent: a day is published once.
    pub async fn publish_closed_days(&self) -> Result<Vec<TrialDay>, Error> {
        let now = self.clock.now();
        let today = china_date(now);
        let stations = self
            .registry
            .asset()
            .stations("", apb::StationState::TrialOperation)
            .await?;
        let mut published = Vec::new();
        for station in &stations {
            let Some(started) = station
                .trial_operation_start_time
                .as_ref()
                .and_then(from_timestamp)
            else {
                continue;
            };
            let done: std::collections::HashSet<_> = self
                .store
                .trial_days(&station.operator_id, &station.station_id)
                .await?
                .into_iter()
                .map(|d| d.day)
                .collect();
            let mut day = china_date(started);
            while day < today {
                if !done.contains(&day) {
                    let figures = self.trial_day(station, day, started).await?;
                    if self.store.publish_trial_day(&figures, now).await? {
                        tracing::info!(
                            station = %station.station_id,
                            day = %figures.day,
                            availability = %figures.availability_percent,
                            "trial-operation day published"
                        );
                        self.feed.published_trial_day(&figures, now);
                        published.push(figures);
                    }
                }
                day = day.succ_opt().unwrap_or(today);
            }
        }
        Ok(published)
    }

    async fn trial_day(
        &self,
        station: &apb::Station,
        day: NaiveDate,
        started: DateTime<Utc>,
    ) -> Result<TrialDay, Error> {
        let window = day_window(day, started);
        let piles = self
            .registry
            .asset()
            .piles(&station.operator_id, &station.station_id)
            .await?;
        let mut timelines = self
            .store
            .timelines(
                &station.operator_id,
                &station.station_id,
                window.0,
                window.1,
            )
            .await?;
        let connectors: Vec<Timeline> = piles
            .iter()
            .filter(|p| p.state != apb::PileState::Retired as i32)
            .flat_map(|p| p.connectors.iter())
            .map(|c| timelines.remove(&c.connector_id).unwrap_or_default())
            .collect();
        let registers = self
            .store
            .meter_registers(
                &station.operator_id,
                &station.station_id,
                window.0,
                window.1,
            )
            .await?;
        let energy = registers
            .values()
            .map(|samples| energy_from_registers(samples))
            .sum();
        Ok(day_figures(
            &station.operator_id,
            &station.station_id,
            day,
            window,
            &connectors,
            energy,
        ))
    }

    /// Publishes closed trial days every `interval` until the task is aborted.
    pub fn spawn_trial_publisher(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = this.publish_closed_days().await {
                    tracing::warn!(%error, "trial-operation publishing failed");
                }
            }
        })
    }
}
