// Shared by the build.rs of every crate whose binaries, tests or benches use tch
// (included with `include!`). Why, as found when setting up libtorch here:
// without RUNPATH the binaries cannot find libtorch_cpu.so, and without
// --no-as-needed the linker drops libtorch_cuda.so, so CUDA silently disappears
// on GPU machines.

/// Emits the link arguments; call from `main` of a build script.
fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => std::path::PathBuf::from(lib),
        Err(_) => panic!("torch-sys did not report its libtorch folder; is torch-sys a direct dependency?"),
    };
    println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
}
