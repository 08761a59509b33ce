//! Tests of the v16 translation: every mapping and state rule.

use super::*;
use crate::translate::TokenVerdict;

const SETTINGS: Settings = Settings {
    heartbeat_interval_s: 300,
};

fn now() -> DateTime<Utc> {
    map::timestamp("2026-12-06T04:00:00Z").expect("time")
}

fn known() -> Known {
    Known {
        token: Some(TokenVerdict {
            status: translate::TokenStatus::Accepted,
            expiry: None,
            any_token: false,
        }),
        ledger: None,
        connectors: 4,
    }
}

fn call(action: &str, payload: Value, memory: &mut Memory) -> Result<Handled, CallError> {
    handle(action, &payload, memory, SETTINGS, &known(), now())
}

fn call_with(
    action: &str,
    payload: Value,
    memory: &mut Memory,
    known: &Known,
) -> Result<Handled, CallError> {
    handle(action, &payload, memory, SETTINGS, known, now())
}

#[test]
fn authorize_answers_the_token_lists_verdict_with_its_expiry() {
    let mut m = Memory::default();
    let mut k = known();
    k.token = Some(TokenVerdict {
        status: translate::TokenStatus::Blocked,
        expiry: None,
        any_token: false,
    });
    let h = call_with("Authorize", json!({"idTag": "CARD1"}), &mut m, &k).expect("answered");
    assert_eq!(h.reply["idTagInfo"]["status"], "Blocked");
    k.token = Some(TokenVerdict {
        status: translate::TokenStatus::Unknown,
        expiry: None,
        any_token: false,
    });
    let h = call_with("Authorize", json!({"idTag": "CARD2"}), &mut m, &k).expect("answered");
    assert_eq!(
        h.reply["idTagInfo"]["status"], "Invalid",
        "1.6 spells unknown Invalid"
    );
    k.token = Some(TokenVerdict {
        status: translate::TokenStatus::Accepted,
        expiry: map::timestamp("2027-01-01T00:00:00Z"),
        any_token: false,
    });
    let h = call_with("Authorize", json!({"idTag": "CARD3"}), &mut m, &k).expect("answered");
    assert_eq!(
        h.reply["idTagInfo"]["expiryDate"],
        "2027-01-01T00:00:00.000Z"
    );
    k.token = None;
    let e = call_with("Authorize", json!({"idTag": "CARD3"}), &mut m, &k).expect_err("no list");
    assert_eq!(e.code, ErrorCode::InternalError, "the charger retries");
}

#[test]
fn a_start_is_recorded_whatever_the_verdict_and_says_when_any_token_was_accepted() {
    let mut m = Memory::default();
    let mut k = known();
    k.token = Some(TokenVerdict {
        status: translate::TokenStatus::Accepted,
        expiry: None,
        any_token: true,
    });
    let start = json!({"connectorId": 1, "idTag": "ANY", "meterStart": 0, "timestamp": "2026-12-06T03:00:00Z"});
    let h = call_with("StartTransaction", start.clone(), &mut m, &k).expect("answered");
    let Body::SessionStart(s) = &h.reports[0].body else {
        panic!("a start")
    };
    assert!(s.any_token);
    k.token = Some(TokenVerdict {
        status: translate::TokenStatus::Blocked,
        expiry: None,
        any_token: false,
    });
    let h = call_with("StartTransaction", start, &mut m, &k).expect("answered");
    assert_eq!(h.reports.len(), 1, "recorded");
    assert_eq!(
        h.reply["idTagInfo"]["status"], "Blocked",
        "the charger stops it"
    );
}

#[test]
fn maint_4_a_boot_that_differs_from_the_ledger_is_recorded() {
    let mut m = Memory::default();
    let mut k = known();
    k.ledger = Some(translate::Ledger {
        vendor: "Acme".into(),
        model: "X1".into(),
        serial: "SN1".into(),
    });
    let same = json!({"chargePointVendor": " acme", "chargePointModel": "X1", "chargePointSerialNumber": "SN1"});
    let h = call_with("BootNotification", same, &mut m, &k).expect("answered");
    assert_eq!(h.reports.len(), 2, "alive and the boot, nothing more");
    let other = json!({"chargePointVendor": "Acme", "chargePointModel": "X2", "chargePointSerialNumber": "SN9"});
    let h = call_with("BootNotification", other, &mut m, &k).expect("answered");
    let Body::Alarm(alarm) = &h.reports[2].body else {
        panic!("a recorded difference")
    };
    assert_eq!(alarm.code, "LedgerMismatch");
    assert!(
        alarm.text.contains("model \"X2\" (ledger \"X1\")"),
        "{}",
        alarm.text
    );
    assert!(alarm.text.contains("serial \"SN9\""), "{}", alarm.text);
    assert!(alarm.text.starts_with("MAINT-4"));
}

