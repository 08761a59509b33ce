//! The end-to-end harness: the whole mesh in this process, with a PKI made at test time, on
//! SQLite files (or fresh PostgreSQL schemas when `CHARGEMESH_TEST_DATABASE_URL` is set), and
//! clients that talk to the gateway as real users do.

#![allow(dead_code)]

pub mod cec;
pub mod piles;
pub mod processes;

use std::path::PathBuf;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tonic::transport::Channel;

use chargemesh::mesh::{EmbeddedMesh, EmbeddedOptions};
use chargemesh::pki::{self, Authority};
use chargemesh_kit::Principal;
use chargemesh_kit::tls::{self, TlsFiles};
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;

pub const TD: &str = "chargemesh.test";

pub struct TestMesh {
    pub mesh: Option<EmbeddedMesh>,
    pub ca: Authority,
    pub dir: PathBuf,
    opts: EmbeddedOptions,
}

impl TestMesh {
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    pub async fn start_with(accept_jwt: bool) -> Self {
        Self::start_with_options(|opts| {
            if !accept_jwt {
                opts.config.gateway.jwt = None;
            }
        })
        .await
    }

    /// Starts with options adjusted by `adjust` (clock, telemetry settings, ...). PostgreSQL and
    /// Redis are used when `CHARGEMESH_TEST_DATABASE_URL` / `CHARGEMESH_TEST_REDIS_URL` are set.
    pub async fn start_with_options(adjust: impl FnOnce(&mut EmbeddedOptions)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let short = &id[id.len() - 10..];
        let dir = std::env::temp_dir().join(format!("chargemesh-e2e-{short}"));
        let ca = Authority::new("test CA").expect("ca");
        pki::init_with(&ca, &dir.join("pki"), TD).expect("pki");
        let mut opts = EmbeddedOptions::new(&dir);
        opts.config.gateway.listen = "127.0.0.1:0".into();
        opts.config.trust_domain = TD.into();
        if let Ok(url) = std::env::var("CHARGEMESH_TEST_DATABASE_URL")
            && !url.is_empty()
        {
            opts.config.use_postgres(&url, &format!("e2e{short}_"));
        }
        if let Ok(url) = std::env::var("CHARGEMESH_TEST_REDIS_URL")
            && !url.is_empty()
        {
            opts.config.events.url = url;
            opts.config.events.prefix = format!("e2e{short}:");
        }
        opts.grace = Some(std::time::Duration::from_millis(200));
        adjust(&mut opts);
        let mesh = EmbeddedMesh::start(opts.clone())
            .await
            .expect("mesh starts");
        Self {
            mesh: Some(mesh),
            ca,
            dir,
            opts,
        }
    }

    /// Stops every component and starts them again on the same data (a crash-restart).
    pub async fn restart(&mut self) {
        if let Some(mesh) = self.mesh.take() {
            mesh.stop().await;
        }
        self.mesh = Some(
            EmbeddedMesh::start(self.opts.clone())
                .await
                .expect("mesh restarts"),
        );
    }

    fn mesh(&self) -> &EmbeddedMesh {
        self.mesh.as_ref().expect("running")
    }

    pub fn pki_files(&self, name: &str) -> TlsFiles {
        self.mesh().pki.files(name)
    }

    /// An asset client through the gateway as one of the PKI's identities (`operator`, ...).
    pub fn client(&self, name: &str) -> AssetServiceClient<Channel> {
        self.client_with_files(&self.pki_files(name))
    }

    pub fn client_with_files(&self, files: &TlsFiles) -> AssetServiceClient<Channel> {
        chargemesh::demo::asset_client(self.mesh().gateway_addr, files).expect("client")
    }

    /// A fresh certificate for `principal` from `ca`, valid between the offsets (in days) from now.
    pub fn identity(
        &self,
        ca: &Authority,
        principal: &Principal,
        from_days: i64,
        to_days: i64,
    ) -> TlsFiles {
        let now = OffsetDateTime::now_utc();
        let pair = ca
            .issue(
                principal,
                TD,
                &[],
                now + Duration::days(from_days),
                now + Duration::days(to_days),
            )
            .expect("issue");
        let name = format!("extra-{}", uuid::Uuid::now_v7().simple());
        let dir = self.dir.join("pki");
        pki::write_pair(&dir, &name, &pair).expect("write");
        TlsFiles {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join(format!("{name}.pem")),
            key_file: dir.join(format!("{name}.key")),
            crl_file: None,
            ticket_key_file: None,
        }
    }

    /// A client through the gateway as a new certificate principal of the test CA.
    pub fn client_as(&self, principal: &Principal) -> AssetServiceClient<Channel> {
        let files = self.identity(&self.ca, principal, -1, 30);
        self.client_with_files(&files)
    }

    /// A raw channel through the gateway as one of the PKI's identities.
    pub fn channel(&self, name: &str) -> Channel {
        self.channel_with(&self.pki_files(name))
    }

