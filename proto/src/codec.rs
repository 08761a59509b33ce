//! The codec every generated client and server uses: prost's, with message buffers that start
//! small. tonic's default starts each call's encode and decode buffers at 8 KiB, allocated when
//! the call opens; a pile's long-lived stream carries messages of a few hundred bytes, and a
//! component holding 100,000 such streams would hold 1.6 GB of buffers it never fills. A buffer
//! still grows to the largest message it meets (a platform's batch of a thousand), so only the
//! first allocation changes.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Where each call's buffers start, in bytes.
pub const INITIAL_BUFFER_BYTES: usize = 512;
/// How much a streaming answer gathers before it is passed to the transport (tonic's default).
pub const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(INITIAL_BUFFER_BYTES, YIELD_THRESHOLD_BYTES)
}

/// Prost's codec with small initial buffers.
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}

#[cfg(test)]
mod tests {
    use tonic::codec::{Decoder as _, Encoder as _};

    use super::*;

    #[test]
    fn calls_start_with_small_buffers() {
        let mut codec = SmallBufferCodec::<prost_types::Duration, prost_types::Duration>::default();
        // The settings show their fields only through Debug.
        let small = format!("{:?}", settings());
        assert!(small.contains("buffer_size: 512"), "{small}");
        assert_eq!(format!("{:?}", codec.encoder().buffer_settings()), small);
        assert_eq!(format!("{:?}", codec.decoder().buffer_settings()), small);
    }
}
