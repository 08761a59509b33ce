//! The metering store conformance suite: append-only versions, latest-version listings by
//! operator, area, station, connector and time, and keyset paging — on SQLite always and on
//! PostgreSQL when `CHARGEMESH_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use chargemesh_kit::db::{Database, StoreError, TestDatabase};
use chargemesh_metering::domain::order::{ChargeOrder, ChargingSteps};
use chargemesh_metering::store::{self, MeteringStore, OrderQuery};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

async fn backends() -> Vec<(TestDatabase, Arc<dyn MeteringStore>)> {
    let mut out = Vec::new();
    for db in TestDatabase::every("metering").await.expect("backends") {
        let s = store::open(&db.database).await.expect("migrated");
        out.push((db, s));
    }
    out
}

fn order(operator: &str, id: &str, area: &str, connector: &str, start: &str) -> ChargeOrder {
    let start = t(start);
    ChargeOrder {
        operator_id: operator.into(),
        order_id: id.into(),
        version: 1,
        station_id: "S1".into(),
        pile_id: "P1".into(),
        connector_id: connector.into(),
        area_code: area.into(),
        start,
        end: Some(start + Duration::hours(1)),
        stop_reason: 0,
        samples: Vec::new(),
        steps: ChargingSteps::default(),
        billable: true,
        not_billable_reason: None,
        settlement: None,
        flags: Vec::new(),
        reported: None,
        correction_reason: None,
        verified_flags: Vec::new(),
        authorization_ref: String::new(),
        any_token: false,
        recorded_by: "platform".into(),
        recorded_at: start + Duration::hours(1),
    }
}

fn ids(orders: &[ChargeOrder]) -> Vec<(&str, u32)> {
    orders
        .iter()
        .map(|o| (o.order_id.as_str(), o.version))
        .collect()
}

#[tokio::test]
async fn rec_2_versions_are_appended_and_never_rewritten() {
    for (db, s) in backends().await {
        let first = order("OPA", "A1", "330602", "C1", "2026-11-20T08:00:00Z");
        s.insert(&first).await.expect("v1");
        assert!(
            matches!(s.insert(&first).await, Err(StoreError::Unique(_))),
            "{}",
            db.backend()
        );
        let mut second = first.clone();
        second.version = 2;
        second.correction_reason = Some("meter photo".into());
        s.insert(&second).await.expect("v2");
        assert_eq!(
            s.order("OPA", "A1", Some(1)).await.expect("read"),
            Some(first)
        );
        assert_eq!(
            s.order("OPA", "A1", None).await.expect("read"),
            Some(second)
        );
        assert_eq!(s.order("OPB", "A1", None).await.expect("read"), None);
        // The database itself refuses to rewrite or delete a version.
        let rewrite = match &db.database {
            Database::Postgres(pool) => sqlx::query("UPDATE charge_orders SET billable = false")
                .execute(pool)
                .await
                .map(|_| ()),
            Database::Sqlite(pool) => sqlx::query("DELETE FROM charge_orders")
                .execute(pool)
                .await
                .map(|_| ()),
        };
        assert!(rewrite.is_err(), "{}", db.backend());
    }
}

#[tokio::test]
async fn listings_show_latest_versions_by_operator_area_connector_and_time_with_paging() {
    for (db, s) in backends().await {
        for o in [
            order("OPA", "A1", "330602", "C1", "2026-11-20T08:00:00Z"),
            order("OPA", "A2", "330602", "C2", "2026-11-20T09:00:00Z"),
            order("OPA", "A3", "330102", "C1", "2026-11-20T10:00:00Z"),
            order("OPB", "B1", "330603", "C9", "2026-11-20T09:00:00Z"),
        ] {
            s.insert(&o).await.expect("inserted");
        }
        let mut a2 = order("OPA", "A2", "330602", "C2", "2026-11-20T09:00:00Z");
        a2.version = 2;
        a2.flags = vec![chargemesh_metering::domain::abnormal::Flag {
            kind: chargemesh_metering::domain::abnormal::FlagKind::Overlap,
            detail: "x".into(),
        }];
        s.insert(&a2).await.expect("v2");
        let q = |f: fn(&mut OrderQuery)| {
            let mut q = OrderQuery {
                limit: 10,
                ..OrderQuery::default()
            };
            f(&mut q);
            q
        };
        let all = s
            .orders(&q(|q| q.operator_id = Some("OPA".into())))
            .await
            .expect("list");
        assert_eq!(
            ids(&all),
            [("A1", 1), ("A2", 2), ("A3", 1)],
            "{}",
            db.backend()
        );
        let shaoxing = s
            .orders(&q(|q| q.area_prefix = Some("3306".into())))
            .await
            .expect("area");
        assert_eq!(ids(&shaoxing), [("A1", 1), ("A2", 2), ("B1", 1)]);
        let connector = s
            .orders(&q(|q| {
                q.operator_id = Some("OPA".into());
                q.connector_id = Some("C1".into());
                q.from = Some(t("2026-11-20T09:30:00Z"));
            }))
            .await
            .expect("connector");
        assert_eq!(ids(&connector), [("A3", 1)]);
        let flagged = s
            .orders(&q(|q| q.flagged_only = true))
            .await
            .expect("flagged");
        assert_eq!(ids(&flagged), [("A2", 2)]);
        // Keyset paging over (start, operator, order): B1 and A2 start together.
        let mut page = OrderQuery {
            limit: 2,
            ..OrderQuery::default()
        };
        let one = s.orders(&page).await.expect("page 1");
        assert_eq!(ids(&one), [("A1", 1), ("A2", 2)]);
        let last = one.last().expect("last");
        page.after = Some((last.start, last.operator_id.clone(), last.order_id.clone()));
        let two = s.orders(&page).await.expect("page 2");
        assert_eq!(ids(&two), [("B1", 1), ("A3", 1)]);
    }
}

