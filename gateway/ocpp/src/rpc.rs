//! OCPP-J's RPC framing, the same for 1.6 and 2.0.1: a CALL `[2, id, action, payload]`, a
//! CALLRESULT `[3, id, payload]` and a CALLERROR `[4, id, code, description, details]`, each one
//! WebSocket text frame. A frame that cannot be read is answered with a CALLERROR, never dropped
//! in silence and never a reason to close the connection.

use serde_json::{Value, json};

use crate::Version;

/// The longest message id OCPP allows.
const MAX_ID_CHARS: usize = 36;

/// One frame as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Call {
        id: String,
        action: String,
        payload: Value,
    },
    Result {
        id: String,
        payload: Value,
    },
    Error {
        id: String,
        code: String,
        description: String,
    },
}

/// The CALLERROR codes; [`ErrorCode::name`] spells each as the version does (1.6's
/// `FormationViolation` and `OccurenceConstraintViolation` are 2.0.1's `FormatViolation` and
/// `OccurrenceConstraintViolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotImplemented,
    NotSupported,
    InternalError,
    ProtocolError,
    SecurityError,
    FormatViolation,
    PropertyConstraintViolation,
    OccurrenceConstraintViolation,
    TypeConstraintViolation,
    GenericError,
    /// 2.0.1 only; 1.6 says FormationViolation.
    RpcFrameworkError,
}

impl ErrorCode {
    pub fn name(self, version: Version) -> &'static str {
        let v16 = version == Version::V16;
        match self {
            ErrorCode::NotImplemented => "NotImplemented",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::ProtocolError => "ProtocolError",
            ErrorCode::SecurityError => "SecurityError",
            ErrorCode::FormatViolation if v16 => "FormationViolation",
            ErrorCode::FormatViolation => "FormatViolation",
            ErrorCode::PropertyConstraintViolation => "PropertyConstraintViolation",
            ErrorCode::OccurrenceConstraintViolation if v16 => "OccurenceConstraintViolation",
            ErrorCode::OccurrenceConstraintViolation => "OccurrenceConstraintViolation",
            ErrorCode::TypeConstraintViolation => "TypeConstraintViolation",
            ErrorCode::GenericError => "GenericError",
            ErrorCode::RpcFrameworkError if v16 => "FormationViolation",
            ErrorCode::RpcFrameworkError => "RpcFrameworkError",
        }
    }
}

/// Why a frame or a payload was refused: the code and a description naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub code: ErrorCode,
    pub description: String,
}

impl CallError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// A payload that serde could not read, classified by what was wrong: a missing field is an
    /// occurrence, a wrong JSON type a type, anything else about a value a property violation.
    pub fn from_payload(action: &str, error: &serde_json::Error) -> Self {
        let text = error.to_string();
        let code = if text.starts_with("missing field") {
            ErrorCode::OccurrenceConstraintViolation
        } else if text.starts_with("invalid type") {
            ErrorCode::TypeConstraintViolation
        } else {
            ErrorCode::PropertyConstraintViolation
        };
        // serde's own words name the field; the position in a one-line payload says nothing.
        let text = text.split(" at line ").next().unwrap_or(&text);
        Self::new(code, format!("{action}: {text}"))
    }
}

/// A frame that could not be read: its id when one could be found (`-1` otherwise, as 2.0.1
/// asks) and the error to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub id: String,
    pub error: CallError,
}