    /// A raw channel through the gateway with the given certificate files.
    pub fn channel_with(&self, files: &TlsFiles) -> Channel {
        let config = tls::client_config(files).expect("config");
        tls::channel(
            &format!("https://127.0.0.1:{}", self.gateway_port()),
            Arc::new(config),
        )
        .expect("channel")
    }

    /// A raw channel through the gateway as a new certificate principal of the test CA.
    pub fn channel_as(&self, principal: &Principal) -> Channel {
        self.channel_with(&self.identity(&self.ca, principal, -1, 30))
    }

    /// A client that presents no certificate (a staff app that brings a JWT).
    pub fn anonymous_channel(&self) -> Channel {
        let config = tls::anonymous_client_config(&self.mesh().pki.ca()).expect("config");
        tls::channel(
            &format!("https://127.0.0.1:{}", self.gateway_port()),
            Arc::new(config),
        )
        .expect("channel")
    }

    /// A channel straight to the asset service, bypassing the gateway.
    pub fn direct_asset_channel(&self, files: &TlsFiles) -> Channel {
        let config = tls::client_config(files).expect("config");
        tls::channel(
            &format!("https://127.0.0.1:{}", self.mesh().asset_addr.port()),
            Arc::new(config),
        )
        .expect("channel")
    }

    /// A channel straight to a component, bypassing the gateway, as a mesh service would call.
    pub fn direct_channel(&self, component: &str, files: &TlsFiles) -> Channel {
        let config = tls::client_config(files).expect("config");
        tls::channel(
            &format!("https://127.0.0.1:{}", self.mesh().addrs[component].port()),
            Arc::new(config),
        )
        .expect("channel")
    }

    pub fn gateway_port(&self) -> u16 {
        self.mesh().gateway_addr.port()
    }

    pub fn pki(&self) -> &pki::PkiDir {
        &self.mesh().pki
    }

    pub async fn stop(mut self) {
        if let Some(mesh) = self.mesh.take() {
            mesh.stop().await;
        }
    }
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A request carrying a staff bearer token.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().expect("ascii");
    request.metadata_mut().insert("authorization", value);
    request
}

/// An open telemetry stream: push batches with `send`, read answers with `next`.
pub struct TelemetryStream {
    tx: tokio::sync::mpsc::Sender<chargemesh_proto::telemetry::v1::ConnectRequest>,
    pub inbound: tonic::Streaming<chargemesh_proto::telemetry::v1::ConnectResponse>,
}

impl TelemetryStream {
    pub async fn open(channel: Channel) -> Self {
        let mut client =
            chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient::new(
                channel,
            );
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let inbound = client
            .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("stream opens")
            .into_inner();
        Self { tx, inbound }
    }

    pub async fn send(&self, messages: Vec<chargemesh_proto::telemetry::v1::TelemetryMessage>) {
        self.tx
            .send(chargemesh_proto::telemetry::v1::ConnectRequest { messages })
            .await
            .expect("stream open");
    }

    /// The next answer, within ten seconds.
    pub async fn next(&mut self) -> chargemesh_proto::telemetry::v1::connect_response::Body {
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(10), self.inbound.message())
                .await
                .expect("an answer in time")
                .expect("stream healthy")
                .expect("stream open");
        answer.body.expect("answer has a body")
    }
}

