//! The HTTP side of the WebSocket upgrade, done by the edge itself so a charge point's identity
//! can be settled (with the registry, asynchronously) before the upgrade is answered: the
//! request head is read within a size bound, checked as an RFC 6455 upgrade, and answered with
//! 101 or with the refusal's status and reason.

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The largest request head a charge point may send.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// Why an upgrade was refused: the HTTP status and the reason (logged, and sent as the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

pub fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// An upgrade request's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Every value of a header, in order.
    pub fn all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// The `Sec-WebSocket-Key` of a well-formed upgrade, or why it is not one.
    pub fn upgrade_key(&self) -> Result<&str, Refusal> {
        let has_token = |name: &str, token: &str| {
            self.all(name)
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.method != "GET" {
            return Err(refuse(405, "a WebSocket upgrade is a GET"));
        }
        if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
            return Err(refuse(
                426,
                "this is an OCPP-J endpoint: upgrade to a WebSocket",
            ));
        }
        if self.get("sec-websocket-version").map(str::trim) != Some("13") {
            return Err(refuse(426, "Sec-WebSocket-Version must be 13"));
        }
        self.get("sec-websocket-key")
            .map(str::trim)
            .filter(|k| {
                base64::engine::general_purpose::STANDARD
                    .decode(k)
                    .is_ok_and(|b| b.len() == 16)
            })
            .ok_or_else(|| refuse(400, "a Sec-WebSocket-Key of 16 bytes is required"))
    }

    /// HTTP Basic credentials, if sent: (user, password).
    pub fn basic(&self) -> Option<(String, String)> {
        let value = self.get("authorization")?.trim();
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }
}

/// Parses a complete head; `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((
            Head {
                method: request.method.unwrap_or_default().to_owned(),
                path: request.path.unwrap_or_default().to_owned(),
                headers: request
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            },
            len,
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(refuse(431, "too many headers")),
        Err(error) => Err(refuse(400, format!("not an HTTP request: {error}"))),
    }
}

/// Reads a request head; returns it with any bytes read past it.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(Head, Vec<u8>), Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| refuse(400, format!("the request could not be read: {e}")))?;
        if n == 0 {
            return Err(refuse(
                400,
                "the connection closed before the request ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((head, len)) = parse(&buf)? {
            return Ok((head, buf.split_off(len)));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(refuse(431, "the request head is over 8 KiB"));
        }
    }
}

/// The 101 answer, naming the subprotocol as the charge point offered it.
pub fn switching(key: &str, subprotocol: &str) -> String {
    let accept =
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
    );
    if !subprotocol.is_empty() {
        response.push_str(&format!("Sec-WebSocket-Protocol: {subprotocol}\r\n"));
    }
    response.push_str("\r\n");
    response
}

/// The refusal as an HTTP response; a 401 asks for Basic credentials.
pub fn refusal(refusal: &Refusal) -> String {
    let reason = http::StatusCode::from_u16(refusal.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Refused");
    let body: String = refusal.reason.chars().filter(|c| !c.is_control()).collect();
    let challenge = if refusal.status == 401 {
        "WWW-Authenticate: Basic realm=\"OCPP\", charset=\"UTF-8\"\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {} {reason}\r\n{challenge}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        refusal.status,
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &str = "GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ocpp1.6\r\nAuthorization: Basic Q1AtMTpzaXh0ZWVuLWNoYXJzLW9r\r\n\r\n";

    #[test]
    fn an_upgrade_head_is_read_with_its_key_and_credentials() {
        let (head, len) = parse(UPGRADE.as_bytes())
            .expect("parses")
            .expect("complete");
        assert_eq!(len, UPGRADE.len());
        assert_eq!(head.path, "/ocpp/CP-1");
        assert_eq!(head.upgrade_key(), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(
            head.basic(),
            Some(("CP-1".into(), "sixteen-chars-ok".into()))
        );
        assert!(
            switching("dGhlIHNhbXBsZSBub25jZQ==", "ocpp1.6")
                .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "RFC 6455's own example"
        );
    }

    #[test]
    fn a_partial_head_waits_and_a_non_upgrade_is_refused() {
        assert_eq!(parse(&UPGRADE.as_bytes()[..30]), Ok(None));
        let plain = "GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\n\r\n";
        let (head, _) = parse(plain.as_bytes()).expect("parses").expect("complete");
        assert_eq!(head.upgrade_key().map_err(|r| r.status), Err(426));
        assert_eq!(
            parse(b"\x16\x03\x01garbage\r\n\r\n").map_err(|r| r.status),
            Err(400)
        );
        let post = UPGRADE.replacen("GET", "POST", 1);
        let (head, _) = parse(post.as_bytes()).expect("parses").expect("complete");
        assert_eq!(head.upgrade_key().map_err(|r| r.status), Err(405));
    }

    #[test]
    fn netsec_1_a_refusal_names_its_reason_and_asks_for_basic_credentials() {
        let text = refusal(&refuse(401, "wrong password\r\nInjected: 1"));
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(text.contains("WWW-Authenticate: Basic realm=\"OCPP\""));
        assert!(
            text.ends_with("wrong passwordInjected: 1"),
            "no header injection"
        );
    }
}
