//! Access tokens (`query_token`) that any gateway replica can check without shared state: a
//! token names its peer and expiry and carries an HMAC-SHA256 over both under the edge's token
//! key. Replicas derive the same key from the same file (the gateway's certificate key, which
//! cert-manager keeps in one Secret for all of them), so a token issued by one pod is good on
//! every other; rotating that file invalidates the tokens, and peers fetch new ones on 4002 as
//! the protocol expects.

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

    /// Checks a token presented by `operator_id` at `now`; the tag is compared in constant time.
    pub fn check(
        &self,
        token: &str,
        operator_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
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
        if owner != operator_id {
            return Err(TokenError::NotThePeers);
        }
        let expires: i64 = expires.parse().map_err(|_| TokenError::Unknown)?;
        if now.timestamp() >= expires {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
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
