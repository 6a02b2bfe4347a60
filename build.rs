//! Compiles the protos with protox (pure Rust), so a fresh machine needs no `protoc`.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "linkstate/v1/common.proto",
    "linkstate/v1/connection.proto",
    "linkstate/v1/customer.proto",
    "linkstate/v1/financial_data.proto",
    "linkstate/v1/event.proto",
    "linkstate/v1/webhook.proto",
    "linkstate/v1/webhook_profile.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // The migrations are embedded by `embed_migrations!`: a new one must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection serves this descriptor set, so grpcurl needs no proto files.
    std::fs::write(
        out_dir.join("linkstate_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
