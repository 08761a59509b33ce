//! The benchmarks' load from several client processes: one process may hold 20,000 open files
//! here, so a fleet of 100,000 piles is driven by several `chargemesh bench worker` processes,
//! each a slice of the piles from a loopback source address of its own. The parent writes each
//! worker a spec, reads its progress as JSON lines on stdout (every quarter second), tells it
//! when the steady state begins or when to stop on stdin, and sums what they report.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use super::fleet::{FleetOptions, Run, identities};

/// What a worker's piles do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Mode {
    /// `bench fleet`'s realistic mix until the run ends.
    Fleet(FleetOptions),
    /// `bench storm`'s status every `every_s`, resent until acknowledged, reconnecting (with
    /// a full handshake each time unless `resume`).
    Storm { every_s: f64, resume: bool },
}

/// One worker's share of the fleet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Spec {
    pub mode: Mode,
    pub pki_dir: PathBuf,
    /// Its piles: `first..first + count` of the fleet.
    pub first: usize,
    pub count: usize,
    /// Pile `i` connects to `gateways[i % len]` (or the OCPP edges likewise).
    pub gateways: Vec<SocketAddr>,
    pub ocpp_edges: Vec<SocketAddr>,
    pub source: Option<IpAddr>,
    /// Where a storm worker writes what each pile had acknowledged.
    pub out: PathBuf,
}

/// Counters of a worker, or of all of them summed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(super) struct Progress {
    /// Piles connected (and acknowledged) at least once.
    pub connected: u64,
    /// Connections that broke after they had been acknowledged.
    pub broken: u64,
    /// Piles connected and acknowledged again after their connection broke.
    pub back: u64,
    pub acked: u64,
    /// Piles that ended with an error.
    pub failed: u64,
    /// TLS handshakes the piles completed, full and resumed from a session ticket.
    #[serde(default)]
    pub handshakes: Handshakes,
}

/// TLS handshakes completed by the piles of a process (see [`super::net::tls`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Handshakes {
    pub full: u64,
    pub resumed: u64,
    /// Attempts whose handshake did not complete (shed for want of a turn, refused, closed).
    pub failed: u64,
}

impl std::ops::Add for Handshakes {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            full: self.full + o.full,
            resumed: self.resumed + o.resumed,
            failed: self.failed + o.failed,
        }
    }
}

impl std::ops::Sub for Handshakes {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            full: self.full.saturating_sub(o.full),
            resumed: self.resumed.saturating_sub(o.resumed),
            failed: self.failed.saturating_sub(o.failed),
        }
    }
}

impl std::ops::Add for Progress {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            connected: self.connected + o.connected,
            broken: self.broken + o.broken,
            back: self.back + o.back,
            acked: self.acked + o.acked,
            failed: self.failed + o.failed,
            handshakes: self.handshakes + o.handshakes,
        }
    }
}

/// What a worker has at the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Done {
    /// The acknowledgements of the steady state, with when they came.
    pub acks: Vec<super::stretch::TimedAck>,
}

/// What every worker had at the end, together.
pub(super) struct Finished {
    pub total: Progress,
    /// Every worker's latencies, as one.
    pub done: Done,
    /// (Storm) what each pile had acknowledged.
    pub acked: Acked,
}

/// A line a worker prints.
#[derive(Debug, Serialize, Deserialize)]
enum Line {
    Progress(Progress),
    Done(Done),
}

/// What each pile had acknowledged, by pile id: (seconds, nanos) of each report's observation.
pub(super) type Acked = HashMap<String, Vec<(i64, i32)>>;

