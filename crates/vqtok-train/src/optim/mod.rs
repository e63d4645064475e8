//! Optimizers whose full state can be saved and restored (tch's wrapped libtorch
//! optimizers cannot export their moments, so a resumed run would restart Adam).

mod adam;

pub use adam::{Adam, AdamConfig, OptimError};
