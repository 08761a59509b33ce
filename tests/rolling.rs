//! A rolling update of the gateway with piles connected: a gateway process (the real binary)
//! gets SIGTERM while six piles stream status reports through it. It tells every pile to
//! reconnect, drains and exits; a new gateway takes its place; every pile reconnects over its
//! link (jittered backoff, resending what was not acknowledged), and every report appears in
//! the status history exactly once, in order — nothing acknowledged is lost, nothing doubled.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chargemesh::demo;
use chargemesh::pki::DEMO_OPERATOR_ID;
use chargemesh_kit::Principal;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::reporting::v1 as rp;
use chargemesh_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use common::piles::{pile, state_of};
use common::processes::free_port;
use common::{TD, TestMesh};

const OP: &str = DEMO_OPERATOR_ID;
const PILES: [&str; 6] = ["P1", "P3", "P4", "P5", "P6", "P7"];

fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// A gateway process of the real binary, in front of the test mesh's services.
struct GatewayProcess {
    child: Child,
    admin: u16,
    log: PathBuf,
}

impl GatewayProcess {
    fn start(mesh: &TestMesh, port: u16, name: &str) -> Self {
        let files = mesh.pki_files("gateway");
        let running = mesh.mesh.as_ref().expect("running");
        let admin = free_port();
        let upstream = |c: &str| format!("https://127.0.0.1:{}", running.addrs[c].port());
        let config = format!(
            "trust_domain = \"{TD}\"\nlog_format = \"json\"\nshutdown_grace_s = 5\n\n\
             [gateway]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             tls = {{ cert_file = {}, key_file = {}, ca_file = {} }}\n\
             upstreams = {{ asset = \"{}\", telemetry = \"{}\" }}\n",
            toml_path(&files.cert_file),
            toml_path(&files.key_file),
            toml_path(&files.ca_file),
            upstream("asset"),
            upstream("telemetry"),
        );
        let path = mesh.dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).expect("gateway config");
        let log = mesh.dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_chargemesh"))
            .args(["serve", "--role", "gateway"])
            .env("CHARGEMESH_CONFIG", &path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the gateway starts");
        Self { child, admin, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its health (the admin port Kubernetes probes) says SERVING.
    async fn ready(&self) {
        let url = format!("http://127.0.0.1:{}", self.admin);
        for _ in 0..200 {
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone())
                .expect("url")
                .connect()
                .await
            {
                let answer = tonic_health::pb::health_client::HealthClient::new(channel)
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await;
                if answer.is_ok_and(|a| a.into_inner().status == 1) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway never became ready:\n{}", self.log());
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
    }

    /// Waits for the process to exit by itself; its exit status.
    async fn exited(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        panic!("the gateway did not exit after SIGTERM:\n{}", self.log());
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_gateway_with_connected_piles_loses_no_acknowledged_report() {
    let mesh = TestMesh::start_with_options(|opts| {
        opts.config.telemetry.settings.offline_after_seconds = 24 * 3600;
    })
    .await;
    common::two_station_fleet(&mesh).await;
    let mut operator = mesh.client("operator");
    for pile_id in &PILES[1..] {
        operator
            .create_pile(asset::CreatePileRequest {
                pile: Some(demo::pile(OP, "S-URB", pile_id, asset::PileType::Ac, 7.0)),
            })
            .await
            .expect("pile");
    }

    let port = free_port();
    let mut first = GatewayProcess::start(&mesh, port, "gateway-1");
    first.ready().await;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut piles = Vec::new();
    for (i, pile_id) in PILES.iter().enumerate() {
        let files = mesh.identity(
            &mesh.ca,
            &Principal::Pile {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                pile_id: (*pile_id).into(),
            },
            -1,
            30,
        );
        let (seen, task) = pile(
            pile_id,
            files,
            port,
            7919 * (i as u64 + 1),
            stopping.clone(),
        );
        piles.push((*pile_id, seen, task));
    }
    let acked = |n: usize| {
        let piles: Vec<_> = piles.iter().map(|(_, s, _)| s.clone()).collect();
        move || {
            piles
                .iter()
                .all(|s| s.lock().expect("seen").acknowledged.len() >= n)
        }
    };
    until("every pile reports through the first gateway", acked(5)).await;

    // A rolling update: SIGTERM. The gateway tells its piles to reconnect, drains and exits.
    first.terminate();
    let status = first.exited().await;
    assert!(status.success(), "{status}:\n{}", first.log());
    let log = first.log();
    assert!(log.contains("gateway draining"), "{log}");
    for (pile_id, seen, _) in &piles {
        let seen = seen.lock().expect("seen");
        assert!(
            seen.drops.iter().any(|(code, reason)| {
                *code == Some(tonic::Code::Unavailable)
                    && reason == chargemesh_gateway::drain::DRAINING
            }),
            "{pile_id} was told to reconnect: {:?}",
            seen.drops
        );
    }

    // Its replacement comes up on the same address; every pile reconnects and goes on.
    let mut second = GatewayProcess::start(&mesh, port, "gateway-2");
    second.ready().await;
    let before: Vec<usize> = piles
        .iter()
        .map(|(_, s, _)| s.lock().expect("seen").acknowledged.len())
        .collect();
    until(
        "every pile reconnects and reports through the new gateway",
        || {
            piles.iter().zip(&before).all(|((_, s, _), n)| {
                let seen = s.lock().expect("seen");
                seen.sessions >= 2 && seen.acknowledged.len() >= n + 5
            })
        },
    )
    .await;
    stop.send_replace(true);
    for (pile_id, _, task) in &mut piles {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap_or_else(|_| panic!("{pile_id} never had everything acknowledged"))
            .expect("pile task");
    }

    // Every report once, in order: the history holds exactly what each pile sent.
    let mut reporting = ReportingServiceClient::new(mesh.channel("operator"));
    let expected: BTreeMap<&str, Vec<i32>> = piles
        .iter()
        .map(|(pile_id, seen, _)| {
            let seen = seen.lock().expect("seen");
            let states = seen.sent.iter().map(|s| state_of(*s) as i32).collect();
            (*pile_id, states)
        })
        .collect();
    let cec = |state: i32| {
        if state == tm::ConnectorState::Idle as i32 {
            1
        } else {
            2
        }
    };
    let total: usize = expected.values().map(Vec::len).sum();
    let history = common::eventually(
        async || {
            let mut by_pile: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            let mut page_token = String::new();
            loop {
                let page = reporting
                    .list_status_history(rp::ListStatusHistoryRequest {
                        operator_id: OP.into(),
                        station_id: "S-URB".into(),
                        page_size: 1000,
                        page_token: page_token.clone(),
                        ..Default::default()
                    })
                    .await
                    .expect("history")
                    .into_inner();
                for change in page.changes {
                    let status = change.status.expect("status");
                    by_pile
                        .entry(status.pile_id)
                        .or_default()
                        .push(status.cec_status);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            by_pile
        },
        |h| h.values().map(Vec::len).sum::<usize>() >= total,
    )
    .await;
    for (pile_id, states) in &expected {
        let want: Vec<i32> = states.iter().map(|s| cec(*s)).collect();
        assert_eq!(
            history.get(*pile_id),
            Some(&want),
            "{pile_id}: every report once and in order"
        );
    }
    for (pile_id, seen, _) in &piles {
        let seen = seen.lock().expect("seen");
        assert_eq!(seen.sent.len(), seen.acknowledged.len(), "{pile_id}");
    }

    second.terminate();
    assert!(second.exited().await.success());
    mesh.stop().await;
}
