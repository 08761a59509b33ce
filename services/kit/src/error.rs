//! The errors every service returns, and their one mapping to `tonic::Status`.
//!
//! Messages name the field and the rule (`rated_power_kw: ... (REQ SCOPE-2)`); internal causes
//! are logged, never sent to clients.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::db::StoreError;

/// A service error, mapped once to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field breaks a rule: `INVALID_ARGUMENT` with a `BadRequest` field violation.
    #[error("{field}: {message}{}", rule_suffix(.rule))]
    Invalid {
        field: String,
        rule: Option<&'static str>,
        message: String,
    },
    /// A prerequisite of the standard is missing: `FAILED_PRECONDITION` naming the rule.
    #[error("{message}{}", rule_suffix(.rule))]
    Precondition {
        rule: Option<&'static str>,
        message: String,
    },
    /// `NOT_FOUND`; also what a caller gets for another tenant's record, so it learns nothing.
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// A concurrent change won; the caller may retry.
    #[error("{0} changed concurrently, retry")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another mesh component refused or failed a call made for this one: its code and message,
    /// passed on.
    #[error("{1}")]
    Upstream(Code, String),
}

fn rule_suffix(rule: &Option<&'static str>) -> String {
    rule.map(|r| format!(" (REQ {r})")).unwrap_or_default()
}

impl Error {
    /// A field violation citing a rule of the standard.
    pub fn invalid(
        field: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            field: field.into(),
            rule: Some(rule),
            message: message.into(),
        }
    }

    /// A field violation of form (no rule of the standard behind it).
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            rule: None,
            message: message.into(),
        }
    }

    /// A missing prerequisite citing a rule of the standard.
    pub fn precondition(rule: &'static str, message: impl Into<String>) -> Self {
        Error::Precondition {
            rule: Some(rule),
            message: message.into(),
        }
    }

    /// A state conflict with no rule of the standard behind it.
    pub fn state(message: impl Into<String>) -> Self {
        Error::Precondition {
            rule: None,
            message: message.into(),
        }
    }

    /// The same error with its field named inside `parent`, so a rule checked on a nested
    /// message names the request's own path (`course` becomes `training.course`).
    pub fn within(self, parent: &str) -> Self {
        match self {
            Error::Invalid {
                field,
                rule,
                message,
            } => Error::Invalid {
                field: format!("{parent}.{field}"),
                rule,
                message,
            },
            other => other,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::Invalid { .. } => Code::InvalidArgument,
            Error::Precondition { .. } => Code::FailedPrecondition,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::Conflict(_) => Code::Aborted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Store(e) => e.code(),
            Error::Upstream(code, _) => *code,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let code = err.code();
        match &err {
            Error::Invalid { field, .. } => {
                let message = err.to_string();
                let details =
                    ErrorDetails::with_bad_request_violation(field.clone(), message.clone());
                Status::with_error_details(code, message, details)
            }
            Error::Precondition { rule, .. } => {
                let message = err.to_string();
                let details = ErrorDetails::with_precondition_failure_violation(
                    "REQ",
                    rule.unwrap_or("STATE"),
                    message.clone(),
                );
                Status::with_error_details(code, message, details)
            }
            Error::Store(store) if code == Code::Internal || code == Code::Unavailable => {
                tracing::error!(error = %store, "store failure");
                Status::new(code, "internal storage error")
            }
            _ => Status::new(code, err.to_string()),
        }
    }
}

/// Shorthand for service results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an RPC handler returns.
pub type Reply<T> = std::result::Result<tonic::Response<T>, Status>;

/// Wraps a handler's outcome, mapping the error once.
pub fn reply<T>(result: Result<T>) -> Reply<T> {
    result.map(tonic::Response::new).map_err(Status::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_field_and_rule_with_bad_request_details() {
        let status: Status =
            Error::invalid("pile.rated_power_kw", "SCOPE-2", "5 kW is below 7 kW").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "pile.rated_power_kw: 5 kW is below 7 kW (REQ SCOPE-2)"
        );
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "pile.rated_power_kw");
    }

    #[test]
    fn within_names_the_nested_field_and_leaves_other_errors_alone() {
        let nested = Error::invalid("course", "STAFF-2", "is required").within("training");
        assert!(matches!(&nested, Error::Invalid { field, .. } if field == "training.course"));
        let other = Error::NotFound("x".into()).within("training");
        assert!(matches!(other, Error::NotFound(_)));
    }

    #[test]
    fn precondition_names_rule() {
        let status: Status = Error::precondition("BASE-1", "station is not accepted").into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("BASE-1"));
    }

    #[test]
    fn internal_causes_are_not_sent() {
        let status: Status = Error::Store(StoreError::Internal("password=secret".into())).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
