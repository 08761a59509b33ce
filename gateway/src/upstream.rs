//! What the gateway passes on of a component's answer: everything it sent, and — when the
//! component's connection breaks mid-answer (the component died, the network split) — an end
//! with `UNAVAILABLE`, the code gRPC's guidance says to retry on, instead of the transport error
//! the client would otherwise see as `INTERNAL` or a reset stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;

/// What a client is told when the component behind its call went away.
pub const GONE: &str = "the service behind the gateway went away; retry";

/// A component's response body whose transport failures end the call `UNAVAILABLE` — or, when
/// the edge refused the client's request midway ([`crate::frames`]), with that refusal.
pub struct Upstream {
    inner: Body,
    ended: bool,
    tripped: Option<crate::frames::Tripped>,
    /// Held while the answer flows (a place under a principal's stream limit).
    _held: Option<Box<dyn Send + Sync>>,
}

impl Upstream {
    /// Wraps a response; a trailers-only answer (its status in the headers) is left as it is.
    pub fn wrap(response: http::Response<Body>) -> http::Response<Body> {
        Self::wrap_with(response, None, None)
    }

    /// As [`Upstream::wrap`], ending with `tripped`'s status when it is set, and holding `held`
    /// until the answer is done.
    pub fn wrap_with(
        response: http::Response<Body>,
        tripped: Option<crate::frames::Tripped>,
        held: Option<Box<dyn Send + Sync>>,
    ) -> http::Response<Body> {
        if response.headers().contains_key("grpc-status") {
            return match tripped.as_ref().and_then(|t| t.get()) {
                Some(status) => status.clone().into_http(),
                None => response,
            };
        }
        response.map(|inner| {
            Body::new(Self {
                inner,
                ended: false,
                tripped,
                _held: held,
            })
        })
    }

    /// The trailers of a call that ended early: the edge's refusal, or the component gone.
    fn early_end(&self) -> http::HeaderMap {
        match self.tripped.as_ref().and_then(|t| t.get()) {
            Some(status) => status_trailers(status),
            None => gone_trailers(),
        }
    }
}

impl http_body::Body for Upstream {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_trailers() {
                    self.ended = true;
                    // The component saw the request cut off by the edge: the edge's reason.
                    if let Some(status) = self.tripped.as_ref().and_then(|t| t.get()) {
                        return Poll::Ready(Some(Ok(Frame::trailers(status_trailers(status)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            // The component's connection broke: the call ends retryably.
            Poll::Ready(Some(Err(status))) => {
                if self.tripped.as_ref().and_then(|t| t.get()).is_none() {
                    tracing::warn!(%status, "an upstream answer broke off; the client is told UNAVAILABLE");
                }
                self.ended = true;
                Poll::Ready(Some(Ok(Frame::trailers(self.early_end()))))
            }
            // It ended without a status: cut off, too.
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Ok(Frame::trailers(self.early_end()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

fn status_trailers(status: &Status) -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
    if let Ok(message) = http::HeaderValue::from_str(&percent(status.message())) {
        trailers.insert("grpc-message", message);
    }
    trailers
}

/// A grpc-message value: printable ASCII as it is, everything else percent-encoded.
fn percent(message: &str) -> String {
    message
        .bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'%' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn gone_trailers() -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    trailers.insert(
        "grpc-status",
        http::HeaderValue::from(tonic::Code::Unavailable as i32),
    );
    trailers.insert("grpc-message", http::HeaderValue::from_static(GONE));
    trailers
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    fn upstream(frames: Vec<Result<Frame<Bytes>, Status>>) -> http::Response<Body> {
        let inner = Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)));
        Upstream::wrap(http::Response::new(inner))
    }

    #[tokio::test]
    async fn a_broken_upstream_answer_ends_unavailable_after_what_it_sent() {
        let mut body = upstream(vec![
            Ok(Frame::data(Bytes::from_static(b"ack"))),
            Err(Status::internal("h2 protocol error: connection reset")),
        ])
        .into_body();
        let first = body.frame().await.expect("frame").expect("ok");
        assert_eq!(first.into_data().expect("data"), Bytes::from_static(b"ack"));
        let trailers = body
            .frame()
            .await
            .expect("trailers")
            .expect("ok")
            .into_trailers()
            .expect("trailers");
        let status = Status::from_header_map(&trailers).expect("status");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_complete_answer_is_untouched() {
        let mut ok = http::HeaderMap::new();
        ok.insert("grpc-status", http::HeaderValue::from(0));
        let mut body = upstream(vec![
            Ok(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::trailers(ok)),
        ])
        .into_body();
        assert!(body.frame().await.expect("data").is_ok());
        let trailers = body
            .frame()
            .await
            .expect("trailers")
            .expect("ok")
            .into_trailers()
            .expect("trailers");
        assert_eq!(
            Status::from_header_map(&trailers).map(|s| s.code()),
            Some(tonic::Code::Ok)
        );
        assert!(body.frame().await.is_none());
    }
}