#[test]
fn mon_9_a_stop_naming_no_connector_of_the_pile_is_kept_as_an_abnormal_record() {
    let mut m = Memory::default();
    // Connector bits 5 on a four-connector pile: not a transaction of this platform.
    let stop = json!({"transactionId": (77 << 7) | 5, "meterStop": 1000, "timestamp": "2026-12-06T03:00:00Z"});
    let h = call("StopTransaction", stop, &mut m).expect("answered, not a CALLERROR");
    let Body::Alarm(alarm) = &h.reports[0].body else {
        panic!("an abnormal record")
    };
    assert_eq!(alarm.code, "UnknownTransaction");
    let ours = json!({"transactionId": (77 << 7) | 2, "meterStop": 1000, "timestamp": "2026-12-06T03:00:00Z"});
    let h = call("StopTransaction", ours, &mut m).expect("answered");
    assert!(
        matches!(h.reports[0].body, Body::SessionEnd(_)),
        "a session end for metering, which keeps a start-less one as abnormal"
    );
}

#[test]
fn base_2_a_boot_is_accepted_with_the_interval_once_durable_and_rejected_if_refused() {
    let h = call(
        "BootNotification",
        json!({"chargePointVendor": "V", "chargePointModel": "M"}),
        &mut Memory::default(),
    )
    .expect("boot");
    assert_eq!(h.reply["status"], "Accepted");
    assert_eq!(h.reply["interval"], 300);
    assert_eq!(
        h.refused.as_ref().map(|r| r["status"].clone()),
        Some(json!("Rejected"))
    );
    assert!(matches!(h.reports[0].body, Body::Heartbeat(_)));
}

#[test]
fn mon_1_status_of_a_connector_is_its_state_and_connector_0_is_the_pile() {
    let mut m = Memory::default();
    let h = call(
        "StatusNotification",
        json!({"connectorId": 2, "errorCode": "GroundFailure", "status": "Faulted",
               "timestamp": "2026-12-06T03:59:00Z", "info": "leak"}),
        &mut m,
    )
    .expect("status");
    assert_eq!(h.reports[0].target, Target::Connector(2));
    let Body::Status(s) = &h.reports[0].body else {
        panic!("a status")
    };
    assert_eq!(s.state, pb::ConnectorState::Fault as i32);
    assert_eq!(s.fault_code, "GroundFailure");
    let pile = call(
        "StatusNotification",
        json!({"connectorId": 0, "errorCode": "NoError", "status": "Available"}),
        &mut m,
    )
    .expect("status");
    assert_eq!(pile.reports[0].target, Target::Pile);
    assert!(matches!(pile.reports[0].body, Body::Heartbeat(_)));
}

#[test]
fn settle_1_a_retried_start_gets_the_same_transaction_and_the_stop_finds_its_connector() {
    let start = json!({"connectorId": 3, "idTag": "CARD1", "meterStart": 1000,
                       "timestamp": "2026-12-06T03:00:00Z"});
    let first = call("StartTransaction", start.clone(), &mut Memory::default()).expect("start");
    let again = call("StartTransaction", start, &mut Memory::default()).expect("again");
    let id = first.reply["transactionId"].as_i64().expect("an id");
    assert_eq!(again.reply["transactionId"].as_i64(), Some(id));
    assert_eq!(first.reports, again.reports, "the same report, stored once");
    assert_eq!(transaction_connector(id), 3);
    let Body::SessionStart(s) = &first.reports[0].body else {
        panic!("a start")
    };
    assert_eq!(s.meter_start_kwh, "1.000");

    let stop = json!({"transactionId": id, "meterStop": 13500,
                      "timestamp": "2026-12-06T04:00:00Z", "reason": "EVDisconnected"});
    let ended = call("StopTransaction", stop, &mut Memory::default()).expect("stop");
    assert_eq!(ended.reports[0].target, Target::Connector(3));
    let Body::SessionEnd(e) = &ended.reports[0].body else {
        panic!("an end")
    };
    assert_eq!(e.meter_stop_kwh, "13.500");
    assert_eq!(e.stop_reason, 4);
    assert!(e.physically_separated);
}

