//! The gateway itself: unknown methods, health and reflection, deadlines, and a metric for every
//! call.

use super::*;

#[tokio::test]
async fn the_gateway_answers_unknown_methods_health_and_reflection() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel("operator");
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let unknown = grpc
        .unary::<(), (), _>(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static(
                "/chargemesh.asset.v1.AssetService/DeleteEverything",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(
        unknown.map_err(|s| s.code()).err(),
        Some(Code::Unimplemented)
    );

    use tonic_reflection::pb::v1 as reflection;
    let mut reflect =
        reflection::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let ask = reflection::ServerReflectionRequest {
        message_request: Some(
            reflection::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
        ..Default::default()
    };
    let mut answers = reflect
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    let Some(reflection::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "chargemesh.asset.v1.AssetService"),
        "generic clients discover the API: {list:?}"
    );

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    mesh.stop().await;
}

#[tokio::test]
async fn deadlines_propagate_through_the_gateway() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    let mut request = tonic::Request::new(pb::ListStationsRequest::default());
    request.set_timeout(std::time::Duration::from_secs(5));
    op.list_stations(request)
        .await
        .expect("a generous deadline is met");
    let mut request = tonic::Request::new(pb::ListStationsRequest::default());
    request.set_timeout(std::time::Duration::from_nanos(1));
    let status = op
        .list_stations(request)
        .await
        .expect_err("an impossible deadline fails");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn every_call_is_counted_by_method_and_code_with_its_latency() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    op.create_operator(pb::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("created");
    let missing = op
        .get_station(pb::GetStationRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            station_id: "NOPE".into(),
        })
        .await
        .expect_err("no such station");
    assert_eq!(missing.code(), Code::NotFound);
    let text = chargemesh_kit::metrics::encode();
    for expected in [
        "chargemesh_rpc_requests_total{method=\"/chargemesh.asset.v1.AssetService/CreateOperator\",code=\"OK\"}",
        "chargemesh_rpc_requests_total{method=\"/chargemesh.asset.v1.AssetService/GetStation\",code=\"NOT_FOUND\"}",
        "chargemesh_rpc_duration_seconds_count{method=\"/chargemesh.asset.v1.AssetService/GetStation\"}",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    mesh.stop().await;
}
