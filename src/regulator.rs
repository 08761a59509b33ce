//! The development regulator: a mock Shaoxing regulator platform speaking T/CEC 102, which the
//! demo pushes to (`up --demo`), `chargemesh cec-peer` runs on its own, and the fleet benchmark
//! times status changes at.

use anyhow::Context as _;

use chargemesh_cec::peers::{PeerAccess, PeerConfig, Secret, SecretsConfig};
use chargemesh_reporting::push::PushConfig;

/// The OperatorID the demo platform pushes to regulators as.
pub const DEMO_PLATFORM_ID: &str = "MA0000001";
/// The demo regulator link's secret: the published test vectors' (protocols.md §4).
pub const DEMO_CEC_SECRET: &str = "1234567890abcdef";
/// The demo regulator's OperatorID.
pub const DEMO_REGULATOR_ID: &str = "SXJG00001";
/// Where the demo regulator takes pushes, under its address.
pub const PREFIX: &str = "/evcs/v1/";

/// The four secrets of a demo link, all `secret`.
pub fn demo_secrets(secret: &str) -> SecretsConfig {
    SecretsConfig {
        operator_secret: Secret::new(secret),
        data_secret: Secret::new(secret),
        data_iv: Secret::new(secret),
        sig_secret: Secret::new(secret),
    }
}

/// The demo regulator as a peer of the platform: Shaoxing's area, both ways, pushed to at
/// `push_url`.
pub fn demo_peer(push_url: &str) -> PeerConfig {
    PeerConfig {
        name: "shaoxing-regulator".into(),
        operator_id: DEMO_REGULATOR_ID.into(),
        access: PeerAccess::Regulator {
            area_code: "330600".into(),
        },
        inbound: demo_secrets(DEMO_CEC_SECRET),
        outbound: Some(demo_secrets(DEMO_CEC_SECRET)),
        dialect: chargemesh_cec::Dialect::default(),
        push_url: Some(push_url.to_owned()),
    }
}

/// The platform's push settings with `peer` as the one regulator pushed to.
pub fn push_to(peer: PeerConfig) -> PushConfig {
    PushConfig {
        operator_id: DEMO_PLATFORM_ID.into(),
        peers: vec![peer],
        ..Default::default()
    }
}

/// Starts a mock regulator on `listener` with the PKI's gateway certificate, taking pushes from
/// `caller` signed with `secret` under `prefix`.
pub fn start_mock(
    listener: tokio::net::TcpListener,
    pki: &std::path::Path,
    caller: &str,
    secret: &str,
    prefix: &str,
) -> anyhow::Result<chargemesh_cec::mock::MockPeer> {
    let files = chargemesh_kit::tls::TlsFiles::in_dir(pki, "gateway");
    let tls = chargemesh_kit::tls::server_config(&files, chargemesh_kit::tls::ClientAuth::Optional)
        .context("the regulator's certificate (run `chargemesh pki init` or `up` first)")?;
    let secrets = demo_secrets(secret)
        .secrets()
        .map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
    Ok(chargemesh_cec::mock::MockPeer::start(
        listener,
        tls,
        caller,
        secrets,
        chargemesh_cec::Dialect::default(),
        prefix,
    )?)
}