#[test]
fn mon_9_a_stop_of_an_unknown_transaction_is_kept_as_an_abnormal_record() {
    let stop = json!({"transactionId": 128, "meterStop": 5, "timestamp": "2026-12-06T04:00:00Z"});
    let h = call("StopTransaction", stop, &mut Memory::default()).expect("kept");
    let Body::Alarm(a) = &h.reports[0].body else {
        panic!("an alarm")
    };
    assert_eq!(a.code, "UnknownTransaction");
    assert_eq!(h.reply["idTagInfo"]["status"], "Accepted");
}

#[test]
fn a_remote_start_gives_the_session_its_order() {
    let mut m = Memory::default();
    let cmd = pb::PileCommand {
        command_id: "c1".into(),
        pile_id: "P".into(),
        connector_id: "P-1".into(),
        action: Some(pb::pile_command::Action::StartCharge(
            pb::StartChargeCommand {
                order_id: "MA01H3BQ2ORDER000000000001".into(),
                authorization_ref: String::new(),
            },
        )),
    };
    let (action, payload) = command(&cmd, 1, &mut m).expect("a call");
    assert_eq!(action, "RemoteStartTransaction");
    assert_eq!(payload["idTag"].as_str().map(str::len), Some(20));
    let h = call(
        "StartTransaction",
        json!({"connectorId": 1, "idTag": "x", "meterStart": 0, "timestamp": "2026-12-06T03:00:00Z"}),
        &mut m,
    )
    .expect("start");
    let Body::SessionStart(s) = &h.reports[0].body else {
        panic!("a start")
    };
    assert_eq!(s.order_id, "MA01H3BQ2ORDER000000000001");
    let stop = pb::PileCommand {
        action: Some(pb::pile_command::Action::StopCharge(
            pb::StopChargeCommand {
                order_id: s.order_id.clone(),
            },
        )),
        ..cmd
    };
    let (action, payload) = command(&stop, 1, &mut m).expect("a stop");
    assert_eq!(action, "RemoteStopTransaction");
    assert_eq!(payload["transactionId"], h.reply["transactionId"]);
}

#[test]
fn bad_payloads_are_refused_with_the_right_error() {
    let mut m = Memory::default();
    let missing = call("StatusNotification", json!({"connectorId": 1}), &mut m);
    assert_eq!(
        missing.expect_err("missing").code,
        ErrorCode::OccurrenceConstraintViolation
    );
    let typed = call(
        "StartTransaction",
        json!({"connectorId": "one", "idTag": "a", "meterStart": 0, "timestamp": "x"}),
        &mut m,
    );
    assert_eq!(
        typed.expect_err("type").code,
        ErrorCode::TypeConstraintViolation
    );
    let long_tag = call("Authorize", json!({"idTag": "x".repeat(21)}), &mut m);
    assert_eq!(
        long_tag.expect_err("length").code,
        ErrorCode::PropertyConstraintViolation
    );
    let status = call(
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}),
        &mut m,
    );
    assert_eq!(
        status.expect_err("value").code,
        ErrorCode::PropertyConstraintViolation
    );
    let unknown = call("FlyToTheMoon", json!({}), &mut m);
    assert_eq!(
        unknown.expect_err("unknown").code,
        ErrorCode::NotImplemented
    );
}

#[test]
fn command_answers_become_outcomes() {
    use pb::CommandOutcome as O;
    assert_eq!(
        outcome("Reset", &json!({"status": "Accepted"})).0,
        O::Accepted
    );
    assert_eq!(
        outcome("ChangeAvailability", &json!({"status": "Scheduled"})).0,
        O::Accepted
    );
    assert_eq!(
        outcome("UnlockConnector", &json!({"status": "UnlockFailed"})).0,
        O::Rejected
    );
    assert_eq!(outcome("Reset", &json!({})).0, O::Failed);
}
