//! Sign-in through the operator's identity provider (Keycloak, Authing or any OpenID
//! Connect provider): the authorization code flow with PKCE (S256), `state` bound to the
//! browser by a cookie and `nonce` to the ID token, which is verified against the provider's
//! published keys (issuer, audience, expiry, nonce). The person's roles and operator come from
//! configured claims; the access token the provider issued (a JWT for the gateway's audience)
//! is what the console then calls the gateway with, so the gateway verifies the person itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls::ClientConfig;
use serde::{Deserialize, Serialize};

use chargemesh_kit::jwt::{claim, roles_of};

use crate::http_client::{exchange, tls_config};
use crate::session::{Person, random_token};

/// `[console.oidc]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSettings {
    /// The provider's issuer URL (its discovery document is under it).
    pub issuer: String,
    pub client_id: String,
    /// A confidential client's secret (sent as HTTP Basic); empty for a public client, which
    /// PKCE protects.
    #[serde(default)]
    pub client_secret: String,
    /// Where the provider sends the browser back: this console's `/signin/callback`.
    pub redirect_url: String,
    #[serde(default = "default_scopes")]
    pub scopes: String,
    /// The ID token's claim with the person's roles (a dot goes into an object).
    #[serde(default = "default_roles")]
    pub roles_claim: String,
    /// The ID token's claim naming the operator the person works for.
    #[serde(default = "default_operator")]
    pub operator_claim: String,
    /// The ID token's claim with the person's name.
    #[serde(default = "default_name")]
    pub name_claim: String,
    /// A CA bundle for the provider's HTTPS; the web's roots when unset.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The sign-in button's words (the provider's name, say).
    #[serde(default)]
    pub label: String,
    /// Where the provider sends the browser after signing out there (registered with it, such
    /// as this console's `/signin`); the provider's own page when empty.
    #[serde(default)]
    pub post_logout_redirect_url: String,
}

fn default_scopes() -> String {
    "openid profile".into()
}
fn default_roles() -> String {
    "roles".into()
}
fn default_operator() -> String {
    "operator_id".into()
}
fn default_name() -> String {
    "name".into()
}

/// Why a sign-in did not complete.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached: {0}")]
    Provider(String),
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error("this sign-in was not started here, or took longer than 10 minutes")]
    UnknownState,
    #[error("the identity provider's ID token is not valid: {0}")]
    BadToken(String),
    #[error("the account has no role on this platform ({0} is empty)")]
    NoRole(String),
    #[error("the account names no operator ({0} is empty)")]
    NoOperator(String),
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

#[derive(Debug, Clone)]
struct Pending {
    nonce: String,
    verifier: String,
    started: Instant,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    id_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// A completed sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub person: Person,
    pub access_token: String,
    pub expires: DateTime<Utc>,
    pub id_token: String,
}

/// How long a started sign-in may take, and how many may be under way at once.
const PENDING_FOR: Duration = Duration::from_secs(600);
const MAX_PENDING: usize = 10_000;
/// How long the discovery document and keys are kept.
const KEEP_FOR: Duration = Duration::from_secs(3600);

/// The provider, as the console talks to it.
pub struct Oidc {
    settings: OidcSettings,
    tls: Arc<ClientConfig>,
    discovery: Mutex<Option<(Instant, Discovery)>>,
    keys: Mutex<Option<(Instant, JwkSet)>>,
    pending: Mutex<HashMap<String, Pending>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636: the S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Result<Self, String> {
        let tls = tls_config(settings.ca_file.as_deref())?;
        Ok(Self {
            settings,
            tls,
            discovery: Mutex::new(None),
            keys: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        })
    }

