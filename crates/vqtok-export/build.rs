//! Compiles ONNX's own `onnx.proto` (from the onnx wheel, linked by `cargo xtask setup`)
//! into prost types. protox parses the .proto in pure Rust, so no `protoc` is needed.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=VQTOK_ONNX_PROTO");
    let Some(proto) = std::env::var_os("VQTOK_ONNX_PROTO").map(PathBuf::from) else {
        panic!(
            "VQTOK_ONNX_PROTO is not set: it names onnx.proto from the onnx wheel and is set by \
             .cargo/config.toml; run `cargo xtask setup` in the repository root"
        );
    };
    if !proto.is_file() {
        panic!(
            "VQTOK_ONNX_PROTO = {} does not exist; run `cargo xtask setup` in the repository root \
             (it links onnx.proto from the venv's onnx package)",
            proto.display()
        );
    }
    println!("cargo:rerun-if-changed={}", proto.display());
    let dir = proto
        .parent()
        .expect("a file path has a parent")
        .to_path_buf();
    let fds = protox::compile([&proto], [&dir])
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", proto.display()));
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("cannot generate ONNX types from {}: {e}", proto.display()));
}
