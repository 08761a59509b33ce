//! The complaints' clocks (REQ CMP-1, CMP-4) and the corrective actions' deadlines (EVAL-3):
//! durable rows on the injectable clock; each fires once, records its breach with the lateness
//! and raises it as an event. Also the calls to the components complaints link to.

use std::sync::Arc;
use std::time::Duration;

use chargemesh_kit::Error;
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::events::{SharedBus, envelope};

use chargemesh_kit::db::{Database, StoreError};
use chargemesh_kit::outbox::{Outbox, Step, StepError, StepHandler};
use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::dispatch::v1 as dp;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use chargemesh_proto::metering::v1 as mt;
use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;

use crate::domain::complaint::{Complaint, Linked};
use crate::store::ComplaintStore;

pub const COMPLAINTS_TOPIC: &str = "complaints";
pub const BREACH_EVENT: &str = "chargemesh.complaints.deadline_breached";

#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Arc<dyn ComplaintStore>,
    pub clock: SharedClock,
    bus: chargemesh_kit::events::Publisher,
    links: Links,
    /// What a complaint sets going elsewhere, carried out until done.
    outbox: Outbox,
}

/// The outbox step opening the repair work order a complaint calls for (REQ FAULT-4).
pub const WORK_ORDER_STEP: &str = "open_work_order";
/// The outbox step flagging the charge order a billing complaint disputes (REQ MON-9).
pub const DISPUTE_STEP: &str = "dispute_order";

/// The components a complaint links to, and how.
#[derive(Debug, Clone)]
struct Links {
    store: Arc<dyn ComplaintStore>,
    dispatch: DispatchServiceClient<MeshChannel>,
    metering: MeteringServiceClient<MeshChannel>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn ComplaintStore>,
        clock: SharedClock,
        bus: SharedBus,
        dispatch: MeshChannel,
        metering: MeshChannel,
        db: Database,
    ) -> Self {
        let links = Links {
            store: store.clone(),
            dispatch: DispatchServiceClient::new(dispatch),
            metering: MeteringServiceClient::new(metering),
        };
        Self {
            outbox: Outbox::new(db, Arc::new(links.clone()), clock.clone()),
            store,
            clock,
            bus: chargemesh_kit::events::Publisher::spawn(bus, 1_024),
            links,
        }
    }

    /// The outbox, whose runner the component spawns and whose new steps a submission tries at
    /// once.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The steps a new complaint sets going: a repair order for a failing pile, a dispute of a
    /// billed order.
    pub fn steps_for(c: &Complaint) -> Vec<Step> {
        let mut steps = Vec::new();
        if c.needs_repair() {
            steps.push(Step::new(WORK_ORDER_STEP, &c.operator_id, &c.complaint_id));
        }
        if c.disputes_an_order() {
            steps.push(Step::new(DISPUTE_STEP, &c.operator_id, &c.complaint_id));
        }
        steps
    }

    /// The state of a linked charge order: whether the dispute still stands.
    pub async fn charge_order_state(&self, operator_id: &str, order_id: &str) -> Option<String> {
        let order = self
            .links
            .metering
            .clone()
            .get_charge_order(mt::GetChargeOrderRequest {
                operator_id: operator_id.into(),
                order_id: order_id.into(),
                version: 0,
            })
            .await
            .ok()?
            .into_inner()
            .order?;
        let disputed = order
            .flags
            .iter()
            .any(|f| f.kind == mt::FlagKind::CustomerDispute as i32);
        Some(if disputed { "disputed" } else { "verified" }.to_owned())
    }

    /// The state of a linked work order, when dispatch can say.
    pub async fn work_order_state(&self, operator_id: &str, order_id: &str) -> Option<String> {
        let order = self
            .links
            .dispatch
            .clone()
            .get_work_order(dp::GetWorkOrderRequest {
                operator_id: operator_id.into(),
                order_id: order_id.into(),
            })
            .await
            .ok()?
            .into_inner()
            .work_order?;
        dp::WorkOrderState::try_from(order.state).ok().map(|s| {
            s.as_str_name()
                .trim_start_matches("WORK_ORDER_STATE_")
                .to_lowercase()
        })
    }

    /// One pass over the due clocks; returns how many fired.
    pub async fn run_due(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let mut fired = 0;
        for due in self.store.due(now, 500).await? {
            // The clocks of corrective actions (REQ EVAL-3) run beside the complaints' own.
            let is_action = due.kind.starts_with("action:");
            let breach = if is_action {
                self.store
                    .action(&due.operator_id, &due.complaint_id)
                    .await?
                    .and_then(|(a, _)| a.breach_of(&due.kind, now))
            } else {
                self.store
                    .complaint(&due.operator_id, &due.complaint_id)
                    .await?
                    .and_then(|(c, _)| c.breach_of(&due.kind, now))
            };
            let recorded = breach.as_ref().map(|b| (b.rule, b.lateness.num_seconds()));
            if !self.store.fire(&due, recorded, now).await? {
                continue;
            }
            fired += 1;
            if let Some(b) = breach {
                chargemesh_kit::metrics::breach(b.rule);
                tracing::warn!(subject = %due.complaint_id, rule = b.rule, what = b.what, "complaint limit breached");
                let subject = if is_action {
                    "action_id"
                } else {
                    "complaint_id"
                };
                let payload = serde_json::json!({
                    subject: due.complaint_id,
                    "rule": b.rule,
                    "what": b.what,
                    "due": b.due,
                    "lateness_seconds": b.lateness.num_seconds(),
                });
                let event = envelope(
                    "complaints",
                    &due.operator_id,
                    BREACH_EVENT,
                    serde_json::to_vec(&payload).unwrap_or_default(),
                    now,
                );
                self.bus.offer(COMPLAINTS_TOPIC, vec![event]);
            }
        }
        Ok(fired)
    }

    /// Runs passes every `every` until aborted.
    pub fn spawn_scheduler(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = this.run_due().await {
                    tracing::warn!(%error, "complaint deadline pass failed");
                }
            }
        })
    }
}

