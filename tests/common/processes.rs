//! The mesh as Kubernetes runs it: each role its own process of the real binary
//! (`chargemesh serve --role ...`) from one configuration file, over the mesh's mutual TLS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chargemesh::pki::{self, Authority};
use chargemesh_kit::tls::{self, TlsFiles};

use super::TD;

pub fn free_port() -> u16 {
    chargemesh::ports::free_port().expect("a free port")
}

pub fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// One role of the real binary.
pub struct Role {
    pub name: &'static str,
    pub child: Child,
    pub admin: u16,
    pub log: PathBuf,
    config: PathBuf,
    dir: PathBuf,
}

impl Role {
    pub fn start(dir: &Path, config: &Path, name: &'static str, admin: u16) -> Self {
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
            config: config.to_owned(),
            dir: dir.to_owned(),
        }
    }

    /// Waits until its health (the admin port Kubernetes probes) says SERVING.
    pub async fn ready(&mut self) {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Role {
    /// SIGTERM, as Kubernetes stops a pod, and waits for the process to exit by itself.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        panic!(
            "{} did not exit after SIGTERM:
{}",
            self.name,
            self.log()
        );
    }

    /// Starts it again after it exited, on the same configuration (its log continues in a new
    /// file).
    pub fn start_again(&mut self) {
        let _ = std::fs::rename(&self.log, self.log.with_extension("log.1"));
        let again = Self::start(&self.dir, &self.config, self.name, self.admin);
        drop(std::mem::replace(self, again));
    }

    /// SIGKILL, as the kernel's OOM killer or a lost node would: no drain, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it and starts it again on the same configuration (the earlier run's log is kept
    /// beside the new one).
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration every role reads, as a ConfigMap would hold it.
/// `redis` is the event bus's URL; `None` takes the suite's (`CHARGEMESH_TEST_REDIS_URL`), if any.
pub fn mesh_toml(dir: &Path, ports: &[(&str, u16, u16)], redis: Option<String>) -> String {
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
    let redis = redis.or_else(|| {
        std::env::var("CHARGEMESH_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
    });
    if let Some(redis) = redis {
        toml.push_str(&format!(
            "\n[events]\nurl = \"{redis}\"\nprefix = \"{schema}:\"\n"
        ));
    }
    toml
}

/// Gateway, asset and telemetry, each its own process of the real binary, on a fresh PKI and
/// configuration.
pub struct ProcessMesh {
    pub dir: PathBuf,
    pub ca: Authority,
    /// Gateway, asset, telemetry.
    pub roles: Vec<Role>,
    pub gateway: std::net::SocketAddr,
    pub pki: pki::PkiDir,
}

impl ProcessMesh {
    /// Starts gateway, asset and telemetry, the bus on `redis` (`None`: the suite's, if any)
    /// and `telemetry` lines added to the telemetry section, and seeds the demo fleet
    /// (SX-KQ-002 accepted and filed, not yet connected). `name` names the test's directory.
    pub async fn start(name: &str, redis: Option<String>, telemetry: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!(
            "chargemesh-{name}-{}",
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
        let toml = mesh_toml(&dir, &ports, redis)
            .replace("\n[telemetry]\n", &format!("\n[telemetry]\n{telemetry}"));
        std::fs::write(&config, toml).expect("config");
        let mut roles: Vec<Role> = ports
            .iter()
            .map(|(role, _, admin)| Role::start(&dir, &config, role, *admin))
            .collect();
        for role in &mut roles {
            role.ready().await;
        }
        let gateway = std::net::SocketAddr::from(([127, 0, 0, 1], ports[0].1));
        let pki = pki::PkiDir {
            dir: dir.join("pki"),
        };
        chargemesh::demo::seed(gateway, &pki.files("operator"))
            .await
            .expect("the registry takes the demo fleet");
        Self {
            dir,
            ca,
            roles,
            gateway,
            pki,
        }
    }

    /// A channel to the gateway as `name` of the PKI.
    pub fn channel(&self, name: &str) -> tonic::transport::Channel {
        let config = Arc::new(tls::client_config(&self.pki.files(name)).expect("tls"));
        tls::channel(&format!("https://{}", self.gateway), config).expect("channel")
    }

    pub fn telemetry(&mut self) -> &mut Role {
        &mut self.roles[2]
    }
}

impl Drop for ProcessMesh {
    fn drop(&mut self) {
        self.roles.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
