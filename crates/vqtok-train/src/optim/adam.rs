//! Adam with PyTorch's semantics (`torch.optim.Adam`, amsgrad off): per-parameter
//! step counts, bias correction, `eps` added after the bias-corrected square root,
//! L2 `weight_decay` added to the gradient. On the flat path every parameter has a
//! gradient (zeros until backward adds to it, as after PyTorch's
//! `zero_grad(set_to_none=False)`); on the per-parameter path one without is skipped.
//! The state (step, exp_avg, exp_avg_sq per parameter) saves and loads as named
//! tensors, so a resumed run continues bit for bit.
//!
//! [`Adam::step_if`] takes a device flag and skips the update on the device when it is
//! false (as PyTorch's capturable/fused Adam with `found_inf`): the step count and the
//! bias corrections live on the device on the flat path, so a conditional step never
//! waits for the host.

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
/// views of one contiguous buffer, with the moments and the gradients likewise flat, so
/// a step is ~10 kernels over the whole model instead of ~8 per parameter (343
/// parameters in the seed model: thousands of tiny GPU launches otherwise), backward
/// accumulates straight into the flat gradient (no per-step concatenation), and a
/// data-parallel job all-reduces that one buffer. The arithmetic per element is the same
/// either way; when step counts differ the per-parameter path is taken.
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
    /// `steps` lags `flat.step`: a conditional step advanced the device count only.
    steps_on_device: bool,
}

#[derive(Debug)]
struct Flat {
    params: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// Every parameter's `.grad` is a view of this (see csrc/grad_shim.cpp).
    grad: Tensor,
    /// The shared step count of the flat path, f64 on the parameters' device.
    step: Tensor,
}

unsafe extern "C" {
    fn vqtok_grad_last_error() -> *const std::ffi::c_char;
    fn vqtok_set_grad(param: *mut std::ffi::c_void, grad: *const std::ffi::c_void) -> i32;
}

