//! The regulator of the area sees the orders; no other regulator or operator does.

use super::*;

#[tokio::test]
async fn the_regulator_of_the_area_sees_the_orders_and_no_other_regulator_or_operator_does() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = setup(&clock).await;
    metering(&mesh, "operator")
        .report_charge_order(session(ORDER_1, "P1"))
        .await
        .expect("reported");
    let list = pb::ListChargeOrdersRequest::default();
    let own = metering(&mesh, "operator")
        .list_charge_orders(list.clone())
        .await
        .expect("own orders")
        .into_inner()
        .orders;
    assert_eq!(own.len(), 1);
    // A regulator catching up asks for what changed since its last look.
    let later = metering(&mesh, "regulator")
        .list_charge_orders(pb::ListChargeOrdersRequest {
            updated_since: ts("2026-11-20T19:00:00+08:00"),
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner()
        .orders;
    assert!(later.is_empty(), "recorded at 18:00");
    let seen = metering(&mesh, "regulator")
        .list_charge_orders(list.clone())
        .await
        .expect("listed")
        .into_inner()
        .orders;
    assert_eq!(
        seen.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(),
        [ORDER_1]
    );
    // The same through the regulator API, as a regulator platform integrates it.
    let mut regulator_api =
        chargemesh_proto::regulator::v2::order_service_client::OrderServiceClient::new(
            mesh.channel("regulator"),
        );
    let through_api = regulator_api
        .list_charge_orders(chargemesh_proto::regulator::v2::ListChargeOrdersRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .orders;
    assert_eq!(through_api, seen);
    let mut hangzhou = MeteringServiceClient::new(mesh.channel_with(&mesh.identity(
        &mesh.ca,
        &Principal::Regulator {
            area_code: "330100".into(),
        },
        -1,
        30,
    )));
    assert!(
        hangzhou
            .list_charge_orders(list)
            .await
            .expect("listed")
            .into_inner()
            .orders
            .is_empty()
    );
    let hidden = hangzhou
        .get_charge_order(pb::GetChargeOrderRequest {
            operator_id: OP.into(),
            order_id: ORDER_1.into(),
            version: 0,
        })
        .await
        .expect_err("another area");
    assert_eq!(hidden.code(), Code::NotFound);
    let mut other_operator = MeteringServiceClient::new(mesh.channel_with(&mesh.identity(
        &mesh.ca,
        &Principal::Operator {
            operator_id: "MA2BCDEF3".into(),
        },
        -1,
        30,
    )));
    let hidden = other_operator
        .get_charge_order(pb::GetChargeOrderRequest {
            operator_id: OP.into(),
            order_id: ORDER_1.into(),
            version: 0,
        })
        .await
        .expect_err("another operator");
    assert_eq!(hidden.code(), Code::NotFound);
    let none = other_operator
        .list_charge_orders(pb::ListChargeOrdersRequest::default())
        .await
        .expect("own list")
        .into_inner()
        .orders;
    assert!(none.is_empty());
    mesh.stop().await;
}
