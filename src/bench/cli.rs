//! The `chargemesh bench` command line: each benchmark's arguments and how they reach it.

use std::path::PathBuf;

use clap::Subcommand;

use crate::bench;

/// The benchmarks of `chargemesh bench`.
#[derive(Subcommand)]
pub enum Command {
    /// Durable telemetry through the mTLS gateway at full speed, beside a bare tonic baseline.
    Ingest {
        #[arg(long, default_value_t = 8)]
        connections: usize,
        #[arg(long, default_value_t = 50)]
        piles_per_connection: usize,
        #[arg(long, default_value_t = 500)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        window: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Run on PostgreSQL (a fresh schema in this database) instead of SQLite files.
        #[arg(long)]
        database_url: Option<String>,
        /// Use Redis Streams as the event bus.
        #[arg(long)]
        redis_url: Option<String>,
    },
    /// What a pile's mutual-TLS handshake costs the gateway's accept path, full and resumed
    /// from a session ticket.
    Handshakes {
        #[arg(long, default_value_t = 2_000)]
        count: usize,
    },
    /// Resident memory of `chargemesh up` holding many idle pile connections.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    /// Piles connected to a separate mesh whose process (or one role's) is killed and started
    /// again: how long until all are back, and proof that every acknowledged report is stored
    /// once.
    Storm {
        #[arg(long, default_value_t = 2_000)]
        piles: usize,
        /// Seconds between a pile's status reports.
        #[arg(long, default_value_t = 2.0)]
        every_s: f64,
        /// What is killed: `all` (the `up` process, or every process), `gateway` or
        /// `telemetry` (these two need --gateways).
        #[arg(long, value_enum, default_value = "all")]
        kill: bench::Victim,
        /// Piles keep no TLS session tickets: every reconnection is a full handshake (the
        /// baseline of session resumption).
        #[arg(long)]
        no_resume: bool,
        /// PostgreSQL (a fresh schema per component in this database) instead of SQLite.
        #[arg(long)]
        database_url: Option<String>,
        /// Redis Streams as the event bus.
        #[arg(long)]
        redis_url: Option<String>,
        #[command(flatten)]
        topology: TopologyArgs,
    },
    /// A fleet of piles, each its own mTLS connection, reporting at realistic rates to a
    /// separately started mesh: connections, durable msg/s, acknowledgement and
    /// status-to-regulator latency, memory and CPU per connection.
    Fleet {
        #[arg(long, default_value_t = 5_000)]
        piles: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Seconds between a pile's heartbeats.
        #[arg(long, default_value_t = 60.0)]
        heartbeat_s: f64,
        /// Mean seconds between a pile's status changes.
        #[arg(long, default_value_t = 300.0)]
        status_every_s: f64,
        /// Seconds between meter samples of a charging pile.
        #[arg(long, default_value_t = 30.0)]
        meter_every_s: f64,
        /// The share of piles charging.
        #[arg(long, default_value_t = 0.3)]
        charging_share: f64,
        /// PostgreSQL (a fresh schema per component in this database) instead of SQLite.
        #[arg(long)]
        database_url: Option<String>,
        /// Redis Streams as the event bus.
        #[arg(long)]
        redis_url: Option<String>,
        /// The piles speak OCPP 1.6J to the gateway's OCPP edge instead of the native stream.
        #[arg(long)]
        ocpp: bool,
        /// Seconds between piles the operator registers during the steady state (0: none):
        /// what a registry change costs the fleet's reports.
        #[arg(long, default_value_t = 0.0)]
        register_every_s: f64,
        #[command(flatten)]
        topology: TopologyArgs,
    },
    /// One client process of `bench fleet` or `bench storm` (started by them).
    #[command(hide = true)]
    Worker { spec: PathBuf },
    /// Resident memory of `chargemesh up` under a 400 MiB POST to the T/CEC 102 edge and a
    /// 4 MiB telemetry frame of a million tiny messages (REQ NETSEC-1).
    Hostile {
        /// The `chargemesh` binary whose `up` is measured (another build, to compare); this
        /// one when unset.
        #[arg(long)]
        binary: Option<PathBuf>,
    },
}

/// How the benchmarked mesh runs and how many processes drive its piles.
#[derive(clap::Args, Clone, Copy)]
pub struct TopologyArgs {
    /// Every role its own `chargemesh serve` process, as on Kubernetes, with this many gateway
    /// replicas (0: one per 18,000 piles); needs --redis-url. One `chargemesh up` otherwise.
    #[arg(long)]
    gateways: Option<usize>,
    /// Client processes driving the piles, each from its own loopback address (0: one per
    /// 15,000 piles; one process may hold 20,000 open files).
    #[arg(long, default_value_t = 0)]
    clients: usize,
}

/// Runs one benchmark.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ingest {
            connections,
            piles_per_connection,
            batch,
            window,
            seconds,
            database_url,
            redis_url,
        } => {
            bench::ingest(bench::IngestOptions {
                connections,
                piles_per_connection,
                batch,
                window,
                seconds,
                database_url,
                redis_url,
            })
            .await
        }
        Command::Handshakes { count } => bench::handshakes(count).await,
        Command::Idle { connections } => bench::idle(connections, &std::env::current_exe()?).await,
        Command::Storm {
            piles,
            every_s,
            kill,
            no_resume,
            database_url,
            redis_url,
            topology,
        } => {
            let opts = bench::StormOptions {
                piles,
                every_s,
                serve: bench::ServeOptions {
                    database_url,
                    redis_url,
                    ocpp: false,
                    gateways: bench::ServeOptions::gateways_for(piles, topology.gateways),
                    cec_push: None,
                },
                kill,
                clients: topology.clients,
                resume: !no_resume,
            };
            bench::storm(opts, &std::env::current_exe()?).await
        }
        Command::Worker { spec } => {
            bench::worker(&spec).await?;
            // Its figures are out; the read of stdin must not hold the runtime open.
            std::process::exit(0)
        }
        Command::Fleet {
            piles,
            seconds,
            heartbeat_s,
            status_every_s,
            meter_every_s,
            charging_share,
            database_url,
            redis_url,
            ocpp,
            register_every_s,
            topology,
        } => {
            bench::fleet(
                bench::FleetOptions {
                    piles,
                    seconds,
                    heartbeat_s,
                    status_every_s,
                    meter_every_s,
                    charging_share,
                    database_url,
                    redis_url,
                    ocpp,
                    gateways: topology.gateways,
                    clients: topology.clients,
                    register_every_s,
                },
                &std::env::current_exe()?,
            )
            .await
        }
        Command::Hostile { binary } => {
            let binary = match binary {
                Some(path) => path,
                None => std::env::current_exe()?,
            };
            bench::hostile(&binary).await
        }
    }
}
