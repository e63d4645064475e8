//! Checks a model folder's ONNX graphs against the tch model, through a reference
//! file that the training side writes.
//!
//! # Reference file (safetensors)
//!
//! At least one of the two input sets must be present; each needs all its keys.
//!
//! | key | dtype, shape | meaning |
//! |---|---|---|
//! | `frames` | U8 `[N, H, W, C]` | RGB frames (held-out clips and random frames) |
//! | `held_out_frames` | I64 `[]` (optional) | how many of `frames` (the first) are held-out clips; the report says when none were |
//! | `indices.<level>` | I64 `[N, H/f, W/f]` | tch tokens of `frames`, normalised in f32 by the manifest's `encode` formula; one per level (`quantize`, or `quantize_t` and `quantize_b`) |
//! | `recon_float` | F32/F64 `[N, C, H, W]` | tch decoder output on `indices.*`, normalised, unclamped |
//! | `images` | F32/F64 `[M, C, H', W']` | a normalised float batch (no u8 rounding: exact fixtures) |
//! | `images_indices.<level>` | I64 `[M, H'/f, W'/f]` | tch tokens of `images` |
//! | `images_recon_float` | F32/F64 `[M, C, H', W']` | tch decoder output on `images_indices.*` |
//!
//! # What is measured (per input set, then combined)
//! - token agreement: ONNX encoder (`encoder` on frames, `encoder_float` on images)
//!   vs the tch indices, position by position over every level;
//! - decoder max |Δ|: `decoder_float` on the *tch* indices vs the tch reconstruction,
//!   multiplied per channel onto the [0, 255] pixel scale;
//! - ΔPSNR: PSNR of the tch round trip (`recon_float`) against the input, vs PSNR of
//!   the ONNX round trip (ONNX encoder → `decoder_float`), both on the [0, 255] scale
//!   clamped to [0, 255], unrounded, over all pixels; |difference| in dB.
//!
//! Gates (issue 7): agreement ≥ 99.9 %, max |Δ| ≤ 1e-3, ΔPSNR ≤ 0.01 dB.

use std::path::Path;

use vqtok_core::hash::sha256_hex;
use vqtok_core::psnr::psnr_db;
use vqtok_runtime::{
    CaseReport, FRAMES, Gates, IMAGES, Input, Manifest, Output, PixelIo, Session, SessionOptions,
    Verification, VerifyReport,
};

use crate::error::{ExportError, Result};
use crate::tensor_file::TensorFile;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Frames per ORT call (bounds memory on big models).
    pub batch_size: usize,
    pub session: SessionOptions,
    pub gates: Gates,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            batch_size: 4,
            session: SessionOptions::default(),
            gates: Gates::default(),
        }
    }
}

/// PSNR over all values on the [0, 255] scale; an exact match reports 200 dB
/// instead of infinity so the report stays valid JSON.
fn psnr(target: &[f64], value: &[f64]) -> f64 {
    let mse = target
        .iter()
        .zip(value)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / target.len().max(1) as f64;
    psnr_db(mse).min(200.0)
}

/// Normalised NCHW floats → [0, 255], clamped.
fn nchw_to_pixels(io: &PixelIo, shape: &[usize], data: &[f32]) -> Vec<f64> {
    let (c, plane) = (shape[1], shape[2] * shape[3]);
    data.iter()
        .enumerate()
        .map(|(i, &x)| {
            io.to_pixel_scale((i / plane) % c, x as f64)
                .clamp(0.0, 255.0)
        })
        .collect()
}

/// Runs `session` over `n` items in batches of `batch`; `inputs(start, end)` gives
/// the batch's inputs. Outputs are concatenated along the batch axis.
fn run_batched<'a>(
    session: &mut Session,
    n: usize,
    batch: usize,
    mut inputs: impl FnMut(usize, usize) -> Vec<(String, Input<'a>)>,
) -> Result<Vec<(String, Output)>> {
    let mut acc: Vec<(String, Output)> = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let ins = inputs(start, end);
        let named: Vec<(&str, Input<'_>)> =
            ins.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let outs = session.run(&named)?;
        if acc.is_empty() {
            acc = outs;
        } else {
            for ((_, a), (_, o)) in acc.iter_mut().zip(outs) {
                match (a, o) {
                    (Output::I64(a), Output::I64(o)) => {
                        a.shape[0] += o.shape[0];
                        a.data.extend(o.data);
                    }
                    (Output::F32(a), Output::F32(o)) => {
                        a.shape[0] += o.shape[0];
                        a.data.extend(o.data);
                    }
                    (Output::U8(a), Output::U8(o)) => {
                        a.shape[0] += o.shape[0];
                        a.data.extend(o.data);
                    }
                    _ => {
                        return Err(ExportError::Graph(
                            "output types changed between batches".into(),
                        ));
                    }
                }
            }
        }
        start = end;
    }
    Ok(acc)
}

