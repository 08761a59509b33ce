//! Orders from the telemetry stream (REQ SETTLE-1): metering reads the telemetry component's
//! durable log from where it stopped (the log is numbered in commit order, so nothing that
//! commits later is behind the position) — session starts, meter samples, session ends — keeps each
//! running session in its database and, when a session ends, settles and records its order.
//! Reading the log again after a crash makes nothing twice: session ids come from the log, a
//! resent sample is ignored and an order already recorded is left as it is.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;

use chargemesh_kit::Error;
use chargemesh_kit::db::StoreError;
use chargemesh_kit::time::from_timestamp;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_message::Body;

use crate::domain::abnormal::{Flag, FlagKind};
use crate::domain::order::ChargingSteps;
use crate::domain::session::{Ending, OpenSession, Origin};
use crate::engine::Engine;

/// The name of the log position metering keeps in the telemetry component's log.
const LOG: &str = "telemetry-component-log";
const KINDS: [&str; 3] = ["session_start", "meter", "session_end"];
/// Who recorded orders assembled from telemetry.
const RECORDER: &str = "telemetry";

/// The running session of each connector of a page as the follower last knew it (`None`: none
/// running); a connector not in it is read from the store.
type Sessions = std::collections::HashMap<(String, String), Option<OpenSession>>;

fn register(value: &str) -> Result<Decimal, Error> {
    Decimal::from_str(value.trim())
        .map_err(|_| Error::bad_field("register", format!("{value} is not a register reading")))
}

impl Engine {
    /// Reads one page of the log and applies it; returns how many log sequences it moved past
    /// (0 when the log had nothing new). A page may hold no entry of the kinds metering reads
    /// and still move on: the log's reads scan a bounded span.
    pub async fn follow_once(&self) -> Result<u64, Error> {
        let after = self.store.position(LOG).await?;
        let page = self
            .telemetry
            .clone()
            .read_log(tm::ReadLogRequest {
                after_sequence: after,
                kinds: KINDS.iter().map(|k| (*k).to_owned()).collect(),
                limit: 500,
            })
            .await
            .map_err(|status| {
                Error::Unavailable(format!(
                    "the telemetry log is unavailable: {}",
                    status.message()
                ))
            })?
            .into_inner();
        // The page's connectors' running sessions in one read, not one read per entry.
        let connectors: Vec<(String, String)> = page
            .entries
            .iter()
            .filter_map(|e| e.message.as_ref())
            .map(|m| (m.operator_id.clone(), m.connector_id.clone()))
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        let mut running = self.store.open_sessions(&connectors).await?;
        let mut sessions: Sessions = connectors
            .into_iter()
            .map(|key| {
                let session = running.remove(&key);
                (key, session)
            })
            .collect();
        for entry in page.entries {
            let outcome = self.apply(&entry, &mut sessions).await;
            if outcome.is_err()
                && let Some(message) = &entry.message
            {
                // What the entry did to its connector's session is read again from the store.
                sessions.remove(&(message.operator_id.clone(), message.connector_id.clone()));
            }
            match outcome {
                Ok(()) => {}
                // Worth another try: the registry or the database is away for a moment.
                Err(e @ (Error::Unavailable(_) | Error::Store(_) | Error::Conflict(_))) => {
                    return Err(e);
                }
                // The entry itself cannot make an order; reading on keeps every later session.
                Err(error) => tracing::warn!(
                    sequence = entry.sequence,
                    %error,
                    "a telemetry log entry makes no order; skipped"
                ),
            }
        }
        if page.last_sequence > after {
            self.store.set_position(LOG, page.last_sequence).await?;
        }
        Ok(u64::try_from(page.last_sequence - after).unwrap_or(0))
    }

