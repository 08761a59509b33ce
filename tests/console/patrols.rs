//! Patrols from the console (REQ PATROL-1, PATROL-3): a patrol scheduled by the monitor, its
//! checklist completed by the repairer, a failed item registered as a defect.

use super::http::Browser;
use super::{MONITOR, REPAIRER, console, sign_in};

#[tokio::test]
async fn patrol_3_a_failed_checklist_item_becomes_a_defect() {
    let (_mesh, addr) = console().await;
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let page = monitor.get("/patrols").await;
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    let due = (chrono::Utc::now() + chrono::Duration::hours(4))
        .with_timezone(&china)
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let scheduled = monitor
        .post(
            "/patrols/new/schedule",
            &[
                ("csrf", &page.csrf()),
                ("station_id", "S-URB"),
                ("due", &due),
            ],
        )
        .await;
    assert_eq!(scheduled.status, 303, "{}", scheduled.body);

    let mut repairer = Browser::new(addr);
    assert_eq!(sign_in(&mut repairer, REPAIRER).await.status, 303);
    let page = repairer.get("/patrols").await;
    assert!(
        page.body.contains("S-URB") && page.body.contains("data-due="),
        "{}",
        page.body
    );
    let complete = page.action_ending("/complete");
    let items = page.body.matches("name=\"ok\"").count();
    assert!(items >= 2, "a checklist: {}", page.body);
    // Every item in order but the first, which fails as a general defect.
    let csrf = page.csrf();
    let mut fields = vec![("csrf", csrf.clone())];
    for i in 1..items {
        fields.push(("ok", i.to_string()));
    }
    fields.push(("class-0", "3".into()));
    fields.push(("plan-0", "monthly maintenance".into()));
    fields.push(("note-0", "canopy gutter blocked".into()));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let done = repairer.post(&complete, &fields).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        !repairer.get("/patrols").await.body.contains(&complete),
        "done"
    );
    let defects = monitor.get("/defects").await;
    assert!(defects.body.contains("一般缺陷"), "{}", defects.body);
}
