//! Sessions streamed by piles become exact orders, across a restart, and a platform start reaches
//! only a verified pile (REQ SETTLE-1, BASE-5).

use super::*;

#[tokio::test]
async fn settle_1_a_session_streamed_by_the_pile_becomes_an_exact_order_the_regulator_reads() {
    use chargemesh_proto::telemetry::v1 as tm;
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = setup(&clock).await;
    let mut pile = common::TelemetryStream::open(mesh.channel("operator")).await;
    let meter = |kwh: &str| {
        tm::telemetry_message::Body::Meter(tm::MeterSample {
            energy_kwh: kwh.into(),
            power_kw: 40.0,
            voltage: 500.0,
            current: 80.0,
            soc_percent: 55.0,
        })
    };
    pile.send(vec![
        message(
            1,
            "2026-11-20T16:30:00+08:00",
            tm::telemetry_message::Body::SessionStart(tm::SessionStart {
                authorization_ref: "card 0042".into(),
                meter_start_kwh: "1000.000".into(),
                connector_checked: true,
                charging_confirmed: true,
                ..Default::default()
            }),
        ),
        message(2, "2026-11-20T17:00:00+08:00", meter("1020.000")),
        // A resend of the same reading is not a second one.
        message(3, "2026-11-20T17:00:00+08:00", meter("1020.000")),
        message(
            4,
            "2026-11-20T17:30:00+08:00",
            tm::telemetry_message::Body::SessionEnd(tm::SessionEnd {
                meter_stop_kwh: "1040.000".into(),
                stop_reason: 2,
                end_confirmed: true,
                physically_separated: true,
                ..Default::default()
            }),
        ),
    ])
    .await;
    let ack = pile.next().await;
    assert!(
        matches!(ack, tm::connect_response::Body::Acknowledgement(ref a) if a.last_sequence == 4),
        "{ack:?}"
    );
    let mut regulator = metering(&mesh, "regulator");
    let orders = common::eventually(
        async || {
            regulator
                .list_charge_orders(pb::ListChargeOrdersRequest::default())
                .await
                .expect("listed")
                .into_inner()
                .orders
        },
        |orders| !orders.is_empty(),
    )
    .await;
    assert_eq!(orders.len(), 1);
    let order = &orders[0];
    assert_eq!(order.order_id.len(), 27);
    assert!(order.order_id.starts_with(OP));
    assert_eq!(order.recorded_by, "telemetry");
    assert_eq!(order.samples.len(), 3);
    assert_eq!(order.stop_reason, 2);
    assert!(order.billable);
    assert_eq!(
        (order.energy_kwh.as_str(), order.total_money.as_str()),
        ("40.000", "60.60")
    );
    assert!(order.steps.as_ref().is_some_and(|s| s.physically_separated));
    mesh.stop().await;
}

#[tokio::test]
async fn settle_1_a_session_running_across_a_restart_of_the_mesh_is_settled_whole() {
    use chargemesh_proto::telemetry::v1 as tm;
    let clock = ManualClock::new(chrono::Utc::now());
    let mut mesh = setup(&clock).await;
    let mut pile = common::TelemetryStream::open(mesh.channel("operator")).await;
    pile.send(vec![
        message(
            1,
            "2026-11-20T16:30:00+08:00",
            tm::telemetry_message::Body::SessionStart(tm::SessionStart {
                order_id: ORDER_1.into(),
                meter_start_kwh: "1000.000".into(),
                ..Default::default()
            }),
        ),
        message(
            2,
            "2026-11-20T17:00:00+08:00",
            tm::telemetry_message::Body::Meter(tm::MeterSample {
                energy_kwh: "1020.000".into(),
                power_kw: 40.0,
                voltage: 500.0,
                current: 80.0,
                soc_percent: -1.0,
            }),
        ),
    ])
    .await;
    pile.next().await;
    drop(pile);
    mesh.restart().await;
    let mut pile = common::TelemetryStream::open(mesh.channel("operator")).await;
    pile.send(vec![message(
        3,
        "2026-11-20T17:30:00+08:00",
        tm::telemetry_message::Body::SessionEnd(tm::SessionEnd {
            order_id: ORDER_1.into(),
            meter_stop_kwh: "1040.000".into(),
            ..Default::default()
        }),
    )])
    .await;
    pile.next().await;
    let mut platform = metering(&mesh, "operator");
    let order = common::eventually(
        async || {
            platform
                .get_charge_order(pb::GetChargeOrderRequest {
                    operator_id: OP.into(),
                    order_id: ORDER_1.into(),
                    version: 0,
                })
                .await
                .ok()
                .and_then(|r| r.into_inner().order)
        },
        Option::is_some,
    )
    .await
    .expect("the order");
    assert_eq!(
        order.samples.len(),
        3,
        "the reading before the restart is in it"
    );
    assert_eq!(order.total_money, "60.60");
    mesh.stop().await;
}

#[tokio::test]
async fn base_5_a_platform_start_on_an_unverified_meter_is_refused_and_a_verified_pile_is_told_to_start()
 {
    use chargemesh_proto::telemetry::v1 as tm;
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = setup(&clock).await;
    let mut pile = common::TelemetryStream::open(mesh.channel("operator")).await;
    let mut platform = metering(&mesh, "operator");
    let start = |pile: &str| pb::StartChargeRequest {
        operator_id: OP.into(),
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        authorization_ref: "app user 7".into(),
    };
    let refused = platform
        .start_charge(start("P2"))
        .await
        .expect_err("expired certificate");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("BASE-5"),
        "{}",
        refused.message()
    );
    let started = platform
        .start_charge(start("P1"))
        .await
        .expect("started")
        .into_inner();
    assert_eq!(started.order_id.len(), 27);
    // The command reaches the stream that reports for P1.
    let command = loop {
        if let tm::connect_response::Body::Command(command) = pile.next().await {
            break command;
        }
    };
    assert_eq!(
        (command.pile_id.as_str(), command.connector_id.as_str()),
        ("P1", "P1-1")
    );
    let Some(tm::pile_command::Action::StartCharge(order)) = command.action else {
        panic!("a start command: {command:?}");
    };
    assert_eq!(order.order_id, started.order_id);
    // The pile charges under that order id, and the order settles under it.
    pile.send(vec![
        message(
            1,
            "2026-11-20T17:40:00+08:00",
            tm::telemetry_message::Body::SessionStart(tm::SessionStart {
                order_id: order.order_id.clone(),
                authorization_ref: order.authorization_ref.clone(),
                meter_start_kwh: "1000.000".into(),
                ..Default::default()
            }),
        ),
        message(
            2,
            "2026-11-20T17:50:00+08:00",
            tm::telemetry_message::Body::SessionEnd(tm::SessionEnd {
                order_id: order.order_id.clone(),
                meter_stop_kwh: "1010.000".into(),
                ..Default::default()
            }),
        ),
    ])
    .await;
    let settled = common::eventually(
        async || {
            platform
                .get_charge_order(pb::GetChargeOrderRequest {
                    operator_id: OP.into(),
                    order_id: started.order_id.clone(),
                    version: 0,
                })
                .await
                .ok()
                .and_then(|r| r.into_inner().order)
        },
        Option::is_some,
    )
    .await
    .expect("the started order");
    // 10 kWh at peak: 9.80 + 8.00.
    assert_eq!(settled.total_money, "17.80");
    mesh.stop().await;
}
