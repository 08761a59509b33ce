//! `chargemesh.reporting.v1.ReportingService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use chargemesh_kit::area::area_covers;
use chargemesh_kit::paging::{Keyset, decode_token, encode_token};
use chargemesh_kit::server::principal;
use chargemesh_kit::time::from_timestamp;
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::reporting::v1 as pb;
use chargemesh_proto::reporting::v1::reporting_service_server::{
    ReportingService, ReportingServiceServer,
};

use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::time::to_timestamp;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::kpi_service_server::{KpiService, KpiServiceServer};

use chargemesh_proto::kpi::v1 as kpb;

use crate::domain::evaluation::NonConformity;
use crate::domain::exemption::{Cause, Declaration, Exemption, ExemptionState};
use crate::domain::period::Period;
use crate::report::{self, Scope};
use crate::store::{HistoryQuery, ReportingStore};

const PLATFORM_ADMIN: &str = "platform_admin";

#[derive(Debug, Clone)]
pub struct ReportingApi {
    store: Arc<dyn ReportingStore>,
    clock: SharedClock,
    pusher: Option<crate::push::Pusher>,
}

/// The operator a request is about, when the caller may act for it (see
/// [`Principal::acting_for`]).
fn operator_for(p: &Principal, requested: &str) -> Result<String, Error> {
    p.acting_for(requested, "reports")
}

fn exemption_to_pb(e: &Exemption) -> pb::Exemption {
    pb::Exemption {
        operator_id: e.operator_id.clone(),
        exemption_id: e.exemption_id.clone(),
        station_ids: e.station_ids.clone(),
        start_time: Some(to_timestamp(e.start)),
        end_time: Some(to_timestamp(e.end)),
        cause: (match e.cause {
            Cause::PlatformFailure => pb::ExemptionCause::PlatformFailure,
            Cause::TcuUpgrade => pb::ExemptionCause::TcuUpgrade,
            Cause::SevereWeather => pb::ExemptionCause::SevereWeather,
            Cause::Other => pb::ExemptionCause::Other,
        }) as i32,
        cause_text: e.cause_text.clone(),
        evidence_refs: e.evidence.clone(),
        state: state_to_pb(e.state) as i32,
        declared_by: e.declared_by.clone(),
        declare_time: Some(to_timestamp(e.declared_at)),
        decided_by: e.decided_by.clone().unwrap_or_default(),
        decide_time: e.decided_at.map(to_timestamp),
        decision_note: e.note.clone(),
    }
}

fn state_to_pb(s: ExemptionState) -> pb::ExemptionState {
    match s {
        ExemptionState::Declared => pb::ExemptionState::Declared,
        ExemptionState::Approved => pb::ExemptionState::Approved,
        ExemptionState::Rejected => pb::ExemptionState::Rejected,
    }
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
        Principal::Public => false,
    }
}

