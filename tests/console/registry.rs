//! The registry screens (REQ BASE-1, BASE-5): stations with their stage and next step, a
//! station's piles with their verification certificates, the missing or expired marked.

use chargemesh::demo;
use chargemesh_proto::asset::v1 as asset;

use super::http::Browser;
use super::{MONITOR, OP, console, sign_in};

#[tokio::test]
async fn base_5_a_pile_without_a_valid_verification_is_marked_on_its_station_s_page() {
    let (mesh, addr) = console().await;
    // S-OUT's pile is verified today, for a year; S-URB's P1 has no certificate.
    let today = chrono::Utc::now().date_naive();
    mesh.client("operator")
        .create_metrology_certificate(asset::CreateMetrologyCertificateRequest {
            certificate: Some(demo::certificate(
                OP,
                "P2",
                asset::VerificationProcedure::Jjg1149,
                "ZJSX-TEST-0002",
                today,
            )),
        })
        .await
        .expect("certificate");
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let stations = monitor.get("/registry").await;
    assert_eq!(stations.status, 200);
    assert!(stations.body.contains("S-URB") && stations.body.contains("已登记"));
    assert!(
        stations.body.contains("验收（NB/T 33004 验收报告）"),
        "{}",
        stations.body
    );

    let urban = monitor.get("/registry/S-URB").await;
    assert!(
        urban.body.contains("P1") && urban.body.contains("已过期，不得结算"),
        "{}",
        urban.body
    );
    let outlying = monitor.get("/registry/S-OUT").await;
    assert!(
        outlying.body.contains("ZJSX-TEST-0002"),
        "{}",
        outlying.body
    );
    assert!(!outlying.body.contains("已过期"), "{}", outlying.body);
    assert!(
        outlying.body.contains("/s/MA2D3K7Q0/S-OUT"),
        "its public page is a link away"
    );
}
