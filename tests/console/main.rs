//! The operator console end to end: a person signs in (the development sign-in of `up`), sees
//! the open work orders on their clocks and takes the steps their post allows, through the
//! gateway as themselves (REQ FAULT-1, FAULT-5, FAULT-7, FAULT-8); forms without the session's
//! CSRF token do nothing; a refusal shows the API's reason with the input kept; the language
//! switches; sign-out ends the session.

mod checks;
#[path = "../common/mod.rs"]
mod common;
mod complaints;
mod defects;
mod exemptions;
mod fleet;
mod http;
mod oidc;
mod orders;
mod patrols;
mod pile;
mod plans;
mod public;
mod registry;
mod reports;

use std::net::SocketAddr;

use chargemesh::demo_people;
use chargemesh::pki::{self, DEMO_OPERATOR_ID as OP};
use chargemesh_proto::dispatch::v1 as dp;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use common::{TestMesh, phone_work_order, two_station_fleet, with_token};
use http::{Browser, Page};

/// Who the development sign-in offers, as its form values.
const MONITOR: &str = "0:monitor";
const REPAIRER: &str = "1:repairer";
const COMPLAINT_HANDLER: &str = "3:complaint_handler";

/// The mesh with the demo operator's two stations, its repair crew, and the console.
async fn console() -> (TestMesh, SocketAddr) {
    console_with(|_| {}).await
}

/// As [`console`], with the console's settings adjusted.
async fn console_with(
    adjust: impl FnOnce(&mut chargemesh_console::ConsoleConfig),
) -> (TestMesh, SocketAddr) {
    console_on(TestMesh::start().await, adjust).await
}

/// As [`console`], on a mesh whose periodic passes (the reporting directory's among them) run
/// every 200 ms.
async fn console_polling() -> (TestMesh, SocketAddr) {
    console_on(
        TestMesh::start_with_options(|opts| opts.poll_every(200)).await,
        |_| {},
    )
    .await
}

async fn console_on(
    mesh: TestMesh,
    adjust: impl FnOnce(&mut chargemesh_console::ConsoleConfig),
) -> (TestMesh, SocketAddr) {
    two_station_fleet(&mesh).await;
    let gateway = SocketAddr::from(([127, 0, 0, 1], mesh.gateway_port()));
    demo_people::seed_staff(gateway, &mesh.pki_files("operator"))
        .await
        .expect("the crew");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let addr = listener.local_addr().expect("address");
    let mut config = demo_people::console("127.0.0.1:0", gateway, mesh.pki());
    adjust(&mut config);
    tokio::spawn(chargemesh_console::serve(
        listener,
        config,
        std::future::pending(),
    ));
    (mesh, addr)
}

/// A status report of `pile`'s first connector, observed now, with the fault it names (code,
/// text) when it has one.
fn status(
    sequence: u64,
    pile: &str,
    state: chargemesh_proto::telemetry::v1::ConnectorState,
    (fault_code, fault_text): (&str, &str),
) -> chargemesh_proto::telemetry::v1::TelemetryMessage {
    use chargemesh_proto::telemetry::v1 as tm;
    let now = chrono::Utc::now();
    tm::TelemetryMessage {
        sequence,
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        observe_time: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: 0,
        }),
        body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
            state: state as i32,
            fault_code: fault_code.into(),
            fault_text: fault_text.into(),
        })),
        ..Default::default()
    }
}

fn token(mesh: &TestMesh, role: &str) -> String {
    pki::mint_token(mesh.pki(), "test", Some(OP), &[role.to_owned()], 600).expect("token")
}

async fn sign_in(browser: &mut Browser, who: &str) -> Page {
    let form = browser.get("/signin").await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf();
    browser
        .post("/signin", &[("csrf", &csrf), ("who", who)])
        .await
}

async fn order_state(mesh: &TestMesh, order_id: &str) -> i32 {
    DispatchServiceClient::new(mesh.anonymous_channel())
        .get_work_order(with_token(
            dp::GetWorkOrderRequest {
                operator_id: OP.into(),
                order_id: order_id.into(),
            },
            &token(mesh, "monitor"),
        ))
        .await
        .expect("order")
        .into_inner()
        .work_order
        .expect("order")
        .state
}

