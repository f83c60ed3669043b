//! Compiles the node's cluster protocol (node/proto/cluster.proto) for the one call the operator makes: the
//! manager's Status, read for `status.membershipEpoch`. protox parses the schema in pure Rust: no protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../node/proto/cluster.proto");
    let descriptors = protox::compile(["../node/proto/cluster.proto"], ["../node/proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(false).compile_fds(descriptors)?;
    Ok(())
}
