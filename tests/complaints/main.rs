//! Complaints end to end, through the gateway with staff JWTs, on the injectable clock: the
//! complaint's lifecycle and its time limits, the work orders complaints open in dispatch, and the
//! evaluation (revisits, surveys, corrective actions), one module each.

#[path = "../common/mod.rs"]
mod common;
mod evaluation;
mod lifecycle;
mod work_orders;

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use chargemesh::pki::{self, DEMO_OPERATOR_ID};
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_proto::complaints::v1 as pb;
use chargemesh_proto::complaints::v1::complaints_service_client::ComplaintsServiceClient;
use common::{TestMesh, eventually, with_token};

const OP: &str = DEMO_OPERATOR_ID;

async fn mesh_at(clock: &ManualClock) -> TestMesh {
    let mesh_clock = clock.clone();
    TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.poll_every(20);
    })
    .await
}

struct Desk {
    client: ComplaintsServiceClient<tonic::transport::Channel>,
    pki: pki::PkiDir,
}

impl Desk {
    fn new(mesh: &TestMesh) -> Self {
        Self {
            client: ComplaintsServiceClient::new(mesh.anonymous_channel()),
            pki: mesh.pki().clone(),
        }
    }

    fn token(&self, role: &str, operator: &str) -> String {
        pki::mint_token(&self.pki, role, Some(operator), &[role.to_owned()], 3600).expect("token")
    }

    async fn submit(&mut self, description: &str) -> pb::Complaint {
        let token = self.token("complaint_handler", OP);
        self.client
            .submit_complaint(with_token(
                pb::SubmitComplaintRequest {
                    complaint: Some(pb::Complaint {
                        operator_id: OP.into(),
                        kind: pb::ComplaintKind::Complaint as i32,
                        channel: pb::ComplaintChannel::Phone as i32,
                        category: pb::ComplaintCategory::ChargingFailure as i32,
                        customer_contact: "138 0000 0000".into(),
                        station_id: "S1".into(),
                        description: description.into(),
                        ..Default::default()
                    }),
                },
                &token,
            ))
            .await
            .expect("submitted")
            .into_inner()
            .complaint
            .expect("complaint")
    }

    /// Takes a complaint from wherever it is in its handling to a revisit with `score`;
    /// returns whether the revisit reopened it.
    async fn revisit_with(
        &mut self,
        id: &str,
        score: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        let token = self.token("complaint_handler", OP);
        if self.get(id).await.state == pb::ComplaintState::Received as i32 {
            self.acknowledge(id).await.expect("acknowledged");
        }
        if self.get(id).await.state == pb::ComplaintState::Acknowledged as i32 {
            self.client
                .investigate_complaint(with_token(
                    pb::InvestigateComplaintRequest {
                        operator_id: OP.into(),
                        complaint_id: id.into(),
                        event: "bays taken by parked cars".into(),
                        responsible_party: "station".into(),
                    },
                    &token,
                ))
                .await
                .expect("investigated");
        }
        let due = chargemesh_kit::time::to_timestamp(now + chrono::Duration::days(1));
        self.client
            .promise_resolution(with_token(
                pb::PromiseResolutionRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                    handling: "a warden at peak hours".into(),
                    reply: "we will keep the bays free".into(),
                    due_time: Some(due),
                },
                &token,
            ))
            .await
            .expect("promised");
        self.client
            .resolve_complaint(with_token(
                pb::ResolveComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                    record: "warden posted".into(),
                },
                &token,
            ))
            .await
            .expect("resolved");
        self.client
            .revisit_complaint(with_token(
                pb::RevisitComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                    satisfaction: score,
                    comment: String::new(),
                },
                &token,
            ))
            .await
            .expect("revisited")
            .into_inner()
            .reopened
    }

    async fn get(&mut self, id: &str) -> pb::Complaint {
        let token = self.token("complaint_handler", OP);
        self.client
            .get_complaint(with_token(
                pb::GetComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                },
                &token,
            ))
            .await
            .expect("complaint")
            .into_inner()
            .complaint
            .expect("complaint")
    }

    async fn acknowledge(&mut self, id: &str) -> Result<pb::Complaint, tonic::Status> {
        let token = self.token("complaint_handler", OP);
        Ok(self
            .client
            .acknowledge_complaint(with_token(
                pb::AcknowledgeComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                    reply: "we are sorry and look into it today".into(),
                },
                &token,
            ))
            .await?
            .into_inner()
            .complaint
            .unwrap_or_default())
    }
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("time")
        .to_utc()
}