#[tokio::test]
async fn fault_5_a_work_order_is_dispatched_checked_in_resolved_and_confirmed_from_the_console() {
    let (mesh, addr) = console().await;
    let order = phone_work_order(
        mesh.anonymous_channel(),
        &token(&mesh, "monitor"),
        "S-URB",
        "P1",
    )
    .await;
    let id = order.order_id.clone();
    let page_of = format!("/work-orders/{id}");

    // Not signed in: the sign-in page.
    let mut monitor = Browser::new(addr);
    let first = monitor.get("/work-orders").await;
    assert_eq!(
        (first.status, first.header("location")),
        (303, Some("/signin"))
    );
    let signed = sign_in(&mut monitor, MONITOR).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let cookie = signed
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("cm_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    // REQ FAULT-5: the open order with its arrival (1 h, main urban area) and repair clocks.
    let list = monitor.get("/work-orders").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&id), "{}", list.body);
    assert!(list.body.contains("到场时限") && list.body.contains("修复时限"));
    assert_eq!(
        list.body.matches("data-due=").count(),
        2,
        "two running countdowns"
    );
    assert!(
        list.body.contains("剩余"),
        "time left, in Chinese by default"
    );

    // The monitor may dispatch; the crew is offered from dispatch's staff.
    let detail = monitor.get(&page_of).await;
    assert!(detail.body.contains("R-001") && detail.body.contains("李维修"));
    assert!(!detail.body.contains("/check-in"), "not the monitor's step");
    let csrf = detail.csrf();

    // A form without the session's token does nothing.
    let forged = monitor
        .post(&format!("{page_of}/dispatch"), &[("crew", "R-001")])
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        order_state(&mesh, &id).await,
        dp::WorkOrderState::Received as i32
    );

    // REQ FAULT-1: a crew of one is refused with the API's reason, and the form keeps what was
    // chosen.
    let refused = monitor
        .post(
            &format!("{page_of}/dispatch"),
            &[("csrf", &csrf), ("crew", "R-001"), ("risk", "high_voltage")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("操作未成功") && refused.body.contains("FAULT-1"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"R-001\" checked")
            && refused
                .body
                .contains("<option value=\"high_voltage\" selected>"),
        "the crew and risk chosen are kept"
    );
    let dispatched = monitor
        .post(
            &format!("{page_of}/dispatch"),
            &[
                ("csrf", &csrf),
                ("crew", "R-001"),
                ("crew", "R-002"),
                ("risk", "normal"),
            ],
        )
        .await;
    assert_eq!(dispatched.status, 303, "{}", dispatched.body);
    let after = monitor.get(&format!("{page_of}?saved=1")).await;
    assert!(after.body.contains("已派单") && after.body.contains("已保存"));

    // The repairer checks in on site (REQ FAULT-7: far away is refused, the input kept) and
    // resolves.
    let mut repairer = Browser::new(addr);
    assert_eq!(sign_in(&mut repairer, REPAIRER).await.status, 303);
    let detail = repairer.get(&page_of).await;
    assert!(detail.body.contains("/check-in") && !detail.body.contains("/dispatch"));
    let csrf = detail.csrf();
    let far = repairer
        .post(
            &format!("{page_of}/check-in"),
            &[
                ("csrf", &csrf),
                ("longitude", "121.5"),
                ("latitude", "31.2"),
            ],
        )
        .await;
    assert_eq!(far.status, 422);
    assert!(far.body.contains("from the station"), "{}", far.body);
    assert!(far.body.contains("value=\"121.5\""), "the input is kept");
    let on_site = repairer
        .post(
            &format!("{page_of}/check-in"),
            &[
                ("csrf", &csrf),
                ("longitude", "120.582"),
                ("latitude", "30.0"),
            ],
        )
        .await;
    assert_eq!(on_site.status, 303, "{}", on_site.body);
    let resolved = repairer
        .post(
            &format!("{page_of}/resolve"),
            &[
                ("csrf", &csrf),
                ("test_record", "replaced the gun lock; charged 5 min OK"),
            ],
        )
        .await;
    assert_eq!(resolved.status, 303, "{}", resolved.body);

    // REQ FAULT-8: the monitor confirms; the order closes and leaves the open list.
    let detail = monitor.get(&page_of).await;
    assert!(detail.body.contains("/confirm"), "{}", detail.body);
    let confirmed = monitor
        .post(&format!("{page_of}/confirm"), &[("csrf", &detail.csrf())])
        .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    assert_eq!(
        order_state(&mesh, &id).await,
        dp::WorkOrderState::Closed as i32
    );
    assert!(!monitor.get("/work-orders").await.body.contains(&id));
}

#[tokio::test]
async fn a_complaint_handler_sees_the_orders_but_is_offered_no_repair_steps() {
    let (mesh, addr) = console().await;
    let order = phone_work_order(
        mesh.anonymous_channel(),
        &token(&mesh, "monitor"),
        "S-OUT",
        "P2",
    )
    .await;
    let mut handler = Browser::new(addr);
    assert_eq!(sign_in(&mut handler, COMPLAINT_HANDLER).await.status, 303);
    let detail = handler
        .get(&format!("/work-orders/{}", order.order_id))
        .await;
    assert_eq!(detail.status, 200);
    assert!(!detail.body.contains("class=\"step\""), "{}", detail.body);
    // Even posting the step directly is refused by the gateway's policy, not the page.
    let csrf = detail.csrf();
    let tried = handler
        .post(
            &format!("/work-orders/{}/dispatch", order.order_id),
            &[("csrf", &csrf), ("crew", "R-001")],
        )
        .await;
    assert_eq!(tried.status, 403, "{}", tried.body);
    assert_eq!(
        order_state(&mesh, &order.order_id).await,
        dp::WorkOrderState::Received as i32
    );
}

#[tokio::test]
async fn the_console_speaks_chinese_by_default_switches_to_english_and_signs_out() {
    let (_mesh, addr) = console().await;
    let mut browser = Browser::new(addr);
    let signin = browser.get("/signin").await;
    assert!(signin.body.contains("<html lang=\"zh-CN\">"));
    assert!(signin.body.contains("王监控 — 监控员"));
    assert_eq!(sign_in(&mut browser, MONITOR).await.status, 303);
    let switched = browser.get("/lang/en?back=/work-orders").await;
    assert_eq!(
        (switched.status, switched.header("location")),
        (303, Some("/work-orders"))
    );
    let english = browser.get("/work-orders").await;
    assert!(english.body.contains("<html lang=\"en\">"));
    assert!(
        english.body.contains("Open work orders"),
        "{}",
        english.body
    );
    // Only this site's paths are gone back to.
    let away = browser.get("/lang/zh?back=//evil.example/").await;
    assert_eq!(away.header("location"), Some("/"));

    // Sign-out needs the token too, and ends the session.
    let csrf = english.csrf();
    assert_eq!(browser.post("/signout", &[]).await.status, 403);
    let out = browser.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    let after = browser.get("/work-orders").await;
    assert_eq!(after.header("location"), Some("/signin"));
}
