//! The store conformance suite: every behaviour the service relies on, run against SQLite always
//! and against PostgreSQL when `CHARGEMESH_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use chargemesh_asset::domain::model::*;
use chargemesh_asset::store::{
    self, AssetStore, ChangeQuery, Filter, NewChange, Page, StationCertificate,
};
use chargemesh_kit::db::{Database, StoreError, TestDatabase};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn operator(id: &str) -> Operator {
    Operator {
        operator_id: id.into(),
        credit_code: format!("CC-{id}"),
        name: format!("Operator {id}"),
        business_scope: "充电设施运营".into(),
        supervision_hotline: "12345".into(),
        created_at: t("2026-01-01T00:00:00Z"),
        updated_at: t("2026-01-01T00:00:00Z"),
    }
}

fn station(op: &str, id: &str, area: &str) -> Station {
    Station {
        operator_id: op.into(),
        station_id: id.into(),
        name: format!("Station {id}"),
        kind: StationKind::UrbanPublic,
        area_code: area.into(),
        address: "Renmin Rd".into(),
        location: GeoPoint {
            longitude: 120.5,
            latitude: 30.0,
        },
        opening_hours: "24h".into(),
        service_phone: "0575-88888888".into(),
        connection_mode: ConnectionMode::WholeStation,
        service_zone: ServiceZone::MainUrban,
        tariff: Tariff {
            versions: vec![TariffVersion {
                version: 1,
                effective_from: t("2026-01-01T00:00:00Z"),
                periods: vec![PricePeriod {
                    start_minute: 0,
                    end_minute: 1440,
                    label: PeriodLabel::Flat,
                    electricity_price: Decimal::new(6800, 4),
                    service_fee: Decimal::new(4000, 4),
                }],
            }],
        },
        service_items: vec![],
        accept_any_id_token: false,
        state: StationState::Registered,
        acceptance: None,
        filing: None,
        connected_at: None,
        trial_started_at: None,
        commissioned_at: None,
        created_at: t("2026-01-01T00:00:00Z"),
        updated_at: t("2026-01-01T00:00:00Z"),
    }
}

fn pile(op: &str, station_id: &str, id: &str, connector: &str) -> Pile {
    Pile {
        operator_id: op.into(),
        pile_id: id.into(),
        station_id: station_id.into(),
        pile_type: PileType::Dc,
        manufacturer: "Acme".into(),
        model: "DC-60".into(),
        serial_number: "SN".into(),
        production_date: d("2025-01-01"),
        rated_voltage: 750.0,
        rated_current: 100.0,
        rated_power_kw: 60.0,
        connectors: vec![Connector {
            connector_id: connector.into(),
            name: "gun".into(),
            connector_type: ConnectorType::DcGun,
            national_standard: NationalStandard::Gb2015,
            voltage_upper_limit: 750.0,
            voltage_lower_limit: 200.0,
            current: 100.0,
            power_kw: 60.0,
            park_no: String::new(),
        }],
        protocol: PileProtocol::Native,
        charge_point_id: String::new(),
        password_set_at: None,
        state: PileState::InService,
        suspension: None,
        retired_at: None,
        created_at: t("2026-01-01T00:00:00Z"),
        updated_at: t("2026-01-01T00:00:00Z"),
    }
}

fn change<T: serde::Serialize>(
    op: &str,
    kind: &'static str,
    id: &str,
    action: &'static str,
    after: &T,
) -> NewChange {
    NewChange {
        operator_id: op.into(),
        entity_type: kind,
        entity_id: id.into(),
        action,
        actor: "operator/test".into(),
        note: String::new(),
        recorded_at: t("2026-01-02T00:00:00Z"),
        before: None,
        after: serde_json::to_value(after).expect("json"),
    }
}

async fn seeded(db: &Database) -> Arc<dyn AssetStore> {
    let s = store::open(db).await.expect("migrate");
    for op in ["OPA", "OPB"] {
        let o = operator(op);
        s.create_operator(&o, &change(op, "operator", op, "create", &o))
            .await
            .expect("operator");
    }
    s
}

async fn backends() -> Vec<TestDatabase> {
    TestDatabase::every("asset").await.expect("backends")
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for db in backends().await {
        store::open(&db.database).await.expect("first");
        store::open(&db.database).await.expect("again");
    }
}

