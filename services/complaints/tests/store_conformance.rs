//! The complaints store conformance suite: complaints under optimistic concurrency, clocks that
//! come due in order and fire once, breaches recorded once — on SQLite always and on PostgreSQL
//! when `CHARGEMESH_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use chargemesh_complaints::domain::action::{CorrectiveAction, Opening};
use chargemesh_complaints::domain::complaint::{Category, Channel, Complaint, Intake, Kind};
use chargemesh_complaints::domain::satisfaction::{Answer, Bucket, Source};
use chargemesh_complaints::store::{self, ActionFilter, ComplaintFilter, ComplaintStore};
use chargemesh_kit::db::{StoreError, TestDatabase};
use chargemesh_kit::paging::Keyset;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

async fn backends() -> Vec<(TestDatabase, Arc<dyn ComplaintStore>)> {
    let mut out = Vec::new();
    for db in TestDatabase::every("complaints").await.expect("backends") {
        let s = store::open(&db.database).await.expect("migrated");
        out.push((db, s));
    }
    out
}

fn complaint(operator: &str, id: &str) -> Complaint {
    Complaint::receive(
        id.into(),
        Intake {
            operator_id: operator.into(),
            kind: Kind::Complaint,
            channel: Channel::Phone,
            category: Category::Billing,
            customer_contact: "138".into(),
            station_id: Some("S1".into()),
            pile_id: None,
            description: "charged twice".into(),
            attachments: Vec::new(),
            charge_order_id: None,
        },
        "desk",
        t("2026-03-01T08:00:00Z"),
    )
    .expect("complaint")
}

#[tokio::test]
async fn complaints_are_kept_per_tenant_and_change_under_their_version() {
    for (db, s) in backends().await {
        let c = complaint("OPA", "CP-1");
        s.create(&c, &[("response".into(), c.response_due())])
            .await
            .expect("created");
        assert!(matches!(
            s.create(&c, &[]).await,
            Err(StoreError::Unique(_))
        ));
        let (mut got, version) = s
            .complaint("OPA", "CP-1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(got, c, "{}", db.backend());
        got.acknowledge("sorry", "h", t("2026-03-01T09:00:00Z"))
            .expect("ack");
        s.update(&got, version, &[], &[]).await.expect("updated");
        assert!(matches!(
            s.update(&got, version, &[], &[]).await,
            Err(StoreError::Conflict(_))
        ));
        let every = Keyset::first(500);
        let any = ComplaintFilter::default();
        assert_eq!(
            s.complaints("OPA", any, &every).await.expect("list").len(),
            1
        );
        assert!(
            s.complaints("OPB", any, &every)
                .await
                .expect("list")
                .is_empty()
        );
        assert!(s.complaint("OPB", "CP-1").await.expect("read").is_none());
    }
}

#[tokio::test]
async fn cmp_1_clocks_come_due_in_order_fire_once_and_record_one_breach() {
    for (db, s) in backends().await {
        let c = complaint("OPA", "CP-1");
        let promise_due = c.response_due() + Duration::hours(24);
        s.create(
            &c,
            &[
                ("promise:1".into(), promise_due),
                ("response".into(), c.response_due()),
            ],
        )
        .await
        .expect("created");
        assert!(
            s.due(t("2026-03-02T07:00:00Z"), 10)
                .await
                .expect("due")
                .is_empty()
        );
        let due = s.due(t("2026-03-04T00:00:00Z"), 10).await.expect("due");
        let kinds: Vec<&str> = due.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, ["response", "promise:1"], "{}", db.backend());
        let now = t("2026-03-04T00:00:00Z");
        assert!(
            s.fire(&due[0], Some(("CMP-1", 3600)), now)
                .await
                .expect("fired")
        );
        assert!(
            !s.fire(&due[0], Some(("CMP-1", 3600)), now)
                .await
                .expect("once")
        );
        let left = s.due(now, 10).await.expect("due");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].kind, "promise:1");
    }
}

fn answer(id: &str, station: &str, score: u8, at: &str) -> Answer {
    Answer {
        operator_id: "OPA".into(),
        answer_id: id.into(),
        source: Source::Survey,
        survey: "2026-Q1".into(),
        station_id: Some(station.to_owned()).filter(|s| !s.is_empty()),
        respondent: "138".into(),
        score,
        comment: String::new(),
        answered_at: t(at),
        recorded_by: "desk".into(),
    }
}

