//! The dispatch store conformance suite: every behaviour the service relies on — one open order
//! per connector, optimistic concurrency, clocks that fire once, breaches recorded once,
//! documents kept per tenant — run against SQLite always and against PostgreSQL when
//! `CHARGEMESH_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use chargemesh_dispatch::domain::crew::{Employer, StaffMember};
use chargemesh_dispatch::domain::defect::{Defect, DefectClass, DefectDeadlines, NewDefect};
use chargemesh_dispatch::domain::work_order::{Channel, State, WorkOrder, Zone};
use chargemesh_dispatch::store::{
    self, DefectFilter, DispatchStore, DocFilter, DocKey, OrderFilter, StaffRecord,
};
use chargemesh_kit::db::{StoreError, TestDatabase};
use chargemesh_kit::paging::Keyset;

fn all() -> Keyset {
    Keyset::first(500)
}

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
        let open_only = OrderFilter {
            open_only: true,
            ..OrderFilter::default()
        };
        let open = s.orders("OPA", open_only, &all()).await.expect("open");
        assert_eq!(
            open.iter()
                .map(|o| o.item.order_id.as_str())
                .collect::<Vec<_>>(),
            ["WO-2"]
        );
        let station = |id| OrderFilter {
            station_id: Some(id),
            ..OrderFilter::default()
        };
        assert_eq!(
            s.orders("OPA", station("S1"), &all())
                .await
                .expect("all")
                .len(),
            2
        );
        assert!(
            s.orders("OPA", station("S9"), &all())
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
            s.staff("OPA", &all()).await.expect("list")[0]
                .item
                .member
                .name,
            "Alice Wang"
        );
        assert!(s.staff("OPB", &all()).await.expect("list").is_empty());
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
        let pile = |id| DefectFilter {
            pile_id: Some(id),
            ..DefectFilter::default()
        };
        assert_eq!(
            s.defects("OPA", pile("P1"), &all())
                .await
                .expect("by pile")
                .len(),
            1
        );
        assert!(
            s.defects("OPA", pile("P2"), &all())
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
            true,
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
                true,
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
            true,
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
            true,
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
            true,
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
                true,
                &changed,
                version,
                now,
                &[]
            )
            .await,
            Err(StoreError::Conflict(_))
        ));
        let every = all();
        let docs = |kind| s.docs(kind, "OPA", DocFilter::default(), &every);
        assert_eq!(
            docs("maintenance_plan")
                .await
                .expect("list")
                .into_iter()
                .map(|d| d.item)
                .collect::<Vec<_>>(),
            [changed]
        );
        assert!(docs("drill").await.expect("list").is_empty());
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

/// Walks every page of a listing, `size` at a time, newest first.
async fn walk<T, F>(size: i32, mut read: impl FnMut(Keyset) -> F) -> Vec<T>
where
    F: std::future::Future<Output = Vec<chargemesh_kit::paging::Keyed<T>>>,
{
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let keys = Keyset::from_request(size, &token).expect("page");
        let page = keys.page(read(keys.clone()).await);
        assert!(page.items.len() <= size as usize);
        out.extend(page.items);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn lists_are_read_newest_first_a_page_at_a_time_and_filtered_in_the_query() {
    for (db, s) in backends().await {
        // Seven orders, three received at one moment, on two piles; one closed.
        let base = t("2026-03-01T08:00:00.123456Z");
        let times = [0, 1, 1, 1, 2, 3, 4];
        for (i, secs) in times.iter().enumerate() {
            let pile = if i % 2 == 0 { "P1" } else { "P2" };
            let mut order = WorkOrder::receive(
                format!("WO-{i}"),
                "OPA".into(),
                "S1".into(),
                pile.into(),
                None,
                Channel::Phone,
                Zone::MainUrban,
                String::new(),
                "gun does not lock".into(),
                base + Duration::seconds(*secs),
            );
            if i == 6 {
                order.state = State::Closed;
            }
            assert!(s.create_order(&order, &[]).await.expect("created"));
        }
        let every = walk(2, |page| {
            let s = s.clone();
            async move {
                s.orders("OPA", OrderFilter::default(), &page)
                    .await
                    .expect("page")
            }
        })
        .await;
        let ids: Vec<_> = every.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(
            ids,
            ["WO-6", "WO-5", "WO-4", "WO-3", "WO-2", "WO-1", "WO-0"],
            "{}",
            db.backend()
        );
        let open_on_p1 = OrderFilter {
            pile_id: Some("P1"),
            open_only: true,
            ..OrderFilter::default()
        };
        let p1 = walk(1, |page| {
            let s = s.clone();
            async move { s.orders("OPA", open_on_p1, &page).await.expect("page") }
        })
        .await;
        let ids: Vec<_> = p1.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["WO-4", "WO-2", "WO-0"], "{}", db.backend());

        // Documents: a patrol done is not open; the filter is the query's, so a page is full.
        let now = base;
        for (i, open) in [true, false, true, false, true].into_iter().enumerate() {
            s.insert_doc(
                DocKey {
                    kind: "patrol",
                    operator_id: "OPA",
                    id: &format!("PT-{i}"),
                },
                if i < 3 { "S1" } else { "S2" },
                open,
                &serde_json::json!({ "patrol_id": format!("PT-{i}") }),
                now + Duration::minutes(i as i64),
                &[],
            )
            .await
            .expect("patrol");
        }
        let open_patrols = DocFilter {
            station_id: None,
            open_only: true,
        };
        let first = Keyset::from_request(2, "").expect("page");
        let page = first.page(
            s.docs("patrol", "OPA", open_patrols, &first)
                .await
                .expect("open"),
        );
        let ids: Vec<_> = page.items.iter().map(|d| d["patrol_id"].clone()).collect();
        assert_eq!(ids, ["PT-4", "PT-2"], "{}", db.backend());
        assert!(!page.next_page_token.is_empty());
        let s2 = DocFilter {
            station_id: Some("S2"),
            open_only: false,
        };
        assert_eq!(
            s.docs("patrol", "OPA", s2, &all()).await.expect("S2").len(),
            2
        );

        // Defects: accepted ones are not open.
        for (i, accepted) in [false, true, false].into_iter().enumerate() {
            let mut defect = Defect::register(
                NewDefect {
                    defect_id: format!("DF-{i}"),
                    operator_id: "OPA".into(),
                    station_id: "S1".into(),
                    pile_id: Some("P1".into()),
                    class: DefectClass::Critical,
                    description: "cracked cover".into(),
                    finder: "alice".into(),
                    elimination_plan: "repaint".into(),
                    maintenance_plan: None,
                },
                DefectDeadlines::default(),
                base + Duration::minutes(i as i64),
            )
            .expect("registered");
            if accepted {
                defect.state = chargemesh_dispatch::domain::defect::DefectState::Accepted;
            }
            s.create_defect(&defect).await.expect("created");
        }
        let open_defects = DefectFilter {
            open_only: true,
            ..DefectFilter::default()
        };
        let open = walk(1, |page| {
            let s = s.clone();
            async move { s.defects("OPA", open_defects, &page).await.expect("page") }
        })
        .await;
        let ids: Vec<_> = open.iter().map(|d| d.defect_id.as_str()).collect();
        assert_eq!(ids, ["DF-2", "DF-0"], "{}", db.backend());
    }
}
