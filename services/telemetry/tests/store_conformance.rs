//! The telemetry store conformance suite, on SQLite always and on PostgreSQL when
//! `CHARGEMESH_TEST_DATABASE_URL` is set: resends stored once, live status and changes, and the
//! log numbered in commit order so a reader that resumes after a sequence misses nothing, even
//! when writers (replicas) interleave their commits.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use chargemesh_kit::db::{Database, TestDatabase};
use chargemesh_telemetry::domain::{Body, ConnectorState, Report};
use chargemesh_telemetry::store::{self, TelemetryStore};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

fn status(source: &str, sequence: u64, connector: &str, state: ConnectorState) -> Report {
    Report {
        source: source.into(),
        sequence,
        operator_id: "OP".into(),
        station_id: "S1".into(),
        pile_id: format!("P-{connector}"),
        connector_id: connector.into(),
        area_code: "330602".into(),
        connectors: vec![connector.into()],
        observed_at: t("2026-03-01T08:00:00Z") + chrono::Duration::seconds(sequence as i64),
        body: Body::Status {
            state,
            fault_code: String::new(),
            fault_text: String::new(),
        },
    }
}

async fn backends() -> Vec<(TestDatabase, Arc<dyn TelemetryStore>)> {
    let mut out = Vec::new();
    for db in TestDatabase::every("telemetry").await.expect("backends") {
        db.database
            .migrate(store::MIGRATIONS)
            .await
            .expect("migrated");
        let s = store::for_database(&db.database);
        out.push((db, s));
    }
    out
}

#[tokio::test]
async fn mon_1_a_resend_is_stored_once_and_changes_follow_the_reports() {
    for (db, s) in backends().await {
        let now = t("2026-03-01T08:10:00Z");
        let first = s
            .append(
                &[
                    status("pile:A", 1, "C1", ConnectorState::Idle),
                    status("pile:A", 2, "C1", ConnectorState::Charging),
                ],
                now,
            )
            .await
            .expect("appended");
        assert_eq!(first.stored.len(), 2, "{}", db.backend());
        assert_eq!(first.changes.len(), 2);
        let again = s
            .append(&[status("pile:A", 2, "C1", ConnectorState::Charging)], now)
            .await
            .expect("resend");
        assert!(again.stored.is_empty(), "a resend is not stored twice");
        assert!(again.changes.is_empty());
        let (logged, last) = s.log_after(0, &[], 100).await.expect("log");
        assert_eq!(logged.len(), 2);
        assert_eq!(last, logged[1].sequence);
        assert_eq!(s.latest_cursor().await.expect("cursor"), 2);
    }
}

#[tokio::test]
async fn mon_1_a_resend_not_searched_for_fails_the_append_and_writes_nothing() {
    for (db, s) in backends().await {
        let now = t("2026-03-01T08:10:00Z");
        s.append(&[status("pile:A", 1, "C1", ConnectorState::Idle)], now)
            .await
            .expect("appended");
        // Another replica stored sequence 1; this writer took it for new.
        let batch = [
            status("pile:B", 1, "C2", ConnectorState::Idle),
            status("pile:A", 1, "C1", ConnectorState::Idle),
            status("pile:A", 2, "C1", ConnectorState::Charging),
        ];
        let refused = s
            .append_checking(&batch, Some(&[true, false, false]), now)
            .await;
        assert!(
            matches!(refused, Err(chargemesh_kit::db::StoreError::Conflict(_))),
            "{}: {refused:?}",
            db.backend()
        );
        let (logged, _) = s.log_after(0, &[], 100).await.expect("log");
        assert_eq!(logged.len(), 1, "nothing of the refused batch is kept");
        assert_eq!(s.latest_cursor().await.expect("cursor"), 1);
        // Searched, the same batch stores the new reports once.
        let searched = s
            .append_checking(&batch, Some(&[true, true, false]), now)
            .await
            .expect("appended searched");
        assert_eq!(
            searched.stored,
            vec![("pile:B".to_owned(), 1), ("pile:A".to_owned(), 2)]
        );
        assert_eq!(searched.changes.len(), 2, "C2 idle, C1 charging");
    }
}

