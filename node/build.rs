//! Generates the cluster's gRPC code from proto/cluster.proto. protox parses the schema in pure Rust, so building
//! needs no protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/cluster.proto");
    let descriptors = protox::compile(["proto/cluster.proto"], ["proto"])?;
    // Encoded events and log rows are `Bytes`: decoding a frame slices them out of the receive buffer, a relay
    // forwards events and a log shipper resends a batch without a copy.
    tonic_prost_build::configure()
        .bytes(".zeek.cluster.v1.Message.event")
        .bytes(".zeek.cluster.v1.Message.events")
        .bytes(".zeek.cluster.v1.LogStream.rows")
        // Prost's codec, with a frame's encoding reserving its whole length first (cluster/proto.rs).
        .codec_path("crate::cluster::proto::FrameCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
