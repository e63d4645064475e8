//! The tch side of `vqtok-export verify`: runs a checkpoint's model on u8 frames and
//! writes the reference file the ONNX graphs are compared against (format documented
//! in vqtok-export's `verify` module): `frames` u8 `[N, H, W, 3]`, `indices.<level>`
//! int64 `[N, h, w]`, `recon_float` f32 `[N, 3, H, W]` (the decoder on those indices,
//! normalised, unclamped), and `held_out_frames` (how many of the frames, the first
//! ones, are held-out clips; the rest are random).

use std::path::Path;

use tch::{Device, Kind, Tensor};
use vqtok_config::Config;

use crate::loss::Split;
use crate::model::{LoadedModel, open_model};
use crate::train::TrainError;
use crate::train::data::DataSource;
use crate::train::pixels::PixelNorm;

/// Encodes `frames` (u8 `[N, H, W, 3]`) in f32 with the model `cfg` describes, its
/// weights from `weights` (a checkpoint's model.safetensors or an imported taming model),
/// and writes the reference file to `out`. Frames are normalised exactly as the u8
/// encoder graph does.
pub fn write_reference(
    cfg: &Config,
    weights: &Path,
    frames: &ReferenceFrames,
    device: Device,
    out: &Path,
) -> Result<(), TrainError> {
    let _no_grad = tch::no_grad_guard();
    let LoadedModel { vs: _vs, model } = open_model(&cfg.model, weights, device)?;
    let norm = PixelNorm::new(&cfg.data.normalize, device);
    let ReferenceFrames { frames, held_out } = frames;
    let mut named: Vec<(String, Tensor)> = vec![
        ("frames".into(), frames.to_kind(Kind::Uint8).contiguous()),
        ("held_out_frames".into(), Tensor::from(*held_out)),
    ];
    let mut indices_all: Vec<Vec<Tensor>> = Vec::new();
    let mut recon_all = Vec::new();
    // Small batches keep memory bounded for large models on the CPU.
    for chunk in frames.split(4, 0) {
        let x = norm.normalize_frames(&chunk);
        let indices = model.encode(&x)?;
        recon_all.push(
            model
                .decode_indices(&indices)?
                .to_kind(Kind::Float)
                .to_device(Device::Cpu),
        );
        indices_all.push(indices.iter().map(|t| t.to_device(Device::Cpu)).collect());
    }
    for (l, level) in cfg.model.levels().iter().enumerate() {
        let grids: Vec<Tensor> = indices_all.iter().map(|v| v[l].shallow_clone()).collect();
        named.push((
            format!("indices.{}", level.name),
            Tensor::cat(&grids, 0).to_kind(Kind::Int64),
        ));
    }
    named.push((
        "recon_float".into(),
        Tensor::cat(&recon_all, 0).contiguous(),
    ));
    Tensor::write_safetensors(&named, out)
        .map_err(|e| TrainError::Usage(format!("{}: {e}", out.display())))
}

/// The frames a reference is written for: `val_batches` batches of held-out clips from
/// `cfg`'s validation data (when there is any) plus `random` seeded noise frames.
pub fn reference_frames(
    cfg: &Config,
    val_batches: usize,
    random: i64,
) -> Result<ReferenceFrames, TrainError> {
    let r = cfg.data_resolution() as i64;
    let mut parts = Vec::new();
    if val_batches > 0 && !(cfg.data.train.is_empty() && cfg.data.val.is_empty()) {
        // Held-out clips make the check realistic; without the data (moved, another
        // machine) the random frames still check every graph.
        match DataSource::open(cfg, Split::Val, None) {
            Ok(mut data) => {
                for _ in 0..val_batches {
                    let Some(b) = data.next_batch()? else { break };
                    let [bb, d, h, w, c] = b.shape.map(|v| v as i64);
                    parts.push(Tensor::from_slice(&b.images).view([bb * d, h, w, c]));
                }
            }
            Err(e) => eprintln!(
                "warning: no held-out clips for the reference ({e}); using random frames only"
            ),
        }
    }
    let held_out = parts.iter().map(|p| p.size()[0]).sum();
    if random > 0 {
        tch::manual_seed(0x7e57);
        parts.push(
            Tensor::randint(256, [random, r, r, 3], (Kind::Int64, Device::Cpu))
                .to_kind(Kind::Uint8),
        );
    }
    if parts.is_empty() {
        return Err(TrainError::Usage(
            "no frames for the reference: give --data, or --random N > 0".into(),
        ));
    }
    Ok(ReferenceFrames {
        frames: Tensor::cat(&parts, 0),
        held_out,
    })
}

/// u8 frames `[N, H, W, 3]`: `held_out` held-out clip frames first, then random ones.
pub struct ReferenceFrames {
    pub frames: Tensor,
    pub held_out: i64,
}
