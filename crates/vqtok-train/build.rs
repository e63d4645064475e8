include!("../../build_support/link_libtorch.rs");

fn main() {
    link_libtorch();
    // The bf16 autocast shim (csrc/autocast_shim.cpp) compiles against the wheel's headers.
    let lib =
        std::path::PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("set by torch-sys"));
    println!("cargo:rerun-if-changed=csrc/autocast_shim.cpp");
    cc::Build::new()
        .cpp(true)
        .file("csrc/autocast_shim.cpp")
        .include(lib.join("../include"))
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("vqtok_autocast_shim");
    // Tensors handed to torch.distributed without a copy (src/dist/group.rs).
    println!("cargo:rerun-if-changed=csrc/dlpack_shim.cpp");
    cc::Build::new()
        .cpp(true)
        .file("csrc/dlpack_shim.cpp")
        .include(lib.join("../include"))
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("vqtok_dlpack_shim");
}
