//! The T/CEC 102 edge against clients that misbehave on purpose (REQ NETSEC-1): bodies larger
//! than the limit, whether declared or streamed; clients too slow for the handshake, the headers
//! or the body; more connections than the cap; unauthenticated requests that must not be read.
//! And across gateway replicas: a Seq replayed to another replica is refused, and a token stays
//! good on a replica with another (rotated) certificate.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use chargemesh::pki;
use chargemesh_cec::Ret;
use chargemesh_cec::client::Https;
use chargemesh_cec::edge::CecConfig;
use chargemesh_kit::Principal;
use chargemesh_kit::clock::ManualClock;
use chargemesh_kit::events::SharedBus;
use chargemesh_kit::tls::{self, TlsFiles};
use common::cec::{
    Replica, SHAOXING, cec_config, client, client_at, edge_port, mesh_with, raw_tls,
};
use common::{TD, TestMesh};

/// How long any refusal may take to show before the test calls it missing: far above every
/// limit the tests configure, so only a missing behaviour fails.
const PATIENCE: Duration = Duration::from_secs(15);

/// The status of the response on `stream`, or `None` when it closed without one.
async fn status_of(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<u16> {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            Ok(_) => break,
            Err(_) => panic!("no answer and no close within {PATIENCE:?}"),
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Whether the server closed `stream` (read returns end of file or an error) within patience.
async fn closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
    let mut buf = [0_u8; 1024];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn head(path: &str, extra: &str) -> Vec<u8> {
    format!("POST /evcs/v1/{path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n").into_bytes()
}

/// Writes `total` bytes of body in 1 MiB chunks until done or the server stops taking them;
/// returns how many it took.
async fn write_body(mut writer: impl tokio::io::AsyncWrite + Unpin, total: usize) -> usize {
    let chunk = vec![b'x'; 1 << 20];
    let mut written = 0;
    while written < total {
        match tokio::time::timeout(PATIENCE, writer.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            _ => break,
        }
    }
    written
}

#[tokio::test]
async fn netsec_1_a_body_over_the_limit_is_refused_as_it_arrives_declared_or_streamed() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_with(&clock, |c| c.max_body_bytes = 64 * 1024).await;
    let port = edge_port(&mesh);

    // 400 MiB declared, to the one interface that needs no token: 413 at once, the body unread.
    let stream = raw_tls(&mesh, port).await.expect("tls");
    let (mut reader, mut writer) = tokio::io::split(stream);
    writer
        .write_all(&head("query_token", "Content-Length: 419430400\r\n"))
        .await
        .expect("head");
    let sender = tokio::spawn(async move { write_body(writer, 400 << 20).await });
    assert_eq!(status_of(&mut reader).await, Some(413));
    assert!(closed(&mut reader).await, "the connection ends");
    let taken = sender.await.expect("writer");
    assert!(
        taken < 64 << 20,
        "the edge stopped taking the body: {taken} bytes went before the connection closed"
    );

    // Streamed in chunks with no length: 413 once the limit is passed.
    let stream = raw_tls(&mesh, port).await.expect("tls");
    let (mut reader, mut writer) = tokio::io::split(stream);
    writer
        .write_all(&head("query_token", "Transfer-Encoding: chunked\r\n"))
        .await
        .expect("head");
    let sender = tokio::spawn(async move {
        let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "y".repeat(16 * 1024));
        let mut sent = 0;
        while sent < 400 << 20 {
            if writer.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    assert_eq!(status_of(&mut reader).await, Some(413));
    assert!(closed(&mut reader).await);
    assert!(sender.await.expect("writer") < 64 << 20);

    // Without a token, an interface that needs one is refused before a byte of body is read.
    let stream = raw_tls(&mesh, port).await.expect("tls");
    let (mut reader, mut writer) = tokio::io::split(stream);
    writer
        .write_all(&head(
            "query_stations_info",
            "Content-Length: 419430400\r\n",
        ))
        .await
        .expect("head");
    let sender = tokio::spawn(async move { write_body(writer, 400 << 20).await });
    assert_eq!(status_of(&mut reader).await, Some(200));
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut rest)).await;
    let answer: serde_json::Value = serde_json::from_slice(&rest).expect("a T/CEC answer");
    assert_eq!(answer["Ret"], 4002, "{answer}");
    assert!(sender.await.expect("writer") < 64 << 20);
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_clients_too_slow_for_the_handshake_headers_or_body_are_disconnected() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_with(&clock, |c| {
        c.handshake_timeout_ms = 300;
        c.header_timeout_ms = 300;
        c.body_timeout_ms = 300;
    })
    .await;
    let port = edge_port(&mesh);

    // Connected, never starting TLS.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("tcp");
    assert!(closed(&mut silent).await, "no handshake: closed");

    // Half a request head, then nothing.
    let mut half = raw_tls(&mesh, port).await.expect("tls");
    half.write_all(b"POST /evcs/v1/query_token HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("half a head");
    assert!(closed(&mut half).await, "half a head: closed");

    // A whole head promising 1,000 bytes of body, then ten of them.
    let mut short = raw_tls(&mesh, port).await.expect("tls");
    short
        .write_all(&head("query_token", "Content-Length: 1000\r\n"))
        .await
        .expect("head");
    short.write_all(b"{\"Operato").await.expect("some body");
    assert_eq!(status_of(&mut short).await, Some(408));
    assert!(closed(&mut short).await);

    // A whole request answered, then the kept-alive connection left idle.
    let mut idle = raw_tls(&mesh, port).await.expect("tls");
    idle.write_all(&head("query_token", "Content-Length: 2\r\n"))
        .await
        .expect("head");
    idle.write_all(b"{}").await.expect("body");
    assert_eq!(status_of(&mut idle).await, Some(200));
    assert!(
        closed(&mut idle).await,
        "an idle kept-alive connection: closed"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_connections_beyond_the_cap_are_closed_and_a_freed_place_is_reused() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_with(&clock, |c| c.max_connections = 3).await;
    let port = edge_port(&mesh);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(raw_tls(&mesh, port).await.expect("within the cap"));
    }
    assert!(
        raw_tls(&mesh, port).await.is_err(),
        "a fourth connection is closed before its handshake"
    );
    drop(open.pop());
    let reused = common::eventually(async || raw_tls(&mesh, port).await.is_ok(), |ok| *ok).await;
    assert!(reused, "the freed place takes a new connection");
    drop(open);
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_a_request_without_a_token_is_refused_before_its_body_is_parsed() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_with(&clock, |_| {}).await;
    let https = Https::new(tls::anonymous_client_config(&mesh.pki().ca()).expect("tls"));
    let url = format!(
        "https://127.0.0.1:{}/evcs/v1/query_stations_info",
        edge_port(&mesh)
    );
    // Not even JSON: read, it would be a 4003; unread, it is the missing token's 4002.
    for bearer in [None, Some("v1.SXJG00001.99999999999.00")] {
        let (status, body) = https
            .post(&url, bearer, b"{{{{ not an envelope".to_vec())
            .await
            .expect("answer");
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            (status, answer["Ret"].as_i64()),
            (200, Some(4002)),
            "{answer}"
        );
    }
    mesh.stop().await;
}

/// Two replicas' stores of used Seqs: the mesh's own bus, and Redis when the suite has one.
async fn shared_stores(mesh: &TestMesh) -> Vec<(&'static str, SharedBus, SharedBus)> {
    let bus = mesh.mesh.as_ref().expect("running").bus.clone();
    let mut stores = vec![("the mesh's bus", bus.clone(), bus)];
    if let Ok(url) = std::env::var("CHARGEMESH_TEST_REDIS_URL")
        && !url.is_empty()
    {
        let prefix = format!("test-{}:", uuid::Uuid::now_v7().simple());
        let a = chargemesh_kit::events::connect(&url, &prefix)
            .await
            .expect("redis");
        let b = chargemesh_kit::events::connect(&url, &prefix)
            .await
            .expect("redis");
        stores.push(("redis", a, b));
    }
    stores
}

#[tokio::test]
async fn base_2_a_seq_used_on_one_replica_is_refused_on_another() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_with(&clock, |_| {}).await;
    let key_file = mesh
        .mesh
        .as_ref()
        .expect("running")
        .config
        .gateway
        .cec
        .token_key_file
        .clone();
    for (name, first_store, second_store) in shared_stores(&mesh).await {
        let config = CecConfig {
            token_key_file: key_file.clone(),
            ..cec_config()
        };
        let files = mesh.pki_files("gateway");
        let a = Replica::start(&mesh, &clock, config.clone(), files.clone(), first_store).await;
        let b = Replica::start(&mesh, &clock, config, files, second_store).await;
        let to_a = client_at(&mesh, &clock, "sx", SHAOXING, a.port);
        let to_b = client_at(&mesh, &clock, "sx", SHAOXING, b.port);
        let ask = to_a.seal(&json!({"OperatorID": SHAOXING, "OperatorSecret": "sxop-secret-0000"}));
        let first = to_a.send("query_token", &ask, None).await.expect("answer");
        assert_eq!(first.ret, 0, "{name}");
        let replayed = to_b.send("query_token", &ask, None).await.expect("answer");
        assert_eq!(
            replayed.ret, 4003,
            "{name}: the same Seq on another replica"
        );
        a.stop().await;
        b.stop().await;
    }
    mesh.stop().await;
}

