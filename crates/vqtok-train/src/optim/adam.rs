//! Adam with PyTorch's semantics (`torch.optim.Adam`, amsgrad off): per-parameter
//! step counts, bias correction, `eps` added after the bias-corrected square root,
//! L2 `weight_decay` added to the gradient, parameters without a gradient skipped.
//! The state (step, exp_avg, exp_avg_sq per parameter) saves and loads as named
//! tensors, so a resumed run continues bit for bit.

use std::collections::HashMap;

use tch::{Kind, Tensor};
use vqtok_config::TrainArgs;

/// A saved optimizer state that does not fit the optimizer.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("optimizer state `{key}`: {message}")]
    State { key: String, message: String },
}

/// Adam's hyper-parameters (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// `lr`, `adam_betas`, `adam_eps` of param.json (no weight decay, as taming).
    pub fn from_train_args(t: &TrainArgs) -> AdamConfig {
        AdamConfig {
            lr: t.lr,
            betas: (t.adam_betas[0], t.adam_betas[1]),
            eps: t.adam_eps,
            weight_decay: 0.0,
        }
    }
}

#[derive(Debug)]
struct ParamState {
    /// Steps this parameter has taken (PyTorch's `state['step']`).
    step: i64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// Adam over a fixed list of parameters.
#[derive(Debug)]
pub struct Adam {
    cfg: AdamConfig,
    params: Vec<Tensor>,
    state: Vec<ParamState>,
}

impl Adam {
    /// The moments start at zero and the steps at 0: identical to PyTorch's lazy
    /// state creation, but every parameter always has a state to save.
    pub fn new(params: Vec<Tensor>, cfg: AdamConfig) -> Adam {
        let state = params
            .iter()
            .map(|p| ParamState {
                step: 0,
                exp_avg: p.detach().zeros_like(),
                exp_avg_sq: p.detach().zeros_like(),
            })
            .collect();
        Adam { cfg, params, state }
    }

    pub fn config(&self) -> AdamConfig {
        self.cfg
    }

    /// For learning-rate schedules.
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// Zeroes the gradients in place (a parameter that then gets no new gradient is
    /// still stepped with zeros, which PyTorch's `set_to_none` would skip; in our
    /// loops every parameter of an optimizer gets a gradient each step).
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// Scales the gradients so that their global L2 norm is at most `max_norm`
    /// (PyTorch's `clip_grad_norm_`, eps 1e-6); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads
            .iter()
            .map(|g| g.norm().to_kind(Kind::Double))
            .collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        let coef = max_norm / (total + 1e-6);
        if coef < 1.0 {
            tch::no_grad(|| {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coef);
                }
            });
        }
        total
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        let AdamConfig {
            lr,
            betas: (beta1, beta2),
            eps,
            weight_decay,
        } = self.cfg;
        tch::no_grad(|| {
            for (p, s) in self.params.iter_mut().zip(&mut self.state) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let grad = if weight_decay != 0.0 {
                    &grad + &*p * weight_decay
                } else {
                    grad
                };
                s.step += 1;
                let _ = s.exp_avg.lerp_(&grad, 1.0 - beta1);
                let _ = s.exp_avg_sq.g_mul_scalar_(beta2);
                let _ = s.exp_avg_sq.g_add_(&(&grad * &grad * (1.0 - beta2)));
                let bias_correction1 = 1.0 - beta1.powf(s.step as f64);
                let bias_correction2 = 1.0 - beta2.powf(s.step as f64);
                let step_size = lr / bias_correction1;
                let denom = s.exp_avg_sq.sqrt() / bias_correction2.sqrt() + eps;
                let _ = p.g_sub_(&(&s.exp_avg / denom * step_size));
            }
        });
    }

    /// `{i}.step` (int64 scalar), `{i}.exp_avg`, `{i}.exp_avg_sq` for parameter `i`
    /// in the order given to [`Adam::new`]; copies, safe to keep.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(3 * self.state.len());
        for (i, s) in self.state.iter().enumerate() {
            out.push((format!("{i}.step"), Tensor::from(s.step)));
            out.push((format!("{i}.exp_avg"), s.exp_avg.copy()));
            out.push((format!("{i}.exp_avg_sq"), s.exp_avg_sq.copy()));
        }
        out
    }

    /// Restores a [`Adam::state_dict`] (keys without the caller's prefix). Every key
    /// must be there with the parameter's shape; moments keep this optimizer's dtype
    /// and device.
    pub fn load_state_dict(&mut self, named: &HashMap<String, Tensor>) -> Result<(), OptimError> {
        let get = |key: String| {
            named.get(&key).ok_or(OptimError::State {
                key,
                message: "missing".into(),
            })
        };
        let expected: usize = 3 * self.state.len();
        if named.len() != expected {
            let mut keys: Vec<&String> = named.keys().collect();
            keys.sort();
            return Err(OptimError::State {
                key: keys.first().map(|k| k.to_string()).unwrap_or_default(),
                message: format!(
                    "the saved state has {} tensors, this optimizer needs {expected} \
                     (a different parameter list?)",
                    named.len()
                ),
            });
        }
        // Check everything before changing anything.
        for (i, s) in self.state.iter().enumerate() {
            let step = get(format!("{i}.step"))?;
            if step.numel() != 1 || step.kind() != Kind::Int64 {
                return Err(OptimError::State {
                    key: format!("{i}.step"),
                    message: format!("expected an int64 scalar, got {:?}", step.kind()),
                });
            }
            for (name, current) in [("exp_avg", &s.exp_avg), ("exp_avg_sq", &s.exp_avg_sq)] {
                let key = format!("{i}.{name}");
                let t = get(key.clone())?;
                if t.size() != current.size() {
                    return Err(OptimError::State {
                        key,
                        message: format!(
                            "shape {:?}, the parameter has {:?}",
                            t.size(),
                            current.size()
                        ),
                    });
                }
            }
        }
        // copy_ keeps this optimizer's dtype and device and never aliases the caller's
        // tensors (which the next step would otherwise modify).
        for (i, s) in self.state.iter_mut().enumerate() {
            s.step = get(format!("{i}.step"))?.int64_value(&[]);
            s.exp_avg.copy_(get(format!("{i}.exp_avg"))?);
            s.exp_avg_sq.copy_(get(format!("{i}.exp_avg_sq"))?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_grad_norm_scales_to_the_bound() {
        let a = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let b = Tensor::from_slice(&[0.0f64, 0.0]).set_requires_grad(true);
        // loss = 3a + 4·b₀ → gradients (3), (4, 0): global norm 5.
        let loss = &a * 3.0 + b.get(0) * 4.0;
        loss.sum(Kind::Double).backward();
        let cfg = AdamConfig::from_train_args(&TrainArgs::default());
        let mut adam = Adam::new(vec![a.shallow_clone(), b.shallow_clone()], cfg);
        assert!((adam.clip_grad_norm(10.0) - 5.0).abs() < 1e-12);
        assert_eq!(
            a.grad().double_value(&[0]),
            3.0,
            "under the bound: untouched"
        );
        assert!((adam.clip_grad_norm(1.0) - 5.0).abs() < 1e-12);
        assert!((a.grad().double_value(&[0]) - 0.6).abs() < 1e-6);
        assert!((b.grad().double_value(&[0]) - 0.8).abs() < 1e-6);
    }
}
