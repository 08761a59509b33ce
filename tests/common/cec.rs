//! The T/CEC 102 edge under test: the peers' secrets and configuration, a mesh with the edge on,
//! peer clients, extra gateway replicas of the edge, and raw TLS connections for clients that
//! misbehave on purpose.

use std::sync::Arc;

use chargemesh::pki::DEMO_OPERATOR_ID;
use chargemesh_cec::Dialect;
use chargemesh_cec::client::{Https, PeerClient};
use chargemesh_cec::edge::{CecConfig, PeerAccess, PeerConfig, SecretsConfig, Upstreams};
use chargemesh_cec::peers::Secret;
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_kit::events::SharedBus;
use chargemesh_kit::tls::{self, TlsFiles};

use super::TestMesh;

pub const SHAOXING: &str = "SXJG00001";
pub const SHANGHAI: &str = "SHJG00001";
const OP: &str = DEMO_OPERATOR_ID;

/// A peer's four secrets, made from its name.
pub fn secrets(seed: &str) -> SecretsConfig {
    let sixteen =
        |tag: &str| Secret::new(format!("{seed}{tag}").chars().take(16).collect::<String>());
    SecretsConfig {
        operator_secret: sixteen("op-secret-000000"),
        data_secret: sixteen("data-secret-0000"),
        data_iv: sixteen("data-iv-00000000"),
        sig_secret: sixteen("sig-secret-00000"),
    }
}

pub fn peer(name: &str, operator_id: &str, area_code: &str) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        operator_id: operator_id.into(),
        access: PeerAccess::Regulator {
            area_code: area_code.into(),
        },
        inbound: secrets(name),
        outbound: None,
        dialect: Dialect::default(),
        push_url: None,
    }
}

/// Shaoxing's and Shanghai's regulators, and the demo operator in platform mode.
pub fn cec_config() -> CecConfig {
    CecConfig {
        listen: "127.0.0.1:0".into(),
        operator_id: "MA0000001".into(),
        prefix: "/evcs/v1/".into(),
        token_ttl_s: 7_200,
        timestamp_window_s: 300,
        peers: vec![
            peer("sx", SHAOXING, "330600"),
            peer("sh", SHANGHAI, "310000"),
            PeerConfig {
                access: PeerAccess::Operator {
                    operator_id: OP.into(),
                },
                dialect: Dialect {
                    service_spelling: chargemesh_cec::dialect::ServiceSpelling::Service,
                    status_push: chargemesh_cec::dialect::StatusPush::Array,
                    ..Dialect::default()
                },
                ..peer("op", OP, "330602")
            },
        ],
        ..CecConfig::default()
    }
}

pub async fn mesh_at(clock: &ManualClock) -> TestMesh {
    mesh_with(clock, |_| {}).await
}

/// A mesh on `clock` with the edge on, its settings adjusted by `adjust`.
pub async fn mesh_with(clock: &ManualClock, adjust: impl FnOnce(&mut CecConfig)) -> TestMesh {
    let mesh_clock = clock.clone();
    TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.config.telemetry.settings.offline_after_seconds = 365 * 24 * 3600;
        // The embedded configuration's token key file, with the test's peers.
        let mut cec = CecConfig {
            token_key_file: opts.config.gateway.cec.token_key_file.clone(),
            ..cec_config()
        };
        adjust(&mut cec);
        opts.config.gateway.cec = cec;
    })
    .await
}

pub fn edge_port(mesh: &TestMesh) -> u16 {
    mesh.mesh
        .as_ref()
        .and_then(|m| m.cec_addr)
        .expect("the T/CEC 102 edge runs")
        .port()
}

pub fn client(mesh: &TestMesh, clock: &ManualClock, name: &str, operator_id: &str) -> PeerClient {
    client_at(mesh, clock, name, operator_id, edge_port(mesh))
}

pub fn client_at(
    mesh: &TestMesh,
    clock: &ManualClock,
    name: &str,
    operator_id: &str,
    port: u16,
) -> PeerClient {
    let tls = tls::anonymous_client_config(&mesh.pki().ca()).expect("tls");
    PeerClient::new(
        Https::new(tls),
        &format!("https://127.0.0.1:{port}/evcs/v1"),
        operator_id,
        secrets(name).secrets().expect("secrets"),
        Dialect::default(),
    )
    .with_clock({
        let clock = clock.clone();
        move || clock.now()
    })
    // The manual clock keeps every request of a test in one second: each client numbers its
    // requests in a block of its own, so no two clients send the same Seq in it.
    .with_first_seq(next_seq_block())
}

/// The first Seq of the next client's block of 500.
fn next_seq_block() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 19 * 500 + 1
}

/// The mesh's components as the gateway's edge reaches them, with the gateway's certificate.
pub fn upstreams(mesh: &TestMesh) -> Upstreams {
    let running = mesh.mesh.as_ref().expect("running");
    let mesh_client = Arc::new(tls::client_config(&mesh.pki_files("gateway")).expect("client"));
    let channel = |component: &str| {
        let url = format!("https://127.0.0.1:{}", running.addrs[component].port());
        tls::mesh_channel(&url, mesh_client.clone()).expect("channel")
    };
    Upstreams {
        registry: channel("asset"),
        telemetry: channel("telemetry"),
        metering: channel("metering"),
    }
}

/// Another gateway replica's edge over the mesh's components, until dropped.
pub struct Replica {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), chargemesh_cec::edge::EdgeError>>>,
}

impl Replica {
    /// Serves `config` with the gateway certificate `files`, keeping Seqs in `seen`.
    pub async fn start(
        mesh: &TestMesh,
        clock: &ManualClock,
        config: CecConfig,
        files: TlsFiles,
        seen: SharedBus,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let port = listener.local_addr().expect("addr").port();
        let upstreams = upstreams(mesh);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let replica_clock: chargemesh_kit::clock::SharedClock = Arc::new(clock.clone());
        let task = tokio::spawn(async move {
            chargemesh_cec::edge::serve(
                &config,
                &files,
                upstreams,
                listener,
                replica_clock,
                seen,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        Self {
            port,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops it, expecting a clean stop.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("replica task")
                .expect("the replica stops cleanly");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A TLS connection to the edge, made by hand so a test can send exactly what it wants.
pub async fn raw_tls(
    mesh: &TestMesh,
    port: u16,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut config = tls::anonymous_client_config(&mesh.pki().ca()).expect("tls");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await
}
