//! Reporting keeps the status history once and in order across a restart (REQ REC-2).

use super::*;

async fn history(
    client: &mut chargemesh_proto::reporting::v1::reporting_service_client::ReportingServiceClient<
        tonic::transport::Channel,
    >,
    station: &str,
    want: usize,
) -> Vec<i32> {
    eventually(
        async || {
            client
                .list_status_history(chargemesh_proto::reporting::v1::ListStatusHistoryRequest {
                    operator_id: OP.into(),
                    station_id: station.into(),
                    ..Default::default()
                })
                .await
                .expect("history")
                .into_inner()
                .changes
                .iter()
                .map(|c| c.status.as_ref().map_or(-1, |s| s.cec_status))
                .collect::<Vec<i32>>()
        },
        |codes| codes.len() >= want,
    )
    .await
}

#[tokio::test]
async fn reporting_keeps_the_status_history_once_and_in_order_across_a_restart() {
    use chargemesh_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
    let mut mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    let states = [
        tm::ConnectorState::Idle,
        tm::ConnectorState::Charging,
        tm::ConnectorState::Idle,
    ];
    let batch: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            status_at(
                i as u64 + 1,
                "P1",
                *s,
                t0 + chrono::Duration::seconds(i as i64),
            )
        })
        .collect();
    platform.send(batch).await;
    acknowledged(&mut platform, 1..=3).await;
    platform
        .send(vec![status_at(4, "PSH", tm::ConnectorState::Idle, t0)])
        .await;
    acknowledged(&mut platform, [4]).await;

    let mut regulator = ReportingServiceClient::new(mesh.channel("regulator"));
    assert_eq!(history(&mut regulator, "S1", 3).await, [1, 3, 1]);
    let mut shanghai = ReportingServiceClient::new(mesh.channel_as(&Principal::Regulator {
        area_code: "310000".into(),
    }));
    assert!(
        history(&mut shanghai, "S1", 0).await.is_empty(),
        "another area's regulator sees nothing"
    );
    // Not even through paging: a page of one is empty and ends there, as for a station that
    // has no history, and names no position in the log.
    let paged = shanghai
        .list_status_history(chargemesh_proto::reporting::v1::ListStatusHistoryRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert!(paged.changes.is_empty());
    assert_eq!(paged.next_page_token, "", "the token reveals nothing");
    assert_eq!(history(&mut shanghai, "SH", 1).await, [1]);
    drop(platform);

    // Both sides restart; the follower resumes from its last change, without a double.
    mesh.restart().await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status_at(
            5,
            "P1",
            tm::ConnectorState::Fault,
            t0 + chrono::Duration::seconds(10),
        )])
        .await;
    acknowledged(&mut platform, [5]).await;
    let mut operator = ReportingServiceClient::new(mesh.channel("operator"));
    assert_eq!(history(&mut operator, "S1", 4).await, [1, 3, 1, 255]);
    let window = operator
        .list_status_history(chargemesh_proto::reporting::v1::ListStatusHistoryRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
            start_time: at(t0 + chrono::Duration::seconds(1)),
            end_time: at(t0 + chrono::Duration::seconds(5)),
            ..Default::default()
        })
        .await
        .expect("a period")
        .into_inner();
    let codes: Vec<i32> = window
        .changes
        .iter()
        .map(|c| c.status.as_ref().map_or(-1, |s| s.cec_status))
        .collect();
    assert_eq!(codes, [3, 1], "only the changes inside the period");
    mesh.stop().await;
}