    async fn apply(&self, entry: &tm::LogEntry, sessions: &mut Sessions) -> Result<(), Error> {
        let Some(message) = &entry.message else {
            return Ok(());
        };
        let Some(at) = message.observe_time.as_ref().and_then(from_timestamp) else {
            return Ok(());
        };
        let origin = Origin {
            operator_id: &message.operator_id,
            station_id: &entry.station_id,
            pile_id: &message.pile_id,
            connector_id: &message.connector_id,
            at,
            sequence: entry.sequence,
        };
        let now = self.clock.now();
        let key = (message.operator_id.clone(), message.connector_id.clone());
        let open = match sessions.get(&key) {
            Some(known) => known.clone(),
            None => {
                self.store
                    .open_session(&message.operator_id, &message.connector_id)
                    .await?
            }
        };
        match &message.body {
            Some(Body::SessionStart(start)) => {
                if let Some(previous) = open {
                    if previous.start == at && previous.pile_id == message.pile_id {
                        // This very start, read again after an interruption.
                        return Ok(());
                    }
                    // Started again without an end: the last one is kept without its end.
                    self.close(previous, None, true).await?;
                    sessions.insert(key.clone(), None);
                }
                let mut session = OpenSession::start(
                    &origin,
                    &start.order_id,
                    &start.authorization_ref,
                    register(&start.meter_start_kwh)?,
                    ChargingSteps {
                        connector_checked: start.connector_checked,
                        charging_confirmed: start.charging_confirmed,
                        ..ChargingSteps::default()
                    },
                );
                session.any_token = start.any_token;
                self.store.put_session(&session, now).await?;
                sessions.insert(key, Some(session));
            }
            Some(Body::Meter(sample)) => {
                if let Some(mut session) = open
                    && session.sample(at, register(&sample.energy_kwh)?)
                {
                    self.store.put_session(&session, now).await?;
                    sessions.insert(key, Some(session));
                }
            }
            Some(Body::SessionEnd(end)) => {
                let ending = Ending {
                    at,
                    meter_stop_kwh: register(&end.meter_stop_kwh)?,
                    stop_reason: end.stop_reason,
                    end_confirmed: end.end_confirmed,
                    physically_separated: end.physically_separated,
                    reported: match (
                        Decimal::from_str(end.reported_energy_kwh.trim()),
                        Decimal::from_str(end.reported_total_money.trim()),
                    ) {
                        (Ok(energy), Ok(money)) => Some((energy, money)),
                        _ => None,
                    },
                };
                sessions.insert(key, None);
                match open {
                    Some(session) => self.close(session, Some(ending), true).await?,
                    None => {
                        // REQ MON-9: an end whose start never arrived is kept as an abnormal
                        // order for a monitor to verify and correct, never dropped. Its id
                        // comes from the log entry, so reading the entry again records it once.
                        tracing::warn!(
                            connector = %message.connector_id,
                            sequence = entry.sequence,
                            "a session end without its start; kept as an abnormal order"
                        );
                        let session = OpenSession::start(
                            &origin,
                            &end.order_id,
                            "",
                            ending.meter_stop_kwh,
                            ChargingSteps::default(),
                        );
                        self.close(session, Some(ending), false).await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Settles and records a session's order, then forgets the running session; `started` is
    /// false for an end whose start never arrived.
    async fn close(
        &self,
        session: OpenSession,
        ending: Option<Ending>,
        started: bool,
    ) -> Result<(), Error> {
        let (operator_id, connector_id) =
            (session.operator_id.clone(), session.connector_id.clone());
        if self
            .store
            .order(&operator_id, &session.order_id, None)
            .await?
            .is_none()
        {
            let context = self
                .context(&operator_id, &session.pile_id, session.start)
                .await?;
            let mut order =
                session.into_order(ending, &context.area_code, RECORDER, self.clock.now());
            if ending.is_none() {
                order.flags.push(Flag {
                    kind: FlagKind::NeverEnded,
                    detail: "a new session started on the connector before this one ended".into(),
                });
            }
            if !started {
                order.flags.push(Flag {
                    kind: FlagKind::NeverStarted,
                    detail: format!(
                        "the session's end arrived without its start: register {} kWh at the end; its start and energy are unknown",
                        order
                            .samples
                            .last()
                            .map(|s| s.register_kwh.to_string())
                            .unwrap_or_default()
                    ),
                });
            }
            match self.record(order, &context, false).await {
                Ok(_) | Err(Error::Store(StoreError::Unique(_))) => {}
                Err(other) => return Err(other),
            }
        }
        self.store.drop_session(&operator_id, &connector_id).await?;
        Ok(())
    }

    /// Follows the log until aborted, polling every `every` when it is quiet.
    pub fn spawn_follower(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                // One replica follows at a time: sessions are assembled in log order.
                let lead = match &this.leader {
                    Some(db) => match db.leadership("metering-follow").await {
                        Ok(Some(lead)) => Some(lead),
                        Ok(None) => {
                            tokio::time::sleep(every.max(Duration::from_secs(1))).await;
                            continue;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "leadership of the telemetry log");
                            tokio::time::sleep(every.max(Duration::from_secs(1))).await;
                            continue;
                        }
                    },
                    None => None,
                };
                let outcome = this.follow_once().await;
                if let Some(lead) = lead {
                    lead.release().await;
                }
                match outcome {
                    Ok(0) => tokio::time::sleep(every).await,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "reading the telemetry log; retrying");
                        tokio::time::sleep(every.max(Duration::from_secs(1))).await;
                    }
                }
            }
        })
    }
}
