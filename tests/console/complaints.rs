//! The complaint desk (REQ CMP-1, CMP-2, CMP-4): a complaint taken down at the desk shows its
//! 24-hour clock in the queue and goes through its lifecycle from the console.

use super::http::Browser;
use super::{COMPLAINT_HANDLER, MONITOR, console, sign_in};

#[tokio::test]
async fn cmp_1_a_complaint_taken_at_the_desk_runs_its_24_hour_clock_and_its_lifecycle() {
    let (_mesh, addr) = console().await;
    let mut desk = Browser::new(addr);
    let signed = sign_in(&mut desk, COMPLAINT_HANDLER).await;
    assert_eq!(signed.status, 303);
    let home = desk.get("/").await;
    assert_eq!(
        home.header("location"),
        Some("/complaints"),
        "the desk's first screen"
    );

    // Taken down by phone (REQ CMP-2); a missing description is refused, the rest kept.
    let form = desk.get("/complaints/new").await;
    let csrf = form.csrf();
    let refused = desk
        .post(
            "/complaints/new",
            &[
                ("csrf", &csrf),
                ("category", "2"),
                ("station_id", "S-URB"),
                ("customer_contact", "138 0000 0000"),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("value=\"138 0000 0000\""),
        "the input is kept"
    );
    let taken = desk
        .post(
            "/complaints/new",
            &[
                ("csrf", &csrf),
                ("category", "2"),
                ("station_id", "S-URB"),
                ("pile_id", "P1"),
                ("customer_contact", "138 0000 0000"),
                ("description", "charged twice for one session"),
            ],
        )
        .await;
    assert_eq!(taken.status, 303, "{}", taken.body);
    let page_of = taken
        .header("location")
        .and_then(|l| l.strip_suffix("?saved=1"))
        .expect("the complaint's page")
        .to_owned();

    // REQ CMP-1: the queue shows it with its 24-hour response clock running.
    let queue = desk.get("/complaints").await;
    assert!(queue.body.contains("charged twice") || queue.body.contains(&page_of[12..]));
    assert!(queue.body.contains("data-due="), "{}", queue.body);
    assert!(queue.body.contains("23 h 59 min") || queue.body.contains("24 h 00 min"));

    // REQ CMP-4: acknowledge, investigate, promise, resolve, revisit, archive.
    let due = tomorrow();
    let steps: [(&str, Vec<(&str, &str)>); 6] = [
        ("acknowledge", vec![("reply", "We are looking into it.")]),
        (
            "investigate",
            vec![
                ("event", "the pile sent its record twice"),
                ("responsible_party", "operator"),
            ],
        ),
        (
            "promise",
            vec![
                ("handling", "refund the second charge"),
                ("reply", "Refunded within two days."),
                ("due", &due),
            ],
        ),
        ("resolve", vec![("record", "refunded 35.20 yuan")]),
        (
            "revisit",
            vec![("satisfaction", "5"), ("comment", "thanks")],
        ),
        ("archive", vec![]),
    ];
    for (step, fields) in steps {
        let page = desk.get(&page_of).await;
        assert!(
            page.body.contains(&format!("{page_of}/{step}")),
            "{step} offered: {}",
            page.body
        );
        let csrf = page.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(fields.iter().map(|(n, v)| (*n, *v)));
        let done = desk.post(&format!("{page_of}/{step}"), &all).await;
        assert_eq!(done.status, 303, "{step}: {}", done.body);
    }
    let archived = desk.get(&page_of).await;
    assert!(archived.body.contains("已归档") && archived.body.contains("5 / 5"));
    assert!(
        !archived.body.contains("class=\"step\""),
        "nothing left to do"
    );

    // A monitor may take complaints down but not handle them.
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let queue = monitor.get("/complaints").await;
    assert!(queue.body.contains("/complaints/new"));
}

/// Tomorrow 18:00 in Beijing time, as a `datetime-local` value.
fn tomorrow() -> String {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    let day = (chrono::Utc::now().with_timezone(&china) + chrono::Duration::days(1)).date_naive();
    format!("{day}T18:00")
}
