// Only the torch engine links libtorch; the default build has nothing to do here.
#[cfg(feature = "torch")]
include!("../../build_support/link_libtorch.rs");

fn main() {
    #[cfg(feature = "torch")]
    link_libtorch();
}
