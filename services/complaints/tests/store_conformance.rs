//! The complaints store conformance suite: complaints under optimistic concurrency, clocks that
//! come due in order and fire once, breaches recorded once — on SQLite always and on PostgreSQL
//! when `CHARGEMESH_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use chargemesh_complaints::domain::complaint::{Category, Channel, Complaint, Intake, Kind};
use chargemesh_complaints::store::{self, ComplaintStore};
use chargemesh_kit::db::{StoreError, TestDatabase};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

async fn backends() -> Vec<(TestDatabase, Arc<dyn ComplaintStore>)> {
    let mut out = Vec::new();
    for db in TestDatabase::every("complaints").await.expect("backends") {
        let s = store::open(&db.database).await.expect("migrated");
        out.push((db, s));
    }
    out
}

fn complaint(operator: &str, id: &str) -> Complaint {
    Complaint::receive(
        id.into(),
        Intake {
            operator_id: operator.into(),
            kind: Kind::Complaint,
            channel: Channel::Phone,
            category: Category::Billing,
            customer_contact: "138".into(),
            station_id: Some("S1".into()),
            pile_id: None,
            description: "charged twice".into(),
            attachments: Vec::new(),
            charge_order_id: None,
        },
        "desk",
        t("2026-03-01T08:00:00Z"),
    )
    .expect("complaint")
}

#[tokio::test]
async fn complaints_are_kept_per_tenant_and_change_under_their_version() {
    for (db, s) in backends().await {
        let c = complaint("OPA", "CP-1");
        s.create(&c, &[("response".into(), c.response_due())])
            .await
            .expect("created");
        assert!(matches!(
            s.create(&c, &[]).await,
            Err(StoreError::Unique(_))
        ));
        let (mut got, version) = s
            .complaint("OPA", "CP-1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(got, c, "{}", db.backend());
        got.acknowledge("sorry", "h", t("2026-03-01T09:00:00Z"))
            .expect("ack");
        s.update(&got, version, &[]).await.expect("updated");
        assert!(matches!(
            s.update(&got, version, &[]).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.complaints("OPA").await.expect("list").len(), 1);
        assert!(s.complaints("OPB").await.expect("list").is_empty());
        assert!(s.complaint("OPB", "CP-1").await.expect("read").is_none());
    }
}

#[tokio::test]
async fn cmp_1_clocks_come_due_in_order_fire_once_and_record_one_breach() {
    for (db, s) in backends().await {
        let c = complaint("OPA", "CP-1");
        let promise_due = c.response_due() + Duration::hours(24);
        s.create(
            &c,
            &[
                ("promise:1".into(), promise_due),
                ("response".into(), c.response_due()),
            ],
        )
        .await
        .expect("created");
        assert!(
            s.due(t("2026-03-02T07:00:00Z"), 10)
                .await
                .expect("due")
                .is_empty()
        );
        let due = s.due(t("2026-03-04T00:00:00Z"), 10).await.expect("due");
        let kinds: Vec<&str> = due.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, ["response", "promise:1"], "{}", db.backend());
        let now = t("2026-03-04T00:00:00Z");
        assert!(
            s.fire(&due[0], Some(("CMP-1", 3600)), now)
                .await
                .expect("fired")
        );
        assert!(
            !s.fire(&due[0], Some(("CMP-1", 3600)), now)
                .await
                .expect("once")
        );
        let left = s.due(now, 10).await.expect("due");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].kind, "promise:1");
    }
}
