//! TLS session tickets whose keys every gateway replica shares and keeps across restarts, so a
//! pile that reconnects (to another replica, or after a rolling update or a crash) resumes its
//! session instead of repeating the certificate signatures and their verification, which a
//! fleet reconnecting at once pays a hundred thousand times.
//!
//! The keys come from a file (a Kubernetes Secret mounted into every gateway pod): each line
//! that is neither empty nor a comment is one secret of at least 32 characters (`openssl rand
//! -hex 32`). The first line's key seals new tickets; every line's key opens them, so a key is
//! rotated by putting a new line first and dropping the old one a [`TICKET_LIFETIME`] later.
//! A key is derived from its line with HKDF-SHA256; a ticket is `key id (4) | nonce (12) |
//! AES-256-GCM(issued at (8, big-endian Unix seconds) | rustls' session state)`, the key id
//! authenticated as associated data. A ticket older than its lifetime, sealed by a key no
//! longer in the file, or altered is refused and the client makes a full handshake.
//!
//! Resumption in TLS 1.3 here is always PSK with a fresh (EC)DHE exchange (rustls offers no
//! other), so a leaked ticket key does not decrypt recorded traffic; but it does let its holder
//! seal tickets of their own, naming any client certificate they have seen: the key file is as
//! secret as the CA's key. The client certificate a resumed session carries is checked again
//! against the listener's current verifier (its CA bundle and revocation list) before the
//! connection is used (see `incoming_gated`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::ServerConfig;
use rustls::server::ProducesTickets;

use super::{TlsError, TlsFiles};

/// How long a ticket resumes a session: TLS 1.3's longest (RFC 8446 §4.6.1), so that a pile
/// connected for days still resumes after a rolling update. A resumed session is as fresh as
/// a full one (PSK with a new key exchange) and its certificate is checked again at resumption.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The shortest secret a line of the key file may hold.
pub const MIN_SECRET_CHARS: usize = 32;

const KEY_ID_LEN: usize = 4;
const ISSUED_LEN: usize = 8;
const SALT: &[u8] = b"chargemesh tls13 session ticket v1";
/// A ticket issued this far in the future (a replica's clock ahead of another's) still opens.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The session ticket keys of a listener, read from a key file.
pub struct TicketKeys {
    /// The first seals; all open. Never empty.
    keys: Vec<TicketKey>,
    lifetime: Duration,
    random: SystemRandom,
}

struct TicketKey {
    id: [u8; KEY_ID_LEN],
    aead: LessSafeKey,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKeys")
            .field("keys", &self.keys.len())
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// An HKDF output length for the key id.
struct IdLen;

impl hkdf::KeyType for IdLen {
    fn len(&self) -> usize {
        KEY_ID_LEN
    }
}

impl TicketKey {
    fn derive(secret: &[u8]) -> Result<Self, TlsError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
        let derive_failed = |_| TlsError::Config("session ticket key derivation failed".into());
        let mut id = [0u8; KEY_ID_LEN];
        prk.expand(&[b"key id"], IdLen)
            .and_then(|okm| okm.fill(&mut id))
            .map_err(derive_failed)?;
        let aead: UnboundKey = prk
            .expand(&[b"aes-256-gcm"], &AES_256_GCM)
            .map_err(derive_failed)?
            .into();
        Ok(Self {
            id,
            aead: LessSafeKey::new(aead),
        })
    }
}

impl TicketKeys {
    /// The keys of `path`'s lines (see the module's documentation).
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        let text = std::fs::read_to_string(path).map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|message| TlsError::Pem {
            path: path.to_owned(),
            message,
        })
    }

    /// The keys of a key file's text; why it is unusable otherwise.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let secret = line.trim();
            if secret.is_empty() || secret.starts_with('#') {
                continue;
            }
            if secret.chars().count() < MIN_SECRET_CHARS {
                return Err(format!(
                    "line {}: a session ticket secret has at least {MIN_SECRET_CHARS} characters \
                     (make one with `openssl rand -hex 32`)",
                    number + 1
                ));
            }
            keys.push(TicketKey::derive(secret.as_bytes()).map_err(|e| e.to_string())?);
        }
        if keys.is_empty() {
            return Err(
                "no session ticket secret (one per line; make one with `openssl rand -hex 32`)"
                    .into(),
            );
        }
        Ok(Self {
            keys,
            lifetime: TICKET_LIFETIME,
            random: SystemRandom::new(),
        })
    }

    /// The same keys, tickets living `lifetime` (tests).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    fn seal_at(&self, plain: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let key = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let issued = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let mut sealed = Vec::with_capacity(
            KEY_ID_LEN + NONCE_LEN + ISSUED_LEN + plain.len() + AES_256_GCM.tag_len(),
        );
        sealed.extend_from_slice(&key.id);
        sealed.extend_from_slice(&nonce);
        let body_at = sealed.len();
        sealed.extend_from_slice(&issued.to_be_bytes());
        sealed.extend_from_slice(plain);
        let mut body = sealed.split_off(body_at);
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.id),
                &mut body,
            )
            .ok()?;
        sealed.append(&mut body);
        Some(sealed)
    }

    fn open_at(&self, ticket: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        if ticket.len() < KEY_ID_LEN + NONCE_LEN + ISSUED_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (id, rest) = ticket.split_at(KEY_ID_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let key = self.keys.iter().find(|k| k.id == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain_len = key
            .aead
            .open_in_place(nonce, Aad::from(key.id), &mut body)
            .ok()?
            .len();
        body.truncate(plain_len);
        let issued = u64::from_be_bytes(body.get(..ISSUED_LEN)?.try_into().ok()?);
        let issued = UNIX_EPOCH.checked_add(Duration::from_secs(issued))?;
        let fresh = match now.duration_since(issued) {
            Ok(age) => age <= self.lifetime,
            Err(ahead) => ahead.duration() <= CLOCK_SKEW,
        };
        fresh.then(|| body.split_off(ISSUED_LEN))
    }
}

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.lifetime.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(plain, SystemTime::now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open_at(cipher, SystemTime::now())
    }
}