impl ReportingApi {
    pub fn new(store: Arc<dyn ReportingStore>, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            pusher: None,
        }
    }

    /// With the pusher whose parked pushes it lists.
    pub fn with_pusher(mut self, pusher: Option<crate::push::Pusher>) -> Self {
        self.pusher = pusher;
        self
    }

    pub fn into_server(self) -> ReportingServiceServer<Self> {
        ReportingServiceServer::new(self)
    }

    /// The regulator's side of the KPIs.
    pub fn regulator_server(self) -> KpiServiceServer<RegulatorKpis> {
        KpiServiceServer::new(RegulatorKpis { api: self })
    }

    /// The scope and period a request names, for a caller who may see them.
    fn scope_of(
        &self,
        p: &Principal,
        r: Option<&pb::ReportScope>,
    ) -> Result<(Scope, Period), Error> {
        let r = r.ok_or_else(|| Error::bad_field("scope", "must be set"))?;
        let op = operator_for(p, &r.operator_id)?;
        let period = report::period_of(r.period, &r.period_start, self.clock.now())
            .map_err(|e| e.within("scope"))?;
        let station = Some(r.station_id.trim().to_owned()).filter(|s| !s.is_empty());
        Ok((
            Scope::Operator {
                operator_id: op,
                station_id: station,
            },
            period,
        ))
    }

    /// REQ EVAL-1: the year's figures and its non-conformities.
    async fn evaluation(
        &self,
        p: &Principal,
        operator_id: &str,
        year: &str,
    ) -> Result<(report::Report, Vec<NonConformity>), Error> {
        let scope = pb::ReportScope {
            operator_id: operator_id.to_owned(),
            station_id: String::new(),
            period: kpb::KpiPeriod::Year as i32,
            period_start: year.to_owned(),
        };
        let (scope, period) = self.scope_of(p, Some(&scope)).map_err(|e| match e {
            Error::Invalid { rule, message, .. } => Error::Invalid {
                field: "year".into(),
                rule,
                message,
            },
            other => other,
        })?;
        report::self_evaluation(self.store.as_ref(), &scope, period, self.clock.now()).await
    }

    /// A report as a file.
    async fn export(
        &self,
        p: &Principal,
        r: pb::ExportReportRequest,
    ) -> Result<pb::ExportReportResponse, Error> {
        let html = match pb::ExportFormat::try_from(r.format) {
            Ok(pb::ExportFormat::Csv) => false,
            Ok(pb::ExportFormat::Html) => true,
            _ => return Err(Error::bad_field("format", "is csv or html")),
        };
        let now = self.clock.now();
        let store = self.store.as_ref();
        let (name, content) = match pb::ReportKind::try_from(r.kind) {
            Ok(pb::ReportKind::Kpi) => {
                let (scope, period) = self.scope_of(p, r.scope.as_ref())?;
                let built = report::build(store, &scope, period, now).await?;
                let text = if html {
                    crate::export::kpi_html(&built)
                } else {
                    crate::export::kpi_csv(&built)
                };
                (format!("kpi-{}", built.period.label), text)
            }
            Ok(pb::ReportKind::FaultAnalysis) => {
                let (scope, period) = self.scope_of(p, r.scope.as_ref())?;
                let (built, a) = report::fault_analysis(store, &scope, period, now).await?;
                let text = if html {
                    crate::export::fault_html(&built, &a)
                } else {
                    crate::export::fault_csv(&a)
                };
                (format!("fault-analysis-{}", built.period.label), text)
            }
            Ok(pb::ReportKind::DefectStatistics) => {
                let (scope, period) = self.scope_of(p, r.scope.as_ref())?;
                let (built, s) = report::defect_statistics(store, &scope, period, now).await?;
                let text = if html {
                    crate::export::defect_html(&built, &s)
                } else {
                    crate::export::defect_csv(&s)
                };
                (format!("defect-statistics-{}", built.period.label), text)
            }
            Ok(pb::ReportKind::SelfEvaluation) => {
                let scope = r
                    .scope
                    .as_ref()
                    .ok_or_else(|| Error::bad_field("scope", "must be set"))?;
                let (built, list) = self
                    .evaluation(p, &scope.operator_id, &scope.period_start)
                    .await?;
                let text = if html {
                    crate::export::self_evaluation_html(&built, &list)
                } else {
                    crate::export::non_conformity_csv(&list)
                };
                (format!("self-evaluation-{}", built.period.label), text)
            }
            _ => {
                return Err(Error::bad_field(
                    "kind",
                    "is kpi, fault analysis, defect statistics or self-evaluation",
                ));
            }
        };
        let operator = r
            .scope
            .as_ref()
            .map(|s| s.operator_id.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| p.operator_id().map(str::to_owned))
            .unwrap_or_default();
        let (content_type, extension) = if html {
            ("text/html; charset=utf-8", "html")
        } else {
            ("text/csv; charset=utf-8", "csv")
        };
        Ok(pb::ExportReportResponse {
            content_type: content_type.into(),
            file_name: format!("{name}-{operator}.{extension}"),
            content: content.into_bytes(),
        })
    }

    async fn declare(
        &self,
        p: &Principal,
        r: pb::DeclareExemptionRequest,
    ) -> Result<pb::DeclareExemptionResponse, Error> {
        let input = r
            .exemption
            .ok_or_else(|| Error::bad_field("exemption", "must be set"))?;
        let op = operator_for(p, &input.operator_id)?;
        let time = |ts: &Option<prost_types::Timestamp>| ts.as_ref().and_then(from_timestamp);
        let cause = match pb::ExemptionCause::try_from(input.cause) {
            Ok(pb::ExemptionCause::PlatformFailure) => Some(Cause::PlatformFailure),
            Ok(pb::ExemptionCause::TcuUpgrade) => Some(Cause::TcuUpgrade),
            Ok(pb::ExemptionCause::SevereWeather) => Some(Cause::SevereWeather),
            Ok(pb::ExemptionCause::Other) => Some(Cause::Other),
            _ => None,
        };
        let now = self.clock.now();
        let exemption = Exemption::declare(
            format!("EX-{}", uuid::Uuid::now_v7().simple()),
            Declaration {
                operator_id: op.clone(),
                station_ids: input.station_ids,
                start: time(&input.start_time),
                end: time(&input.end_time),
                cause,
                cause_text: input.cause_text,
                evidence: input.evidence_refs,
            },
            &p.to_string(),
            now,
        )
        .map_err(|e| e.within("exemption"))?;
        let known = self.store.stations().await?;
        if let Some(unknown) = exemption.station_ids.iter().find(|id| {
            !known
                .iter()
                .any(|s| s.operator_id == op && &s.station_id == *id)
        }) {
            return Err(Error::bad_field(
                "exemption.station_ids",
                format!("station {unknown} is not one of the operator's"),
            ));
        }
        self.store.create_exemption(&exemption).await?;
        Ok(pb::DeclareExemptionResponse {
            exemption: Some(exemption_to_pb(&exemption)),
        })
    }

    async fn decide(
        &self,
        p: &Principal,
        r: pb::DecideExemptionRequest,
    ) -> Result<pb::DecideExemptionResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let id = r.exemption_id.trim();
        let (mut exemption, version) = self
            .store
            .exemption(&op, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("exemption {id}")))?;
        exemption.decide(r.approve, &r.note, &p.to_string(), self.clock.now())?;
        self.store.update_exemption(&exemption, version).await?;
        Ok(pb::DecideExemptionResponse {
            exemption: Some(exemption_to_pb(&exemption)),
        })
    }

    async fn list_exemptions_(
        &self,
        p: &Principal,
        r: pb::ListExemptionsRequest,
    ) -> Result<pb::ListExemptionsResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let state = match pb::ExemptionState::try_from(r.state) {
            Ok(pb::ExemptionState::Unspecified) => None,
            Ok(pb::ExemptionState::Declared) => Some("declared"),
            Ok(pb::ExemptionState::Approved) => Some("approved"),
            Ok(pb::ExemptionState::Rejected) => Some("rejected"),
            Err(_) => return Err(Error::bad_field("state", "is not an exemption state")),
        };
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let exemptions = page.page(self.store.exemptions(&op, state, &page).await?);
        Ok(pb::ListExemptionsResponse {
            exemptions: exemptions.items.iter().map(exemption_to_pb).collect(),
            next_page_token: exemptions.next_page_token,
        })
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
        // A station the caller may not see answers as a station without history: no rows and
        // no token, so neither the page nor the token tells that rows exist or where they are.
        let visible = rows.iter().all(|(_, c)| {
            c.status
                .as_ref()
                .is_some_and(|s| may_see(p, &s.operator_id, &s.station_id, &s.area_code))
        });
        if !visible {
            return Ok(pb::ListStatusHistoryResponse::default());
        }
        let next_page_token = match rows.last() {
            Some((sequence, _)) if rows.len() as u32 >= limit => {
                encode_token(&[&sequence.to_string()])
            }
            _ => String::new(),
        };
        Ok(pb::ListStatusHistoryResponse {
            changes: rows.into_iter().map(|(_, change)| change).collect(),
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

    async fn get_kpi_report(
        &self,
        request: Request<pb::GetKpiReportRequest>,
    ) -> Result<Response<pb::GetKpiReportResponse>, Status> {
        let p = principal(&request)?;
        let (scope, period) = self.scope_of(&p, request.get_ref().scope.as_ref())?;
        let built = report::build(self.store.as_ref(), &scope, period, self.clock.now()).await?;
        Ok(Response::new(pb::GetKpiReportResponse {
            report: Some(report::to_pb(&built)),
        }))
    }

    async fn get_fault_analysis(
        &self,
        request: Request<pb::GetFaultAnalysisRequest>,
    ) -> Result<Response<pb::GetFaultAnalysisResponse>, Status> {
        let p = principal(&request)?;
        let (scope, period) = self.scope_of(&p, request.get_ref().scope.as_ref())?;
        let (built, a) =
            report::fault_analysis(self.store.as_ref(), &scope, period, self.clock.now()).await?;
        Ok(Response::new(pb::GetFaultAnalysisResponse {
            analysis: Some(crate::views::fault_analysis(&built, &a)),
        }))
    }

    async fn get_defect_statistics(
        &self,
        request: Request<pb::GetDefectStatisticsRequest>,
    ) -> Result<Response<pb::GetDefectStatisticsResponse>, Status> {
        let p = principal(&request)?;
        let (scope, period) = self.scope_of(&p, request.get_ref().scope.as_ref())?;
        let (built, s) =
            report::defect_statistics(self.store.as_ref(), &scope, period, self.clock.now())
                .await?;
        Ok(Response::new(pb::GetDefectStatisticsResponse {
            statistics: Some(crate::views::defect_statistics(&built, &s)),
        }))
    }

    async fn get_self_evaluation(
        &self,
        request: Request<pb::GetSelfEvaluationRequest>,
    ) -> Result<Response<pb::GetSelfEvaluationResponse>, Status> {
        let p = principal(&request)?;
        let r = request.get_ref();
        let (built, list) = self.evaluation(&p, &r.operator_id, &r.year).await?;
        Ok(Response::new(pb::GetSelfEvaluationResponse {
            evaluation: Some(crate::views::self_evaluation(&built, &list)),
        }))
    }

    async fn export_report(
        &self,
        request: Request<pb::ExportReportRequest>,
    ) -> Result<Response<pb::ExportReportResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(self.export(&p, request.into_inner()).await?))
    }

    async fn declare_exemption(
        &self,
        request: Request<pb::DeclareExemptionRequest>,
    ) -> Result<Response<pb::DeclareExemptionResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(self.declare(&p, request.into_inner()).await?))
    }

    async fn decide_exemption(
        &self,
        request: Request<pb::DecideExemptionRequest>,
    ) -> Result<Response<pb::DecideExemptionResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(self.decide(&p, request.into_inner()).await?))
    }

    async fn list_parked_pushes(
        &self,
        request: Request<pb::ListParkedPushesRequest>,
    ) -> Result<Response<pb::ListParkedPushesResponse>, Status> {
        // What was pushed to every peer: the platform's to look into, no one else's.
        chargemesh_kit::tenancy::platform_scope(&principal(&request)?)?;
        let r = request.get_ref();
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let parked = match &self.pusher {
            Some(pusher) => page.page(pusher.parked(&page).await.map_err(Error::from)?),
            None => page.page(Vec::new()),
        };
        Ok(Response::new(pb::ListParkedPushesResponse {
            next_page_token: parked.next_page_token,
            pushes: parked
                .items
                .into_iter()
                .map(|d| pb::ParkedPush {
                    peer: d.peer,
                    interface: d.interface,
                    item_key: d.item_key,
                    attempts: u32::try_from(d.attempts).unwrap_or(0),
                    last_error: d.last_error,
                    payload: d.payload,
                    park_time: Some(to_timestamp(d.next_attempt_at)),
                })
                .collect(),
        }))
    }

    async fn list_exemptions(
        &self,
        request: Request<pb::ListExemptionsRequest>,
    ) -> Result<Response<pb::ListExemptionsResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(
            self.list_exemptions_(&p, request.into_inner()).await?,
        ))
    }
}

