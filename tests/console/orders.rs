//! Abnormal transactions from the console (REQ MON-9): a flagged order shown with what raised
//! its flag, and the monitor's verification recorded as a new version.

use chargemesh_proto::metering::v1 as mt;

use super::http::Browser;
use super::{MONITOR, OP, console, sign_in};

#[tokio::test]
async fn mon_9_the_monitor_verifies_a_flagged_order_and_it_leaves_the_list() {
    let (mesh, addr) = console().await;
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    let at = |minutes: i64| {
        Some(chargemesh_kit::time::to_timestamp(
            start + chrono::Duration::minutes(minutes),
        ))
    };
    let order_id = format!("{OP}000000000000000777");
    // A session that delivered nothing: flagged ZERO_ENERGY.
    mt::metering_service_client::MeteringServiceClient::new(mesh.channel("operator"))
        .report_charge_order(mt::ReportChargeOrderRequest {
            operator_id: OP.into(),
            order_id: order_id.clone(),
            station_id: "S-URB".into(),
            pile_id: "P1".into(),
            connector_id: "P1-1".into(),
            start_time: at(0),
            end_time: at(30),
            stop_reason: 0,
            samples: vec![
                mt::MeterSample {
                    sample_time: at(0),
                    register_kwh: "100.000".into(),
                },
                mt::MeterSample {
                    sample_time: at(30),
                    register_kwh: "100.000".into(),
                },
            ],
            steps: None,
            reported_energy_kwh: String::new(),
            reported_total_money: String::new(),
        })
        .await
        .expect("order kept");
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let page = monitor.get("/orders").await;
    assert!(
        page.body.contains(&order_id) && page.body.contains("零电量"),
        "{}",
        page.body
    );
    // A reading that is not one is refused with the API's reason, the input kept.
    let bad = monitor
        .post(
            &format!("/orders/{order_id}/verify"),
            &[
                ("csrf", &page.csrf()),
                ("reason", "meter photo"),
                ("stop_kwh", "lots"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("value=\"lots\""));
    let verified = monitor
        .post(
            &format!("/orders/{order_id}/verify"),
            &[
                ("csrf", &page.csrf()),
                (
                    "reason",
                    "the driver unplugged at once; the site camera shows it",
                ),
            ],
        )
        .await;
    assert_eq!(verified.status, 303, "{}", verified.body);
    let after = monitor.get("/orders").await;
    assert!(
        !after.body.contains(&order_id),
        "verified normal, no longer flagged: {}",
        after.body
    );
}
