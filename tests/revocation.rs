//! Revoked credentials stop working (REQ NETSEC-1): a client certificate on the CA's revocation
//! list is refused at the gateway, a list that changes is read again without a restart, a
//! session resumed from a TLS ticket has its certificate checked again, and a staff token that
//! claims a platform role for an operator is refused at the edge.

mod common;

use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

use chargemesh::pki::{self, Authority, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_kit::tls::{self, ClientAuth, ReloadingServerConfig, TlsFiles};
use chargemesh_proto::asset::v1 as pb;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use common::{TD, TestMesh, with_token};

fn operator() -> Principal {
    Principal::Operator {
        operator_id: DEMO_OPERATOR_ID.into(),
    }
}

/// A new certificate for `principal` from the CA in `dir`, written there as `name`.
fn issue(dir: &std::path::Path, name: &str, principal: &Principal) -> TlsFiles {
    let ca = Authority::load(dir).expect("ca");
    pki::write_pair(
        dir,
        name,
        &ca.issue_for_days(principal, TD, &["localhost", "127.0.0.1"], 30)
            .expect("issue"),
    )
    .expect("write");
    TlsFiles {
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join(format!("{name}.pem")),
        key_file: dir.join(format!("{name}.key")),
        crl_file: None,
        ticket_key_file: None,
    }
}

#[tokio::test]
async fn netsec_1_a_revoked_client_certificate_is_refused_at_the_gateway() {
    let mut revoked = None;
    let mesh = TestMesh::start_with_options(|opts| {
        let dir = opts.data_dir.join("pki");
        let files = issue(&dir, "revoked-operator", &operator());
        let crl = pki::revoke(&dir, std::slice::from_ref(&files.cert_file), 30).expect("revoke");
        opts.config.gateway.tls.crl_file = Some(crl);
        revoked = Some(files);
    })
    .await;
    let list = |mut c: AssetServiceClient<tonic::transport::Channel>| async move {
        c.list_operators(pb::ListOperatorsRequest::default()).await
    };
    list(mesh.client("operator"))
        .await
        .expect("a certificate not on the list");
    let refused = list(mesh.client_with_files(&revoked.expect("issued")))
        .await
        .expect_err("a revoked certificate");
    assert_ne!(refused.code(), Code::Ok);
    mesh.stop().await;
}

/// Serves TLS on 127.0.0.1 with `server`'s current configuration for each connection, answering
/// "ok" once the handshake is done.
async fn echo_server(server: ReloadingServerConfig) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = tokio_rustls::TlsAcceptor::from(server.current());
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(tcp).await {
                    let _ = stream.write_all(b"ok").await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    port
}

/// Whether a client with `files` gets through the handshake and hears "ok".
async fn admitted(files: &TlsFiles, port: u16) -> bool {
    let mut config = tls::client_config(files).expect("client");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let Ok(mut stream) = connector.connect(name, tcp).await else {
        return false;
    };
    let mut heard = Vec::new();
    stream.read_to_end(&mut heard).await.is_ok() && heard == b"ok"
}

#[tokio::test]
async fn netsec_1_a_revocation_list_that_changes_is_read_again_without_a_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("cm-crl-{}", uuid::Uuid::now_v7().simple()));
    pki::init_with(&Authority::new("test CA").expect("ca"), &dir, TD).expect("pki");
    let alice = issue(&dir, "alice", &operator());
    let bob = issue(&dir, "bob", &operator());
    // Served with an empty list at first.
    let crl = pki::revoke(&dir, &[], 30).expect("empty list");
    let server = ReloadingServerConfig::load(
        TlsFiles {
            crl_file: Some(crl),
            ..TlsFiles::in_dir(&dir, "gateway")
        },
        ClientAuth::Required,
    )
    .expect("server");
    let port = echo_server(server.clone()).await;
    assert!(admitted(&alice, port).await && admitted(&bob, port).await);
    // Alice's key is lost: she is revoked; the listener reads the new list.
    std::thread::sleep(std::time::Duration::from_millis(20));
    pki::revoke(&dir, std::slice::from_ref(&alice.cert_file), 30).expect("revoke");
    assert!(server.reload_if_changed(), "the new list is taken");
    assert!(!admitted(&alice, port).await, "alice is refused");
    assert!(admitted(&bob, port).await, "bob is not");
    // Revoking bob keeps alice on the list.
    std::thread::sleep(std::time::Duration::from_millis(20));
    pki::revoke(&dir, std::slice::from_ref(&bob.cert_file), 30).expect("revoke");
    assert!(server.reload_if_changed());
    assert!(!admitted(&alice, port).await && !admitted(&bob, port).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn netsec_1_a_staff_token_cannot_make_an_operators_employee_a_platform_admin() {
    let mesh = TestMesh::start().await;
    let mut client = AssetServiceClient::new(mesh.anonymous_channel());
    let forged_role = pki::mint_token(
        mesh.pki(),
        "mallory",
        Some(DEMO_OPERATOR_ID),
        &["platform_admin".to_owned()],
        600,
    )
    .expect("token");
    let refused = client
        .list_operators(with_token(
            pb::ListOperatorsRequest::default(),
            &forged_role,
        ))
        .await
        .expect_err("an operator's platform admin");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused.message().contains("platform_admin"),
        "{}",
        refused.message()
    );
    let admin = pki::mint_token(
        mesh.pki(),
        "root",
        None,
        &["platform_admin".to_owned()],
        600,
    )
    .expect("token");
    client
        .list_operators(with_token(pb::ListOperatorsRequest::default(), &admin))
        .await
        .expect("the platform's admin");
    mesh.stop().await;
}

