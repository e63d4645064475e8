//! Copying in-memory named tensors (a checkpoint's state) into a `VarStore` by name,
//! keeping the store's dtype and device, and taking copies back out. Files go through
//! the strict loader in `state_dict.rs`.

use std::collections::HashMap;

use tch::Tensor;
use tch::nn::VarStore;

use super::error::LossError;

/// Copies `src[name]` into every variable `name` of `vs`.
/// Every such variable must be present with the same shape; other keys of `src`
/// are ignored (a full taming checkpoint holds the encoder too). `source` names the
/// file or checkpoint in errors.
pub(crate) fn copy_by_name(
    vs: &VarStore,
    src: &HashMap<String, Tensor>,
    source: &str,
) -> Result<(), LossError> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        let value = src
            .get(&name)
            .ok_or_else(|| LossError::weights(source, &name, "missing"))?;
        if value.size() != var.size() {
            return Err(LossError::weights(
                source,
                &name,
                format!("shape {:?}, expected {:?}", value.size(), var.size()),
            ));
        }
        tch::no_grad(|| var.f_copy_(value))?;
    }
    Ok(())
}

/// The variables of `vs` as detached copies, sorted by name (for checkpoints:
/// copies, so that later training steps cannot change a saved state).
pub(crate) fn snapshot(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}
