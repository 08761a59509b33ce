//! The gateway: the only edge clients reach (REQ NETSEC-1). Each protocol has its edge here —
//! the gRPC edge ([`grpc`]), the T/CEC 102 edge (`chargemesh_cec::edge`, beside its codec) and
//! the OCPP edge (`chargemesh_ocpp`, beside its translation) —
//! sharing identity (certificates and JWTs become a `Principal`), the method policy
//! ([`policy`]), the routing table ([`routes`]) and forwarding over the mesh's mutual TLS with
//! the principal in metadata the components trust only from the gateway's certificate.

pub mod drain;
pub mod frames;
pub mod grpc;
pub mod limits;
pub mod policy;
pub mod routes;
pub mod upstream;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use chargemesh_cec::edge::CecConfig;
use chargemesh_kit::component::{Context, Shutdown, spawn_admin};
use chargemesh_kit::tls::{self, TlsFiles};

pub use grpc::{Gateway, authenticate, serve};

/// Staff token settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtSettings {
    /// A JWKS document with the ES256, EdDSA or RS256 keys that sign staff tokens (the
    /// identity provider's, when staff sign in through one).
    pub jwks_file: PathBuf,
    pub issuer: String,
    pub audience: String,
    /// The claim holding a person's roles (a list, or a space-separated string); a dot goes
    /// into an object, as Keycloak's `realm_access.roles`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// The claim naming the operator a person works for.
    #[serde(default = "default_operator_claim")]
    pub operator_claim: String,
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_operator_claim() -> String {
    "operator_id".into()
}

