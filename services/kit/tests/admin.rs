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
    // The metrics, over HTTP/1.1 on the same port, as Prometheus scrapes them.
    chargemesh_kit::metrics::breach("FAULT-5");
    let scraped = scrape(addr).await;
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(
        scraped.contains("chargemesh_sla_breaches_total{rule=\"FAULT-5\"} 1"),
        "{scraped}"
    );
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

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.expect("response");
    body
}
