//! Staff JWTs: ES256, EdDSA or RS256 signatures checked against a JWKS file, with `iss`, `aud`
//! and `exp` enforced (and `nbf` when present); the claims become a [`Principal::Staff`], the
//! roles and the operator read from the claims an identity provider puts them in
//! ([`ClaimNames`]: `roles` and `operator_id` by default, `realm_access.roles` for Keycloak's
//! realm roles, say). The JWKS file is followed
//! ([`ReloadingJwtVerifier`]): a key rotated in by the identity provider is taken without a
//! restart, and a key removed stops verifying.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::identity::Principal;

/// The claims of a staff token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    #[serde(default)]
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

impl StaffClaims {
    pub fn into_principal(self) -> Principal {
        Principal::Staff {
            subject: self.sub,
            operator_id: self.operator_id,
            roles: self.roles,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("cannot read jwks {0}")]
    Jwks(String),
    #[error("token refused: {0}")]
    Refused(String),
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// Where an identity provider's tokens carry a person's roles and operator: claim names, a dot
/// going into an object (`realm_access.roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub roles: String,
    pub operator: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            roles: "roles".into(),
            operator: "operator_id".into(),
        }
    }
}

/// The value at a dotted claim path.
pub fn claim<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .try_fold(claims, |value, name| value.as_object()?.get(name))
}

/// Roles as a list of strings, or one space-separated string.
pub fn roles_of(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(text)) => {
            text.split_whitespace().map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

/// Verifies staff tokens.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    issuer: String,
    audience: String,
    claims: ClaimNames,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtVerifier {
    /// Loads the ES256 (P-256) and EdDSA (Ed25519) keys of a JWKS document; others are skipped.
    pub fn from_jwks(jwks: &str, issuer: &str, audience: &str) -> Result<Self, JwtError> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| JwtError::Jwks(e.to_string()))?;
        let mut keys = HashMap::new();
        for (index, jwk) in set.keys.iter().enumerate() {
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                    Algorithm::EdDSA
                }
                // Keycloak's and most providers' default.
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtError::Jwks(e.to_string()))?;
            let kid = jwk
                .common
                .key_id
                .clone()
                .unwrap_or_else(|| index.to_string());
            keys.insert(kid, (key, algorithm));
        }
        if keys.is_empty() {
            return Err(JwtError::Jwks("no ES256, EdDSA or RS256 key".into()));
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            claims: ClaimNames::default(),
        })
    }

    /// Reads the roles and the operator from these claims.
    pub fn with_claims(mut self, claims: ClaimNames) -> Self {
        self.claims = claims;
        self
    }

    pub fn from_jwks_file(path: &Path, issuer: &str, audience: &str) -> Result<Self, JwtError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| JwtError::Jwks(format!("{}: {e}", path.display())))?;
        Self::from_jwks(&text, issuer, audience)
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and not-before.
    pub fn verify(&self, token: &str) -> Result<StaffClaims, JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Refused(e.to_string()))?;
        let (key, algorithm) = match &header.kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        }
        .ok_or_else(|| JwtError::Refused("unknown signing key".into()))?;
        if header.alg != *algorithm {
            return Err(JwtError::Refused("algorithm does not match the key".into()));
        }
        let mut validation = Validation::new(*algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let raw = jsonwebtoken::decode::<serde_json::Value>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| JwtError::Refused(e.to_string()))?;
        let number = |name: &str| raw.get(name).and_then(serde_json::Value::as_i64);
        let claims = StaffClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: raw
                .get("sub")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| JwtError::Refused("sub must name the person".into()))?
                .to_owned(),
            exp: number("exp").unwrap_or_default(),
            nbf: number("nbf").unwrap_or_default(),
            iat: number("iat").unwrap_or_default(),
            operator_id: claim(&raw, &self.claims.operator)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            roles: roles_of(claim(&raw, &self.claims.roles)),
        };
        // `platform_admin` acts across operators: it is the platform's, never an operator's.
        if claims.operator_id.is_some() && claims.roles.iter().any(|r| r == PLATFORM_ADMIN) {
            return Err(JwtError::Refused(
                "platform_admin is a platform role: a token naming an operator cannot hold it"
                    .into(),
            ));
        }
        Ok(claims)
    }
}

