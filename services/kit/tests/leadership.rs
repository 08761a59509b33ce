//! Leadership among replicas: of two replicas over one PostgreSQL schema, one holds a piece of
//! work at a time and the other takes it once the first lets go (or dies, ending its
//! transaction). SQLite is one process's, always the leader.

use chargemesh_kit::db::{Database, TestDatabase};

#[tokio::test]
async fn one_replica_at_a_time_leads_the_same_work() {
    for db in TestDatabase::every("leadership").await.expect("backends") {
        let other = Database::connect(&db.url, &db.schema, 2)
            .await
            .expect("a second replica");
        let first = db.database.leadership("push").await.expect("asked");
        assert!(first.is_some(), "{}", db.backend());
        let second = other.leadership("push").await.expect("asked");
        match db.database {
            Database::Postgres(_) => {
                assert!(second.is_none(), "the work has one leader");
                assert!(
                    other.leadership("follow").await.expect("asked").is_some(),
                    "other work is free"
                );
                if let Some(held) = first {
                    held.release().await;
                }
                assert!(
                    other.leadership("push").await.expect("asked").is_some(),
                    "taken over once let go"
                );
            }
            Database::Sqlite(_) => assert!(second.is_some()),
        }
    }
}