/// The gateway's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// Where clients connect.
    pub listen: String,
    /// The gateway's certificate (also its client certificate on the mesh) and the CA bundle.
    pub tls: TlsFiles,
    /// Staff JWTs; when set, a client may connect without a certificate and bring a token.
    pub jwt: Option<JwtSettings>,
    /// Mesh component name to its URL, such as `asset = "https://asset:7001"`: one for each
    /// component of [`routes::COMPONENTS`].
    pub upstreams: BTreeMap<String, String>,
    /// The T/CEC 102 edge for regulator and operator platforms; off unless `cec.listen` is set.
    pub cec: CecConfig,
    /// The OCPP 1.6J / 2.0.1 edge for charge points; off unless `ocpp.listen` is set.
    pub ocpp: chargemesh_ocpp::OcppConfig,
    /// The YKC (云快充) 1.6 edge for Chinese piles; off unless `ykc.listen` is set.
    pub ykc: chargemesh_ykc::YkcConfig,
    /// Where plaintext gRPC health answers Kubernetes' probes; off when empty.
    pub admin_listen: String,
    /// What one connection and one principal may hold of the edge.
    pub limits: limits::EdgeLimits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:7443".into(),
            tls: TlsFiles::in_dir(std::path::Path::new("pki"), "gateway"),
            jwt: None,
            upstreams: BTreeMap::new(),
            cec: CecConfig::default(),
            ocpp: chargemesh_ocpp::OcppConfig::default(),
            ykc: chargemesh_ykc::YkcConfig::default(),
            admin_listen: String::new(),
            limits: limits::EdgeLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Jwt(#[from] chargemesh_kit::jwt::JwtError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error(transparent)]
    Serve(#[from] tonic::transport::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Component(#[from] chargemesh_kit::component::ComponentError),
    #[error("T/CEC 102 edge: {0}")]
    Cec(#[from] chargemesh_cec::edge::EdgeError),
    #[error("OCPP edge: {0}")]
    Ocpp(#[from] chargemesh_ocpp::EdgeError),
    #[error("YKC edge: {0}")]
    Ykc(String),
}

/// The gateway's listeners: the gRPC edge, and the T/CEC 102 and OCPP edges when configured.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub cec: Option<TcpListener>,
    pub ocpp: Option<TcpListener>,
    /// The OCPP edge's profile 1 listener (plain TCP behind a TLS-terminating proxy).
    pub ocpp_insecure: Option<TcpListener>,
    /// The YKC edge's listeners (plain TCP, TLS).
    pub ykc: chargemesh_ykc::edge::Listeners,
}

impl Listeners {
    /// Binds what the configuration asks for.
    pub async fn bind(config: &GatewayConfig) -> Result<Self, GatewayError> {
        let grpc = chargemesh_kit::component::bind(&config.listen).await?;
        let optional = |listen: &str| {
            let listen = listen.trim().to_owned();
            async move {
                if listen.is_empty() {
                    Ok(None)
                } else {
                    chargemesh_kit::component::bind(&listen).await.map(Some)
                }
            }
        };
        let cec = optional(&config.cec.listen).await?;
        let ocpp = optional(&config.ocpp.listen).await?;
        let ocpp_insecure = optional(&config.ocpp.insecure_listen).await?;
        let ykc = chargemesh_ykc::edge::Listeners {
            plain: optional(&config.ykc.listen).await?,
            tls: optional(&config.ykc.tls_listen).await?,
        };
        Ok(Self {
            grpc,
            cec,
            ocpp,
            ocpp_insecure,
            ykc,
        })
    }
}

/// The URL of a component among the gateway's upstreams.
fn upstream(config: &GatewayConfig, component: &str) -> Result<String, GatewayError> {
    config
        .upstreams
        .get(component)
        .cloned()
        .ok_or_else(|| GatewayError::Config(format!("gateway.upstreams has no {component}")))
}

/// Runs every edge until `shutdown`: the gRPC edge (draining its long-lived streams on the
/// signal), the T/CEC 102 edge when it has a listener, and the admin port.
pub async fn run(
    config: &GatewayConfig,
    ctx: &Context,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), GatewayError> {
    if let Ok(addr) = listeners.grpc.local_addr() {
        tracing::info!(%addr, "gateway serving");
    }
    let admin = spawn_admin("gateway", &config.admin_listen, &shutdown, ctx.grace).await?;
    // The protocol edges' channels to the mesh, as the gateway's own client.
    let client = std::sync::Arc::new(tls::client_config(&config.tls)?);
    let channel = |component: &str| -> Result<_, GatewayError> {
        Ok(tls::mesh_channel(
            &upstream(config, component)?,
            client.clone(),
        )?)
    };
    let cec_task = match listeners.cec {
        Some(listener) => {
            let upstreams = chargemesh_cec::edge::Upstreams {
                registry: channel("asset")?,
                telemetry: channel("telemetry")?,
                metering: channel("metering")?,
            };
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, prefix = %config.cec.prefix, "T/CEC 102 edge serving");
            }
            let (cec, files, clock, seen, stop) = (
                config.cec.clone(),
                config.tls.clone(),
                ctx.clock.clone(),
                ctx.bus.clone(),
                shutdown.clone(),
            );
            Some(tokio::spawn(async move {
                chargemesh_cec::edge::serve(
                    &cec,
                    &files,
                    upstreams,
                    listener,
                    clock,
                    seen,
                    stop.wait(),
                )
                .await
            }))
        }
        None => None,
    };
    let ocpp_listeners = chargemesh_ocpp::OcppListeners {
        tls: listeners.ocpp,
        insecure: listeners.ocpp_insecure,
    };
    let ocpp_task = match (&ocpp_listeners.tls, &ocpp_listeners.insecure) {
        (None, None) => None,
        _ => {
            let listeners = ocpp_listeners;
            let upstreams = chargemesh_ocpp::Upstreams {
                registry: channel("asset")?,
                telemetry: channel("telemetry")?,
            };
            for addr in [&listeners.tls, &listeners.insecure]
                .into_iter()
                .flatten()
                .filter_map(|l| l.local_addr().ok())
            {
                tracing::info!(%addr, prefix = %config.ocpp.path_prefix, "OCPP edge serving");
            }
            let (ocpp, files, trust_domain, stop) = (
                config.ocpp.clone(),
                config.tls.clone(),
                ctx.trust_domain.clone(),
                shutdown.clone(),
            );
            Some(tokio::spawn(async move {
                chargemesh_ocpp::serve(
                    &ocpp,
                    &files,
                    &trust_domain,
                    upstreams,
                    listeners,
                    stop.wait(),
                )
                .await
            }))
        }
    };
    let ykc_task = match (&listeners.ykc.plain, &listeners.ykc.tls) {
        (None, None) => None,
        (plain, tls) => {
            let upstreams = chargemesh_ykc::edge::Upstreams {
                registry: channel("asset")?,
                telemetry: channel("telemetry")?,
            };
            for (addr, transport) in [(plain, "tcp"), (tls, "tls")]
                .into_iter()
                .filter_map(|(l, t)| Some((l.as_ref()?.local_addr().ok()?, t)))
            {
                tracing::info!(%addr, transport, "YKC edge serving");
            }
            let (ykc, files, stop) = (config.ykc.clone(), config.tls.clone(), shutdown.clone());
            let ykc_listeners = listeners.ykc;
            Some(tokio::spawn(async move {
                chargemesh_ykc::edge::serve(ykc_listeners, ykc, &files, upstreams, stop.wait())
                    .await
            }))
        }
    };
    let serve = grpc::serve(
        config,
        &ctx.trust_domain,
        listeners.grpc,
        &[chargemesh_proto::FILE_DESCRIPTOR_SET],
        shutdown.clone().wait(),
    );
    let served = shutdown.serve_with_grace(ctx.grace, serve).await;
    if let Some(task) = cec_task {
        match task.await {
            Ok(result) => result?,
            Err(error) => tracing::warn!(%error, "the T/CEC 102 edge panicked"),
        }
    }
    if let Some(task) = ocpp_task {
        match task.await {
            Ok(result) => result?,
            Err(error) => tracing::warn!(%error, "the OCPP edge panicked"),
        }
    }
    if let Some(task) = ykc_task {
        match task.await {
            Ok(result) => result.map_err(GatewayError::Ykc)?,
            Err(error) => tracing::warn!(%error, "the YKC edge panicked"),
        }
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    served
}
