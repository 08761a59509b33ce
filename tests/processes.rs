//! The mesh as Kubernetes runs it: each role its own process of the real binary
//! (`chargemesh serve --role ...`) from one configuration file, talking over the mesh's mutual
//! TLS. The telemetry component, in its own process, ingests a pile's reports through the
//! gateway, reads the registry from the asset component in another process, marks the pile's
//! filed station connected there (REQ BASE-2), and serves the regulator's watch.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chargemesh::pki::{self, Authority, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_kit::tls::{self, TlsFiles};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

const TD: &str = "chargemesh.test";
const STATION: &str = "SX-KQ-002";
const PILE: &str = "SX-KQ-002-P01";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// One role of the real binary.
struct Role {
    name: &'static str,
    child: Child,
    admin: u16,
    log: PathBuf,
}

impl Role {
    fn start(dir: &Path, config: &Path, name: &'static str, admin: u16) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_chargemesh"))
            .args(["serve", "--role", name])
            .env("CHARGEMESH_CONFIG", config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the role starts");
        Self {
            name,
            child,
            admin,
            log,
        }
    }

    /// Waits until its health (the admin port Kubernetes probes) says SERVING.
    async fn ready(&mut self) {
        let url = format!("http://127.0.0.1:{}", self.admin);
        for _ in 0..400 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone())
                .expect("url")
                .connect()
                .await
            {
                let answer = tonic_health::pb::health_client::HealthClient::new(channel)
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await;
                if answer.is_ok_and(|a| a.into_inner().status == 1) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never became ready:\n{}", self.name, self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration every role reads, as a ConfigMap would hold it.
fn mesh_toml(dir: &Path, ports: &[(&str, u16, u16)]) -> String {
    let pki = dir.join("pki");
    let tls_of = |name: &str| {
        let files = TlsFiles::in_dir(&pki, name);
        format!(
            "{{ ca_file = {}, cert_file = {}, key_file = {} }}",
            quoted(&files.ca_file),
            quoted(&files.cert_file),
            quoted(&files.key_file)
        )
    };
    let url = |name: &str| {
        let port = ports.iter().find(|(n, _, _)| *n == name).expect("port").1;
        format!("https://127.0.0.1:{port}")
    };
    let postgres = std::env::var("CHARGEMESH_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let schema = format!("proc{}_", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let mut toml = format!(
        "trust_domain = \"{TD}\"\nlog_format = \"json\"\nshutdown_grace_s = 1\n\n\
         [gateway]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\ntls = {}\n\
         jwt = {{ jwks_file = {}, issuer = \"{}\", audience = \"{}\" }}\n\
         upstreams = {{ asset = \"{}\", telemetry = \"{}\" }}\n",
        ports[0].1,
        ports[0].2,
        tls_of("gateway"),
        quoted(&pki.join(pki::JWKS_FILE)),
        pki::JWT_ISSUER,
        pki::JWT_AUDIENCE,
        url("asset"),
        url("telemetry"),
    );
    for (name, port, admin) in &ports[1..] {
        let database = match &postgres {
            Some(url) => format!("{{ url = \"{url}\", schema = \"{schema}{name}\" }}"),
            None => format!(
                "{{ url = {} }}",
                quoted(Path::new(&chargemesh_kit::db::Database::sqlite_url(
                    &dir.join(format!("{name}.db"))
                )))
            ),
        };
        // Each reaches the other over the mesh.
        let (peer_key, peer) = match *name {
            "asset" => ("telemetry_url", url("telemetry")),
            _ => ("asset_url", url("asset")),
        };
        toml.push_str(&format!(
            "\n[{name}]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             tls = {}\ndatabase = {database}\n{peer_key} = \"{peer}\"\n",
            tls_of(name)
        ));
    }
    if let Ok(redis) = std::env::var("CHARGEMESH_TEST_REDIS_URL")
        && !redis.is_empty()
    {
        toml.push_str(&format!(
            "\n[events]\nurl = \"{redis}\"\nprefix = \"{schema}:\"\n"
        ));
    }
    toml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_2_telemetry_in_its_own_process_ingests_connects_the_station_and_feeds_the_watch() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!(
        "chargemesh-processes-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let ca = Authority::new("test CA").expect("ca");
    pki::init_with(&ca, &dir.join("pki"), TD).expect("pki");
    let ports = [
        ("gateway", free_port(), free_port()),
        ("asset", free_port(), free_port()),
        ("telemetry", free_port(), free_port()),
    ];
    let config = dir.join("mesh.toml");
    std::fs::write(&config, mesh_toml(&dir, &ports)).expect("config");
    let mut roles: Vec<Role> = ports
        .iter()
        .map(|(name, _, admin)| Role::start(&dir, &config, name, *admin))
        .collect();
    for role in &mut roles {
        role.ready().await;
    }
    let gateway = std::net::SocketAddr::from(([127, 0, 0, 1], ports[0].1));
    let channel = |files: &TlsFiles| {
        let config = Arc::new(tls::client_config(files).expect("tls"));
        tls::channel(&format!("https://{gateway}"), config).expect("channel")
    };
    let pki = pki::PkiDir {
        dir: dir.join("pki"),
    };
    // The demo fleet: SX-KQ-002 accepted and filed, not yet connected.
    chargemesh::demo::seed(gateway, &pki.files("operator"))
        .await
        .expect("the registry takes the demo fleet");
    let mut registry = chargemesh::demo::asset_client(gateway, &pki.files("operator")).expect("c");
    let station = |r: asset::GetStationResponse| r.station.expect("station").state;
    let filed = registry
        .get_station(asset::GetStationRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            station_id: STATION.into(),
        })
        .await
        .expect("station")
        .into_inner();
    assert_eq!(station(filed), asset::StationState::Filed as i32);

    let mut watch = StatusServiceClient::new(channel(&pki.files("regulator")))
        .watch_status_changes(reg::WatchStatusChangesRequest {
            cursor: String::new(),
            from_start: true,
        })
        .await
        .expect("the regulator watches")
        .into_inner();

    // The pile reports through the gateway with its own certificate.
    let pile = Principal::Pile {
        operator_id: DEMO_OPERATOR_ID.into(),
        station_id: STATION.into(),
        pile_id: PILE.into(),
    };
    let pair = ca
        .issue_for_days(&pile, TD, &[], 30)
        .expect("pile identity");
    pki::write_pair(&pki.dir, "kq-pile", &pair).expect("write");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = TelemetryServiceClient::new(channel(&pki.files("kq-pile")))
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    tx.send(tm::ConnectRequest {
        messages: vec![tm::TelemetryMessage {
            sequence: 1,
            connector_id: format!("{PILE}-1"),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                state: tm::ConnectorState::Charging as i32,
                ..Default::default()
            })),
            ..Default::default()
        }],
    })
    .await
    .expect("sent");
    let answer = tokio::time::timeout(Duration::from_secs(20), answers.message())
        .await
        .expect("answered in time")
        .expect("stream healthy")
        .expect("an answer");
    assert!(
        matches!(
            answer.body,
            Some(tm::connect_response::Body::Acknowledgement(
                tm::Acknowledgement {
                    first_sequence: 1,
                    last_sequence: 1
                }
            ))
        ),
        "{answer:?}\ntelemetry log:\n{}",
        roles[2].log()
    );