/// The role that acts for the whole platform.
pub const PLATFORM_ADMIN: &str = "platform_admin";

/// A [`JwtVerifier`] that follows its JWKS file: [`ReloadingJwtVerifier::watch`] reads the file
/// again when its contents change; a file that no longer reads as a key set leaves the keys as
/// they were (and says so in the log).
#[derive(Debug, Clone)]
pub struct ReloadingJwtVerifier {
    path: PathBuf,
    issuer: String,
    audience: String,
    claims: ClaimNames,
    current: Arc<RwLock<(Arc<JwtVerifier>, String)>>,
}

impl ReloadingJwtVerifier {
    pub fn load(path: &Path, issuer: &str, audience: &str) -> Result<Self, JwtError> {
        Self::load_with_claims(path, issuer, audience, ClaimNames::default())
    }

    /// As [`Self::load`], reading roles and operator from `claims`.
    pub fn load_with_claims(
        path: &Path,
        issuer: &str,
        audience: &str,
        claims: ClaimNames,
    ) -> Result<Self, JwtError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| JwtError::Jwks(format!("{}: {e}", path.display())))?;
        let verifier = JwtVerifier::from_jwks(&text, issuer, audience)?.with_claims(claims.clone());
        Ok(Self {
            path: path.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            claims,
            current: Arc::new(RwLock::new((Arc::new(verifier), text))),
        })
    }

    /// The keys as last read.
    pub fn current(&self) -> Arc<JwtVerifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    pub fn verify(&self, token: &str) -> Result<StaffClaims, JwtError> {
        self.current().verify(token)
    }

    /// Reads the file again; takes its keys when they changed and still read as a key set.
    pub fn reload_if_changed(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            tracing::warn!(path = %self.path.display(), "jwks unreadable, keeping the keys");
            return false;
        };
        if text == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return false;
        }
        match JwtVerifier::from_jwks(&text, &self.issuer, &self.audience)
            .map(|v| v.with_claims(self.claims.clone()))
        {
            Ok(verifier) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) =
                    (Arc::new(verifier), text);
                tracing::info!(path = %self.path.display(), "jwks reloaded");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "jwks changed but cannot be read, keeping the keys");
                false
            }
        }
    }

    /// Checks the file every `every` until the returned task is aborted.
    pub fn watch(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.reload_if_changed();
            }
        })
    }
}

/// Signs claims with an ES256 key in PKCS#8 PEM (development tokens and tests).
pub fn sign_es256(claims: &StaffClaims, pkcs8_pem: &[u8], kid: &str) -> Result<String, JwtError> {
    let key = EncodingKey::from_ec_pem(pkcs8_pem).map_err(|e| JwtError::Sign(e.to_string()))?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| JwtError::Sign(e.to_string()))
}

