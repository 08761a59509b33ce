//! What a platform-mode peer pushes: its connectors' status (notification_stationStatus,
//! notification_equip_charge_status) into the same telemetry ingest its piles would use, its
//! finished orders (notification_charge_order_info) and reconciliations (check_charge_orders)
//! into metering, as the peer's operator.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{Edge, Peer, number, text, time_of};
use crate::{Dialect, Ret};
use chargemesh_kit::identity::{report_sequence, request_as};

impl Edge {
    /// `notification_stationStatus` from a platform-mode operator: the same status telemetry its
    /// piles would send, deduplicated and validated by the same ingest; `Status` 0 when kept, 1
    /// when refused.
    pub(super) async fn received_status(
        &self,
        peer: &Peer,
        p: &Value,
    ) -> Result<Value, (Ret, String)> {
        let connectors = Dialect::status_received(p);
        if connectors.is_empty() {
            return Err((Ret::BadPayload, "ConnectorStatusInfo is required".into()));
        }
        let mut reported = Vec::with_capacity(connectors.len());
        for c in &connectors {
            let connector = text(&c["ConnectorID"])
                .ok_or_else(|| (Ret::BadPayload, "ConnectorID is required".to_owned()))?;
            reported.push((connector, c["Status"].as_i64().unwrap_or(-1)));
        }
        let refused = self.report_statuses(peer, &reported).await?;
        Ok(json!({"Status": i32::from(refused)}))
    }

    /// `notification_equip_charge_status`: the connector's status in it becomes the same status
    /// telemetry as `notification_stationStatus` (so a charging connector shows as charging);
    /// the session's energy and money reach metering with its order
    /// (`notification_charge_order_info`). `SuccStat` 0 when kept, 1 when refused.
    pub(super) async fn received_charge_status(
        &self,
        peer: &Peer,
        p: &Value,
    ) -> Result<Value, (Ret, String)> {
        let seq = p["StartChargeSeq"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| (Ret::BadPayload, "StartChargeSeq is required".to_owned()))?;
        let connector = text(&p["ConnectorID"])
            .ok_or_else(|| (Ret::BadPayload, "ConnectorID is required".to_owned()))?;
        let code = p["ConnectorStatus"]
            .as_i64()
            .ok_or_else(|| (Ret::BadPayload, "ConnectorStatus is required".to_owned()))?;
        let refused = self.report_statuses(peer, &[(connector, code)]).await?;
        Ok(json!({"StartChargeSeq": seq, "SuccStat": i32::from(refused)}))
    }

