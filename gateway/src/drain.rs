//! Draining: when the gateway is told to stop, its long-lived streams end at the next quiet
//! moment with `UNAVAILABLE`, telling their clients to reconnect (to another replica); the
//! server meanwhile sends HTTP/2 GOAWAY and takes no new calls. Whatever the service already
//! answered is passed on first, so an acknowledgement in flight still reaches its pile.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use tokio::sync::watch;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;

/// What a draining gateway tells the clients of the streams it ends.
pub const DRAINING: &str = "the gateway is draining; reconnect";

/// A response body that ends with `UNAVAILABLE` once `drain` turns true.
pub struct Draining {
    inner: Body,
    drain: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

impl Draining {
    pub fn wrap(inner: Body, mut drain: watch::Receiver<bool>) -> Body {
        let drain = Box::pin(async move {
            // A dropped sender means the gateway is gone: drain then too.
            let _ = drain.wait_for(|draining| *draining).await;
        });
        Body::new(Self {
            inner,
            drain,
            ended: false,
        })
    }
}

impl http_body::Body for Draining {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        // What the service sent goes out before the stream is ended.
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_trailers() {
                    self.ended = true;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(status))) => {
                self.ended = true;
                return Poll::Ready(Some(Err(status)));
            }
            Poll::Ready(None) => {
                self.ended = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if self.drain.as_mut().poll(cx).is_ready() {
            self.ended = true;
            return Poll::Ready(Some(Ok(Frame::trailers(draining_trailers()))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// The trailers of a stream ended by draining: `UNAVAILABLE` with [`DRAINING`] (printable ASCII,
/// so no percent-encoding is needed).
fn draining_trailers() -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    let code = tonic::Code::Unavailable as i32;
    trailers.insert("grpc-status", http::HeaderValue::from(code));
    trailers.insert("grpc-message", http::HeaderValue::from_static(DRAINING));
    trailers
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    type Frames = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Status>>;

    /// A service's response body fed by the returned sender, wrapped for draining.
    fn drained_body() -> (Frames, watch::Sender<bool>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let inner = Body::new(http_body_util::StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let (drain, draining) = watch::channel(false);
        (tx, drain, Draining::wrap(inner, draining))
    }

    #[tokio::test]
    async fn a_drained_stream_passes_on_what_it_has_then_ends_unavailable() {
        let (tx, drain, mut body) = drained_body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"ack-1"))))
            .await
            .expect("sent");
        let first = body.frame().await.expect("a frame").expect("ok");
        assert_eq!(
            first.into_data().expect("data"),
            Bytes::from_static(b"ack-1")
        );
        // The service's next answer is ready when the drain starts: it still goes out.
        tx.send(Ok(Frame::data(Bytes::from_static(b"ack-2"))))
            .await
            .expect("sent");
        drain.send(true).expect("drain");
        let second = body.frame().await.expect("a frame").expect("ok");
        assert_eq!(
            second.into_data().expect("data"),
            Bytes::from_static(b"ack-2")
        );
        let trailers = body
            .frame()
            .await
            .expect("trailers")
            .expect("ok")
            .into_trailers()
            .expect("trailers");
        let status = Status::from_header_map(&trailers).expect("a status");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), DRAINING);
        assert!(body.frame().await.is_none(), "nothing after the end");
    }

    #[tokio::test]
    async fn a_stream_without_drain_is_untouched() {
        let (tx, _drain, mut body) = drained_body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
            .await
            .expect("sent");
        drop(tx);
        assert!(body.frame().await.expect("frame").is_ok());
        assert!(body.frame().await.is_none());
    }
}
