//! The dispatch store conformance suite: every behaviour the service relies on — one open order
//! per connector, optimistic concurrency, clocks that fire once, breaches recorded once,
//! documents kept per tenant — run against SQLite always and against PostgreSQL when
//! `CHARGEMESH_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use chargemesh_dispatch::domain::crew::{Employer, StaffMember};
use chargemesh_dispatch::domain::defect::{Defect, DefectClass, DefectDeadlines, NewDefect};
use chargemesh_dispatch::domain::work_order::{Channel, State, WorkOrder, Zone};
use chargemesh_dispatch::store::{self, DispatchStore, DocKey, StaffRecord};
use chargemesh_kit::db::{StoreError, TestDatabase};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

async fn backends() -> Vec<(TestDatabase, Arc<dyn DispatchStore>)> {
    let mut out = Vec::new();
    for db in TestDatabase::every("dispatch").await.expect("backends") {
        let s = store::open(&db.database).await.expect("migrated");
        out.push((db, s));
    }
    out
}

fn automatic(id: &str, operator: &str, connector: &str) -> WorkOrder {
    WorkOrder::receive(
        id.into(),
        operator.into(),
        "S1".into(),
        "P1".into(),
        Some(connector.into()),
        Channel::Automatic,
        Zone::MainUrban,
        "E42".into(),
        "insulation fault".into(),
        t("2026-03-01T08:00:00Z"),
    )
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for (db, _) in backends().await {
        store::open(&db.database).await.expect("again");
    }
}

