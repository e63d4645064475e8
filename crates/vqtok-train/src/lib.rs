//! vqtok's training side, on tch (libtorch): the models behind one adapter trait
//! (the seed's create_model), the losses, and the trainer.

pub mod autocast;
pub mod dist;
pub mod loss;
pub mod model;
pub mod optim;
pub mod reference;
pub mod state_dict;
pub mod train;