#[tokio::test]
async fn rec_3_versions_are_deleted_only_past_retention_through_the_purge_gate() {
    use chargemesh_kit::retention::Records;
    for (db, s) in backends().await {
        let first = order("OPA", "A1", "330602", "C1", "2026-11-20T08:00:00Z");
        s.insert(&first).await.expect("v1");
        let mut second = first.clone();
        second.version = 2;
        second.recorded_at = t("2026-12-01T00:00:00Z");
        s.insert(&second).await.expect("v2");
        // A plain delete is refused by the database on both backends.
        let plain = match &db.database {
            Database::Postgres(pool) => sqlx::query("DELETE FROM charge_orders")
                .execute(pool)
                .await
                .map(|_| ()),
            Database::Sqlite(pool) => sqlx::query("DELETE FROM charge_orders")
                .execute(pool)
                .await
                .map(|_| ()),
        };
        assert!(plain.is_err(), "{}", db.backend());
        let records = Records::new(db.database.clone(), chargemesh_metering::retention::RECORDS);
        // Three years after the first version but not the last: kept.
        let early = records
            .delete(
                "charge_order",
                "OPA",
                "A1",
                "admin",
                t("2029-11-25T00:00:00Z"),
            )
            .await
            .expect_err("kept");
        assert!(early.to_string().contains("REC-3"), "{early}");
        let removed = records
            .delete(
                "charge_order",
                "OPA",
                "A1",
                "admin",
                t("2029-12-01T00:00:00Z"),
            )
            .await
            .expect("removed");
        assert_eq!(removed.last_changed, t("2026-12-01T00:00:00Z"));
        assert_eq!(
            s.order("OPA", "A1", None).await.expect("read"),
            None,
            "{}",
            db.backend()
        );
    }
}

#[tokio::test]
async fn settle_1_the_running_sessions_of_many_connectors_are_read_at_once() {
    use chargemesh_metering::domain::session::{OpenSession, Origin};
    for (db, s) in backends().await {
        let at = t("2026-03-01T08:00:00Z");
        let start = |operator: &str, connector: &str| {
            OpenSession::start(
                &Origin {
                    operator_id: operator,
                    station_id: "S1",
                    pile_id: "P1",
                    connector_id: connector,
                    at,
                    sequence: 7,
                },
                &format!("ORD-{operator}-{connector}"),
                "",
                rust_decimal::Decimal::new(1000, 1),
                ChargingSteps::default(),
            )
        };
        // More connectors than one statement asks for.
        for i in 0..250 {
            s.put_session(&start("OPA", &format!("C{i}")), at)
                .await
                .expect("kept");
        }
        s.put_session(&start("OPB", "C0"), at).await.expect("kept");
        let asked: Vec<(String, String)> = (0..260)
            .map(|i| ("OPA".to_owned(), format!("C{i}")))
            .chain([
                ("OPB".to_owned(), "C0".to_owned()),
                ("OPB".to_owned(), "C1".to_owned()),
            ])
            .collect();
        let running = s.open_sessions(&asked).await.expect("read");
        assert_eq!(running.len(), 251, "{}", db.backend());
        let key = ("OPB".to_owned(), "C0".to_owned());
        assert_eq!(running[&key].order_id, "ORD-OPB-C0");
        assert!(!running.contains_key(&("OPA".to_owned(), "C250".to_owned())));
        assert!(s.open_sessions(&[]).await.expect("none").is_empty());
    }
}