#[tokio::test]
async fn records_round_trip_and_duplicates_are_unique_violations() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        let got = s.operator("OPA").await.expect("read").expect("present");
        assert_eq!(got.value, operator("OPA"), "{}", db.backend());
        assert_eq!(got.version, 1);
        let dup = s
            .create_operator(
                &operator("OPA"),
                &change("OPA", "operator", "OPA", "create", &1),
            )
            .await;
        assert!(
            matches!(dup, Err(StoreError::Unique(_))),
            "{}: {dup:?}",
            db.backend()
        );
        assert!(s.operator("NOPE").await.expect("read").is_none());

        let st = station("OPA", "S1", "330602");
        s.create_station(&st, &change("OPA", "station", "S1", "create", &st))
            .await
            .expect("station");
        let back = s
            .station("OPA", "S1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(back.value, st, "{}", db.backend());
        // The same station id under another operator is another station.
        let other = station("OPB", "S1", "330102");
        s.create_station(&other, &change("OPB", "station", "S1", "create", &other))
            .await
            .expect("other tenant");
    }
}

#[tokio::test]
async fn a_station_of_a_missing_operator_is_refused() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        let st = station("GHOST", "S1", "330602");
        let r = s
            .create_station(&st, &change("GHOST", "station", "S1", "create", &st))
            .await;
        assert!(
            matches!(r, Err(StoreError::ForeignKey(_))),
            "{}: {r:?}",
            db.backend()
        );
        assert!(s.station("GHOST", "S1").await.expect("read").is_none());
    }
}

#[tokio::test]
async fn listings_filter_by_operator_and_area_prefix_and_page_in_key_order() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        for (op, id, area) in [
            ("OPA", "S1", "330602"),
            ("OPA", "S2", "330603"),
            ("OPA", "S3", "330102"),
            ("OPB", "S1", "330602"),
        ] {
            let st = station(op, id, area);
            s.create_station(&st, &change(op, "station", id, "create", &st))
                .await
                .expect("station");
        }
        let shaoxing = [Filter::Prefix("area_code", "3306".into())];
        let first = s
            .list_stations(&shaoxing, &Page::first(2))
            .await
            .expect("list");
        let keys: Vec<_> = first
            .iter()
            .map(|x| (x.operator_id.as_str(), x.station_id.as_str()))
            .collect();
        assert_eq!(keys, [("OPA", "S1"), ("OPA", "S2")], "{}", db.backend());
        let after = Some(("OPA".to_owned(), "S2".to_owned()));
        let second = s
            .list_stations(&shaoxing, &Page { after, limit: 2 })
            .await
            .expect("list");
        let keys: Vec<_> = second
            .iter()
            .map(|x| (x.operator_id.as_str(), x.station_id.as_str()))
            .collect();
        assert_eq!(keys, [("OPB", "S1")], "{}", db.backend());
        let own = [Filter::Eq("operator_id", "OPA".into())];
        assert_eq!(
            s.list_stations(&own, &Page::first(10))
                .await
                .expect("list")
                .len(),
            3
        );
        // LIKE wildcards are stripped from a prefix, so "%" is the empty prefix.
        let wild = [Filter::Prefix("area_code", "%".into())];
        assert_eq!(
            s.list_stations(&wild, &Page::first(10))
                .await
                .expect("list")
                .len(),
            4
        );
    }
}

#[tokio::test]
async fn a_stale_version_is_a_conflict_and_changes_nothing() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        let st = station("OPA", "S1", "330602");
        s.create_station(&st, &change("OPA", "station", "S1", "create", &st))
            .await
            .expect("station");
        let mut renamed = st.clone();
        renamed.name = "First".into();
        s.update_station(
            &renamed,
            1,
            &change("OPA", "station", "S1", "update", &renamed),
        )
        .await
        .expect("update");
        let mut late = st.clone();
        late.name = "Second".into();
        let r = s
            .update_station(&late, 1, &change("OPA", "station", "S1", "update", &late))
            .await;
        assert!(
            matches!(r, Err(StoreError::Conflict(_))),
            "{}: {r:?}",
            db.backend()
        );
        let now = s
            .station("OPA", "S1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(
            (now.value.name.as_str(), now.version),
            ("First", 2),
            "{}",
            db.backend()
        );
        let history = s
            .list_changes(&ChangeQuery {
                operator_id: "OPA".into(),
                entity_type: Some("station".into()),
                entity_id: Some("S1".into()),
                after_sequence: 0,
                limit: 10,
            })
            .await
            .expect("history");
        assert_eq!(
            history.len(),
            2,
            "{}: the refused update left no record",
            db.backend()
        );
    }
}