/// `chargemesh.regulator.v2.KpiService`: the KPIs of the regulator's area (or a part of it).
#[derive(Debug, Clone)]
pub struct RegulatorKpis {
    api: ReportingApi,
}

#[tonic::async_trait]
impl KpiService for RegulatorKpis {
    async fn get_kpi_report(
        &self,
        request: Request<reg::GetKpiReportRequest>,
    ) -> Result<Response<reg::GetKpiReportResponse>, Status> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let requested = r.area_code.trim();
        // A regulator, its own area or a part of it; the mesh and the platform's administrators,
        // any area they name; anyone else, nothing.
        let scope = chargemesh_kit::tenancy::regulator_scope(&p)?;
        let area = match (&p, scope) {
            (Principal::Regulator { area_code }, Some(_)) if requested.is_empty() => {
                area_code.clone()
            }
            (Principal::Regulator { area_code }, Some(_)) if area_covers(area_code, requested) => {
                requested.to_owned()
            }
            (_, Some(_)) => {
                return Err(Error::PermissionDenied(format!(
                    "area {requested} is outside the regulator's area"
                ))
                .into());
            }
            (_, None) if requested.is_empty() => {
                return Err(Error::bad_field("area_code", "is required").into());
            }
            (_, None) => requested.to_owned(),
        };
        let now = self.api.clock.now();
        let period = report::period_of(r.period, &r.period_start, now)?;
        let built = report::build(
            self.api.store.as_ref(),
            &Scope::Area { area_code: area },
            period,
            now,
        )
        .await?;
        Ok(Response::new(reg::GetKpiReportResponse {
            report: Some(report::to_pb(&built)),
        }))
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
