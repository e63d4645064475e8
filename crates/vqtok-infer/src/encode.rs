//! Video → token file, streaming: one thread decodes and resizes frames into batches, the
//! caller's thread runs the encoder (either engine's [`Encoder`]) on them, with a bounded
//! channel between the two so decoding overlaps inference, and the indices go straight to
//! the token file's spills ([`TokenWriter`]). Memory stays flat however long the video is: at most
//! [`QUEUE_BATCHES`] + 2 batches of frames exist at once, plus 8 bytes per frame for the
//! slot list.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Instant, UNIX_EPOCH};

use vqtok_video::{FrameSelect, Geometry, OpenOptions, VideoReader};

use crate::encoder::Encoder;
use crate::error::{InferError, Result};
use crate::framing::Framing;
use crate::progress::FileProgress;
use crate::token_writer::TokenWriter;
use crate::tokens::{IndexDtype, LevelGrid, Sampling, SourceInfo, TokenMeta};
use vqtok_runtime::ModelFolder;

/// Batches decoded ahead of the encoder.
pub const QUEUE_BATCHES: usize = 2;

/// Which frames of a video to tokenize.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Seconds from the start of the stream.
    pub start_s: f64,
    /// Seconds to cover; `None`: to the end.
    pub duration_s: Option<f64>,
    /// Every `stride`-th frame (slot) of the slot grid.
    pub stride: usize,
    /// Slot grid rate; `None`: the video's own frame rate.
    pub fps: Option<f64>,
    pub max_frames: Option<usize>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            start_s: 0.0,
            duration_s: None,
            stride: 1,
            fps: None,
            max_frames: None,
        }
    }
}

impl Selection {
    fn frame_select(&self, size: (usize, usize)) -> FrameSelect {
        FrameSelect {
            start_s: self.start_s,
            duration_s: self.duration_s,
            stride: self.stride,
            fps: self.fps,
            max_frames: self.max_frames,
            size: Some(size),
        }
    }

    /// Frames this selection should yield from a video of `frame_count` frames at `fps`
    /// (an estimate for progress bars: containers may miscount).
    pub fn expected_frames(&self, fps: f64, frame_count: u64) -> Option<u64> {
        if frame_count == 0 || fps <= 0.0 {
            return None;
        }
        let rate = self.fps.unwrap_or(fps);
        let total_s = frame_count as f64 / fps;
        let end_s = self
            .duration_s
            .map_or(total_s, |d| (self.start_s + d).min(total_s));
        let slots = ((end_s - self.start_s) * rate - 1e-6).ceil().max(0.0) as u64;
        let n = slots.div_ceil(self.stride.max(1) as u64);
        Some(self.max_frames.map_or(n, |m| n.min(m as u64)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EncodeOptions {
    pub selection: Selection,
    pub framing: Framing,
    /// Frames per encoder call.
    pub batch: usize,
    /// FFmpeg decoder threads (0: FFmpeg decides).
    pub decode_threads: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            selection: Selection::default(),
            framing: Framing::default(),
            batch: 8,
            decode_threads: 1,
        }
    }
}

/// What encoding one video did.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub output: PathBuf,
    pub frames: usize,
    pub tokens: u64,
    pub width: usize,
    pub height: usize,
    /// Wall time of the whole file.
    pub seconds: f64,
    /// Time inside the encoder.
    pub infer_seconds: f64,
    /// Time the encoder waited for decoded frames (0 when decoding keeps ahead).
    pub wait_seconds: f64,
}

/// A batch of model-sized frames `[n, h, w, 3]` and their slot indices.
struct Batch {
    frames: Vec<u8>,
    slots: Vec<u64>,
}

/// Decodes the selection into batches until the video ends, the selection is exhausted,
/// or the receiver hangs up (the encoder failed).
fn decode_batches(
    reader: &mut VideoReader,
    select: &FrameSelect,
    geometry: &Geometry,
    batch: usize,
    tx: SyncSender<Result<Batch>>,
) {
    let frame_bytes = geometry.out_width * geometry.out_height * 3;
    let new_batch = || Batch {
        frames: Vec::with_capacity(batch * frame_bytes),
        slots: Vec::with_capacity(batch),
    };
    let frames = match reader.frames(select) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Err(e.into()));
            return;
        }
    };
    let mut current = new_batch();
    for item in frames {
        let placed = item.and_then(|tf| Ok((tf.index, geometry.place(&tf.frame)?)));
        match placed {
            Ok((slot, frame)) => {
                current.frames.extend_from_slice(&frame.data);
                current.slots.push(slot);
                if current.slots.len() == batch
                    && tx
                        .send(Ok(std::mem::replace(&mut current, new_batch())))
                        .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.into()));
                return;
            }
        }
    }
    if !current.slots.is_empty() {
        let _ = tx.send(Ok(current));
    }
}