/// Reads one text frame.
pub fn parse(text: &str) -> Result<Frame, Unreadable> {
    let unreadable = |id: &str, code, description: &str| Unreadable {
        id: id.to_owned(),
        error: CallError::new(code, description),
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        unreadable(
            "-1",
            ErrorCode::RpcFrameworkError,
            &format!("not JSON: {e}"),
        )
    })?;
    let Value::Array(items) = value else {
        return Err(unreadable(
            "-1",
            ErrorCode::RpcFrameworkError,
            "a frame is a JSON array",
        ));
    };
    let id = match items.get(1) {
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_ID_CHARS => {
            id.clone()
        }
        _ => {
            return Err(unreadable(
                "-1",
                ErrorCode::RpcFrameworkError,
                "the message id (second element) is a string of 1 to 36 characters",
            ));
        }
    };
    let kind = items.first().and_then(Value::as_u64);
    match (kind, items.len()) {
        (Some(2), 4) => {
            let action = items[2].as_str().filter(|a| !a.is_empty()).ok_or_else(|| {
                unreadable(
                    &id,
                    ErrorCode::RpcFrameworkError,
                    "a CALL's action is a string",
                )
            })?;
            if !items[3].is_object() {
                return Err(unreadable(
                    &id,
                    ErrorCode::FormatViolation,
                    "a CALL's payload is a JSON object",
                ));
            }
            Ok(Frame::Call {
                action: action.to_owned(),
                payload: items[3].clone(),
                id,
            })
        }
        (Some(3), 3) => Ok(Frame::Result {
            payload: items[2].clone(),
            id,
        }),
        (Some(4), 4 | 5) => Ok(Frame::Error {
            code: items[2].as_str().unwrap_or_default().to_owned(),
            description: items[3].as_str().unwrap_or_default().to_owned(),
            id,
        }),
        (Some(2..=4), _) => Err(unreadable(
            &id,
            ErrorCode::RpcFrameworkError,
            "a CALL has 4 elements, a CALLRESULT 3, a CALLERROR 5",
        )),
        _ => Err(unreadable(
            &id,
            ErrorCode::RpcFrameworkError,
            "the message type (first element) is 2, 3 or 4",
        )),
    }
}

pub fn call(id: &str, action: &str, payload: &Value) -> String {
    json!([2, id, action, payload]).to_string()
}

pub fn result(id: &str, payload: &Value) -> String {
    json!([3, id, payload]).to_string()
}

pub fn error(id: &str, error: &CallError, version: Version) -> String {
    json!([4, id, error.code.name(version), error.description, {}]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_results_and_errors_are_read() {
        assert_eq!(
            parse(r#"[2,"a1","Heartbeat",{}]"#),
            Ok(Frame::Call {
                id: "a1".into(),
                action: "Heartbeat".into(),
                payload: json!({})
            })
        );
        assert_eq!(
            parse(r#"[3,"b",{"status":"Accepted"}]"#),
            Ok(Frame::Result {
                id: "b".into(),
                payload: json!({"status": "Accepted"})
            })
        );
        assert_eq!(
            parse(r#"[4,"c","NotSupported","no",{}]"#),
            Ok(Frame::Error {
                id: "c".into(),
                code: "NotSupported".into(),
                description: "no".into()
            })
        );
    }

    #[test]
    fn netsec_1_unreadable_frames_get_an_error_with_the_id_when_there_is_one() {
        let not_json = parse("[2, \"x\"").expect_err("not JSON");
        assert_eq!(not_json.id, "-1");
        assert_eq!(not_json.error.code, ErrorCode::RpcFrameworkError);
        let bad_payload = parse(r#"[2,"x","Heartbeat",[]]"#).expect_err("an array payload");
        assert_eq!(bad_payload.id, "x");
        assert_eq!(bad_payload.error.code, ErrorCode::FormatViolation);
        let short = parse(r#"[2,"y","Heartbeat"]"#).expect_err("three elements");
        assert_eq!(short.id, "y");
        let kind = parse(r#"[7,"z",{}]"#).expect_err("type 7");
        assert_eq!(kind.id, "z");
        let long_id = parse(&format!(r#"[2,"{}","Heartbeat",{{}}]"#, "i".repeat(37)));
        assert_eq!(long_id.expect_err("37 chars").id, "-1");
        assert_eq!(parse("{}").expect_err("object").id, "-1");
    }

    #[test]
    fn error_codes_are_spelled_as_each_version_spells_them() {
        let e = CallError::new(ErrorCode::OccurrenceConstraintViolation, "x");
        assert!(error("1", &e, Version::V16).contains("\"OccurenceConstraintViolation\""));
        assert!(error("1", &e, Version::V201).contains("\"OccurrenceConstraintViolation\""));
        let f = CallError::new(ErrorCode::FormatViolation, "x");
        assert!(error("1", &f, Version::V16).contains("\"FormationViolation\""));
        assert!(error("1", &f, Version::V201).contains("\"FormatViolation\""));
    }

    #[test]
    fn payload_errors_are_classified_by_what_is_wrong() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct P {
            n: u32,
        }
        let missing = serde_json::from_value::<P>(json!({})).expect_err("missing");
        assert_eq!(
            CallError::from_payload("A", &missing).code,
            ErrorCode::OccurrenceConstraintViolation
        );
        let typed = serde_json::from_value::<P>(json!({"n": "1"})).expect_err("type");
        assert_eq!(
            CallError::from_payload("A", &typed).code,
            ErrorCode::TypeConstraintViolation
        );
    }
}
