//! A station's public page, without signing in (REQ SVC-1, SVC-2, SIGN-1, SIGN-2, CMP-2): the
//! operator, hours and hotline, the free connectors, the price board and the piles' parameters;
//! a driver's complaint lands in the desk's queue on its 24-hour clock; what a driver may send
//! is checked and limited per address.

use chargemesh_proto::telemetry::v1 as tm;

use super::common::{TelemetryStream, eventually};
use super::http::Browser;
use super::{COMPLAINT_HANDLER, console, console_with, sign_in, status};

const PAGE: &str = "/s/MA2D3K7Q0/S-URB";

#[tokio::test]
async fn svc_2_a_driver_sees_the_station_its_free_connectors_and_prices_and_complains() {
    let (mesh, addr) = console().await;
    let platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status(1, "P1", tm::ConnectorState::Idle, ("", ""))])
        .await;
    let mut driver = Browser::new(addr);
    let station = eventually(
        async || driver.get(PAGE).await,
        |page| page.body.contains("class=\"count\">1</strong>"),
    )
    .await;
    assert_eq!(station.status, 200, "{}", station.body);
    let body = &station.body;
    // REQ SVC-1: who runs it, when, and the hotline.
    assert!(body.contains("绍兴示范充电运营有限公司") && body.contains("00:00-24:00"));
    assert!(body.contains("tel:0575-88888888"), "{body}");
    // REQ SVC-2: the free connector.
    assert!(body.contains("class=\"count\">1</strong> / 1"), "{body}");
    // REQ SIGN-2: the board in force, electricity + service to 4 places.
    assert!(body.contains("1.2500"), "flat 0.6500 + 0.6000: {body}");
    // REQ SIGN-1: the pile's parameters, and nothing the sign does not say.
    assert!(body.contains("60 kW") && body.contains("GB/T 2015"));
    assert!(
        !body.contains("SN-P1"),
        "no serial numbers on a public page"
    );
    assert!(!body.contains("/signout"), "nobody is signed in");

    // The sign's QR code.
    let qr = driver.get(&format!("{PAGE}/qr.svg")).await;
    assert_eq!(qr.header("content-type"), Some("image/svg+xml"));
    assert!(qr.body.contains("<svg"));

    // REQ CMP-2: without the form's token nothing is filed and the words stay.
    let forged = driver
        .post(
            &format!("{PAGE}/complaint"),
            &[("category", "7"), ("description", "the canopy leaks")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        forged.body.contains("the canopy leaks"),
        "the input is kept"
    );
    let csrf = station.csrf();
    let empty = driver
        .post(
            &format!("{PAGE}/complaint"),
            &[
                ("csrf", &csrf),
                ("category", "7"),
                ("description", ""),
                ("customer_contact", "139"),
            ],
        )
        .await;
    assert_eq!(empty.status, 422);
    let filed = driver
        .post(
            &format!("{PAGE}/complaint"),
            &[
                ("csrf", &csrf),
                ("category", "7"),
                ("pile_id", "P1"),
                ("description", "the canopy leaks onto the gun"),
                ("customer_contact", "139 1234 5678"),
            ],
        )
        .await;
    assert_eq!(filed.status, 200, "{}", filed.body);
    assert!(
        filed.body.contains("CP-"),
        "the complaint's number: {}",
        filed.body
    );

    // REQ CMP-1: the desk sees it with its 24-hour clock running.
    let mut desk = Browser::new(addr);
    assert_eq!(sign_in(&mut desk, COMPLAINT_HANDLER).await.status, 303);
    let queue = desk.get("/complaints").await;
    let id_start = filed.body.find("CP-").expect("number");
    let id: String = filed.body[id_start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    assert!(queue.body.contains(&id), "{}", queue.body);
    let complaint = desk.get(&format!("/complaints/{id}")).await;
    assert!(complaint.body.contains("the canopy leaks onto the gun"));
    assert!(
        complaint.body.contains("data-due="),
        "the 24-hour clock runs"
    );
}

#[tokio::test]
async fn cmp_2_an_address_files_only_so_many_complaints_an_hour() {
    let (_mesh, addr) = console_with(|c| c.public_complaints_per_hour = 1).await;
    let mut driver = Browser::new(addr);
    let page = driver.get(PAGE).await;
    let csrf = page.csrf();
    let fields = [
        ("csrf", csrf.as_str()),
        ("category", "7"),
        ("description", "a suggestion"),
        ("customer_contact", "139 0000 0000"),
    ];
    let first = driver.post(&format!("{PAGE}/complaint"), &fields).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = driver.post(&format!("{PAGE}/complaint"), &fields).await;
    assert_eq!(second.status, 429);
    assert!(second.body.contains("a suggestion"), "the input is kept");
    // An unknown station has no page.
    assert_eq!(driver.get("/s/MA2D3K7Q0/NOPE").await.status, 404);
    assert_eq!(driver.get("/s/MA2D3K7Q0/..%2Fx").await.status, 404);
}