/// Runs one worker (`chargemesh bench worker SPEC`) until its piles end or it is told to stop.
pub async fn run(spec_file: &Path) -> anyhow::Result<()> {
    let spec: Spec = serde_json::from_slice(&std::fs::read(spec_file)?)?;
    let pki = crate::pki::PkiDir {
        dir: spec.pki_dir.clone(),
    };
    let resume = match &spec.mode {
        Mode::Storm { resume, .. } => *resume,
        Mode::Fleet(_) => true,
    };
    let configs = identities(&pki, spec.first, spec.count, resume)?;
    let run = Arc::new(Run::default());
    let failed = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let storm_acked: Arc<tokio::sync::Mutex<Acked>> = Arc::default();
    let mut piles = tokio::task::JoinSet::new();
    let until = Instant::now()
        + match &spec.mode {
            Mode::Fleet(opts) => Duration::from_secs(opts.seconds.max(1)),
            Mode::Storm { .. } => Duration::from_secs(24 * 3600),
        };
    for (offset, config) in configs.into_iter().enumerate() {
        let index = spec.first + offset;
        let source = spec.source;
        match &spec.mode {
            Mode::Fleet(opts) if opts.ocpp => {
                let edge = spec.ocpp_edges[index % spec.ocpp_edges.len()];
                let (opts, run) = (opts.clone(), run.clone());
                piles.spawn(super::fleet_ocpp::pile(
                    index, edge, source, config, opts, until, run,
                ));
            }
            Mode::Fleet(opts) => {
                let gateway = spec.gateways[index % spec.gateways.len()];
                let (opts, run) = (opts.clone(), run.clone());
                piles.spawn(super::fleet::pile(
                    index, gateway, source, config, opts, until, run,
                ));
            }
            Mode::Storm { every_s, .. } => {
                let gateway = spec.gateways[index % spec.gateways.len()];
                let pile = super::storm::Pile {
                    index,
                    gateway,
                    source,
                    config,
                    every: Duration::from_secs_f64(every_s.max(0.1)),
                };
                let (stop, run, acked) = (stop.clone(), run.clone(), storm_acked.clone());
                piles.spawn(async move {
                    let mine = pile.run(stop, &run).await;
                    acked.lock().await.insert(mine.0, mine.1);
                    Ok(())
                });
            }
        }
    }
    // The parent's word: `steady` when every pile of the fleet is connected, `stop` to end.
    {
        let (run, stop_tx) = (run.clone(), stop_tx.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match line.trim() {
                    "steady" => {
                        let _ = run.steady.set(chrono::Utc::now());
                    }
                    "stop" => {
                        let _ = stop_tx.send(true);
                    }
                    _ => {}
                }
            }
            // The parent went away: end.
            let _ = stop_tx.send(true);
        });
    }
    let progress = || Progress {
        connected: run.connected.load(Ordering::Relaxed),
        broken: run.broken.load(Ordering::Relaxed),
        back: run.back.load(Ordering::Relaxed),
        acked: run.tally.acked.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        handshakes: super::net::handshakes(),
    };
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    // A pile still waiting for an answer half a minute after the run's end is given up on (an
    // overloaded mesh may never answer it): the worker reports what it has.
    let give_up = tokio::time::sleep_until(tokio::time::Instant::from_std(
        until + Duration::from_secs(30),
    ));
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            () = &mut give_up => {
                let stuck = piles.len() as u64;
                if stuck > 0 {
                    eprintln!("bench worker: {stuck} piles still waiting for an answer 30 s after the end; given up");
                    failed.fetch_add(stuck, Ordering::Relaxed);
                }
                piles.abort_all();
                break;
            }
            done = piles.join_next() => match done {
                Some(Ok(Ok(()))) => {}
                Some(ended) => {
                    // The first few reasons, so a failing run says why.
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        match ended {
                            Ok(Err(e)) => eprintln!("bench worker: a pile ended: {e:#}"),
                            Err(e) => eprintln!("bench worker: a pile's task failed: {e}"),
                            Ok(Ok(())) => {}
                        }
                    }
                }
                None => break,
            },
            _ = ticks.tick() => say(&Line::Progress(progress()))?,
        }
    }
    say(&Line::Progress(progress()))?;
    if matches!(spec.mode, Mode::Storm { .. }) {
        let acked = storm_acked.lock().await;
        std::fs::write(&spec.out, serde_json::to_vec(&*acked)?)?;
    }
    let acks = std::mem::take(&mut *run.tally.acks.lock().await);
    say(&Line::Done(Done { acks }))?;
    Ok(())
}

fn say(line: &Line) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, line)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// The parent's side: the worker processes and what they last said.
pub(super) struct Clients {
    workers: Vec<Worker>,
    dir: PathBuf,
}

