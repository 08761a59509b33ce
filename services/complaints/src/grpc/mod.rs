//! `chargemesh.complaints.v1.ComplaintsService`: translation, access and persistence; the rules
//! are in [`crate::domain`].

use tonic::Request;

use chargemesh_kit::error::{Reply, reply};
use chargemesh_kit::server::principal;
use chargemesh_kit::time::{from_timestamp, opt_timestamp, to_timestamp};
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::complaints::v1 as pb;
use chargemesh_proto::complaints::v1::complaints_service_server::{
    ComplaintsService, ComplaintsServiceServer,
};

use crate::domain::complaint::{Category, Channel, Complaint, Intake, Kind, State};
use crate::domain::satisfaction::Answer;
use crate::engine::Engine;
use crate::store::{ActionFilter, ComplaintFilter};
use chargemesh_kit::paging::Keyset;

mod actions;
mod satisfaction;

#[derive(Debug, Clone)]
pub struct ComplaintsApi {
    engine: Engine,
}

/// The operator a request is about, when the caller may act for it (see
/// [`Principal::acting_for`]).
pub(crate) fn operator_for(p: &Principal, requested: &str) -> Result<String, Error> {
    p.acting_for(requested, "complaints")
}

pub(crate) fn duration(d: chrono::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.num_seconds(),
        nanos: 0,
    }
}

pub(crate) fn breach_to_pb(b: &crate::domain::complaint::Breach) -> pb::ComplaintBreach {
    pb::ComplaintBreach {
        rule: b.rule.into(),
        what: b.what.into(),
        due_time: Some(to_timestamp(b.due)),
        lateness: Some(duration(b.lateness)),
    }
}

fn state_to_pb(s: State) -> i32 {
    (match s {
        State::Received => pb::ComplaintState::Received,
        State::Acknowledged => pb::ComplaintState::Acknowledged,
        State::Investigating => pb::ComplaintState::Investigating,
        State::Promised => pb::ComplaintState::Promised,
        State::Resolved => pb::ComplaintState::Resolved,
        State::Revisited => pb::ComplaintState::Revisited,
        State::Archived => pb::ComplaintState::Archived,
    }) as i32
}

fn to_pb(c: &Complaint, now: chrono::DateTime<chrono::Utc>) -> pb::Complaint {
    pb::Complaint {
        operator_id: c.operator_id.clone(),
        complaint_id: c.complaint_id.clone(),
        kind: (match c.kind {
            Kind::Complaint => pb::ComplaintKind::Complaint,
            Kind::Praise => pb::ComplaintKind::Praise,
            Kind::Suggestion => pb::ComplaintKind::Suggestion,
        }) as i32,
        channel: (match c.channel {
            Channel::Phone => pb::ComplaintChannel::Phone,
            Channel::Email => pb::ComplaintChannel::Email,
            Channel::Visit => pb::ComplaintChannel::Visit,
            Channel::App => pb::ComplaintChannel::App,
        }) as i32,
        category: (match c.category {
            Category::ChargingFailure => pb::ComplaintCategory::ChargingFailure,
            Category::Billing => pb::ComplaintCategory::Billing,
            Category::Pricing => pb::ComplaintCategory::Pricing,
            Category::ServiceAttitude => pb::ComplaintCategory::ServiceAttitude,
            Category::FacilitySafety => pb::ComplaintCategory::FacilitySafety,
            Category::Queueing => pb::ComplaintCategory::Queueing,
            Category::Other => pb::ComplaintCategory::Other,
        }) as i32,
        customer_contact: c.customer_contact.clone(),
        station_id: c.station_id.clone().unwrap_or_default(),
        pile_id: c.pile_id.clone().unwrap_or_default(),
        description: c.description.clone(),
        attachment_refs: c.attachments.clone(),
        charge_order_id: c.charge_order_id.clone().unwrap_or_default(),
        receive_time: Some(to_timestamp(c.received_at)),
        state: state_to_pb(c.state),
        steps: c
            .steps
            .iter()
            .map(|s| pb::ComplaintStep {
                state: state_to_pb(s.state),
                step_time: Some(to_timestamp(s.at)),
                by: s.by.clone(),
                note: s.note.clone(),
            })
            .collect(),
        response_due_time: Some(to_timestamp(c.response_due())),
        promise_due_time: opt_timestamp(c.promises.last().map(|p| p.due)),
        satisfaction: c.satisfaction.map_or(0, u32::from),
        reopened: c.reopened,
        links: c
            .links
            .iter()
            .map(|l| pb::LinkedItem {
                kind: l.kind.clone(),
                id: l.id.clone(),
                state: String::new(),
            })
            .collect(),
        breaches: c
            .breaches(now)
            .into_iter()
            .map(|b| breach_to_pb(&b))
            .collect(),
    }
}

