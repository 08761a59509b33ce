//! Prometheus metrics of every component, served on the admin port at `/metrics` (OpenMetrics
//! text): RPC rate, latency and codes per method; connected telemetry streams, ingested
//! messages and the fleet's connectors by state; the event bus's delivery lag; SLA breaches by
//! rule of the standard; the regulator push backlog (the outbox).

use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

type Histograms = Family<MethodLabels, Histogram, fn() -> Histogram>;
type TopicHistograms = Family<TopicLabels, Histogram, fn() -> Histogram>;

fn lag() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

/// The metrics, registered once per process.
#[derive(Debug)]
pub struct Metrics {
    pub rpc_requests: Family<RpcLabels, Counter>,
    pub rpc_duration: Histograms,
    pub telemetry_messages: Family<KindLabels, Counter>,
    /// Ingest transactions committed: messages over transactions is what a commit serves.
    pub telemetry_transactions: Counter,
    pub telemetry_streams: Gauge,
    pub connectors: Family<StateLabels, Gauge>,
    pub sla_breaches: Family<RuleLabels, Counter>,
    pub push_backlog: Family<PeerLabels, Gauge>,
    pub bus_lag: TopicHistograms,
    /// Events not published (the bus unreachable and the queue full); consumers poll instead.
    pub bus_dropped: Family<TopicLabels, Counter>,
    /// Events waiting to be published.
    pub bus_backlog: Gauge,
    /// Events a consumer could not read, parked in the dead-letter stream.
    pub bus_dead_letters: Family<TopicLabels, Counter>,
    /// Reads of the registry by telemetry's cache: an `operator` whole, or one `pile` or
    /// `station` patched in.
    pub registry_reads: Family<KindLabels, Counter>,
}

struct Global {
    metrics: Metrics,
    registry: Mutex<Registry>,
}

fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let metrics = Metrics {
            rpc_requests: Family::default(),
            rpc_duration: Family::new_with_constructor(latency),
            telemetry_messages: Family::default(),
            telemetry_transactions: Counter::default(),
            telemetry_streams: Gauge::default(),
            connectors: Family::default(),
            sla_breaches: Family::default(),
            push_backlog: Family::default(),
            bus_lag: Family::new_with_constructor(lag),
            bus_dropped: Family::default(),
            bus_backlog: Gauge::default(),
            bus_dead_letters: Family::default(),
            registry_reads: Family::default(),
        };
        let mut registry = Registry::with_prefix("chargemesh");
        registry.register(
            "rpc_requests",
            "gRPC calls handled, by method and status code",
            metrics.rpc_requests.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "gRPC call latency, by method",
            metrics.rpc_duration.clone(),
        );
        registry.register(
            "telemetry_messages",
            "telemetry messages made durable, by kind",
            metrics.telemetry_messages.clone(),
        );
        registry.register(
            "telemetry_transactions",
            "telemetry ingest transactions committed (messages made durable over these: what one commit serves)",
            metrics.telemetry_transactions.clone(),
        );
        registry.register(
            "telemetry_streams",
            "telemetry streams connected",
            metrics.telemetry_streams.clone(),
        );
        registry.register(
            "connectors",
            "connectors of the whole fleet by live state (offline after heartbeat silence, MON-1)",
            metrics.connectors.clone(),
        );
        registry.register(
            "sla_breaches",
            "limits of the standard missed, by rule (FAULT-5, CMP-1, ...)",
            metrics.sla_breaches.clone(),
        );
        registry.register(
            "regulator_push_backlog",
            "pushes to a regulator platform not yet confirmed, by peer",
            metrics.push_backlog.clone(),
        );
        registry.register(
            "bus_lag_seconds",
            "time from an event being raised to its delivery to a consumer, by topic",
            metrics.bus_lag.clone(),
        );
        registry.register(
            "bus_dropped_events",
            "events not published because the bus was unreachable and the queue full, by topic",
            metrics.bus_dropped.clone(),
        );
        registry.register(
            "bus_publish_backlog",
            "events waiting to be published to the bus",
            metrics.bus_backlog.clone(),
        );
        registry.register(
            "bus_dead_letters",
            "events no consumer could read, parked in the dead-letter stream, by topic",
            metrics.bus_dead_letters.clone(),
        );
        registry.register(
            "registry_reads",
            "registry reads by telemetry's cache, by kind: an operator whole, or one pile or station",
            metrics.registry_reads.clone(),
        );
        Global {
            metrics,
            registry: Mutex::new(registry),
        }
    })
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &global().metrics
}

/// A limit of the standard missed.
pub fn breach(rule: &str) {
    metrics()
        .sla_breaches
        .get_or_create(&RuleLabels {
            rule: rule.to_owned(),
        })
        .inc();
}

/// Everything in the OpenMetrics text format.
pub fn encode() -> String {
    let mut out = String::new();
    let registry = global().registry.lock().unwrap_or_else(|p| p.into_inner());
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// The methods a label may name: every method of the protos, gRPC health and reflection.
fn known_methods() -> &'static std::collections::HashSet<String> {
    static KNOWN: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        use prost::Message as _;
        let mut known: std::collections::HashSet<String> = [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        if let Ok(set) =
            prost_types::FileDescriptorSet::decode(chargemesh_proto::FILE_DESCRIPTOR_SET)
        {
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        known.insert(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        known
    })
}

/// A path as a metric label: the method when it is one of ours, else `unknown`, so paths a
/// client makes up cannot grow the series without bound.
pub fn method_label(path: &str) -> &str {
    if known_methods().contains(path) {
        path
    } else {
        "unknown"
    }
}

/// Records gRPC calls: the rate, latency and status code of each method.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Measured { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Measured<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Measured<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path()).to_owned();
        let started = std::time::Instant::now();
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            // A failed call answers with its status in the headers (trailers-only); a call that
            // succeeds, or streams, carries it in the trailers: counted as OK here.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or("OK", |c| tonic::Code::from_i32(c).description_name()),
                Err(_) => "UNAVAILABLE",
            };
            let m = metrics();
            m.rpc_requests
                .get_or_create(&RpcLabels {
                    method: method.clone(),
                    code: code.to_owned(),
                })
                .inc();
            m.rpc_duration
                .get_or_create(&MethodLabels { method })
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }
}

trait CodeName {
    fn description_name(self) -> &'static str;
}

impl CodeName for tonic::Code {
    fn description_name(self) -> &'static str {
        match self {
            tonic::Code::Ok => "OK",
            tonic::Code::Cancelled => "CANCELLED",
            tonic::Code::Unknown => "UNKNOWN",
            tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
            tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            tonic::Code::NotFound => "NOT_FOUND",
            tonic::Code::AlreadyExists => "ALREADY_EXISTS",
            tonic::Code::PermissionDenied => "PERMISSION_DENIED",
            tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
            tonic::Code::Aborted => "ABORTED",
            tonic::Code::OutOfRange => "OUT_OF_RANGE",
            tonic::Code::Unimplemented => "UNIMPLEMENTED",
            tonic::Code::Internal => "INTERNAL",
            tonic::Code::Unavailable => "UNAVAILABLE",
            tonic::Code::DataLoss => "DATA_LOSS",
            tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn netsec_1_only_known_methods_are_labels() {
        assert_eq!(
            method_label("/chargemesh.asset.v1.AssetService/GetStation"),
            "/chargemesh.asset.v1.AssetService/GetStation"
        );
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
        assert_eq!(
            method_label("/chargemesh.asset.v1.AssetService/Nope"),
            "unknown"
        );
        assert_eq!(method_label("/x/../../etc/passwd"), "unknown");
    }
}
