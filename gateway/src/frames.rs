//! What a client's request body may carry (REQ NETSEC-1): gRPC messages of at most a set size,
//! and — on the telemetry stream — at most a set number of telemetry messages per frame, both
//! checked from the bytes as they arrive, before anything is decoded. A frame passes on to the
//! component once it is whole and within its limits; one that is not ends the call
//! `RESOURCE_EXHAUSTED` naming the limit, and the component never sees it.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::BytesMut;
use http_body::Frame;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;

/// The limits of one method's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimit {
    /// The largest message, in bytes.
    pub max_bytes: usize,
    /// The setting that sets it, named in a refusal.
    pub bytes_setting: &'static str,
    /// At most this many entries of a repeated top-level field (field number, most, setting).
    pub max_entries: Option<(u32, usize, &'static str)>,
}

/// Where the guard leaves the status a call was refused with, for the answer to carry.
pub type Tripped = Arc<OnceLock<Status>>;

/// The gRPC message header: a compression flag and a 4-byte length.
const HEADER: usize = 5;

/// A request body passed on one whole, checked message at a time.
pub struct FrameGuard {
    inner: Body,
    limit: FrameLimit,
    pending: BytesMut,
    tripped: Tripped,
    ended: bool,
}

impl FrameGuard {
    pub fn wrap(inner: Body, limit: FrameLimit, tripped: Tripped) -> Body {
        Body::new(Self {
            inner,
            limit,
            pending: BytesMut::new(),
            tripped,
            ended: false,
        })
    }

    fn trip(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        tracing::info!(%status, "a client's message refused at the edge");
        let _ = self.tripped.set(status.clone());
        self.ended = true;
        Poll::Ready(Some(Err(status)))
    }

    /// The whole messages at the front of what arrived, checked; `Ok(None)` until one is whole.
    /// The good ones before a refused one pass first; the refusal comes on the next call.
    fn whole_messages(&mut self) -> Result<Option<Bytes>, Status> {
        let at = whole(&self.pending, &self.limit)?;
        Ok((at > 0).then(|| self.pending.split_to(at).freeze()))
    }
}

/// How many bytes at the front of `buf` are whole messages within `limit`; an error when the
/// first message there is refused (one after good ones is left for the next look).
fn whole(buf: &[u8], limit: &FrameLimit) -> Result<usize, Status> {
    let mut at = 0;
    while buf.len() >= at + HEADER {
        match check(&buf[at..], limit) {
            Ok(Some(len)) => at += HEADER + len,
            Ok(None) => break,
            Err(_) if at > 0 => break,
            Err(status) => return Err(status),
        }
    }
    Ok(at)
}

/// The message at the front of `buf` (its header first): its length once it is whole and within
/// the limits, `None` while its bytes are still coming, or why it is refused (an oversized one as
/// soon as its header shows the size).
fn check(buf: &[u8], limit: &FrameLimit) -> Result<Option<usize>, Status> {
    let compressed = buf[0] != 0;
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > limit.max_bytes {
        return Err(Status::resource_exhausted(format!(
            "a message of {len} bytes is over {} ({} bytes)",
            limit.bytes_setting, limit.max_bytes
        )));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    if let Some((field, max, setting)) = limit.max_entries {
        if compressed {
            return Err(Status::resource_exhausted(format!(
                "a compressed message cannot be checked against {setting}; send it uncompressed"
            )));
        }
        if count_entries(&buf[HEADER..HEADER + len], field, max + 1) > max {
            return Err(Status::resource_exhausted(format!(
                "a batch of more than {max} messages is over {setting} ({max}); send it in parts"
            )));
        }
    }
    Ok(Some(len))
}

impl http_body::Body for FrameGuard {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match self.whole_messages() {
                Ok(Some(messages)) => return Poll::Ready(Some(Ok(Frame::data(messages)))),
                Ok(None) => {}
                Err(status) => return self.trip(status),
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    // The usual case: nothing held back, and the chunk is whole messages within
                    // the limits; it passes on as it came, uncopied.
                    Ok(mut data) if self.pending.is_empty() => match whole(&data, &self.limit) {
                        Ok(at) if at == data.len() => {
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Ok(at) => {
                            let messages = data.split_to(at);
                            self.pending.extend_from_slice(&data);
                            if !messages.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(messages))));
                            }
                        }
                        Err(status) => return self.trip(status),
                    },
                    Ok(data) => self.pending.extend_from_slice(&data),
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(status))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    // A message cut short goes on as it is: the component refuses it.
                    if self.pending.is_empty() {
                        return Poll::Ready(None);
                    }
                    let rest = self.pending.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Ended once the client's stream has (nothing held back): the request's last DATA frame then
    /// carries END_STREAM, rather than an empty frame after it, so a component that answers a
    /// unary call never sees its request still open (and never resets it).
    fn is_end_stream(&self) -> bool {
        self.ended || (self.pending.is_empty() && self.inner.is_end_stream())
    }
}

