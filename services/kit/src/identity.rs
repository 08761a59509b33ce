//! Who is calling: the [`Principal`] derived from a client certificate's SPIFFE URI or from a
//! verified staff JWT, and its transport between the gateway and the services.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The metadata key that carries the principal from the gateway to a service. Services honour it
/// only on connections whose peer certificate is the gateway's.
pub const PRINCIPAL_METADATA_KEY: &str = "x-chargemesh-principal-bin";

/// The mesh name of the gateway, as in `spiffe://<trust-domain>/service/gateway`.
pub const GATEWAY_SERVICE: &str = "gateway";

/// A staff role carried in a JWT's `roles` claim.
pub type Role = String;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// An operator platform (`.../operator/<id>`), also a third-party platform in 互联互通 mode.
    Operator { operator_id: String },
    /// A station controller (`.../operator/<id>/station/<id>`).
    Station {
        operator_id: String,
        station_id: String,
    },
    /// A single pile (`.../operator/<id>/station/<id>/pile/<id>`).
    Pile {
        operator_id: String,
        station_id: String,
        pile_id: String,
    },
    /// A regulator platform for an administrative area (`.../regulator/<area-code>`).
    Regulator { area_code: String },
    /// A mesh component (`.../service/<name>`).
    Service { name: String },
    /// Operator staff, from a verified JWT.
    Staff {
        subject: String,
        operator_id: Option<String>,
        roles: Vec<Role>,
    },
    /// A caller with no credential at all (a driver, through the console's public station
    /// pages): the gateway lets it call only the public methods (REQ SVC-1, SVC-2, SIGN-1,
    /// SIGN-2, CMP-2), and it may see or act for nothing else.
    Public,
}

/// The principal kinds, for policy tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    Operator,
    Station,
    Pile,
    Regulator,
    Service,
    Staff,
    Public,
}

/// Why an identity could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not a spiffe uri: {0}")]
    NotSpiffe(String),
    #[error("trust domain {found} is not {expected}")]
    TrustDomain { expected: String, found: String },
    #[error("unrecognised spiffe path {0}")]
    Path(String),
    #[error("certificate carries no spiffe uri")]
    NoUri,
    #[error("certificate cannot be parsed")]
    Certificate,
    #[error("principal metadata is malformed")]
    Metadata,
}

impl Principal {
    /// The kind, for policy lookups.
    pub fn kind(&self) -> PrincipalKind {
        match self {
            Principal::Operator { .. } => PrincipalKind::Operator,
            Principal::Station { .. } => PrincipalKind::Station,
            Principal::Pile { .. } => PrincipalKind::Pile,
            Principal::Regulator { .. } => PrincipalKind::Regulator,
            Principal::Service { .. } => PrincipalKind::Service,
            Principal::Staff { .. } => PrincipalKind::Staff,
            Principal::Public => PrincipalKind::Public,
        }
    }

    /// The operator this principal acts for, if any.
    pub fn operator_id(&self) -> Option<&str> {
        match self {
            Principal::Operator { operator_id }
            | Principal::Station { operator_id, .. }
            | Principal::Pile { operator_id, .. } => Some(operator_id),
            Principal::Staff { operator_id, .. } => operator_id.as_deref(),
            Principal::Regulator { .. } | Principal::Service { .. } | Principal::Public => None,
        }
    }

    /// The operator a request is about (`requested`, or the caller's own when empty), when the
    /// caller may act for it: the operator's own staff and certificates, mesh components and the
    /// platform's administrators. Anyone else gets `NOT_FOUND` for the operator's `what`, and so
    /// learns nothing of them.
    pub fn acting_for(&self, requested: &str, what: &str) -> Result<String, crate::Error> {
        let requested = requested.trim();
        let own = self.operator_id();
        let operator = match (requested, own) {
            ("", Some(own)) => own.to_owned(),
            ("", None) => return Err(crate::Error::bad_field("operator_id", "is required")),
            (given, _) => given.to_owned(),
        };
        let admin = matches!(self, Principal::Staff { operator_id: None, roles, .. }
            if roles.iter().any(|r| r == "platform_admin"));
        match self {
            Principal::Service { .. } => Ok(operator),
            _ if admin || own == Some(operator.as_str()) => Ok(operator),
            _ => Err(crate::Error::NotFound(format!(
                "operator {operator}'s {what}"
            ))),
        }
    }

    /// Staff roles; empty for certificate principals.
    pub fn roles(&self) -> &[Role] {
        match self {
            Principal::Staff { roles, .. } => roles,
            _ => &[],
        }
    }