/// The source's identity for the token file (and for resume checks).
pub fn source_info(input: &Path, reader: &VideoReader) -> Result<SourceInfo> {
    let fs = std::fs::metadata(input).map_err(|e| InferError::io(input, e))?;
    let meta = reader.meta();
    Ok(SourceInfo {
        path: std::fs::canonicalize(input)
            .unwrap_or_else(|_| input.to_path_buf())
            .display()
            .to_string(),
        bytes: fs.len(),
        mtime_unix_s: mtime_unix_s(&fs),
        width: meta.width,
        height: meta.height,
        fps: meta.fps,
        duration_s: meta.duration_s,
        frame_count: meta.frame_count,
        codec: meta.codec.clone(),
    })
}

/// Modification time in seconds since the epoch (0 where the platform has none).
pub fn mtime_unix_s(m: &std::fs::Metadata) -> f64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs one batch through the encoder; appends its grids to `writer`.
fn encode_batch(
    model: &ModelFolder,
    encoder: &dyn Encoder,
    batch: &Batch,
    (w, h): (usize, usize),
    writer: &mut TokenWriter,
) -> Result<()> {
    let n = batch.slots.len();
    let outputs = encoder.encode(&batch.frames, n, (w, h))?;
    if outputs.len() != model.levels().len() {
        return Err(InferError::Internal(format!(
            "the {} encoder returned {} grids for {} levels",
            encoder.engine(),
            outputs.len(),
            model.levels().len()
        )));
    }
    for (info, grid) in model.levels().iter().zip(&outputs) {
        let want = n * (h / info.factor) * (w / info.factor);
        if grid.len() != want {
            return Err(InferError::Internal(format!(
                "encoder output `{}`: expected {want} indices ([{n}, {}, {}]), got {}",
                info.indices,
                h / info.factor,
                w / info.factor,
                grid.len()
            )));
        }
    }
    let grids: Vec<&[i64]> = outputs.iter().map(Vec::as_slice).collect();
    writer.push(n, &grids)
}

