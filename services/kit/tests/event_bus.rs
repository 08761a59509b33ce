//! The event bus conformance suite: in-process always, Redis Streams when
//! `CHARGEMESH_TEST_REDIS_URL` is set.

use std::sync::Arc;
use std::time::Duration;

use chargemesh_kit::events::{EventBus, InProcessBus, RedisBus, envelope};

const CLAIM_IDLE: Duration = Duration::from_millis(300);

async fn buses() -> Vec<(&'static str, Arc<dyn EventBus>)> {
    let mut buses: Vec<(&'static str, Arc<dyn EventBus>)> = vec![(
        "in-process",
        Arc::new(InProcessBus::with_limits(1000, CLAIM_IDLE)),
    )];
    if let Ok(url) = std::env::var("CHARGEMESH_TEST_REDIS_URL")
        && !url.is_empty()
    {
        let prefix = format!("test-{}:", uuid::Uuid::now_v7().simple());
        let bus = RedisBus::connect_with(&url, &prefix, 10_000, CLAIM_IDLE)
            .await
            .expect("redis");
        buses.push(("redis", Arc::new(bus)));
    }
    buses
}

fn event(n: u32) -> chargemesh_kit::events::EventEnvelope {
    envelope(
        "test",
        "OP",
        "test.event",
        n.to_be_bytes().to_vec(),
        chrono::Utc::now(),
    )
}

async fn next_within(
    sub: &mut Box<dyn chargemesh_kit::events::Subscription>,
) -> chargemesh_kit::events::Delivery {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("delivered in time")
        .expect("delivery")
}

#[tokio::test]
async fn every_group_sees_every_event_in_order() {
    for (name, bus) in buses().await {
        let mut a = bus
            .subscribe("t", "group-a", "a1")
            .await
            .expect("subscribe");
        let mut b = bus
            .subscribe("t", "group-b", "b1")
            .await
            .expect("subscribe");
        for n in 0..2 {
            bus.publish("t", &event(n)).await.expect("publish");
        }
        let rest: Vec<_> = (2..5).map(event).collect();
        bus.publish_all("t", &rest)
            .await
            .expect("publish in one go");
        for sub in [&mut a, &mut b] {
            for n in 0..5u32 {
                let d = next_within(sub).await;
                assert_eq!(d.envelope.payload, n.to_be_bytes().to_vec(), "{name}");
                assert!(!d.redelivered);
                sub.ack(&d.id).await.expect("ack");
            }
        }
    }
}

#[tokio::test]
async fn consumers_of_one_group_share_the_work() {
    for (name, bus) in buses().await {
        let mut c1 = bus
            .subscribe("work", "workers", "c1")
            .await
            .expect("subscribe");
        let mut c2 = bus
            .subscribe("work", "workers", "c2")
            .await
            .expect("subscribe");
        for n in 0..4 {
            bus.publish("work", &event(n)).await.expect("publish");
        }
        let mut seen = Vec::new();
        for _ in 0..2 {
            let d = next_within(&mut c1).await;
            c1.ack(&d.id).await.expect("ack");
            seen.push(d.envelope.payload);
        }
        for _ in 0..2 {
            let d = next_within(&mut c2).await;
            c2.ack(&d.id).await.expect("ack");
            seen.push(d.envelope.payload);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            4,
            "{name}: each event went to exactly one consumer"
        );
    }
}

#[tokio::test]
async fn an_unacknowledged_event_is_claimed_by_another_consumer_after_the_idle_time() {
    for (name, bus) in buses().await {
        let mut crashed = bus
            .subscribe("jobs", "workers", "crashed")
            .await
            .expect("subscribe");
        bus.publish("jobs", &event(42)).await.expect("publish");
        let first = next_within(&mut crashed).await;
        drop(crashed); // it never acknowledges
        tokio::time::sleep(CLAIM_IDLE + Duration::from_millis(100)).await;
        let mut survivor = bus
            .subscribe("jobs", "workers", "survivor")
            .await
            .expect("subscribe");
        let again = next_within(&mut survivor).await;
        assert_eq!(again.envelope, first.envelope, "{name}");
        assert!(again.redelivered, "{name}: marked as a redelivery");
        survivor.ack(&again.id).await.expect("ack");
    }
}

