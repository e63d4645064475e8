//! What a [`crate::VideoLoader`] produces, built from `param.json`.

use std::time::Duration;

use vqtok_config::{Config, DataArgs, ShortVideos};

use crate::error::{Result, VideoError};

pub use vqtok_config::Split;

#[derive(Debug, Clone, PartialEq)]
pub struct LoaderOptions {
    pub split: Split,
    /// Directories, globs, or `.txt` / `.jsonl` manifests (see [`crate::collect_sources`]).
    pub sources: Vec<String>,
    /// When train and val share `sources`: the hash-split fraction held out for validation.
    /// `Train` keeps items whose split position is ≥ it, `Val` those below.
    pub holdout: Option<f64>,
    pub batch_size: usize,
    pub sequence_length: usize,
    pub frame_stride: usize,
    /// Side of the square output.
    pub resolution: usize,
    pub short_videos: ShortVideos,
    /// Mirror half of the training clips (never validation).
    pub random_flip: bool,
    pub val_clips_per_video: usize,
    pub num_workers: usize,
    /// Batches decoded ahead of the consumer; bounds memory to about
    /// `prefetch_batches · batch_size` clips whatever the dataset size.
    pub prefetch_batches: usize,
    /// Longest a single clip may take to open and decode before the file is skipped.
    pub decode_timeout: Duration,
    pub extensions: Vec<String>,
    pub seed: u64,
    /// FFmpeg threads per worker (1: parallelism comes from the workers).
    pub decoder_threads: usize,
    pub max_side: u32,
    /// Do not print the one warning line per skipped file (the stats still count them).
    pub quiet: bool,
    /// Data-parallel training: this loader takes items `rank, rank + world_size, …` of
    /// the training sequence, so the ranks of a job read disjoint clips whose union is
    /// what one loader would read (validation ignores it: rank 0 validates alone).
    pub rank: usize,
    pub world_size: usize,
}

impl LoaderOptions {
    /// From a validated config: batch size and seed from `train_args`, the rest from
    /// `data_args`, resolution from [`Config::data_resolution`].
    pub fn from_config(cfg: &Config, split: Split) -> LoaderOptions {
        LoaderOptions::from_data_args(
            &cfg.data,
            split,
            cfg.train.batch_size,
            cfg.data_resolution(),
            cfg.train.seed,
        )
    }

    pub fn from_data_args(
        d: &DataArgs,
        split: Split,
        batch_size: usize,
        resolution: usize,
        seed: u64,
    ) -> LoaderOptions {
        let held_out = d.val.is_empty();
        let sources = if split == Split::Val && !held_out {
            d.val.clone()
        } else {
            d.train.clone()
        };
        LoaderOptions {
            split,
            sources,
            holdout: held_out.then_some(d.val_fraction),
            batch_size,
            sequence_length: d.sequence_length,
            frame_stride: d.frame_stride,
            resolution,
            short_videos: d.short_videos,
            random_flip: d.random_flip && split == Split::Train,
            val_clips_per_video: d.val_clips_per_video,
            num_workers: d.num_workers,
            prefetch_batches: d.prefetch_batches,
            decode_timeout: Duration::from_secs_f64(d.decode_timeout_s),
            extensions: d.extensions.clone(),
            seed,
            decoder_threads: 1,
            max_side: 16384,
            quiet: false,
            rank: 0,
            world_size: 1,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = |v: usize, field: &'static str| {
            if v == 0 {
                Err(VideoError::invalid(field, "must be > 0"))
            } else {
                Ok(())
            }
        };
        positive(self.batch_size, "batch_size")?;
        positive(self.sequence_length, "sequence_length")?;
        positive(self.frame_stride, "frame_stride")?;
        positive(self.resolution, "resolution")?;
        positive(self.num_workers, "num_workers")?;
        positive(self.prefetch_batches, "prefetch_batches")?;
        positive(self.val_clips_per_video, "val_clips_per_video")?;
        if self.rank >= self.world_size {
            return Err(VideoError::invalid(
                "rank",
                format!("rank {} of world size {}", self.rank, self.world_size),
            ));
        }
        if self.decode_timeout.is_zero() {
            return Err(VideoError::invalid("decode_timeout", "must be > 0"));
        }
        if let Some(f) = self.holdout
            && !(0.0..1.0).contains(&f)
        {
            return Err(VideoError::invalid(
                "val_fraction",
                format!("must be in [0, 1), got {f}"),
            ));
        }
        if self.sources.is_empty() {
            return Err(VideoError::invalid(
                "sources",
                format!("no {} sources given", self.split.as_str()),
            ));
        }
        Ok(())
    }
}
