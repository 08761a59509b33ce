//! What metering asks of the rest of the mesh: the pile, its station's area and tariff and its
//! meter's verification from the asset registry, and alerts on the bus.

use std::sync::Arc;

use chargemesh_kit::tls::MeshChannel;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use chargemesh_kit::Error;
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::events::{SharedBus, envelope};
use chargemesh_kit::tariff::Tariff;
use chargemesh_kit::tariff::wire::version_from_pb;
use chargemesh_kit::time::to_timestamp;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use crate::domain::abnormal::Thresholds;
use crate::domain::order::{ChargeOrder, PileFacts, evaluate};
use crate::store::{MeteringStore, OrderQuery};

/// The bus topic of metering alerts.
pub const METERING_TOPIC: &str = "metering";
/// REQ BASE-5: an order on an unverified meter, stored not billable.
pub const NOT_BILLABLE_EVENT: &str = "chargemesh.metering.order_not_billable";
/// REQ MON-9: an order with abnormal flags, for a monitor to verify.
pub const FLAGGED_EVENT: &str = "chargemesh.metering.order_flagged";

#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Arc<dyn MeteringStore>,
    pub clock: SharedClock,
    pub limits: Thresholds,
    assets: AssetServiceClient<MeshChannel>,
    pub(crate) telemetry: TelemetryServiceClient<MeshChannel>,
    bus: chargemesh_kit::events::Publisher,
    /// Where replicas agree which of them follows the telemetry log.
    pub(crate) leader: Option<chargemesh_kit::db::Database>,
}

/// Where an order's pile is and what the registry knows of it.
#[derive(Debug, Clone)]
pub struct Context {
    /// In service, suspended or retired (REQ MON-4, MON-6).
    pub pile_state: asset::PileState,
    pub station_id: String,
    pub area_code: String,
    pub connectors: Vec<String>,
    pub tariff: Tariff,
    pub pile: PileFacts,
}