    /// Whether this is staff holding `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|r| r == role)
    }

    /// Parses `spiffe://<trust_domain>/<path>` into a principal.
    pub fn from_spiffe_uri(uri: &str, trust_domain: &str) -> Result<Self, IdentityError> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| IdentityError::NotSpiffe(uri.to_owned()))?;
        let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !domain.eq_ignore_ascii_case(trust_domain) {
            return Err(IdentityError::TrustDomain {
                expected: trust_domain.to_owned(),
                found: domain.to_owned(),
            });
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments.iter().any(|s| !is_identifier(s)) {
            return Err(IdentityError::Path(path.to_owned()));
        }
        let owned = |s: &str| s.to_owned();
        match segments.as_slice() {
            ["operator", op] => Ok(Principal::Operator {
                operator_id: owned(op),
            }),
            ["operator", op, "station", st] => Ok(Principal::Station {
                operator_id: owned(op),
                station_id: owned(st),
            }),
            ["operator", op, "station", st, "pile", pile] => Ok(Principal::Pile {
                operator_id: owned(op),
                station_id: owned(st),
                pile_id: owned(pile),
            }),
            ["regulator", area] if area.len() == 6 && area.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Principal::Regulator {
                    area_code: owned(area),
                })
            }
            ["service", name] => Ok(Principal::Service { name: owned(name) }),
            _ => Err(IdentityError::Path(path.to_owned())),
        }
    }

    /// The SPIFFE URI of a certificate principal; `None` for staff.
    pub fn spiffe_uri(&self, trust_domain: &str) -> Option<String> {
        let path = match self {
            Principal::Operator { operator_id } => format!("operator/{operator_id}"),
            Principal::Station {
                operator_id,
                station_id,
            } => format!("operator/{operator_id}/station/{station_id}"),
            Principal::Pile {
                operator_id,
                station_id,
                pile_id,
            } => format!("operator/{operator_id}/station/{station_id}/pile/{pile_id}"),
            Principal::Regulator { area_code } => format!("regulator/{area_code}"),
            Principal::Service { name } => format!("service/{name}"),
            Principal::Staff { .. } | Principal::Public => return None,
        };
        Some(format!("spiffe://{trust_domain}/{path}"))
    }

    /// Derives the principal from a DER certificate's first SPIFFE URI SAN.
    pub fn from_certificate(der: &[u8], trust_domain: &str) -> Result<Self, IdentityError> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Certificate)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::Certificate)?
            .ok_or(IdentityError::NoUri)?;
        let uri = san
            .value
            .general_names
            .iter()
            .find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
                _ => None,
            })
            .ok_or(IdentityError::NoUri)?;
        Self::from_spiffe_uri(uri, trust_domain)
    }

    /// Encodes for [`PRINCIPAL_METADATA_KEY`].
    pub fn to_metadata_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes from [`PRINCIPAL_METADATA_KEY`].
    pub fn from_metadata_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        serde_json::from_slice(bytes).map_err(|_| IdentityError::Metadata)
    }
}

/// A request to another component made on behalf of `principal` (the gateway's edges act for the
/// client they serve); components honour it only from the gateway's certificate.
pub fn request_as<T>(principal: &Principal, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert_bin(
        PRINCIPAL_METADATA_KEY,
        tonic::metadata::MetadataValue::from_bytes(&principal.to_metadata_bytes()),
    );
    request
}

/// The telemetry sequence of a report an edge translates (a T/CEC 102 push, an OCPP message),
/// made from the parts that identify it: the same report sent again gets the same sequence, so
/// telemetry stores it once (FNV-1a, kept within 63 bits and above zero).
pub fn report_sequence(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (hash >> 1).max(1)
}

/// The canonical, human-readable form used in change records and logs.
impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Staff {
                subject,
                operator_id,
                ..
            } => match operator_id {
                Some(op) => write!(f, "staff:{subject}@operator/{op}"),
                None => write!(f, "staff:{subject}"),
            },
            Principal::Public => f.write_str("public"),
            other => {
                let uri = other.spiffe_uri("").unwrap_or_default();
                f.write_str(uri.trim_start_matches("spiffe:///"))
            }
        }
    }
}

