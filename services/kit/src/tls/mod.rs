//! rustls for the edge and the mesh: TLS 1.3 only, client certificates checked against the
//! configured CA bundle, certificates (served and presented) reloaded from disk without a
//! restart, the peer's [`crate::identity::Principal`] derived once per connection
//! ([`incoming_gated`]), and the edge's sessions resumed from shared tickets ([`tickets`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

mod incoming;
pub mod tickets;

pub use incoming::{
    ConnectionGate, HANDSHAKE_QUEUE_WAIT, HANDSHAKE_TIMEOUT, HANDSHAKES_AT_ONCE, Held, PeerInfo,
    TlsConn, accept, check_resumed, incoming, incoming_gated,
};
pub use tickets::{SessionTickets, TicketKeys};

/// Where a component's PEM files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// CA bundle that peers' certificates must chain to.
    pub ca_file: PathBuf,
    /// This component's certificate chain.
    pub cert_file: PathBuf,
    /// This component's private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
    /// Certificate revocation lists (PEM) from the CA: a client certificate on one is refused
    /// at the handshake. Read again, like the other files, when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_file: Option<PathBuf>,
    /// The session ticket keys an edge listener shares with its other replicas (see
    /// [`tickets`]): a client that reconnects to any of them, or after a restart, resumes its
    /// session. Without one each process seals tickets with keys of its own. Read again when it
    /// changes (a key rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_key_file: Option<PathBuf>,
}

impl TlsFiles {
    /// The conventional names in a PKI directory: `ca.pem`, `<name>.pem`, `<name>.key`.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join(format!("{name}.pem")),
            key_file: dir.join(format!("{name}.key")),
            crl_file: None,
            ticket_key_file: None,
        }
    }

    fn modified(&self) -> Option<Vec<SystemTime>> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut stamps = vec![m(&self.ca_file)?, m(&self.cert_file)?, m(&self.key_file)?];
        for path in [&self.crl_file, &self.ticket_key_file]
            .into_iter()
            .flatten()
        {
            stamps.push(m(path)?);
        }
        Some(stamps)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("tls configuration: {0}")]
    Config(String),
}

impl From<rustls::Error> for TlsError {
    fn from(err: rustls::Error) -> Self {
        TlsError::Config(err.to_string())
    }
}

/// The crypto provider used everywhere (ring), explicit so nothing depends on a global default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

pub fn load_crls(
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateRevocationListDer<'static>>, TlsError> {
    rustls_pki_types::CertificateRevocationListDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

/// Whether a listener demands a client certificate at the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client presents a certificate chaining to the CA (the mesh, and the edge without JWT).
    Required,
    /// A certificate is checked when presented; callers without one must bring a JWT.
    Optional,
}

