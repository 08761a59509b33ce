//! The daily checks from the console (REQ MON-7, MON-8): the station's registered cameras and
//! links offered, a camera not recording found and turned into a defect, the day's check done.

use chargemesh_proto::dispatch::v1 as dp;

use super::http::Browser;
use super::{MONITOR, OP, console, sign_in};

#[tokio::test]
async fn mon_7_a_camera_not_recording_is_a_finding_of_the_daily_check() {
    let (mesh, addr) = console().await;
    dp::dispatch_service_client::DispatchServiceClient::new(mesh.channel("operator"))
        .register_monitoring_equipment(dp::RegisterMonitoringEquipmentRequest {
            operator_id: OP.into(),
            station_id: "S-URB".into(),
            cameras: vec![
                dp::Camera {
                    camera_id: "CAM-1".into(),
                    covers: vec!["P1".into()],
                },
                dp::Camera {
                    camera_id: "CAM-2".into(),
                    covers: vec!["bay 2".into()],
                },
            ],
            links: vec![dp::CommunicationLink {
                link_id: "ETH-1".into(),
                ..Default::default()
            }],
        })
        .await
        .expect("registered");
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let page = monitor.get("/checks").await;
    assert!(
        page.body.contains("CAM-1") && page.body.contains("ETH-1"),
        "{}",
        page.body
    );
    assert!(page.body.contains("action=\"/checks/S-URB\""));
    let recorded = monitor
        .post(
            "/checks/S-URB",
            &[
                ("csrf", &page.csrf()),
                ("aimed-0", "on"),
                ("live-0", "on"),
                ("recording-0", "on"),
                ("aimed-1", "on"),
                ("live-1", "on"),
                ("up-0", "on"),
            ],
        )
        .await;
    assert_eq!(recorded.status, 303, "{}", recorded.body);
    let after = monitor.get("/checks").await;
    assert!(
        after.body.contains("CAM-2"),
        "the finding names the camera: {}",
        after.body
    );
    assert!(
        !after.body.contains("action=\"/checks/S-URB\""),
        "done for today"
    );
    assert!(
        monitor.get("/defects").await.body.contains("CAM-2"),
        "a defect registered"
    );
}
