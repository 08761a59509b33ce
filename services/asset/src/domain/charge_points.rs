//! Charge points that speak OCPP: their ids, their security profile 2 passwords (REQ NETSEC-1),
//! and the operator's authorisation tokens with the verdict they give.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chargemesh_kit::Error;
use chrono::{DateTime, Utc};
use std::num::NonZeroU32;

use super::model::{IdToken, IdTokenStatus, Pile, PileProtocol};

/// OCPP's longest charge point identity.
pub const CHARGE_POINT_ID_MAX: usize = 48;
/// A profile 2 password's length (OCPP 1.6 security whitepaper; 2.0.1 part 2: 16 to 40).
pub const PASSWORD_MIN: usize = 16;
pub const PASSWORD_MAX: usize = 40;
/// OCPP 2.0.1 IdToken's longest value.
pub const TOKEN_MAX: usize = 36;
/// PBKDF2-HMAC-SHA256 rounds: each check costs a few milliseconds, a guess as much.
const PBKDF2_ROUNDS: u32 = 100_000;

/// A pile's charge point id: for OCPP piles, the one given or the pile id (the characters a
/// URL path segment carries unescaped, and ':', OCPP's identity); for YKC piles, the 14-digit
/// pile code it logs in with, or the pile id when that is one; empty for native piles.
pub fn charge_point_id(pile: &Pile) -> Result<String, Error> {
    let id = pile.charge_point_id.trim();
    if pile.protocol == PileProtocol::Ykc {
        let id = if id.is_empty() { &pile.pile_id } else { id };
        if !is_ykc_pile_code(id) {
            return Err(Error::invalid(
                "pile.charge_point_id",
                "NETSEC-1",
                "a YKC pile's charge point id is its pile code: 14 digits",
            ));
        }
        return Ok(id.to_owned());
    }
    if !pile.protocol.is_ocpp() {
        if !id.is_empty() {
            return Err(Error::bad_field(
                "pile.charge_point_id",
                "is only for piles whose protocol is OCPP or YKC",
            ));
        }
        return Ok(String::new());
    }
    let id = if id.is_empty() { &pile.pile_id } else { id };
    if id.len() > CHARGE_POINT_ID_MAX
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~:".contains(&b))
    {
        return Err(Error::invalid(
            "pile.charge_point_id",
            "NETSEC-1",
            format!(
                "must have 1 to {CHARGE_POINT_ID_MAX} letters, digits, '-', '_', '.', '~' or ':'"
            ),
        ));
    }
    Ok(id.to_owned())
}

/// A YKC pile code (桩编码): 14 decimal digits, 7 BCD bytes on the wire.
pub fn is_ykc_pile_code(id: &str) -> bool {
    id.len() == 14 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a profile 2 password's length and characters (printable ASCII, as HTTP Basic needs).
pub fn validate_password(password: &str) -> Result<(), Error> {
    let printable = password.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&password.len()) || !printable {
        return Err(Error::invalid(
            "password",
            "NETSEC-1",
            format!(
                "must be {PASSWORD_MIN} to {PASSWORD_MAX} printable ASCII characters without spaces"
            ),
        ));
    }
    Ok(())
}

fn rounds() -> NonZeroU32 {
    NonZeroU32::new(PBKDF2_ROUNDS).unwrap_or(NonZeroU32::MIN)
}

/// A salted hash of a password: `pbkdf2-sha256$<rounds>$<salt>$<hash>`.
pub fn hash_password(password: &str, salt: &[u8; 16]) -> String {
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds(),
        salt,
        password.as_bytes(),
        &mut out,
    );
    format!(
        "pbkdf2-sha256${PBKDF2_ROUNDS}${}${}",
        B64.encode(salt),
        B64.encode(out)
    )
}

/// A fresh random salt.
pub fn new_salt() -> Result<[u8; 16], Error> {
    use ring::rand::SecureRandom as _;
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| Error::Unavailable("no randomness for a salt".into()))?;
    Ok(salt)
}

/// Whether `password` is the one `stored` was made from (in constant time).
pub fn password_matches(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next().and_then(|r| r.parse::<u32>().ok()),
        parts.next().and_then(|s| B64.decode(s).ok()),
        parts.next().and_then(|h| B64.decode(h).ok()),
        parts.next(),
    ) else {
        return false;
    };
    let Some(rounds) = NonZeroU32::new(rounds) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// An authorisation token as given: 1 to 36 printable ASCII characters.
pub fn validate_token(field: &str, token: &str) -> Result<String, Error> {
    let token = token.trim();
    if token.is_empty()
        || token.len() > TOKEN_MAX
        || !token.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(Error::bad_field(
            field,
            format!("must be 1 to {TOKEN_MAX} printable ASCII characters"),
        ));
    }
    Ok(token.to_owned())
}