/// The verifier of client certificates chaining to `files`' CA (checked against its revocation
/// list when one is configured).
pub fn client_verifier(
    files: &TlsFiles,
    client_auth: ClientAuth,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(roots(&files.ca_file)?, provider());
    if let Some(path) = &files.crl_file {
        // The CA's lists speak for the certificates it issued; a client certificate of another
        // issuer (none chain here) would have no status, and the chain's CA none either.
        verifier = verifier
            .with_crls(load_crls(path)?)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    match client_auth {
        ClientAuth::Required => verifier.build(),
        ClientAuth::Optional => verifier.allow_unauthenticated().build(),
    }
    .map_err(|e| TlsError::Config(e.to_string()))
}

/// The verifier of client certificates chaining to the CAs in `ca_file` alone (no revocation
/// list), a certificate being optional: for the roots of an operator's own CA.
pub fn optional_client_verifier(ca_file: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(roots(ca_file)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// A TLS 1.3 server configuration with client-certificate verification and ALPN h2.
pub fn server_config(files: &TlsFiles, client_auth: ClientAuth) -> Result<ServerConfig, TlsError> {
    server_config_verified_by(files, client_verifier(files, client_auth)?)
}

fn server_config_verified_by(
    files: &TlsFiles,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&files.cert_file)?, load_key(&files.key_file)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A TLS 1.3 client configuration that trusts the CA and presents this component's certificate,
/// read again from its files whenever they change (see [`FileClientCert`]).
pub fn client_config(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let certificate = FileClientCert::load(files.clone(), provider.clone())?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(&files.ca_file)?)
        .with_client_cert_resolver(Arc::new(certificate));
    // Every connection proves its identity with the current certificate: a resumed session
    // would carry the one it was first made with, renewed or not.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A TLS 1.3 client configuration with a fixed identity given as PEM text (a simulated pile of
/// a benchmark or simulator, among thousands that never touch the disk). With `resume` it keeps
/// the session tickets servers send (its identity never changes, so a resumed session carries
/// the right one) and resumes from them, as a pile's TLS stack does; one configuration per
/// identity, as the tickets are kept by server name alone.
pub fn client_config_from_pem(
    roots: Arc<RootCertStore>,
    cert_pem: &str,
    key_pem: &str,
    resume: bool,
) -> Result<ClientConfig, TlsError> {
    let pem = |message: String| TlsError::Pem {
        path: PathBuf::from("(in memory)"),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| pem(e.to_string()))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.resumption = if resume {
        rustls::client::Resumption::in_memory_sessions(1)
    } else {
        rustls::client::Resumption::disabled()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The CA bundle at `path` as a root store, to share among many client configurations.
pub fn root_store(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    roots(path)
}

/// A component's client certificate that follows its files: every new connection presents the
/// current one, so a certificate cert-manager renewed is used on the mesh without a restart
/// (connections already open keep theirs; the server checked it at their handshake). A pair
/// that does not load, or whose key does not match, is ignored and the previous one kept.
#[derive(Debug)]
pub struct FileClientCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Arc<CertifiedKey>, Option<Vec<SystemTime>>)>,
}

impl FileClientCert {
    pub fn load(files: TlsFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamp = files.modified();
        let key = certified_key(&files, &provider)?;
        Ok(Self {
            files,
            provider,
            current: RwLock::new((key, stamp)),
        })
    }

    fn refresh(&self) -> Arc<CertifiedKey> {
        let stamp = self.files.modified();
        let (key, known) = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if stamp.is_none() || stamp == known {
            return key;
        }
        match certified_key(&self.files, &self.provider) {
            Ok(fresh) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (fresh.clone(), stamp);
                tracing::info!(cert = %self.files.cert_file.display(), "client certificate reloaded");
                fresh
            }
            Err(error) => {
                tracing::warn!(%error, "client certificate files changed but cannot be used, keeping the old ones");
                key
            }
        }
    }
}

fn certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let signing = provider
        .key_provider
        .load_private_key(load_key(&files.key_file)?)?;
    let key = CertifiedKey::new(load_certs(&files.cert_file)?, signing);
    key.keys_match()?;
    Ok(Arc::new(key))
}

impl ResolvesClientCert for FileClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.refresh())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A TLS 1.3 client configuration without a certificate of its own (staff apps that bring a JWT).
pub fn anonymous_client_config(ca_file: &Path) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A server configuration, and the verifier a resumed session's client certificate is checked
/// against again when its sessions resume from tickets (the resuming handshake does not).
#[derive(Clone)]
pub struct Built {
    pub config: Arc<ServerConfig>,
    pub resumed_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// A built configuration and the modification times of the files it was built from.
type Loaded = (Built, Option<Vec<SystemTime>>);

/// A server configuration that follows its files: [`ReloadingServerConfig::watch`] rebuilds it
/// when they change, and each new connection takes the current one.
#[derive(Clone)]
pub struct ReloadingServerConfig {
    files: TlsFiles,
    /// Files besides `files` whose change rebuilds the configuration.
    extra: Vec<PathBuf>,
    build: Arc<BuildBuilt>,
    current: Arc<RwLock<Loaded>>,
}

/// How a reloading configuration is built from its files.
pub type BuildConfig = dyn Fn(&TlsFiles) -> Result<ServerConfig, TlsError> + Send + Sync;

type BuildBuilt = dyn Fn(&TlsFiles) -> Result<Built, TlsError> + Send + Sync;

impl std::fmt::Debug for ReloadingServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingServerConfig")
            .field("files", &self.files)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

impl ReloadingServerConfig {
    pub fn load(files: TlsFiles, client_auth: ClientAuth) -> Result<Self, TlsError> {
        Self::load_with_alpn(files, client_auth, vec![b"h2".to_vec()])
    }