fn take_i64(outputs: &mut Vec<(String, Output)>, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
    match outputs
        .iter()
        .position(|(k, _)| k == name)
        .map(|i| outputs.remove(i))
    {
        Some((_, Output::I64(t))) => Ok((t.shape, t.data)),
        _ => Err(ExportError::Graph(format!(
            "graph gave no int64 output `{name}`"
        ))),
    }
}

fn take_f32(outputs: &mut Vec<(String, Output)>, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    match outputs
        .iter()
        .position(|(k, _)| k == name)
        .map(|i| outputs.remove(i))
    {
        Some((_, Output::F32(t))) => Ok((t.shape, t.data)),
        _ => Err(ExportError::Graph(format!(
            "graph gave no float output `{name}`"
        ))),
    }
}

type Grid = (Vec<usize>, Vec<i64>);

/// Rows `start..end` of a batch-major tensor, with the batch dimension adjusted.
fn rows<'a, T>(shape: &[usize], data: &'a [T], start: usize, end: usize) -> (Vec<usize>, &'a [T]) {
    let per: usize = shape[1..].iter().product();
    let mut s = shape.to_vec();
    s[0] = end - start;
    (s, &data[start * per..end * per])
}

/// Runs `decoder_float` on per-level index grids (in the manifest's level order).
fn decode(
    session: &mut Session,
    manifest: &Manifest,
    grids: &[Grid],
    batch: usize,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let n = grids[0].0[0];
    let mut outs = run_batched(session, n, batch, |s, e| {
        manifest
            .levels
            .iter()
            .zip(grids)
            .map(|(l, (shape, data))| {
                let (shape, data) = rows(shape, data, s, e);
                (l.indices.clone(), Input::I64(shape, data))
            })
            .collect()
    })?;
    take_f32(&mut outs, IMAGES)
}

/// One input set of the reference file, loaded and checked.
struct Case {
    input: &'static str,
    /// Shape `[N, H, W, C]` (frames) or `[N, C, H, W]` (images).
    shape: Vec<usize>,
    frames: Vec<u8>,
    images: Vec<f32>,
    indices: Vec<Grid>,
    recon: (Vec<usize>, Vec<f32>),
}

fn load_case(file: &TensorFile, manifest: &Manifest, float: bool) -> Result<Option<Case>> {
    let (input, idx_prefix, recon_key) = if float {
        (IMAGES, "images_indices", "images_recon_float")
    } else {
        (FRAMES, "indices", "recon_float")
    };
    if !file.contains(input) {
        return Ok(None);
    }
    let bad = |m: String| ExportError::bad_input(file.path(), m);
    let (shape, frames, images) = if float {
        let (s, d) = file.f32(input)?;
        (s, Vec::new(), d)
    } else {
        let (s, d) = file.u8(input)?;
        (s, d, Vec::new())
    };
    if shape.len() != 4 || shape[0] == 0 {
        return Err(bad(format!(
            "`{input}` must be a non-empty 4-D batch, got shape {shape:?}"
        )));
    }
    let (n, h, w, c) = if float {
        (shape[0], shape[2], shape[3], shape[1])
    } else {
        (shape[0], shape[1], shape[2], shape[3])
    };
    let channels = manifest.normalization.pixels.channels();
    if c != channels {
        return Err(bad(format!(
            "`{input}` has {c} channels, the model takes {channels}"
        )));
    }
    manifest
        .check_frame_size(h, w)
        .map_err(|m| bad(format!("`{input}`: {m}")))?;
    let mut indices = Vec::new();
    for l in &manifest.levels {
        let key = format!("{idx_prefix}.{}", l.name);
        if !file.contains(&key) {
            return Err(bad(format!("`{input}` is present but `{key}` is missing")));
        }
        let (s, d) = file.i64(&key)?;
        let want = vec![n, h / l.factor, w / l.factor];
        if s != want {
            return Err(bad(format!("`{key}` has shape {s:?}, expected {want:?}")));
        }
        indices.push((s, d));
    }
    if !file.contains(recon_key) {
        return Err(bad(format!(
            "`{input}` is present but `{recon_key}` is missing"
        )));
    }
    let recon = file.f32(recon_key)?;
    let r = &recon.0;
    if r.len() != 4 || r[0] != n || r[2] != h || r[3] != w {
        return Err(bad(format!(
            "`{recon_key}` has shape {r:?}, expected [{n}, channels, {h}, {w}]"
        )));
    }
    Ok(Some(Case {
        input,
        shape,
        frames,
        images,
        indices,
        recon,
    }))
}

