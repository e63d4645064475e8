//! One work item: open a file, choose the clip, decode, crop. Runs on a worker thread and
//! depends only on the item's key (seed, epoch, file, clip number), never on which worker runs
//! it or when — that is what makes batches independent of the worker count.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use vqtok_config::ShortVideos;

use crate::clip::{ClipPlan, ClipShape};
use crate::error::{Result, SkipReason, VideoError};
use crate::loader::{LoaderOptions, Split};
use crate::media::Media;
use crate::reader::{OpenOptions, slot_at};
use crate::rng::Rng;
use crate::source::MediaItem;
use crate::spatial::{Crop, Geometry};

/// Tag of the per-clip random stream (the epoch shuffle uses another).
pub(crate) const CLIP_STREAM: u64 = 1;

/// Where a clip in a batch came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipInfo {
    pub path: PathBuf,
    /// Index of the file in the loader's file list.
    pub file_index: usize,
    pub epoch: u64,
    /// First frame (slot at `fps`, see [`crate::VideoReader`]), counted from the file's start.
    pub start_frame: u64,
    /// Every frame of the clip, in clip order (wrapped modulo the length when looped).
    pub frame_indices: Vec<u64>,
    pub fps: f64,
    pub looped: bool,
    /// Resize, crop and flip applied to every frame.
    pub geometry: Geometry,
}

/// A decoded clip: `sequence_length × resolution × resolution × 3` bytes.
pub(crate) struct Clip {
    pub(crate) info: ClipInfo,
    pub(crate) data: Vec<u8>,
}

/// What one work item is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Task {
    pub(crate) file: usize,
    pub(crate) epoch: u64,
    /// Validation: which of the file's evenly spaced clips.
    pub(crate) val_clip: usize,
}

pub(crate) enum Made {
    Clip(Clip),
    /// Validation asked for more clips than the video has distinct starts.
    Nothing,
}

/// The random draws of a training clip, in a fixed order.
struct Draws {
    start: f64,
    crop_x: f64,
    crop_y: f64,
    flip: bool,
}

pub(crate) fn make(
    opts: &LoaderOptions,
    item: &MediaItem,
    task: Task,
    claimed: Instant,
) -> Result<Made> {
    let draws = match opts.split {
        Split::Train => {
            let mut r = Rng::derive(opts.seed, &[CLIP_STREAM, task.epoch, task.file as u64]);
            Some(Draws {
                start: r.unit(),
                crop_x: r.unit(),
                crop_y: r.unit(),
                flip: r.unit() < 0.5,
            })
        }
        Split::Val => None,
    };
    let deadline = claimed + opts.decode_timeout;
    let open = OpenOptions {
        timeout: Some(opts.decode_timeout),
        threads: opts.decoder_threads,
        max_side: opts.max_side,
    };
    let path = &item.path;
    let mut media = Media::open(path, &open, deadline)?;
    let fps = media.fps();
    let (w, h) = media.size();
    let res = opts.resolution;
    // A 10000×3 strip would become a 853333×256 frame: refuse extreme aspect ratios.
    if w.max(h) > 16 * w.min(h) {
        return Err(VideoError::file(
            path,
            SkipReason::AbsurdResolution,
            format!("{w}×{h} aspect ratio over 16:1"),
        ));
    }

    let lo = item.start_s.map_or(0, |s| slot_at(s, fps));
    let end = item.end_s.map(|e| slot_at(e, fps));
    let usable = |total: u64| end.unwrap_or(total).min(total).saturating_sub(lo);
    let d = opts.sequence_length;
    let shape = ClipShape {
        len: d,
        stride: opts.frame_stride,
        allow_loop: opts.short_videos == ShortVideos::Loop,
    };
    let plan_for = |n: u64| -> Result<Option<ClipPlan>> {
        let plan = match &draws {
            Some(dr) => shape.train(n, dr.start),
            None => {
                let clips = shape.val(n, opts.val_clips_per_video);
                if !clips.is_empty() && task.val_clip >= clips.len() {
                    return Ok(None);
                }
                clips.into_iter().nth(task.val_clip)
            }
        };
        match plan {
            Some(p) => Ok(Some(p)),
            None => Err(VideoError::file(
                path,
                SkipReason::TooShort,
                format!("{n} frames, a clip spans {}", shape.span()),
            )),
        }
    };

    let mut geometry = Geometry::short_side_crop(w, h, res, Crop::Centre)?;
    if let Some(dr) = &draws {
        let x = (dr.crop_x * (geometry.scaled_width - res + 1) as f64) as usize;
        let y = (dr.crop_y * (geometry.scaled_height - res + 1) as f64) as usize;
        geometry = Geometry::short_side_crop(w, h, res, Crop::At { x, y })?;
        geometry.flip = opts.random_flip && dr.flip;
    }
    let size = (geometry.scaled_width, geometry.scaled_height);

    let mut n = usable(media.frame_count()?);
    let mut recounted = false;
    loop {
        let Some(plan) = plan_for(n)? else {
            return Ok(Made::Nothing);
        };
        let mut slots: Vec<u64> = plan.indices.iter().map(|i| lo + i).collect();
        slots.sort_unstable();
        slots.dedup();
        let (frames, ended) = media.read(&slots, size)?;
        if frames.len() < slots.len() {
            // The container over-stated the length (or the file is cut short): count what is
            // really there once and re-plan with the same draws.
            let exact = if ended && !recounted {
                Some(usable(media.recount()?))
            } else {
                None
            };
            match exact {
                Some(m) if m < n => {
                    n = m;
                    recounted = true;
                    continue;
                }
                _ => return Err(media.short_read(path, frames.len(), slots.len())),
            }
        }
        let mut data = Vec::with_capacity(d * res * res * 3);
        for &i in &plan.indices {
            let k = slots
                .binary_search(&(lo + i))
                .map_err(|_| VideoError::Internal("clip slot lost".into()))?;
            data.extend_from_slice(&geometry.place(&frames[k])?.data);
        }
        return Ok(Made::Clip(Clip {
            info: ClipInfo {
                path: path.clone(),
                file_index: task.file,
                epoch: task.epoch,
                start_frame: lo + plan.start,
                frame_indices: plan.indices.iter().map(|i| lo + i).collect(),
                fps,
                looped: plan.looped,
                geometry,
            },
            data,
        }));
    }
}
