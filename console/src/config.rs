//! The console's settings (`[console]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[console]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsoleConfig {
    /// Where browsers connect, plain HTTP (TLS is the ingress's); off when empty.
    pub listen: String,
    /// The gateway the console calls, as the signed-in person: `https://host:port`.
    pub gateway: String,
    /// The CA bundle the gateway's certificate chains to.
    pub ca_file: PathBuf,
    /// Session cookies marked `Secure` (sent over HTTPS only). `up` serves plain HTTP on the
    /// loopback address and turns it off.
    pub secure_cookies: bool,
    /// A session ends after this many idle minutes (or when its token expires).
    pub session_idle_minutes: u64,
    /// Sessions held at once; the idlest goes first beyond it.
    pub max_sessions: usize,
    /// Live pages (each one status stream through the gateway) open at once; more are refused
    /// until one closes.
    pub max_live_streams: usize,
    /// Live pages one session may have open at once.
    pub max_live_per_session: usize,
    /// The console's address as drivers reach it (`https://charge.example.com`), for the QR
    /// codes of the station signs; the request's host when empty.
    pub public_url: String,
    /// Take a client's address from the first `X-Forwarded-For` hop (behind a proxy or
    /// ingress that sets it); otherwise the connection's peer.
    pub trust_forwarded_for: bool,
    /// Complaints one address may file from the public pages per hour (REQ CMP-2).
    pub public_complaints_per_hour: usize,
    /// Sign-in through the operator's OpenID Connect provider (`[console.oidc]`).
    pub oidc: Option<crate::oidc::OidcSettings>,
    /// The development sign-in: pick a demo person and role, the console signing the token
    /// with the development key. Only for `chargemesh up`; never configure it in production.
    pub dev_signin: Option<DevSignIn>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            gateway: "https://127.0.0.1:7443".into(),
            ca_file: PathBuf::from("/etc/chargemesh/tls/ca.pem"),
            secure_cookies: true,
            session_idle_minutes: 60,
            max_sessions: 10_000,
            max_live_streams: 1_000,
            max_live_per_session: 4,
            public_url: String::new(),
            trust_forwarded_for: false,
            public_complaints_per_hour: 5,
            oidc: None,
            dev_signin: None,
        }
    }
}

/// The development sign-in's key and the people it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevSignIn {
    /// The PKCS#8 PEM ES256 key the gateway's JWKS holds (the development PKI's).
    pub jwt_key_file: PathBuf,
    pub kid: String,
    pub issuer: String,
    pub audience: String,
    /// The demo people to pick from.
    pub people: Vec<DemoPerson>,
}

/// A demo person of the development sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoPerson {
    /// The token's subject: for repair crews, their staff id in dispatch.
    pub subject: String,
    pub name: String,
    pub operator_id: String,
    pub roles: Vec<String>,
}