/// Verifies the graphs in `model_dir` against `reference` (see the module docs).
pub fn verify(model_dir: &Path, reference: &Path, options: &VerifyOptions) -> Result<VerifyReport> {
    let manifest = Manifest::load(model_dir)?;
    manifest.check_files(model_dir)?;
    for key in ["encoder", "encoder_float", "decoder_float"] {
        manifest.graph_path(model_dir, key)?;
    }
    let file = TensorFile::open(reference)?;
    let cases: Vec<Case> = [false, true]
        .into_iter()
        .filter_map(|float| load_case(&file, &manifest, float).transpose())
        .collect::<Result<_>>()?;
    if cases.is_empty() {
        return Err(ExportError::bad_input(
            reference,
            "holds neither `frames` nor `images`; see vqtok_export::verify for the format",
        ));
    }
    let pixels = &manifest.normalization.pixels;
    let batch = options.batch_size.max(1);
    let mut decoder = Session::open(
        &manifest.graph_path(model_dir, "decoder_float")?,
        options.session,
    )?;
    let mut reports = Vec::new();
    for case in &cases {
        let float = case.input == IMAGES;
        let key = if float { "encoder_float" } else { "encoder" };
        let mut encoder = Session::open(&manifest.graph_path(model_dir, key)?, options.session)?;
        let n = case.shape[0];
        let mut outs = run_batched(&mut encoder, n, batch, |s, e| {
            let input = if float {
                let (shape, d) = rows(&case.shape, &case.images, s, e);
                Input::F32(shape, d)
            } else {
                let (shape, d) = rows(&case.shape, &case.frames, s, e);
                Input::U8(shape, d)
            };
            vec![(case.input.to_string(), input)]
        })?;
        let mut onnx_grids = Vec::new();
        let (mut tokens, mut matching) = (0u64, 0u64);
        for (l, (_, reference)) in manifest.levels.iter().zip(&case.indices) {
            let grid = take_i64(&mut outs, &l.indices)?;
            if grid.1.len() != reference.len() {
                return Err(ExportError::Graph(format!(
                    "{key} gave `{}` of shape {:?}, the reference has {} tokens",
                    l.indices,
                    grid.0,
                    reference.len()
                )));
            }
            tokens += reference.len() as u64;
            matching += grid.1.iter().zip(reference).filter(|(a, b)| a == b).count() as u64;
            onnx_grids.push(grid);
        }

        // Decoder alone, on the tch tokens.
        let (shape, recon) = decode(&mut decoder, &manifest, &case.indices, batch)?;
        if shape != case.recon.0 {
            return Err(ExportError::Graph(format!(
                "decoder_float gave shape {shape:?}, the reference reconstruction is {:?}",
                case.recon.0
            )));
        }
        let plane = shape[2] * shape[3];
        let max_diff = recon
            .iter()
            .zip(&case.recon.1)
            .enumerate()
            .map(|(i, (a, b))| {
                (*a as f64 - *b as f64).abs() * pixels.pixel_scale((i / plane) % shape[1])
            })
            .fold(0.0f64, f64::max);

        // Round trips against the input, on the pixel scale.
        let target: Vec<f64> = if float {
            nchw_to_pixels(pixels, &case.shape, &case.images)
        } else {
            // frames are NHWC; compare in NCHW order.
            let (n, h, w, c) = (case.shape[0], case.shape[1], case.shape[2], case.shape[3]);
            let mut t = vec![0f64; n * c * h * w];
            for (i, &v) in case.frames.iter().enumerate() {
                let (ch, rest) = (i % c, i / c);
                let (x, rest) = (rest % w, rest / w);
                let (y, b) = (rest % h, rest / h);
                t[((b * c + ch) * h + y) * w + x] = v as f64;
            }
            t
        };
        let (onnx_shape, onnx_recon) = decode(&mut decoder, &manifest, &onnx_grids, batch)?;
        let psnr_ref = psnr(
            &target,
            &nchw_to_pixels(pixels, &case.recon.0, &case.recon.1),
        );
        let psnr_onnx = psnr(&target, &nchw_to_pixels(pixels, &onnx_shape, &onnx_recon));
        let (h, w) = if float {
            (case.shape[2], case.shape[3])
        } else {
            (case.shape[1], case.shape[2])
        };
        reports.push(CaseReport {
            input: case.input.to_string(),
            count: n,
            height: h,
            width: w,
            tokens,
            matching_tokens: matching,
            token_agreement_pct: 100.0 * matching as f64 / tokens.max(1) as f64,
            decoder_max_abs_diff: max_diff,
            psnr_reference_db: psnr_ref,
            psnr_onnx_db: psnr_onnx,
            psnr_delta_db: (psnr_ref - psnr_onnx).abs(),
        });
    }

    let tokens: u64 = reports.iter().map(|r| r.tokens).sum();
    let matching: u64 = reports.iter().map(|r| r.matching_tokens).sum();
    let agreement = 100.0 * matching as f64 / tokens.max(1) as f64;
    let max_diff = reports
        .iter()
        .map(|r| r.decoder_max_abs_diff)
        .fold(0.0, f64::max);
    let psnr_delta = reports.iter().map(|r| r.psnr_delta_db).fold(0.0, f64::max);
    let gates = options.gates;
    let mut failures = Vec::new();
    if agreement < gates.min_token_agreement_pct {
        failures.push(format!(
            "token agreement {agreement:.4} % < {} % ({matching}/{tokens})",
            gates.min_token_agreement_pct
        ));
    }
    if max_diff > gates.max_decoder_abs_diff {
        failures.push(format!(
            "decoder max |Δ| {max_diff:.3e} > {:.0e} on the 0–255 scale",
            gates.max_decoder_abs_diff
        ));
    }
    if psnr_delta > gates.max_psnr_delta_db {
        failures.push(format!(
            "ΔPSNR {psnr_delta:.4} dB > {} dB",
            gates.max_psnr_delta_db
        ));
    }
    let notes = frames_note(&file, &cases)?.into_iter().collect();
    let reference_bytes = std::fs::read(reference).map_err(|e| ExportError::io(reference, e))?;
    Ok(VerifyReport {
        reference: reference
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        reference_sha256: sha256_hex(&reference_bytes),
        cases: reports,
        tokens,
        matching_tokens: matching,
        token_agreement_pct: agreement,
        decoder_max_abs_diff: max_diff,
        psnr_delta_db: psnr_delta,
        gates,
        passed: failures.is_empty(),
        failures,
        notes,
    })
}

