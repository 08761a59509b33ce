//! Maintenance plans from the console (REQ MAINT-1, MAINT-3): drafted by the repairer with its
//! items, approved by the O&M manager, an item carried out and recorded.

use super::http::Browser;
use super::{REPAIRER, console, sign_in};

const MANAGER: &str = "4:om_manager";

#[tokio::test]
async fn maint_1_a_plan_is_drafted_approved_and_carried_out_item_by_item() {
    let (_mesh, addr) = console().await;
    let mut repairer = Browser::new(addr);
    assert_eq!(sign_in(&mut repairer, REPAIRER).await.status, 303);
    let page = repairer.get("/plans").await;
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let drafted = repairer
        .post(
            "/plans/new/draft",
            &[
                ("csrf", &page.csrf()),
                ("station_id", "S-URB"),
                ("title", "monthly upkeep"),
                ("period", &month),
                ("items", "metering"),
                ("items", "cleaning"),
            ],
        )
        .await;
    assert_eq!(drafted.status, 303, "{}", drafted.body);
    let page = repairer.get("/plans").await;
    assert!(page.body.contains("monthly upkeep") && page.body.contains("待审批"));
    assert!(
        !page.body.contains("/approve\""),
        "the repairer does not approve"
    );

    let mut manager = Browser::new(addr);
    assert_eq!(sign_in(&mut manager, MANAGER).await.status, 303);
    let page = manager.get("/plans").await;
    let approve = page.action_ending("/approve");
    let approved = manager.post(&approve, &[("csrf", &page.csrf())]).await;
    assert_eq!(approved.status, 303, "{}", approved.body);

    let page = repairer.get("/plans").await;
    let complete = page.action_ending("/complete");
    let done = repairer
        .post(
            &complete,
            &[
                ("csrf", &page.csrf()),
                ("item", "cleaning"),
                ("record", "canopy and guns cleaned"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let page = repairer.get("/plans").await;
    assert!(
        page.body.contains("canopy and guns cleaned"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<option value=\"metering\">"),
        "metering still to do"
    );
}
