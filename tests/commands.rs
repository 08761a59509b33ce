//! Commands for piles end to end: a command goes out on the stream that reports for the pile,
//! is done when the pile answers (readable through the API), goes out again on a new stream
//! when the pile never answered it, and times out after its attempts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chargemesh::pki::{self, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::connect_response::Body as Answer;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use common::{TelemetryStream, TestMesh, eventually};

const OP: &str = DEMO_OPERATOR_ID;

async fn mesh() -> TestMesh {
    TestMesh::start_with_options(|opts| {
        let settings = &mut opts.config.telemetry.settings;
        settings.command_interval_ms = 50;
        settings.command_timeout_ms = 500;
        settings.command_attempts = 2;
        settings.offline_after_seconds = 24 * 3600;
    })
    .await
}

fn pile_principal(pile: &str) -> Principal {
    Principal::Pile {
        operator_id: OP.into(),
        station_id: "S-URB".into(),
        pile_id: pile.into(),
    }
}

/// Queues a start command for the pile's first connector, as metering would; its id.
async fn send(mesh: &TestMesh, pile: &str) -> String {
    let channel = mesh.direct_channel("telemetry", &mesh.pki_files("metering"));
    TelemetryServiceClient::new(channel)
        .send_pile_command(tm::SendPileCommandRequest {
            operator_id: OP.into(),
            command: Some(tm::PileCommand {
                pile_id: pile.into(),
                connector_id: format!("{pile}-1"),
                action: Some(tm::pile_command::Action::StartCharge(
                    tm::StartChargeCommand {
                        order_id: format!("{OP}{:018}", 7),
                        authorization_ref: "card-1".into(),
                    },
                )),
                ..Default::default()
            }),
        })
        .await
        .expect("queued")
        .into_inner()
        .command_id
}

async fn command_on(stream: &mut TelemetryStream) -> tm::PileCommand {
    loop {
        if let Answer::Command(command) = stream.next().await {
            return command;
        }
    }
}

async fn state(mesh: &TestMesh, command_id: &str) -> tm::PileCommandStatus {
    let token =
        pki::mint_token(mesh.pki(), "mo", Some(OP), &["monitor".to_owned()], 3600).expect("token");
    TelemetryServiceClient::new(mesh.anonymous_channel())
        .get_pile_command(common::with_token(
            tm::GetPileCommandRequest {
                operator_id: OP.into(),
                command_id: command_id.into(),
            },
            &token,
        ))
        .await
        .expect("readable by the operator's staff")
        .into_inner()
        .command
        .expect("command")
}

fn answer(sequence: u64, command_id: &str) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
        body: Some(tm::telemetry_message::Body::CommandResult(
            tm::CommandResult {
                command_id: command_id.into(),
                outcome: tm::CommandOutcome::Accepted as i32,
                detail: "Accepted".into(),
            },
        )),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_command_is_done_when_the_pile_answers_and_goes_out_again_if_it_never_did() {
    let mesh = mesh().await;
    common::two_station_fleet(&mesh).await;
    let identity = Arc::new(mesh.identity(&mesh.ca, &pile_principal("P1"), -1, 30));

    // The pile takes the command on its stream and drops off without answering.
    let mut first = TelemetryStream::open(mesh.channel_with(&identity)).await;
    let command_id = send(&mesh, "P1").await;
    let sent = command_on(&mut first).await;
    assert_eq!(sent.command_id, command_id);
    assert_eq!(
        state(&mesh, &command_id).await.state,
        tm::PileCommandState::Sent as i32
    );
    drop(first);

    // Back on a new stream, it gets the same command again, and answers it.
    let mut second = TelemetryStream::open(mesh.channel_with(&identity)).await;
    let again = tokio::time::timeout(Duration::from_secs(10), command_on(&mut second))
        .await
        .expect("sent again after its timeout");
    assert_eq!(again.command_id, command_id, "the same command, by its id");
    second.send(vec![answer(1, &command_id)]).await;
    let done = eventually(
        async || state(&mesh, &command_id).await,
        |s| s.state == tm::PileCommandState::Accepted as i32,
    )
    .await;
    assert_eq!(done.attempts, 2);
    assert_eq!(done.detail, "Accepted");
    assert!(done.answer_time.is_some());

    // A command never answered times out after its attempts, and is not sent again.
    let unanswered = send(&mesh, "P1").await;
    let _ = command_on(&mut second).await;
    let _ = command_on(&mut second).await;
    let timed_out = eventually(
        async || state(&mesh, &unanswered).await,
        |s| s.state == tm::PileCommandState::TimedOut as i32,
    )
    .await;
    assert_eq!(timed_out.attempts, 2, "{timed_out:?}");
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_another_operator_cannot_read_a_command() {
    let mesh = mesh().await;
    common::two_station_fleet(&mesh).await;
    let command_id = send(&mesh, "P1").await;
    let outsider = pki::mint_token(
        mesh.pki(),
        "x",
        Some("MA2BCDEF3"),
        &["monitor".to_owned()],
        3600,
    )
    .expect("token");
    let refused = TelemetryServiceClient::new(mesh.anonymous_channel())
        .get_pile_command(common::with_token(
            tm::GetPileCommandRequest {
                operator_id: OP.into(),
                command_id,
            },
            &outsider,
        ))
        .await
        .expect_err("hidden");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    mesh.stop().await;
}
