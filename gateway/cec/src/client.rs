//! A T/CEC 102 peer as a client: HTTPS POST of sealed envelopes over HTTP/1.1, with the token
//! fetched by `query_token`, and on `Ret` 4002 fetched again and the call retried once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

use crate::{CecError, Dialect, Request, Response, Ret, Secrets};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad url {0}")]
    Url(String),
    #[error("cannot reach {0}: {1}")]
    Connect(String, String),
    #[error("HTTP {0}")]
    Http(u16),
    #[error("the answer is not an envelope: {0}")]
    Envelope(String),
    #[error(transparent)]
    Cec(#[from] CecError),
    #[error("the token was refused: {0}")]
    Token(String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, std::time::Duration),
    #[error("the answer of {0} is larger than {1} bytes")]
    TooLarge(String, usize),
}

/// What a call to a peer may cost: time to connect, time for the whole exchange, and the
/// largest answer read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: std::time::Duration::from_secs(5),
            request_timeout: std::time::Duration::from_secs(30),
            max_response_bytes: 1 << 20,
        }
    }
}

/// Idle connections kept for reuse, across every peer of one client.
const IDLE_CONNECTIONS: usize = 32;
/// How long an idle connection is kept: less than the idle timeouts servers and load balancers
/// commonly apply, so a kept connection is rarely one the peer has already dropped.
const IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// An open HTTP/1.1 connection: its request handle, the task driving it, the peer it goes to
/// and since when it is idle.
struct Connection {
    peer: String,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
    idle_since: std::time::Instant,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// HTTPS POST over HTTP/1.1 with rustls, keeping connections alive between calls: a pusher
/// sending hundreds of status changes a second to a regulator pays for a TLS handshake once per
/// connection, not once per change.
#[derive(Clone)]
pub struct Https {
    tls: Arc<rustls::ClientConfig>,
    limits: Limits,
    idle: Arc<std::sync::Mutex<Vec<Connection>>>,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Https")
    }
}

impl Https {
    /// A client trusting `tls`'s roots; its ALPN is set to HTTP/1.1.
    pub fn new(mut tls: rustls::ClientConfig) -> Self {
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            tls: Arc::new(tls),
            limits: Limits::default(),
            idle: Arc::default(),
        }
    }

    /// With other limits than the defaults (5 s to connect, 30 s per call, 1 MiB answers).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// POSTs `body` as JSON; returns the status and the body. A peer that does not connect,
    /// answer or finish in time, or sends more than the limit, fails the call.
    pub async fn post(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let limit = self.limits.request_timeout;
        tokio::time::timeout(limit, self.exchange(url, bearer, body))
            .await
            .map_err(|_| ClientError::Timeout(url.to_owned(), limit))?
    }

    /// An idle connection to `peer` that is still open, if one is kept.
    fn take_idle(&self, peer: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|c| !c.sender.is_closed() && c.idle_since.elapsed() < IDLE_FOR);
        let at = idle.iter().rposition(|c| c.peer == peer)?;
        Some(idle.swap_remove(at))
    }

    /// Keeps `connection` for the next call, unless enough are kept.
    fn put_idle(&self, mut connection: Connection) {
        if connection.sender.is_closed() {
            return;
        }
        connection.idle_since = std::time::Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(connection);
        }
    }

    async fn connect(&self, url: &str, host: &str, port: u16) -> Result<Connection, ClientError> {
        let connect = |e: &dyn std::fmt::Display| ClientError::Connect(url.into(), e.to_string());
        let tcp = tokio::time::timeout(
            self.limits.connect_timeout,
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_| ClientError::Timeout(url.to_owned(), self.limits.connect_timeout))?
        .map_err(|e| connect(&e))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| ClientError::Url(url.into()))?;
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| connect(&e))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect(&e))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            peer: format!("{host}:{port}"),
            sender,
            driver,
            idle_since: std::time::Instant::now(),
        })
    }

    async fn exchange(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.into()))?;
        let host = uri
            .host()
            .ok_or_else(|| ClientError::Url(url.into()))?
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let connect = |e: &dyn std::fmt::Display| ClientError::Connect(url.into(), e.to_string());
        let mut request = http::Request::post(uri.path())
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(http::header::CONTENT_TYPE, "application/json;charset=utf-8");
        if let Some(token) = bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let mut request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| ClientError::Url(url.into()))?;
        // A kept connection first; one the peer closed before the request went out is left for
        // a new one (the request comes back unsent, so nothing is sent twice).
        let peer = format!("{host}:{port}");
        let (connection, response) = loop {
            let (mut connection, kept) = match self.take_idle(&peer) {
                Some(kept) => (kept, true),
                None => (self.connect(url, &host, port).await?, false),
            };
            if connection.sender.ready().await.is_err() {
                if kept {
                    continue;
                }
                return Err(connect(&"the connection closed"));
            }
            match connection.sender.try_send_request(request).await {
                Ok(response) => break (connection, response),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if kept => request = unsent,
                    _ => return Err(connect(failed.error())),
                },
            }
        };
        let status = response.status().as_u16();
        let keep = !response
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let max = self.limits.max_response_bytes;
        let bytes = http_body_util::Limited::new(response.into_body(), max)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ClientError::TooLarge(url.to_owned(), max)
                } else {
                    ClientError::Connect(url.to_owned(), e.to_string())
                }
            })?
            .to_bytes()
            .to_vec();
        if keep {
            self.put_idle(connection);
        }
        Ok((status, bytes))
    }
}

