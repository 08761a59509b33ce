//! What runs on its own: automatic work orders from the status log (REQ FAULT-4, MON-1, MON-2)
//! and the durable deadlines (REQ FAULT-5, FAULT-6) with the FAULT-6 follow-up repairs, on the
//! injectable clock.

use std::sync::Arc;
use std::time::Duration;

use chargemesh_kit::checkpoint::Checkpoint;
use chargemesh_kit::db::Database;
use chargemesh_kit::outbox::{Outbox, Step, StepError, StepHandler};
use chargemesh_kit::tls::MeshChannel;

use chargemesh_kit::Error;
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::events::{SharedBus, envelope};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::ConnectorState;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use crate::domain::daily::ReportedLink;
use crate::domain::work_order::{Channel as OrderChannel, Outcome, State, WorkOrder, Zone};
use crate::store::{DispatchStore, DueDeadline};

/// Where dispatch stands in the telemetry component's status log.
const FOLLOW: &str = "telemetry-status-log";
/// How often the status log follower saves its cursor while changes arrive.
const CURSOR_SAVE_EVERY: Duration = Duration::from_secs(1);

/// The bus topic of dispatch events: breaches and defects reported at once.
pub const DISPATCH_TOPIC: &str = "dispatch";
pub const BREACH_EVENT: &str = "chargemesh.dispatch.deadline_breached";
pub const DEFECT_EVENT: &str = "chargemesh.dispatch.defect_reported";
pub const INCIDENT_EVENT: &str = "chargemesh.dispatch.incident_opened";

#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Arc<dyn DispatchStore>,
    pub clock: SharedClock,
    assets: AssetServiceClient<MeshChannel>,
    telemetry: TelemetryServiceClient<MeshChannel>,
    bus: chargemesh_kit::events::Publisher,
    /// Steps that must follow a commit (a pile's suspension), carried out until done.
    outbox: Outbox,
}

/// What dispatch's outbox carries out.
pub const SUSPEND_STEP: &str = "suspend_pile";

/// Carries out dispatch's outbox steps: suspending the pile of an order closed unresolved at
/// the 4-hour mark (REQ FAULT-6, MON-4). Suspending a suspended pile changes nothing, so a step
/// carried out twice suspends once.
struct Steps {
    store: Arc<dyn DispatchStore>,
    assets: AssetServiceClient<MeshChannel>,
}

#[tonic::async_trait]
impl StepHandler for Steps {
    async fn run(&self, step: &Step) -> Result<(), StepError> {
        if step.kind != SUSPEND_STEP {
            return Err(StepError::Abandon(format!("no step {}", step.kind)));
        }
        let (order, _) = self
            .store
            .order(&step.operator_id, &step.subject_id)
            .await
            .map_err(|e| StepError::Retry(e.to_string()))?
            .ok_or_else(|| StepError::Abandon(format!("no work order {}", step.subject_id)))?;
        match suspend(&self.assets, &order, &[]).await {
            Ok(()) => Ok(()),
            Err(Error::NotFound(what)) => Err(StepError::Abandon(format!("{what} is gone"))),
            Err(other) => Err(StepError::Retry(other.to_string())),
        }
    }
}