/// The verdict on a token at a station at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The list's answer; `None` when the token is not on it.
    Listed(Option<IdTokenStatus>),
    /// The station accepts any token.
    AnyToken,
}

/// How a token is answered: the station's "any token" wins; otherwise the list, where a token
/// past its expiry is expired whatever its status says.
pub fn authorize(token: Option<&IdToken>, accept_any: bool, now: DateTime<Utc>) -> Verdict {
    if accept_any {
        return Verdict::AnyToken;
    }
    Verdict::Listed(token.map(|t| match (t.status, t.expires_at) {
        (IdTokenStatus::Accepted, Some(expiry)) if expiry <= now => IdTokenStatus::Expired,
        (status, _) => status,
    }))
}

/// Whether a protocol needs a charge point id.
pub fn has_charge_point_id(protocol: PileProtocol) -> bool {
    protocol.is_ocpp() || protocol == PileProtocol::Ykc
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn token(status: IdTokenStatus, expires_at: Option<DateTime<Utc>>) -> IdToken {
        IdToken {
            operator_id: "OP".into(),
            token: "CARD1".into(),
            status,
            expires_at,
            note: String::new(),
            created_at: at(0),
            updated_at: at(0),
        }
    }

    #[test]
    fn netsec_1_a_password_is_stored_salted_and_checked() {
        let salt = [7u8; 16];
        let stored = hash_password("correct-horse-battery", &salt);
        assert!(stored.starts_with("pbkdf2-sha256$100000$"));
        assert!(!stored.contains("correct-horse"));
        assert!(password_matches(&stored, "correct-horse-battery"));
        assert!(!password_matches(&stored, "correct-horse-batterY"));
        assert!(!password_matches("garbage", "correct-horse-battery"));
        assert_ne!(
            stored,
            hash_password("correct-horse-battery", &[8u8; 16]),
            "another salt, another hash"
        );
    }

    #[test]
    fn netsec_1_a_password_has_16_to_40_printable_characters() {
        assert!(validate_password("short-password").is_err());
        assert!(validate_password("sixteen-chars-ok").is_ok());
        assert!(validate_password("with a space in it!!").is_err());
        assert!(validate_password(&"x".repeat(41)).is_err());
    }

    #[test]
    fn an_ocpp_pile_is_its_own_charge_point_unless_named_otherwise() {
        let mut pile = crate::domain::rules::tests::pile(crate::domain::model::PileType::Dc);
        assert_eq!(charge_point_id(&pile).ok(), Some(String::new()));
        pile.charge_point_id = "CP-1".into();
        assert!(charge_point_id(&pile).is_err(), "native piles have none");
        pile.protocol = PileProtocol::Ocpp16;
        assert_eq!(charge_point_id(&pile).ok(), Some("CP-1".into()));
        pile.charge_point_id = String::new();
        assert_eq!(charge_point_id(&pile).ok(), Some(pile.pile_id.clone()));
        pile.charge_point_id = "CP/1".into();
        assert!(charge_point_id(&pile).is_err());
    }

    #[test]
    fn netsec_1_a_ykc_pile_logs_in_with_its_14_digit_pile_code() {
        let mut pile = crate::domain::rules::tests::pile(crate::domain::model::PileType::Dc);
        pile.protocol = PileProtocol::Ykc;
        pile.charge_point_id = "20231212000010".into();
        assert_eq!(charge_point_id(&pile).ok(), Some("20231212000010".into()));
        pile.charge_point_id = "2023121200001".into();
        let refused = charge_point_id(&pile).expect_err("13 digits");
        assert!(refused.to_string().contains("14 digits"), "{refused}");
        pile.charge_point_id = "2023121200001A".into();
        assert!(charge_point_id(&pile).is_err());
        // Left empty: the pile id, when it is a pile code.
        pile.charge_point_id = String::new();
        assert!(
            charge_point_id(&pile).is_err(),
            "{} is no pile code",
            pile.pile_id
        );
        pile.pile_id = "33060200000001".into();
        assert_eq!(charge_point_id(&pile).ok(), Some("33060200000001".into()));
    }

    #[test]
    fn a_token_past_its_expiry_is_expired_and_any_token_wins() {
        let card = token(IdTokenStatus::Accepted, Some(at(12)));
        assert_eq!(
            authorize(Some(&card), false, at(11)),
            Verdict::Listed(Some(IdTokenStatus::Accepted))
        );
        assert_eq!(
            authorize(Some(&card), false, at(12)),
            Verdict::Listed(Some(IdTokenStatus::Expired))
        );
        let blocked = token(IdTokenStatus::Blocked, None);
        assert_eq!(
            authorize(Some(&blocked), false, at(1)),
            Verdict::Listed(Some(IdTokenStatus::Blocked))
        );
        assert_eq!(authorize(None, false, at(1)), Verdict::Listed(None));
        assert_eq!(authorize(None, true, at(1)), Verdict::AnyToken);
    }
}
