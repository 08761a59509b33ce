//! REQ MON-1: connectors silent for the configured time turn offline; each pass also sets the
//! fleet's connectors-by-state gauge.

use std::time::Duration;

use crate::domain::ConnectorState;
use crate::ingest::Telemetry;
use crate::store::StatusChange;

impl Telemetry {
    /// One liveness pass: connectors silent for the interval become offline (REQ MON-1).
    pub async fn sweep_once(&self) -> Result<Vec<StatusChange>, chargemesh_kit::db::StoreError> {
        let now = self.clock.now();
        let cutoff = now - chrono::Duration::seconds(self.settings.offline_after_seconds as i64);
        let changes = self.store.sweep_offline(cutoff, now).await?;
        if !changes.is_empty() {
            tracing::info!(
                count = changes.len(),
                "connectors went offline after silence"
            );
        }
        self.feed.committed(&changes);
        self.count_connectors().await?;
        Ok(changes)
    }

    /// Sets the fleet's connectors-by-state gauge from the live status (every state, zeros too).
    async fn count_connectors(&self) -> Result<(), chargemesh_kit::db::StoreError> {
        let counts = self.store.count_by_state().await?;
        let gauge = &chargemesh_kit::metrics::metrics().connectors;
        for state in ConnectorState::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            gauge
                .get_or_create(&chargemesh_kit::metrics::StateLabels {
                    state: state.as_str().to_owned(),
                })
                .set(n);
        }
        Ok(())
    }

    /// Runs liveness passes until the task is aborted.
    pub fn spawn_liveness(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(
                this.settings.sweep_interval_ms.max(10),
            ));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = this.sweep_once().await {
                    tracing::warn!(%error, "liveness pass failed");
                }
            }
        })
    }
}
