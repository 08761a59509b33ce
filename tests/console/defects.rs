//! Defects from the console (REQ DEF-2, DEF-3, DEF-4): registered with their plans, on their
//! deadlines, eliminated by the repairer and accepted by the station master.

use super::http::Browser;
use super::{MONITOR, REPAIRER, console, sign_in};

const STATION_MASTER: &str = "2:station_master";

#[tokio::test]
async fn def_3_a_critical_defect_runs_its_deadline_until_eliminated_and_accepted() {
    let (_mesh, addr) = console().await;
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let page = monitor.get("/defects").await;
    let csrf = page.csrf();
    // REQ DEF-2: a critical defect needs its elimination plan; the refusal keeps the input.
    let refused = monitor
        .post(
            "/defects/new",
            &[
                ("csrf", &csrf),
                ("station_id", "S-URB"),
                ("pile_id", "P1"),
                ("class", "1"),
                (
                    "description",
                    "cabinet door lock broken, live parts exposed",
                ),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("DEF-2"), "{}", refused.body);
    assert!(
        refused.body.contains("live parts exposed"),
        "the input is kept"
    );
    let registered = monitor
        .post(
            "/defects/new",
            &[
                ("csrf", &csrf),
                ("station_id", "S-URB"),
                ("pile_id", "P1"),
                ("class", "1"),
                (
                    "description",
                    "cabinet door lock broken, live parts exposed",
                ),
                ("elimination_plan", "fence off, replace the lock today"),
            ],
        )
        .await;
    assert_eq!(registered.status, 303, "{}", registered.body);
    let list = monitor.get("/defects?saved=1").await;
    assert!(
        list.body.contains("危急缺陷") && list.body.contains("data-due="),
        "{}",
        list.body
    );

    // The repairer eliminates it; the station master accepts.
    let mut repairer = Browser::new(addr);
    assert_eq!(sign_in(&mut repairer, REPAIRER).await.status, 303);
    let page = repairer.get("/defects").await;
    let eliminate = page.action_ending("/eliminate");
    let done = repairer
        .post(
            &eliminate,
            &[("csrf", &page.csrf()), ("record", "lock replaced")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let mut master = Browser::new(addr);
    assert_eq!(sign_in(&mut master, STATION_MASTER).await.status, 303);
    let page = master.get("/defects").await;
    assert!(page.body.contains("已消除待验收") && page.body.contains("lock replaced"));
    let accept = eliminate.replace("/eliminate", "/accept");
    let accepted = master
        .post(&accept, &[("csrf", &page.csrf()), ("passed", "true")])
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert!(
        !master
            .get("/defects")
            .await
            .body
            .contains("live parts exposed"),
        "closed"
    );
}
