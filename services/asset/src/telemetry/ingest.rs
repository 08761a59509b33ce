//! `TelemetryService/Connect`: batches in, rejections and acknowledgements out. A batch is
//! acknowledged only after its transaction commits (REQ MON-1: nothing acknowledged is lost);
//! resends are recognised by (sender, sequence).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::db::StoreError;
use chargemesh_kit::server::principal;
use chargemesh_kit::time::from_timestamp;
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::telemetry::v1 as pb;
use chargemesh_proto::telemetry::v1::telemetry_service_server::{
    TelemetryService, TelemetryServiceServer,
};

use crate::domain::tenancy::{Access, Decision, Target, decide};

use super::domain::{self, AlarmSeverity, Body, ConnectorState, Incoming, Rejection, Report};
use super::feed::ChangeFeed;
use super::registry::Registry;
use super::store::{StatusChange, TelemetryStore};
use chrono::{DateTime, NaiveDate, Utc};

use chargemesh_kit::clock::china_date;

use super::trial::{Timeline, TrialDay, day_figures, day_window, energy_from_registers};
use crate::domain::model::{Station, StationState};
use crate::domain::rules;
use crate::store::{AssetStore, NewChange};
use crate::store::{Filter, Page};

/// Telemetry settings of the asset component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// REQ MON-1: a connector silent this long becomes offline.
    pub offline_after_seconds: u64,
    /// How often silence is checked, in milliseconds.
    pub sweep_interval_ms: u64,
    /// The most messages one batch may carry.
    pub max_batch: usize,
    /// How often waiting pile commands are delivered to the streams of this process, in
    /// milliseconds.
    pub command_interval_ms: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            offline_after_seconds: 180,
            sweep_interval_ms: 15_000,
            max_batch: 1_000,
            command_interval_ms: 500,
        }
    }
}

/// The most messages one transaction of the writer takes, merged from the waiting batches.
const MAX_MERGE: usize = 20_000;

/// The one writer of a process: it merges the batches waiting from every stream into one
/// transaction, so a commit (and its fsync) serves them all, then answers each stream.
#[derive(Debug, Clone)]
struct Writer {
    tx: tokio::sync::mpsc::Sender<Job>,
}

#[derive(Debug)]
struct Job {
    reports: Vec<Report>,
    reply: tokio::sync::oneshot::Sender<Result<Written, StoreError>>,
}

/// What the writer did with one stream's batch.
#[derive(Debug, Default)]
struct Written {
    /// How many of the batch's reports were stored now (the rest are resends).
    stored: usize,
    /// A connector of the batch spoke while marked offline by silence.
    resync: bool,
}

