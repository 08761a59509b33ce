//! The operator console (REQ MON-1, MON-2, MON-3, FAULT-5, CMP-1, EVAL-1 are its people's
//! work): server-rendered pages that call the mesh through the gateway with the signed-in
//! person's own token, so authorization stays where it is and the console holds no authority of
//! its own. Chinese by default with an English switch; times in Asia/Shanghai; every form
//! carries a CSRF token; session cookies are HttpOnly and SameSite (and Secure behind TLS).
//!
//! - `config`: the `console` section of the configuration;
//! - `web`: the router, sign-in (the development sign-in of `chargemesh up`), sign-out, the
//!   language switch and the embedded static files;
//! - `pages`: the screens; `session`, `form`, `i18n` and `mesh` what they share.

pub mod config;
pub mod form;
pub mod http_client;
pub mod i18n;
pub mod mesh;
pub mod oidc;
pub mod pages;
pub mod ratelimit;
pub mod session;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::ConsoleConfig;

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Gateway(#[from] mesh::GatewayError),
    #[error("console.dev_signin.jwt_key_file {0}: {1}")]
    DevKey(String, std::io::Error),
    #[error("console.oidc: {0}")]
    Oidc(String),
    #[error("serving the console: {0}")]
    Serve(std::io::Error),
}

/// The console's shared state, from its configuration.
pub fn app(config: ConsoleConfig) -> Result<web::Shared, ConsoleError> {
    let gateway = mesh::Gateway::new(&config)?;
    let dev_key = match &config.dev_signin {
        Some(dev) => Some(
            std::fs::read(&dev.jwt_key_file)
                .map_err(|e| ConsoleError::DevKey(dev.jwt_key_file.display().to_string(), e))?,
        ),
        None => None,
    };
    let oidc = match &config.oidc {
        Some(settings) => Some(oidc::Oidc::new(settings.clone()).map_err(ConsoleError::Oidc)?),
        None => None,
    };
    Ok(Arc::new(web::App {
        oidc,
        sessions: session::Sessions::new(
            Duration::from_secs(config.session_idle_minutes.max(1) * 60),
            config.max_sessions,
        ),
        gateway,
        dev_key,
        live: Arc::new(tokio::sync::Semaphore::new(config.max_live_streams.max(1))),
        live_by_session: std::sync::Mutex::new(std::collections::HashMap::new()),
        public_limit: ratelimit::RateLimit::new(
            config.public_complaints_per_hour,
            Duration::from_secs(3_600),
            100_000,
        ),
        config,
    }))
}

/// Serves the console on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: ConsoleConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, gateway = %config.gateway, "console serving");
    }
    let app = app(config)?;
    axum::serve(
        listener,
        web::router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(ConsoleError::Serve)
}