/// REQ MON-4, FAULT-6: suspends the order's pile through the asset registry, the order as
/// evidence. A pile already suspended is left as it is.
async fn suspend(
    assets: &AssetServiceClient<MeshChannel>,
    order: &WorkOrder,
    extra_evidence: &[String],
) -> Result<(), Error> {
    let mut evidence_refs = vec![format!("work-order:{}", order.order_id)];
    evidence_refs.extend(
        extra_evidence
            .iter()
            .filter(|e| !e.trim().is_empty())
            .cloned(),
    );
    let result = assets
        .clone()
        .suspend_pile(asset::SuspendPileRequest {
            operator_id: order.operator_id.clone(),
            pile_id: order.pile_id.clone(),
            reason: asset::SuspensionReason::UnrepairedFault as i32,
            evidence_refs,
            note: format!("repair work order {} not fixed in time", order.order_id),
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(status)
            if status.code() == tonic::Code::FailedPrecondition
                && status.message().contains("already suspended") =>
        {
            Ok(())
        }
        Err(status) if status.code() == tonic::Code::NotFound => {
            Err(Error::NotFound(format!("pile {}", order.pile_id)))
        }
        Err(status) => Err(Error::Unavailable(format!(
            "the asset registry refused the suspension: {}",
            status.message()
        ))),
    }
}

/// The station facts an order needs.
#[derive(Debug, Clone, PartialEq)]
pub struct StationFacts {
    pub zone: Zone,
    pub location: (f64, f64),
    /// The GB/T 2260 district code.
    pub area_code: String,
}

impl Engine {
    pub fn new(
        store: Arc<dyn DispatchStore>,
        clock: SharedClock,
        assets: MeshChannel,
        telemetry: MeshChannel,
        bus: SharedBus,
        db: Database,
    ) -> Self {
        let assets = AssetServiceClient::new(assets);
        let steps = Steps {
            store: store.clone(),
            assets: assets.clone(),
        };
        Self {
            outbox: Outbox::new(db, Arc::new(steps), clock.clone()),
            store,
            clock,
            assets,
            telemetry: TelemetryServiceClient::new(telemetry),
            bus: chargemesh_kit::events::Publisher::spawn(bus, 1_024),
        }
    }

    /// The outbox, whose runner the component spawns.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// A client of the asset registry, over the engine's mesh channel.
    pub(crate) fn assets(&self) -> AssetServiceClient<MeshChannel> {
        self.assets.clone()
    }

    /// Publishes a dispatch event (JSON payload) on the `dispatch` topic; the database stays the
    /// record, so a lost event costs a consumer a catch-up, not data.
    pub async fn announce(&self, operator_id: &str, kind: &str, payload: &serde_json::Value) {
        let event = envelope(
            "dispatch",
            operator_id,
            kind,
            serde_json::to_vec(payload).unwrap_or_default(),
            self.clock.now(),
        );
        self.bus.offer(DISPATCH_TOPIC, vec![event]);
    }

    /// The zone and location of a station, from the asset registry.
    pub async fn station(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<StationFacts, Error> {
        let station = self
            .assets
            .clone()
            .get_station(asset::GetStationRequest {
                operator_id: operator_id.into(),
                station_id: station_id.into(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => {
                    Error::NotFound(format!("station {operator_id}/{station_id}"))
                }
                _ => Error::Unavailable("the asset registry is unavailable".into()),
            })?
            .into_inner()
            .station
            .ok_or_else(|| Error::NotFound(format!("station {operator_id}/{station_id}")))?;
        let zone = match asset::ServiceZone::try_from(station.service_zone) {
            Ok(asset::ServiceZone::MainUrban) => Zone::MainUrban,
            _ => Zone::Other,
        };
        let location = station
            .location
            .map_or((0.0, 0.0), |l| (l.longitude, l.latitude));
        Ok(StationFacts {
            zone,
            location,
            area_code: station.area_code,
        })
    }

    /// The operator's stations within an area: (station id, area code).
    pub async fn stations_in_area(
        &self,
        operator_id: &str,
        area_code: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .assets
                .clone()
                .list_stations(asset::ListStationsRequest {
                    operator_id: operator_id.into(),
                    area_code: area_code.into(),
                    page_size: 500,
                    page_token: page_token.clone(),
                    state: 0,
                })
                .await
                .map_err(|status| match status.code() {
                    tonic::Code::InvalidArgument => {
                        Error::bad_field("area_code", status.message().to_owned())
                    }
                    _ => Error::Unavailable("the asset registry is unavailable".into()),
                })?
                .into_inner();
            out.extend(
                page.stations
                    .into_iter()
                    .map(|s| (s.station_id, s.area_code)),
            );
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// REQ MON-8: the latest link states the station's piles reported on a local day.
    pub async fn reported_links(
        &self,
        operator_id: &str,
        station_id: &str,
        day: chrono::NaiveDate,
    ) -> Result<Vec<ReportedLink>, Error> {
        let links = self
            .telemetry
            .clone()
            .list_link_states(tm::ListLinkStatesRequest {
                operator_id: operator_id.into(),
                station_id: station_id.into(),
                day: day.to_string(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => {
                    Error::NotFound(format!("station {operator_id}/{station_id}"))
                }
                _ => Error::Unavailable("the telemetry service is unavailable".into()),
            })?
            .into_inner()
            .links;
        Ok(links
            .into_iter()
            .filter_map(|l| l.state)
            .map(|s| ReportedLink {
                link_id: s.link_id,
                iccid: s.iccid,
                up: s.up,
                traffic_mb_24h: s.traffic_mb_24h,
            })
            .collect())
    }

    /// REQ MON-4, FAULT-6: suspends the order's pile through the asset registry, the order as
    /// evidence. A pile already suspended is left as it is.
    pub async fn suspend_pile(
        &self,
        order: &WorkOrder,
        extra_evidence: &[String],
    ) -> Result<(), Error> {
        suspend(&self.assets, order, extra_evidence).await
    }

    /// REQ MON-5: resumes a suspended pile through the asset registry; returns when it was
    /// suspended.
    pub async fn resume_pile(
        &self,
        operator_id: &str,
        pile_id: &str,
        note: &str,
    ) -> Result<chrono::DateTime<chrono::Utc>, Error> {
        let unavailable = |status: tonic::Status| match status.code() {
            tonic::Code::NotFound => Error::NotFound(format!("pile {pile_id}")),
            tonic::Code::FailedPrecondition => {
                Error::precondition("MON-5", status.message().to_owned())
            }
            _ => Error::Unavailable("the asset registry is unavailable".into()),
        };
        let pile = self
            .assets
            .clone()
            .get_pile(asset::GetPileRequest {
                operator_id: operator_id.into(),
                pile_id: pile_id.into(),
            })
            .await
            .map_err(unavailable)?
            .into_inner()
            .pile
            .ok_or_else(|| Error::NotFound(format!("pile {pile_id}")))?;
        let suspended_at = pile
            .suspension
            .and_then(|s| s.suspend_time)
            .as_ref()
            .and_then(chargemesh_kit::time::from_timestamp)
            .ok_or_else(|| {
                Error::precondition("MON-5", format!("pile {pile_id} is not suspended"))
            })?;
        self.assets
            .clone()
            .resume_pile(asset::ResumePileRequest {
                operator_id: operator_id.into(),
                pile_id: pile_id.into(),
                note: note.into(),
            })
            .await
            .map_err(unavailable)?;
        Ok(suspended_at)
    }

    /// Records a new order with its clocks (REQ FAULT-5, or FAULT-6 for a follow-up); `false`
    /// when it exists already or an automatic order is already open for the connector.
    pub async fn open(&self, order: &WorkOrder) -> Result<bool, Error> {
        Ok(self.store.create_order(order, &order.clock_rows()).await?)
    }

    /// REQ FAULT-4: a fault or offline change opens one automatic order per connector.
    async fn on_change(&self, change: &reg::StatusChange) -> Result<(), Error> {
        let Some(s) = &change.status else {
            return Ok(());
        };
        let offline = s.state == ConnectorState::Offline as i32;
        if !offline && s.state != ConnectorState::Fault as i32 {
            return Ok(());
        }
        let facts = self.station(&s.operator_id, &s.station_id).await?;
        let fault_code = if offline {
            "OFFLINE".to_owned()
        } else {
            s.fault_code.clone()
        };
        let description = if offline {
            format!("connector offline ({})", change.origin)
        } else {
            format!("connector fault {}: {}", s.fault_code, s.fault_text)
        };
        let order = WorkOrder::receive(
            new_order_id(),
            s.operator_id.clone(),
            s.station_id.clone(),
            s.pile_id.clone(),
            Some(s.connector_id.clone()),
            OrderChannel::Automatic,
            facts.zone,
            fault_code,
            description,
            self.clock.now(),
        );
        if self.open(&order).await? {
            tracing::info!(order = %order.order_id, connector = %s.connector_id, "work order opened from telemetry");
        }
        Ok(())
    }

    /// Follows the telemetry component's status log from where it stopped, until aborted.
    pub fn spawn_follower(&self, source: MeshChannel) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = this.follow_once(source.clone()).await {
                    tracing::warn!(%error, "status log follower interrupted; resuming");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    async fn follow_once(
        &self,
        source: MeshChannel,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let cursor = self.store.follow_cursor(FOLLOW).await?.unwrap_or_default();
        let mut stream = StatusServiceClient::new(source)
            .watch_status_changes(reg::WatchStatusChangesRequest {
                cursor,
                from_start: false,
            })
            .await?
            .into_inner();
        // The cursor is saved at most once a second, not per batch: at a fleet's scale a commit
        // per batch was a tenth of the database's work. A crash replays what followed the saved
        // cursor, which `on_change` takes as it takes any replay (an order per fault, opened
        // once).
        let mut checkpoint = Checkpoint::new(CURSOR_SAVE_EVERY);
        let followed = self.follow_stream(&mut stream, &mut checkpoint).await;
        if let Some(cursor) = checkpoint.take(tokio::time::Instant::now()) {
            self.store.set_follow_cursor(FOLLOW, &cursor).await?;
        }
        followed
    }

    async fn follow_stream(
        &self,
        stream: &mut tonic::Streaming<reg::WatchStatusChangesResponse>,
        checkpoint: &mut Checkpoint<String>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        loop {
            let next = match checkpoint.due() {
                Some(due) => tokio::time::timeout_at(due, stream.message()).await,
                None => Ok(stream.message().await),
            };
            let now = tokio::time::Instant::now();
            let save = match next {
                // Quiet since the last batch: its cursor is saved now.
                Err(_) => checkpoint.take(now),
                Ok(next) => {
                    let Some(batch) = next? else {
                        return Ok(());
                    };
                    for change in &batch.changes {
                        self.on_change(change).await?;
                    }
                    batch
                        .changes
                        .last()
                        .and_then(|last| checkpoint.advance(last.cursor.clone(), now))
                }
            };
            if let Some(cursor) = save {
                self.store.set_follow_cursor(FOLLOW, &cursor).await?;
            }
        }
    }

    /// One pass over the due deadlines: each fires once, records its breach, and at the 4-hour
    /// mark closes an unfixed order unresolved (REQ FAULT-5, FAULT-6); a schedule's period makes
    /// its normal patrol (REQ PATROL-1).
    pub async fn run_due(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let due = self.store.due_deadlines(now, 500).await?;
        let mut fired = 0;
        for d in &due {
            if self.fire(d, now).await? {
                fired += 1;
            }
        }
        Ok(fired)
    }

    async fn fire(
        &self,
        due: &DueDeadline,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, Error> {
        if let Some(k) = crate::patrols::period_of(&due.kind) {
            return self.open_period(due, k, now).await;
        }
        let Some((mut order, version)) =
            self.store.order(&due.operator_id, &due.subject_id).await?
        else {
            return Ok(self.store.fire(due, None, now).await?);
        };
        let rule = match due.kind.as_str() {
            "resolution" => order.deadlines().resolution_rule,
            _ => "FAULT-5",
        };
        let breach = match due.kind.as_str() {
            // Not on site by the arrival limit.
            "arrival" => order.arrived_at.is_none_or(|at| at > due.due_at),
            "resolution" => {
                let unfixed = order.is_open() && order.state != State::Resolved;
                if unfixed && order.follow_up_of.is_none() {
                    order.close_unresolved(now)?;
                    // The suspension is a step of the same commit, carried out until done.
                    let step = Step::new(SUSPEND_STEP, &order.operator_id, &order.order_id);
                    self.store
                        .update_order(&order, version, now, std::slice::from_ref(&step))
                        .await?;
                    tracing::info!(order = %order.order_id, "closed unresolved at 4 hours; suspension requested (REQ FAULT-6)");
                    self.outbox.run_now(&step.step_id).await?;
                }
                // REQ FAULT-6: the repair carries on as a follow-up order due in 5 days; made
                // again on a pass that repeats after a crash, it is made once.
                if let Some(follow_up) = order.follow_up()
                    && !self.open(&follow_up).await?
                    && self
                        .store
                        .order(&follow_up.operator_id, &follow_up.order_id)
                        .await?
                        .is_none()
                {
                    tracing::warn!(order = %order.order_id, "no follow-up order: another order is open for the connector");
                }
                unfixed
                    || order.outcome == Some(Outcome::Unresolved)
                    || order.resolved_at.is_some_and(|at| at > due.due_at)
            }
            _ => false,
        };
        let fired = self.store.fire(due, breach.then_some(rule), now).await?;
        if fired && breach {
            chargemesh_kit::metrics::breach(rule);
            let lateness_s = (now - due.due_at).num_seconds();
            tracing::warn!(
                order = %due.subject_id,
                deadline = %due.kind,
                rule,
                lateness_s,
                "deadline breached"
            );
            let payload = serde_json::json!({
                "order_id": due.subject_id,
                "what": due.kind,
                "rule": rule,
                "due": due.due_at,
                "lateness_seconds": lateness_s,
            });
            self.announce(&due.operator_id, BREACH_EVENT, &payload)
                .await;
        }
        Ok(fired)
    }

    /// Runs deadline passes every `every` until aborted.
    pub fn spawn_scheduler(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = this.run_due().await {
                    tracing::warn!(%error, "deadline pass failed");
                }
            }
        })
    }
}

pub fn new_order_id() -> String {
    format!("WO-{}", uuid::Uuid::now_v7().simple())
}
