//! Token file → video: the decoder graph on batches of index grids, frames handed to a
//! writer thread (so x264 overlaps the model), optionally compared with the source frames
//! the tokens were made from (PSNR).

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use vqtok_core::psnr::{psnr_db, squared_error_u8};
use vqtok_runtime::{Input, Output, Session};
use vqtok_video::{Frame, FrameSelect, OpenOptions, VideoReader, VideoWriter, WriterOptions};

use crate::error::{InferError, Result};
use crate::framing::source_region;
use crate::progress::FileProgress;
use crate::tokens::TokenFile;
use vqtok_runtime::ModelFolder;

/// Size of the written video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputSize {
    /// The model's frames as decoded (the tokenized size).
    #[default]
    Model,
    /// Undo the recorded geometry: drop pad bars and scale back to source pixels (a crop
    /// stays cropped; sides rounded down to even).
    Source,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Frames per decoder call.
    pub batch: usize,
    pub size: OutputSize,
    /// Frame rate of the video; `None`: the token file's (source rate / stride).
    pub fps: Option<f64>,
    /// libx264 constant rate factor of the written video.
    pub crf: u8,
    /// Re-read the source frames the tokens were made from and report PSNR against the
    /// decoded frames (at model size, before video compression).
    pub psnr: bool,
    /// Write a PNG of source frames above their reconstructions (at model size, before
    /// video compression), this many frames evenly spread over the clip.
    pub compare: Option<Compare>,
}

/// Where [`DecodeOptions::compare`] writes its picture and how many frames it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    pub path: PathBuf,
    pub frames: usize,
}

impl Compare {
    /// The positions (0-based, into the `total` decoded frames) the picture shows: evenly
    /// spread from the first frame to the last.
    fn positions(&self, total: usize) -> Vec<usize> {
        let n = self.frames.min(total);
        match n {
            0 => Vec::new(),
            1 => vec![0],
            _ => (0..n).map(|i| i * (total - 1) / (n - 1)).collect(),
        }
    }
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            batch: 8,
            size: OutputSize::Model,
            fps: None,
            crf: 18,
            psnr: false,
            compare: None,
        }
    }
}

/// What decoding did (`vqtokenize decode --json` prints it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decoded {
    /// The token file decoded.
    pub tokens: PathBuf,
    pub output: PathBuf,
    pub frames: usize,
    /// `[width, height]` of the written video.
    pub size: [usize; 2],
    pub fps: f64,
    pub seconds: f64,
    /// PSNR (dB) of the decoded frames against the source frames, when asked.
    pub psnr_db: Option<f64>,
    /// The comparison picture, when asked.
    pub comparison: Option<PathBuf>,
}

/// One line: what was written, how fast, and the PSNR when measured.
impl std::fmt::Display for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} → {}: {} frames at {}×{}, {:.3} fps, {:.2} frames/s",
            self.tokens.display(),
            self.output.display(),
            self.frames,
            self.size[0],
            self.size[1],
            self.fps,
            self.frames as f64 / self.seconds.max(1e-9),
        )?;
        if let Some(p) = self.psnr_db {
            write!(f, ", PSNR {p:.2} dB vs the source")?;
        }
        if let Some(c) = &self.comparison {
            write!(
                f,
                "\ncomparison (source above, reconstruction below): {}",
                c.display()
            )?;
        }
        Ok(())
    }
}

/// Refuses token files made by another model (by `ModelFolder::id`), and files that
/// claim the model but whose grids it could not have made (a crafted or edited file
/// would otherwise reach the decoder graph with shapes it cannot take).
pub fn check_model(model: &ModelFolder, tokens: &TokenFile, token_path: &Path) -> Result<()> {
    if tokens.meta.model_sha256 != model.id() {
        return Err(InferError::ModelMismatch {
            path: token_path.to_path_buf(),
            model: model.dir().to_path_buf(),
            found: tokens.meta.model_sha256.clone(),
            found_family: tokens.meta.model_family.clone(),
            expected: model.id().to_string(),
        });
    }
    let bad = |m: String| InferError::bad_input(token_path, m);
    let g = &tokens.meta.geometry;
    model
        .manifest()
        .check_frame_size(g.out_height, g.out_width)
        .map_err(|m| bad(format!("`geometry`: {m}")))?;
    let (got, want) = (&tokens.meta.levels, model.levels());
    if got.len() != want.len() {
        return Err(bad(format!(
            "{} code grids, the model has {}",
            got.len(),
            want.len()
        )));
    }
    for (i, (l, m)) in got.iter().zip(want).enumerate() {
        if l.tensor != m.indices || l.factor != m.factor || l.codebook_size > m.codebook_size {
            return Err(bad(format!(
                "`levels[{i}]` is `{}` at factor {} with {} codes; the model's is `{}` at \
                 factor {} with {} codes",
                l.tensor, l.factor, l.codebook_size, m.indices, m.factor, m.codebook_size
            )));
        }
    }
    Ok(())
}

