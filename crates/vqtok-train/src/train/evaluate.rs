//! Validation: the loss's own `val/*` values plus reconstruction quality (PSNR, SSIM,
//! LPIPS) and codebook usage over held-out clips. `vqtok-train eval` prints the same
//! table for any checkpoint.

use tch::Kind;
use vqtok_config::CodebookLevel;
use vqtok_core::psnr::psnr_db;

use crate::loss::{LossCalculator, Lpips, Reconstruction, Split};
use crate::model::{CodebookUsage, VqModel};
use crate::train::data::DataSource;
use crate::train::error::TrainError;
use crate::train::pixels::{PixelNorm, comparison_grid};
use crate::train::quality::{mse, ssim};

/// Averages of one validation pass, in a fixed order.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub step: u64,
    pub frames: usize,
    /// `val/…` keys; `val/rec_loss` is the one best-by-validation uses.
    pub values: Vec<(String, f64)>,
    /// Inputs above reconstructions for the first batch: (height, width, rgb).
    pub grid: Option<(u32, u32, Vec<u8>)>,
}

impl EvalReport {
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// A two-column table for the terminal.
    pub fn table(&self) -> String {
        let width = self.values.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!(
            "validation at step {} ({} frames)\n",
            self.step, self.frames
        );
        for (k, v) in &self.values {
            out.push_str(&format!("  {k:<width$}  {v:>12.6}\n"));
        }
        out
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
    lpips: Option<&Lpips>,
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
    let mut squared_error = 0.0;
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
        // PSNR of the pooled squared error (every frame has the same size), not a mean
        // of per-batch PSNRs, which would overweight the easy batches.
        squared_error += mse(&px_in, &px_out) * n;
        add("val/ssim", ssim(&px_in, &px_out), n);
        if let Some(lpips) = lpips {
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
    values.insert(
        at,
        ("val/psnr".into(), psnr_db(squared_error / frames as f64)),
    );
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
    })
}