/// One side of a peer link, calling the other: its base URL, the OperatorID it calls as, the
/// secrets of this direction and the other side's dialect.
pub struct PeerClient {
    https: Https,
    base_url: String,
    operator_id: String,
    secrets: Secrets,
    dialect: Dialect,
    token: Mutex<Option<String>>,
    seq: AtomicU16,
    clock: std::sync::Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("base_url", &self.base_url)
            .field("operator_id", &self.operator_id)
            .finish()
    }
}

impl PeerClient {
    pub fn new(
        https: Https,
        base_url: &str,
        operator_id: &str,
        secrets: Secrets,
        dialect: Dialect,
    ) -> Self {
        Self {
            https,
            base_url: base_url.trim_end_matches('/').to_owned(),
            operator_id: operator_id.to_owned(),
            secrets,
            dialect,
            token: Mutex::new(None),
            // A client's Seqs start at a random place, so two clients of one platform (two
            // replicas, or a restart within the same second) seldom send the same Seq in the
            // same second, which the peer would refuse as a replay.
            seq: AtomicU16::new(random_start()),
            clock: Arc::new(chrono::Utc::now),
        }
    }

    /// Numbers requests from `first` on (1..=9999, wrapping), for clients of one platform that
    /// share out the Seqs between them.
    pub fn with_first_seq(self, first: u16) -> Self {
        self.seq
            .store(first.saturating_sub(1) % 9999, Ordering::Relaxed);
        self
    }

    /// Speaks `dialect` instead of the standard's spelling.
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Stamps requests by `now` instead of the system's clock.
    pub fn with_clock(
        mut self,
        now: impl Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync + 'static,
    ) -> Self {
        self.clock = Arc::new(now);
        self
    }

    fn next_seq(&self) -> u16 {
        self.seq.fetch_add(1, Ordering::Relaxed) % 9999 + 1
    }

    /// Sends one sealed request as it is; returns the opened answer. For tests of the refusals.
    pub async fn send(
        &self,
        interface: &str,
        request: &Request,
        bearer: Option<&str>,
    ) -> Result<Response, ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Envelope(e.to_string()))?;
        let url = format!("{}/{interface}", self.base_url);
        let (status, bytes) = self.https.post(&url, bearer, body).await?;
        if status != 200 {
            return Err(ClientError::Http(status));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Envelope(e.to_string()))
    }

    /// A request sealed now for `payload`.
    pub fn seal(&self, payload: &serde_json::Value) -> Request {
        let mut payload = payload.clone();
        self.dialect.outbound(&mut payload);
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        Request::seal(
            &self.secrets,
            &self.operator_id,
            &bytes,
            &crate::timestamp((self.clock)()),
            self.next_seq(),
        )
    }

    /// Opens an answer: its code and its payload in canonical form.
    pub fn open(&self, response: &Response) -> Result<(Ret, serde_json::Value), ClientError> {
        let (ret, bytes) = response.open(&self.secrets)?;
        let mut value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Envelope(e.to_string()))?
        };
        self.dialect.inbound(&mut value);
        Ok((ret, value))
    }

    /// Fetches a token (`query_token`).
    pub async fn fetch_token(&self) -> Result<String, ClientError> {
        let request = self.seal(&serde_json::json!({
            "OperatorID": self.operator_id,
            "OperatorSecret": self.secrets.operator_secret,
        }));
        let response = self.send("query_token", &request, None).await?;
        let (ret, value) = self.open(&response)?;
        if ret != Ret::Ok || value["SuccStat"] != 0 {
            return Err(ClientError::Token(format!(
                "Ret {} FailReason {}",
                ret.code(),
                value["FailReason"]
            )));
        }
        let token = value["AccessToken"]
            .as_str()
            .ok_or_else(|| ClientError::Token("no AccessToken".into()))?
            .to_owned();
        *self.token.lock().await = Some(token.clone());
        Ok(token)
    }

    /// Calls an interface with a token, fetching one first if needed, and once more on 4002.
    pub async fn call(
        &self,
        interface: &str,
        payload: &serde_json::Value,
    ) -> Result<(Ret, serde_json::Value), ClientError> {
        let mut token = self.token.lock().await.clone();
        for attempt in 0..2 {
            let bearer = match &token {
                Some(t) => t.clone(),
                None => self.fetch_token().await?,
            };
            let response = self
                .send(interface, &self.seal(payload), Some(&bearer))
                .await?;
            let (ret, value) = self.open(&response)?;
            if ret == Ret::BadToken && attempt == 0 {
                token = None;
                continue;
            }
            return Ok((ret, value));
        }
        Err(ClientError::Token("refused twice".into()))
    }
}

/// Where a client's Seqs start: anywhere in 0..9999.
fn random_start() -> u16 {
    let mut bytes = [0_u8; 2];
    let _ = rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes);
    u16::from_le_bytes(bytes) % 9999
}