/// Opens the source of `tokens` and checks it still has the recorded size.
fn open_source(tokens: &TokenFile) -> Result<VideoReader> {
    let m = &tokens.meta;
    let reader = VideoReader::open_with(&m.source.path, &OpenOptions::default())?;
    let g = m.geometry;
    let size = (reader.meta().width as usize, reader.meta().height as usize);
    if size != (g.src_width, g.src_height) {
        return Err(InferError::bad_input(
            &m.source.path,
            format!(
                "the source is {}×{} now, but was {}×{} when tokenized",
                size.0, size.1, g.src_width, g.src_height
            ),
        ));
    }
    Ok(reader)
}

/// Decodes `tokens` (from `token_path`) with `decoder` into the video `output`.
pub fn decode_tokens(
    model: &ModelFolder,
    decoder: &mut Session,
    tokens: &TokenFile,
    token_path: &Path,
    output: &Path,
    options: &DecodeOptions,
    progress: &dyn FileProgress,
) -> Result<Decoded> {
    let started = Instant::now();
    check_model(model, tokens, token_path)?;
    if options.batch == 0 {
        return Err(InferError::invalid("batch", "must be ≥ 1"));
    }
    let meta = &tokens.meta;
    let g = meta.geometry;
    let (mw, mh) = (g.out_width, g.out_height);
    let (region, source_size) = source_region(&g);
    let (ow, oh) = match options.size {
        OutputSize::Model => (mw, mh),
        OutputSize::Source => source_size,
    };
    let fps = options.fps.unwrap_or(meta.sampling.fps());
    let writer_options = WriterOptions {
        fps,
        crf: options.crf,
        ..WriterOptions::default()
    };
    if let Some(c) = &options.compare
        && c.frames == 0
    {
        return Err(InferError::invalid("compare-frames", "must be ≥ 1"));
    }
    // The recorded selection replays exactly the slots that were tokenized.
    let mut source_reader = if options.psnr || options.compare.is_some() {
        Some(open_source(tokens)?)
    } else {
        None
    };
    let source_select = FrameSelect {
        start_s: meta.sampling.start_s,
        duration_s: meta.sampling.duration_s,
        stride: meta.sampling.stride,
        fps: Some(meta.sampling.slot_fps),
        max_frames: meta.sampling.max_frames,
        size: Some((g.scaled_width, g.scaled_height)),
    };
    let mut source = match source_reader.as_mut() {
        Some(r) => Some(r.frames(&source_select)?),
        None => None,
    };
    let total = meta.frames();
    progress.start(Some(total as u64));
    let mut sse = 0.0;
    let shown = options
        .compare
        .as_ref()
        .map(|c| c.positions(total))
        .unwrap_or_default();
    let mut pairs = Vec::with_capacity(shown.len());
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = sync_channel::<Frame>(2 * options.batch);
        let (ready_tx, ready_rx) = sync_channel::<()>(1);
        // FFmpeg's encoder state is not Send: the writer lives on its thread.
        let writing = scope.spawn(move || -> Result<()> {
            let mut writer = VideoWriter::create(output, ow, oh, &writer_options)?;
            let _ = ready_tx.send(());
            for frame in rx {
                writer.write(&frame.data)?;
            }
            writer.finish()?;
            Ok(())
        });
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<()>>| {
            h.join()
                .map_err(|_| InferError::Internal("the video writer thread panicked".into()))?
        };
        if ready_rx.recv().is_err() {
            // The writer could not even open the file.
            return join(writing);
        }
        let mut run = || -> Result<()> {
            let mut t = 0;
            while t < total {
                let n = options.batch.min(total - t);
                let grids: Vec<Vec<i64>> = tokens
                    .levels
                    .iter()
                    .map(|l| l.frames(t, n).iter().map(|&v| v as i64).collect())
                    .collect();
                let inputs: Vec<(&str, Input<'_>)> = tokens
                    .levels
                    .iter()
                    .zip(&grids)
                    .map(|(l, data)| {
                        (
                            l.tensor.as_str(),
                            Input::I64(vec![n, l.shape[1], l.shape[2]], data),
                        )
                    })
                    .collect();
                let outputs = decoder.run(&inputs)?;
                let frames = match outputs.first() {
                    Some((_, Output::U8(o))) if o.shape == [n, mh, mw, 3] => &o.data,
                    other => {
                        return Err(InferError::Internal(format!(
                            "decoder output: expected u8 [{n}, {mh}, {mw}, 3], got {:?}",
                            other.map(|(_, o)| o.shape())
                        )));
                    }
                };
                for (k, data) in frames.chunks_exact(mw * mh * 3).enumerate() {
                    if let Some(src) = source.as_mut() {
                        let slot = meta.frame_indices[t + k];
                        let tf = match src.next() {
                            Some(f) => f?,
                            None => {
                                return Err(InferError::bad_input(
                                    &meta.source.path,
                                    format!("the source ends before slot {slot}"),
                                ));
                            }
                        };
                        if tf.index != slot {
                            return Err(InferError::bad_input(
                                &meta.source.path,
                                format!(
                                    "the source gives slot {} where {slot} was tokenized",
                                    tf.index
                                ),
                            ));
                        }
                        let original = g.place(&tf.frame)?;
                        sse += squared_error_u8(data, &original.data);
                        if shown.contains(&(t + k)) {
                            pairs.push((original, Frame::new(mw, mh, data.to_vec())?));
                        }
                    }
                    let frame = Frame::new(mw, mh, data.to_vec())?;
                    let out = match options.size {
                        OutputSize::Model => frame,
                        OutputSize::Source => to_source_size(&frame, region, (ow, oh))?,
                    };
                    if tx.send(out).is_err() {
                        // The writer failed; its error is reported below.
                        return Ok(());
                    }
                }
                progress.advance(n);
                t += n;
            }
            Ok(())
        };
        let result = run();
        drop(tx);
        let written = join(writing);
        result.and(written)
    })?;
    let psnr = options
        .psnr
        .then(|| psnr_db(sse / (total * mw * mh * 3) as f64));
    if let Some(c) = &options.compare {
        vqtok_video::write_comparison(&c.path, &pairs)?;
    }
    Ok(Decoded {
        tokens: token_path.to_path_buf(),
        output: output.to_path_buf(),
        frames: total,
        size: [ow, oh],
        fps,
        seconds: started.elapsed().as_secs_f64(),
        psnr_db: psnr,
        comparison: options.compare.as_ref().map(|c| c.path.clone()),
    })
}