    // REQ BASE-2: the first report connected the filed station, in the asset process.
    let connected = registry
        .get_station(asset::GetStationRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            station_id: STATION.into(),
        })
        .await
        .expect("station")
        .into_inner();
    assert_eq!(station(connected), asset::StationState::Connected as i32);
    let history = registry
        .list_change_records(asset::ListChangeRecordsRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            entity_type: "station".into(),
            entity_id: STATION.into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .change_records;
    assert!(
        history
            .iter()
            .any(|r| r.action == "connect" && r.note.contains("first telemetry report")),
        "{history:?}"
    );

    // The regulator of the area sees the change on its watch.
    let change = loop {
        let batch = tokio::time::timeout(Duration::from_secs(20), watch.message())
            .await
            .expect("a change in time")
            .expect("watch healthy")
            .expect("watch open");
        if let Some(change) = batch
            .changes
            .into_iter()
            .find(|c| c.status.as_ref().is_some_and(|s| s.pile_id == PILE))
        {
            break change;
        }
    };
    let status = change.status.expect("status");
    assert_eq!(status.state, tm::ConnectorState::Charging as i32);
    assert_eq!(status.cec_status, 3);
    assert_eq!(status.area_code, "330603");
    drop(roles);
    let _ = std::fs::remove_dir_all(&dir);
}
