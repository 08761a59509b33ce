//! The reporting store conformance suite: journal facts kept once per record at their greatest
//! version whatever the order and however often they are read, positions per journal, the
//! station directory and exemptions — on SQLite always and on PostgreSQL when
//! `CHARGEMESH_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use chargemesh_kit::db::{StoreError, TestDatabase};
use chargemesh_kit::paging::{Keyed, Keyset};
use chargemesh_kit::time::to_timestamp;
use chargemesh_proto::journal::v1 as jpb;
use chargemesh_reporting::domain::exemption::{Cause, Declaration, Exemption};
use chargemesh_reporting::domain::period::Span;
use chargemesh_reporting::store::{self, ReportingStore, StationRow};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

async fn backends() -> Vec<(TestDatabase, Arc<dyn ReportingStore>)> {
    let mut out = Vec::new();
    for db in TestDatabase::every("reporting").await.expect("backends") {
        let s = store::open(&db.database).await.expect("migrated");
        out.push((db, s));
    }
    out
}

fn order_entry(sequence: i64, version: i64, state: &str) -> jpb::JournalEntry {
    let fact = jpb::fact::Fact::WorkOrder(jpb::WorkOrderFact {
        order_id: "WO-1".into(),
        station_id: "S1".into(),
        receive_time: Some(to_timestamp(t("2026-03-05T00:00:00Z"))),
        resolution_due_time: Some(to_timestamp(t("2026-03-05T04:00:00Z"))),
        state: state.into(),
        ..Default::default()
    });
    jpb::JournalEntry {
        sequence,
        entry_id: format!("E-{sequence}"),
        operator_id: "OPA".into(),
        kind: "work_order".into(),
        subject_id: "WO-1".into(),
        version,
        record_time: None,
        fact: Some(jpb::Fact { fact: Some(fact) }),
    }
}

