//! Logging and traces: tracing with an `EnvFilter` (`RUST_LOG`, default `info`), as JSON or
//! human text; and, when the standard `OTEL_*` variables ask for it
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp`; `OTEL_SDK_DISABLED=true`
//! turns it off), OpenTelemetry traces exported over OTLP/gRPC. W3C trace context
//! (`traceparent`) is read from every call and written on every call forwarded and every event
//! published, so a trace started at the gateway continues in the service and past the bus.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Whether the `OTEL_*` environment asks for trace export.
fn otlp_wanted() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let exporter = std::env::var("OTEL_TRACES_EXPORTER").unwrap_or_default();
    !disabled
        && exporter != "none"
        && (exporter == "otlp"
            || set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The OTLP trace provider, from the `OTEL_*` environment (endpoint, headers, service name,
/// resource attributes).
fn otlp_provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build())
}

/// The trace export of the process: dropping it flushes what is buffered and shuts it down.
#[derive(Debug)]
#[must_use = "traces stop being exported when this is dropped"]
pub struct Traces(Option<SdkTracerProvider>);

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("flushing traces: {error}");
        }
    }
}

/// Installs the global subscriber once; later calls do nothing. `default` applies when
/// `RUST_LOG` is unset, such as `info`. Traces are exported over OTLP when the `OTEL_*`
/// environment asks for it. Keep the returned guard for the life of the process.
pub fn init(format: LogFormat, default: &str) -> Traces {
    let provider = if otlp_wanted() {
        match otlp_provider() {
            Ok(provider) => Some(provider),
            Err(error) => {
                eprintln!("traces are not exported: {error}");
                None
            }
        }
    } else {
        None
    };
    install(format, default, provider)
}

/// Installs the global subscriber with spans going to `provider` (an OTLP exporter, or an
/// in-memory one in tests); `None` logs only, passing callers' trace context through.
pub fn install(format: LogFormat, default: &str, provider: Option<SdkTracerProvider>) -> Traces {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let traces = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("chargemesh")));
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    Traces(provider)
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct MetadataMut<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// The span of one gRPC call, continuing the caller's trace when its `traceparent` says one.
/// Its `trace_id` field puts the trace id in every log line written inside the call.
pub fn call_span(request: &http::Request<()>) -> tracing::Span {
    use opentelemetry::trace::TraceContextExt as _;
    let span = tracing::info_span!(
        "grpc",
        method = %request.uri().path(),
        trace_id = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    let remote = parent.span().span_context().trace_id();
    let _ = span.set_parent(parent);
    // Exported or not, the log names the trace: the caller's, or the one this call starts.
    let own = span.context().span().span_context().trace_id();
    let trace_id = if own != opentelemetry::trace::TraceId::INVALID {
        own
    } else {
        remote
    };
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}

/// Carries the current span's trace context on calls to other components of the mesh.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateTrace;

impl tonic::service::Interceptor for PropagateTrace {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = tracing::Span::current().context();
        TraceContextPropagator::new()
            .inject_context(&context, &mut MetadataMut(request.metadata_mut()));
        Ok(request)
    }
}

/// Writes the current span's trace context (`traceparent`) into headers being forwarded.
pub fn inject_current(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeadersMut(headers));
}

/// The current span's `traceparent`, for an event; empty outside a sampled trace.
pub fn current_traceparent() -> String {
    let mut headers = http::HeaderMap::new();
    inject_current(&mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A span for handling one event, continuing the trace of the call that raised it.
pub fn event_span(kind: &str, traceparent: &str) -> tracing::Span {
    let span = tracing::info_span!("event", kind);
    if !traceparent.is_empty() {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(traceparent) {
            headers.insert("traceparent", value);
        }
        let _ = span.set_parent(TraceContextPropagator::new().extract(&Headers(&headers)));
    }
    span
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON log line written inside the call span of `request`.
    fn line_inside_call(request: &http::Request<()>) -> serde_json::Value {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = call_span(request);
            let _entered = span.enter();
            tracing::info!("inside the call");
        });
        let text = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf-8");
        serde_json::from_str(text.lines().next().expect("one line")).expect("json")
    }

    #[test]
    fn a_json_log_line_inside_a_call_names_the_callers_trace() {
        let request = http::Request::builder()
            .uri("/chargemesh.asset.v1.AssetService/GetStation")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .expect("request");
        let line = line_inside_call(&request);
        assert_eq!(
            line["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{line}"
        );
        assert_eq!(
            line["span"]["method"],
            "/chargemesh.asset.v1.AssetService/GetStation"
        );
    }

    #[test]
    fn a_call_without_trace_context_logs_no_trace_id() {
        let request = http::Request::builder()
            .uri("/x.Y/Z")
            .body(())
            .expect("request");
        let line = line_inside_call(&request);
        assert!(line["span"].get("trace_id").is_none(), "{line}");
        assert_eq!(line["span"]["method"], "/x.Y/Z");
    }
}