impl Writer {
    fn spawn(store: Arc<dyn TelemetryStore>, feed: ChangeFeed, clock: SharedClock) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                let mut count = jobs[0].reports.len();
                while count < MAX_MERGE {
                    match rx.try_recv() {
                        Ok(job) => {
                            count += job.reports.len();
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                let all: Vec<Report> = jobs
                    .iter()
                    .flat_map(|j| j.reports.iter().cloned())
                    .collect();
                let started = std::time::Instant::now();
                let mut result = store.append(&all, clock.now()).await;
                tracing::debug!(
                    batches = jobs.len(),
                    messages = all.len(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "telemetry transaction"
                );
                if matches!(result, Err(StoreError::Conflict(_))) {
                    // Another replica made a connector's first status row meanwhile: once more.
                    result = store.append(&all, clock.now()).await;
                }
                match result {
                    Ok(outcome) => {
                        let stored: std::collections::HashSet<(&str, u64)> = outcome
                            .stored
                            .iter()
                            .map(|(s, q)| (s.as_str(), *q))
                            .collect();
                        for job in jobs {
                            let written = Written {
                                stored: job
                                    .reports
                                    .iter()
                                    .filter(|r| stored.contains(&(r.source.as_str(), r.sequence)))
                                    .count(),
                                resync: job
                                    .reports
                                    .first()
                                    .is_some_and(|r| outcome.resync.contains(&r.source)),
                            };
                            let _ = job.reply.send(Ok(written));
                        }
                        // The senders have their acknowledgements; now wake the watchers.
                        feed.committed(&outcome.changes).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, batches = jobs.len(), "telemetry not stored; senders will resend");
                        for job in jobs {
                            let _ = job.reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    async fn append(&self, reports: Vec<Report>) -> Result<Written, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Unavailable("the telemetry writer stopped".into());
        self.tx
            .send(Job { reports, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The ingest side of telemetry.
#[derive(Debug, Clone)]
pub struct Telemetry {
    assets: Arc<dyn AssetStore>,
    store: Arc<dyn TelemetryStore>,
    registry: Arc<Registry>,
    clock: SharedClock,
    feed: ChangeFeed,
    settings: TelemetrySettings,
    writer: Writer,
    streams: Arc<super::commands::Streams>,
}

fn state_of(v: i32) -> Result<ConnectorState, Rejection> {
    Ok(match pb::ConnectorState::try_from(v) {
        Ok(pb::ConnectorState::Offline) => ConnectorState::Offline,
        Ok(pb::ConnectorState::Idle) => ConnectorState::Idle,
        Ok(pb::ConnectorState::OccupiedNotCharging) => ConnectorState::OccupiedNotCharging,
        Ok(pb::ConnectorState::Charging) => ConnectorState::Charging,
        Ok(pb::ConnectorState::Reserved) => ConnectorState::Reserved,
        Ok(pb::ConnectorState::Fault) => ConnectorState::Fault,
        _ => return Err(Rejection::invalid("status.state must be set")),
    })
}

pub fn state_to_pb(state: ConnectorState) -> pb::ConnectorState {
    match state {
        ConnectorState::Offline => pb::ConnectorState::Offline,
        ConnectorState::Idle => pb::ConnectorState::Idle,
        ConnectorState::OccupiedNotCharging => pb::ConnectorState::OccupiedNotCharging,
        ConnectorState::Charging => pb::ConnectorState::Charging,
        ConnectorState::Reserved => pb::ConnectorState::Reserved,
        ConnectorState::Fault => pb::ConnectorState::Fault,
    }
}

/// Translates a protobuf message; a malformed body becomes that message's rejection.
pub fn incoming(msg: pb::TelemetryMessage) -> Incoming {
    use pb::telemetry_message::Body as B;
    let body = match msg.body {
        Some(B::Status(s)) => state_of(s.state).map(|state| Body::Status {
            state,
            fault_code: s.fault_code.trim().to_owned(),
            fault_text: s.fault_text.trim().to_owned(),
        }),
        Some(B::Heartbeat(_)) => Ok(Body::Heartbeat),
        Some(B::Meter(m)) => domain::parse_energy(&m.energy_kwh).map(|energy_kwh| Body::Meter {
            energy_kwh,
            power_kw: m.power_kw,
            voltage: m.voltage,
            current: m.current,
            soc_percent: (m.soc_percent >= 0.0).then_some(m.soc_percent),
        }),
        Some(B::Alarm(a)) => match pb::AlarmSeverity::try_from(a.severity) {
            Ok(pb::AlarmSeverity::Info) => Ok(AlarmSeverity::Info),
            Ok(pb::AlarmSeverity::Warning) => Ok(AlarmSeverity::Warning),
            Ok(pb::AlarmSeverity::Critical) => Ok(AlarmSeverity::Critical),
            _ => Err(Rejection::invalid("alarm.severity must be set")),
        }
        .map(|severity| Body::Alarm {
            code: a.code.trim().to_owned(),
            severity,
            text: a.text.trim().to_owned(),
        }),
        Some(B::Link(l)) => Ok(Body::Link {
            link_id: l.link_id.trim().to_owned(),
            iccid: l.iccid.trim().to_owned(),
            up: l.up,
            traffic_mb_24h: l.traffic_mb_24h,
        }),
        Some(B::SessionStart(m)) => {
            parse_register("session_start.meter_start_kwh", &m.meter_start_kwh).map(
                |meter_start_kwh| Body::SessionStart {
                    order_id: m.order_id.trim().to_owned(),
                    authorization_ref: m.authorization_ref.trim().to_owned(),
                    meter_start_kwh,
                    connector_checked: m.connector_checked,
                    charging_confirmed: m.charging_confirmed,
                },
            )
        }
        Some(B::SessionEnd(m)) => parse_register("session_end.meter_stop_kwh", &m.meter_stop_kwh)
            .map(|meter_stop_kwh| Body::SessionEnd {
                order_id: m.order_id.trim().to_owned(),
                meter_stop_kwh,
                stop_reason: m.stop_reason,
                end_confirmed: m.end_confirmed,
                physically_separated: m.physically_separated,
            }),
        None => Err(Rejection::invalid("the message has no body")),
    };
    Incoming {
        sequence: msg.sequence,
        operator_id: msg.operator_id.trim().to_owned(),
        pile_id: msg.pile_id.trim().to_owned(),
        connector_id: msg.connector_id.trim().to_owned(),
        observed_at: msg.observe_time.as_ref().and_then(from_timestamp),
        body,
    }
}

fn parse_register(field: &str, value: &str) -> Result<rust_decimal::Decimal, Rejection> {
    use std::str::FromStr;
    rust_decimal::Decimal::from_str(value.trim())
        .map_err(|_| Rejection::invalid(format!("{field} must be a decimal such as 1234.567")))
}

/// A logged message in its protobuf form, for the components that read the log.
pub fn body_to_pb(body: &Body) -> pb::telemetry_message::Body {
    use pb::telemetry_message::Body as B;
    match body.clone() {
        Body::Status {
            state,
            fault_code,
            fault_text,
        } => B::Status(pb::ConnectorStatus {
            state: state_to_pb(state) as i32,
            fault_code,
            fault_text,
        }),
        Body::Heartbeat => B::Heartbeat(pb::Heartbeat {}),
        Body::Meter {
            energy_kwh,
            power_kw,
            voltage,
            current,
            soc_percent,
        } => B::Meter(pb::MeterSample {
            energy_kwh: energy_kwh.to_string(),
            power_kw,
            voltage,
            current,
            soc_percent: soc_percent.unwrap_or(-1.0),
        }),
        Body::Alarm {
            code,
            severity,
            text,
        } => B::Alarm(pb::Alarm {
            code,
            severity: (match severity {
                AlarmSeverity::Info => pb::AlarmSeverity::Info,
                AlarmSeverity::Warning => pb::AlarmSeverity::Warning,
                AlarmSeverity::Critical => pb::AlarmSeverity::Critical,
            }) as i32,
            text,
        }),
        Body::Link {
            link_id,
            iccid,
            up,
            traffic_mb_24h,
        } => B::Link(pb::LinkState {
            link_id,
            iccid,
            up,
            traffic_mb_24h,
        }),
        Body::SessionStart {
            order_id,
            authorization_ref,
            meter_start_kwh,
            connector_checked,
            charging_confirmed,
        } => B::SessionStart(pb::SessionStart {
            order_id,
            authorization_ref,
            meter_start_kwh: meter_start_kwh.to_string(),
            connector_checked,
            charging_confirmed,
        }),
        Body::SessionEnd {
            order_id,
            meter_stop_kwh,
            stop_reason,
            end_confirmed,
            physically_separated,
        } => B::SessionEnd(pb::SessionEnd {
            order_id,
            meter_stop_kwh: meter_stop_kwh.to_string(),
            stop_reason,
            end_confirmed,
            physically_separated,
        }),
    }
}

fn rejection(sequence: u64, r: &Rejection) -> pb::ConnectResponse {
    pb::ConnectResponse {
        body: Some(pb::connect_response::Body::Rejection(pb::Rejection {
            sequence,
            code: code_name(r.code),
            reason: r.reason.clone(),
        })),
    }
}

/// A gRPC code as its canonical name: `PermissionDenied` -> `PERMISSION_DENIED`.
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl Telemetry {
    pub fn new(
        assets: Arc<dyn AssetStore>,
        store: Arc<dyn TelemetryStore>,
        registry: Arc<Registry>,
        clock: SharedClock,
        feed: ChangeFeed,
        settings: TelemetrySettings,
    ) -> Self {
        let writer = Writer::spawn(store.clone(), feed.clone(), clock.clone());
        Self {
            assets,
            store,
            registry,
            clock,
            feed,
            settings,
            writer,
            streams: Arc::default(),
        }
    }

    pub(super) fn assets(&self) -> &Arc<dyn AssetStore> {
        &self.assets
    }

    pub(super) fn store(&self) -> &Arc<dyn TelemetryStore> {
        &self.store
    }

    pub(super) fn streams(&self) -> &Arc<super::commands::Streams> {
        &self.streams
    }

    pub(super) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn into_server(self) -> TelemetryServiceServer<Self> {
        TelemetryServiceServer::new(self)
    }

    /// Handles one batch: validate, append durably, then answer.
    pub async fn handle_batch(
        &self,
        principal: &Principal,
        batch: pb::ConnectRequest,
    ) -> Result<Vec<pb::ConnectResponse>, Status> {
        let now = self.clock.now();
        let mut responses = Vec::new();
        let mut handled = Vec::with_capacity(batch.messages.len());
        let mut reports: Vec<Report> = Vec::with_capacity(batch.messages.len());
        let mut seen = std::collections::HashSet::new();
        for (i, msg) in batch.messages.into_iter().enumerate() {
            let sequence = msg.sequence;
            if i >= self.settings.max_batch {
                let r = Rejection {
                    code: tonic::Code::ResourceExhausted,
                    reason: format!(
                        "a batch carries at most {} messages; send the rest again",
                        self.settings.max_batch
                    ),
                };
                responses.push(rejection(sequence, &r));
                continue;
            }
            if sequence != 0 && !seen.insert(sequence) {
                continue; // repeated within the batch: the first one stands
            }
            let incoming = incoming(msg);
            let operator = if incoming.operator_id.is_empty() {
                principal.operator_id().unwrap_or_default().to_owned()
            } else {
                incoming.operator_id.clone()
            };
            let pile = match (principal, incoming.pile_id.is_empty()) {
                (Principal::Pile { pile_id, .. }, true) => pile_id.clone(),
                _ => incoming.pile_id.clone(),
            };
            let index = if operator.is_empty() {
                None
            } else {
                self.registry
                    .index(&operator, &pile)
                    .await
                    .map_err(|e| Status::from(chargemesh_kit::Error::Store(e)))?
            };
            match domain::validate(principal, &incoming, index.as_deref(), now) {
                Ok(report) => {
                    handled.push(sequence);
                    reports.push(report);
                }
                Err(r) => {
                    if sequence != 0 {
                        handled.push(sequence);
                    }
                    responses.push(rejection(sequence, &r));
                }
            }
        }
        let mut stations: Vec<(String, String)> = reports
            .iter()
            .map(|r| (r.operator_id.clone(), r.station_id.clone()))
            .collect();
        stations.sort_unstable();
        stations.dedup();
        let kinds: Vec<&'static str> = reports.iter().map(|r| r.body.kind()).collect();
        let outcome = self
            .writer
            .append(reports)
            .await
            .map_err(|e| Status::from(chargemesh_kit::Error::Store(e)))?;
        let ingested = &chargemesh_kit::metrics::metrics().telemetry_messages;
        for kind in kinds {
            ingested
                .get_or_create(&chargemesh_kit::metrics::KindLabels {
                    kind: kind.to_owned(),
                })
                .inc();
        }
        for (first, last) in domain::ranges(handled) {
            responses.push(pb::ConnectResponse {
                body: Some(pb::connect_response::Body::Acknowledgement(
                    pb::Acknowledgement {
                        first_sequence: first,
                        last_sequence: last,
                    },
                )),
            });
        }
        if outcome.resync {
            responses.push(pb::ConnectResponse {
                body: Some(pb::connect_response::Body::Resync(pb::ResyncRequest {
                    reason: "a connector was marked offline after silence (REQ MON-1); report every connector's status".into(),
                })),
            });
        }
        if outcome.stored > 0 {
            self.connect_stations(principal, &stations, now).await;
        }
        Ok(responses)
    }

    /// REQ BASE-2: the first report from a filed station marks it connected.
    async fn connect_stations(
        &self,
        principal: &Principal,
        stations: &[(String, String)],
        now: DateTime<Utc>,
    ) {
        for (operator_id, station_id) in stations {
            let (operator_id, station_id) = (operator_id.as_str(), station_id.as_str());
            let known = self.registry.index(operator_id, "").await.ok().flatten();
            let filed = known
                .as_ref()
                .and_then(|i| i.stations.get(station_id))
                .is_some_and(|s| s.state == StationState::Filed);
            if !filed {
                continue;
            }
            let result = async {
                let Some(current) = self.assets.station(operator_id, station_id).await? else {
                    return Ok(());
                };
                let Ok(next) = rules::connect(current.value.clone(), None, now) else {
                    return Ok(());
                };
                let change = NewChange {
                    operator_id: operator_id.to_owned(),
                    entity_type: "station",
                    entity_id: station_id.to_owned(),
                    action: "connect",
                    actor: principal.to_string(),
                    note: "first telemetry report (REQ BASE-2)".into(),
                    recorded_at: now,
                    before: serde_json::to_value(&current.value).ok(),
                    after: serde_json::to_value(&next).unwrap_or_default(),
                };
                self.assets
                    .update_station(&next, current.version, &change)
                    .await
            }
            .await;
            match result {
                Ok(()) => tracing::info!(
                    operator_id,
                    station_id,
                    "station connected by its first report"
                ),
                Err(error) => {
                    tracing::warn!(operator_id, station_id, %error, "station not marked connected")
                }
            }
            self.registry.invalidate(operator_id);
        }
    }

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
        self.feed.committed(&changes).await;
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

    /// REQ BASE-2: computes and publishes every closed, unpublished trial day of every station in
    /// trial operation. Idempotent: a day is published once.
    pub async fn publish_closed_days(
        &self,
    ) -> Result<Vec<TrialDay>, chargemesh_kit::db::StoreError> {
        let now = self.clock.now();
        let today = china_date(now);
        let filters = [Filter::Eq(
            "state",
            StationState::TrialOperation.as_str().to_owned(),
        )];
        let mut published = Vec::new();
        let mut after = None;
        loop {
            let page = Page {
                after: after.clone(),
                limit: 200,
            };
            let stations = self.assets.list_stations(&filters, &page).await?;
            for station in &stations {
                let Some(started) = station.trial_started_at else {
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
                            self.feed.published_trial_day(&figures, now).await;
                            published.push(figures);
                        }
                    }
                    day = day.succ_opt().unwrap_or(today);
                }
            }
            match stations.last() {
                Some(last) if stations.len() == 200 => {
                    after = Some((last.operator_id.clone(), last.station_id.clone()))
                }
                _ => break,
            }
        }
        Ok(published)
    }

    async fn trial_day(
        &self,
        station: &Station,
        day: NaiveDate,
        started: DateTime<Utc>,
    ) -> Result<TrialDay, chargemesh_kit::db::StoreError> {
        let window = day_window(day, started);
        let filters = [
            Filter::Eq("operator_id", station.operator_id.clone()),
            Filter::Eq("station_id", station.station_id.clone()),
        ];
        let piles = self
            .assets
            .list_piles(&filters, &Page::WHOLE_STATION)
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
            .filter(|p| p.state != crate::domain::model::PileState::Retired)
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

type ConnectStream =
    Pin<Box<dyn Stream<Item = Result<pb::ConnectResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TelemetryService for Telemetry {
    type ConnectStream = ConnectStream;

    async fn send_pile_command(
        &self,
        request: Request<pb::SendPileCommandRequest>,
    ) -> Result<Response<pb::SendPileCommandResponse>, Status> {
        let principal = principal(&request)?;
        if !matches!(principal, Principal::Service { .. }) {
            return Err(Status::permission_denied(
                "pile commands are sent by mesh components only",
            ));
        }
        let r = request.into_inner();
        let result = async {
            let command = r
                .command
                .ok_or_else(|| Error::bad_field("command", "must be set"))?;
            let command_id = self.queue_command(r.operator_id.trim(), command).await?;
            // Straight away when the pile's stream is here; the next pass otherwise.
            if let Err(error) = self.deliver_commands().await {
                tracing::warn!(%error, "command delivery pass failed");
            }
            Ok(pb::SendPileCommandResponse { command_id })
        };
        chargemesh_kit::error::reply(result.await)
    }

    async fn read_log(
        &self,
        request: Request<pb::ReadLogRequest>,
    ) -> Result<Response<pb::ReadLogResponse>, Status> {
        let principal = principal(&request)?;
        if !matches!(principal, Principal::Service { .. }) {
            return Err(Status::permission_denied(
                "the telemetry log is read by mesh components only",
            ));
        }
        let r = request.into_inner();
        let limit = match r.limit {
            0 => 500,
            n if n < 0 => {
                return chargemesh_kit::error::reply(Err(Error::bad_field(
                    "limit",
                    "must not be negative",
                )));
            }
            n => n.min(1000) as u32,
        };
        let result = async {
            let (logged, last_sequence) = self
                .store
                .log_after(r.after_sequence.max(0), &r.kinds, limit)
                .await?;
            Ok(pb::ReadLogResponse {
                last_sequence,
                entries: logged
                    .into_iter()
                    .map(|l| pb::LogEntry {
                        sequence: l.sequence,
                        station_id: l.station_id,
                        message: Some(pb::TelemetryMessage {
                            sequence: 0,
                            operator_id: l.operator_id,
                            pile_id: l.pile_id,
                            connector_id: l.connector_id,
                            observe_time: Some(chargemesh_kit::time::to_timestamp(l.observed_at)),
                            body: Some(body_to_pb(&l.body)),
                        }),
                    })
                    .collect(),
            })
        };
        chargemesh_kit::error::reply(result.await)
    }

    async fn list_link_states(
        &self,
        request: Request<pb::ListLinkStatesRequest>,
    ) -> Result<Response<pb::ListLinkStatesResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let result = async {
            let operator_id = match r.operator_id.trim() {
                "" => principal
                    .operator_id()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::bad_field("operator_id", "is required"))?,
                given => given.to_owned(),
            };
            let station_id = r.station_id.trim();
            let what = || format!("station {operator_id}/{station_id}");
            let station = self
                .assets
                .station(&operator_id, station_id)
                .await?
                .ok_or_else(|| Error::NotFound(what()))?;
            let target = Target {
                operator_id: &operator_id,
                station_id: Some(station_id),
                pile_id: None,
                area_code: Some(&station.value.area_code),
            };
            if decide(&principal, target, Access::Read) != Decision::Allow {
                return Err(Error::NotFound(what()));
            }
            let day = match r.day.trim() {
                "" => china_date(self.clock.now()),
                given => NaiveDate::parse_from_str(given, "%Y-%m-%d")
                    .map_err(|_| Error::bad_field("day", "must be a date YYYY-MM-DD"))?,
            };
            let (start, end) = chargemesh_kit::clock::china_day(day);
            let reports = self
                .store
                .link_reports(&operator_id, station_id, start, end)
                .await?;
            Ok(pb::ListLinkStatesResponse {
                links: domain::latest_links(reports)
                    .into_iter()
                    .map(|l| pb::ReportedLinkState {
                        pile_id: l.pile_id,
                        state: Some(pb::LinkState {
                            link_id: l.link_id,
                            iccid: l.iccid,
                            up: l.up,
                            traffic_mb_24h: l.traffic_mb_24h,
                        }),
                        observe_time: Some(chargemesh_kit::time::to_timestamp(l.observed_at)),
                    })
                    .collect(),
            })
        };
        chargemesh_kit::error::reply(result.await)
    }

    async fn connect(
        &self,
        request: Request<Streaming<pb::ConnectRequest>>,
    ) -> Result<Response<ConnectStream>, Status> {
        let principal = principal(&request)?;
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let this = self.clone();
        // Commands for the piles this stream reports for go out on it while it lives.
        let registration = self.streams.register(principal.clone(), tx.clone());
        tokio::spawn(async move {
            let _registration = registration;
            let streams = &chargemesh_kit::metrics::metrics().telemetry_streams;
            streams.inc();
            let _connected = StreamGauge;
            loop {
                let batch = match inbound.message().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(%status, "telemetry stream ended");
                        return;
                    }
                };
                match this.handle_batch(&principal, batch).await {
                    Ok(responses) => {
                        for r in responses {
                            if tx.send(Ok(r)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(status) => {
                        // Nothing of the batch is acknowledged; the sender resends it.
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Counts a connected telemetry stream down when it ends, however it ends.
struct StreamGauge;

impl Drop for StreamGauge {
    fn drop(&mut self) {
        chargemesh_kit::metrics::metrics().telemetry_streams.dec();
    }
}
