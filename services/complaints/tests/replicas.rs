//! Two replicas of the complaints component over one database: each with its own connection
//! pool and scheduler, running their passes at the same time. Every 24-hour clock fires exactly
//! once between them, and its breach is announced once (REQ CMP-1) — on SQLite always, and on
//! PostgreSQL when `CHARGEMESH_TEST_DATABASE_URL` is set.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use chargemesh_complaints::domain::complaint::{Category, Channel, Complaint, Intake, Kind};
use chargemesh_complaints::engine::{BREACH_EVENT, COMPLAINTS_TOPIC, Engine};
use chargemesh_complaints::store;
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_kit::db::{Database, TestDatabase};
use chargemesh_kit::events::{EventBus, InProcessBus};

const COMPLAINTS: usize = 40;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

fn complaint(i: usize, at: DateTime<Utc>) -> Complaint {
    Complaint::receive(
        format!("CP-{i:03}"),
        Intake {
            operator_id: "OPA".into(),
            kind: Kind::Complaint,
            channel: Channel::Phone,
            category: Category::Queueing,
            customer_contact: "138".into(),
            station_id: Some("S1".into()),
            pile_id: None,
            description: "an hour's queue".into(),
            attachments: Vec::new(),
            charge_order_id: None,
        },
        "desk",
        at,
    )
    .expect("complaint")
}

fn nowhere() -> chargemesh_kit::tls::MeshChannel {
    tonic::service::interceptor::InterceptedService::new(
        tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
        chargemesh_kit::telemetry::PropagateTrace,
    )
}

#[tokio::test]
async fn cmp_1_two_replicas_fire_every_clock_exactly_once() {
    for db in TestDatabase::every("complaints").await.expect("backends") {
        let clock = ManualClock::new(t("2026-03-01T08:00:00Z"));
        let bus = Arc::new(InProcessBus::new());
        let mut breaches = bus
            .subscribe(COMPLAINTS_TOPIC, "test", "t1")
            .await
            .expect("subscribed");
        let first = store::open(&db.database).await.expect("migrated");
        let second_pool = Database::connect(&db.url, &db.schema, 5)
            .await
            .expect("a second replica's pool");
        let second = store::open(&second_pool).await.expect("migrated");
        for i in 0..COMPLAINTS {
            let c = complaint(i, clock.now());
            first
                .create(&c, &[("response".into(), c.response_due())])
                .await
                .expect("filed");
        }
        clock.advance(chrono::Duration::hours(25));
        let replica = |s, pool| {
            Engine::new(
                s,
                Arc::new(clock.clone()),
                bus.clone(),
                nowhere(),
                nowhere(),
                pool,
            )
        };
        let (a, b) = (
            replica(first, db.database.clone()),
            replica(second, second_pool.clone()),
        );
        let mut fired = 0;
        for _ in 0..5 {
            let (x, y) = tokio::join!(a.run_due(), b.run_due());
            fired += x.expect("pass") + y.expect("pass");
        }
        assert_eq!(fired, COMPLAINTS, "{}: each clock fired once", db.backend());
        let mut announced = 0;
        while let Ok(Ok(delivery)) =
            tokio::time::timeout(Duration::from_millis(200), breaches.next()).await
        {
            if delivery.envelope.r#type == BREACH_EVENT {
                announced += 1;
            }
            breaches.ack(&delivery.id).await.expect("ack");
        }
        assert_eq!(
            announced,
            COMPLAINTS,
            "{}: each breach announced once",
            db.backend()
        );
    }
}
