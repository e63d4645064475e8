//! A thin builder over `tch::nn::Path` that remembers which tensors are trainable.
//!
//! The caller owns the `VarStore` and may keep other things in it, and `nn::Path` cannot
//! list the variables below it, so a model records its own trainable parameters while
//! it is built. EMA codebook state goes in as non-trainable buffers: saved and loaded
//! with the state dict, never handed to an optimizer.

use std::cell::RefCell;
use std::rc::Rc;

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

/// Where a module creates its variables (a state-dict prefix), plus the shared list of
/// trainable parameters created so far.
#[derive(Clone)]
pub struct Vars<'a> {
    path: nn::Path<'a>,
    trainable: Rc<RefCell<Vec<Tensor>>>,
}

impl<'a> Vars<'a> {
    pub fn new(path: &nn::Path<'a>) -> Self {
        Vars {
            path: path.clone(),
            trainable: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// The sub-prefix `name` (one state-dict path component).
    pub fn sub(&self, name: impl ToString) -> Vars<'a> {
        Vars {
            path: self.path.sub(name),
            trainable: Rc::clone(&self.trainable),
        }
    }

    pub fn kind(&self) -> Kind {
        self.path.kind()
    }

    pub fn device(&self) -> Device {
        self.path.device()
    }

    /// A trainable parameter in the var store's kind and device.
    pub fn param(&self, name: &str, dims: &[i64], init: Init) -> Tensor {
        let t = self.path.var(name, dims, init);
        self.trainable.borrow_mut().push(t.shallow_clone());
        t
    }

    /// A non-trainable tensor (state, not a parameter), converted to the var store's
    /// kind and device.
    pub fn buffer(&self, name: &str, value: Tensor) -> Tensor {
        let t = value
            .detach()
            .to_device(self.device())
            .to_kind(self.kind())
            .contiguous();
        self.path.add(name, t, false)
    }

    /// The trainable parameters created through this builder and all its sub-builders.
    pub fn trainable(&self) -> Vec<Tensor> {
        self.trainable
            .borrow()
            .iter()
            .map(Tensor::shallow_clone)
            .collect()
    }
}