fn state_of(facts: &[jpb::fact::Fact]) -> Vec<String> {
    facts
        .iter()
        .filter_map(|f| match f {
            jpb::fact::Fact::WorkOrder(o) => Some(o.state.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_replayed_or_reordered_journal_keeps_each_record_at_its_greatest_version() {
    let march = Span::new(t("2026-02-28T16:00:00Z"), t("2026-03-31T16:00:00Z"));
    for (db, s) in backends().await {
        let entries = [
            order_entry(1, 1, "received"),
            order_entry(2, 2, "dispatched"),
            order_entry(3, 3, "closed"),
        ];
        assert_eq!(s.apply("dispatch", &entries).await.expect("kept"), 3);
        // The same entries again, and an old one late: nothing changes.
        assert_eq!(s.apply("dispatch", &entries).await.expect("kept"), 0);
        assert_eq!(
            s.apply("dispatch", &entries[..1]).await.expect("kept"),
            0,
            "{}",
            db.backend()
        );
        let facts = s.facts("OPA", "work_order", &march).await.expect("facts");
        assert_eq!(state_of(&facts), ["closed"]);
        assert!(
            s.facts("OPB", "work_order", &march)
                .await
                .expect("facts")
                .is_empty()
        );
        let april = Span::new(t("2026-03-31T16:00:00Z"), t("2026-04-30T16:00:00Z"));
        assert!(
            s.facts("OPA", "work_order", &april)
                .await
                .expect("facts")
                .is_empty()
        );
        assert_eq!(s.position("dispatch").await.expect("position"), 0);
        s.set_position("dispatch", 3).await.expect("set");
        s.set_position("dispatch", 7).await.expect("set");
        assert_eq!(s.position("dispatch").await.expect("position"), 7);
        assert_eq!(s.position("metering").await.expect("position"), 0);
    }
}

/// Station S1 of operator OPA in Keqiao with `piles`.
fn station(piles: &[&str]) -> StationRow {
    StationRow {
        operator_id: "OPA".into(),
        station_id: "S1".into(),
        area_code: "330602".into(),
        pile_ids: piles.iter().map(|p| (*p).to_owned()).collect(),
    }
}

#[tokio::test]
async fn mon_9_the_station_directory_is_kept() {
    for (db, s) in backends().await {
        s.put_stations(&[station(&["P1", "P2"])])
            .await
            .expect("stations");
        s.put_stations(&[station(&["P1"])])
            .await
            .expect("stations again");
        let stations = s.stations().await.expect("stations");
        assert_eq!(stations.len(), 1);
        assert_eq!(stations[0].pile_ids, ["P1"], "{}", db.backend());
    }
}

#[tokio::test]
async fn base_2_the_directory_s_generation_moves_only_when_a_listing_changes_something() {
    for (db, s) in backends().await {
        let info = |text: &str| {
            [(
                "OPA".to_owned(),
                "S1".to_owned(),
                "330602".to_owned(),
                text.to_owned(),
            )]
        };
        let start = s.directory_generation().await.expect("generation");
        assert_eq!(s.put_stations(&[station(&["P1"])]).await.expect("put"), 1);
        assert_eq!(s.put_station_infos(&info("{}")).await.expect("put"), 1);
        let listed = s.directory_generation().await.expect("generation");
        assert!(listed > start, "{}", db.backend());
        // The same listing again changes nothing and moves nothing.
        assert_eq!(s.put_stations(&[station(&["P1"])]).await.expect("put"), 0);
        assert_eq!(s.put_station_infos(&info("{}")).await.expect("put"), 0);
        assert_eq!(s.directory_generation().await.expect("generation"), listed);
        assert_eq!(
            s.put_stations(&[station(&["P1", "P2"])])
                .await
                .expect("put"),
            1
        );
        let piles = s.directory_generation().await.expect("generation");
        assert!(piles > listed, "a pile added moves it");
        assert_eq!(
            s.put_station_infos(&info("{\"renamed\":1}"))
                .await
                .expect("put"),
            1
        );
        assert!(s.directory_generation().await.expect("generation") > piles);
    }
}

#[tokio::test]
async fn mon_9_exemptions_are_kept() {
    for (_db, s) in backends().await {
        s.put_stations(&[station(&["P1"])]).await.expect("stations");
        let now = t("2026-03-06T00:00:00Z");
        let mut e = Exemption::declare(
            "EX-1".into(),
            Declaration {
                operator_id: "OPA".into(),
                station_ids: vec!["S1".into()],
                start: Some(t("2026-03-05T00:00:00Z")),
                end: Some(t("2026-03-05T06:00:00Z")),
                cause: Some(Cause::SevereWeather),
                cause_text: String::new(),
                evidence: vec!["typhoon-warning.pdf".into()],
            },
            "monitor",
            now,
        )
        .expect("declared");
        s.create_exemption(&e).await.expect("kept");
        let (got, version) = s
            .exemption("OPA", "EX-1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(got, e);
        e.decide(true, "", "manager", now).expect("approved");
        s.update_exemption(&e, version).await.expect("updated");
        assert!(matches!(
            s.update_exemption(&e, version).await,
            Err(StoreError::Conflict(_))
        ));
        let every = Keyset::first(10);
        let items =
            |rows: Vec<Keyed<Exemption>>| rows.into_iter().map(|r| r.item).collect::<Vec<_>>();
        assert_eq!(
            items(s.exemptions("OPA", None, &every).await.expect("list")),
            [e.clone()]
        );
        assert_eq!(
            items(
                s.exemptions("OPA", Some("approved"), &every)
                    .await
                    .expect("approved")
            ),
            [e.clone()]
        );
        assert!(
            s.exemptions("OPA", Some("declared"), &every)
                .await
                .expect("declared")
                .is_empty()
        );
        assert!(
            s.exemptions("OPB", None, &every)
                .await
                .expect("list")
                .is_empty()
        );
        // A report reads the approved ones that overlap its span.
        let day = |from: &str, to: &str| Span::new(t(from), t(to));
        assert_eq!(
            s.approved_exemptions("OPA", &day("2026-03-05T00:00:00Z", "2026-03-06T00:00:00Z"))
                .await
                .expect("overlap"),
            [e.clone()]
        );
        assert!(
            s.approved_exemptions("OPA", &day("2026-03-05T06:00:00Z", "2026-03-06T00:00:00Z"))
                .await
                .expect("after")
                .is_empty()
        );
    }
}
