//! What a peer pulls: the stations it sees, their live status, their energy and their prices
//! (query_stations_info, query_station_status, query_station_stats,
//! query_equip_business_policy), read from the registry and the telemetry component as the peer.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::registry_service_client::RegistryServiceClient;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;

use super::{Edge, Peer};
use crate::{Ret, map};
use chargemesh_kit::identity::request_as;

impl Edge {
    fn registry(&self) -> RegistryServiceClient<MeshChannel> {
        RegistryServiceClient::new(self.upstreams.registry.clone())
    }

    fn status(&self) -> StatusServiceClient<MeshChannel> {
        StatusServiceClient::new(self.upstreams.telemetry.clone())
    }

    /// A mesh request made as the peer's principal, which the services trust from the
    /// gateway's certificate.
    pub(super) fn as_peer<T>(&self, peer: &Peer, message: T) -> tonic::Request<T> {
        request_as(&peer.principal(), message)
    }

    /// Every station the peer sees, changed since `since` when given, in station order.
    pub(super) async fn stations(
        &self,
        peer: &Peer,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<reg::StationRecord>, (Ret, String)> {
        self.stations_where(
            peer,
            reg::ListStationsRequest {
                updated_since: since.map(chargemesh_kit::time::to_timestamp),
                ..Default::default()
            },
        )
        .await
    }

    /// The stations the peer sees that the registry finds for `query` (stations by id, the
    /// station of a connector: looked up by index), in station order.
    async fn stations_where(
        &self,
        peer: &Peer,
        query: reg::ListStationsRequest,
    ) -> Result<Vec<reg::StationRecord>, (Ret, String)> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .registry()
                .list_stations(self.as_peer(
                    peer,
                    reg::ListStationsRequest {
                        page_size: 100,
                        page_token: token,
                        ..query.clone()
                    },
                ))
                .await
                .map_err(|s| (Ret::SystemError, s.message().to_owned()))?
                .into_inner();
            out.extend(
                page.stations
                    .into_iter()
                    .filter(|r| r.station.as_ref().is_some_and(|s| peer.sees(s))),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        out.sort_by(|a, b| {
            let key = |r: &reg::StationRecord| {
                r.station
                    .as_ref()
                    .map(|s| s.station_id.clone())
                    .unwrap_or_default()
            };
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    /// `query_stations_info`: paged, optionally only what changed since LastQueryTime.
    pub(super) async fn stations_info(
        &self,
        peer: &Peer,
        p: &Value,
    ) -> Result<Value, (Ret, String)> {
        let since = match p["LastQueryTime"].as_str().filter(|s| !s.trim().is_empty()) {
            Some(text) => Some(crate::parse_payload_time(text).ok_or_else(|| {
                (
                    Ret::BadPayload,
                    "LastQueryTime is yyyy-MM-dd HH:mm:ss".to_owned(),
                )
            })?),
            None => None,
        };
        let page_no = p["PageNo"].as_u64().unwrap_or(1).max(1);
        let page_size = p["PageSize"].as_u64().unwrap_or(10).clamp(1, 100);
        let stations = self.stations(peer, since).await?;
        let total = stations.len() as u64;
        let page_count = total.div_ceil(page_size).max(1);
        // A page past the end is empty, however far past (a huge PageNo must not overflow).
        let start = (page_no - 1)
            .checked_mul(page_size)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        let items: Vec<Value> = stations
            .iter()
            .skip(start)
            .take(usize::try_from(page_size).unwrap_or(10))
            .map(map::station_info)
            .collect();
        Ok(json!({
            "PageNo": page_no,
            "PageCount": page_count,
            "ItemSize": total,
            "StationInfos": items,
        }))
    }

    /// The operator of each station id the peer named, from what it sees.
    pub(super) async fn keys(
        &self,
        peer: &Peer,
        ids: &[String],
    ) -> Result<Vec<(String, reg::StationRecord)>, (Ret, String)> {
        let stations = self
            .stations_where(
                peer,
                reg::ListStationsRequest {
                    station_ids: ids.to_vec(),
                    ..Default::default()
                },
            )
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                stations
                    .iter()
                    .find(|r| r.station.as_ref().is_some_and(|s| &s.station_id == id))
                    .map(|r| (id.clone(), r.clone()))
            })
            .collect())
    }

    /// `query_station_status`: up to 50 stations.
    pub(super) async fn station_status(
        &self,
        peer: &Peer,
        p: &Value,
    ) -> Result<Value, (Ret, String)> {
        let ids: Vec<String> = p["StationIDs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() || ids.len() > 50 {
            return Err((Ret::BadPayload, "StationIDs names 1 to 50 stations".into()));
        }
        let keys: Vec<reg::StationKey> = self
            .keys(peer, &ids)
            .await?
            .into_iter()
            .filter_map(|(_, r)| {
                r.station.map(|s| reg::StationKey {
                    operator_id: s.operator_id,
                    station_id: s.station_id,
                })
            })
            .collect();
        let statuses = if keys.is_empty() {
            Vec::new()
        } else {
            self.status()
                .get_station_status(
                    self.as_peer(peer, reg::GetStationStatusRequest { stations: keys }),
                )
                .await
                .map_err(|s| (Ret::SystemError, s.message().to_owned()))?
                .into_inner()
                .stations
        };
        Ok(json!({
            "Total": statuses.len(),
            "StationStatusInfos": statuses.iter().map(map::station_status_info).collect::<Vec<_>>(),
        }))
    }

    /// `query_station_stats`: energy per station, equipment and connector over whole days.
    pub(super) async fn station_stats(
        &self,
        peer: &Peer,
        p: &Value,
    ) -> Result<Value, (Ret, String)> {
        let id = p["StationID"].as_str().unwrap_or_default().to_owned();
        let day = |field: &str| {
            p[field]
                .as_str()
                .and_then(|t| chrono::NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").ok())
                .ok_or_else(|| (Ret::BadPayload, format!("{field} is yyyy-MM-dd")))
        };
        let (first, last) = (day("StartTime")?, day("EndTime")?);
        if last < first {
            return Err((Ret::BadPayload, "EndTime is not before StartTime".into()));
        }
        let Some((_, record)) = self
            .keys(peer, std::slice::from_ref(&id))
            .await?
            .into_iter()
            .next()
        else {
            return Err((Ret::BadPayload, format!("no station {id}")));
        };
        let station = record.station.unwrap_or_default();
        let start = chargemesh_kit::clock::china_day(first).0;
        let end = chargemesh_kit::clock::china_day(last).1;
        let stats = self
            .status()
            .get_station_stats(self.as_peer(
                peer,
                reg::GetStationStatsRequest {
                    operator_id: station.operator_id,
                    station_id: station.station_id,
                    start_time: Some(chargemesh_kit::time::to_timestamp(start)),
                    end_time: Some(chargemesh_kit::time::to_timestamp(end)),
                },
            ))
            .await
            .map_err(|s| (Ret::BadPayload, s.message().to_owned()))?
            .into_inner();
        Ok(map::station_stats(
            &stats,
            &first.format("%Y-%m-%d").to_string(),
            &last.format("%Y-%m-%d").to_string(),
        ))
    }

    /// The stations the peer sees with a pile that has `connector`.
    async fn stations_with(
        &self,
        peer: &Peer,
        connector: &str,
    ) -> Result<Vec<reg::StationRecord>, (Ret, String)> {
        if connector.trim().is_empty() {
            return Ok(Vec::new());
        }
        self.stations_where(
            peer,
            reg::ListStationsRequest {
                connector_id: connector.to_owned(),
                ..Default::default()
            },
        )
        .await
    }

    /// The pile and station of a connector among what the peer sees.
    pub(super) async fn locate(
        &self,
        peer: &Peer,
        connector: &str,
    ) -> Result<(String, String), (Ret, String)> {
        self.stations_with(peer, connector)
            .await?
            .iter()
            .find_map(|r| {
                let pile = r
                    .piles
                    .iter()
                    .find(|p| p.connectors.iter().any(|c| c.connector_id == connector))?;
                Some((r.station.as_ref()?.station_id.clone(), pile.pile_id.clone()))
            })
            .ok_or_else(|| (Ret::BadPayload, format!("no connector {connector}")))
    }

    /// `query_equip_business_policy`: the price board of the connector's station.
    pub(super) async fn business_policy(
        &self,
        peer: &Peer,
        p: &Value,
    ) -> Result<Value, (Ret, String)> {
        let connector = p["ConnectorID"].as_str().unwrap_or_default();
        let seq = p["EquipBizSeq"].as_str().unwrap_or_default();
        let stations = self.stations_with(peer, connector).await?;
        let found = stations.iter().find(|r| {
            r.piles
                .iter()
                .any(|pile| pile.connectors.iter().any(|c| c.connector_id == connector))
        });
        Ok(match found.and_then(|r| r.station.as_ref()) {
            Some(station) => {
                let infos = map::policy_infos(&station.price_board);
                json!({
                    "EquipBizSeq": seq,
                    "ConnectorID": connector,
                    "SuccStat": 0,
                    "FailReason": 0,
                    "SumPeriod": infos.len(),
                    "PolicyInfos": infos,
                })
            }
            None => json!({
                "EquipBizSeq": seq,
                "ConnectorID": connector,
                "SuccStat": 1,
                "FailReason": 1,
                "SumPeriod": 0,
                "PolicyInfos": [],
            }),
        })
    }
}