#[tokio::test]
async fn every_delivery_is_measured_as_bus_lag_by_topic() {
    for (name, bus) in buses().await {
        let topic = format!("lag-{name}");
        let mut sub = bus.subscribe(&topic, "g", "c1").await.expect("subscribe");
        // Raised a second ago: its delivery lag is at least that.
        let mut late = event(1);
        late.time = Some(chargemesh_kit::time::to_timestamp(
            chrono::Utc::now() - chrono::Duration::seconds(1),
        ));
        bus.publish(&topic, &late).await.expect("publish");
        let d = next_within(&mut sub).await;
        sub.ack(&d.id).await.expect("ack");
        let text = chargemesh_kit::metrics::encode();
        let value = |series: &str| {
            let prefix = format!("chargemesh_bus_lag_seconds_{series}{{topic=\"{topic}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        assert_eq!(value("count"), Some(1.0), "{name}: {text}");
        assert!(value("sum").is_some_and(|s| s >= 1.0), "{name}: {text}");
    }
}

/// Unreadable entries (written by hand, or by a broken producer) are parked in the dead-letter
/// stream and acknowledged: they do not fill every claim and read batch, and readable events
/// behind them are delivered.
#[tokio::test]
async fn unreadable_events_are_parked_in_the_dead_letter_stream_and_acknowledged() {
    let Ok(url) = std::env::var("CHARGEMESH_TEST_REDIS_URL") else {
        return;
    };
    if url.is_empty() {
        return;
    }
    let prefix = format!("test-{}:", uuid::Uuid::now_v7().simple());
    let bus = RedisBus::connect_with(&url, &prefix, 10_000, CLAIM_IDLE)
        .await
        .expect("redis");
    let mut sub = bus.subscribe("t", "g", "c1").await.expect("subscribe");
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    for n in 0..100 {
        let _: String = redis::cmd("XADD")
            .arg(format!("{prefix}t"))
            .arg("*")
            .arg("e")
            .arg(vec![0xffu8, 0xff, n as u8])
            .query_async(&mut conn)
            .await
            .expect("xadd");
    }
    bus.publish("t", &event(7)).await.expect("publish");
    let got = next_within(&mut sub).await;
    assert_eq!(got.envelope.payload, 7u32.to_be_bytes().to_vec());
    sub.ack(&got.id).await.expect("ack");
    let parked: u64 = redis::cmd("XLEN")
        .arg(format!("{prefix}dead-letter"))
        .query_async(&mut conn)
        .await
        .expect("xlen");
    assert_eq!(parked, 100, "every unreadable event parked once");
    // XPENDING's summary: the count first.
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(format!("{prefix}t"))
        .arg("g")
        .query_async(&mut conn)
        .await
        .expect("xpending");
    assert!(
        matches!(pending.first(), Some(redis::Value::Int(0))),
        "nothing left pending: {pending:?}"
    );
}

#[tokio::test]
async fn a_key_is_used_once_until_it_expires_for_everyone_sharing_the_bus() {
    for (name, bus) in buses().await {
        let key = format!("seq-{name}-{}", uuid::Uuid::now_v7().simple());
        let ttl = Duration::from_millis(300);
        assert!(bus.first_use(&key, ttl).await.expect("first"), "{name}");
        assert!(!bus.first_use(&key, ttl).await.expect("again"), "{name}");
        assert!(
            bus.first_use(&format!("{key}-other"), ttl)
                .await
                .expect("another key"),
            "{name}"
        );
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(
            bus.first_use(&key, ttl).await.expect("expired"),
            "{name}: usable again once expired"
        );
    }
}