impl Links {
    /// REQ MON-9: flags the charge order a billing complaint is about for verification.
    pub async fn dispute_order(&self, c: &Complaint) -> Result<String, Error> {
        let order_id = c.charge_order_id.clone().unwrap_or_default();
        self.metering
            .clone()
            .dispute_charge_order(mt::DisputeChargeOrderRequest {
                operator_id: c.operator_id.clone(),
                order_id: order_id.clone(),
                reason: format!("complaint {}: {}", c.complaint_id, c.description),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound | tonic::Code::InvalidArgument => {
                    Error::bad_field("complaint.charge_order_id", status.message().to_owned())
                }
                _ => Error::Unavailable("metering is unavailable".into()),
            })?;
        Ok(order_id)
    }

    /// REQ FAULT-4: opens the repair work order a complaint about a pile calls for, from the
    /// customer's call; returns its id.
    pub async fn open_work_order(&self, c: &Complaint) -> Result<String, Error> {
        let order = self
            .dispatch
            .clone()
            .create_work_order(dp::CreateWorkOrderRequest {
                operator_id: c.operator_id.clone(),
                station_id: c.station_id.clone().unwrap_or_default(),
                pile_id: c.pile_id.clone().unwrap_or_default(),
                connector_id: String::new(),
                channel: dp::Channel::Phone as i32,
                description: format!("complaint {}: {}", c.complaint_id, c.description),
                // One order per complaint, however often the step runs.
                request_id: c.complaint_id.clone(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound | tonic::Code::InvalidArgument => {
                    Error::bad_field("complaint.pile_id", status.message().to_owned())
                }
                _ => Error::Unavailable("dispatch is unavailable".into()),
            })?
            .into_inner()
            .work_order
            .ok_or_else(|| Error::Unavailable("dispatch answered without the order".into()))?;
        Ok(order.order_id)
    }

    /// Keeps a link on the complaint (once), at its current version.
    async fn link(&self, c: &Complaint, kind: &str, id: String) -> Result<(), StepError> {
        for _ in 0..5 {
            let (mut current, version) = self
                .store
                .complaint(&c.operator_id, &c.complaint_id)
                .await
                .map_err(|e| StepError::Retry(e.to_string()))?
                .ok_or_else(|| StepError::Abandon(format!("no complaint {}", c.complaint_id)))?;
            if current.links.iter().any(|l| l.kind == kind && l.id == id) {
                return Ok(());
            }
            current.links.push(Linked {
                kind: kind.to_owned(),
                id: id.clone(),
            });
            match self.store.update(&current, version, &[], &[]).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(StepError::Retry(other.to_string())),
            }
        }
        Err(StepError::Retry("the complaint kept changing".into()))
    }
}

/// Carries out the complaints outbox: the linked work order and the order dispute, each linked
/// on the complaint once it is made. Dispatch opens one order per complaint (its request key)
/// and metering keeps one dispute flag per order, so a step run twice has the effect of once.
#[tonic::async_trait]
impl StepHandler for Links {
    async fn run(&self, step: &Step) -> Result<(), StepError> {
        let (c, _) = self
            .store
            .complaint(&step.operator_id, &step.subject_id)
            .await
            .map_err(|e| StepError::Retry(e.to_string()))?
            .ok_or_else(|| StepError::Abandon(format!("no complaint {}", step.subject_id)))?;
        let failed = |e: Error| match e {
            Error::Invalid { .. } => StepError::Abandon(e.to_string()),
            other => StepError::Retry(other.to_string()),
        };
        match step.kind.as_str() {
            WORK_ORDER_STEP => {
                let id = self.open_work_order(&c).await.map_err(failed)?;
                self.link(&c, "work_order", id).await
            }
            DISPUTE_STEP => {
                let id = self.dispute_order(&c).await.map_err(failed)?;
                self.link(&c, "charge_order", id).await
            }
            other => Err(StepError::Abandon(format!("no step {other}"))),
        }
    }
}