fn intake(op: String, c: pb::Complaint) -> Result<Intake, Error> {
    let kind = match pb::ComplaintKind::try_from(c.kind) {
        Ok(pb::ComplaintKind::Praise) => Kind::Praise,
        Ok(pb::ComplaintKind::Suggestion) => Kind::Suggestion,
        // A complaint unless said otherwise.
        _ => Kind::Complaint,
    };
    let channel = match pb::ComplaintChannel::try_from(c.channel) {
        Ok(pb::ComplaintChannel::Phone) => Channel::Phone,
        Ok(pb::ComplaintChannel::Email) => Channel::Email,
        Ok(pb::ComplaintChannel::Visit) => Channel::Visit,
        Ok(pb::ComplaintChannel::App) => Channel::App,
        _ => {
            return Err(Error::invalid(
                "complaint.channel",
                "CMP-2",
                "is phone, email, visit or app",
            ));
        }
    };
    let category = match pb::ComplaintCategory::try_from(c.category) {
        Ok(pb::ComplaintCategory::ChargingFailure) => Category::ChargingFailure,
        Ok(pb::ComplaintCategory::Billing) => Category::Billing,
        Ok(pb::ComplaintCategory::Pricing) => Category::Pricing,
        Ok(pb::ComplaintCategory::ServiceAttitude) => Category::ServiceAttitude,
        Ok(pb::ComplaintCategory::FacilitySafety) => Category::FacilitySafety,
        Ok(pb::ComplaintCategory::Queueing) => Category::Queueing,
        Ok(pb::ComplaintCategory::Other) => Category::Other,
        _ => return Err(Error::bad_field("complaint.category", "must be set")),
    };
    Ok(Intake {
        operator_id: op,
        kind,
        channel,
        category,
        customer_contact: c.customer_contact,
        station_id: Some(c.station_id.trim().to_owned()),
        pile_id: Some(c.pile_id.trim().to_owned()),
        description: c.description,
        attachments: c.attachment_refs,
        charge_order_id: Some(c.charge_order_id.trim().to_owned()),
    })
}

impl ComplaintsApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    pub fn into_server(self) -> ComplaintsServiceServer<Self> {
        ComplaintsServiceServer::new(self)
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.engine.clock.now()
    }

    /// Loads a complaint of the caller's operator, applies a step and writes it back with the
    /// clock the step starts, if any.
    async fn step(
        &self,
        p: &Principal,
        operator_id: &str,
        complaint_id: &str,
        apply: impl FnOnce(&mut Complaint, &str, chrono::DateTime<chrono::Utc>) -> Result<(), Error>,
    ) -> Result<Complaint, Error> {
        let op = operator_for(p, operator_id)?;
        let id = complaint_id.trim();
        let (mut complaint, version) = self
            .engine
            .store
            .complaint(&op, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("complaint {id}")))?;
        let (promises, revisits) = (complaint.promises.len(), complaint.revisits());
        let (by, now) = (p.to_string(), self.now());
        apply(&mut complaint, &by, now)?;
        let clocks: Vec<_> = if complaint.promises.len() > promises {
            complaint.promise_clock().into_iter().collect()
        } else {
            Vec::new()
        };
        // REQ EVAL-2: a revisit's score is a satisfaction answer, kept with the step.
        let answers: Vec<_> = if complaint.revisits() > revisits {
            Answer::revisit(&complaint, &by, now).into_iter().collect()
        } else {
            Vec::new()
        };
        self.engine
            .store
            .update(&complaint, version, &clocks, &answers)
            .await?;
        Ok(complaint)
    }

    async fn submit(
        &self,
        p: &Principal,
        r: pb::SubmitComplaintRequest,
    ) -> Result<Complaint, Error> {
        let mut input = r
            .complaint
            .ok_or_else(|| Error::bad_field("complaint", "must be set"))?;
        let op = match p {
            // REQ CMP-2: a driver, from a station's public page: about that station, through
            // the app channel, and nothing else of the operator's is seen or touched.
            Principal::Public => {
                let op = input.operator_id.trim().to_owned();
                if op.is_empty() {
                    return Err(Error::bad_field("complaint.operator_id", "is required"));
                }
                if input.station_id.trim().is_empty() {
                    return Err(Error::bad_field(
                        "complaint.station_id",
                        "is required from a station's page (CMP-2)",
                    ));
                }
                input.channel = pb::ComplaintChannel::App as i32;
                input.charge_order_id.clear();
                input.attachment_refs.clear();
                op
            }
            _ => operator_for(p, &input.operator_id)?,
        };
        let now = self.now();
        let complaint = Complaint::receive(
            format!("CP-{}", uuid::Uuid::now_v7().simple()),
            intake(op, input)?,
            &p.to_string(),
            now,
        )
        .map_err(|e| e.within("complaint"))?;
        // REQ CMP-1: the response clock starts on receipt.
        let clocks = [("response".to_owned(), complaint.response_due())];
        // What it sets going elsewhere — a repair order for a failing pile (REQ FAULT-4), a
        // dispute of a billed order (MON-9) — is written with it and tried at once; what fails
        // now is retried until done, and linked when it is.
        let steps = Engine::steps_for(&complaint);
        self.engine
            .store
            .create_with_steps(&complaint, &clocks, &steps)
            .await?;
        if steps.is_empty() {
            return Ok(complaint);
        }
        for step in &steps {
            self.engine.outbox().run_now(&step.step_id).await?;
        }
        Ok(self
            .engine
            .store
            .complaint(&complaint.operator_id, &complaint.complaint_id)
            .await?
            .map_or(complaint, |(c, _)| c))
    }
}

