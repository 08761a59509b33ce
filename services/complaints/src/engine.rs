//! The complaints' clocks (REQ CMP-1, CMP-4) and the corrective actions' deadlines (EVAL-3):
//! durable rows on the injectable clock; each fires once, records its breach with the lateness
//! and raises it as an event. Also the calls to the components complaints link to.

use std::sync::Arc;
use std::time::Duration;

use chargemesh_kit::Error;
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::events::{SharedBus, envelope};

use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::dispatch::v1 as dp;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use chargemesh_proto::metering::v1 as mt;
use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;

use crate::domain::complaint::Complaint;
use crate::store::ComplaintStore;

pub const COMPLAINTS_TOPIC: &str = "complaints";
pub const BREACH_EVENT: &str = "chargemesh.complaints.deadline_breached";

#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Arc<dyn ComplaintStore>,
    pub clock: SharedClock,
    bus: chargemesh_kit::events::Publisher,
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
    ) -> Self {
        Self {
            store,
            clock,
            bus: chargemesh_kit::events::Publisher::spawn(bus, 1_024),
            dispatch: DispatchServiceClient::new(dispatch),
            metering: MeteringServiceClient::new(metering),
        }
    }

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

    /// The state of a linked charge order: whether the dispute still stands.
    pub async fn charge_order_state(&self, operator_id: &str, order_id: &str) -> Option<String> {
        let order = self
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

    /// The state of a linked work order, when dispatch can say.
    pub async fn work_order_state(&self, operator_id: &str, order_id: &str) -> Option<String> {
        let order = self
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