/// The JWK of a P-256 public key given as its uncompressed point (`0x04 || x || y`).
pub fn es256_jwk(uncompressed_point: &[u8], kid: &str) -> Result<serde_json::Value, JwtError> {
    if uncompressed_point.len() != 65 || uncompressed_point[0] != 4 {
        return Err(JwtError::Sign("not an uncompressed P-256 point".into()));
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    Ok(serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": b64.encode(&uncompressed_point[1..33]),
        "y": b64.encode(&uncompressed_point[33..]),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (String, serde_json::Value) {
        let key = rcgen::KeyPair::generate().expect("key");
        let jwk = es256_jwk(key.public_key_raw(), "k1").expect("jwk");
        (key.serialize_pem(), jwk)
    }

    fn claims(now: i64) -> StaffClaims {
        StaffClaims {
            iss: "chargemesh-dev".into(),
            aud: "chargemesh".into(),
            sub: "alice".into(),
            exp: now + 600,
            nbf: now - 5,
            iat: now,
            operator_id: Some("MA1234567".into()),
            roles: vec!["monitor".into()],
        }
    }

    fn verifier(jwk: &serde_json::Value) -> JwtVerifier {
        let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
        JwtVerifier::from_jwks(&jwks, "chargemesh-dev", "chargemesh").expect("verifier")
    }

    #[test]
    fn a_platform_admin_token_naming_an_operator_is_refused() {
        let (pem, jwk) = keypair();
        let v = verifier(&jwk);
        let now = chrono::Utc::now().timestamp();
        let mut c = claims(now);
        c.roles = vec!["monitor".into(), PLATFORM_ADMIN.into()];
        let refused = v
            .verify(&sign_es256(&c, pem.as_bytes(), "k1").expect("sign"))
            .expect_err("an operator's platform admin");
        assert!(refused.to_string().contains("platform_admin"), "{refused}");
        c.operator_id = None;
        let platform = v
            .verify(&sign_es256(&c, pem.as_bytes(), "k1").expect("sign"))
            .expect("the platform's admin");
        assert!(platform.into_principal().has_role(PLATFORM_ADMIN));
    }

    #[test]
    fn a_rotated_jwks_file_is_taken_and_a_removed_key_stops_verifying() {
        let dir = std::env::temp_dir().join(format!("cm-jwks-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jwks.json");
        let (old_pem, old_jwk) = keypair();
        let new_key = rcgen::KeyPair::generate().expect("key");
        let new_jwk = es256_jwk(new_key.public_key_raw(), "k2").expect("jwk");
        let write = |keys: &[&serde_json::Value]| {
            std::fs::write(&path, serde_json::json!({ "keys": keys }).to_string()).expect("write")
        };
        write(&[&old_jwk]);
        let v = ReloadingJwtVerifier::load(&path, "chargemesh-dev", "chargemesh").expect("load");
        let now = chrono::Utc::now().timestamp();
        let old_token = sign_es256(&claims(now), old_pem.as_bytes(), "k1").expect("sign");
        let new_token =
            sign_es256(&claims(now), new_key.serialize_pem().as_bytes(), "k2").expect("sign");
        assert!(v.verify(&old_token).is_ok());
        assert!(v.verify(&new_token).is_err(), "not yet published");
        assert!(!v.reload_if_changed(), "nothing changed");
        // Rotated: the new key published, the old one withdrawn.
        write(&[&new_jwk]);
        assert!(v.reload_if_changed());
        assert!(v.verify(&new_token).is_ok());
        assert!(
            v.verify(&old_token).is_err(),
            "a withdrawn key verifies nothing"
        );
        // A broken file keeps the keys that were good.
        std::fs::write(&path, "{ not json").expect("write");
        assert!(!v.reload_if_changed());
        assert!(v.verify(&new_token).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn accepts_a_good_token_and_yields_staff() {
        let (pem, jwk) = keypair();
        let now = chrono::Utc::now().timestamp();
        let token = sign_es256(&claims(now), pem.as_bytes(), "k1").expect("sign");
        let got = verifier(&jwk).verify(&token).expect("valid");
        assert_eq!(got.sub, "alice");
        assert!(got.into_principal().has_role("monitor"));
    }

    #[test]
    fn refuses_bad_signature_audience_expiry_and_not_before() {
        let (pem, jwk) = keypair();
        let (other_pem, _) = keypair();
        let v = verifier(&jwk);
        let now = chrono::Utc::now().timestamp();
        let forged = sign_es256(&claims(now), other_pem.as_bytes(), "k1").expect("sign");
        assert!(v.verify(&forged).is_err(), "bad signature");
        let mut c = claims(now);
        c.aud = "someone-else".into();
        assert!(
            v.verify(&sign_es256(&c, pem.as_bytes(), "k1").expect("sign"))
                .is_err(),
            "audience"
        );
        let mut c = claims(now);
        c.exp = now - 120;
        assert!(
            v.verify(&sign_es256(&c, pem.as_bytes(), "k1").expect("sign"))
                .is_err(),
            "expired"
        );
        let mut c = claims(now);
        c.nbf = now + 3600;
        assert!(
            v.verify(&sign_es256(&c, pem.as_bytes(), "k1").expect("sign"))
                .is_err(),
            "not yet valid"
        );
        let mut c = claims(now);
        c.iss = "elsewhere".into();
        assert!(
            v.verify(&sign_es256(&c, pem.as_bytes(), "k1").expect("sign"))
                .is_err(),
            "issuer"
        );
        assert!(
            v.verify(&sign_es256(&claims(now), pem.as_bytes(), "k2").expect("sign"))
                .is_err(),
            "unknown kid"
        );
        assert!(v.verify("not.a.jwt").is_err());
    }
}