#[tokio::test]
async fn fault_4_one_open_automatic_order_per_connector_until_it_closes() {
    for (db, s) in backends().await {
        let at = t("2026-03-01T09:00:00Z");
        let first = automatic("WO-1", "OPA", "P1-1");
        assert!(
            s.create_order(&first, &first.clock_rows())
                .await
                .expect("created")
        );
        let again = automatic("WO-2", "OPA", "P1-1");
        assert!(
            !s.create_order(&again, &again.clock_rows())
                .await
                .expect("deduplicated"),
            "{}",
            db.backend()
        );
        // Another operator's connector of the same name is its own.
        let other = automatic("WO-3", "OPB", "P1-1");
        assert!(
            s.create_order(&other, &other.clock_rows())
                .await
                .expect("other tenant")
        );
        // The same order made twice is made once.
        assert!(
            !s.create_order(&first, &first.clock_rows())
                .await
                .expect("idempotent")
        );
        let (mut stored, version) = s
            .order("OPA", "WO-1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(stored, first, "{}", db.backend());
        assert_eq!(version, 1);
        stored.state = State::Closed;
        s.update_order(&stored, version, at, &[])
            .await
            .expect("closed");
        let stale = s.update_order(&stored, version, at, &[]).await;
        assert!(
            matches!(stale, Err(StoreError::Conflict(_))),
            "{}",
            db.backend()
        );
        // Closed, the connector takes a new automatic order.
        assert!(
            s.create_order(&again, &again.clock_rows())
                .await
                .expect("reopened")
        );
        let open = s.orders("OPA", None, true).await.expect("open");
        assert_eq!(
            open.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(),
            ["WO-2"]
        );
        assert_eq!(
            s.orders("OPA", Some("S1"), false).await.expect("all").len(),
            2
        );
        assert!(
            s.orders("OPA", Some("S9"), false)
                .await
                .expect("none")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn fault_5_clocks_come_due_in_order_fire_once_and_record_one_breach() {
    for (db, s) in backends().await {
        let order = automatic("WO-1", "OPA", "P1-1");
        s.create_order(&order, &order.clock_rows())
            .await
            .expect("created");
        s.add_deadline("OPA", "PS-1", "patrol:0", t("2026-03-01T08:30:00Z"))
            .await
            .expect("added");
        s.add_deadline("OPA", "PS-1", "patrol:0", t("2026-03-01T08:30:00Z"))
            .await
            .expect("added twice is a no-op");
        let none = s
            .due_deadlines(t("2026-03-01T08:00:00Z"), 10)
            .await
            .expect("due");
        assert!(none.is_empty(), "{}", db.backend());
        let due = s
            .due_deadlines(t("2026-03-01T12:00:00Z"), 10)
            .await
            .expect("due");
        let kinds: Vec<&str> = due.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["patrol:0", "arrival", "resolution"],
            "{}",
            db.backend()
        );
        assert_eq!(
            s.due_deadlines(t("2026-03-01T12:00:00Z"), 1)
                .await
                .expect("due")
                .len(),
            1
        );
        let arrival = &due[1];
        let now = t("2026-03-01T12:00:00Z");
        assert!(s.fire(arrival, Some("FAULT-5"), now).await.expect("fired"));
        assert!(!s.fire(arrival, Some("FAULT-5"), now).await.expect("once"));
        assert!(s.fire(&due[0], None, now).await.expect("fired"));
        let left = s.due_deadlines(now, 10).await.expect("due");
        assert_eq!(left.len(), 1, "{}", db.backend());
        assert_eq!(left[0].kind, "resolution");
        assert_eq!(
            s.breaches("OPA", "WO-1").await.expect("breaches"),
            [("arrival".to_owned(), "FAULT-5".to_owned())]
        );
    }
}

#[tokio::test]
async fn staff_2_staff_members_are_unique_and_updated_under_their_version() {
    for (db, s) in backends().await {
        let record = StaffRecord {
            operator_id: "OPA".into(),
            member: StaffMember {
                staff_id: "alice".into(),
                name: "Alice".into(),
                employer: Employer::Own,
                electrician_certificate_until: None,
                qualified_until: None,
                trainings: Vec::new(),
            },
        };
        let now = t("2026-03-01T08:00:00Z");
        s.create_staff(&record, now).await.expect("created");
        let dup = s.create_staff(&record, now).await;
        assert!(
            matches!(dup, Err(StoreError::Unique(_))),
            "{}",
            db.backend()
        );
        let (mut got, version) = s
            .staff_member("OPA", "alice")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(got, record);
        got.member.name = "Alice Wang".into();
        s.update_staff(&got, version).await.expect("updated");
        assert!(matches!(
            s.update_staff(&got, version).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.staff("OPA").await.expect("list")[0].member.name,
            "Alice Wang"
        );
        assert!(s.staff("OPB").await.expect("list").is_empty());
        assert!(
            s.staff_member("OPB", "alice")
                .await
                .expect("read")
                .is_none()
        );
    }
}

#[tokio::test]
async fn def_2_defects_round_trip_and_change_under_their_version() {
    for (db, s) in backends().await {
        let now = t("2026-03-01T08:00:00Z");
        let defect = Defect::register(
            NewDefect {
                defect_id: "DF-1".into(),
                operator_id: "OPA".into(),
                station_id: "S1".into(),
                pile_id: Some("P1".into()),
                class: DefectClass::Critical,
                description: "cracked gun".into(),
                finder: "alice".into(),
                elimination_plan: "replace the gun".into(),
                maintenance_plan: None,
            },
            DefectDeadlines::default(),
            now,
        )
        .expect("registered");
        s.create_defect(&defect).await.expect("created");
        let (mut got, version) = s
            .defect("OPA", "DF-1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(got, defect, "{}", db.backend());
        got.eliminate("gun replaced", now + Duration::hours(1))
            .expect("eliminated");
        s.update_defect(&got, version, now).await.expect("updated");
        assert!(matches!(
            s.update_defect(&got, version, now).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.defects("OPA", Some("P1")).await.expect("by pile").len(),
            1
        );
        assert!(
            s.defects("OPA", Some("P2"))
                .await
                .expect("by pile")
                .is_empty()
        );
        assert!(s.defect("OPB", "DF-1").await.expect("read").is_none());
    }
}

#[tokio::test]
async fn documents_are_kept_per_kind_and_tenant_under_their_version() {
    for (db, s) in backends().await {
        let now = t("2026-03-01T08:00:00Z");
        let doc = serde_json::json!({ "plan_id": "MP-1", "items": ["metering"] });
        s.insert_doc(
            DocKey {
                kind: "maintenance_plan",
                operator_id: "OPA",
                id: "MP-1",
            },
            "S1",
            &doc,
            now,
            &[],
        )
        .await
        .expect("inserted");
        let dup = s
            .insert_doc(
                DocKey {
                    kind: "maintenance_plan",
                    operator_id: "OPA",
                    id: "MP-1",
                },
                "S1",
                &doc,
                now,
                &[],
            )
            .await;
        assert!(
            matches!(dup, Err(StoreError::Unique(_))),
            "{}",
            db.backend()
        );
        // The same id under another kind or tenant is another record.
        s.insert_doc(
            DocKey {
                kind: "patrol",
                operator_id: "OPA",
                id: "MP-1",
            },
            "S1",
            &doc,
            now,
            &[],
        )
        .await
        .expect("other kind");
        s.insert_doc(
            DocKey {
                kind: "maintenance_plan",
                operator_id: "OPB",
                id: "MP-1",
            },
            "S1",
            &doc,
            now,
            &[],
        )
        .await
        .expect("other tenant");
        let (got, version) = s
            .doc("maintenance_plan", "OPA", "MP-1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(got, doc);
        let changed = serde_json::json!({ "plan_id": "MP-1", "items": ["cleaning"] });
        s.update_doc(
            DocKey {
                kind: "maintenance_plan",
                operator_id: "OPA",
                id: "MP-1",
            },
            &changed,
            version,
            now,
            &[],
        )
        .await
        .expect("updated");
        assert!(matches!(
            s.update_doc(
                DocKey {
                    kind: "maintenance_plan",
                    operator_id: "OPA",
                    id: "MP-1"
                },
                &changed,
                version,
                now,
                &[]
            )
            .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.docs("maintenance_plan", "OPA").await.expect("list"),
            [changed]
        );
        assert!(s.docs("drill", "OPA").await.expect("list").is_empty());
    }
}

#[tokio::test]
async fn follow_cursors_resume_where_they_stopped() {
    for (db, s) in backends().await {
        assert_eq!(s.follow_cursor("status-log").await.expect("read"), None);
        s.set_follow_cursor("status-log", "41").await.expect("set");
        s.set_follow_cursor("status-log", "42")
            .await
            .expect("moved");
        assert_eq!(
            s.follow_cursor("status-log")
                .await
                .expect("read")
                .as_deref(),
            Some("42"),
            "{}",
            db.backend()
        );
    }
}
