//! Traces: a call entering at the gateway with W3C trace context continues, under the same
//! trace id, in the service behind it, in the services that one calls, and on the events it
//! publishes. Spans go to an in-memory exporter installed as this test binary's subscriber.

mod common;

use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

use chargemesh::pki::{self, DEMO_OPERATOR_ID};
use chargemesh_kit::telemetry::{self, LogFormat};
use chargemesh_proto::dispatch::v1 as pb;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use common::{TestMesh, eventually, with_token};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn method(span: &SpanData) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "method")
        .map(|kv| kv.value.to_string())
        .unwrap_or_default()
}

/// Walks up from `span` through the exported parents; true when `ancestor` is on the way.
fn descends_from(spans: &[SpanData], span: &SpanData, ancestor: SpanId) -> bool {
    let mut parent = span.parent_span_id;
    for _ in 0..spans.len() {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_context.span_id() == parent) {
            Some(next) => parent = next.parent_span_id,
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_started_at_the_gateway_reaches_the_services_and_the_events_with_its_id() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let _traces = telemetry::install(LogFormat::Text, "info", Some(provider));

    let mesh = TestMesh::start().await;
    common::two_station_fleet(&mesh).await;
    let bus = mesh.mesh.as_ref().expect("running").bus.clone();
    let mut events = bus
        .subscribe("dispatch", "tracing-test", "t1")
        .await
        .expect("subscribed");

    let token = pki::mint_token(
        mesh.pki(),
        "repairer",
        Some(DEMO_OPERATOR_ID),
        &["repairer".to_owned()],
        3600,
    )
    .expect("token");
    let mut request = with_token(
        pb::RegisterDefectRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            station_id: "S-URB".into(),
            pile_id: "P1".into(),
            class: pb::DefectClass::Critical as i32,
            description: "cracked connector with exposed cable".into(),
            elimination_plan: "replace the gun today".into(),
            maintenance_plan: String::new(),
        },
        &token,
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE}-{CALLER_SPAN}-01")
            .parse()
            .expect("metadata"),
    );
    DispatchServiceClient::new(mesh.anonymous_channel())
        .register_defect(request)
        .await
        .expect("defect registered");

    let trace = TraceId::from_hex(TRACE).expect("trace id");
    let caller = SpanId::from_hex(CALLER_SPAN).expect("span id");
    let register = "/chargemesh.dispatch.v1.DispatchService/RegisterDefect";
    let spans = eventually(
        async || exporter.get_finished_spans().unwrap_or_default(),
        |spans| {
            spans
                .iter()
                .filter(|s| method(s) == register && s.span_context.trace_id() == trace)
                .count()
                >= 2
        },
    )
    .await;
    let ours: Vec<SpanData> = spans
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    // The gateway's span is the caller's child; the dispatch service's is the gateway's.
    let gateway = ours
        .iter()
        .find(|s| method(s) == register && s.parent_span_id == caller)
        .unwrap_or_else(|| panic!("no gateway span under the caller's: {ours:#?}"));
    let dispatch = ours
        .iter()
        .find(|s| method(s) == register && s.parent_span_id != caller)
        .unwrap_or_else(|| panic!("no dispatch span: {ours:#?}"));
    assert!(
        descends_from(&ours, dispatch, gateway.span_context.span_id()),
        "the dispatch span continues the gateway's"
    );
    // Dispatch looks the station up in the asset registry within the same trace.
    let lookup = ours
        .iter()
        .find(|s| method(s) == "/chargemesh.asset.v1.AssetService/GetStation")
        .unwrap_or_else(|| panic!("the asset lookup is not in the trace: {ours:#?}"));
    assert!(descends_from(
        &ours,
        lookup,
        dispatch.span_context.span_id()
    ));

    // REQ DEF-2: the critical defect is announced; the event carries the trace on.
    let delivery = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a defect event")
        .expect("bus read");
    assert_eq!(
        delivery.envelope.r#type,
        "chargemesh.dispatch.defect_reported"
    );
    let parts: Vec<&str> = delivery.envelope.traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{}", delivery.envelope.traceparent);
    assert_eq!(parts[1], TRACE, "the event is in the caller's trace");
    let parent = SpanId::from_hex(parts[2]).expect("span id");
    assert!(
        ours.iter().any(|s| s.span_context.span_id() == parent),
        "the event's parent span is one of the trace's spans"
    );

    // A call without trace context starts its own trace: nothing joins the caller's.
    let before = ours.len();
    DispatchServiceClient::new(mesh.anonymous_channel())
        .list_defects(with_token(
            pb::ListDefectsRequest {
                operator_id: DEMO_OPERATOR_ID.into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("defects listed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = exporter
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .count();
    assert_eq!(after, before, "an untraced call stays out of the trace");
    mesh.stop().await;
}