fn meter(source: &str, sequence: u64, connector: &str) -> Report {
    Report {
        body: Body::Meter {
            energy_kwh: rust_decimal::Decimal::new(125, 1),
            power_kw: 7.0,
            voltage: 220.0,
            current: 32.0,
            soc_percent: None,
        },
        ..status(source, sequence, connector, ConnectorState::Charging)
    }
}

#[tokio::test]
async fn settle_1_a_reader_of_some_kinds_is_sent_only_those_and_resumes_after_what_it_scanned() {
    for (db, s) in backends().await {
        let now = t("2026-03-01T08:10:00Z");
        let batch = [
            status("pile:A", 1, "C1", ConnectorState::Idle),
            meter("pile:A", 2, "C1"),
            status("pile:A", 3, "C1", ConnectorState::Charging),
            meter("pile:A", 4, "C1"),
            status("pile:A", 5, "C1", ConnectorState::Idle),
        ];
        s.append(&batch, now).await.expect("appended");
        let meters = ["meter".to_owned()];
        // A full page resumes after its last entry.
        let (page, last) = s.log_after(0, &meters, 1).await.expect("page");
        assert_eq!(page.len(), 1, "{}", db.backend());
        assert_eq!(page[0].sequence, 2);
        assert_eq!(last, 2);
        // A short page scanned to the newest entry, which it resumes after.
        let (rest, last) = s.log_after(last, &meters, 10).await.expect("rest");
        assert_eq!(
            rest.iter().map(|l| l.sequence).collect::<Vec<_>>(),
            [4],
            "{}",
            db.backend()
        );
        assert!(rest.iter().all(|l| l.body.kind() == "meter"));
        assert_eq!(last, 5);
        let (none, last) = s.log_after(last, &meters, 10).await.expect("none");
        assert!(none.is_empty());
        assert_eq!(last, 5, "nothing newer: the position stays");
        let (all, _) = s.log_after(0, &[], 10).await.expect("all");
        assert_eq!(all.len(), 5);
    }
}

/// Holds connector `C-SLOW`'s live status row locked in a transaction of its own, so an append
/// that reports for it waits in the middle of its transaction, as a slow replica would.
async fn lock_connector(db: &Database) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let Database::Postgres(pool) = db else {
        unreachable!("PostgreSQL only")
    };
    let mut tx = pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM connector_status WHERE connector_id = 'C-SLOW' FOR UPDATE")
        .execute(&mut *tx)
        .await
        .expect("locked");
    tx
}

/// A watcher reads the status log a bounded span at a time: exactly the changes in
/// `(after, upto]` within its scope, at most `limit`, in cursor order.
#[tokio::test]
async fn mon_1_a_status_watcher_reads_exactly_its_span_and_scope() {
    use chargemesh_kit::tenancy::StatusScope;
    for (db, s) in backends().await {
        let now = t("2026-03-01T08:10:00Z");
        let mut reports: Vec<Report> = (1..=5)
            .map(|i| status("pile:W", i, &format!("C{i}"), ConnectorState::Idle))
            .collect();
        reports[4].operator_id = "OTHER".into();
        reports[4].area_code = "110101".into();
        s.append(&reports, now).await.expect("appended");
        // The cursors of what a watcher's read returns.
        let read = |after: i64, upto: i64, scope: StatusScope, limit: u32| {
            let s = s.clone();
            async move {
                let changes = s.changes_after(after, upto, &scope, limit).await;
                let changes = changes.expect("changes");
                changes.iter().map(|c| c.cursor).collect::<Vec<i64>>()
            }
        };
        let all = read(0, i64::MAX, StatusScope::All, 100).await;
        assert_eq!(all.len(), 5, "{}", db.url);
        let (first, last) = (all[0], all[4]);
        let cases = [
            (
                first,
                first + 2,
                StatusScope::All,
                100,
                vec![first + 1, first + 2],
                "only the span",
            ),
            (
                first,
                last,
                StatusScope::All,
                2,
                vec![first + 1, first + 2],
                "at most the limit",
            ),
            (
                first,
                last,
                StatusScope::Operator("OP".into()),
                100,
                vec![first + 1, first + 2, first + 3],
                "the operator's own",
            ),
            (
                0,
                last - 1,
                StatusScope::Area("11".into()),
                100,
                vec![],
                "the other area's change is past the span",
            ),
            (
                0,
                last,
                StatusScope::Area("11".into()),
                100,
                vec![last],
                "the area's own",
            ),
        ];
        for (after, upto, scope, limit, expected, what) in cases {
            assert_eq!(
                read(after, upto, scope, limit).await,
                expected,
                "{}: {what}",
                db.url
            );
        }
    }
}

