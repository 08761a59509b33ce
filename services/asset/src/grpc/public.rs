//! The public view of a station (REQ SVC-1: operator, opening hours, hotline; SIGN-1: every
//! pile's technical parameters; SIGN-2, BASE-3: the price board in force): what the sign at
//! the station says, for its public page. Anyone may ask, without a credential, so it is built
//! field by field from the records and carries nothing else (no serial numbers, protocols,
//! charge point ids or pile codes, filings or acceptance records).

use chargemesh_kit::{Error, Principal};
use chargemesh_proto::asset::v1 as pb;
use chargemesh_proto::common::v1 as common;

use super::convert::{pile_to_pb, station_to_pb};
use super::{AssetApi, page_from};
use crate::domain::model::PileState;
use crate::store::Filter;

/// The most piles a public page lists.
const MAX_PILES: i32 = 500;

impl AssetApi {
    pub(super) async fn get_public_station_(
        &self,
        _p: &Principal,
        req: pb::GetPublicStationRequest,
    ) -> Result<pb::GetPublicStationResponse, Error> {
        let (operator_id, station_id) = (req.operator_id.trim(), req.station_id.trim());
        if operator_id.is_empty() {
            return Err(Error::bad_field("operator_id", "is required"));
        }
        if station_id.is_empty() {
            return Err(Error::bad_field("station_id", "is required"));
        }
        let what = || format!("station {operator_id}/{station_id}");
        let station = self
            .store
            .station(operator_id, station_id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?
            .value;
        let operator = self
            .store
            .operator(operator_id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?
            .value;
        let filters = [
            Filter::Eq("operator_id", operator_id.to_owned()),
            Filter::Eq("station_id", station_id.to_owned()),
        ];
        let piles = self
            .store
            .list_piles(&filters, &page_from("", MAX_PILES)?)
            .await?;
        let now = self.clock.now();
        let published = station_to_pb(&station, now);
        let in_force = station.tariff.in_force(now);
        Ok(pb::GetPublicStationResponse {
            station: Some(pb::PublicStation {
                operator_id: operator.operator_id.clone(),
                operator_name: operator.name.clone(),
                supervision_hotline: operator.supervision_hotline.clone(),
                station_id: station.station_id.clone(),
                name: station.name.clone(),
                address: station.address.clone(),
                location: Some(common::GeoPoint {
                    longitude: station.location.longitude,
                    latitude: station.location.latitude,
                }),
                opening_hours: station.opening_hours.clone(),
                service_phone: station.service_phone.clone(),
                service_items: station.service_items.clone(),
                state: published.state,
                price_board: published.price_board,
                price_effective_time: in_force.map(|v| prost_types::Timestamp {
                    seconds: v.effective_from.timestamp(),
                    nanos: 0,
                }),
                piles: piles
                    .iter()
                    .filter(|p| p.state != PileState::Retired)
                    .map(|p| {
                        let full = pile_to_pb(p);
                        pb::PublicPile {
                            pile_id: full.pile_id,
                            pile_type: full.pile_type,
                            manufacturer: full.manufacturer,
                            model: full.model,
                            rated_voltage: full.rated_voltage,
                            rated_current: full.rated_current,
                            rated_power_kw: full.rated_power_kw,
                            connectors: full.connectors,
                            state: full.state,
                        }
                    })
                    .collect(),
            }),
        })
    }
}
