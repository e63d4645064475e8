//! Validation: the loss's own `val/*` values plus reconstruction quality (PSNR, SSIM,
//! LPIPS) and codebook usage over held-out clips. `vqtok-train eval` prints the same
//! table for any checkpoint.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};
use vqtok_config::{CodebookLevel, Config};
use vqtok_run::Checkpoint;

use crate::loss::{LossCalculator, LossOptions, Lpips, Reconstruction, Split, lpips_weights_path};
use crate::model::{CodebookUsage, LoadedModel, VqModel, open_model};
use crate::train::data::DataSource;
use crate::train::error::TrainError;
use crate::train::pixels::{PixelNorm, comparison_grid};
use crate::train::quality::{PooledPsnr, mse, ssim};

/// Averages of one validation pass, in a fixed order.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub step: u64,
    pub frames: usize,
    /// `val/…` keys; `val/rec_loss` is the one best-by-validation uses.
    pub values: Vec<(String, f64)>,
    /// Inputs above reconstructions for the first batch: (height, width, rgb).
    pub grid: Option<(u32, u32, Vec<u8>)>,
    /// What the report could not include, and why (e.g. LPIPS without its weights).
    pub notes: Vec<String>,
}

impl EvalReport {
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// A two-column table for the terminal, then the notes.
impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self.values.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        writeln!(
            f,
            "validation at step {} ({} frames)",
            self.step, self.frames
        )?;
        for (k, v) in &self.values {
            writeln!(f, "  {k:<width$}  {v:>12.6}")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}

/// Runs `model` over up to `max_batches` batches of `data` (one pass), without gradients.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &dyn VqModel,
    levels: &[CodebookLevel],
    loss: &LossCalculator,
    norm: &PixelNorm,
    data: &mut DataSource,
    max_batches: usize,
    lpips: &Result<Lpips, String>,
    step: u64,
) -> Result<EvalReport, TrainError> {
    let _no_grad = tch::no_grad_guard();
    let mut sums: Vec<(String, f64)> = Vec::new();
    let mut add = |key: &str, value: f64, weight: f64| match sums.iter_mut().find(|(k, _)| k == key)
    {
        Some((_, s)) => *s += value * weight,
        None => sums.push((key.to_string(), value * weight)),
    };
    let mut usage: Vec<CodebookUsage> = Vec::new();
    let mut frames = 0usize;
    let mut psnr = PooledPsnr::default();
    let mut grid = None;
    let mut batches = 0;
    while batches < max_batches {
        let Some(batch) = data.next_batch()? else {
            break;
        };
        batches += 1;
        let x = norm.model_input(&batch);
        let n = x.size()[0] as f64;
        let out = model.forward_t(&x, false)?;
        let last_layer = model.last_layer();
        let r = Reconstruction {
            inputs: &x,
            recon: &out.recon,
            vq_loss: &out.vq_loss,
            last_layer: &last_layer,
        };
        let mut log = loss.generator_step(&r, step, Split::Val)?.log.scalars();
        if let Some(d) = loss.discriminator_log(&r, step, Split::Val) {
            log.extend(d.scalars());
        }
        for (k, v) in log {
            add(&k, v, n);
        }
        let px_in = norm.to_pixels(&x);
        let px_out = norm.to_pixels(&out.recon);
        psnr.add(mse(&px_in, &px_out), n);
        add("val/ssim", ssim(&px_in, &px_out), n);
        if let Ok(lpips) = lpips {
            // LPIPS takes [-1, 1] RGB whatever the model's normalisation.
            let d = lpips.forward(&(&px_in / 127.5 - 1.0), &(&px_out / 127.5 - 1.0));
            add("val/lpips", d.mean(Kind::Double).double_value(&[]), n);
        }
        if usage.is_empty() {
            usage = levels
                .iter()
                .map(|l| CodebookUsage::new(l.codebook_size as i64, x.device()))
                .collect();
            grid = Some(comparison_grid(norm, &x, &out.recon, 4));
        }
        for (u, idx) in usage.iter_mut().zip(&out.indices) {
            u.update(idx);
        }
        frames += n as usize;
    }
    if frames == 0 {
        return Err(TrainError::Data(
            "the validation source yielded no clips".into(),
        ));
    }
    let mut values: Vec<(String, f64)> = sums
        .into_iter()
        .map(|(k, s)| (k, s / frames as f64))
        .collect();
    let at = values
        .iter()
        .position(|(k, _)| k == "val/ssim")
        .unwrap_or(values.len());
    values.insert(at, ("val/psnr".into(), psnr.db()));
    for (level, u) in levels.iter().zip(&usage) {
        let key = if levels.len() == 1 {
            "val/codebook_usage".to_string()
        } else {
            format!("val/codebook_usage/{}", level.name)
        };
        // Percent, as train/codebook_usage.
        values.push((key, 100.0 * u.usage()));
    }
    Ok(EvalReport {
        step,
        frames,
        values,
        grid,
        notes: lpips.as_ref().err().cloned().into_iter().collect(),
    })
}

/// The LPIPS network validation reports `val/lpips` with. Without its weights there is no
/// such column, which the report says (`EvalReport::notes`) rather than leaving it out
/// silently.
pub fn validation_lpips(device: Device) -> Result<Result<Lpips, String>, TrainError> {
    match lpips_weights_path(None) {
        Ok(p) if p.exists() => Ok(Ok(Lpips::load(&p, device, Kind::Float)?)),
        Ok(p) => Ok(Err(format!(
            "val/lpips not computed: no LPIPS weights at {} (`cargo xtask setup` makes them)",
            p.display()
        ))),
        Err(e) => Ok(Err(format!("val/lpips not computed: {e}"))),
    }
}

/// `vqtok-train eval`: the validation report of checkpoint `ck` with `cfg`'s validation
/// data (at most `batches` batches).
pub fn eval_checkpoint(
    cfg: &Config,
    ck: &Checkpoint,
    device: Device,
    batches: usize,
) -> Result<EvalReport, TrainError> {
    let LoadedModel { vs: _vs, model } = open_model(&cfg.model, &ck.model_path(), device)?;
    let mut calc = LossCalculator::new(cfg, &LossOptions::new(device))?;
    let named: HashMap<String, Tensor> = Tensor::read_safetensors(ck.model_path())?
        .into_iter()
        .collect();
    // Validation needs the discriminator's weights only, not its optimizer.
    calc.load_checkpoint_state(&named, None, &ck.model_path())?;
    let lpips = validation_lpips(device)?;
    let norm = PixelNorm::new(&cfg.data.normalize, device);
    let mut data = DataSource::open(cfg, Split::Val, None)?;
    evaluate(
        model.as_ref(),
        &cfg.model.levels(),
        &calc,
        &norm,
        &mut data,
        batches,
        &lpips,
        ck.state()?.step,
    )
}