struct Worker {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    last: Arc<std::sync::Mutex<Progress>>,
    done: tokio::task::JoinHandle<anyhow::Result<Done>>,
    out: PathBuf,
}

/// Source address of worker `k`: 127.0.0.2, 127.0.0.3, ...
fn source(k: usize) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, (2 + k).min(254) as u8))
}

impl Clients {
    /// The worker processes' ids.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }

    /// Starts `clients` workers over `piles` piles, each its slice.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start(
        binary: &Path,
        mode: Mode,
        pki_dir: &Path,
        piles: usize,
        clients: usize,
        gateways: Vec<SocketAddr>,
        ocpp_edges: Vec<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let dir = super::temp_dir("clients");
        std::fs::create_dir_all(&dir)?;
        let clients = clients.clamp(1, piles.max(1));
        let share = piles.div_ceil(clients);
        let mut workers = Vec::new();
        for k in 0..clients {
            let first = k * share;
            let count = share.min(piles.saturating_sub(first));
            if count == 0 {
                break;
            }
            let spec = Spec {
                mode: mode.clone(),
                pki_dir: pki_dir.to_owned(),
                first,
                count,
                gateways: gateways.clone(),
                ocpp_edges: ocpp_edges.clone(),
                source: Some(source(k)),
                out: dir.join(format!("acked-{k}.json")),
            };
            let spec_file = dir.join(format!("worker-{k}.json"));
            std::fs::write(&spec_file, serde_json::to_vec(&spec)?)?;
            let mut child = tokio::process::Command::new(binary)
                .args(["bench", "worker"])
                .arg(&spec_file)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("starting a bench worker")?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let last = Arc::new(std::sync::Mutex::new(Progress::default()));
            let done = {
                let last = last.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stdout).lines();
                    while let Some(line) = lines.next_line().await? {
                        match serde_json::from_str::<Line>(&line) {
                            Ok(Line::Progress(p)) => {
                                if let Ok(mut last) = last.lock() {
                                    *last = p;
                                }
                            }
                            Ok(Line::Done(done)) => return Ok(done),
                            Err(_) => eprintln!("worker: {line}"),
                        }
                    }
                    anyhow::bail!("a bench worker ended without its figures")
                })
            };
            workers.push(Worker {
                child,
                stdin,
                last,
                done,
                out: spec.out,
            });
        }
        Ok(Self { workers, dir })
    }

    /// What every worker last said, summed.
    pub(super) fn progress(&self) -> Progress {
        self.workers
            .iter()
            .filter_map(|w| w.last.lock().ok().map(|p| *p))
            .fold(Progress::default(), |a, b| a + b)
    }

    /// Tells every worker `word` (`steady`, `stop`).
    pub(super) async fn tell(&mut self, word: &str) -> anyhow::Result<()> {
        for worker in &mut self.workers {
            worker
                .stdin
                .write_all(format!("{word}\n").as_bytes())
                .await?;
            worker.stdin.flush().await?;
        }
        Ok(())
    }

    /// Waits for every worker's figures: latencies (all, and the last stretch's), and (storm)
    /// what each pile had acknowledged.
    pub(super) async fn finish(self) -> anyhow::Result<Finished> {
        let mut all = Done::default();
        let mut acked = Acked::new();
        let mut total = Progress::default();
        for worker in self.workers {
            // Its end of the conversation: a worker whose stdin stays open cannot exit (the
            // read of it holds its runtime).
            let Worker {
                mut child,
                stdin,
                last,
                done,
                out,
            } = worker;
            drop(stdin);
            let done = done.await??;
            let _ = child.wait().await;
            total = total + last.lock().map(|p| *p).unwrap_or_default();
            all.acks.extend(done.acks);
            if let Ok(bytes) = std::fs::read(&out) {
                let theirs: Acked = serde_json::from_slice(&bytes)?;
                acked.extend(theirs);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(Finished {
            total,
            done: all,
            acked,
        })
    }
}

/// How many client processes a fleet of `piles` needs (each well under the open-file limit).
pub(super) fn clients_for(piles: usize) -> usize {
    piles.div_ceil(15_000).max(1)
}