/// How many top-level entries of `field` a protobuf message holds, counting no further than
/// `stop`; the bytes are walked, never decoded. A malformed message counts what it could read
/// (the component refuses it when it decodes it).
pub fn count_entries(mut message: &[u8], field: u32, stop: usize) -> usize {
    let mut count = 0;
    while !message.is_empty() && count < stop {
        let Some((key, rest)) = varint(message) else {
            break;
        };
        message = rest;
        if key >> 3 == u64::from(field) {
            count += 1;
        }
        let skipped = match key & 7 {
            0 => varint(message).map(|(_, rest)| rest),
            1 => message.get(8..),
            2 => varint(message)
                .and_then(|(len, rest)| usize::try_from(len).ok().and_then(|len| rest.get(len..))),
            5 => message.get(4..),
            _ => None,
        };
        match skipped {
            Some(rest) => message = rest,
            None => break,
        }
    }
    count
}

/// A protobuf varint at the front of `bytes`, and what follows it.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0_u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use prost::Message as _;

    use super::*;
    use chargemesh_proto::telemetry::v1 as tm;

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    fn batch(n: usize) -> Vec<u8> {
        tm::ConnectRequest {
            messages: (1..=n as u64)
                .map(|sequence| tm::TelemetryMessage {
                    sequence,
                    ..Default::default()
                })
                .collect(),
        }
        .encode_to_vec()
    }

    const LIMIT: FrameLimit = FrameLimit {
        max_bytes: 4096,
        bytes_setting: "test.max_bytes",
        max_entries: Some((1, 3, "test.batch")),
    };

    fn guard(chunks: Vec<Vec<u8>>) -> (Body, Tripped) {
        let tripped = Tripped::default();
        let frames: Vec<Result<Frame<Bytes>, Status>> = chunks
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::from(c))))
            .collect();
        let inner = Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)));
        (FrameGuard::wrap(inner, LIMIT, tripped.clone()), tripped)
    }

    #[test]
    fn entries_are_counted_from_the_bytes() {
        assert_eq!(count_entries(&batch(0), 1, 100), 0);
        assert_eq!(count_entries(&batch(7), 1, 100), 7);
        assert_eq!(count_entries(&batch(7), 1, 4), 4, "counting stops early");
        assert_eq!(
            count_entries(&[0x0a, 0xff], 1, 100),
            1,
            "malformed: what could be read"
        );
    }

    #[tokio::test]
    async fn netsec_1_whole_messages_within_the_limits_pass_however_they_are_cut() {
        let mut bytes = framed(&batch(3));
        bytes.extend(framed(&batch(1)));
        let chunks: Vec<Vec<u8>> = bytes.chunks(3).map(<[u8]>::to_vec).collect();
        let (body, tripped) = guard(chunks);
        let passed = body.collect().await.expect("passed").to_bytes();
        assert_eq!(passed.as_ref(), bytes.as_slice());
        assert!(tripped.get().is_none());
    }

    #[tokio::test]
    async fn netsec_1_a_chunk_of_whole_messages_passes_as_it_came_and_a_cut_one_waits() {
        let first = framed(&batch(3));
        let second = framed(&batch(2));
        let mut chunk = first.clone();
        chunk.extend_from_slice(&second[..4]);
        let (mut body, tripped) = guard(vec![chunk, second[4..].to_vec()]);
        let passed = body.frame().await.expect("frame").expect("whole");
        assert_eq!(passed.into_data().expect("data").as_ref(), first.as_slice());
        let rest = body.frame().await.expect("frame").expect("the cut one");
        assert_eq!(rest.into_data().expect("data").as_ref(), second.as_slice());
        assert!(body.frame().await.is_none());
        assert!(tripped.get().is_none());
    }

    #[tokio::test]
    async fn netsec_1_a_batch_over_the_limit_is_refused_before_it_passes() {
        let mut bytes = framed(&batch(2));
        bytes.extend(framed(&batch(4)));
        let (mut body, tripped) = guard(vec![bytes]);
        let first = body.frame().await.expect("frame").expect("the first batch");
        assert_eq!(
            first.into_data().expect("data").len(),
            framed(&batch(2)).len()
        );
        let refused = body.frame().await.expect("frame").expect_err("the second");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("test.batch (3)"),
            "{}",
            refused.message()
        );
        assert_eq!(
            tripped.get().map(Status::code),
            Some(tonic::Code::ResourceExhausted)
        );
    }

    #[tokio::test]
    async fn netsec_1_a_message_over_the_size_is_refused_from_its_header() {
        let header = {
            let mut h = vec![0];
            h.extend_from_slice(&(1_u32 << 30).to_be_bytes());
            h
        };
        let (mut body, _) = guard(vec![header]);
        let refused = body.frame().await.expect("frame").expect_err("a gigabyte");
        assert!(
            refused.message().contains("test.max_bytes"),
            "{}",
            refused.message()
        );
    }
}
