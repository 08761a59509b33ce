//! The platforms Chargemesh exchanges with over T/CEC 102, as configured: who each is, what it
//! may see, the secrets of each direction, its dialect and where it takes pushes.

use serde::{Deserialize, Serialize};

use crate::{CecError, Dialect, Secrets};

/// A secret string that never prints.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The four secrets of one direction of a peer link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsConfig {
    pub operator_secret: Secret,
    pub data_secret: Secret,
    pub data_iv: Secret,
    pub sig_secret: Secret,
}

impl SecretsConfig {
    pub fn secrets(&self) -> Result<Secrets, CecError> {
        Secrets::new(
            self.operator_secret.expose(),
            self.data_secret.expose(),
            self.data_iv.expose(),
            self.sig_secret.expose(),
        )
    }
}

/// What a peer may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PeerAccess {
    /// A regulator platform: every station of its area.
    Regulator { area_code: String },
    /// An operator platform connected in platform mode: its own stations.
    Operator { operator_id: String },
}

impl PeerConfig {
    /// Refuses what would make the peer see more than it should: a regulator without a valid
    /// area code (an empty one would cover every area), an operator peer without its operator,
    /// a peer without its OperatorID.
    pub fn validate(&self) -> Result<(), CecError> {
        let bad = |problem: &str| CecError::BadPeer {
            peer: self.name.clone(),
            problem: problem.to_owned(),
        };
        if self.operator_id.trim().is_empty() {
            return Err(bad("operator_id is empty"));
        }
        match &self.access {
            PeerAccess::Regulator { area_code }
                if !chargemesh_kit::area::is_area_code(area_code) =>
            {
                Err(bad(&format!(
                    "area_code {area_code:?} is not a 6-digit GB/T 2260 code"
                )))
            }
            PeerAccess::Operator { operator_id } if operator_id.trim().is_empty() => {
                Err(bad("access.operator_id is empty"))
            }
            _ => Ok(()),
        }
    }
}

/// One platform Chargemesh exchanges with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    pub name: String,
    /// The peer's own OperatorID, which its requests carry.
    pub operator_id: String,
    pub access: PeerAccess,
    /// The secrets of the peer's calls to us (and our answers).
    pub inbound: SecretsConfig,
    /// The secrets of our calls to the peer (pushes), when we push to it.
    #[serde(default)]
    pub outbound: Option<SecretsConfig>,
    #[serde(default)]
    pub dialect: Dialect,
    /// Where the peer serves the interfaces we push to, such as
    /// `https://regulator.example/evcs/v1`.
    #[serde(default)]
    pub push_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regulator(area_code: &str) -> PeerConfig {
        PeerConfig {
            name: "sx".into(),
            operator_id: "SXJG00001".into(),
            access: PeerAccess::Regulator {
                area_code: area_code.into(),
            },
            inbound: SecretsConfig::default(),
            outbound: None,
            dialect: Dialect::default(),
            push_url: None,
        }
    }

    #[test]
    fn base_2_a_regulator_peer_needs_an_area_code_an_empty_one_is_not_every_area() {
        assert!(regulator("330600").validate().is_ok());
        for bad in ["", "  ", "3306", "abcdef"] {
            let refused = regulator(bad).validate().expect_err(bad);
            assert!(refused.to_string().contains("area_code"), "{refused}");
        }
        let operator = PeerConfig {
            access: PeerAccess::Operator {
                operator_id: String::new(),
            },
            ..regulator("330600")
        };
        assert!(operator.validate().is_err());
    }
}
