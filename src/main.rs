//! `chargemesh`: one binary, every role.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use chargemesh::config::Config;
use chargemesh::mesh::{self, EmbeddedMesh, EmbeddedOptions};
use chargemesh::{bench, demo, pki, regulator};
use chargemesh_kit::component::Shutdown;
use chargemesh_kit::telemetry;

#[derive(Parser)]
#[command(
    name = "chargemesh",
    version,
    about = "EV charging operations mesh for the Shaoxing O&M standard"
)]
struct Cli {
    /// TOML configuration files, separated by `:` and applied in order (a later one overrides,
    /// such as peer credentials from a Secret over a ConfigMap); CHARGEMESH_* environment
    /// variables override them all.
    #[arg(long, global = true, env = "CHARGEMESH_CONFIG")]
    config: Option<std::ffi::OsString>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Gateway,
    Asset,
    Telemetry,
    Dispatch,
    Metering,
    Complaints,
    Reporting,
    /// The operator console (web), calling the gateway.
    Console,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Asset => "asset",
            Role::Telemetry => "telemetry",
            Role::Dispatch => "dispatch",
            Role::Metering => "metering",
            Role::Complaints => "complaints",
            Role::Reporting => "reporting",
            Role::Console => "console",
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one component (one Kubernetes Deployment each).
    Serve {
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Apply database migrations of every configured service, then exit.
    Migrate,
    /// Development PKI.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Mint a development staff JWT signed with the PKI's key.
    Token {
        /// The PKI directory made by `pki init` or `up`.
        #[arg(long, default_value = "data/pki")]
        pki: PathBuf,
        #[arg(long, default_value = "dev-staff")]
        subject: String,
        /// The operator the staff member works for.
        #[arg(long)]
        operator: Option<String>,
        /// Roles: monitor, repairer, station_master, safety_officer, om_manager,
        /// complaint_handler, platform_admin. Repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// Simulate a fleet reporting live telemetry through the gateway.
    Sim {
        /// The gateway.
        #[arg(long, default_value = "127.0.0.1:7443")]
        gateway: std::net::SocketAddr,
        /// The development PKI (its CA issues the simulated identities).
        #[arg(long, default_value = "data/pki")]
        pki: PathBuf,
        /// One stream per pile, per station, or one for the operator platform.
        #[arg(long, value_enum, default_value = "pile")]
        mode: chargemesh::sim::Mode,
        /// How many stations SIM-001... to register and simulate.
        #[arg(long, default_value_t = 2)]
        stations: usize,
        #[arg(long, default_value_t = 10)]
        piles_per_station: usize,
        /// Simulate these existing stations of the demo operator instead.
        #[arg(long = "station")]
        existing: Vec<String>,
        /// Milliseconds between simulation steps.
        #[arg(long, default_value_t = 1000)]
        tick_ms: u64,
        /// What the piles speak: our telemetry stream, or OCPP to the gateway's OCPP edge (one
        /// charge point per pile; newly registered piles are registered as OCPP piles).
        #[arg(long, value_enum, default_value = "native")]
        protocol: SimProtocol,
        /// The gateway's OCPP edge.
        #[arg(long, default_value = "127.0.0.1:7445")]
        ocpp: std::net::SocketAddr,
        /// The gateway's YKC edge (`--protocol ykc`).
        #[arg(long, default_value = "127.0.0.1:7447")]
        ykc: std::net::SocketAddr,
        /// OCPP security profile 2: HTTP Basic with this password (16 or more characters, set
        /// on each pile registered); without it, profile 3 with the development CA's pile
        /// certificates.
        #[arg(long)]
        password: Option<String>,
    },
    /// Report one connector's status as its pile, through the gateway, and wait until it is
    /// durable: the fault (or recovery) you choose, beside the simulated fleet's random ones.
    SimReport {
        /// The gateway.
        #[arg(long, default_value = "127.0.0.1:7443")]
        gateway: std::net::SocketAddr,
        /// The development PKI (its CA issues the pile's identity).
        #[arg(long, default_value = "data/pki")]
        pki: PathBuf,
        #[arg(long, default_value = pki::DEMO_OPERATOR_ID)]
        operator: String,
        #[arg(long)]
        station: String,
        #[arg(long)]
        pile: String,
        /// The connector; the pile's first (`<pile>-1`) when left out.
        #[arg(long)]
        connector: Option<String>,
        #[arg(long, value_enum)]
        state: ReportedState,
        #[arg(long, default_value = "")]
        fault_code: String,
        #[arg(long, default_value = "")]
        fault_text: String,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: bench::cli::Command,
    },
    /// A mock regulator platform for development (T/CEC 102): it takes the pushes of one caller,
    /// checking envelopes, signatures and tokens, and prints each as a JSON line.
    CecPeer {
        #[arg(long, default_value = "127.0.0.1:9443")]
        listen: String,
        /// Its TLS certificate is the development PKI's gateway certificate.
        #[arg(long, default_value = "data/pki")]
        pki: PathBuf,
        /// The OperatorID of the platform that pushes to it.
        #[arg(long, default_value = regulator::DEMO_PLATFORM_ID)]
        caller: String,
        /// One 16-character secret used as all four (as the published test vectors do).
        #[arg(long, default_value = regulator::DEMO_CEC_SECRET)]
        secret: String,
        #[arg(long, default_value = regulator::PREFIX)]
        prefix: String,
    },
    /// Run every component in one process on the embedded default: SQLite files, a development
    /// PKI made on first run, and optionally a demo fleet.
    Up {
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Where the gateway listens (default `gateway.listen` of the configuration,
        /// 127.0.0.1:7443).
        #[arg(long)]
        listen: Option<String>,
        /// Seed a demo operator with stations, piles and certificates.
        #[arg(long)]
        demo: bool,
    },
}

/// A connector state `sim-report` reports.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportedState {
    Idle,
    Occupied,
    Charging,
    Reserved,
    Fault,
    Offline,
}

impl ReportedState {
    fn state(self) -> chargemesh_proto::telemetry::v1::ConnectorState {
        use chargemesh_proto::telemetry::v1::ConnectorState as S;
        match self {
            Self::Idle => S::Idle,
            Self::Occupied => S::OccupiedNotCharging,
            Self::Charging => S::Charging,
            Self::Reserved => S::Reserved,
            Self::Fault => S::Fault,
            Self::Offline => S::Offline,
        }
    }
}

/// What simulated piles speak.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SimProtocol {
    Native,
    #[value(name = "ocpp1.6")]
    Ocpp16,
    #[value(name = "ocpp2.0.1")]
    Ocpp201,
    /// YKC (云快充) 1.6, to the gateway's YKC edge.
    Ykc,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Make a CA, component and demo certificates, and a JWT key in DIR.
    Init {
        dir: PathBuf,
        #[arg(long, default_value = chargemesh::config::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
    },
    /// Revoke certificates of DIR's CA: writes DIR/crl.pem (every certificate revoked so far),
    /// which a listener given it as `tls.crl_file` reads again within 30 seconds.
    Revoke {
        dir: PathBuf,
        /// The certificates (PEM) to revoke.
        #[arg(required = true)]
        certs: Vec<PathBuf>,
        /// How long the list is good for.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let files: Vec<PathBuf> = cli
        .config
        .as_deref()
        .map(|list| std::env::split_paths(list).collect())
        .unwrap_or_default();
    let files: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let config: Config = chargemesh_kit::config::load(&files)?;
    // `up` reads the same files over its own defaults.
    let up_files = files.clone();
    // Benchmarks print figures; their logs would only disturb them.
    let default_level = if matches!(cli.command, Command::Bench { .. }) {
        "warn"
    } else {
        "info"
    };
    let _traces = telemetry::init(config.log_format, default_level);
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve { role } => serve(config, role).await,
        Command::Migrate => mesh::migrate(&config).await,
        Command::Pki {
            command: PkiCommand::Init { dir, trust_domain },
        } => {
            pki::init(&dir, &trust_domain)?;
            println!("development PKI written to {}", dir.display());
            Ok(())
        }
        Command::Pki {
            command: PkiCommand::Revoke { dir, certs, days },
        } => {
            let crl = pki::revoke(&dir, &certs, days)?;
            println!("{} revoked; the list is {}", certs.len(), crl.display());
            Ok(())
        }
        Command::Token {
            pki: dir,
            subject,
            operator,
            roles,
            ttl,
        } => {
            let token = pki::mint_token(
                &pki::PkiDir { dir },
                &subject,
                operator.as_deref(),
                &roles,
                ttl,
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Sim {
            gateway,
            pki: dir,
            mode,
            stations,
            piles_per_station,
            existing,
            tick_ms,
            protocol,
            ocpp,
            ykc,
            password,
        } => {
            use chargemesh::sim_ocpp::OcppVersion;
            let version = match protocol {
                SimProtocol::Native | SimProtocol::Ykc => None,
                SimProtocol::Ocpp16 => Some(OcppVersion::V16),
                SimProtocol::Ocpp201 => Some(OcppVersion::V201),
            };
            let ocpp = version.map(|version| chargemesh::sim::OcppSim {
                version,
                edge: ocpp,
                password,
            });
            let ykc = (protocol == SimProtocol::Ykc).then_some(ykc);
            let mode = if ocpp.is_some() || ykc.is_some() {
                chargemesh::sim::Mode::Pile
            } else {
                mode
            };
            let create = existing.is_empty();
            let stations = if create {
                (1..=stations).map(|i| format!("SIM-{i:03}")).collect()
            } else {
                existing
            };
            let tasks = chargemesh::sim::start(chargemesh::sim::SimOptions {
                gateway,
                pki: pki::PkiDir { dir },
                trust_domain: config.trust_domain.clone(),
                mode,
                stations,
                piles_per_station,
                create,
                tick: std::time::Duration::from_millis(tick_ms.max(10)),
                seed: 7,
                ocpp,
                ykc,
                only_piles: Vec::new(),
            })
            .await?;
            println!("simulating {} streams; stop with ctrl-c", tasks.len());
            terminated().await;
            Ok(())
        }
        Command::Up {
            data_dir,
            listen,
            demo,
        } => {
            let opts = EmbeddedOptions::load(&data_dir, &up_files, std::env::vars())?;
            up(opts, listen, demo).await
        }
        Command::CecPeer {
            listen,
            pki,
            caller,
            secret,
            prefix,
        } => cec_peer(&listen, &pki, &caller, &secret, &prefix).await,
        Command::Bench { command } => bench::cli::run(command).await,
        Command::SimReport {
            gateway,
            pki: dir,
            operator,
            station,
            pile,
            connector,
            state,
            fault_code,
            fault_text,
        } => {
            chargemesh::sim_report::report(chargemesh::sim_report::Report {
                gateway,
                pki: pki::PkiDir { dir },
                trust_domain: config.trust_domain.clone(),
                operator_id: operator,
                station_id: station,
                connector_id: connector.unwrap_or_else(|| format!("{pile}-1")),
                pile_id: pile,
                state: state.state(),
                fault_code,
                fault_text,
            })
            .await
        }
    }
}

async fn serve(config: Config, role: Role) -> anyhow::Result<()> {
    if let Role::Console = role {
        // Not a mesh component: no database, no mesh certificate; it calls the gateway.
        anyhow::ensure!(
            !config.console.listen.trim().is_empty(),
            "console.listen is not set: where should browsers reach the console?"
        );
        let listener = chargemesh_kit::component::bind(&config.console.listen).await?;
        return Ok(chargemesh_console::serve(listener, config.console, terminated()).await?);
    }
    let (stop, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        terminated().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    let ctx = mesh::context(
        &config,
        std::sync::Arc::new(chargemesh_kit::clock::SystemClock),
    )
    .await?;
    mesh::serve(role.name(), &config, &ctx, shutdown).await
}

/// Prints what a mock regulator receives, as JSON lines, until stopped.
fn print_pushes(
    peer: std::sync::Arc<chargemesh_cec::mock::MockPeer>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut shown = 0;
        loop {
            let received = peer.received();
            for (interface, payload) in received.iter().skip(shown) {
                println!(
                    "{}",
                    serde_json::json!({"regulator_received": interface, "payload": payload})
                );
            }
            shown = received.len();
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })
}

async fn cec_peer(
    listen: &str,
    pki: &std::path::Path,
    caller: &str,
    secret: &str,
    prefix: &str,
) -> anyhow::Result<()> {
    let listener = chargemesh_kit::component::bind(listen).await?;
    let addr = listener.local_addr()?;
    let peer = std::sync::Arc::new(regulator::start_mock(
        listener, pki, caller, secret, prefix,
    )?);
    println!("mock regulator on https://{addr}{prefix} taking pushes from {caller}");
    let printer = print_pushes(peer);
    tokio::signal::ctrl_c().await?;
    printer.abort();
    Ok(())
}

async fn up(
    mut opts: EmbeddedOptions,
    listen: Option<String>,
    seed_demo: bool,
) -> anyhow::Result<()> {
    if let Some(listen) = listen {
        opts.config.gateway.listen = listen;
    }
    let data_dir = opts.data_dir.clone();
    // Charge points speak OCPP to 127.0.0.1:7445 unless the configuration says otherwise.
    if opts.config.gateway.ocpp.listen.trim().is_empty() {
        opts.config.gateway.ocpp.listen = "127.0.0.1:7445".into();
    }
    // YKC piles connect to 127.0.0.1:7447 (and over TLS to :7448), the demo operator's from
    // loopback addresses.
    if opts.config.gateway.ykc.listen.trim().is_empty() {
        opts.config.gateway.ykc.listen = "127.0.0.1:7447".into();
        if opts.config.gateway.ykc.tls_listen.trim().is_empty() {
            opts.config.gateway.ykc.tls_listen = "127.0.0.1:7448".into();
        }
        if opts.config.gateway.ykc.operators.is_empty() {
            opts.config.gateway.ykc.operators = vec![chargemesh_ykc::config::OperatorNetworks {
                operator_id: pki::DEMO_OPERATOR_ID.into(),
                networks: vec!["127.0.0.0/8".into()],
            }];
        }
    }
    // The demo connects a regulator of Shaoxing both ways over T/CEC 102 (unless the
    // configuration connects one already): it pulls from the edge on 127.0.0.1:7444 and is
    // pushed to at a mock regulator in this process.
    let demo_regulator = seed_demo && opts.config.gateway.cec.listen.trim().is_empty();
    let regulator_listener = if demo_regulator {
        let listener = chargemesh_kit::component::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let peer = regulator::demo_peer(&format!(
            "https://127.0.0.1:{port}{}",
            regulator::PREFIX.trim_end_matches('/')
        ));
        opts.config.gateway.cec = chargemesh_cec::edge::CecConfig {
            listen: "127.0.0.1:7444".into(),
            operator_id: regulator::DEMO_PLATFORM_ID.into(),
            peers: vec![peer.clone()],
            ..std::mem::take(&mut opts.config.gateway.cec)
        };
        opts.config.reporting.cec_push = regulator::push_to(peer);
        Some(listener)
    } else {
        None
    };
    let mesh = EmbeddedMesh::start(opts).await?;
    let pki = mesh.pki.clone();
    let config = mesh.config.clone();
    let _regulator = match regulator_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let peer = std::sync::Arc::new(regulator::start_mock(
                listener,
                &pki.dir,
                regulator::DEMO_PLATFORM_ID,
                regulator::DEMO_CEC_SECRET,
                regulator::PREFIX,
            )?);
            println!(
                "demo regulator (T/CEC 102): pushed to at https://{addr}/evcs/v1/, pulls from \
                 https://{edge}/evcs/v1/ as {id} with secret {secret}",
                edge = mesh.cec_addr.map(|a| a.to_string()).unwrap_or_default(),
                id = regulator::DEMO_REGULATOR_ID,
                secret = regulator::DEMO_CEC_SECRET,
            );
            Some((print_pushes(peer.clone()), peer))
        }
        None => None,
    };
    if seed_demo {
        let seeded = demo::seed(mesh.gateway_addr, &pki.files("operator"))
            .await
            .context("seeding the demo fleet")?;
        println!(
            "{}",
            if seeded {
                "demo fleet seeded"
            } else {
                "demo fleet already present"
            }
        );
        chargemesh::demo_people::seed_staff(mesh.gateway_addr, &pki.files("operator"))
            .await
            .context("registering the demo repair crew")?;
        demo::register_monitoring(mesh.gateway_addr, &pki.files("operator")).await?;
        // The demo stations report live telemetry, each as a whole station (REQ BASE-2).
        let sim = chargemesh::sim::SimOptions {
            gateway: mesh.gateway_addr,
            pki: pki.clone(),
            trust_domain: config.trust_domain.clone(),
            mode: chargemesh::sim::Mode::Station,
            stations: vec![pki::DEMO_STATION_ID.into(), "SX-KQ-002".into()],
            piles_per_station: 0,
            create: false,
            tick: std::time::Duration::from_secs(2),
            seed: 11,
            ocpp: None,
            ykc: None,
            only_piles: Vec::new(),
        };
        let streams = chargemesh::sim::start(sim.clone())
            .await
            .context("starting the demo simulator")?;
        println!(
            "demo simulator: {} station streams reporting live status and meter values",
            streams.len()
        );
        // The OCPP station's charge points, on the gateway's OCPP edge (REQ BASE-2, single
        // pile): a 1.6J one on profile 3, a 2.0.1 one on profile 2.
        if let Some(edge) = mesh.ocpp_addr {
            use chargemesh::sim_ocpp::OcppVersion;
            let ocpp = [
                (demo::DEMO_OCPP16_PILE_ID, OcppVersion::V16, None),
                (
                    demo::DEMO_OCPP201_PILE_ID,
                    OcppVersion::V201,
                    Some(demo::DEMO_OCPP_PASSWORD.to_owned()),
                ),
            ];
            for (pile, version, password) in ocpp {
                chargemesh::sim::start(chargemesh::sim::SimOptions {
                    mode: chargemesh::sim::Mode::Pile,
                    stations: vec![demo::DEMO_OCPP_STATION_ID.into()],
                    only_piles: vec![pile.into()],
                    ocpp: Some(chargemesh::sim::OcppSim {
                        version,
                        edge,
                        password,
                    }),
                    ..sim.clone()
                })
                .await
                .context("starting the demo OCPP charge points")?;
            }
            println!(
                "demo OCPP charge points: {p16} (1.6J, pile certificate) and {p201} (2.0.1, \
                 HTTP Basic {p201}:{password}) at wss://{edge}/ocpp/",
                p16 = demo::DEMO_OCPP16_PILE_ID,
                p201 = demo::DEMO_OCPP201_PILE_ID,
                password = demo::DEMO_OCPP_PASSWORD,
            );
        }
        // The YKC pile of the same station, on the gateway's YKC edge.
        if let Some(edge) = mesh.ykc_addr {
            chargemesh::sim::start(chargemesh::sim::SimOptions {
                mode: chargemesh::sim::Mode::Pile,
                stations: vec![demo::DEMO_OCPP_STATION_ID.into()],
                only_piles: vec![demo::DEMO_YKC_PILE_ID.into()],
                ykc: Some(edge),
                ..sim.clone()
            })
            .await
            .context("starting the demo YKC pile")?;
            println!(
                "demo YKC pile: {pile} (pile code {code}) at tcp://{edge}",
                pile = demo::DEMO_YKC_PILE_ID,
                code = demo::DEMO_YKC_PILE_CODE,
            );
        }
    }
    // The console, with the development sign-in of the demo operator's people.
    let console_config = chargemesh::demo_people::console(
        if config.console.listen.trim().is_empty() {
            chargemesh::demo_people::DEMO_CONSOLE_LISTEN
        } else {
            &config.console.listen
        },
        mesh.gateway_addr,
        &pki,
    );
    let console_listener = chargemesh_kit::component::bind(&console_config.listen).await?;
    let console_addr = console_listener.local_addr()?;
    let (console_stop, console_stopped) = tokio::sync::oneshot::channel::<()>();
    let console = tokio::spawn(chargemesh_console::serve(
        console_listener,
        console_config,
        async move {
            let _ = console_stopped.await;
        },
    ));
    let addr = mesh.gateway_addr;
    let d = pki.dir.display();
    println!(
        "\nchargemesh is up: gateway on {addr} (mTLS, TLS 1.3; staff JWTs accepted)\n\
         OCPP 1.6J / 2.0.1 charge points: wss://{ocpp}/ocpp/{{chargePointId}} (pile certificates or HTTP Basic)\n\
         YKC 1.6 piles: tcp://{ykc}, TLS {ykc_tls} (pile codes registered in asset, from the operators' networks)\n\
         console: http://{console_addr}/ (development sign-in: pick a demo person and role)\n\
         data: {data}   pki: {d}\n\n\
         client identities (certificate + key, CA {d}/ca.pem):\n  \
         operator  {d}/operator.pem   {d}/operator.key   spiffe://{td}/operator/{op}\n  \
         station   {d}/station.pem    {d}/station.key\n  \
         pile      {d}/pile.pem       {d}/pile.key\n  \
         regulator {d}/regulator.pem  {d}/regulator.key  (area {area})\n\n\
         try:\n  grpcurl -cacert {d}/ca.pem -cert {d}/operator.pem -key {d}/operator.key \\\n    \
         -d '{{}}' {addr} chargemesh.asset.v1.AssetService/ListStations\n  \
         chargemesh token --pki {d} --operator {op} --role monitor\n\n\
         stop with ctrl-c",
        data = data_dir.display(),
        ocpp = mesh
            .ocpp_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "(off)".into()),
        ykc = mesh
            .ykc_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "(off)".into()),
        ykc_tls = mesh
            .ykc_tls_addr
            .map(|a| format!("tls://{a}"))
            .unwrap_or_else(|| "off".into()),
        td = config.trust_domain,
        op = pki::DEMO_OPERATOR_ID,
        area = pki::DEMO_REGULATOR_AREA,
    );
    let ran = mesh.run_until(terminated()).await;
    let _ = console_stop.send(());
    let _ = console.await;
    ran
}

async fn terminated() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
