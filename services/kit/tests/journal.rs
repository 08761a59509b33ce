//! A journal follower misses nothing when writers commit out of order (REQ REC-2): the
//! journal's sequences follow commit order, so a follower that moves its position to the last
//! entry it read never passes an entry that commits later. PostgreSQL only (SQLite has one
//! writer at a time); skipped without `CHARGEMESH_TEST_DATABASE_URL`.

use std::time::Duration;

use chargemesh_kit::db::{Database, TestDatabase};
use chargemesh_kit::journal::{self, Entry};
use chargemesh_proto::journal::v1 as pb;

const SCHEMA: &str = "CREATE TABLE journal (
    sequence    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id    TEXT NOT NULL UNIQUE,
    operator_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    version     BIGINT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    fact        BYTEA NOT NULL
);
CREATE TABLE journal_counter (value BIGINT NOT NULL);
INSERT INTO journal_counter (value) VALUES (0);";

fn entry(subject: &str) -> Entry {
    Entry::new(
        "OP",
        "work_order",
        subject,
        1,
        chrono::Utc::now(),
        pb::fact::Fact::WorkOrder(pb::WorkOrderFact::default()),
    )
}

#[tokio::test]
async fn rec_2_a_follower_never_passes_an_entry_that_commits_late() {
    let Some(db) = TestDatabase::postgres("journal").await.expect("db") else {
        return;
    };
    let Database::Postgres(pool) = &db.database else {
        unreachable!()
    };
    sqlx::raw_sql(SCHEMA).execute(pool).await.expect("tables");

    // A slow change: its entry is appended, its transaction not committed yet.
    let mut slow = pool.begin().await.expect("tx");
    journal::append_pg(&mut slow, &[entry("slow")])
        .await
        .expect("appended");
    // A quick change in another transaction (another replica) meanwhile.
    let quick = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.expect("tx");
            journal::append_pg(&mut tx, &[entry("quick")])
                .await
                .expect("appended");
            tx.commit().await.expect("committed");
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The follower reads and moves its position to the last entry it read.
    let mut seen = Vec::new();
    let mut position = 0;
    let follow = async |position: &mut i64, seen: &mut Vec<String>| {
        let (entries, _) = journal::read(&db.database, *position, 100)
            .await
            .expect("read");
        for e in entries {
            *position = e.sequence;
            seen.push(e.subject_id);
        }
    };
    follow(&mut position, &mut seen).await;
    slow.commit().await.expect("the slow change commits");
    quick.await.expect("the quick change commits");
    follow(&mut position, &mut seen).await;
    assert_eq!(seen, ["slow", "quick"], "every entry, in commit order");
}
