//! The station directory: each station's operator, area and piles, listed from the asset
//! registry (`RegistryService/ListStations`) on a period, for area reports and for finding the
//! station of a pile; and each station's T/CEC 102 StationInfo, versioned when it changes, for
//! the pushes to regulators.

use std::sync::Arc;
use std::time::Duration;

use chargemesh_kit::tls::MeshChannel;

use chargemesh_proto::regulator::v2 as pb;
use chargemesh_proto::regulator::v2::registry_service_client::RegistryServiceClient;

use crate::store::{ReportingStore, StationRow};

/// Lists every station once and keeps it; returns how many were listed.
pub async fn refresh(
    client: &mut RegistryServiceClient<MeshChannel>,
    store: &dyn ReportingStore,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut token = String::new();
    let mut listed = 0;
    loop {
        let page = client
            .list_stations(pb::ListStationsRequest {
                page_size: 100,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        // REQ BASE-2: each station as regulators are told of it; a changed one is pushed again.
        let infos: Vec<(String, String, String, String)> = page
            .stations
            .iter()
            .filter_map(|record| {
                let station = record.station.as_ref()?;
                Some((
                    station.operator_id.clone(),
                    station.station_id.clone(),
                    station.area_code.clone(),
                    chargemesh_cec::map::station_info(record).to_string(),
                ))
            })
            .collect();
        store.put_station_infos(&infos).await?;
        let rows: Vec<StationRow> = page
            .stations
            .into_iter()
            .filter_map(|record| {
                let station = record.station?;
                Some(StationRow {
                    operator_id: station.operator_id,
                    station_id: station.station_id,
                    area_code: station.area_code,
                    pile_ids: record.piles.into_iter().map(|p| p.pile_id).collect(),
                })
            })
            .collect();
        listed += rows.len();
        store.put_stations(&rows).await?;
        if page.next_page_token.is_empty() {
            return Ok(listed);
        }
        token = page.next_page_token;
    }
}

/// Refreshes every `every` until the task is aborted.
pub fn spawn(
    channel: MeshChannel,
    store: Arc<dyn ReportingStore>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = RegistryServiceClient::new(channel);
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = refresh(&mut client, store.as_ref()).await {
                tracing::warn!(%error, "station directory not refreshed");
            }
        }
    })
}
