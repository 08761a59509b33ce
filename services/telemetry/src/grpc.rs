//! `chargemesh.telemetry.v1.TelemetryService`: the ingest stream, the log for mesh components,
//! link states for the daily check, and pile commands.

use std::pin::Pin;

use chrono::NaiveDate;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

use chargemesh_kit::clock::china_date;
use chargemesh_kit::server::principal;
use chargemesh_kit::tenancy::{Access, Decision, Target, decide};
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::telemetry::v1 as pb;
use chargemesh_proto::telemetry::v1::telemetry_service_server::TelemetryService;

/// The most kinds one read of the log may ask for (there are fewer kinds than this).
const MAX_LOG_KINDS: usize = 16;

use crate::convert::body_to_pb;
use crate::domain;
use crate::ingest::Telemetry;

type ConnectStream =
    Pin<Box<dyn Stream<Item = Result<pb::ConnectResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TelemetryService for Telemetry {
    type ConnectStream = ConnectStream;

    async fn get_pile_command(
        &self,
        request: Request<pb::GetPileCommandRequest>,
    ) -> Result<Response<pb::GetPileCommandResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let result = async {
            let operator_id = principal.acting_for(&r.operator_id, "pile commands")?;
            let what = || Error::NotFound(format!("pile command {}", r.command_id.trim()));
            let record = self
                .store
                .command(&operator_id, r.command_id.trim())
                .await?
                .ok_or_else(what)?;
            Ok(pb::GetPileCommandResponse {
                command: Some(crate::convert::command_to_pb(&record)),
            })
        };
        chargemesh_kit::error::reply(result.await)
    }

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
        if r.kinds.len() > MAX_LOG_KINDS {
            return chargemesh_kit::error::reply(Err(Error::bad_field(
                "kinds",
                format!("at most {MAX_LOG_KINDS} kinds"),
            )));
        }
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
            let index = self
                .registry
                .index(&operator_id, "")
                .await?
                .ok_or_else(|| Error::NotFound(what()))?;
            let station = index
                .stations
                .get(station_id)
                .ok_or_else(|| Error::NotFound(what()))?;
            let target = Target {
                operator_id: &operator_id,
                station_id: Some(station_id),
                pile_id: None,
                area_code: Some(&station.area_code),
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
                // Boxed: the batch's work is a large future, and held inline it would size
                // every idle stream's task for it (about 3 KiB each, 300 MB at 100,000 piles).
                match Box::pin(this.handle_batch(&principal, batch)).await {
                    Ok(responses) => {
                        for r in responses {
                            if tx.send(Ok(Box::new(r))).await.is_err() {
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
            tokio_stream::wrappers::ReceiverStream::new(rx).map(|answer| answer.map(|a| *a)),
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