/// What the u8 frames were, when the reference file says (`held_out_frames`): a check on
/// random frames alone says little about real video, and the report must not hide it.
fn frames_note(file: &TensorFile, cases: &[Case]) -> Result<Option<String>> {
    let Some(frames) = cases.iter().find(|c| c.input == FRAMES) else {
        return Ok(None);
    };
    if !file.contains("held_out_frames") {
        return Ok(None);
    }
    let (_, v) = file.i64("held_out_frames")?;
    let total = frames.shape[0] as i64;
    let held_out = v
        .first()
        .copied()
        .filter(|h| (0..=total).contains(h))
        .ok_or_else(|| {
            ExportError::bad_input(
                file.path(),
                format!("`held_out_frames` must be one value in [0, {total}], got {v:?}"),
            )
        })?;
    Ok(Some(if held_out == 0 {
        format!("no held-out clips were available: the {total} frames are random noise only")
    } else {
        format!(
            "{held_out} held-out frames and {} random frames",
            total - held_out
        )
    }))
}

/// Writes `report` into the folder's manifest (status `passed` or `failed`).
pub fn record(model_dir: &Path, report: &VerifyReport) -> Result<()> {
    let mut manifest = Manifest::load(model_dir)?;
    manifest.verification = if report.passed {
        Verification::Passed(report.clone())
    } else {
        Verification::Failed(report.clone())
    };
    Ok(manifest.save(model_dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_is_finite_for_exact_matches_and_follows_the_definition() {
        assert_eq!(psnr(&[1.0, 2.0], &[1.0, 2.0]), 200.0);
        // MSE 1 → 20·log10(255) = 48.1308 dB.
        let p = psnr(&[0.0, 10.0], &[1.0, 9.0]);
        assert!((p - 48.130_803_608).abs() < 1e-6, "{p}");
    }

    #[test]
    fn nchw_pixels_are_unnormalised_per_channel_and_clamped() {
        let io = PixelIo::new(
            &vqtok_config::Normalize::MeanStd {
                mean: [0.5, 0.25, 0.0],
                std: [0.5, 0.25, 1.0],
            },
            3,
        )
        .unwrap();
        // One pixel per channel: x̂ = 1, 0, 2 → (1·0.5+0.5)·255, (0·0.25+0.25)·255, 2·255 clamped.
        let px = nchw_to_pixels(&io, &[1, 3, 1, 1], &[1.0, 0.0, 2.0]);
        assert_eq!(px, vec![255.0, 63.75, 255.0]);
        assert_eq!(io.pixel_scale(1), 63.75);
    }
}
