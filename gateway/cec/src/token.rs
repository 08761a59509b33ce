//! Access tokens (`query_token`) that any gateway replica can check without shared state: a
//! token names its peer and expiry and carries an HMAC-SHA256 over both under the edge's token
//! key. Replicas read the key from one file of their own (`cec.token_key_file`, a Secret every
//! gateway pod mounts), so a token issued by one pod is good on every other and stays good when
//! the TLS certificate rotates; changing the key file invalidates the tokens, and peers fetch
//! new ones on 4002 as the protocol expects.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};

type HmacSha256 = Hmac<sha2::Sha256>;

/// Why a token is refused (each answered with `Ret` 4002).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token unknown")]
    Unknown,
    #[error("token of another peer")]
    NotThePeers,
    #[error("token expired")]
    Expired,
}

/// Issues and checks tokens under one key.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

impl TokenKey {
    /// The key derived from secret material shared by every replica (domain-separated, so the
    /// material itself never signs a token).
    pub fn derive(material: &[u8]) -> Self {
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(b"chargemesh T/CEC 102 access tokens")
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(material);
        Self(mac.finalize().into_bytes().into())
    }

    /// The key in `path`: at least 32 bytes of secret (surrounding whitespace is not part of
    /// it), the same file on every replica.
    pub fn from_file(path: &std::path::Path) -> Result<Self, std::io::Error> {
        let material = std::fs::read(path)?;
        let secret = material.trim_ascii();
        if secret.len() < 32 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes; a token key is at least 32",
                    path.display(),
                    secret.len()
                ),
            ));
        }
        Ok(Self::derive(secret))
    }

    /// A key of this process alone: its tokens are good on no other replica.
    pub fn random() -> Self {
        use rustls::crypto::ring::default_provider;
        let mut key = [0_u8; 32];
        if default_provider().secure_random.fill(&mut key).is_err() {
            // The system's random source failing leaves a key nobody else has either.
            key = *fallback_key();
        }
        Self(key)
    }

    fn mac(&self, body: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(body.as_bytes());
        mac
    }

    /// A token for `operator_id` good until `expires`: `v1.<OperatorID>.<unix seconds>.<tag>`.
    pub fn issue(&self, operator_id: &str, expires: DateTime<Utc>) -> String {
        let body = format!("v1.{operator_id}.{}", expires.timestamp());
        let tag: String = self
            .mac(&body)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{body}.{tag}")
    }

    /// The peer a genuine token was issued to and when it expires (unix seconds), expired or
    /// not; the tag is compared in constant time.
    pub fn issued_to<'t>(&self, token: &'t str) -> Result<(&'t str, i64), TokenError> {
        let (body, tag) = token.rsplit_once('.').ok_or(TokenError::Unknown)?;
        let tag = crate::crypto::hex(tag).ok_or(TokenError::Unknown)?;
        self.mac(body)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Unknown)?;
        let mut parts = body.splitn(3, '.');
        let (Some("v1"), Some(owner), Some(expires)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Unknown);
        };
        let expires: i64 = expires.parse().map_err(|_| TokenError::Unknown)?;
        Ok((owner, expires))
    }

    /// The peer a genuine, unexpired token was issued to.
    pub fn owner<'t>(&self, token: &'t str, now: DateTime<Utc>) -> Result<&'t str, TokenError> {
        let (owner, expires) = self.issued_to(token)?;
        if now.timestamp() >= expires {
            return Err(TokenError::Expired);
        }
        Ok(owner)
    }

    /// Checks a token presented by `operator_id` at `now`.
    pub fn check(
        &self,
        token: &str,
        operator_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
        if self.owner(token, now)? != operator_id {
            return Err(TokenError::NotThePeers);
        }
        Ok(())
    }
}

/// 32 bytes from the clock and the process, for a system without a random source.
fn fallback_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use sha2::Digest as _;
        let seed = format!(
            "{:?}{}{:p}",
            std::time::SystemTime::now(),
            std::process::id(),
            &KEY
        );
        sha2::Sha256::digest(seed.as_bytes()).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    #[test]
    fn a_token_issued_by_one_replica_is_good_on_another_with_the_same_material() {
        let issued =
            TokenKey::derive(b"the gateway key file").issue("MA0REGSX1", t("2026-11-26T12:00:00Z"));
        let other_replica = TokenKey::derive(b"the gateway key file");
        assert_eq!(
            other_replica.check(&issued, "MA0REGSX1", t("2026-11-26T11:00:00Z")),
            Ok(())
        );
    }

    #[test]
    fn a_token_under_other_material_or_altered_is_unknown() {
        let key = TokenKey::derive(b"material");
        let token = key.issue("MA0REGSX1", t("2026-11-26T12:00:00Z"));
        let now = t("2026-11-26T11:00:00Z");
        assert_eq!(
            TokenKey::derive(b"rotated").check(&token, "MA0REGSX1", now),
            Err(TokenError::Unknown)
        );
        // A longer life written into the token breaks its tag.
        let (body, tag) = token.rsplit_once('.').expect("a tag");
        let longer = body.replace(
            &t("2026-11-26T12:00:00Z").timestamp().to_string(),
            &t("2027-11-26T12:00:00Z").timestamp().to_string(),
        );
        let forged = format!("{longer}.{tag}");
        assert_ne!(forged, token);
        assert_eq!(
            key.check(&forged, "MA0REGSX1", now),
            Err(TokenError::Unknown)
        );
        assert_eq!(key.check("", "MA0REGSX1", now), Err(TokenError::Unknown));
        assert_eq!(
            key.check("v1.x.y.zz", "MA0REGSX1", now),
            Err(TokenError::Unknown)
        );
    }

    #[test]
    fn a_key_file_is_at_least_32_bytes_and_random_keys_are_each_their_own() {
        let dir = std::env::temp_dir().join(format!("cm-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let short = dir.join("short");
        std::fs::write(&short, "too short\n").expect("write");
        assert!(TokenKey::from_file(&short).is_err());
        let good = dir.join("good");
        std::fs::write(&good, format!("{}\n", "k".repeat(40))).expect("write");
        let at = t("2026-11-26T12:00:00Z");
        let token = TokenKey::from_file(&good)
            .expect("key")
            .issue("MA0REGSX1", at);
        assert_eq!(
            TokenKey::derive("k".repeat(40).as_bytes()).owner(&token, t("2026-11-26T11:00:00Z")),
            Ok("MA0REGSX1"),
            "the trailing newline is not part of the key"
        );
        let (a, b) = (TokenKey::random(), TokenKey::random());
        assert_eq!(
            b.check(&a.issue("X", at), "X", t("2026-11-26T11:00:00Z")),
            Err(TokenError::Unknown)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_token_is_the_peers_alone_and_ends_at_its_expiry() {
        let key = TokenKey::derive(b"material");
        let token = key.issue("MA0REGSX1", t("2026-11-26T12:00:00Z"));
        assert_eq!(
            key.check(&token, "MA0OTHER1", t("2026-11-26T11:00:00Z")),
            Err(TokenError::NotThePeers)
        );
        assert_eq!(
            key.check(&token, "MA0REGSX1", t("2026-11-26T12:00:00Z")),
            Err(TokenError::Expired)
        );
    }
}