#[tokio::test]
async fn rec_2_a_reader_misses_nothing_when_writers_commit_out_of_order() {
    let Some(db) = TestDatabase::postgres("telemetry").await.expect("db") else {
        return; // SQLite has one writer at a time: its log is in commit order by construction
    };
    db.database
        .migrate(store::MIGRATIONS)
        .await
        .expect("migrated");
    // Two replicas: two stores over two pools on one database.
    let a = store::for_database(&db.database);
    let other = Database::connect(&db.url, &db.schema, 3)
        .await
        .expect("pool");
    let b = store::for_database(&other);
    let now = t("2026-03-01T08:10:00Z");
    a.append(&[status("pile:S", 1, "C-SLOW", ConnectorState::Idle)], now)
        .await
        .expect("the slow connector's row exists");
    let (_, start) = a.log_after(0, &[], 100).await.expect("log");

    // Replica A's append waits on the locked row, mid-transaction.
    let held = lock_connector(&db.database).await;
    let slow = tokio::spawn({
        let a = a.clone();
        async move {
            a.append(
                &[status("pile:S", 2, "C-SLOW", ConnectorState::Charging)],
                now,
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Replica B commits meanwhile; a reader (metering) reads it and moves on.
    b.append(
        &[status("pile:F", 1, "C-FAST", ConnectorState::Charging)],
        now,
    )
    .await
    .expect("the fast replica commits");
    let (read, position) = a.log_after(start, &[], 100).await.expect("read");
    assert_eq!(read.len(), 1, "only the committed report is there yet");
    assert_eq!(read[0].connector_id, "C-FAST");

    // A commits later; the reader resumes after its position and still finds it.
    held.rollback().await.expect("released");
    slow.await
        .expect("joined")
        .expect("the slow replica commits");
    let (later, _) = a.log_after(position, &[], 100).await.expect("read on");
    assert_eq!(
        later
            .iter()
            .map(|l| l.connector_id.as_str())
            .collect::<Vec<_>>(),
        ["C-SLOW"],
        "a report committed after the reader moved on is still read"
    );
    let (changes, _) = (
        a.changes_after(0, i64::MAX, &chargemesh_kit::tenancy::StatusScope::All, 100)
            .await
            .expect("changes"),
        (),
    );
    let cursors: Vec<i64> = changes.iter().map(|c| c.cursor).collect();
    let mut sorted = cursors.clone();
    sorted.sort_unstable();
    assert_eq!(cursors, sorted, "status changes in commit order too");
    other.close().await;
}

/// Writers of one process (the ingest writer, the liveness sweep, command delivery) commit
/// concurrently: on SQLite each must wait for the write lock, never fail with "database is
/// locked" because another committed between its reads and its writes.
#[tokio::test]
async fn mon_1_concurrent_writers_all_commit() {
    for (db, s) in backends().await {
        let now = t("2026-03-01T08:10:00Z");
        let mut writers = Vec::new();
        for w in 0..16u64 {
            let s = s.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..10u64 {
                    let connector = format!("C{w}");
                    let state = if i % 2 == 0 {
                        ConnectorState::Charging
                    } else {
                        ConnectorState::Idle
                    };
                    s.append(
                        &[status(&format!("pile:{w}"), i + 1, &connector, state)],
                        now,
                    )
                    .await?;
                }
                Ok::<_, chargemesh_kit::db::StoreError>(())
            }));
        }
        for writer in writers {
            writer
                .await
                .expect("joined")
                .unwrap_or_else(|e| panic!("{}: a writer failed: {e}", db.backend()));
        }
        let (logged, _) = s.log_after(0, &[], 1000).await.expect("log");
        assert_eq!(logged.len(), 160, "{}", db.backend());
    }
}

/// Writers that hear from the same connectors in different orders (ingest batches of piles that
/// report together, the heartbeat toucher) must not deadlock: on PostgreSQL each locks the
/// connectors it touches, and two that lock overlapping sets in different orders could each wait
/// for the other (at 100,000 piles thousands of batches failed so). Every writer takes them in
/// key order.
#[tokio::test]
async fn mon_1_writers_touching_the_same_connectors_in_any_order_all_commit() {
    for (db, s) in backends().await {
        let now = t("2026-03-01T08:10:00Z");
        let connectors: Vec<String> = (0..40).map(|c| format!("C{c:02}")).collect();
        // Every connector exists first (a connector's first status races differently).
        let first: Vec<Report> = connectors
            .iter()
            .enumerate()
            .map(|(i, c)| status("pile:seed", i as u64 + 1, c, ConnectorState::Idle))
            .collect();
        s.append(&first, now).await.expect("seeded");
        let mut writers = Vec::new();
        for w in 0..8u64 {
            let (s, connectors) = (s.clone(), connectors.clone());
            writers.push(tokio::spawn(async move {
                for round in 0..10u64 {
                    // Each writer its own order: rotated, and every other one reversed.
                    let mut order = connectors.clone();
                    let shift = (w as usize * 5 + round as usize) % order.len();
                    order.rotate_left(shift);
                    if w % 2 == 1 {
                        order.reverse();
                    }
                    if w == 7 {
                        let seen: Vec<(String, String, DateTime<Utc>)> = order
                            .iter()
                            .map(|c| ("OP".to_owned(), c.clone(), now))
                            .collect();
                        s.touch(&seen).await?;
                        continue;
                    }
                    let state = if round % 2 == 0 {
                        ConnectorState::Charging
                    } else {
                        ConnectorState::Idle
                    };
                    let batch: Vec<Report> = order
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            status(&format!("pile:{w}"), round * 100 + i as u64 + 1, c, state)
                        })
                        .collect();
                    s.append(&batch, now).await?;
                }
                Ok::<_, chargemesh_kit::db::StoreError>(())
            }));
        }
        for writer in writers {
            writer
                .await
                .expect("joined")
                .unwrap_or_else(|e| panic!("{}: a writer failed: {e}", db.backend()));
        }
    }
}