/// Tokenizes `input` into the token file `output` (written atomically).
pub fn encode_video(
    model: &ModelFolder,
    encoder: &dyn Encoder,
    input: &Path,
    output: &Path,
    options: &EncodeOptions,
    progress: &dyn FileProgress,
) -> Result<Encoded> {
    let started = Instant::now();
    if options.batch == 0 {
        return Err(InferError::invalid("batch", "must be ≥ 1"));
    }
    let mut reader = VideoReader::open_with(
        input,
        &OpenOptions {
            threads: options.decode_threads,
            ..OpenOptions::default()
        },
    )?;
    let source = source_info(input, &reader)?;
    let geometry =
        options
            .framing
            .geometry(model, source.width as usize, source.height as usize)?;
    let (w, h) = (geometry.out_width, geometry.out_height);
    let sel = &options.selection;
    let select = sel.frame_select((geometry.scaled_width, geometry.scaled_height));
    progress.start(sel.expected_frames(source.fps, source.frame_count));

    let grids: Vec<LevelGrid> = model
        .levels()
        .iter()
        .map(|l| LevelGrid {
            tensor: l.indices.clone(),
            factor: l.factor,
            codebook_size: l.codebook_size,
            height: h / l.factor,
            width: w / l.factor,
        })
        .collect();
    let mut writer = TokenWriter::create(
        output,
        grids.clone(),
        IndexDtype::for_codebook(model.codebook_size()),
    )?;
    let mut slots: Vec<u64> = Vec::new();
    let (mut infer_s, mut wait_s) = (0.0, 0.0);
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx): (_, Receiver<Result<Batch>>) = sync_channel(QUEUE_BATCHES);
        let (reader, select, geometry) = (&mut reader, &select, &geometry);
        scope.spawn(move || decode_batches(reader, select, geometry, options.batch, tx));
        loop {
            let t = Instant::now();
            let Ok(msg) = rx.recv() else { break };
            wait_s += t.elapsed().as_secs_f64();
            let batch = msg?;
            let t = Instant::now();
            encode_batch(model, encoder, &batch, (w, h), &mut writer)?;
            infer_s += t.elapsed().as_secs_f64();
            slots.extend_from_slice(&batch.slots);
            progress.advance(batch.slots.len());
        }
        Ok(())
    })?;
    if slots.is_empty() {
        return Err(InferError::bad_input(
            input,
            format!(
                "no frames to tokenize (start {} s, duration {:?}, video {:?} s)",
                sel.start_s, sel.duration_s, source.duration_s
            ),
        ));
    }

    let manifest = model.manifest();
    let meta = TokenMeta {
        vqtok_version: env!("CARGO_PKG_VERSION").to_string(),
        model_sha256: model.id().to_string(),
        model_family: manifest.family.clone(),
        model_type: manifest.model_type.clone(),
        model_config_hash: manifest.model_hash.clone(),
        index_dtype: IndexDtype::for_codebook(model.codebook_size()),
        levels: grids,
        sampling: Sampling {
            slot_fps: sel.fps.unwrap_or(source.fps),
            start_s: sel.start_s,
            duration_s: sel.duration_s,
            stride: sel.stride,
            max_frames: sel.max_frames,
        },
        source,
        frame_indices: slots,
        fit: options.framing.fit,
        size: options.framing.size.to_string(),
        geometry,
        engine: encoder.engine(),
        precision: encoder.precision(),
        complete: true,
    };
    let frames = meta.frames();
    let tokens = (frames * model.tokens_per_frame(h, w)) as u64;
    writer.finish(&meta)?;
    Ok(Encoded {
        output: output.to_path_buf(),
        frames,
        tokens,
        width: w,
        height: h,
        seconds: started.elapsed().as_secs_f64(),
        infer_seconds: infer_s,
        wait_seconds: wait_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_frames_follow_start_duration_stride_and_fps() {
        let all = Selection::default();
        assert_eq!(all.expected_frames(25.0, 100), Some(100));
        let s = Selection {
            start_s: 1.0,
            duration_s: Some(2.0),
            stride: 2,
            ..Selection::default()
        };
        // Slots 25 … 74 at 25 fps, every second one.
        assert_eq!(s.expected_frames(25.0, 100), Some(25));
        let resampled = Selection {
            fps: Some(10.0),
            max_frames: Some(7),
            ..Selection::default()
        };
        assert_eq!(resampled.expected_frames(25.0, 100), Some(7));
        // A duration past the end is cut at the end; unknown counts stay unknown.
        let long = Selection {
            start_s: 3.0,
            duration_s: Some(10.0),
            ..Selection::default()
        };
        assert_eq!(long.expected_frames(25.0, 100), Some(25));
        assert_eq!(all.expected_frames(25.0, 0), None);
    }
}
