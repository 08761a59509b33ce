//! The YKC edge's settings (`[gateway.ykc]`) and the source networks each operator's piles may
//! arrive from (REQ NETSEC-1: YKC carries no credential, so where a pile connects from is
//! checked before its pile code is).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `[gateway.ykc]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct YkcConfig {
    /// Where YKC piles connect over plain TCP (the protocol's own transport); off when empty.
    pub listen: String,
    /// Where YKC piles or their tunnel boxes connect over TLS (1.3 or 1.2, the gateway's
    /// certificate; the pile is still known by its network and pile code); off when empty.
    pub tls_listen: String,
    /// Each operator's source networks: a pile whose address is in none is refused before it
    /// is read, and one whose pile code belongs to an operator other than the networks' is
    /// refused at login.
    pub operators: Vec<OperatorNetworks>,
    /// Connections held at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Time from the connection to a valid login, s.
    pub login_timeout_s: u64,
    /// The pile's heartbeat period, s (YKC: 10).
    pub heartbeat_s: u64,
    /// Heartbeats missed before the pile is offline (YKC: 3); the connection then closes.
    pub missed_heartbeats: u32,
    /// How often a pile's heartbeats are passed on to telemetry, s: liveness within the edge
    /// is kept from every frame, the mesh needs one now and then.
    pub forward_heartbeat_s: u64,
    /// How long a command waits for the pile's reply, s.
    pub command_timeout_s: u64,
    /// How long a remote start has to be accepted (0x33) and seen charging under its serial
    /// (0x13), s (YKC: 90); otherwise it failed, and the pile is told to stop.
    pub start_window_s: u64,
    /// The account balance a remote start tells the pile, yuan (the platform settles; piles
    /// refuse to start on a zero balance).
    pub remote_start_balance_yuan: u32,
    /// How often a station's tariff is read again, s: a pile whose billing model is not the
    /// one in force is given it (0x58) within this (REQ MON-10).
    pub tariff_refresh_s: u64,
    /// How often a pile's clock is set (0x56), s, after the one at login (YKC: daily).
    pub time_sync_s: u64,
}

impl Default for YkcConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            tls_listen: String::new(),
            operators: Vec::new(),
            max_connections: 20_000,
            login_timeout_s: 30,
            heartbeat_s: 10,
            missed_heartbeats: 3,
            forward_heartbeat_s: 60,
            command_timeout_s: 30,
            start_window_s: 90,
            remote_start_balance_yuan: 1_000,
            tariff_refresh_s: 60,
            time_sync_s: 86_400,
        }
    }
}

/// One operator's source networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorNetworks {
    pub operator_id: String,
    /// CIDR blocks such as `10.20.0.0/16` or `2001:db8::/32`; a bare address is one host.
    pub networks: Vec<String>,
}

/// A network block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR block"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?,
        };
        Ok(Self { address, prefix })
    }
}

impl Network {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The operators' networks, parsed.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    operators: Vec<(String, Vec<Network>)>,
}

impl AllowList {
    /// Parses the configured networks; an error names the operator and the block.
    pub fn new(operators: &[OperatorNetworks]) -> Result<Self, String> {
        let operators = operators
            .iter()
            .map(|o| {
                let networks = o
                    .networks
                    .iter()
                    .map(|n| {
                        n.parse()
                            .map_err(|e| format!("gateway.ykc.operators {}: {e}", o.operator_id))
                    })
                    .collect::<Result<Vec<Network>, String>>()?;
                Ok((o.operator_id.clone(), networks))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { operators })
    }

    /// The operators whose networks hold `ip`.
    pub fn operators_of(&self, ip: IpAddr) -> Vec<String> {
        self.operators
            .iter()
            .filter(|(_, networks)| networks.iter().any(|n| n.contains(ip)))
            .map(|(operator, _)| operator.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn netsec_1_source_networks_are_matched_by_prefix() {
        let list = AllowList::new(&[
            OperatorNetworks {
                operator_id: "OPA".into(),
                networks: vec!["10.20.0.0/16".into(), "2001:db8::/32".into()],
            },
            OperatorNetworks {
                operator_id: "OPB".into(),
                networks: vec!["10.20.5.7".into(), "0.0.0.0/0".into()],
            },
        ])
        .unwrap_or_default();
        assert_eq!(list.operators_of(ip("10.20.5.7")), ["OPA", "OPB"]);
        assert_eq!(list.operators_of(ip("10.21.0.1")), ["OPB"]);
        assert_eq!(list.operators_of(ip("::ffff:10.20.1.1")), ["OPA", "OPB"]);
        assert_eq!(list.operators_of(ip("2001:db8::1")), ["OPA"]);
        assert!(
            AllowList::default()
                .operators_of(ip("127.0.0.1"))
                .is_empty()
        );
    }

    #[test]
    fn netsec_1_a_bad_block_names_its_operator() {
        let bad = AllowList::new(&[OperatorNetworks {
            operator_id: "OPA".into(),
            networks: vec!["10.0.0.0/33".into()],
        }]);
        assert_eq!(
            bad.err(),
            Some("gateway.ykc.operators OPA: \"10.0.0.0/33\": the prefix must be 0 to 32".into())
        );
    }
}
