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

/// Adam over a fixed list of parameters.
///
/// When all parameters share dtype and device, they are re-pointed (`set_data`) to
/// views of one contiguous buffer, with the moments likewise flat, so a step is ~10
/// kernels over the whole model instead of ~8 per parameter (343 parameters in the
/// seed model: thousands of tiny GPU launches otherwise). The arithmetic per element
/// is the same either way; a step where some parameter has no gradient, or step
/// counts differ, takes the per-parameter path.
#[derive(Debug)]
pub struct Adam {
    cfg: AdamConfig,
    params: Vec<Tensor>,
    /// Steps per parameter (PyTorch's `state['step']`).
    steps: Vec<i64>,
    /// Per-parameter moments (views into `flat` when there is one).
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    flat: Option<Flat>,
}

#[derive(Debug)]
struct Flat {
    params: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl Adam {
    /// The moments start at zero and the steps at 0: identical to PyTorch's lazy
    /// state creation, but every parameter always has a state to save. Call after the
    /// parameters have their final dtype and device (loading values into them later,
    /// with `copy_`, is fine).
    pub fn new(mut params: Vec<Tensor>, cfg: AdamConfig) -> Adam {
        let uniform = params.first().is_some_and(|p0| {
            params
                .iter()
                .all(|p| p.kind() == p0.kind() && p.device() == p0.device())
        });
        let (exp_avg, exp_avg_sq, flat) = if uniform {
            let parts: Vec<Tensor> = params.iter().map(|p| p.detach().reshape([-1])).collect();
            let flat_params = Tensor::cat(&parts, 0);
            let exp_avg = flat_params.zeros_like();
            let exp_avg_sq = flat_params.zeros_like();
            let mut offset = 0;
            let (mut avg, mut avg_sq) = (Vec::new(), Vec::new());
            for p in &mut params {
                let (n, shape) = (p.numel() as i64, p.size());
                let view = |t: &Tensor| t.narrow(0, offset, n).view(shape.as_slice());
                tch::no_grad(|| p.set_data(&view(&flat_params)));
                avg.push(view(&exp_avg));
                avg_sq.push(view(&exp_avg_sq));
                offset += n;
            }
            (
                avg,
                avg_sq,
                Some(Flat {
                    params: flat_params,
                    exp_avg,
                    exp_avg_sq,
                }),
            )
        } else {
            let zeros = |p: &Tensor| p.detach().zeros_like();
            (
                params.iter().map(zeros).collect(),
                params.iter().map(zeros).collect(),
                None,
            )
        };
        Adam {
            cfg,
            steps: vec![0; params.len()],
            params,
            exp_avg,
            exp_avg_sq,
            flat,
        }
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

    /// The gradients of the parameters that have one (shallow: writing them writes the
    /// gradients), e.g. to average them over the ranks of a data-parallel job.
    pub fn grads(&self) -> Vec<Tensor> {
        self.params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .collect()
    }

    /// Scales the gradients so that their global L2 norm is at most `max_norm`
    /// (PyTorch's `clip_grad_norm_`, eps 1e-6); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads = self.grads();
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
        let grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).collect();
        let fused = self.flat.is_some()
            && grads.iter().all(Tensor::defined)
            && self.steps.iter().all(|&s| s == self.steps[0]);
        tch::no_grad(|| {
            if fused {
                let flat = self.flat.as_mut().expect("checked above");
                let parts: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1])).collect();
                let grad = Tensor::cat(&parts, 0);
                for s in &mut self.steps {
                    *s += 1;
                }
                update(
                    &self.cfg,
                    &mut flat.params,
                    &grad,
                    &mut flat.exp_avg,
                    &mut flat.exp_avg_sq,
                    self.steps[0],
                );
            } else {
                for (i, grad) in grads.iter().enumerate() {
                    if grad.defined() {
                        self.steps[i] += 1;
                        let p = &mut self.params[i];
                        update(
                            &self.cfg,
                            p,
                            grad,
                            &mut self.exp_avg[i],
                            &mut self.exp_avg_sq[i],
                            self.steps[i],
                        );
                    }
                }
            }
        });
    }

    /// `{i}.step` (int64 scalar), `{i}.exp_avg`, `{i}.exp_avg_sq` for parameter `i`
    /// in the order given to [`Adam::new`]; copies, safe to keep.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(3 * self.params.len());
        for i in 0..self.params.len() {
            out.push((format!("{i}.step"), Tensor::from(self.steps[i])));
            out.push((format!("{i}.exp_avg"), self.exp_avg[i].copy()));
            out.push((format!("{i}.exp_avg_sq"), self.exp_avg_sq[i].copy()));
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
        let expected: usize = 3 * self.params.len();
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
        for i in 0..self.params.len() {
            let step = get(format!("{i}.step"))?;
            if step.numel() != 1 || step.kind() != Kind::Int64 {
                return Err(OptimError::State {
                    key: format!("{i}.step"),
                    message: format!("expected an int64 scalar, got {:?}", step.kind()),
                });
            }
            for (name, current) in [
                ("exp_avg", &self.exp_avg[i]),
                ("exp_avg_sq", &self.exp_avg_sq[i]),
            ] {
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
        for i in 0..self.params.len() {
            self.steps[i] = get(format!("{i}.step"))?.int64_value(&[]);
            self.exp_avg[i].copy_(get(format!("{i}.exp_avg"))?);
            self.exp_avg_sq[i].copy_(get(format!("{i}.exp_avg_sq"))?);
        }
        Ok(())
    }
}

/// PyTorch's single-tensor Adam update of `p` (flat or one parameter) at step `step`.
fn update(
    cfg: &AdamConfig,
    p: &mut Tensor,
    grad: &Tensor,
    exp_avg: &mut Tensor,
    exp_avg_sq: &mut Tensor,
    step: i64,
) {
    let AdamConfig {
        lr,
        betas: (beta1, beta2),
        eps,
        weight_decay,
    } = *cfg;
    let grad = if weight_decay != 0.0 {
        grad + &*p * weight_decay
    } else {
        grad.shallow_clone()
    };
    let _ = exp_avg.lerp_(&grad, 1.0 - beta1);
    let _ = exp_avg_sq.g_mul_scalar_(beta2);
    let _ = exp_avg_sq.g_add_(&(&grad * &grad * (1.0 - beta2)));
    let bias_correction1 = 1.0 - beta1.powf(step as f64);
    let bias_correction2 = 1.0 - beta2.powf(step as f64);
    let step_size = lr / bias_correction1;
    let denom = exp_avg_sq.sqrt() / bias_correction2.sqrt() + eps;
    let _ = p.g_sub_(&(&*exp_avg / denom * step_size));
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

    /// The flat (fused) path and the per-parameter path give the same bits, and the
    /// caller's handles (a VarStore's) see the updates.
    #[test]
    fn fused_and_per_parameter_updates_are_identical() {
        tch::manual_seed(3);
        let make = || {
            let a = Tensor::randn([3, 4], (Kind::Float, tch::Device::Cpu));
            let b = Tensor::randn([5], (Kind::Float, tch::Device::Cpu));
            (a, b)
        };
        let (a0, b0) = make();
        let (a, b) = (
            a0.copy().set_requires_grad(true),
            b0.copy().set_requires_grad(true),
        );
        let (c, d) = (
            a0.copy().set_requires_grad(true),
            b0.copy().set_requires_grad(true),
        );
        // A float64 extra parameter keeps the second optimizer off the flat path.
        let extra = Tensor::zeros([1], (Kind::Double, tch::Device::Cpu)).set_requires_grad(true);
        let cfg = AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::default()
        };
        let mut fused = Adam::new(vec![a.shallow_clone(), b.shallow_clone()], cfg);
        let mut single = Adam::new(
            vec![c.shallow_clone(), d.shallow_clone(), extra.shallow_clone()],
            cfg,
        );
        assert!(fused.flat.is_some() && single.flat.is_none());
        for step in 0..3 {
            for (opt, x, y) in [(&mut fused, &a, &b), (&mut single, &c, &d)] {
                opt.zero_grad();
                let loss =
                    (x * x).sum(Kind::Float) * (step + 1) as f64 + (y.sin()).sum(Kind::Float);
                let loss = if opt.flat.is_none() {
                    loss + extra.sum(Kind::Double).to_kind(Kind::Float)
                } else {
                    loss
                };
                loss.backward();
                opt.step();
            }
        }
        assert!(
            a.equal(&c) && b.equal(&d),
            "fused and per-parameter Adam diverged"
        );
        assert!(!a.equal(&a0), "the caller's handle sees the update");
        let (sf, ss) = (fused.state_dict(), single.state_dict());
        for ((k, x), (_, y)) in sf.iter().zip(&ss) {
            assert!(x.equal(y), "{k}");
        }
    }
}
