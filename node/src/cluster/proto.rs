//! The generated protobuf and gRPC code for proto/cluster.proto.

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
