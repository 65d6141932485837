//! Compiles the ONNX and Paddle protobuf schemas in `proto/` with protox (pure Rust, no `protoc`
//! binary) and prost-build. `bytes` fields become `bytes::Bytes`, so a memory-mapped model decodes
//! without copying its weights.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    println!("cargo:rerun-if-changed=proto/paddle_framework.proto");
    let fds = protox::compile(
        ["proto/onnx.proto", "proto/paddle_framework.proto"],
        ["proto"],
    )?;
    prost_build::Config::new().bytes(["."]).compile_fds(fds)?;
    Ok(())
}
