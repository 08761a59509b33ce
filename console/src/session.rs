//! Signed-in people: a session is a random id in an HttpOnly cookie, kept here with the person,
//! the token the console calls the gateway with on their behalf, and the CSRF token every form
//! of theirs carries. Sessions end when idle, when their token expires, or at sign-out; there are
//! at most `max` at once (the idlest is dropped first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};

/// The session cookie's name.
pub const COOKIE: &str = "cm_session";

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub subject: String,
    pub name: String,
    pub operator_id: String,
    pub roles: Vec<String>,
}

impl Person {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the person holds any of `roles`.
    pub fn any_role(&self, roles: &[&str]) -> bool {
        roles.iter().any(|r| self.has_role(r))
    }
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub person: Person,
    /// The bearer token for the gateway.
    pub token: String,
    pub token_expires: DateTime<Utc>,
    /// The identity provider's ID token, for signing out there too.
    pub id_token: Option<String>,
    /// The token every form of this session carries.
    pub csrf: String,
    last_seen: Instant,
}

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The system's CSPRNG; it does not fail on the platforms we run on, and an all-zero token
    // would only be refused as a duplicate below.
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The sessions of one console process.
#[derive(Debug)]
pub struct Sessions {
    held: Mutex<HashMap<String, Session>>,
    idle: Duration,
    max: usize,
}

impl Sessions {
    pub fn new(idle: Duration, max: usize) -> Self {
        Self {
            held: Mutex::new(HashMap::new()),
            idle,
            max: max.max(1),
        }
    }

    /// Starts a session; its id, for the cookie.
    pub fn start(&self, person: Person, token: String, token_expires: DateTime<Utc>) -> String {
        self.start_with(person, token, token_expires, None)
    }

    /// As [`Self::start`], remembering the identity provider's ID token.
    pub fn start_with(
        &self,
        person: Person,
        token: String,
        token_expires: DateTime<Utc>,
        id_token: Option<String>,
    ) -> String {
        let id = random_token();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let idle = self.idle;
        held.retain(|_, s| s.last_seen.elapsed() < idle);
        if held.len() >= self.max
            && let Some(idlest) = held
                .iter()
                .max_by_key(|(_, s)| s.last_seen.elapsed())
                .map(|(id, _)| id.clone())
        {
            held.remove(&idlest);
        }
        held.insert(
            id.clone(),
            Session {
                person,
                token,
                token_expires,
                id_token,
                csrf: random_token(),
                last_seen: Instant::now(),
            },
        );
        id
    }

    /// The live session of `id`, touched; `None` when there is none, it idled out or its
    /// token expired.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let live = held
            .get(id)
            .is_some_and(|s| s.last_seen.elapsed() < self.idle && s.token_expires > now);
        if !live {
            held.remove(id);
            return None;
        }
        let session = held.get_mut(id)?;
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    pub fn end(&self, id: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    pub fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Person {
        Person {
            subject: "mo".into(),
            name: "Monitor".into(),
            operator_id: "MA2D3K7Q0".into(),
            roles: vec!["monitor".into()],
        }
    }

    #[test]
    fn a_session_ends_with_its_token_at_sign_out_and_when_idle() {
        let now = Utc::now();
        let sessions = Sessions::new(Duration::from_secs(60), 10);
        let id = sessions.start(person(), "t".into(), now + chrono::Duration::hours(1));
        assert_eq!(id.len(), 64);
        let session = sessions.get(&id, now).expect("live");
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(session.csrf, id, "the CSRF token is not the cookie");
        assert!(sessions.get("not-a-session", now).is_none());
        assert!(
            sessions
                .get(&id, now + chrono::Duration::hours(2))
                .is_none(),
            "the token expired"
        );
        let id = sessions.start(person(), "t".into(), now + chrono::Duration::hours(1));
        sessions.end(&id);
        assert!(sessions.get(&id, now).is_none());
        let idle = Sessions::new(Duration::ZERO, 10);
        let id = idle.start(person(), "t".into(), now + chrono::Duration::hours(1));
        assert!(idle.get(&id, now).is_none(), "idle beyond the limit");
    }

    #[test]
    fn sessions_are_bounded_and_the_idlest_goes_first() {
        let now = Utc::now();
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        let first = sessions.start(person(), "1".into(), now + chrono::Duration::hours(1));
        std::thread::sleep(Duration::from_millis(5));
        let second = sessions.start(person(), "2".into(), now + chrono::Duration::hours(1));
        std::thread::sleep(Duration::from_millis(5));
        // The first is used again: the second is now the idlest.
        assert!(sessions.get(&first, now).is_some());
        let third = sessions.start(person(), "3".into(), now + chrono::Duration::hours(1));
        assert_eq!(sessions.len(), 2);
        assert!(sessions.get(&second, now).is_none());
        assert!(sessions.get(&first, now).is_some() && sessions.get(&third, now).is_some());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", "a"));
    }
}
