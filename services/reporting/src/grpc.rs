//! `chargemesh.reporting.v1.ReportingService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use chargemesh_kit::area::area_covers;
use chargemesh_kit::paging::{decode_token, encode_token};
use chargemesh_kit::server::principal;
use chargemesh_kit::time::from_timestamp;
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::reporting::v1 as pb;
use chargemesh_proto::reporting::v1::reporting_service_server::{
    ReportingService, ReportingServiceServer,
};

use crate::store::{HistoryQuery, ReportingStore};

const PLATFORM_ADMIN: &str = "platform_admin";

#[derive(Debug, Clone)]
pub struct ReportingApi {
    store: Arc<dyn ReportingStore>,
}

/// Whether the caller may see a station's history: its operator (or the operator's staff and
/// certificates of that station), a regulator whose area covers it, mesh services.
fn may_see(p: &Principal, operator_id: &str, station_id: &str, area_code: &str) -> bool {
    match p {
        Principal::Service { .. } => true,
        Principal::Staff {
            operator_id: None,
            roles,
            ..
        } => roles.iter().any(|r| r == PLATFORM_ADMIN),
        Principal::Operator { operator_id: own }
        | Principal::Staff {
            operator_id: Some(own),
            ..
        } => own == operator_id,
        Principal::Station {
            operator_id: own,
            station_id: st,
        }
        | Principal::Pile {
            operator_id: own,
            station_id: st,
            ..
        } => own == operator_id && st == station_id,
        Principal::Regulator { area_code: area } => area_covers(area, area_code),
    }
}

impl ReportingApi {
    pub fn new(store: Arc<dyn ReportingStore>) -> Self {
        Self { store }
    }

    pub fn into_server(self) -> ReportingServiceServer<Self> {
        ReportingServiceServer::new(self)
    }

    async fn history(
        &self,
        p: &Principal,
        req: pb::ListStatusHistoryRequest,
    ) -> Result<pb::ListStatusHistoryResponse, Error> {
        let limit = match req.page_size {
            n if n < 0 => return Err(Error::bad_field("page_size", "must not be negative")),
            0 => 200,
            n => (n as u32).min(1000),
        };
        let time = |field: &str, ts: &Option<prost_types::Timestamp>| match ts {
            Some(ts) => from_timestamp(ts)
                .map(Some)
                .ok_or_else(|| Error::bad_field(field, "is not a valid timestamp")),
            None => Ok(None),
        };
        let after = match decode_token(&req.page_token, 1)? {
            Some(parts) => parts[0].parse().map_err(|_| {
                Error::bad_field("page_token", "is not a token this service issued")
            })?,
            None => 0,
        };
        let query = HistoryQuery {
            operator_id: req.operator_id.trim().to_owned(),
            station_id: req.station_id.trim().to_owned(),
            start: time("start_time", &req.start_time)?,
            end: time("end_time", &req.end_time)?,
            after,
            limit,
        };
        if query.operator_id.is_empty() || query.station_id.is_empty() {
            return Err(Error::bad_field(
                "station_id",
                "operator_id and station_id are required",
            ));
        }
        let rows = self.store.history(&query).await?;
        let next_page_token = match rows.last() {
            Some((sequence, _)) if rows.len() as u32 >= limit => {
                encode_token(&[&sequence.to_string()])
            }
            _ => String::new(),
        };
        // Rows of a station the caller may not see are left out: it learns nothing of them.
        let changes = rows
            .into_iter()
            .map(|(_, change)| change)
            .filter(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| may_see(p, &s.operator_id, &s.station_id, &s.area_code))
            })
            .collect();
        Ok(pb::ListStatusHistoryResponse {
            changes,
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl ReportingService for ReportingApi {
    async fn list_status_history(
        &self,
        request: Request<pb::ListStatusHistoryRequest>,
    ) -> Result<Response<pb::ListStatusHistoryResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(self.history(&p, request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_visible_to_its_operator_and_the_regulator_of_its_area_only() {
        let op = Principal::Operator {
            operator_id: "A".into(),
        };
        assert!(may_see(&op, "A", "S1", "330602"));
        assert!(!may_see(&op, "B", "S1", "330602"));
        let city = Principal::Regulator {
            area_code: "330600".into(),
        };
        assert!(may_see(&city, "A", "S1", "330602"));
        assert!(!may_see(&city, "A", "S1", "310101"));
        let pile = Principal::Pile {
            operator_id: "A".into(),
            station_id: "S1".into(),
            pile_id: "P".into(),
        };
        assert!(!may_see(&pile, "A", "S2", "330602"));
    }
}
