//! What one client may hold of the gRPC edge (REQ NETSEC-1). The transport bounds every
//! connection (streams open at once, keepalive, age, header size, handshake time, message size);
//! the gateway bounds every principal — a certificate's identity, a staff member, or an
//! anonymous address — in connections, long-lived streams and calls per second. A call over a
//! limit ends `RESOURCE_EXHAUSTED`, naming the limit and its setting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tonic::Status;

use chargemesh_kit::tls::{ConnectionGate, Held, PeerInfo};

/// The edge's limits (`[gateway.limits]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EdgeLimits {
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Keepalive pings on a quiet connection, and how long one may go unanswered.
    pub keepalive_interval_s: u64,
    pub keepalive_timeout_s: u64,
    /// A connection older than this is told to go away (GOAWAY), and closed after the grace.
    pub max_connection_age_s: u64,
    pub max_connection_age_grace_s: u64,
    /// How long a client has for its TLS handshake.
    pub handshake_timeout_ms: u64,
    /// Connections one principal (or one address without a certificate) may hold.
    pub connections_per_principal: usize,
    /// Long-lived streams (telemetry, watches) one principal may hold.
    pub streams_per_principal: usize,
    /// Calls one principal may start per second, and in a burst.
    pub calls_per_second: u32,
    pub call_burst: u32,
    /// The largest gRPC message a client may send.
    pub max_message_bytes: usize,
    /// The largest telemetry frame, and the most messages in one.
    pub telemetry_frame_bytes: usize,
    pub telemetry_batch: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            keepalive_interval_s: 30,
            keepalive_timeout_s: 10,
            max_connection_age_s: 2 * 3600,
            max_connection_age_grace_s: 10 * 60,
            handshake_timeout_ms: 10_000,
            connections_per_principal: 64,
            streams_per_principal: 32,
            calls_per_second: 1_000,
            call_burst: 2_000,
            max_message_bytes: 4 << 20,
            telemetry_frame_bytes: 1 << 20,
            telemetry_batch: 1_000,
        }
    }
}

/// A token bucket: refills at `rate` a second up to `burst`; a call takes one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Whether a call may start at `now`; it takes a token if so.
    pub fn take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Usage {
    connections: usize,
    streams: usize,
    bucket: Bucket,
    last_call: Instant,
}

/// The principals' usage, swept of the idle ones whenever it has doubled, so it holds the
/// principals of the moment and no more.
#[derive(Debug)]
struct Table {
    usage: HashMap<String, Usage>,
    sweep_at: usize,
}

/// Counts what each principal holds and refuses what goes over.
#[derive(Debug)]
pub struct PrincipalLimiter {
    limits: EdgeLimits,
    table: Mutex<Table>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connection,
    Stream,
}

/// A place under a limit, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<PrincipalLimiter>,
    who: String,
    kind: Kind,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut table = self.limiter.lock();
        if let Some(u) = table.usage.get_mut(&self.who) {
            match self.kind {
                Kind::Connection => u.connections = u.connections.saturating_sub(1),
                Kind::Stream => u.streams = u.streams.saturating_sub(1),
            }
        }
    }
}

/// How long a principal with nothing open is remembered after its last call.
const IDLE: Duration = Duration::from_secs(60);

