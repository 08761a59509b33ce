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

/// A component's response body whose transport failures end the call `UNAVAILABLE`.
pub struct Upstream {
    inner: Body,
    ended: bool,
}

impl Upstream {
    /// Wraps a response; a trailers-only answer (its status in the headers) is left as it is.
    pub fn wrap(response: http::Response<Body>) -> http::Response<Body> {
        if response.headers().contains_key("grpc-status") {
            return response;
        }
        response.map(|inner| {
            Body::new(Self {
                inner,
                ended: false,
            })
        })
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
                }
                Poll::Ready(Some(Ok(frame)))
            }
            // The component's connection broke: the call ends retryably.
            Poll::Ready(Some(Err(status))) => {
                tracing::warn!(%status, "an upstream answer broke off; the client is told UNAVAILABLE");
                self.ended = true;
                Poll::Ready(Some(Ok(Frame::trailers(gone_trailers()))))
            }
            // It ended without a status: cut off, too.
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Ok(Frame::trailers(gone_trailers()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
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