#[tokio::test]
async fn base_2_a_token_stays_good_on_a_replica_whose_certificate_was_rotated() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_with(&clock, |_| {}).await;
    let running = mesh.mesh.as_ref().expect("running");
    // A new gateway certificate and key, as cert-manager's renewal makes them.
    let now = time::OffsetDateTime::now_utc();
    let pair = mesh
        .ca
        .issue(
            &Principal::Service {
                name: "gateway".into(),
            },
            TD,
            &["localhost", "127.0.0.1"],
            now - time::Duration::days(1),
            now + time::Duration::days(30),
        )
        .expect("issue");
    let dir = mesh.dir.join("rotated");
    std::fs::create_dir_all(&dir).expect("dir");
    pki::write_pair(&dir, "gateway", &pair).expect("write");
    let rotated = TlsFiles {
        ca_file: mesh.pki().ca(),
        cert_file: dir.join("gateway.pem"),
        key_file: dir.join("gateway.key"),
        crl_file: None,
        ticket_key_file: None,
    };
    let replica = Replica::start(
        &mesh,
        &clock,
        CecConfig {
            token_key_file: running.config.gateway.cec.token_key_file.clone(),
            ..cec_config()
        },
        rotated,
        Arc::new(chargemesh_kit::events::InProcessBus::new()),
    )
    .await;
    let token = client(&mesh, &clock, "sx", SHAOXING)
        .fetch_token()
        .await
        .expect("a token before the rotation");
    let there = client_at(&mesh, &clock, "sx", SHAOXING, replica.port);
    let answer = there
        .send(
            "query_stations_info",
            &there.seal(&json!({"PageNo": 1})),
            Some(&token),
        )
        .await
        .expect("answer");
    assert_eq!(
        there.open(&answer).expect("opened").0,
        Ret::Ok,
        "the token is good under the rotated certificate"
    );
    replica.stop().await;
    mesh.stop().await;
}