    /// Sends connector statuses (CEC codes) as the peer's telemetry; true when any was refused.
    pub(super) async fn report_statuses(
        &self,
        peer: &Peer,
        reported: &[(String, i64)],
    ) -> Result<bool, (Ret, String)> {
        use chargemesh_proto::telemetry::v1 as tm;
        use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
        let reporter = peer.reporter()?;
        let now = self.clock.now();
        let mut messages = Vec::with_capacity(reported.len());
        for (connector, code) in reported {
            let code = *code;
            let state = crate::status::state_of(code).ok_or_else(|| {
                (
                    Ret::BadPayload,
                    format!("Status {code} is not a CEC status"),
                )
            })?;
            let (_, pile) = self.locate(peer, connector).await?;
            let second = crate::timestamp(now);
            messages.push(tm::TelemetryMessage {
                sequence: report_sequence(&[connector, &code.to_string(), &second]),
                operator_id: reporter.operator_id().unwrap_or_default().to_owned(),
                pile_id: pile,
                connector_id: connector.clone(),
                observe_time: Some(chargemesh_kit::time::to_timestamp(now)),
                body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                    state: state as i32,
                    fault_code: if code == 255 {
                        "CEC-255".into()
                    } else {
                        String::new()
                    },
                    fault_text: String::new(),
                })),
            });
        }
        let mut pending: HashSet<u64> = messages.iter().map(|m| m.sequence).collect();
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        sender
            .send(tm::ConnectRequest { messages })
            .await
            .map_err(|_| (Ret::SystemError, "telemetry unavailable".to_owned()))?;
        let mut answers = TelemetryServiceClient::new(self.upstreams.telemetry.clone())
            .connect(request_as(
                &reporter,
                tokio_stream::wrappers::ReceiverStream::new(receiver),
            ))
            .await
            .map_err(|s| (Ret::SystemError, s.message().to_owned()))?
            .into_inner();
        let mut refused = false;
        while !pending.is_empty() {
            let answer = answers
                .message()
                .await
                .map_err(|s| (Ret::SystemError, s.message().to_owned()))?;
            let Some(answer) = answer else {
                break;
            };
            match answer.body {
                Some(tm::connect_response::Body::Acknowledgement(a)) => {
                    pending.retain(|s| *s < a.first_sequence || *s > a.last_sequence);
                }
                Some(tm::connect_response::Body::Rejection(r)) => {
                    tracing::info!(peer = %peer.config.name, reason = %r.reason, "a received status was refused");
                    refused = true;
                    pending.remove(&r.sequence);
                }
                _ => {}
            }
        }
        drop(sender);
        if !pending.is_empty() {
            return Err((Ret::SystemError, "telemetry did not acknowledge".into()));
        }
        Ok(refused)
    }

    /// `notification_charge_order_info` from a platform-mode operator: the same order the gRPC
    /// path reports, its register readings rebuilt from the ChargeDetails so each period keeps its
    /// energy; `ConfirmResult` 0 when kept (or the same kept before), 1 when it disputes an order
    /// kept under its StartChargeSeq.
    pub(super) async fn received_order(
        &self,
        peer: &Peer,
        p: &Value,
    ) -> Result<Value, (Ret, String)> {
        use chargemesh_proto::metering::v1 as mt;
        use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
        let reporter = peer.reporter()?;
        let seq = text(&p["StartChargeSeq"])
            .ok_or_else(|| (Ret::BadPayload, "StartChargeSeq is required".to_owned()))?;
        let connector = text(&p["ConnectorID"])
            .ok_or_else(|| (Ret::BadPayload, "ConnectorID is required".to_owned()))?;
        let (start, end) = (time_of(p, "StartTime")?, time_of(p, "EndTime")?);
        let total = number(&p["TotalPower"])
            .ok_or_else(|| (Ret::BadPayload, "TotalPower is required".to_owned()))?;
        let mut samples = Vec::new();
        let mut register = 0f64;
        for d in p["ChargeDetails"].as_array().into_iter().flatten() {
            let (Ok(from), Ok(to), Some(energy)) = (
                time_of(d, "DetailStartTime"),
                time_of(d, "DetailEndTime"),
                number(&d["DetailPower"]),
            ) else {
                return Err((
                    Ret::BadPayload,
                    "ChargeDetails need their times and DetailPower".into(),
                ));
            };
            if samples.is_empty() {
                samples.push((from, register));
            }
            register += energy;
            samples.push((to, register));
        }
        if samples.len() < 2 {
            samples = vec![(start, 0.0), (end, total)];
        }
        let (station, pile) = self.locate(peer, &connector).await?;
        let report = mt::ReportChargeOrderRequest {
            operator_id: reporter.operator_id().unwrap_or_default().to_owned(),
            order_id: seq.clone(),
            station_id: station,
            pile_id: pile,
            connector_id: connector.clone(),
            start_time: Some(chargemesh_kit::time::to_timestamp(start)),
            end_time: Some(chargemesh_kit::time::to_timestamp(end)),
            stop_reason: i32::try_from(p["StopReason"].as_i64().unwrap_or(0)).unwrap_or(0),
            samples: samples
                .into_iter()
                .map(|(at, kwh)| mt::MeterSample {
                    sample_time: Some(chargemesh_kit::time::to_timestamp(at)),
                    register_kwh: format!("{kwh:.3}"),
                })
                .collect(),
            steps: None,
            reported_energy_kwh: format!("{total:.3}"),
            reported_total_money: number(&p["TotalMoney"])
                .map(|m| format!("{m:.2}"))
                .unwrap_or_default(),
        };
        let outcome = MeteringServiceClient::new(self.upstreams.metering.clone())
            .report_charge_order(request_as(&reporter, report))
            .await;
        let confirm = match outcome {
            Ok(_) => 0,
            Err(status) if status.code() == tonic::Code::AlreadyExists => 1,
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                ) =>
            {
                return Err((Ret::BadPayload, status.message().to_owned()));
            }
            Err(status) => return Err((Ret::SystemError, status.message().to_owned())),
        };
        Ok(json!({"StartChargeSeq": seq, "ConnectorID": connector, "ConfirmResult": confirm}))
    }

    /// `check_charge_orders`: the peer's totals reconciled against the orders kept.
    pub(super) async fn check_orders(
        &self,
        peer: &Peer,
        p: &Value,
    ) -> Result<Value, (Ret, String)> {
        use chargemesh_proto::metering::v1 as mt;
        use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
        let reporter = peer.reporter()?;
        let orders = p["ChargeOrders"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| mt::ReconciledOrder {
                order_id: text(&o["StartChargeSeq"]).unwrap_or_default(),
                energy_kwh: number(&o["TotalPower"])
                    .map(|v| format!("{v:.3}"))
                    .unwrap_or_default(),
                total_money: number(&o["TotalMoney"])
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_default(),
            })
            .collect();
        let check = text(&p["CheckOrderSeq"]).unwrap_or_default();
        let request = mt::ReconcileChargeOrdersRequest {
            operator_id: reporter.operator_id().unwrap_or_default().to_owned(),
            check_order_seq: check.clone(),
            start_time: Some(chargemesh_kit::time::to_timestamp(time_of(p, "StartTime")?)),
            end_time: Some(chargemesh_kit::time::to_timestamp(time_of(p, "EndTime")?)),
            orders,
        };
        let answer = MeteringServiceClient::new(self.upstreams.metering.clone())
            .reconcile_charge_orders(request_as(&reporter, request))
            .await
            .map_err(|s| (Ret::BadPayload, s.message().to_owned()))?
            .into_inner();
        let decimal = |t: &str| t.parse::<f64>().unwrap_or(0.0);
        let disputes: Vec<Value> = answer
            .disputes
            .iter()
            .map(|d| {
                json!({
                    "StartChargeSeq": d.order_id,
                    "TotalPower": decimal(&d.energy_kwh),
                    "TotalMoney": decimal(&d.total_money),
                    "DisputeReason": d.reason,
                })
            })
            .collect();
        Ok(json!({
            "CheckOrderSeq": check,
            "StartTime": p["StartTime"],
            "EndTime": p["EndTime"],
            "TotalDisputeOrder": answer.dispute_count,
            "TotalDisputePower": decimal(&answer.dispute_energy_kwh),
            "TotalDisputeMoney": decimal(&answer.dispute_money),
            "DisputeOrders": disputes,
        }))
    }
}
