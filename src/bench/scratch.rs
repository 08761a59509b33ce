//! What a benchmark run leaves on the machine's shared services, removed when it stops: its
//! PostgreSQL schemas (one per component) and its Redis streams (every key under its prefix).
//! Benchmarks run against the PostgreSQL and Redis that tests and other runs share; without this
//! each run left its tables and streams behind.

/// A run's schemas and keys, named by the one prefix it was given.
#[derive(Debug, Clone)]
pub(crate) struct Scratch {
    /// `bench<id>_`: schemas are `<prefix><component>`, Redis keys `<prefix>:...`.
    pub(crate) prefix: String,
    pub(crate) database_url: Option<String>,
    pub(crate) redis_url: Option<String>,
}

impl Scratch {
    /// Drops the run's schemas and deletes its keys; what cannot be removed is reported, not
    /// fatal (the figures are already printed).
    pub(crate) async fn remove(&self) {
        if let Err(error) = self.drop_schemas().await {
            eprintln!(
                "bench: could not drop the run's schemas ({}*): {error}",
                self.prefix
            );
        }
        if let Err(error) = self.delete_keys().await {
            eprintln!(
                "bench: could not delete the run's Redis keys ({}:*): {error}",
                self.prefix
            );
        }
    }

    async fn drop_schemas(&self) -> anyhow::Result<()> {
        let Some(url) = &self.database_url else {
            return Ok(());
        };
        let pool = sqlx::PgPool::connect(url).await?;
        for component in crate::mesh::COMPONENTS {
            // The prefix is ours (letters, digits and `_`), and the name a constant.
            let schema = format!("{}{}", self.prefix, component.name);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&pool)
            .await?;
        }
        pool.close().await;
        Ok(())
    }

    async fn delete_keys(&self) -> anyhow::Result<()> {
        let Some(url) = &self.redis_url else {
            return Ok(());
        };
        let client = redis::Client::open(url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let pattern = format!("{}:*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