impl PrincipalLimiter {
    pub fn new(limits: EdgeLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            table: Mutex::new(Table {
                usage: HashMap::new(),
                sweep_at: 1024,
            }),
        })
    }

    pub fn limits(&self) -> &EdgeLimits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_usage<R>(&self, who: &str, f: impl FnOnce(&mut Usage, Instant) -> R) -> R {
        let now = Instant::now();
        let mut table = self.lock();
        if table.usage.len() >= table.sweep_at {
            table.usage.retain(|_, u| {
                u.connections > 0 || u.streams > 0 || now.duration_since(u.last_call) < IDLE
            });
            table.sweep_at = (table.usage.len() * 2).max(1024);
        }
        let burst = self.limits.call_burst;
        let usage = table.usage.entry(who.to_owned()).or_insert_with(|| Usage {
            connections: 0,
            streams: 0,
            bucket: Bucket::full(burst, now),
            last_call: now,
        });
        f(usage, now)
    }

    /// A call of `who` starting now, within its calls per second.
    pub fn admit_call(&self, who: &str) -> Result<(), Status> {
        let (rate, burst) = (self.limits.calls_per_second, self.limits.call_burst);
        let admitted = self.with_usage(who, |u, now| {
            u.last_call = now;
            u.bucket.take(rate, burst, now)
        });
        if admitted {
            Ok(())
        } else {
            Err(exhausted(
                "gateway.limits.calls_per_second",
                u64::from(rate),
                who,
                "slow down and retry",
            ))
        }
    }

    /// A long-lived stream of `who`, held until the permit drops.
    pub fn open_stream(self: &Arc<Self>, who: &str) -> Result<Permit, Status> {
        let max = self.limits.streams_per_principal;
        let opened = self.with_usage(who, |u, _| {
            if u.streams >= max {
                return false;
            }
            u.streams += 1;
            true
        });
        if !opened {
            return Err(exhausted(
                "gateway.limits.streams_per_principal",
                max as u64,
                who,
                "close a stream first",
            ));
        }
        Ok(Permit {
            limiter: self.clone(),
            who: who.to_owned(),
            kind: Kind::Stream,
        })
    }

    fn open_connection(self: &Arc<Self>, who: &str) -> Result<Permit, String> {
        let max = self.limits.connections_per_principal;
        let opened = self.with_usage(who, |u, _| {
            if u.connections >= max {
                return false;
            }
            u.connections += 1;
            true
        });
        if !opened {
            return Err(exhausted(
                "gateway.limits.connections_per_principal",
                max as u64,
                who,
                "reuse a connection",
            )
            .message()
            .to_owned());
        }
        Ok(Permit {
            limiter: self.clone(),
            who: who.to_owned(),
            kind: Kind::Connection,
        })
    }
}

fn exhausted(setting: &str, limit: u64, who: &str, advice: &str) -> Status {
    Status::resource_exhausted(format!("{who} is over {setting} ({limit}); {advice}"))
}

/// Who a connection counts against: its certificate's principal, or its address.
pub fn connection_key(info: &PeerInfo) -> String {
    match (&info.principal, info.remote_addr) {
        (Some(p), _) => p.to_string(),
        (None, Some(addr)) => format!("anonymous@{}", addr.ip()),
        (None, None) => "anonymous".to_owned(),
    }
}

/// The connection gate of the edge: connections per principal.
#[derive(Debug, Clone)]
pub struct ConnectionLimits(pub Arc<PrincipalLimiter>);

impl ConnectionGate for ConnectionLimits {
    fn admit(&self, info: &PeerInfo) -> Result<Held, String> {
        self.0
            .open_connection(&connection_key(info))
            .map(|permit| Held(Arc::new(permit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netsec_1_a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(3, start);
        assert!((0..3).all(|_| bucket.take(2, 3, start)), "the burst");
        assert!(!bucket.take(2, 3, start), "then nothing at once");
        assert!(
            bucket.take(2, 3, start + Duration::from_millis(500)),
            "one after half a second at 2/s"
        );
        assert!(!bucket.take(2, 3, start + Duration::from_millis(500)));
        let later = start + Duration::from_secs(60);
        assert!(
            (0..3).all(|_| bucket.take(2, 3, later)) && !bucket.take(2, 3, later),
            "refilled to the burst, no more"
        );
    }

    #[test]
    fn netsec_1_each_principal_has_its_own_streams_and_they_come_back_when_closed() {
        let limiter = PrincipalLimiter::new(EdgeLimits {
            streams_per_principal: 2,
            ..EdgeLimits::default()
        });
        let a1 = limiter.open_stream("pile/a").expect("first");
        let _a2 = limiter.open_stream("pile/a").expect("second");
        let refused = limiter.open_stream("pile/a").expect_err("third");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("streams_per_principal (2)"),
            "{}",
            refused.message()
        );
        limiter
            .open_stream("pile/b")
            .expect("another principal's own");
        drop(a1);
        limiter.open_stream("pile/a").expect("a place came back");
    }

    #[test]
    fn netsec_1_calls_past_the_burst_are_refused_naming_the_limit() {
        let limiter = PrincipalLimiter::new(EdgeLimits {
            calls_per_second: 1,
            call_burst: 2,
            ..EdgeLimits::default()
        });
        assert!(
            limiter.admit_call("staff:alice").is_ok() && limiter.admit_call("staff:alice").is_ok()
        );
        let refused = limiter
            .admit_call("staff:alice")
            .expect_err("third at once");
        assert!(
            refused.message().contains("calls_per_second (1)"),
            "{}",
            refused.message()
        );
        assert!(limiter.admit_call("staff:bob").is_ok(), "bob is not alice");
    }
}