/// REQ MON-1: every report moves its connectors' last-seen time, so no index of the live status
/// may cover a column a report updates: with one, each of those updates writes an entry into
/// every index of the table (on PostgreSQL, no heap-only update), which at a fleet's scale was a
/// large share of the database's work. The liveness sweep reads the table instead.
#[tokio::test]
async fn mon_1_no_index_of_the_live_status_covers_what_a_report_updates() {
    const UPDATED: [&str; 6] = [
        "last_seen_at",
        "state",
        "fault_code",
        "fault_text",
        "origin",
        "changed_at",
    ];
    for (db, _s) in backends().await {
        let definitions: Vec<String> = match &db.database {
            Database::Postgres(pool) => sqlx::query_scalar(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'connector_status'",
            )
            .bind(&db.schema)
            .fetch_all(pool)
            .await
            .expect("indexes"),
            Database::Sqlite(pool) => sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'connector_status' \
                 AND sql IS NOT NULL",
            )
            .fetch_all(pool)
            .await
            .expect("indexes"),
        };
        assert!(!definitions.is_empty(), "{}: no index read", db.backend());
        for definition in &definitions {
            let columns = definition
                .split_once(" ON ")
                .map_or(definition.as_str(), |(_, on)| on);
            for word in columns.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                assert!(
                    !UPDATED.contains(&word),
                    "{}: {definition} covers {word}, which every report updates",
                    db.backend()
                );
            }
        }
        if let Database::Postgres(pool) = &db.database {
            // Room on each page for a row's next version, so the update stays on its page.
            let options: Option<Vec<String>> = sqlx::query_scalar(
                "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = 'connector_status'",
            )
            .bind(&db.schema)
            .fetch_one(pool)
            .await
            .expect("options");
            assert!(
                options
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o.starts_with("fillfactor=")),
                "connector_status keeps no room for heap-only updates"
            );
        }
    }
}
