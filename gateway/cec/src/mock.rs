//! A regulator platform for development and tests (`chargemesh cec-peer`): it serves
//! `query_token` and takes the pushes (`notification_stationStatus`,
//! `notification_charge_order_info`, and any other) from one caller with its own secrets,
//! checking each envelope as a real regulator would, and records what it received, in order. It
//! can be taken down (HTTP 503) and told what `ConfirmResult` to answer orders with.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{Dialect, Request, Response, Ret, Secrets};

#[derive(Debug, Default)]
struct State {
    received: Vec<(String, Value)>,
    /// When each of `received` arrived.
    arrived: Vec<std::time::SystemTime>,
    down: bool,
    confirm: VecDeque<i64>,
    tokens: HashSet<String>,
    issued: u64,
    refuse: u32,
    /// TLS connections accepted.
    connections: u64,
}

/// A running mock regulator.
#[derive(Debug)]
pub struct MockPeer {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

struct Config {
    caller: String,
    secrets: Secrets,
    dialect: Dialect,
    prefix: String,
}

impl MockPeer {
    /// Serves on `listener` with `tls`, taking calls from `caller` (its OperatorID) signed with
    /// `secrets`, under `prefix` (such as `/evcs/v1/`).
    pub fn start(
        listener: TcpListener,
        mut tls: rustls::ServerConfig,
        caller: &str,
        secrets: Secrets,
        dialect: Dialect,
        prefix: &str,
    ) -> std::io::Result<Self> {
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let config = Arc::new(Config {
            caller: caller.to_owned(),
            secrets,
            dialect,
            prefix: prefix.to_owned(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, state, config) = (acceptor.clone(), shared.clone(), config.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    state.lock().unwrap_or_else(|e| e.into_inner()).connections += 1;
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (state, config) = (state.clone(), config.clone());
                            async move {
                                let path = req.uri().path().to_owned();
                                let bearer = req
                                    .headers()
                                    .get(http::header::AUTHORIZATION)
                                    .and_then(|v| v.to_str().ok())
                                    .and_then(|v| v.strip_prefix("Bearer "))
                                    .map(str::to_owned);
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let (status, bytes) =
                                    answer(&state, &config, &path, bearer.as_deref(), &body);
                                http::Response::builder()
                                    .status(status)
                                    .header(
                                        http::header::CONTENT_TYPE,
                                        "application/json;charset=utf-8",
                                    )
                                    .body(Full::new(Bytes::from(bytes)))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { state, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What was pushed, in the order it arrived: the interface and the canonical payload.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.lock().received.clone()
    }

    /// As [`MockPeer::received`], from the `from`th push on, each with the time it arrived
    /// (a benchmark's measure of how long a change takes to reach a regulator).
    pub fn received_since(&self, from: usize) -> Vec<(String, Value, std::time::SystemTime)> {
        let state = self.lock();
        state
            .received
            .iter()
            .zip(&state.arrived)
            .skip(from)
            .map(|((interface, payload), at)| (interface.clone(), payload.clone(), *at))
            .collect()
    }

    /// How many TLS connections callers have opened to it.
    pub fn connections(&self) -> u64 {
        self.lock().connections
    }

    /// Down answers every call with HTTP 503, as an unreachable platform would fail.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// The `ConfirmResult`s to answer the next orders with, in turn; 0 after them.
    pub fn confirm_next(&self, results: &[i64]) {
        self.lock().confirm.extend(results.iter().copied());
    }

    /// Refuses the content of the next `n` pushes (`Ret` 4004), as a regulator does with data
    /// it cannot take; they are recorded all the same.
    pub fn refuse_next(&self, n: u32) {
        self.lock().refuse += n;
    }

    /// Forgets the tokens issued, as a platform restart would: the next call gets 4002.
    pub fn forget_tokens(&self) {
        self.lock().tokens.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for MockPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(
    state: &Mutex<State>,
    config: &Config,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    if state.down {
        return (503, Vec::new());
    }
    let Some(interface) = path.strip_prefix(&config.prefix) else {
        return (404, Vec::new());
    };
    let sealed = |ret: Ret, payload: Option<Value>| {
        let bytes = payload.map(|mut p| {
            config.dialect.outbound(&mut p);
            serde_json::to_vec(&p).unwrap_or_default()
        });
        let r = Response::seal(
            &config.secrets,
            ret,
            if ret == Ret::Ok { "" } else { ret.message() },
            bytes.as_deref(),
        );
        (200, serde_json::to_vec(&r).unwrap_or_default())
    };
    let request = match Request::parse(body) {
        Ok(r) if r.operator_id == config.caller => r,
        Ok(_) | Err(_) => return sealed(Ret::BadEnvelope, None),
    };
    let payload = match request.open(&config.secrets) {
        Ok(bytes) => bytes,
        Err(e) => return sealed(e.ret(), None),
    };
    let Ok(mut payload) = serde_json::from_slice::<Value>(&payload) else {
        return sealed(Ret::BadPayload, None);
    };
    config.dialect.inbound(&mut payload);
    if interface == "query_token" {
        if payload["OperatorSecret"] != config.secrets.operator_secret {
            return sealed(Ret::Ok, Some(json!({"SuccStat": 1, "FailReason": 2})));
        }
        state.issued += 1;
        let token = format!("mock-token-{}", state.issued);
        state.tokens.insert(token.clone());
        return sealed(
            Ret::Ok,
            Some(json!({
                "OperatorID": config.caller,
                "SuccStat": 0,
                "AccessToken": token,
                "TokenAvailableTime": 7200,
                "FailReason": 0,
            })),
        );
    }
    if !bearer.is_some_and(|t| state.tokens.contains(t)) {
        return sealed(Ret::BadToken, None);
    }
    state.received.push((interface.to_owned(), payload.clone()));
    state.arrived.push(std::time::SystemTime::now());
    if state.refuse > 0 {
        state.refuse -= 1;
        return sealed(Ret::BadPayload, None);
    }
    let reply = match interface {
        "notification_stationStatus" => json!({"Status": 0}),
        "notification_charge_order_info" => {
            let confirm = state.confirm.pop_front().unwrap_or(0);
            json!({
                "StartChargeSeq": payload["StartChargeSeq"],
                "ConnectorID": payload["ConnectorID"],
                "ConfirmResult": confirm,
            })
        }
        _ => json!({"SuccStat": 0}),
    };
    sealed(Ret::Ok, Some(reply))
}
