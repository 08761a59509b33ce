//! Remote starts as YKC has them (`design/ykc.md` §4.2): accepted by the pile (0x33) is not
//! started; only charging under the start's serial (0x13) within the start window is.

use chargemesh_proto::metering::v1 as mt;
use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use chargemesh_ykc::Message;

use super::common::{TestMesh, eventually};
use super::{CODE, OP, PILE, YkcPile, edge, fleet_with};

/// Starts a session through metering's API; the pile's remote start and the command's id.
async fn remote_start(mesh: &TestMesh, pile: &mut YkcPile) -> (String, String) {
    let started = MeteringServiceClient::new(mesh.channel("operator"))
        .start_charge(mt::StartChargeRequest {
            operator_id: OP.into(),
            pile_id: PILE.into(),
            connector_id: format!("{PILE}-1"),
            authorization_ref: "1234".into(),
        })
        .await
        .expect("started")
        .into_inner();
    let serial = pile
        .expect("a remote start", |_, m| match m {
            Message::RemoteStart(start) => Some(start.serial.clone()),
            _ => None,
        })
        .await;
    (serial, started.command_id)
}

/// The command's state and detail once `done` holds.
async fn command(mesh: &TestMesh, command_id: &str, done: impl Fn(i32) -> bool) -> (i32, String) {
    let mut telemetry =
        TelemetryServiceClient::new(mesh.direct_channel("telemetry", &mesh.pki_files("metering")));
    eventually(
        async || {
            telemetry
                .get_pile_command(tm::GetPileCommandRequest {
                    operator_id: OP.into(),
                    command_id: command_id.into(),
                })
                .await
                .ok()
                .and_then(|r| r.into_inner().command)
                .map(|c| (c.state, c.detail))
                .unwrap_or_default()
        },
        |(state, _)| done(*state),
    )
    .await
}

async fn accept(pile: &mut YkcPile, serial: &str) {
    pile.send(&Message::RemoteStartReply {
        serial: serial.into(),
        pile: CODE.into(),
        gun: 1,
        result: 0x01,
        reason: 0x00,
    })
    .await;
}

#[tokio::test]
async fn a_remote_start_accepted_but_never_charging_fails_and_the_pile_is_told_to_stop() {
    let mesh = fleet_with(|ykc| ykc.start_window_s = 2).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
    pile.realtime(0x02, &"0".repeat(32), 0, 0).await;
    let (serial, command_id) = remote_start(&mesh, &mut pile).await;
    accept(&mut pile, &serial).await;
    pile.expect("a remote stop after the start window", |_, m| {
        matches!(m, Message::RemoteStop { gun: 1, .. }).then_some(())
    })
    .await;
    let (state, detail) = command(&mesh, &command_id, |s| {
        s != tm::PileCommandState::Sent as i32 && s != tm::PileCommandState::Queued as i32
    })
    .await;
    assert_eq!(state, tm::PileCommandState::Failed as i32, "{detail}");
    assert!(
        detail.contains(&serial) && detail.contains("2 s"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_remote_start_is_done_when_the_pile_charges_under_its_serial() {
    let mesh = fleet_with(|ykc| ykc.start_window_s = 30).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
    pile.realtime(0x02, &"0".repeat(32), 0, 0).await;
    let (serial, command_id) = remote_start(&mesh, &mut pile).await;
    accept(&mut pile, &serial).await;
    // Accepted by the pile is not yet started.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (state, _) = command(&mesh, &command_id, |_| true).await;
    assert_eq!(
        state,
        tm::PileCommandState::Sent as i32,
        "waits for the charging"
    );
    pile.realtime(0x03, &serial, 0, 0).await;
    let (state, detail) = command(&mesh, &command_id, |s| {
        s == tm::PileCommandState::Accepted as i32
    })
    .await;
    assert_eq!(state, tm::PileCommandState::Accepted as i32);
    assert!(detail.contains(&serial), "{detail}");
}