/// Cuts `region` (x, y, w, h) out of a model-size frame and scales it to `size`.
fn to_source_size(
    frame: &Frame,
    (x, y, w, h): (usize, usize, usize, usize),
    size: (usize, usize),
) -> Result<Frame> {
    let mut data = Vec::with_capacity(w * h * 3);
    for row in y..y + h {
        let start = (row * frame.width + x) * 3;
        data.extend_from_slice(&frame.data[start..start + w * 3]);
    }
    let cut = Frame::new(w, h, data)?;
    Ok(vqtok_video::resize(&cut, size.0, size.1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compared_frames_spread_from_first_to_last() {
        let c = |frames| Compare {
            path: PathBuf::new(),
            frames,
        };
        assert_eq!(c(4).positions(57), vec![0, 18, 37, 56]);
        assert_eq!(c(4).positions(2), vec![0, 1]);
        assert_eq!(c(1).positions(10), vec![0]);
        assert!(c(3).positions(0).is_empty());
    }

    #[test]
    fn source_size_cuts_the_region_before_scaling() {
        // Left half black, right half white; keep only the right half, scale 2×.
        let data = (0..4)
            .flat_map(|_| (0..8).flat_map(|x| [if x < 4 { 0 } else { 255 }; 3]))
            .collect();
        let f = Frame::new(8, 4, data).unwrap();
        let out = to_source_size(&f, (4, 0, 4, 4), (8, 8)).unwrap();
        assert_eq!((out.width, out.height), (8, 8));
        assert!(out.data.iter().all(|&v| v == 255));
    }
}