/// Fetches until `done` holds or ten seconds pass and returns the last value fetched, so the
/// caller's assertions say what was missing rather than a bare timeout.
pub async fn eventually<T>(mut fetch: impl AsyncFnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let value = fetch().await;
        if done(&value) || tokio::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A pile of the demo operator at `station`, with a meter verified a month ago (REQ BASE-5), so
/// its sessions are billable: JJG 1148 for AC piles, JJG 1149 for DC.
pub async fn verified_pile(
    op: &mut AssetServiceClient<Channel>,
    station: &str,
    pile: &str,
    pile_type: chargemesh_proto::asset::v1::PileType,
    power_kw: f64,
) {
    use chargemesh::demo;
    use chargemesh_proto::asset::v1 as asset;
    let operator = pki::DEMO_OPERATOR_ID;
    op.create_pile(asset::CreatePileRequest {
        pile: Some(demo::pile(operator, station, pile, pile_type, power_kw)),
    })
    .await
    .expect("pile");
    let (procedure, code) = match pile_type {
        asset::PileType::Ac => (asset::VerificationProcedure::Jjg1148, "JJG1148"),
        _ => (asset::VerificationProcedure::Jjg1149, "JJG1149"),
    };
    op.create_metrology_certificate(asset::CreateMetrologyCertificateRequest {
        certificate: Some(demo::certificate(
            operator,
            pile,
            procedure,
            &format!("{code}-{pile}"),
            chrono::Utc::now().date_naive() - chrono::Duration::days(30),
        )),
    })
    .await
    .expect("certificate");
}

/// The demo operator with an urban station (S-URB, pile P1) and an outlying one (S-OUT, pile P2),
/// both in Yuecheng district (330602), registered by the operator's platform.
pub async fn two_station_fleet(mesh: &TestMesh) {
    use chargemesh::demo;
    use chargemesh_proto::asset::v1 as asset;
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(pki::DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    for (station, pile, zone) in [
        ("S-URB", "P1", asset::ServiceZone::MainUrban),
        ("S-OUT", "P2", asset::ServiceZone::Other),
    ] {
        let mut s = demo::station(pki::DEMO_OPERATOR_ID, station, "330602");
        s.service_zone = zone as i32;
        op.create_station(asset::CreateStationRequest { station: Some(s) })
            .await
            .expect("station");
        op.create_pile(asset::CreatePileRequest {
            pile: Some(demo::pile(
                pki::DEMO_OPERATOR_ID,
                station,
                pile,
                asset::PileType::Dc,
                60.0,
            )),
        })
        .await
        .expect("pile");
    }
}

/// A customer's phone call about a connector that does not work: a FAULT-4 phone-channel work
/// order, created by a monitor with `token`.
pub async fn phone_work_order(
    channel: Channel,
    token: &str,
    station: &str,
    pile: &str,
) -> chargemesh_proto::dispatch::v1::WorkOrder {
    use chargemesh_proto::dispatch::v1 as dp;
    dp::dispatch_service_client::DispatchServiceClient::new(channel)
        .create_work_order(with_token(
            dp::CreateWorkOrderRequest {
                operator_id: pki::DEMO_OPERATOR_ID.into(),
                station_id: station.into(),
                pile_id: pile.into(),
                connector_id: format!("{pile}-1"),
                channel: dp::Channel::Phone as i32,
                description: "customer reports the gun does not lock".into(),
                request_id: String::new(),
            },
            token,
        ))
        .await
        .expect("order")
        .into_inner()
        .work_order
        .expect("order")
}

/// A Redis server of the test's own on a free port, so a test may stop and start it without
/// touching the machine's shared one. `None` when `redis-server` is not installed.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start() -> Option<Self> {
        let port = chargemesh::ports::free_port().ok()?;
        let mut redis = Self { port, child: None };
        redis.resume().then_some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port; false when it cannot be started.
    pub fn resume(&mut self) -> bool {
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// Kills the server (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many entries a stream holds, by `redis-cli`.
    pub fn stream_len(&self, key: &str) -> Option<u64> {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "XLEN", key])
            .output()
            .ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP switch between one component and another: it forwards while on, and refuses
/// connections (closing any it holds) while off, as a network partition would.
pub struct Switch {
    pub port: u16,
    target: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    /// Whether it forwards, and how often it was turned off: a connection made in an earlier
    /// generation is cut the moment the generation changes.
    state: tokio::sync::watch::Sender<(bool, u64)>,
}

impl Switch {
    /// Off, with no target yet.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>> = Arc::default();
        let (state, _) = tokio::sync::watch::channel((false, 0_u64));
        let (t, st) = (target.clone(), state.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let dest = *t.lock().expect("target");
                let (on, born) = *st.borrow();
                if !on {
                    drop(inbound);
                    continue;
                }
                let Some(dest) = dest else { continue };
                let mut watch = st.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(dest).await else {
                        return;
                    };
                    // Cut as soon as the switch goes off, not at the next poll: a request
                    // sent right after `off` must not slip through.
                    let cut = watch.wait_for(|(on, generation)| !on || *generation != born);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Self {
            port,
            target,
            state,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn point_to(&self, addr: std::net::SocketAddr) {
        *self.target.lock().expect("target") = Some(addr);
    }

    /// Forwards from now on.
    pub fn on(&self) {
        self.state.send_modify(|(on, _)| *on = true);
    }

    /// Cuts every connection and refuses new ones.
    pub fn off(&self) {
        self.state.send_modify(|(on, generation)| {
            *on = false;
            *generation += 1;
        });
    }
}

/// The demo operator's charge orders, once `ready` holds of them (or after the wait gives up).
pub async fn orders_when(
    mesh: &TestMesh,
    ready: impl Fn(&Vec<chargemesh_proto::metering::v1::ChargeOrder>) -> bool,
) -> Vec<chargemesh_proto::metering::v1::ChargeOrder> {
    use chargemesh_proto::metering::v1 as mt;
    let mut metering =
        mt::metering_service_client::MeteringServiceClient::new(mesh.channel("operator"));
    eventually(
        async || {
            metering
                .list_charge_orders(mt::ListChargeOrdersRequest {
                    operator_id: pki::DEMO_OPERATOR_ID.into(),
                    ..Default::default()
                })
                .await
                .expect("orders")
                .into_inner()
                .orders
        },
        ready,
    )
    .await
}

/// A pile's TLS stack: the identity of the PEM files `cert` and `key`, trusting `ca`, keeping
/// the session tickets servers send and resuming from them.
pub fn resuming_client(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> rustls::ClientConfig {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("pem");
    tls::client_config_from_pem(
        tls::root_store(ca).expect("roots"),
        &read(cert),
        &read(key),
        true,
    )
    .expect("client")
}

/// A TLS connection with `config` to 127.0.0.1:`port`, whose certificate names `localhost`.
pub async fn tls_to(
    port: u16,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}