    /// As [`Self::load`], offering these ALPN protocols (`http/1.1` for the T/CEC 102 edge).
    pub fn load_with_alpn(
        files: TlsFiles,
        client_auth: ClientAuth,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Self, TlsError> {
        Self::custom(
            files,
            Vec::new(),
            Arc::new(move |files: &TlsFiles| {
                let mut config = server_config(files, client_auth)?;
                config.alpn_protocols = alpn.clone();
                Ok(config)
            }),
        )
    }

    /// As [`Self::load`], for an edge whose clients resume their sessions from tickets (see
    /// [`SessionTickets`]): a client certificate a resumed session carries is checked again
    /// with the current verifier by [`incoming_gated`] before the connection is served.
    pub fn resumable(files: TlsFiles, client_auth: ClientAuth) -> Result<Self, TlsError> {
        let tickets = SessionTickets::new()?;
        let build = move |files: &TlsFiles| {
            let verifier = client_verifier(files, client_auth)?;
            let mut config = server_config_verified_by(files, verifier.clone())?;
            tickets.apply(&mut config, files)?;
            Ok(Built {
                config: Arc::new(config),
                resumed_verifier: Some(verifier),
            })
        };
        Self::built_by(files, Vec::new(), Arc::new(build))
    }

    /// A configuration `build` makes from `files` (and reads from `extra`, other CA bundles
    /// for instance), built again when any of them changes.
    pub fn custom(
        files: TlsFiles,
        extra: Vec<PathBuf>,
        build: Arc<BuildConfig>,
    ) -> Result<Self, TlsError> {
        Self::built_by(
            files,
            extra,
            Arc::new(move |files: &TlsFiles| {
                Ok(Built {
                    config: Arc::new(build(files)?),
                    resumed_verifier: None,
                })
            }),
        )
    }

    fn built_by(
        files: TlsFiles,
        extra: Vec<PathBuf>,
        build: Arc<BuildBuilt>,
    ) -> Result<Self, TlsError> {
        let built = build(&files)?;
        let this = Self {
            files,
            extra,
            build,
            current: Arc::new(RwLock::new((built, None))),
        };
        let stamp = this.modified();
        this.current.write().unwrap_or_else(|e| e.into_inner()).1 = stamp;
        Ok(this)
    }

    fn modified(&self) -> Option<Vec<SystemTime>> {
        let mut stamps = self.files.modified()?;
        for path in &self.extra {
            stamps.push(std::fs::metadata(path).and_then(|m| m.modified()).ok()?);
        }
        Some(stamps)
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.built().config
    }

    /// The current configuration with the verifier of its resumed sessions.
    pub fn built(&self) -> Built {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Rebuilds the configuration if a file changed; keeps the old one if the new files are bad.
    pub fn reload_if_changed(&self) -> bool {
        let stamp = self.modified();
        if stamp.is_none() || stamp == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return false;
        }
        match (self.build)(&self.files) {
            Ok(built) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (built, stamp);
                tracing::info!(cert = %self.files.cert_file.display(), "tls certificates reloaded");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "tls files changed but cannot be loaded, keeping the old ones");
                false
            }
        }
    }

    /// Checks the files every `every` until the returned task is aborted.
    pub fn watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                this.reload_if_changed();
            }
        })
    }
}

/// A channel to another component of the mesh: every call carries the caller's trace context.
pub type MeshChannel =
    tonic::service::interceptor::InterceptedService<Channel, crate::telemetry::PropagateTrace>;

/// A lazily connected mesh channel over mutual TLS (see [`channel`]) that propagates traces.
pub fn mesh_channel(uri: &str, client: Arc<ClientConfig>) -> Result<MeshChannel, TlsError> {
    Ok(tonic::service::interceptor::InterceptedService::new(
        channel(uri, client)?,
        crate::telemetry::PropagateTrace,
    ))
}

/// A lazily connected gRPC channel over mutual TLS. The server's certificate must name the
/// URI's host (a DNS name or an IP address).
pub fn channel(uri: &str, client: Arc<ClientConfig>) -> Result<Channel, TlsError> {
    let endpoint = Endpoint::from_shared(uri.to_owned())
        .map_err(|e| TlsError::Config(format!("endpoint {uri}: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        // One connection carries every caller's streams (the gateway's to a component): wide
        // enough that thousands of small answers waiting at once do not close it.
        .initial_connection_window_size(crate::server::MESH_CONNECTION_WINDOW);
    let connector = tower::service_fn(move |uri: http::Uri| {
        let connector = tokio_rustls::TlsConnector::from(client.clone());
        async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "uri has no host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