/// `param.grad = grad` (same shape, dtype and device).
fn set_grad(param: &mut Tensor, grad: &Tensor) {
    // SAFETY: both are live tch tensors (`at::Tensor*`); the shim catches C++ exceptions.
    let rc = unsafe { vqtok_set_grad(param.as_mut_ptr().cast(), grad.as_ptr().cast()) };
    if rc != 0 {
        // SAFETY: the shim returns a NUL-terminated thread-local string.
        let msg = unsafe { std::ffi::CStr::from_ptr(vqtok_grad_last_error()) };
        panic!("setting a gradient view: {}", msg.to_string_lossy());
    }
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
            let grad = flat_params.zeros_like();
            let mut offset = 0;
            let (mut avg, mut avg_sq) = (Vec::new(), Vec::new());
            for p in &mut params {
                let (n, shape) = (p.numel() as i64, p.size());
                let view = |t: &Tensor| t.narrow(0, offset, n).view(shape.as_slice());
                tch::no_grad(|| p.set_data(&view(&flat_params)));
                let mut grad_view = view(&grad);
                if p.grad().defined() {
                    tch::no_grad(|| grad_view.copy_(&p.grad()));
                }
                set_grad(p, &grad_view);
                avg.push(view(&exp_avg));
                avg_sq.push(view(&exp_avg_sq));
                offset += n;
            }
            (
                avg,
                avg_sq,
                Some(Flat {
                    step: Tensor::zeros([], (Kind::Double, flat_params.device())),
                    params: flat_params,
                    exp_avg,
                    exp_avg_sq,
                    grad,
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
            steps_on_device: false,
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
        match &mut self.flat {
            // (tch's per-tensor zero_grad detaches, which a view does not allow.)
            Some(flat) => {
                let _ = flat.grad.zero_();
            }
            None => self.params.iter_mut().for_each(Tensor::zero_grad),
        }
    }

    /// What holds the gradients: the flat buffer, or each parameter's gradient (for a
    /// data-parallel all-reduce: one collective on the buffer, with no copy).
    pub fn grad_buffers(&self) -> Vec<Tensor> {
        match &self.flat {
            Some(flat) => vec![flat.grad.shallow_clone()],
            None => self.grads(),
        }
    }

    /// Whether every parameter's gradient is still its view of the flat buffer (autograd
    /// accumulates in place; something that assigned a new `.grad` would break it).
    fn grads_in_buffer(&self) -> bool {
        let Some(flat) = &self.flat else {
            return false;
        };
        let base = flat.grad.data_ptr() as usize;
        let size = flat.grad.kind().elt_size_in_bytes();
        let mut offset = 0usize;
        self.params.iter().all(|p| {
            let g = p.grad();
            let here = g.defined() && g.data_ptr() as usize == base + offset * size;
            offset += p.numel();
            here
        })
    }

    /// The gradients of the parameters that have one (shallow: writing them writes the
    /// gradients), e.g. to average them over the ranks of a data-parallel job.
    fn grads(&self) -> Vec<Tensor> {
        self.params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .collect()
    }

    /// Scales the gradients so that their global L2 norm is at most `max_norm`
    /// (PyTorch's `clip_grad_norm_`, eps 1e-6: the factor min(1, max_norm / (norm + eps))
    /// is applied on the device, so clipping never waits for the host); returns the norm
    /// before clipping (f64, on the device).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Tensor {
        let grads = self.grads();
        let Some(first) = grads.first() else {
            return Tensor::from(0.0f64);
        };
        let norms: Vec<Tensor> = grads
            .iter()
            .map(|g| g.norm().to_kind(Kind::Double))
            .collect();
        let total = Tensor::stack(&norms, 0).norm();
        let coef = (Tensor::full([], max_norm, (Kind::Double, first.device())) / (&total + 1e-6))
            .clamp_max(1.0);
        tch::no_grad(|| {
            for mut g in grads {
                // × 1 (under the bound) changes no bit.
                let _ = g.g_mul_(&coef);
            }
        });
        total
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        self.update_all(None);
    }

    /// [`Adam::step`] when the 0-dim bool `ok` (on the parameters' device) is true;
    /// otherwise nothing changes, moments and step count included. Decided on the device
    /// on the flat path; the per-parameter path reads `ok`.
    pub fn step_if(&mut self, ok: &Tensor) {
        self.update_all(Some(ok));
    }

    fn update_all(&mut self, ok: Option<&Tensor>) {
        let grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).collect();
        let fused = self.grads_in_buffer()
            && (self.steps_on_device || self.steps.iter().all(|&s| s == self.steps[0]));
        if !fused {
            self.sync_steps();
            if ok.is_some_and(|ok| ok.int64_value(&[]) == 0) {
                return;
            }
        }
        tch::no_grad(|| {
            if fused {
                let flat = self.flat.as_mut().expect("checked above");
                let grad = flat.grad.shallow_clone();
                if !self.steps_on_device {
                    let _ = flat.step.fill_(self.steps[0] as f64);
                }
                match ok {
                    Some(ok) => {
                        flat.step += ok.to_kind(Kind::Double);
                        self.steps_on_device = true;
                    }
                    None => {
                        flat.step += 1.0;
                        if !self.steps_on_device {
                            self.steps.iter_mut().for_each(|s| *s += 1);
                        }
                    }
                }
                flat_update(&self.cfg, flat, &grad, ok);
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

    /// Brings the host step counts up to date with the flat path's device count (a read
    /// from the device, only after conditional steps).
    fn sync_steps(&mut self) {
        if let (true, Some(flat)) = (self.steps_on_device, &self.flat) {
            let step = flat.step.double_value(&[]) as i64;
            self.steps.iter_mut().for_each(|s| *s = step);
        }
        self.steps_on_device = false;
    }

    /// `{i}.step` (int64 scalar), `{i}.exp_avg`, `{i}.exp_avg_sq` for parameter `i`
    /// in the order given to [`Adam::new`]; copies, safe to keep.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        let device_step = match (&self.flat, self.steps_on_device) {
            (Some(flat), true) => Some(flat.step.double_value(&[]) as i64),
            _ => None,
        };
        let mut out = Vec::with_capacity(3 * self.params.len());
        for i in 0..self.params.len() {
            let step = device_step.unwrap_or(self.steps[i]);
            out.push((format!("{i}.step"), Tensor::from(step)));
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
        self.steps_on_device = false;
        for i in 0..self.params.len() {
            self.steps[i] = get(format!("{i}.step"))?.int64_value(&[]);
            self.exp_avg[i].copy_(get(format!("{i}.exp_avg"))?);
            self.exp_avg_sq[i].copy_(get(format!("{i}.exp_avg_sq"))?);
        }
        Ok(())
    }
}

/// The flat path's update at the device step count `flat.step` (already advanced), the
/// same arithmetic as [`update`] with the bias corrections computed on the device in f64
/// (the same IEEE operations as on the host, so the same bits); with `ok`, the new
/// values are selected where it is true, else the old ones stay.
fn flat_update(cfg: &AdamConfig, flat: &mut Flat, grad: &Tensor, ok: Option<&Tensor>) {
    let AdamConfig {
        lr,
        betas: (beta1, beta2),
        eps,
        weight_decay,
    } = *cfg;
    let grad = if weight_decay != 0.0 {
        grad + &flat.params * weight_decay
    } else {
        grad.shallow_clone()
    };
    let one_minus_pow = |beta: f64| Tensor::pow_scalar(beta, &flat.step).neg() + 1.0;
    let bias_correction1 = one_minus_pow(beta1);
    let bias_correction2 = one_minus_pow(beta2);
    let step_size = Tensor::full([], lr, (Kind::Double, flat.step.device())) / bias_correction1;
    let bias_correction2_sqrt = bias_correction2.sqrt();
    let exp_avg = flat.exp_avg.lerp(&grad, 1.0 - beta1);
    let exp_avg_sq = &flat.exp_avg_sq * beta2 + &grad * &grad * (1.0 - beta2);
    let denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps;
    let params = &flat.params - &exp_avg / denom * step_size;
    let keep = |new: Tensor, old: &Tensor| match ok {
        Some(ok) => new.where_self(ok, old),
        None => new,
    };
    let (params, exp_avg, exp_avg_sq) = (
        keep(params, &flat.params),
        keep(exp_avg, &flat.exp_avg),
        keep(exp_avg_sq, &flat.exp_avg_sq),
    );
    flat.params.copy_(&params);
    flat.exp_avg.copy_(&exp_avg);
    flat.exp_avg_sq.copy_(&exp_avg_sq);
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
        assert!((adam.clip_grad_norm(10.0).double_value(&[]) - 5.0).abs() < 1e-12);
        assert_eq!(
            a.grad().double_value(&[0]),
            3.0,
            "under the bound: untouched"
        );
        assert!((adam.clip_grad_norm(1.0).double_value(&[]) - 5.0).abs() < 1e-12);
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
                // Backward added into the flat gradient buffer in place.
                assert!(opt.flat.is_none() || opt.grads_in_buffer());
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

    /// `step_if(false)` changes nothing (weights, moments, saved step); `step_if(true)`
    /// is `step()` bit for bit, also for the steps after it.
    #[test]
    fn a_conditional_step_is_a_step_or_nothing() {
        tch::manual_seed(4);
        let w0 = Tensor::randn([6], (Kind::Float, tch::Device::Cpu));
        let runs: Vec<Vec<bool>> = vec![vec![true, true, true], vec![true, false, true]];
        let mut results = Vec::new();
        for flags in runs {
            let w = w0.copy().set_requires_grad(true);
            let mut opt = Adam::new(vec![w.shallow_clone()], AdamConfig::default());
            let plain_w = w0.copy().set_requires_grad(true);
            let mut plain = Adam::new(vec![plain_w.shallow_clone()], AdamConfig::default());
            for (k, ok) in flags.iter().enumerate() {
                for (o, x) in [(&mut opt, &w), (&mut plain, &plain_w)] {
                    o.zero_grad();
                    ((x * x).sum(Kind::Float) * (k + 1) as f64).backward();
                }
                opt.step_if(&Tensor::from(*ok));
                if *ok {
                    plain.step();
                }
            }
            assert!(w.equal(&plain_w), "{flags:?}: weights");
            for ((key, a), (_, b)) in opt.state_dict().iter().zip(&plain.state_dict()) {
                assert!(a.equal(b), "{flags:?}: {key}");
            }
            results.push(w.copy());
        }
        assert!(!results[0].equal(&results[1]));
    }
}
