//! Exemptions from the console (REQ MON-9): the monitor declares one with its evidence, the
//! O&M manager approves it.

use super::http::Browser;
use super::{MONITOR, console_polling, sign_in};

const MANAGER: &str = "4:om_manager";

fn beijing(hours_ago: i64) -> String {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    (chrono::Utc::now() - chrono::Duration::hours(hours_ago))
        .with_timezone(&china)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

#[tokio::test]
async fn mon_9_the_monitor_declares_an_exemption_and_the_manager_approves_it() {
    let (_mesh, addr) = console_polling().await;
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let page = monitor.get("/exemptions").await;
    let csrf = page.csrf();
    let (start, end) = (beijing(5), beijing(2));
    // No evidence: refused, the input kept.
    let refused = monitor
        .post(
            "/exemptions/new/declare",
            &[
                ("csrf", &csrf),
                ("stations", "S-URB"),
                ("start", &start),
                ("end", &end),
                ("cause", "3"),
                ("evidence", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains(&format!("value=\"{start}\"")),
        "the input is kept"
    );
    // Reporting learns of new stations from the registry's events: asked again until it has.
    let declared = super::common::eventually(
        async || {
            monitor
                .post(
                    "/exemptions/new/declare",
                    &[
                        ("csrf", &csrf),
                        ("stations", "S-URB\nS-OUT"),
                        ("start", &start),
                        ("end", &end),
                        ("cause", "3"),
                        ("evidence", "气象台暴雨红色预警 2026-12"),
                    ],
                )
                .await
        },
        |page| page.status != 422 || !page.body.contains("not one of the operator's"),
    )
    .await;
    assert_eq!(declared.status, 303, "{}", declared.body);
    let listed = monitor.get("/exemptions").await;
    assert!(
        listed.body.contains("恶劣天气") && listed.body.contains("待审批"),
        "{}",
        listed.body
    );
    assert!(
        !listed.body.contains("/decide"),
        "the monitor does not decide"
    );

    let mut manager = Browser::new(addr);
    assert_eq!(sign_in(&mut manager, MANAGER).await.status, 303);
    let page = manager.get("/exemptions").await;
    let decide = page.action_ending("/decide");
    let decided = manager
        .post(
            &decide,
            &[
                ("csrf", &page.csrf()),
                ("approve", "true"),
                ("note", "warning on file"),
            ],
        )
        .await;
    assert_eq!(decided.status, 303, "{}", decided.body);
    assert!(manager.get("/exemptions").await.body.contains("已批准"));
}
