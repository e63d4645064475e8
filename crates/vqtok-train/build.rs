include!("../../build_support/link_libtorch.rs");

fn main() {
    link_libtorch();
}
