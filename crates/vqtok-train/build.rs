include!("../../build_support/link_libtorch.rs");

fn main() {
    link_libtorch();
    // C++ shims against the wheel's ATen headers: bf16 autocast, tensors handed to
    // torch.distributed without a copy (src/dist/group.rs), gradients as views of one
    // buffer (src/optim/adam.rs).
    let lib =
        std::path::PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("set by torch-sys"));
    for (file, name) in [
        ("csrc/autocast_shim.cpp", "vqtok_autocast_shim"),
        ("csrc/dlpack_shim.cpp", "vqtok_dlpack_shim"),
        ("csrc/grad_shim.cpp", "vqtok_grad_shim"),
    ] {
        println!("cargo:rerun-if-changed={file}");
        cc::Build::new()
            .cpp(true)
            .file(file)
            .include(lib.join("../include"))
            .flag("-std=c++17")
            .define("_GLIBCXX_USE_CXX11_ABI", "1")
            .warnings(false)
            .compile(name);
    }
}
