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

/// A telemetry stream that the test drives by hand: what it sends, and its end.
async fn stream_of(
    channel: tonic::transport::Channel,
) -> (
    tokio::sync::mpsc::Sender<tm::ConnectRequest>,
    Result<tonic::Streaming<tm::ConnectResponse>, tonic::Status>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let opened = tm::telemetry_service_client::TelemetryServiceClient::new(channel)
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map(tonic::Response::into_inner);
    (tx, opened)
}

/// How the stream ends: the status of its end, after any answers.
async fn end_of(inbound: &mut tonic::Streaming<tm::ConnectResponse>) -> tonic::Status {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), inbound.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return tonic::Status::ok("ended"),
            Ok(Err(status)) => return status,
            Err(_) => panic!("the stream neither answered nor ended"),
        }
    }
}

fn heartbeat(sequence: u64) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        pile_id: "P1".into(),
        connector_id: "P1-1".into(),
        observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
        body: Some(tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {})),
        ..Default::default()
    }
}

#[tokio::test]
async fn netsec_1_an_oversized_telemetry_frame_is_refused_from_its_bytes_before_it_is_decoded() {
    let mesh = TestMesh::start_with_options(|opts| {
        opts.config.gateway.limits.telemetry_batch = 100;
        opts.config.gateway.limits.telemetry_frame_bytes = 64 * 1024;
    })
    .await;
    common::two_station_fleet(&mesh).await;
    // 20,000 empty messages: 40 KB, within the bytes, far over the batch.
    let (tx, opened) = stream_of(mesh.channel("operator")).await;
    let mut inbound = opened.expect("opened");
    tx.send(tm::ConnectRequest {
        messages: vec![tm::TelemetryMessage::default(); 20_000],
    })
    .await
    .expect("sent");
    let refused = end_of(&mut inbound).await;
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains("gateway.limits.telemetry_batch (100)"),
        "{}",
        refused.message()
    );
    // A 4 MiB frame of tiny messages: refused from its header, whatever it holds.
    let (tx, opened) = stream_of(mesh.channel("operator")).await;
    let mut inbound = opened.expect("opened");
    tx.send(tm::ConnectRequest {
        messages: vec![heartbeat(1); 40_000],
    })
    .await
    .expect("sent");
    let refused = end_of(&mut inbound).await;
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("telemetry_frame_bytes"),
        "{}",
        refused.message()
    );
    // A batch within the limits is taken as ever, on a new stream.
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform.send((1..=100).map(heartbeat).collect()).await;
    match platform.next().await {
        tm::connect_response::Body::Acknowledgement(ack) => {
            assert_eq!((ack.first_sequence, ack.last_sequence), (1, 100));
        }
        other => panic!("{other:?}"),
    }
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_a_principal_holds_its_limit_of_streams_connections_and_calls_and_no_more() {
    let mesh = TestMesh::start_with_options(|opts| {
        opts.config.gateway.limits.streams_per_principal = 2;
        opts.config.gateway.limits.connections_per_principal = 3;
        opts.config.gateway.limits.calls_per_second = 1;
        opts.config.gateway.limits.call_burst = 6;
    })
    .await;
    // Streams: two, on one connection; the third is refused naming the limit.
    let channel = mesh.channel("pile");
    let (_tx1, first) = stream_of(channel.clone()).await;
    let (_tx2, second) = stream_of(channel.clone()).await;
    let (mut first, _second) = (first.expect("first"), second.expect("second"));
    let (_tx3, third) = stream_of(channel.clone()).await;
    let refused = third.expect_err("a third stream");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("gateway.limits.streams_per_principal (2)"),
        "{}",
        refused.message()
    );
    // A stream closed gives its place back.
    drop(_tx1);
    let _ = end_of(&mut first).await;
    drop(first);
    let (_tx4, fourth) = common::eventually(
        async || stream_of(channel.clone()).await,
        |(_, opened)| opened.is_ok(),
    )
    .await;
    fourth.expect("a place came back");

    // Calls: a burst of six (with the four streams), then one a second.
    let mut asset = mesh.client("regulator");
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(
            asset
                .list_stations(chargemesh_proto::asset::v1::ListStationsRequest::default())
                .await
                .map(|_| ())
                .map_err(|s| (s.code(), s.message().to_owned())),
        );
    }
    let refused = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .next()
        .expect("one refused");
    assert_eq!(refused.0, tonic::Code::ResourceExhausted);
    assert!(
        refused.1.contains("gateway.limits.calls_per_second (1)"),
        "{}",
        refused.1
    );
    assert!(outcomes[0].is_ok(), "the burst lets the first through");

    // Connections: three of the operator's certificate; calls on a fourth are refused.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut client = mesh.client("operator");
        client
            .list_operators(chargemesh_proto::asset::v1::ListOperatorsRequest::default())
            .await
            .expect("within the limit");
        held.push(client);
    }
    let over = mesh
        .client("operator")
        .list_operators(chargemesh_proto::asset::v1::ListOperatorsRequest::default())
        .await
        .expect_err("a fourth connection");
    assert_eq!(over.code(), tonic::Code::ResourceExhausted);
    assert!(
        over.message()
            .contains("gateway.limits.connections_per_principal (3)"),
        "{}",
        over.message()
    );
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_a_client_that_never_finishes_its_handshake_is_disconnected() {
    use tokio::io::AsyncReadExt as _;
    let mesh = TestMesh::start_with_options(|opts| {
        opts.config.gateway.limits.handshake_timeout_ms = 300;
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", mesh.gateway_port()))
        .await
        .expect("tcp");
    let mut buf = [0_u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), silent.read(&mut buf))
        .await
        .expect("closed within the handshake timeout, long before the test's patience");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_messages_past_the_components_batch_limit_get_one_answer_not_one_each() {
    let mesh = TestMesh::start_with_options(|opts| {
        // The gateway lets the batch through; the component holds its own limit.
        opts.config.gateway.limits.telemetry_batch = 100_000;
        opts.config.telemetry.settings.max_batch = 10;
    })
    .await;
    common::two_station_fleet(&mesh).await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform.send((1..=5_000).map(heartbeat).collect()).await;
    let mut rejections = Vec::new();
    let mut acknowledged = None;
    while acknowledged.is_none() {
        match platform.next().await {
            tm::connect_response::Body::Acknowledgement(ack) => {
                acknowledged = Some((ack.first_sequence, ack.last_sequence));
            }
            tm::connect_response::Body::Rejection(r) => rejections.push(r),
            _ => {}
        }
    }
    assert_eq!(acknowledged, Some((1, 10)), "the first ten are taken");
    assert_eq!(rejections.len(), 1, "one answer for the rest");
    assert_eq!(rejections[0].sequence, 11);
    assert!(
        rejections[0].reason.contains("4989 after it"),
        "{}",
        rejections[0].reason
    );
    mesh.stop().await;
}

/// Thousands of unary calls through the gateway over one connection each succeed: the gateway
/// ends each request with its last DATA frame, so the component never has to reset a request
/// it already answered (HTTP/2 servers close a connection that makes them reset too many, and
/// every call on it then failed UNAVAILABLE).
#[tokio::test]
async fn many_unary_calls_through_the_gateway_all_succeed() {
    use chargemesh_proto::asset::v1 as asset;
    let mesh = TestMesh::start().await;
    let mut client = mesh.client("operator");
    for n in 0..1_500 {
        let result = client
            .list_stations(asset::ListStationsRequest {
                operator_id: chargemesh::pki::DEMO_OPERATOR_ID.into(),
                ..Default::default()
            })
            .await;
        assert!(result.is_ok(), "call {n}: {result:?}");
    }
    mesh.stop().await;
}

/// A connection to the gateway with `config`, and whether its TLS session was resumed.
async fn gateway_connection(
    mesh: &TestMesh,
    config: Arc<rustls::ClientConfig>,
) -> (
    rustls::HandshakeKind,
    chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient<
        tonic::transport::Channel,
    >,
) {
    let stream = common::tls_to(mesh.gateway_port(), config)
        .await
        .expect("handshake");
    let kind = stream.get_ref().1.handshake_kind().expect("handshaken");
    let stream = std::sync::Mutex::new(Some(stream));
    let channel = tonic::transport::Endpoint::from_static("https://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let stream = stream.lock().expect("lock").take();
            async move {
                stream
                    .map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("one connection only"))
            }
        }))
        .await
        .expect("channel");
    (
        kind,
        chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient::new(channel),
    )
}

#[tokio::test]
async fn a_client_back_after_a_gateway_restart_resumes_its_tls_session_as_the_same_principal() {
    let mut mesh = TestMesh::start().await;
    let files = mesh.pki_files("operator");
    let config = Arc::new(common::resuming_client(
        &files.ca_file,
        &files.cert_file,
        &files.key_file,
    ));
    let list = chargemesh_proto::asset::v1::ListOperatorsRequest::default;
    let (kind, mut client) = gateway_connection(&mesh, config.clone()).await;
    assert_eq!(kind, rustls::HandshakeKind::Full);
    client.list_operators(list()).await.expect("the operator");
    // The gateway process is gone and a new one serves; the ticket key is on disk, as a
    // Secret every replica mounts.
    mesh.restart().await;
    let (kind, mut client) = gateway_connection(&mesh, config).await;
    assert_eq!(kind, rustls::HandshakeKind::Resumed);
    client
        .list_operators(list())
        .await
        .expect("the resumed session is the operator's");
    // Without the certificate the session carries, the same call is refused.
    let anonymous = chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient::new(
        mesh.anonymous_channel(),
    )
    .list_operators(list())
    .await
    .expect_err("no principal");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    mesh.stop().await;
}