    pub fn label(&self) -> &str {
        &self.settings.label
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, OidcError> {
        let (status, body) = exchange(&self.tls, "GET", url, &[], Vec::new())
            .await
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        if !status.is_success() {
            return Err(OidcError::Provider(format!("{url}: HTTP {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| OidcError::Provider(format!("{url}: {e}")))
    }

    async fn discovery(&self) -> Result<Discovery, OidcError> {
        if let Some((at, found)) = &*self.discovery.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < KEEP_FOR
        {
            return Ok(found.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let found: Discovery = self.get_json(&url).await?;
        *self.discovery.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), found.clone()));
        Ok(found)
    }

    async fn keys(&self, uri: &str, fresh: bool) -> Result<JwkSet, OidcError> {
        if !fresh
            && let Some((at, keys)) = &*self.keys.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < KEEP_FOR
        {
            return Ok(keys.clone());
        }
        let keys: JwkSet = self.get_json(uri).await?;
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// Starts a sign-in: the provider's authorization URL to send the browser to, and the
    /// state to bind to the browser.
    pub async fn start(&self) -> Result<(String, String), OidcError> {
        let discovery = self.discovery().await?;
        let (state, nonce, verifier) = (random_token(), random_token(), random_token());
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.retain(|_, p| p.started.elapsed() < PENDING_FOR);
            if pending.len() >= MAX_PENDING {
                return Err(OidcError::Provider("too many sign-ins under way".into()));
            }
            pending.insert(
                state.clone(),
                Pending {
                    nonce: nonce.clone(),
                    verifier: verifier.clone(),
                    started: Instant::now(),
                },
            );
        }
        let separator = if discovery.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{separator}{}",
            discovery.authorization_endpoint,
            form(&[
                ("response_type", "code"),
                ("client_id", &self.settings.client_id),
                ("redirect_uri", &self.settings.redirect_url),
                ("scope", &self.settings.scopes),
                ("state", &state),
                ("nonce", &nonce),
                ("code_challenge", &challenge(&verifier)),
                ("code_challenge_method", "S256"),
            ])
        );
        Ok((url, state))
    }

    /// Completes a sign-in with the provider's code: the code exchanged (with the PKCE
    /// verifier), the ID token verified, the person read from it.
    pub async fn finish(&self, state: &str, code: &str) -> Result<SignedIn, OidcError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_FOR)
            .ok_or(OidcError::UnknownState)?;
        let discovery = self.discovery().await?;
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.settings.redirect_url.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let mut headers = vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        if self.settings.client_secret.is_empty() {
            fields.push(("client_id", self.settings.client_id.as_str()));
        } else {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                encode(&self.settings.client_id),
                encode(&self.settings.client_secret)
            ));
            headers.push(("authorization", format!("Basic {basic}")));
        }
        let (status, body) = exchange(
            &self.tls,
            "POST",
            &discovery.token_endpoint,
            &headers,
            form(&fields).into_bytes(),
        )
        .await
        .map_err(|e| OidcError::Provider(e.to_string()))?;
        if !status.is_success() {
            let said: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            return Err(OidcError::Refused(
                said.get("error_description")
                    .or_else(|| said.get("error"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("the code was not accepted")
                    .to_owned(),
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Provider(format!("token answer: {e}")))?;
        let claims = self
            .verify_id_token(&discovery, &answer.id_token, &pending.nonce)
            .await?;
        let person = self.person(&claims)?;
        let expires = Utc::now() + chrono::Duration::seconds(answer.expires_in.unwrap_or(300));
        Ok(SignedIn {
            person,
            access_token: answer.access_token,
            expires,
            id_token: answer.id_token,
        })
    }

    /// RP-initiated logout: where to send the browser to sign out at the provider as well;
    /// none when the provider publishes no end-session endpoint.
    pub async fn end_session_url(&self, id_token: &str) -> Option<String> {
        let endpoint = self.discovery().await.ok()?.end_session_endpoint?;
        let mut fields = vec![
            ("id_token_hint", id_token),
            ("client_id", self.settings.client_id.as_str()),
        ];
        if !self.settings.post_logout_redirect_url.is_empty() {
            fields.push((
                "post_logout_redirect_uri",
                self.settings.post_logout_redirect_url.as_str(),
            ));
        }
        let separator = if endpoint.contains('?') { '&' } else { '?' };
        Some(format!("{endpoint}{separator}{}", form(&fields)))
    }

    async fn verify_id_token(
        &self,
        discovery: &Discovery,
        token: &str,
        nonce: &str,
    ) -> Result<serde_json::Value, OidcError> {
        let bad = |e: String| OidcError::BadToken(e);
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(e.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA | Algorithm::PS256
        ) {
            return Err(bad(format!(
                "{:?} is not an accepted algorithm",
                header.alg
            )));
        }
        let find = |keys: &JwkSet| match &header.kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&self.keys(&discovery.jwks_uri, false).await?) {
            Some(jwk) => jwk,
            // A key rotated in since they were read.
            None => find(&self.keys(&discovery.jwks_uri, true).await?)
                .ok_or_else(|| bad("signed with an unknown key".into()))?,
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&discovery.issuer]);
        validation.set_audience(&[&self.settings.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| bad(e.to_string()))?
            .claims;
        if claims.get("nonce").and_then(|n| n.as_str()) != Some(nonce) {
            return Err(bad("its nonce is not this sign-in's".into()));
        }
        Ok(claims)
    }

    /// The person an ID token's claims name.
    pub fn person(&self, claims: &serde_json::Value) -> Result<Person, OidcError> {
        let text = |path: &str| {
            claim(claims, path)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let subject = text("sub").ok_or_else(|| OidcError::BadToken("no sub".into()))?;
        let roles = roles_of(claim(claims, &self.settings.roles_claim));
        if roles.is_empty() {
            return Err(OidcError::NoRole(self.settings.roles_claim.clone()));
        }
        let operator_id = text(&self.settings.operator_claim)
            .ok_or_else(|| OidcError::NoOperator(self.settings.operator_claim.clone()))?;
        Ok(Person {
            name: text(&self.settings.name_claim)
                .or_else(|| text("preferred_username"))
                .unwrap_or_else(|| subject.clone()),
            subject,
            operator_id,
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(roles_claim: &str) -> Oidc {
        Oidc::new(OidcSettings {
            issuer: "https://id.example.com/realms/sx".into(),
            client_id: "console".into(),
            client_secret: String::new(),
            redirect_url: "https://console.example.com/signin/callback".into(),
            scopes: default_scopes(),
            roles_claim: roles_claim.into(),
            operator_claim: default_operator(),
            name_claim: default_name(),
            ca_file: None,
            label: String::new(),
            post_logout_redirect_url: String::new(),
        })
        .expect("settings")
    }

    #[test]
    fn pkce_s256_is_the_rfc_7636_example() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn roles_and_operator_come_from_the_configured_claims() {
        let claims = serde_json::json!({
            "sub": "u-1", "preferred_username": "wang",
            "realm_access": {"roles": ["monitor", "offline_access"]},
            "operator_id": "MA2D3K7Q0"
        });
        let person = oidc("realm_access.roles").person(&claims).expect("person");
        assert_eq!(person.roles, ["monitor", "offline_access"]);
        assert_eq!(
            (person.name.as_str(), person.operator_id.as_str()),
            ("wang", "MA2D3K7Q0")
        );
        assert!(matches!(
            oidc("roles").person(&claims),
            Err(OidcError::NoRole(_))
        ));
        let nameless = serde_json::json!({"sub": "u-2", "roles": "monitor", "operator_id": ""});
        assert!(matches!(
            oidc("roles").person(&nameless),
            Err(OidcError::NoOperator(_))
        ));
    }
}
