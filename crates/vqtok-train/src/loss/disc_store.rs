//! A discriminator with its own `VarStore` (variables `loss.discriminator.main.N.*`,
//! as in a taming checkpoint), so that its optimizer sees only its parameters and the
//! autoencoder's optimizer never sees them (PL's toggle_optimizer, spec §1.6).

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::discriminator::{DiscriminatorConfig, NLayerDiscriminator};
use super::error::LossError;
use super::weights::{copy_by_name, snapshot};

/// Variable-name prefix of the discriminator (taming's `loss.discriminator`).
pub const DISCRIMINATOR_PREFIX: &str = "loss.discriminator";

#[derive(Debug)]
pub struct Discriminator {
    vs: VarStore,
    net: NLayerDiscriminator,
}

/// Casts the floating-point variables only (BatchNorm's `num_batches_tracked` stays
/// int64, ActNorm's `initialized` stays uint8).
pub(crate) fn set_float_kind(vs: &mut VarStore, kind: Kind) -> Result<(), LossError> {
    match kind {
        Kind::Float => vs.float(),
        Kind::Double => vs.double(),
        Kind::Half => vs.half(),
        Kind::BFloat16 => vs.bfloat16(),
        other => {
            return Err(LossError::Config {
                path: "LossOptions.kind".into(),
                message: format!("the losses need a floating-point dtype, got {other:?}"),
            });
        }
    }
    Ok(())
}

impl Discriminator {
    /// A freshly initialised discriminator (taming's `weights_init`).
    pub fn new(
        device: Device,
        kind: Kind,
        cfg: &DiscriminatorConfig,
    ) -> Result<Discriminator, LossError> {
        let mut vs = VarStore::new(device);
        let mut p = vs.root();
        for part in DISCRIMINATOR_PREFIX.split('.') {
            p = p.sub(part);
        }
        let net = NLayerDiscriminator::new(p, cfg);
        set_float_kind(&mut vs, kind)?;
        Ok(Discriminator { vs, net })
    }

    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// Patch logits; `train` = batch statistics and running-stat updates. Runs under
    /// the caller's autocast state (bf16 convs inside a mixed-precision region).
    pub fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(x, train)
    }

    /// Logits with the discriminator's parameters frozen for this forward, so that a
    /// generator loss built on them sends gradients through the discriminator to its
    /// input but never into the discriminator's `.grad` (taming: toggle_optimizer).
    pub fn logits_frozen(&self, x: &Tensor, train: bool) -> Tensor {
        let params = self.vs.trainable_variables();
        let was: Vec<bool> = params.iter().map(Tensor::requires_grad).collect();
        for p in &params {
            let _ = p.set_requires_grad(false);
        }
        let out = self.logits(x, train);
        for (p, r) in params.iter().zip(was) {
            let _ = p.set_requires_grad(r);
        }
        out
    }

    /// Detached copies of every variable (parameters and buffers), sorted by name.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        snapshot(&self.vs)
    }

    /// Loads every `loss.discriminator.*` variable from `named` (other keys ignored),
    /// keeping this store's dtype and device. `source` names the file in errors.
    pub fn load(&self, named: &HashMap<String, Tensor>, source: &str) -> Result<(), LossError> {
        copy_by_name(&self.vs, named, source)
    }
}
