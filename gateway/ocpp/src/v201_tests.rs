//! Tests of the v201 translation: every mapping and state rule.

use super::*;

const SETTINGS: Settings = Settings {
    heartbeat_interval_s: 60,
};

fn call(action: &str, payload: Value, memory: &mut Memory) -> Result<Handled, CallError> {
    let now = map::timestamp("2026-12-06T04:00:00Z").expect("time");
    let known = Known {
        token: Some(translate::TokenVerdict {
            status: translate::TokenStatus::Accepted,
            expiry: None,
            any_token: false,
        }),
        ledger: None,
        connectors: 2,
    };
    handle(action, &payload, memory, SETTINGS, &known, now)
}

#[test]
fn an_unknown_token_is_spelled_unknown_in_2_0_1() {
    let now = map::timestamp("2026-12-06T04:00:00Z").expect("time");
    let known = Known {
        token: Some(translate::TokenVerdict {
            status: translate::TokenStatus::Unknown,
            expiry: None,
            any_token: false,
        }),
        ledger: None,
        connectors: 1,
    };
    let h = handle(
        "Authorize",
        &json!({"idToken": {"idToken": "X", "type": "ISO14443"}}),
        &mut Memory::default(),
        SETTINGS,
        &known,
        now,
    )
    .expect("answered");
    assert_eq!(h.reply["idTokenInfo"]["status"], "Unknown");
    assert_eq!(
        token(
            "TransactionEvent",
            &json!({"idToken": {"idToken": "T1", "type": "Central"}})
        ),
        Some("T1".into())
    );
}

fn energy(wh: i64, context: &str) -> Value {
    json!([{ "timestamp": "2026-12-06T03:00:00Z",
             "sampledValue": [{ "value": wh, "context": context,
                                "measurand": "Energy.Active.Import.Register",
                                "unitOfMeasure": { "unit": "Wh" } }] }])
}

#[test]
fn settle_1_started_updated_ended_make_one_session_with_its_registers() {
    let mut m = Memory::default();
    let started = call(
        "TransactionEvent",
        json!({"eventType": "Started", "timestamp": "2026-12-06T03:00:00Z",
               "triggerReason": "Authorized", "seqNo": 0,
               "transactionInfo": {"transactionId": "T1", "chargingState": "Charging"},
               "idToken": {"idToken": "CARD9", "type": "ISO14443"},
               "evse": {"id": 2, "connectorId": 1},
               "meterValue": energy(1000, "Transaction.Begin")}),
        &mut m,
    )
    .expect("started");
    assert_eq!(started.reply["idTokenInfo"]["status"], "Accepted");
    let Body::SessionStart(s) = &started.reports[0].body else {
        panic!("a start first")
    };
    assert_eq!(s.meter_start_kwh, "1.000");
    assert_eq!(s.authorization_ref, "CARD9");
    assert!(started.reports.iter().any(|r| matches!(&r.body,
        Body::Status(st) if st.state == pb::ConnectorState::Charging as i32)));
    // The station does not repeat its EVSE: the connection remembers it.
    let ended = call(
        "TransactionEvent",
        json!({"eventType": "Ended", "timestamp": "2026-12-06T04:00:00Z",
               "triggerReason": "EVCommunicationLost", "seqNo": 2,
               "transactionInfo": {"transactionId": "T1", "stoppedReason": "EVDisconnected"},
               "meterValue": energy(21000, "Transaction.End")}),
        &mut m,
    )
    .expect("ended");
    let end = ended
        .reports
        .iter()
        .find_map(|r| match &r.body {
            Body::SessionEnd(e) => Some((r.target, e.clone())),
            _ => None,
        })
        .expect("an end");
    assert_eq!(end.0, Target::Connector(2));
    assert_eq!(end.1.meter_stop_kwh, "21.000");
    assert_eq!(end.1.stop_reason, 4);
    assert!(m.transactions.is_empty());
}

#[test]
fn mon_9_an_end_of_a_transaction_never_seen_is_kept_as_an_abnormal_record() {
    let h = call(
        "TransactionEvent",
        json!({"eventType": "Ended", "timestamp": "2026-12-06T04:00:00Z",
               "triggerReason": "StopAuthorized", "seqNo": 5,
               "transactionInfo": {"transactionId": "GHOST"}}),
        &mut Memory::default(),
    )
    .expect("kept");
    assert!(matches!(&h.reports[0].body, Body::Alarm(a) if a.code == "UnknownTransaction"));
}

#[test]
fn a_remote_start_id_gives_the_session_its_order() {
    let mut m = Memory::default();
    let cmd = pb::PileCommand {
        command_id: "c".into(),
        pile_id: "P".into(),
        connector_id: "P-1".into(),
        action: Some(pb::pile_command::Action::StartCharge(
            pb::StartChargeCommand {
                order_id: "ORDER-7".into(),
                authorization_ref: String::new(),
            },
        )),
    };
    let (action, payload) = command(&cmd, 1, &mut m).expect("a call");
    assert_eq!(action, "RequestStartTransaction");
    let started = call(
        "TransactionEvent",
        json!({"eventType": "Started", "timestamp": "2026-12-06T03:00:00Z",
               "triggerReason": "RemoteStart", "seqNo": 0,
               "transactionInfo": {"transactionId": "T2",
                                   "remoteStartId": payload["remoteStartId"]},
               "evse": {"id": 1}, "meterValue": energy(0, "Transaction.Begin")}),
        &mut m,
    )
    .expect("started");
    let Body::SessionStart(s) = &started.reports[0].body else {
        panic!("a start")
    };
    assert_eq!(s.order_id, "ORDER-7");
    let stop = pb::PileCommand {
        action: Some(pb::pile_command::Action::StopCharge(
            pb::StopChargeCommand::default(),
        )),
        ..cmd
    };
    let (action, payload) = command(&stop, 1, &mut m).expect("a stop");
    assert_eq!(action, "RequestStopTransaction");
    assert_eq!(payload["transactionId"], "T2");
}

#[test]
fn mon_1_201_statuses_map_and_1_6_only_statuses_are_refused() {
    let mut m = Memory::default();
    let h = call(
        "StatusNotification",
        json!({"timestamp": "2026-12-06T03:00:00Z", "connectorStatus": "Occupied",
               "evseId": 1, "connectorId": 1}),
        &mut m,
    )
    .expect("status");
    assert!(matches!(&h.reports[0].body,
        Body::Status(s) if s.state == pb::ConnectorState::OccupiedNotCharging as i32));
    let refused = call(
        "StatusNotification",
        json!({"timestamp": "2026-12-06T03:00:00Z", "connectorStatus": "Charging",
               "evseId": 1, "connectorId": 1}),
        &mut m,
    );
    assert_eq!(
        refused.expect_err("1.6 only").code,
        ErrorCode::PropertyConstraintViolation
    );
}

#[test]
fn set_variables_is_accepted_only_when_every_attribute_is() {
    use pb::CommandOutcome as O;
    let ok = json!({"setVariableResult": [{"attributeStatus": "Accepted"}]});
    assert_eq!(outcome("SetVariables", &ok).0, O::Accepted);
    let no = json!({"setVariableResult": [{"attributeStatus": "UnknownVariable"}]});
    assert_eq!(outcome("SetVariables", &no).0, O::Rejected);
}