#[tokio::test]
async fn eval_2_answers_are_kept_once_and_tallied_per_month_station_and_kind() {
    for (db, s) in backends().await {
        let first = answer("SA-1", "S1", 5, "2026-03-10T00:00:00Z");
        assert_eq!(s.record_answer(&first).await.expect("kept"), first);
        // The same id again keeps the first.
        let again = answer("SA-1", "S1", 1, "2026-03-11T00:00:00Z");
        assert_eq!(s.record_answer(&again).await.expect("kept"), first);
        s.record_answer(&answer("SA-2", "S1", 2, "2026-03-31T15:00:00Z"))
            .await
            .expect("kept");
        // 16:00 UTC on the 31st is April in China.
        s.record_answer(&answer("SA-3", "", 4, "2026-03-31T16:00:00Z"))
            .await
            .expect("kept");
        // A revisit kept with its complaint's step.
        let c = complaint("OPA", "CP-1");
        s.create(&c, &[]).await.expect("created");
        let revisit = Answer {
            answer_id: "CP-1/revisit/1".into(),
            source: Source::Revisit,
            ..answer("", "S1", 4, "2026-03-20T00:00:00Z")
        };
        s.update(&c, 1, &[], &[revisit]).await.expect("updated");
        let mut tallies = s
            .tallies("OPA", "2026-03", "2026-04")
            .await
            .expect("tallies");
        tallies.sort_by_key(|t| {
            (
                t.month.clone(),
                t.station_id.clone(),
                format!("{:?}", t.bucket),
            )
        });
        let seen: Vec<_> = tallies
            .iter()
            .map(|t| {
                (
                    t.month.as_str(),
                    t.station_id.as_str(),
                    t.bucket,
                    t.count,
                    t.score_sum,
                    t.satisfied,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("2026-03", "S1", Bucket::Complaint, 1, 0, 0),
                ("2026-03", "S1", Bucket::Revisit, 1, 4, 1),
                ("2026-03", "S1", Bucket::Survey, 2, 7, 1),
                ("2026-04", "", Bucket::Survey, 1, 4, 1),
            ],
            "{}",
            db.backend()
        );
        assert!(
            s.tallies("OPB", "2026-01", "2026-12")
                .await
                .expect("tallies")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn eval_3_actions_are_found_by_complaint_change_under_their_version_and_their_clocks_come_due()
 {
    for (db, s) in backends().await {
        let c = complaint("OPA", "CP-1");
        s.create(&c, &[]).await.expect("created");
        let action = CorrectiveAction::open(
            "CA-1".into(),
            Opening {
                operator_id: "OPA".into(),
                complaints: vec![c],
                problem: "tariff board unclear".into(),
                plan: "new board".into(),
                owner: "Li".into(),
                due: t("2026-03-20T00:00:00Z"),
            },
            "mgr",
            t("2026-03-05T00:00:00Z"),
        )
        .expect("opened");
        s.create_action(&action, &[action.clock()])
            .await
            .expect("created");
        let (mut got, version) = s
            .action("OPA", "CA-1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(got, action, "{}", db.backend());
        let every = Keyset::first(500);
        let answering = |id| ActionFilter {
            complaint_id: Some(id),
            include_closed: true,
        };
        assert_eq!(
            s.actions("OPA", answering("CP-1"), &every)
                .await
                .expect("list")
                .len(),
            1
        );
        assert!(
            s.actions("OPA", answering("CP-9"), &every)
                .await
                .expect("list")
                .is_empty()
        );
        assert!(
            s.actions("OPB", ActionFilter::default(), &every)
                .await
                .expect("list")
                .is_empty()
        );
        got.implement("board replaced", "Li", t("2026-03-19T00:00:00Z"))
            .expect("implemented");
        s.update_action(&got, version, &[]).await.expect("updated");
        assert!(matches!(
            s.update_action(&got, version, &[]).await,
            Err(StoreError::Conflict(_))
        ));
        let due = s.due(t("2026-03-21T00:00:00Z"), 10).await.expect("due");
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].complaint_id.as_str(), due[0].kind.as_str()),
            ("CA-1", "action:1")
        );
    }
}

#[tokio::test]
async fn complaints_are_listed_newest_first_a_page_at_a_time_without_archived_ones() {
    for (db, s) in backends().await {
        // Five complaints received at one moment: pages break between equal times by id.
        for i in 0..5 {
            let mut c = complaint("OPA", &format!("CP-{i}"));
            if i == 3 {
                c.state = chargemesh_complaints::domain::complaint::State::Archived;
            }
            s.create(&c, &[]).await.expect("created");
        }
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = Keyset::from_request(2, &token).expect("page");
            let read = page.page(
                s.complaints("OPA", ComplaintFilter::default(), &page)
                    .await
                    .expect("page"),
            );
            assert!(read.items.len() <= 2);
            seen.extend(read.items.into_iter().map(|c| c.complaint_id));
            if read.next_page_token.is_empty() {
                break;
            }
            token = read.next_page_token;
        }
        assert_eq!(seen, ["CP-4", "CP-2", "CP-1", "CP-0"], "{}", db.backend());
        let with_archived = ComplaintFilter {
            station_id: Some("S1"),
            include_archived: true,
        };
        assert_eq!(
            s.complaints("OPA", with_archived, &Keyset::first(10))
                .await
                .expect("all")
                .len(),
            5
        );
    }
}
