//! What every page with forms does alike: the "saved" notice after a step's redirect, a list's
//! refusal shown in place of the list, and a step's outcome: on to the page again with the
//! notice, or the page again with the API's reason, the input kept, and the HTTP status the
//! refusal deserves.

use std::future::Future;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::pages::layout::Notice;

/// `?saved=1`, set by the redirect after a step.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Saved {
    #[serde(default)]
    saved: Option<u8>,
}

impl Saved {
    pub fn notice(&self) -> Option<Notice> {
        self.saved.map(|_| Notice::Saved)
    }
}

/// The HTTP status of a page refused by the API.
pub fn refusal_code(status: &tonic::Status) -> StatusCode {
    match status.code() {
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => StatusCode::FORBIDDEN,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// A list as the API gave it, or none with its reason (a notice already there comes first).
pub fn or_reason<T: Default>(
    result: Result<T, tonic::Status>,
    notice: Option<Notice>,
) -> (T, Option<Notice>) {
    match result {
        Ok(items) => (items, notice),
        Err(status) => (
            T::default(),
            notice.or(Some(Notice::Refused(status.message().to_owned()))),
        ),
    }
}

/// A step's outcome: `saved_to` on success; otherwise `again` draws the page with the reason
/// and the status the refusal deserves.
pub async fn settle<F, Fut>(done: Result<(), tonic::Status>, saved_to: &str, again: F) -> Response
where
    F: FnOnce(Notice, StatusCode) -> Fut,
    Fut: Future<Output = Response>,
{
    match done {
        Ok(()) => Redirect::to(saved_to).into_response(),
        Err(status) => {
            again(
                Notice::Refused(status.message().to_owned()),
                refusal_code(&status),
            )
            .await
        }
    }
}