/// A registry identifier as identities carry them: 1 to 64 letters, digits, '-', '_' or '.'.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    #[test]
    fn acting_for_lets_the_operator_its_platform_and_the_mesh_act_and_hides_the_rest() {
        let staff = |operator: Option<&str>, role: &str| Principal::Staff {
            subject: "u".into(),
            operator_id: operator.map(str::to_owned),
            roles: vec![role.to_owned()],
        };
        let own = staff(Some("A"), "monitor");
        assert_eq!(own.acting_for("", "records").ok().as_deref(), Some("A"));
        assert_eq!(own.acting_for(" A ", "records").ok().as_deref(), Some("A"));
        assert!(matches!(
            own.acting_for("B", "records"),
            Err(crate::Error::NotFound(_))
        ));
        let admin = staff(None, "platform_admin");
        assert_eq!(admin.acting_for("B", "records").ok().as_deref(), Some("B"));
        assert!(matches!(
            admin.acting_for("", "records"),
            Err(crate::Error::Invalid { .. })
        ));
        let regulator = Principal::Regulator {
            area_code: "330600".into(),
        };
        assert!(regulator.acting_for("A", "records").is_err());
    }

    use super::*;

    #[test]
    fn report_sequences_are_stable_positive_and_distinct() {
        let a = report_sequence(&["start", "1", "2026"]);
        assert_eq!(a, report_sequence(&["start", "1", "2026"]));
        assert_ne!(
            a,
            report_sequence(&["start", "12", "026"]),
            "parts are delimited"
        );
        assert!(a > 0 && a < 1 << 63);
    }

    const TD: &str = "chargemesh.test";

    #[test]
    fn parses_every_spiffe_path_form() {
        assert_eq!(
            Principal::from_spiffe_uri("spiffe://chargemesh.test/operator/MA1234567", TD),
            Ok(Principal::Operator {
                operator_id: "MA1234567".into()
            })
        );
        assert_eq!(
            Principal::from_spiffe_uri("spiffe://chargemesh.test/operator/OP/station/S1", TD),
            Ok(Principal::Station {
                operator_id: "OP".into(),
                station_id: "S1".into()
            })
        );
        assert_eq!(
            Principal::from_spiffe_uri(
                "spiffe://chargemesh.test/operator/OP/station/S1/pile/P1",
                TD
            ),
            Ok(Principal::Pile {
                operator_id: "OP".into(),
                station_id: "S1".into(),
                pile_id: "P1".into()
            })
        );
        assert_eq!(
            Principal::from_spiffe_uri("spiffe://chargemesh.test/regulator/330600", TD),
            Ok(Principal::Regulator {
                area_code: "330600".into()
            })
        );
        assert_eq!(
            Principal::from_spiffe_uri("spiffe://chargemesh.test/service/gateway", TD),
            Ok(Principal::Service {
                name: "gateway".into()
            })
        );
    }

    #[test]
    fn refuses_foreign_domains_and_odd_paths() {
        assert!(matches!(
            Principal::from_spiffe_uri("spiffe://evil.test/operator/OP", TD),
            Err(IdentityError::TrustDomain { .. })
        ));
        for bad in [
            "https://chargemesh.test/operator/OP",
            "spiffe://chargemesh.test/operator",
            "spiffe://chargemesh.test/operator/OP/pile/P1",
            "spiffe://chargemesh.test/regulator/33",
            "spiffe://chargemesh.test/operator/../x",
            "spiffe://chargemesh.test/operator//station/S",
        ] {
            assert!(Principal::from_spiffe_uri(bad, TD).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_through_uri_and_metadata() {
        let p = Principal::Pile {
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: "P1".into(),
        };
        let uri = p.spiffe_uri(TD).unwrap_or_default();
        assert_eq!(Principal::from_spiffe_uri(&uri, TD), Ok(p.clone()));
        let staff = Principal::Staff {
            subject: "alice".into(),
            operator_id: Some("OP".into()),
            roles: vec!["monitor".into()],
        };
        assert_eq!(
            Principal::from_metadata_bytes(&staff.to_metadata_bytes()),
            Ok(staff.clone())
        );
        assert_eq!(staff.to_string(), "staff:alice@operator/OP");
        assert_eq!(p.to_string(), "operator/OP/station/S1/pile/P1");
        assert!(Principal::from_metadata_bytes(b"{not json").is_err());
    }

    #[test]
    fn reads_the_spiffe_uri_of_a_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://chargemesh.test/regulator/330600"
                .try_into()
                .expect("uri"),
        ));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            Principal::from_certificate(cert.der(), TD),
            Ok(Principal::Regulator {
                area_code: "330600".into()
            })
        );
    }
}
