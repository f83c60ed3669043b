//! The generated protobuf and gRPC code for proto/cluster.proto, and the codec it uses.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::{ProstCodec, ProstDecoder};

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("zeek.cluster.v1");
}

/// Wire protocol version carried in `Hello`; a peer with another version is refused. 2: `Messages` frames; 3: events
/// travel encoded, topic, origin and relay targets once per run of messages in a frame, and log rows in a dense
/// encoding (`LogStream.rows`); 4: runs of events in one message (`Message.events`).
pub const PROTOCOL_VERSION: u32 = 4;

/// Largest frame a node accepts (a log batch of a few thousand wide records fits many times over).
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// HTTP/2 stream and connection windows: large windows measured 3–5× the default throughput (shared/CRATES.md).
pub const H2_WINDOW_BYTES: u32 = 8 << 20;

/// The service's gRPC codec: prost's, except that a message's encoding reserves its whole length first.
///
/// tonic starts each message in what is left of an 8 KiB buffer and lets prost grow it field by field; a link frame
/// is up to ~60 kB, so every frame went through three or four reallocations, each copying what was written so far
/// and, with the allocator handing out fresh pages, the kernel zeroing a huge page now and then (perf: about a third
/// of the manager's CPU per relayed event). Decoding already reserves a message's length from its header.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for FrameCodec<T, U> {
    fn default() -> Self {
        FrameCodec(PhantomData)
    }
}

impl<T, U> Codec for FrameCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = FrameEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> FrameEncoder<T> {
        FrameEncoder(PhantomData)
    }

    fn decoder(&mut self) -> ProstDecoder<U> {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::default())
    }
}

/// Encodes a message into room reserved for all of it (see [`FrameCodec`]).
#[derive(Debug, Clone, Copy)]
pub struct FrameEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for FrameEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf).map_err(|e| Status::internal(format!("encoding a frame: {e}")))
    }
}