fn answer(c: &Complaint, now: chrono::DateTime<chrono::Utc>) -> Option<pb::Complaint> {
    Some(to_pb(c, now))
}

#[tonic::async_trait]
impl ComplaintsService for ComplaintsApi {
    async fn submit_complaint(
        &self,
        request: Request<pb::SubmitComplaintRequest>,
    ) -> Reply<pb::SubmitComplaintResponse> {
        let p = principal(&request)?;
        let result = self.submit(&p, request.into_inner()).await;
        reply(result.map(|c| pb::SubmitComplaintResponse {
            complaint: answer(&c, self.now()),
        }))
    }

    async fn get_complaint(
        &self,
        request: Request<pb::GetComplaintRequest>,
    ) -> Reply<pb::GetComplaintResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = async {
            let op = operator_for(&p, &r.operator_id)?;
            let id = r.complaint_id.trim();
            let (c, _) = self
                .engine
                .store
                .complaint(&op, id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("complaint {id}")))?;
            let mut complaint = to_pb(&c, self.now());
            for link in &mut complaint.links {
                let state = match link.kind.as_str() {
                    "work_order" => self.engine.work_order_state(&c.operator_id, &link.id).await,
                    "charge_order" => {
                        self.engine
                            .charge_order_state(&c.operator_id, &link.id)
                            .await
                    }
                    _ => None,
                };
                link.state = state.unwrap_or_default();
            }
            // REQ EVAL-3: the corrective actions that answer it.
            let answering = ActionFilter {
                complaint_id: Some(id),
                include_closed: true,
            };
            let newest = Keyset::first(chargemesh_kit::paging::MAX_PAGE_SIZE);
            for action in self.engine.store.actions(&op, answering, &newest).await? {
                let action = action.item;
                complaint.links.push(pb::LinkedItem {
                    kind: "corrective_action".into(),
                    id: action.action_id,
                    state: format!("{:?}", action.state).to_lowercase(),
                });
            }
            Ok(pb::GetComplaintResponse {
                complaint: Some(complaint),
            })
        };
        reply(result.await)
    }

    async fn list_complaints(
        &self,
        request: Request<pb::ListComplaintsRequest>,
    ) -> Reply<pb::ListComplaintsResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = async {
            let op = operator_for(&p, &r.operator_id)?;
            let now = self.now();
            let page = Keyset::from_request(r.page_size, &r.page_token)?;
            let filter = ComplaintFilter {
                station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
                include_archived: r.include_archived,
            };
            let complaints = page.page(self.engine.store.complaints(&op, filter, &page).await?);
            Ok(pb::ListComplaintsResponse {
                next_page_token: complaints.next_page_token,
                complaints: complaints
                    .items
                    .iter()
                    .map(|c| {
                        let next = c.next_limit(now);
                        pb::QueuedComplaint {
                            complaint: Some(to_pb(c, now)),
                            next_limit: next.map(|(what, _)| what.to_owned()).unwrap_or_default(),
                            time_left: next.map(|(_, left)| duration(left)),
                        }
                    })
                    .collect(),
            })
        };
        reply(result.await)
    }

    async fn acknowledge_complaint(
        &self,
        request: Request<pb::AcknowledgeComplaintRequest>,
    ) -> Reply<pb::AcknowledgeComplaintResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = self
            .step(&p, &r.operator_id, &r.complaint_id, |c, by, now| {
                c.acknowledge(&r.reply, by, now)
            })
            .await;
        reply(result.map(|c| pb::AcknowledgeComplaintResponse {
            complaint: answer(&c, self.now()),
        }))
    }

    async fn investigate_complaint(
        &self,
        request: Request<pb::InvestigateComplaintRequest>,
    ) -> Reply<pb::InvestigateComplaintResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = self
            .step(&p, &r.operator_id, &r.complaint_id, |c, by, now| {
                c.investigate(&r.event, &r.responsible_party, by, now)
            })
            .await;
        reply(result.map(|c| pb::InvestigateComplaintResponse {
            complaint: answer(&c, self.now()),
        }))
    }

    async fn promise_resolution(
        &self,
        request: Request<pb::PromiseResolutionRequest>,
    ) -> Reply<pb::PromiseResolutionResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = async {
            let due = r
                .due_time
                .as_ref()
                .and_then(from_timestamp)
                .ok_or_else(|| Error::bad_field("due_time", "is required"))?;
            self.step(&p, &r.operator_id, &r.complaint_id, |c, by, now| {
                c.promise(&r.handling, &r.reply, due, by, now)
            })
            .await
        };
        reply(result.await.map(|c| pb::PromiseResolutionResponse {
            complaint: answer(&c, self.now()),
        }))
    }

    async fn resolve_complaint(
        &self,
        request: Request<pb::ResolveComplaintRequest>,
    ) -> Reply<pb::ResolveComplaintResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = self
            .step(&p, &r.operator_id, &r.complaint_id, |c, by, now| {
                c.resolve(&r.record, by, now)
            })
            .await;
        reply(result.map(|c| pb::ResolveComplaintResponse {
            complaint: answer(&c, self.now()),
        }))
    }

    async fn revisit_complaint(
        &self,
        request: Request<pb::RevisitComplaintRequest>,
    ) -> Reply<pb::RevisitComplaintResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let mut reopened = false;
        let result = self
            .step(&p, &r.operator_id, &r.complaint_id, |c, by, now| {
                reopened = c.revisit(r.satisfaction, &r.comment, by, now)?;
                Ok(())
            })
            .await;
        reply(result.map(|c| pb::RevisitComplaintResponse {
            complaint: answer(&c, self.now()),
            reopened,
        }))
    }

    async fn archive_complaint(
        &self,
        request: Request<pb::ArchiveComplaintRequest>,
    ) -> Reply<pb::ArchiveComplaintResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = self
            .step(&p, &r.operator_id, &r.complaint_id, |c, by, now| {
                c.archive(by, now)
            })
            .await;
        reply(result.map(|c| pb::ArchiveComplaintResponse {
            complaint: answer(&c, self.now()),
        }))
    }

    async fn record_survey_answer(
        &self,
        request: Request<pb::RecordSurveyAnswerRequest>,
    ) -> Reply<pb::RecordSurveyAnswerResponse> {
        let p = principal(&request)?;
        reply(self.record_survey_answer_(&p, request.into_inner()).await)
    }

    async fn get_satisfaction(
        &self,
        request: Request<pb::GetSatisfactionRequest>,
    ) -> Reply<pb::GetSatisfactionResponse> {
        let p = principal(&request)?;
        reply(self.get_satisfaction_(&p, request.into_inner()).await)
    }

    async fn open_corrective_action(
        &self,
        request: Request<pb::OpenCorrectiveActionRequest>,
    ) -> Reply<pb::OpenCorrectiveActionResponse> {
        let p = principal(&request)?;
        let result = self.open_action(&p, request.into_inner()).await;
        reply(result.map(|action| pb::OpenCorrectiveActionResponse {
            action: Some(action),
        }))
    }

    async fn get_corrective_action(
        &self,
        request: Request<pb::GetCorrectiveActionRequest>,
    ) -> Reply<pb::GetCorrectiveActionResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = self.get_action(&p, &r.operator_id, &r.action_id).await;
        reply(result.map(|action| pb::GetCorrectiveActionResponse {
            action: Some(action),
        }))
    }

    async fn list_corrective_actions(
        &self,
        request: Request<pb::ListCorrectiveActionsRequest>,
    ) -> Reply<pb::ListCorrectiveActionsResponse> {
        let p = principal(&request)?;
        reply(self.list_actions(&p, request.into_inner()).await)
    }

    async fn implement_corrective_action(
        &self,
        request: Request<pb::ImplementCorrectiveActionRequest>,
    ) -> Reply<pb::ImplementCorrectiveActionResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = self
            .action_step(&p, &r.operator_id, &r.action_id, |a, by, now| {
                a.implement(&r.record, by, now)
            })
            .await;
        reply(result.map(|action| pb::ImplementCorrectiveActionResponse {
            action: Some(action),
        }))
    }

    async fn check_corrective_action(
        &self,
        request: Request<pb::CheckCorrectiveActionRequest>,
    ) -> Reply<pb::CheckCorrectiveActionResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let next_due = r.next_due_time.as_ref().and_then(from_timestamp);
        let result = self
            .action_step(&p, &r.operator_id, &r.action_id, |a, by, now| {
                a.check(r.effective, &r.evidence, (&r.next_plan, next_due), by, now)
                    .map(|_| ())
            })
            .await;
        reply(result.map(|action| pb::CheckCorrectiveActionResponse {
            action: Some(action),
        }))
    }
}
