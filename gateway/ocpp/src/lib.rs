//! OCPP-J 1.6 and 2.0.1 for the gateway: charge points connect over WebSocket and TLS to
//! `/ocpp/{chargePointId}`, and each connection becomes one telemetry stream to the telemetry
//! component as that pile's principal. The edge is a translator, not a second backend:
//! acknowledgement after commit, deduplication, liveness (REQ MON-1), scope checks and pile
//! commands all come from the stream that already has them; a CALLRESULT for a report goes back
//! only once telemetry says the report is durable.
//!
//! - [`rpc`]: the framing and the CALLERROR codes, spelled as each version spells them.
//! - [`map`]: connector states, meter values, stop reasons, timestamps, report fingerprints.
//! - [`translate`], [`v16`], [`v201`]: a CALL as reports and an answer; a command as a CALL.
//! - [`edge`]: the listeners (identity and the subprotocol before the upgrade, by [`tls`] and
//!   [`handshake`]) and [`session`], one connection's loop, with what it asks of the
//!   [`registry`].

pub mod edge;
pub mod handshake;
pub mod map;
pub mod registry;
pub mod rpc;
pub mod session;
pub mod tls;
pub mod translate;
pub mod v16;
pub mod v201;

use serde::{Deserialize, Serialize};

pub use edge::{EdgeError, OcppListeners, Upstreams, serve};
pub use tls::OperatorCa;

/// The OCPP version a connection speaks, from its negotiated subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V16,
    V201,
}

impl Version {
    /// The subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Version::V16 => "ocpp1.6",
            Version::V201 => "ocpp2.0.1",
        }
    }

    /// The version a `Sec-WebSocket-Protocol` offer asks for: 2.0.1 when both are offered.
    /// Lenient as chargers are: any case, any spacing, any order, several headers joined.
    pub fn negotiate<'a>(offers: impl IntoIterator<Item = &'a str>) -> Option<(Version, String)> {
        let offered: Vec<String> = offers
            .into_iter()
            .flat_map(|h| h.split(','))
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        [Version::V201, Version::V16].into_iter().find_map(|v| {
            offered
                .iter()
                .find(|p| p.eq_ignore_ascii_case(v.subprotocol()))
                .map(|p| (v, p.clone()))
        })
    }
}

/// The OCPP edge's settings (`[gateway.ocpp]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OcppConfig {
    /// Where charge points connect over TLS (security profiles 2 and 3); off when empty.
    pub listen: String,
    /// INSECURE: where charge points connect over plain TCP with HTTP Basic (security profile
    /// 1). Only for a TLS-terminating proxy in front of the edge on a private network; off
    /// when empty, which it should stay otherwise.
    pub insecure_listen: String,
    /// Operators' own CAs, for charge point certificates that follow the OCPP security
    /// whitepaper (CN = charge point id, O = operator name).
    pub operator_cas: Vec<crate::tls::OperatorCa>,
    /// Offer TLS 1.2 besides 1.3: most chargers in the field speak only 1.2.
    pub allow_tls12: bool,
    /// Profile 2 password checks at once (each is a deliberately slow salted hash).
    pub max_password_checks: usize,
    /// The path before the charge point id.
    pub path_prefix: String,
    /// Connections held at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Time for the TLS handshake and the WebSocket upgrade, ms.
    pub handshake_timeout_ms: u64,
    /// The largest WebSocket message a charge point may send, bytes.
    pub max_frame_bytes: usize,
    /// How often the edge pings a charge point, s.
    pub ping_interval_s: u64,
    /// How long past a ping the edge waits for any frame before it closes the connection as
    /// half-open, s.
    pub pong_timeout_s: u64,
    /// How long a CALL the edge sends waits for its answer, s; the command is then left to the
    /// telemetry component's timeout.
    pub call_timeout_s: u64,
    /// The heartbeat interval a BootNotification is answered with, s.
    pub heartbeat_interval_s: u32,
    /// CALLs a charge point may have waiting while one is handled; more are answered with a
    /// CALLERROR (OCPP allows one at a time).
    pub max_queued_calls: usize,
}

impl Default for OcppConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            insecure_listen: String::new(),
            operator_cas: Vec::new(),
            allow_tls12: true,
            max_password_checks: 8,
            path_prefix: "/ocpp/".into(),
            max_connections: 20_000,
            handshake_timeout_ms: 10_000,
            max_frame_bytes: 64 * 1024,
            ping_interval_s: 60,
            pong_timeout_s: 30,
            call_timeout_s: 30,
            heartbeat_interval_s: 300,
            max_queued_calls: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netsec_1_subprotocols_are_negotiated_leniently_preferring_2_0_1() {
        assert_eq!(
            Version::negotiate(["ocpp1.6"]).map(|v| v.0),
            Some(Version::V16)
        );
        assert_eq!(
            Version::negotiate([" OCPP1.6 ,ocpp2.0.1"]),
            Some((Version::V201, "ocpp2.0.1".into()))
        );
        assert_eq!(
            Version::negotiate(["ocpp1.5", "OCPP1.6"]),
            Some((Version::V16, "OCPP1.6".into())),
            "answered as offered"
        );
        assert_eq!(Version::negotiate(["ocpp1.5, mqtt"]), None);
    }
}