#[tokio::test]
async fn connector_ids_are_unique_per_operator_and_a_refused_pile_leaves_nothing() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        let st = station("OPA", "S1", "330602");
        s.create_station(&st, &change("OPA", "station", "S1", "create", &st))
            .await
            .expect("station");
        let p1 = pile("OPA", "S1", "P1", "C1");
        s.create_pile(&p1, &change("OPA", "pile", "P1", "create", &p1))
            .await
            .expect("pile");
        let p2 = pile("OPA", "S1", "P2", "C1");
        let r = s
            .create_pile(&p2, &change("OPA", "pile", "P2", "create", &p2))
            .await;
        assert!(
            matches!(r, Err(StoreError::Unique(_))),
            "{}: {r:?}",
            db.backend()
        );
        assert!(
            s.pile("OPA", "P2").await.expect("read").is_none(),
            "{}: no half write",
            db.backend()
        );
        // Updating P1's connectors frees C1 for another pile.
        let mut moved = p1.clone();
        moved.connectors[0].connector_id = "C9".into();
        s.update_pile(
            &moved,
            1,
            &change("OPA", "pile", "P1", "update", &moved),
            &[],
        )
        .await
        .expect("update");
        s.create_pile(&p2, &change("OPA", "pile", "P2", "create", &p2))
            .await
            .expect("now free");
        let filters = [
            Filter::Eq("operator_id", "OPA".into()),
            Filter::Eq("station_id", "S1".into()),
        ];
        assert_eq!(
            s.list_piles(&filters, &Page::first(10))
                .await
                .expect("list")
                .len(),
            2
        );
    }
}

#[tokio::test]
async fn certificates_are_unique_per_body_and_number_and_listed_by_pile_and_station() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        let st = station("OPA", "S1", "330602");
        s.create_station(&st, &change("OPA", "station", "S1", "create", &st))
            .await
            .expect("station");
        let p1 = pile("OPA", "S1", "P1", "C1");
        s.create_pile(&p1, &change("OPA", "pile", "P1", "create", &p1))
            .await
            .expect("pile");
        let cert = |id: &str, number: &str| StationCertificate {
            station_id: "S1".into(),
            certificate: Certificate {
                operator_id: "OPA".into(),
                pile_id: "P1".into(),
                certificate_id: id.into(),
                procedure: Procedure::Jjg1149,
                certificate_number: number.into(),
                verifying_body: "Institute".into(),
                verified_on: d("2026-01-01"),
                valid_until: d("2026-12-31"),
                created_at: t("2026-01-02T00:00:00Z"),
            },
        };
        let c1 = cert("c1", "N-1");
        s.create_certificate(&c1, &change("OPA", "certificate", "c1", "create", &c1))
            .await
            .expect("cert");
        let dup = cert("c2", "N-1");
        let r = s
            .create_certificate(&dup, &change("OPA", "certificate", "c2", "create", &dup))
            .await;
        assert!(
            matches!(r, Err(StoreError::Unique(_))),
            "{}: {r:?}",
            db.backend()
        );
        let by_pile = s
            .list_certificates(&[
                Filter::Eq("operator_id", "OPA".into()),
                Filter::Eq("pile_id", "P1".into()),
            ])
            .await
            .expect("list");
        assert_eq!(by_pile, vec![c1.certificate.clone()], "{}", db.backend());
        let by_station = s
            .list_certificates(&[
                Filter::Eq("operator_id", "OPA".into()),
                Filter::Eq("station_id", "S1".into()),
            ])
            .await
            .expect("list");
        assert_eq!(by_station.len(), 1);
    }
}