/// Serves TLS on 127.0.0.1 as the gateway does (`incoming_gated` over `server`), answering each
/// connection it accepts with its peer's principal.
async fn principal_echo(server: ReloadingServerConfig) -> u16 {
    use tokio_stream::StreamExt as _;
    use tonic::transport::server::Connected as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let mut incoming = Box::pin(tls::incoming_gated(
        listener,
        server,
        TD.to_owned(),
        None,
        tls::HANDSHAKE_TIMEOUT,
    ));
    tokio::spawn(async move {
        while let Some(Ok(mut conn)) = incoming.next().await {
            let principal = conn.connect_info().principal;
            tokio::spawn(async move {
                let said = principal.map(|p| p.to_string()).unwrap_or_default();
                let _ = conn.write_all(said.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

/// How a connection with `config` went: its handshake's kind once the client's side of it is
/// done (full, or resumed from a ticket), and the principal the server then served it as
/// (`None`: closed unserved).
async fn served_as(
    config: &Arc<rustls::ClientConfig>,
    port: u16,
) -> (Option<rustls::HandshakeKind>, Option<String>) {
    let Ok(mut stream) = common::tls_to(port, config.clone()).await else {
        return (None, None);
    };
    let kind = stream.get_ref().1.handshake_kind();
    let mut heard = Vec::new();
    let served = match stream.read_to_end(&mut heard).await {
        Ok(_) if !heard.is_empty() => Some(String::from_utf8_lossy(&heard).into_owned()),
        _ => None,
    };
    (kind, served)
}

/// A pile's TLS stack with `files`' identity, keeping session tickets.
fn resuming_client(files: &TlsFiles) -> Arc<rustls::ClientConfig> {
    Arc::new(common::resuming_client(
        &files.ca_file,
        &files.cert_file,
        &files.key_file,
    ))
}

#[tokio::test]
async fn netsec_1_a_session_resumes_at_any_replica_sharing_the_ticket_keys_but_not_once_its_certificate_is_revoked()
 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("cm-tickets-{}", uuid::Uuid::now_v7().simple()));
    pki::init_with(&Authority::new("test CA").expect("ca"), &dir, TD).expect("pki");
    let alice = issue(&dir, "alice", &operator());
    let crl = pki::revoke(&dir, &[], 30).expect("empty list");
    let replica_files = |tickets: &str| TlsFiles {
        crl_file: Some(crl.clone()),
        ticket_key_file: Some(dir.join(tickets)),
        ..TlsFiles::in_dir(&dir, "gateway")
    };
    std::fs::write(dir.join("shared.key"), format!("{}\n", "s".repeat(40))).expect("key");
    std::fs::write(dir.join("other.key"), format!("{}\n", "o".repeat(40))).expect("key");
    let replica = |tickets: &str| {
        ReloadingServerConfig::resumable(replica_files(tickets), ClientAuth::Required)
            .expect("server")
    };
    let (a, b) = (replica("shared.key"), replica("shared.key"));
    let (port_a, port_b) = (principal_echo(a).await, principal_echo(b.clone()).await);
    let port_other = principal_echo(replica("other.key")).await;
    let client = resuming_client(&alice);
    let me = Some(operator().to_string());
    let (full, resumed) = (
        Some(rustls::HandshakeKind::Full),
        Some(rustls::HandshakeKind::Resumed),
    );

    assert_eq!(served_as(&client, port_a).await, (full, me.clone()));
    // Another replica with the same keys resumes the session; the principal comes with it.
    assert_eq!(served_as(&client, port_b).await, (resumed, me.clone()));
    // A replica with other keys cannot open a ticket: a full handshake, still served.
    let elsewhere = resuming_client(&alice);
    assert_eq!(served_as(&elsewhere, port_a).await, (full, me.clone()));
    assert_eq!(served_as(&elsewhere, port_other).await, (full, me.clone()));

    // Alice is revoked while she holds a ticket: the session resumes, but its certificate is
    // checked again and the connection closed unserved, as a full handshake is refused.
    std::thread::sleep(std::time::Duration::from_millis(20));
    pki::revoke(&dir, std::slice::from_ref(&alice.cert_file), 30).expect("revoke");
    assert!(b.reload_if_changed(), "the new list is taken");
    assert_eq!(served_as(&client, port_b).await, (resumed, None));
    assert_eq!(served_as(&resuming_client(&alice), port_b).await.1, None);
    let _ = std::fs::remove_dir_all(&dir);
}
