//! Data-parallel training across processes on PyTorch's own collectives (c10d: Gloo on
//! CPUs, NCCL on GPUs), reached through an embedded CPython (ARCHITECTURE.md says why
//! this route): each rank is one `vqtok-train train` process started by torchrun
//! (`--no-python`) or by `srun`.
//!
//! Like `torch.distributed`'s default group, the group is process-wide: [`init`] joins
//! it once, and the code that must agree across ranks (gradients, the EMA codebook's
//! statistics, finiteness checks, the loader positions a checkpoint saves) asks
//! [`group`]. Without a launcher there is no group and every helper here is the
//! single-process identity, so a plain run never loads Python.

mod env;
mod group;
mod python;

use std::sync::OnceLock;
use std::time::Duration;

use tch::{Device, Tensor};

pub use env::Launch;
pub use group::{Group, Reduce};

/// Why a rank could not join its job.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The launcher's environment or the user's settings are wrong (exit 2).
    #[error("distributed launch: {0}")]
    Env(String),
    /// The embedded interpreter or torch could not be started.
    #[error("distributed launch: {0}")]
    Python(String),
    #[error("torch.distributed {what}: {msg}")]
    Collective { what: String, msg: String },
}

impl DistError {
    pub fn is_user_error(&self) -> bool {
        matches!(self, DistError::Env(_))
    }
}

static GROUP: OnceLock<Group> = OnceLock::new();

/// Joins the job `launch` describes, over NCCL when the trainer's `device` is CUDA and
/// Gloo otherwise; `timeout` bounds the rendezvous and every collective (a dead or hung
/// peer ends every rank within it). Once per process.
pub fn init(
    launch: Launch,
    device: Device,
    timeout: Duration,
) -> Result<&'static Group, DistError> {
    if GROUP.get().is_some() {
        return Err(DistError::Env("this process already joined a group".into()));
    }
    let backend = match device {
        Device::Cuda(_) => "nccl",
        _ => "gloo",
    };
    let group = Group::join(launch, backend, timeout)?;
    Ok(GROUP.get_or_init(|| group))
}

/// The group this process belongs to, if it is a rank of a distributed job.
pub fn group() -> Option<&'static Group> {
    GROUP.get()
}

/// This process's rank (0 when alone).
pub fn rank() -> usize {
    group().map_or(0, Group::rank)
}

/// The number of ranks (1 when alone).
pub fn world_size() -> usize {
    group().map_or(1, Group::world_size)
}

/// Rank 0 writes checkpoints, logs and metrics, and validates.
pub fn is_root() -> bool {
    rank() == 0
}

/// Rank 0's values of `tensors` on every rank.
pub fn broadcast_from_root(tensors: &[Tensor]) {
    if let Some(g) = group() {
        g.broadcast_(tensors, 0);
    }
}

/// The mean over ranks of `tensors` (gradients), in place.
pub fn average(tensors: &[Tensor]) {
    if let Some(g) = group() {
        g.all_reduce_(tensors, Reduce::Mean);
    }
}

/// The sum over ranks of `tensors` (the EMA codebook's per-batch counts and sums).
pub fn sum(tensors: &[Tensor]) {
    if let Some(g) = group() {
        g.all_reduce_(tensors, Reduce::Sum);
    }
}

/// Whether the scalar `loss` is finite on every rank, as a 0-dim bool on its device,
/// without reading it back: the same flag everywhere, so all ranks skip a step together
/// (or none does), and the step never waits for the host.
pub fn finite_everywhere(loss: &Tensor) -> Tensor {
    let local = loss.detach().isfinite();
    match group() {
        Some(g) => {
            // 1 where the loss is NaN or ±inf; the maximum says whether any rank has one.
            let bad = local.logical_not().to_kind(tch::Kind::Float).reshape([1]);
            g.all_reduce_(std::slice::from_ref(&bad), Reduce::Max);
            bad.eq(0.0).reshape([])
        }
        None => local,
    }
}

/// For each flag, whether it is set on any rank (one collective for all of them).
pub fn any<const N: usize>(flags: [bool; N], device: Device) -> [bool; N] {
    let Some(g) = group() else {
        return flags;
    };
    let values: Vec<f64> = flags.iter().map(|&f| f64::from(u8::from(f))).collect();
    let t = Tensor::from_slice(&values).to_device(device);
    g.all_reduce_(std::slice::from_ref(&t), Reduce::Max);
    let mut out = [false; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = t.double_value(&[i as i64]) > 0.0;
    }
    out
}

/// Every rank's `text` in rank order (`[text]` when alone).
pub fn gather_strings(text: &str) -> Vec<String> {
    match group() {
        Some(g) => g.all_gather_str(text),
        None => vec![text.to_string()],
    }
}