#[tokio::test]
async fn rec_2_history_is_appended_in_order_and_cannot_be_rewritten() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        let st = station("OPA", "S1", "330602");
        s.create_station(&st, &change("OPA", "station", "S1", "create", &st))
            .await
            .expect("station");
        let mut accepted = st.clone();
        accepted.state = StationState::Accepted;
        let mut c = change("OPA", "station", "S1", "accept", &accepted);
        c.before = Some(serde_json::to_value(&st).expect("json"));
        c.note = "report R-1".into();
        s.update_station(&accepted, 1, &c).await.expect("update");
        let all = s
            .list_changes(&ChangeQuery {
                operator_id: "OPA".into(),
                after_sequence: 0,
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("history");
        let actions: Vec<_> = all.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["create", "create", "accept"], "{}", db.backend());
        let last = all.last().expect("record");
        assert_eq!(last.note, "report R-1");
        assert_eq!(
            last.before.as_ref().and_then(|b| b["state"].as_str()),
            Some("registered")
        );
        assert_eq!(last.after["state"].as_str(), Some("accepted"));
        let page = s
            .list_changes(&ChangeQuery {
                operator_id: "OPA".into(),
                after_sequence: all[1].sequence,
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("page");
        assert_eq!(page.len(), 1);
        // REQ REC-2: the database itself refuses to rewrite or delete history and records.
        let (rewrite, delete) = match &db.database {
            Database::Postgres(pool) => (
                sqlx::query("UPDATE change_records SET actor = 'forger'")
                    .execute(pool)
                    .await
                    .is_err(),
                sqlx::query("DELETE FROM stations")
                    .execute(pool)
                    .await
                    .is_err(),
            ),
            Database::Sqlite(pool) => (
                sqlx::query("UPDATE change_records SET actor = 'forger'")
                    .execute(pool)
                    .await
                    .is_err(),
                sqlx::query("DELETE FROM stations")
                    .execute(pool)
                    .await
                    .is_err(),
            ),
        };
        assert!(
            rewrite && delete,
            "{}: rewrite refused {rewrite}, delete refused {delete}",
            db.backend()
        );
    }
}

#[tokio::test]
async fn netsec_1_a_charge_point_id_is_unique_across_operators_and_keeps_its_password_hash_apart() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        for op in ["OPA", "OPB"] {
            let st = station(op, "S1", "330602");
            s.create_station(&st, &change(op, "station", "S1", "create", &st))
                .await
                .expect("station");
        }
        let mut a = pile("OPA", "S1", "P1", "C1");
        a.protocol = PileProtocol::Ocpp16;
        a.charge_point_id = "CP-1".into();
        s.create_pile(&a, &change("OPA", "pile", "P1", "create", &a))
            .await
            .expect("pile");
        // Another operator's pile may not take the same charge point id, and leaves nothing.
        let mut b = pile("OPB", "S1", "P1", "C1");
        b.protocol = PileProtocol::Ocpp16;
        b.charge_point_id = "CP-1".into();
        let r = s
            .create_pile(&b, &change("OPB", "pile", "P1", "create", &b))
            .await;
        assert!(
            matches!(r, Err(StoreError::Unique(_))),
            "{}: {r:?}",
            db.backend()
        );
        assert!(s.pile("OPB", "P1").await.expect("read").is_none());

        let mut with_password = a.clone();
        with_password.password_set_at = Some(t("2026-01-03T00:00:00Z"));
        s.set_charge_point_password(
            &with_password,
            1,
            "pbkdf2-sha256$1$salt$hash",
            &change("OPA", "pile", "P1", "set-password", &with_password),
        )
        .await
        .expect("password");
        let row = s.charge_point("CP-1").await.expect("read").expect("found");
        assert_eq!(
            (row.operator_id.as_str(), row.pile_id.as_str()),
            ("OPA", "P1")
        );
        assert_eq!(
            row.password_hash.as_deref(),
            Some("pbkdf2-sha256$1$salt$hash")
        );
        // An update keeping the id keeps the password; renaming drops both, and with them
        // the step the update calls for is written in its transaction.
        let mut renamed = with_password.clone();
        renamed.charge_point_id = "CP-2".into();
        let step = chargemesh_kit::outbox::Step::new("pile-availability", "OPA", "P1@3");
        s.update_pile(
            &renamed,
            2,
            &change("OPA", "pile", "P1", "update", &renamed),
            std::slice::from_ref(&step),
        )
        .await
        .expect("renamed");
        assert!(s.charge_point("CP-1").await.expect("read").is_none());
        let row = s.charge_point("CP-2").await.expect("read").expect("found");
        assert_eq!(
            row.password_hash, None,
            "a new id needs its password set again"
        );
        let outbox = chargemesh_kit::outbox::Outbox::new(
            db.database.clone(),
            std::sync::Arc::new(Nothing),
            std::sync::Arc::new(chargemesh_kit::clock::SystemClock),
        );
        assert!(
            outbox.pending(&step.step_id).await.expect("read").is_some(),
            "{}: the step is written with the change",
            db.backend()
        );
    }
}

