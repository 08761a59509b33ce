//! What PostgreSQL did during a benchmark's steady state, read from its own statistics: the WAL
//! it wrote and the transactions it committed (per durable message; a statement outside a
//! transaction counts as one), how many row updates were
//! heap-only (HOT: no index entry written), which tables were read by sequential scans (a
//! statement planned for a young table reads all of it on every call once it has grown), and
//! which statements its backends were busy in, sampled from `pg_stat_activity` every second. When the database is what saturates a run, this
//! says which statement to make cheaper; before, it was a shell loop beside the benchmark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;

/// The counters read at both ends of the window.
#[derive(Debug, Clone, Default)]
struct Counters {
    wal_bytes: i64,
    commits: i64,
    updates: i64,
    hot_updates: i64,
    /// Sequential scans and the rows they read, by table (`component.table`).
    seq_scans: HashMap<String, (i64, i64)>,
    /// Rows inserted into the telemetry log: the durable messages that went through the
    /// writer's transactions (the rest were heartbeats noted in memory, or resends).
    log_rows: i64,
}

/// Busy-backend samples by (wait, statement).
type Samples = HashMap<(String, String), u64>;

/// A probe over one window; dropping it stops the sampler.
pub(super) struct PgProbe {
    pool: PgPool,
    prefix: String,
    from: Counters,
    samples: Arc<Mutex<(u64, Samples)>>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Drop for PgProbe {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

/// How many of the busiest statements are printed.
const TOP: usize = 6;
/// How many of the tables most read by sequential scans are printed.
const TOP_SCANNED: usize = 3;
/// How much of a statement's text names it.
const STATEMENT_CHARS: usize = 90;

impl PgProbe {
    /// Starts a probe on the run's database (its schemas begin with `prefix`); `None` for
    /// SQLite, or when the statistics cannot be read (the figures are then left out).
    pub(super) async fn start(database_url: Option<&str>, prefix: &str) -> Option<Self> {
        let url = database_url?;
        let pool = match sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
        {
            Ok(pool) => pool,
            Err(error) => {
                eprintln!("bench: PostgreSQL's statistics are not readable: {error}");
                return None;
            }
        };
        let from = match counters(&pool, prefix).await {
            Ok(c) => c,
            Err(error) => {
                eprintln!("bench: PostgreSQL's statistics are not readable: {error}");
                return None;
            }
        };
        let samples = Arc::new(Mutex::new((0, Samples::new())));
        let sampler = tokio::spawn(sample(pool.clone(), samples.clone()));
        Some(Self {
            pool,
            prefix: prefix.to_owned(),
            from,
            samples,
            sampler,
        })
    }

    /// Ends the window: what the database did since `start`.
    pub(super) async fn stop(mut self) -> Option<PgWindow> {
        self.sampler.abort();
        let to = match counters(&self.pool, &self.prefix).await {
            Ok(c) => c,
            Err(error) => {
                eprintln!("bench: PostgreSQL's statistics are not readable: {error}");
                return None;
            }
        };
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Some(PgWindow {
            from: std::mem::take(&mut self.from),
            to,
            samples,
        })
    }
}

/// What the database did over a window.
pub(super) struct PgWindow {
    from: Counters,
    to: Counters,
    samples: (u64, Samples),
}

impl PgWindow {
    /// Prints it, given the window's length and the durable messages acknowledged in it.
    pub(super) fn print(&self, window: Duration, acked: u64) {
        let (from, to) = (&self.from, &self.to);
        let secs = window.as_secs_f64().max(1e-9);
        let wal = (to.wal_bytes - from.wal_bytes).max(0) as f64;
        let commits = (to.commits - from.commits).max(0) as f64;
        let updates = (to.updates - from.updates).max(0) as f64;
        let hot = (to.hot_updates - from.hot_updates).max(0) as f64;
        let per = |x: f64| x / acked.max(1) as f64;
        println!(
            "  PostgreSQL            WAL {:.1} MiB/s ({:.0} B per durable message), {:.0} transactions/s ({:.2} per message; \
             a statement outside a transaction counts as one), {:.0} row updates/s of which {:.0}% heap-only",
            wal / secs / 1_048_576.0,
            per(wal),
            commits / secs,
            per(commits),
            updates / secs,
            100.0 * hot / updates.max(1.0)
        );
        let logged = (to.log_rows - from.log_rows).max(0) as f64;
        println!(
            "                        telemetry log rows {:.0}/s: {:.0}% of durable messages went through the writer's \
             transactions, the rest were heartbeats noted in memory (or resends already stored)",
            logged / secs,
            100.0 * per(logged)
        );
        print!("{}", scanned(&from.seq_scans, &to.seq_scans));
        print!("{}", busiest(self.samples.0, &self.samples.1));
    }
}

/// The tables whose sequential scans read the most rows over the window, as a printed line.
fn scanned(from: &HashMap<String, (i64, i64)>, to: &HashMap<String, (i64, i64)>) -> String {
    let mut ranked: Vec<(&str, i64, i64)> = to
        .iter()
        .map(|(table, (scans, rows))| {
            let (scans0, rows0) = from.get(table).copied().unwrap_or_default();
            (table.as_str(), scans - scans0, rows - rows0)
        })
        .filter(|(_, scans, _)| *scans > 0)
        .collect();
    ranked.sort_unstable_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    if ranked.is_empty() {
        return "                        sequential scans: none\n".into();
    }
    let tables: Vec<String> = ranked
        .into_iter()
        .take(TOP_SCANNED)
        .map(|(table, scans, rows)| format!("{table} {scans} ({rows} rows read)"))
        .collect();
    format!(
        "                        sequential scans, the most rows read first: {}\n",
        tables.join(", ")
    )
}

/// The busy backends' statements, the busiest first, as printed lines.
fn busiest(ticks: u64, samples: &Samples) -> String {
    let busy: u64 = samples.values().sum();
    let mut by_statement: HashMap<&str, (u64, u64)> = HashMap::new();
    for ((wait, statement), n) in samples {
        let entry = by_statement.entry(statement).or_default();
        entry.0 += n;
        if wait != "CPU" {
            entry.1 += n;
        }
    }
    let mut ranked: Vec<(&str, (u64, u64))> = by_statement.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let mut out = format!(
        "                        busy backends: {:.2} on average over {ticks} samples; the busiest statements (samples, of them waiting):\n",
        busy as f64 / ticks.max(1) as f64
    );
    for (statement, (n, waiting)) in ranked.into_iter().take(TOP) {
        out.push_str(&format!(
            "                          {:>5.1}%  {n:>5} ({waiting:>4})  {statement}\n",
            100.0 * n as f64 / busy.max(1) as f64
        ));
    }
    out
}

async fn counters(pool: &PgPool, prefix: &str) -> Result<Counters, sqlx::Error> {
    let (wal_bytes,): (i64,) = sqlx::query_as("SELECT wal_bytes::BIGINT FROM pg_stat_wal")
        .fetch_one(pool)
        .await?;
    let (commits,): (i64,) = sqlx::query_as(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    let (updates, hot_updates): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(n_tup_upd), 0)::BIGINT, COALESCE(SUM(n_tup_hot_upd), 0)::BIGINT \
         FROM pg_stat_user_tables WHERE starts_with(schemaname, $1)",
    )
    .bind(prefix)
    .fetch_one(pool)
    .await?;
    // Each component has its own schema, `<prefix>_<component>`.
    let tables: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT schemaname::TEXT, relname::TEXT, COALESCE(seq_scan, 0), COALESCE(seq_tup_read, 0), \
         COALESCE(n_tup_ins, 0) FROM pg_stat_user_tables WHERE starts_with(schemaname, $1)",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await?;
    let mut log_rows = 0;
    let mut seq_scans = HashMap::new();
    for (schema, table, scans, rows, inserted) in tables {
        let component = schema.rsplit('_').next().unwrap_or(&schema).to_owned();
        if component == "telemetry" && table == "telemetry_log" {
            log_rows += inserted;
        }
        seq_scans.insert(format!("{component}.{table}"), (scans, rows));
    }
    Ok(Counters {
        wal_bytes,
        commits,
        updates,
        hot_updates,
        seq_scans,
        log_rows,
    })
}

/// Every second, what each busy backend of the database runs and waits on.
async fn sample(pool: PgPool, into: Arc<Mutex<(u64, Samples)>>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let rows: Vec<(String, String)> = match sqlx::query_as(
            "SELECT COALESCE(wait_event_type || ':' || wait_event, 'CPU'), \
             left(regexp_replace(query, '\\s+', ' ', 'g'), $1) \
             FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .bind(STATEMENT_CHARS as i32)
        .fetch_all(&pool)
        .await
        {
            Ok(rows) => rows,
            Err(_) => continue,
        };
        let mut guard = into.lock().unwrap_or_else(|p| p.into_inner());
        guard.0 += 1;
        for key in rows {
            *guard.1.entry(key).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_most_read_by_sequential_scans_comes_first() {
        let from = HashMap::from([
            ("telemetry.status_changes".to_owned(), (10, 1_000)),
            ("asset.piles".to_owned(), (5, 50)),
        ]);
        let to = HashMap::from([
            ("telemetry.status_changes".to_owned(), (400, 4_000_000)),
            ("asset.piles".to_owned(), (5, 50)),
            ("telemetry.counters".to_owned(), (90, 180)),
        ]);
        let printed = scanned(&from, &to);
        assert!(
            printed.ends_with(
                "telemetry.status_changes 390 (3999000 rows read), telemetry.counters 90 (180 rows read)\n"
            ),
            "{printed}"
        );
        assert!(scanned(&to, &to).contains("none"), "no scans in the window");
    }

    #[test]
    fn the_busiest_statement_comes_first_with_its_share_and_waits() {
        let mut samples = Samples::new();
        samples.insert(("CPU".into(), "UPDATE a".into()), 3);
        samples.insert(("IO:WalSync".into(), "UPDATE a".into()), 1);
        samples.insert(("CPU".into(), "SELECT b".into()), 6);
        let printed = busiest(5, &samples);
        let lines: Vec<&str> = printed.lines().collect();
        assert!(
            lines[0].contains("2.00 on average over 5 samples"),
            "{printed}"
        );
        assert!(
            lines[1].contains("60.0%") && lines[1].ends_with("SELECT b"),
            "{printed}"
        );
        assert!(
            lines[2].contains("40.0%") && lines[2].contains("(   1)"),
            "{printed}"
        );
    }
}