/// Tickets a server sends after each handshake, full or resumed. A client spends one on each
/// attempt to connect (rustls' client never offers a ticket twice), including one the server
/// sheds before its handshake for want of a turn (a reconnect storm's queue): with two, a
/// 20,000-pile storm resumed 5% of its reconnections, the rest having spent theirs on shed
/// attempts. Each is about 700 bytes on the wire and a few microseconds to seal.
pub const TICKETS_PER_HANDSHAKE: usize = 4;

/// How an edge listener's sessions resume: from tickets sealed with the key file's keys when
/// the listener's files name one, else with keys of this process (rustls' own, rotated every
/// 6 hours), which resume only on the same process. Sessions are never kept server-side.
#[derive(Clone)]
pub struct SessionTickets {
    own: Arc<dyn ProducesTickets>,
}

impl std::fmt::Debug for SessionTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTickets").finish_non_exhaustive()
    }
}

impl SessionTickets {
    pub fn new() -> Result<Self, TlsError> {
        Ok(Self {
            own: rustls::crypto::ring::Ticketer::new()?,
        })
    }

    /// Makes `config` issue and accept tickets as `files` say (see [`SessionTickets`]). A
    /// listener whose clients present certificates must check a resumed session's certificate
    /// again itself: the handshake that resumes does not.
    pub fn apply(&self, config: &mut ServerConfig, files: &TlsFiles) -> Result<(), TlsError> {
        config.ticketer = match &files.ticket_key_file {
            Some(path) => Arc::new(TicketKeys::load(path)?),
            None => self.own.clone(),
        };
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef-first";
    const B: &str = "fedcba9876543210fedcba9876543210-second";

    fn keys(text: &str) -> TicketKeys {
        TicketKeys::parse(text).expect("keys")
    }

    #[test]
    fn a_ticket_opens_with_the_same_secret_in_another_process() {
        let now = SystemTime::now();
        let sealed = keys(A).seal_at(b"session state", now).expect("sealed");
        assert_eq!(
            keys(A).open_at(&sealed, now).as_deref(),
            Some(&b"session state"[..])
        );
        assert_eq!(keys(B).open_at(&sealed, now), None, "another secret");
    }

    #[test]
    fn the_first_line_seals_and_every_line_opens() {
        let now = SystemTime::now();
        let old = keys(A).seal_at(b"old", now).expect("sealed");
        let rotated = keys(&format!("# rotated\n{B}\n\n{A}\n"));
        assert_eq!(rotated.open_at(&old, now).as_deref(), Some(&b"old"[..]));
        let new = rotated.seal_at(b"new", now).expect("sealed");
        assert_eq!(
            keys(A).open_at(&new, now),
            None,
            "sealed by the new first key"
        );
        assert_eq!(keys(B).open_at(&new, now).as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn a_ticket_past_its_lifetime_or_from_the_far_future_is_refused() {
        let keys = keys(A).with_lifetime(Duration::from_secs(60));
        // Tickets keep whole seconds.
        let issued = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let sealed = keys.seal_at(b"s", issued).expect("sealed");
        let at = |secs: i64| {
            if secs >= 0 {
                issued + Duration::from_secs(secs.unsigned_abs())
            } else {
                issued - Duration::from_secs(secs.unsigned_abs())
            }
        };
        assert!(keys.open_at(&sealed, at(60)).is_some());
        assert!(keys.open_at(&sealed, at(61)).is_none(), "expired");
        assert!(keys.open_at(&sealed, at(-300)).is_some(), "within the skew");
        assert!(
            keys.open_at(&sealed, at(-301)).is_none(),
            "issued in the future"
        );
    }

    #[test]
    fn an_altered_or_truncated_ticket_is_refused_without_panicking() {
        let keys = keys(A);
        let now = SystemTime::now();
        let sealed = keys.seal_at(b"session state", now).expect("sealed");
        for at in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[at] ^= 0x01;
            assert_eq!(keys.open_at(&altered, now), None, "byte {at} flipped");
        }
        for len in 0..sealed.len() {
            assert_eq!(keys.open_at(&sealed[..len], now), None, "{len} bytes");
        }
    }

    #[test]
    fn a_key_file_without_a_long_enough_secret_is_refused_naming_the_line() {
        let short = TicketKeys::parse("# keys\n\nshort\n").expect_err("short");
        assert!(short.contains("line 3") && short.contains("32"), "{short}");
        let empty = TicketKeys::parse("# nothing\n\n").expect_err("empty");
        assert!(empty.contains("no session ticket secret"), "{empty}");
    }

    #[test]
    fn two_tickets_of_the_same_state_differ() {
        let keys = keys(A);
        let now = SystemTime::now();
        assert_ne!(keys.seal_at(b"s", now), keys.seal_at(b"s", now));
    }
}
