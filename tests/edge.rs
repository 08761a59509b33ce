//! The edge under failures and hostile clients: what a client sees when the component behind
//! its call goes away, and what the gateway refuses to hold.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chargemesh_proto::telemetry::v1 as tm;
use common::{Switch, TelemetryStream, TestMesh};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_component_goes_away_ends_unavailable_not_internal() {
    let switch = Arc::new(Switch::start().await);
    let url = switch.url();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.config.telemetry.settings.offline_after_seconds = 24 * 3600;
        // The gateway reaches telemetry through a switch the test holds.
        opts.rewire = Some(Arc::new(move |c| {
            c.gateway.upstreams.insert("telemetry".into(), url.clone());
        }));
    })
    .await;
    switch.point_to(mesh.mesh.as_ref().expect("running").addrs["telemetry"]);
    switch.on();
    common::two_station_fleet(&mesh).await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![tm::TelemetryMessage {
            sequence: 1,
            pile_id: "P1".into(),
            connector_id: "P1-1".into(),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {})),
            ..Default::default()
        }])
        .await;
    let _ = platform.next().await;
    // The component goes away under the open stream.
    switch.off();
    let ended = tokio::time::timeout(Duration::from_secs(10), platform.inbound.message())
        .await
        .expect("the stream ends");
    let status = ended.expect_err("with an error status");
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "retryable, not {status:?}"
    );
    // A new call while it is away is refused the same way.
    let refused =
        chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient::new(
            mesh.channel("operator"),
        )
        .list_link_states(tm::ListLinkStatesRequest {
            operator_id: chargemesh::pki::DEMO_OPERATOR_ID.into(),
            station_id: "S-URB".into(),
            day: String::new(),
        })
        .await
        .expect_err("away");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    mesh.stop().await;
}

/// Counts the method labels of the gRPC call metrics that are not methods of ours.
fn made_up_labels() -> Vec<String> {
    chargemesh_kit::metrics::encode()
        .lines()
        .filter(|l| l.starts_with("chargemesh_rpc_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1))
        .filter_map(|l| l.split('"').next())
        .filter(|m| chargemesh_kit::metrics::method_label(m) != *m)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netsec_1_random_paths_from_an_unauthenticated_client_add_one_metric_series() {
    let mesh = TestMesh::start().await;
    let channel = mesh.anonymous_channel();
    let mut grpc = tonic::client::Grpc::new(channel);
    for n in 0..10_000u32 {
        grpc.ready().await.expect("ready");
        let path: http::uri::PathAndQuery = format!("/x{n}.Svc/M{}", n * 7919 % 10_007)
            .parse()
            .expect("path");
        let refused = grpc
            .unary(
                tonic::Request::new(()),
                path,
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await
            .expect_err("no such method");
        assert_eq!(refused.code(), tonic::Code::Unimplemented);
    }
    let labels = made_up_labels();
    assert!(
        labels.iter().all(|l| l == "unknown"),
        "made-up paths became labels: {:?}",
        &labels[..labels.len().min(5)]
    );
    let series = chargemesh_kit::metrics::encode()
        .lines()
        .filter(|l| l.starts_with("chargemesh_rpc_requests_total{method=\"unknown\""))
        .count();
    assert!(series <= 2, "one series per code at most: {series}");
    mesh.stop().await;
}
