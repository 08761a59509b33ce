//! The admin listener Kubernetes probes: plaintext gRPC health, SERVING while the component
//! serves, NOT_SERVING once it is told to stop.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn the_admin_port_answers_plaintext_health_and_turns_not_serving_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(chargemesh_kit::server::serve_admin(
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_millis(500),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("plaintext h2c, as kubelet probes");
    let mut health = HealthClient::new(channel);
    let status = |r: tonic::Response<tonic_health::pb::HealthCheckResponse>| r.into_inner().status;
    let serving = health
        .check(HealthCheckRequest::default())
        .await
        .map(status)
        .expect("checked");
    assert_eq!(serving, ServingStatus::Serving as i32);
    stop.send(()).expect("stop");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let draining = health
        .check(HealthCheckRequest::default())
        .await
        .map(status)
        .expect("checked while lingering");
    assert_eq!(draining, ServingStatus::NotServing as i32);
    server.await.expect("joined").expect("stopped cleanly");
}