fn unavailable(what: String) -> impl Fn(tonic::Status) -> Error {
    move |status| match status.code() {
        tonic::Code::NotFound => Error::NotFound(what.clone()),
        _ => Error::Unavailable("the asset registry is unavailable".into()),
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn MeteringStore>,
        clock: SharedClock,
        assets: MeshChannel,
        telemetry: MeshChannel,
        bus: SharedBus,
    ) -> Self {
        Self {
            store,
            clock,
            limits: Thresholds::default(),
            assets: AssetServiceClient::new(assets),
            telemetry: TelemetryServiceClient::new(telemetry),
            bus: chargemesh_kit::events::Publisher::spawn(bus, 1_024),
            leader: None,
        }
    }

    /// Follows the telemetry log only while this replica leads it among those sharing `db`.
    pub fn with_leadership(mut self, db: chargemesh_kit::db::Database) -> Self {
        self.leader = Some(db);
        self
    }

    /// The pile, its station and tariff, and whether its meter was verified at `start`.
    pub async fn context(
        &self,
        operator_id: &str,
        pile_id: &str,
        start: DateTime<Utc>,
    ) -> Result<Context, Error> {
        let mut assets = self.assets.clone();
        let pile = assets
            .get_pile(asset::GetPileRequest {
                operator_id: operator_id.into(),
                pile_id: pile_id.into(),
            })
            .await
            .map_err(unavailable(format!("pile {operator_id}/{pile_id}")))?
            .into_inner()
            .pile
            .ok_or_else(|| Error::NotFound(format!("pile {operator_id}/{pile_id}")))?;
        let station_what = format!("station {operator_id}/{}", pile.station_id);
        let station = assets
            .get_station(asset::GetStationRequest {
                operator_id: operator_id.into(),
                station_id: pile.station_id.clone(),
            })
            .await
            .map_err(unavailable(station_what.clone()))?
            .into_inner()
            .station
            .ok_or_else(|| Error::NotFound(station_what.clone()))?;
        let versions = assets
            .list_tariff_versions(asset::ListTariffVersionsRequest {
                operator_id: operator_id.into(),
                station_id: pile.station_id.clone(),
            })
            .await
            .map_err(unavailable(station_what))?
            .into_inner()
            .versions;
        let tariff = Tariff {
            versions: versions
                .iter()
                .map(version_from_pb)
                .collect::<Result<Vec<_>, _>>()?,
        };
        let eligibility = assets
            .check_settlement_eligibility(asset::CheckSettlementEligibilityRequest {
                operator_id: operator_id.into(),
                pile_id: pile_id.into(),
                time: Some(to_timestamp(start)),
            })
            .await
            .map_err(unavailable(format!("pile {operator_id}/{pile_id}")))?
            .into_inner();
        Ok(Context {
            pile_state: asset::PileState::try_from(pile.state).unwrap_or_default(),
            station_id: pile.station_id.clone(),
            area_code: station.area_code,
            connectors: pile
                .connectors
                .iter()
                .map(|c| c.connector_id.clone())
                .collect(),
            tariff,
            pile: PileFacts {
                rated_power_kw: Decimal::from_f64_retain(pile.rated_power_kw)
                    .unwrap_or_default()
                    .round_dp(3),
                eligibility: if eligibility.eligible {
                    Ok(())
                } else {
                    Err(eligibility.reason)
                },
            },
        })
    }

    /// Settles, decides billability and flags a version against its connector's other orders,
    /// then keeps it and raises its alerts (REQ SETTLE-1, BASE-5, MON-9).
    pub async fn record(
        &self,
        mut order: ChargeOrder,
        context: &Context,
        id_taken: bool,
    ) -> Result<ChargeOrder, Error> {
        let day = chrono::Duration::days(1);
        let others = self
            .store
            .orders(&OrderQuery {
                operator_id: Some(order.operator_id.clone()),
                connector_id: Some(order.connector_id.clone()),
                from: Some(order.start - day),
                to: Some(order.end.unwrap_or(order.start) + day),
                limit: 1000,
                ..OrderQuery::default()
            })
            .await?;
        let neighbours: Vec<_> = others
            .iter()
            .map(|o| (o.order_id.as_str(), o.start, o.end))
            .collect();
        let now = self.clock.now();
        evaluate(
            &mut order,
            &context.tariff,
            &context.pile,
            id_taken,
            &neighbours,
            now,
            self.limits,
        );
        self.store.insert(&order).await?;
        if !order.billable {
            self.announce(&order, NOT_BILLABLE_EVENT).await;
        }
        if !order.flags.is_empty() {
            self.announce(&order, FLAGGED_EVENT).await;
        }
        Ok(order)
    }

    /// Sends the start command to the pile through the telemetry component, which delivers it
    /// on the stream that reports for the pile.
    pub async fn send_start(
        &self,
        operator_id: &str,
        pile_id: &str,
        connector_id: &str,
        order_id: &str,
        authorization_ref: &str,
    ) -> Result<String, Error> {
        use chargemesh_proto::telemetry::v1 as tm;
        let command = tm::PileCommand {
            command_id: String::new(),
            pile_id: pile_id.into(),
            connector_id: connector_id.into(),
            action: Some(tm::pile_command::Action::StartCharge(
                tm::StartChargeCommand {
                    order_id: order_id.into(),
                    authorization_ref: authorization_ref.into(),
                },
            )),
        };
        Ok(self
            .telemetry
            .clone()
            .send_pile_command(tm::SendPileCommandRequest {
                operator_id: operator_id.into(),
                command: Some(command),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument => {
                    Error::bad_field("connector_id", status.message().to_owned())
                }
                tonic::Code::NotFound => Error::NotFound(format!("pile {operator_id}/{pile_id}")),
                _ => Error::Unavailable("the telemetry component is unavailable".into()),
            })?
            .into_inner()
            .command_id)
    }

    /// Publishes an alert about an order; the database stays the record.
    async fn announce(&self, order: &ChargeOrder, kind: &str) {
        let payload = serde_json::json!({
            "order_id": order.order_id,
            "version": order.version,
            "station_id": order.station_id,
            "pile_id": order.pile_id,
            "billable": order.billable,
            "reason": order.not_billable_reason,
            "flags": order.flags,
        });
        let event = envelope(
            "metering",
            &order.operator_id,
            kind,
            serde_json::to_vec(&payload).unwrap_or_default(),
            self.clock.now(),
        );
        self.bus.offer(METERING_TOPIC, vec![event]);
    }
}