struct Nothing;

#[tonic::async_trait]
impl chargemesh_kit::outbox::StepHandler for Nothing {
    async fn run(
        &self,
        _: &chargemesh_kit::outbox::Step,
    ) -> Result<(), chargemesh_kit::outbox::StepError> {
        Ok(())
    }
}

#[tokio::test]
async fn id_tokens_are_put_and_replaced_and_unknown_charge_points_counted() {
    for db in backends().await {
        let s = seeded(&db.database).await;
        let mut card = IdToken {
            operator_id: "OPA".into(),
            token: "CARD-1".into(),
            status: IdTokenStatus::Accepted,
            expires_at: None,
            note: "first".into(),
            created_at: t("2026-01-02T00:00:00Z"),
            updated_at: t("2026-01-02T00:00:00Z"),
        };
        s.put_id_token(&card, &change("OPA", "id_token", "CARD-1", "put", &card))
            .await
            .expect("put");
        card.status = IdTokenStatus::Blocked;
        card.created_at = t("2026-01-05T00:00:00Z");
        card.updated_at = t("2026-01-05T00:00:00Z");
        let saved = s
            .put_id_token(&card, &change("OPA", "id_token", "CARD-1", "put", &card))
            .await
            .expect("replaced");
        assert_eq!(saved.created_at, t("2026-01-02T00:00:00Z"), "created once");
        let read = s
            .id_token("OPA", "CARD-1")
            .await
            .expect("read")
            .expect("found");
        assert_eq!(read.status, IdTokenStatus::Blocked);
        assert!(
            s.id_token("OPB", "CARD-1").await.expect("read").is_none(),
            "per operator"
        );
        let listed = s
            .list_id_tokens(&[Filter::Eq("operator_id", "OPA".into())], &Page::first(10))
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);

        for at in ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"] {
            s.note_unknown_charge_point("OPA", "GHOST", "boot rejected", t(at))
                .await
                .expect("noted");
        }
        let seen = s
            .list_unknown_charge_points(
                &[Filter::Eq("operator_id", "OPA".into())],
                &Page::first(10),
            )
            .await
            .expect("list");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].attempts, 2);
        assert_eq!(seen[0].first_seen, t("2026-01-02T00:00:00Z"));
        assert_eq!(seen[0].last_seen, t("2026-01-03T00:00:00Z"));
    }
}

/// Registering a pile replaces its connector claims by operator and pile: an index serves that,
/// or each registration would scan every connector of the operator (quadratic over a fleet).
#[tokio::test]
async fn a_pile_s_connector_claims_are_found_by_index_not_by_scanning_the_operator() {
    for db in backends().await {
        store::open(&db.database).await.expect("migrated");
        let plan: String = match &db.database {
            Database::Sqlite(pool) => {
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
                    "EXPLAIN QUERY PLAN DELETE FROM connectors WHERE operator_id = 'OPA' AND pile_id = 'P1'",
                )
                .fetch_all(pool)
                .await
                .expect("plan");
                rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
            }
            Database::Postgres(pool) => {
                // An empty table is scanned whatever its indexes: ask for the plan without
                // scans, which PostgreSQL can only honour with an index on those columns.
                let mut tx = pool.begin().await.expect("tx");
                sqlx::query("SET LOCAL enable_seqscan = off")
                    .execute(&mut *tx)
                    .await
                    .expect("set");
                let rows: Vec<(String,)> = sqlx::query_as(
                    "EXPLAIN DELETE FROM connectors WHERE operator_id = 'OPA' AND pile_id = 'P1'",
                )
                .fetch_all(&mut *tx)
                .await
                .expect("plan");
                rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
            }
        };
        assert!(
            plan.contains("connectors_by_pile"),
            "{}: {plan}",
            db.backend()
        );
    }
}
