//! Dispatch end to end, through the gateway with staff JWTs, on the injectable clock: repair work
//! orders, defects and maintenance, patrols, the monitor's daily check, incidents and staff, and
//! the records the standard names, one module each; the staff and fleet they share are here.

#[path = "../common/mod.rs"]
mod common;
mod maintenance;
mod monitoring;
mod patrols;
mod records;
mod staff_and_incidents;
mod work_orders;

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use chargemesh::demo;
use chargemesh::pki::{self, DEMO_OPERATOR_ID};
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::dispatch::v1 as pb;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use common::{TelemetryStream, TestMesh, eventually, with_token};

const OP: &str = DEMO_OPERATOR_ID;

async fn mesh_at(clock: &ManualClock) -> TestMesh {
    let mesh_clock = clock.clone();
    TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.poll_every(20);
        opts.config.telemetry.settings.offline_after_seconds = 30 * 24 * 3600;
    })
    .await
}

/// The demo operator with an urban station (S-URB, pile P1) and an outlying one (S-OUT, pile P2),
/// and four staff members.
async fn setup(mesh: &TestMesh) -> Staff {
    common::two_station_fleet(mesh).await;
    let staff = Staff::new(mesh);
    let manager = staff.token("om_manager");
    let mut client = staff.client();
    for (id, employer, cert) in [
        ("alice", pb::Employer::Own, "2030-12-31"),
        ("bob", pb::Employer::Own, "2030-12-31"),
        ("carol", pb::Employer::Own, "2020-01-31"),
    ] {
        client
            .create_staff_member(with_token(
                pb::CreateStaffMemberRequest {
                    staff_member: Some(pb::StaffMember {
                        operator_id: OP.into(),
                        staff_id: id.into(),
                        name: id.into(),
                        employer: employer as i32,
                        electrician_certificate_until: cert.into(),
                        qualified_until: "2030-12-31".into(),
                        ..Default::default()
                    }),
                },
                &manager,
            ))
            .await
            .expect("staff member");
    }
    staff
}

/// Staff apps: no certificate, a bearer token per role.
struct Staff {
    channel: tonic::transport::Channel,
    pki: pki::PkiDir,
}

impl Staff {
    fn new(mesh: &TestMesh) -> Self {
        Self {
            channel: mesh.anonymous_channel(),
            pki: mesh.pki().clone(),
        }
    }

    fn token(&self, role: &str) -> String {
        pki::mint_token(&self.pki, role, Some(OP), &[role.to_owned()], 3600).expect("token")
    }

    fn client(&self) -> DispatchServiceClient<tonic::transport::Channel> {
        DispatchServiceClient::new(self.channel.clone())
    }

    async fn phone_order(&self, station: &str, pile: &str) -> pb::WorkOrder {
        common::phone_work_order(self.channel.clone(), &self.token("monitor"), station, pile).await
    }

    async fn dispatch(&self, order: &str, crew: &[&str]) -> Result<pb::WorkOrder, tonic::Status> {
        self.client()
            .dispatch_work_order(with_token(
                pb::DispatchWorkOrderRequest {
                    operator_id: OP.into(),
                    order_id: order.into(),
                    crew: crew.iter().map(|c| (*c).to_owned()).collect(),
                    risk: pb::Risk::Normal as i32,
                },
                &self.token("monitor"),
            ))
            .await
            .map(|r| r.into_inner().work_order.expect("order"))
    }

    async fn get(&self, order: &str) -> pb::WorkOrder {
        self.client()
            .get_work_order(with_token(
                pb::GetWorkOrderRequest {
                    operator_id: OP.into(),
                    order_id: order.into(),
                },
                &self.token("monitor"),
            ))
            .await
            .expect("order")
            .into_inner()
            .work_order
            .expect("order")
    }

    /// A maintenance plan drafted by a repairer, awaiting approval (REQ MAINT-1).
    async fn draft_plan(&self, station: &str, items: &[&str]) -> pb::MaintenancePlan {
        self.client()
            .create_maintenance_plan(with_token(
                pb::CreateMaintenancePlanRequest {
                    plan: Some(pb::MaintenancePlan {
                        operator_id: OP.into(),
                        station_id: station.into(),
                        title: "2026 annual maintenance".into(),
                        period: "2026".into(),
                        items: items.iter().map(|i| (*i).to_owned()).collect(),
                        ..Default::default()
                    }),
                },
                &self.token("repairer"),
            ))
            .await
            .expect("drafted")
            .into_inner()
            .plan
            .expect("plan")
    }

    async fn approve_plan(
        &self,
        plan_id: &str,
        role: &str,
    ) -> Result<pb::MaintenancePlan, tonic::Status> {
        Ok(self
            .client()
            .approve_maintenance_plan(with_token(
                pb::ApproveMaintenancePlanRequest {
                    operator_id: OP.into(),
                    plan_id: plan_id.into(),
                },
                &self.token(role),
            ))
            .await?
            .into_inner()
            .plan
            .unwrap_or_default())
    }

    /// A phone order dispatched to alice and bob, a valid crew.
    async fn dispatched_order(&self, station: &str, pile: &str) -> pb::WorkOrder {
        let order = self.phone_order(station, pile).await;
        self.dispatch(&order.order_id, &["alice", "bob"])
            .await
            .expect("dispatched")
    }

    /// The operator's open work orders, as the monitor sees them.
    async fn open_orders(&self) -> Vec<pb::WorkOrder> {
        self.client()
            .list_work_orders(with_token(
                pb::ListWorkOrdersRequest {
                    operator_id: OP.into(),
                    open_only: true,
                    ..Default::default()
                },
                &self.token("monitor"),
            ))
            .await
            .expect("open orders")
            .into_inner()
            .work_orders
    }

    /// Polls until `check` holds, within ten seconds.
    async fn until(&self, order: &str, check: impl Fn(&pb::WorkOrder) -> bool) -> pb::WorkOrder {
        eventually(async || self.get(order).await, check).await
    }
}
