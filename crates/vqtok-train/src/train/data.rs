//! Where training batches come from: real videos through vqtok-video's loader (the
//! seed's `video_pipe`), or `synthetic` moving patterns for benchmarks on machines
//! without FFmpeg (and without any video at hand).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vqtok_config::Config;

use crate::loss::Split;
use crate::train::error::TrainError;

/// `data_args.train` / `--data` value selecting the synthetic source (`synthetic:N`
/// for N distinct videos; default 16).
pub const SYNTHETIC: &str = "synthetic";

/// One batch in the seed's layout: u8 `[b, d, h, w, 3]` plus where each clip came from.
pub struct ClipBatch {
    pub images: Vec<u8>,
    pub shape: [usize; 5],
    pub paths: Vec<String>,
}

pub enum DataSource {
    #[cfg(feature = "video")]
    Video(Box<vqtok_video::VideoLoader>),
    Synthetic(Synthetic),
}

/// The position of a source, saved in `train_state.json` for exact resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataState {
    #[cfg(feature = "video")]
    Video(vqtok_video::LoaderState),
    Synthetic {
        position: u64,
    },
}

/// Checks, before step 1, the data the run's validations will read, so that a run does
/// not die at its first validation: every `data_args.val` source must name files (the
/// scan's error names the one that does not).
/// Without it the split is by file (a hash of each path against `val_fraction`), and a
/// corpus of one video, or of a few, can leave one side empty: the result then says why
/// the run cannot validate, and such a run trains on every file without validation
/// rather than die at the first validation or, worse, find no training data. A source
/// scan, not a loader: nothing is decoded here.
pub fn validation_problem(cfg: &Config) -> Result<Option<String>, TrainError> {
    let d = &cfg.data;
    if d.train
        .iter()
        .chain(&d.val)
        .any(|s| s.starts_with(SYNTHETIC))
    {
        return Ok(None);
    }
    if !d.val.is_empty() {
        scan(&d.val, &d.extensions)?;
        return Ok(None);
    }
    if d.val_fraction <= 0.0 {
        return Ok(Some(
            "data_args.val_fraction is 0 and data_args.val is empty".into(),
        ));
    }
    let files = scan(&d.train, &d.extensions)?;
    let held_out = files.iter().filter(|(_, p)| *p < d.val_fraction).count();
    if held_out != 0 && held_out != files.len() {
        return Ok(None);
    }
    let mut names: Vec<String> = files
        .iter()
        .take(3)
        .map(|(path, _)| path.display().to_string())
        .collect();
    if files.len() > 3 {
        names.push("…".into());
    }
    Ok(Some(format!(
        "{held_out} of the {} training files ({}) fall in the held-out part of the split \
         (val_fraction {}); give data_args.val to validate",
        files.len(),
        names.join(", "),
        d.val_fraction
    )))
}

/// The files `specs` name, each with its position in the train/val hash split.
#[cfg(feature = "video")]
fn scan(specs: &[String], extensions: &[String]) -> Result<Vec<(PathBuf, f64)>, TrainError> {
    let items = vqtok_video::collect_sources(specs, extensions)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    Ok(items
        .into_iter()
        .map(|i| {
            let position = vqtok_video::split_position(&i.split_key);
            (i.path, position)
        })
        .collect())
}

#[cfg(not(feature = "video"))]
fn scan(_: &[String], _: &[String]) -> Result<Vec<(PathBuf, f64)>, TrainError> {
    Err(TrainError::Usage(format!(
        "this build has no video support (feature `video` off); only `--data {SYNTHETIC}` works"
    )))
}

impl DataSource {
    /// Opens the source for `split` (train: endless; val: one deterministic pass), at
    /// `resume`'s position when given.
    pub fn open(
        cfg: &Config,
        split: Split,
        resume: Option<&DataState>,
    ) -> Result<DataSource, TrainError> {
        DataSource::open_rank(cfg, split, resume, 0, 1)
    }

    /// [`DataSource::open`] for rank `rank` of a data-parallel job of `world_size`: the
    /// training source yields clips `rank, rank + world_size, …` of the one sequence, so the
    /// ranks' batches are disjoint and together are what one process with a batch
    /// `world_size` times larger would read. Validation is not split (rank 0 validates).
    pub fn open_rank(
        cfg: &Config,
        split: Split,
        resume: Option<&DataState>,
        rank: usize,
        world_size: usize,
    ) -> Result<DataSource, TrainError> {
        let (rank, world_size) = if split == Split::Train {
            (rank, world_size)
        } else {
            (0, 1)
        };
        let sources = if split == Split::Val && !cfg.data.val.is_empty() {
            &cfg.data.val
        } else {
            &cfg.data.train
        };
        if let Some(spec) = sources.iter().find(|s| s.starts_with(SYNTHETIC)) {
            if sources.len() > 1 {
                return Err(TrainError::Usage(format!(
                    "`{spec}` cannot be mixed with other data sources"
                )));
            }
            let position = match resume {
                Some(DataState::Synthetic { position }) => *position,
                // Only reachable when the video feature adds DataState::Video.
                #[cfg_attr(not(feature = "video"), allow(unreachable_patterns))]
                Some(_) => {
                    return Err(TrainError::Usage(
                        "the checkpoint's data position is not a synthetic source's".into(),
                    ));
                }
                None => 0,
            };
            return Ok(DataSource::Synthetic(Synthetic::new(
                cfg,
                split,
                spec,
                position,
                (rank as u64, world_size as u64),
            )?));
        }
        Self::open_video(cfg, split, resume, rank, world_size)
    }

    #[cfg(feature = "video")]
    fn open_video(
        cfg: &Config,
        split: Split,
        resume: Option<&DataState>,
        rank: usize,
        world_size: usize,
    ) -> Result<DataSource, TrainError> {
        use vqtok_video::{LoaderOptions, VideoLoader};
        if cfg.data.train.is_empty() {
            return Err(TrainError::Usage(
                "no training data: pass --data DIR|GLOB|MANIFEST or set data_args.train".into(),
            ));
        }
        let opts = LoaderOptions {
            rank,
            world_size,
            ..LoaderOptions::from_config(cfg, split)
        };
        let loader = match resume {
            Some(DataState::Video(state)) => VideoLoader::resume(opts, state),
            Some(_) => {
                return Err(TrainError::Usage(
                    "the checkpoint's data position is not a video loader's".into(),
                ));
            }
            None => VideoLoader::new(opts),
        }
        .map_err(|e| TrainError::Data(e.to_string()))?;
        Ok(DataSource::Video(Box::new(loader)))
    }

    #[cfg(not(feature = "video"))]
    fn open_video(
        _: &Config,
        _: Split,
        _: Option<&DataState>,
        _: usize,
        _: usize,
    ) -> Result<DataSource, TrainError> {
        Err(TrainError::Usage(format!(
            "this build has no video support (feature `video` off); only `--data {SYNTHETIC}` works"
        )))
    }

    /// The next batch; `None` ends a validation pass (training never ends).
    pub fn next_batch(&mut self) -> Result<Option<ClipBatch>, TrainError> {
        match self {
            #[cfg(feature = "video")]
            DataSource::Video(loader) => Ok(loader
                .next_batch()
                .map_err(|e| TrainError::Data(e.to_string()))?
                .map(|b| ClipBatch {
                    images: b.images,
                    shape: b.shape,
                    paths: b.paths.iter().map(|p| p.display().to_string()).collect(),
                })),
            DataSource::Synthetic(s) => Ok(s.next_batch()),
        }
    }

    pub fn state(&self) -> DataState {
        match self {
            #[cfg(feature = "video")]
            DataSource::Video(loader) => DataState::Video(loader.state()),
            DataSource::Synthetic(s) => DataState::Synthetic {
                position: s.position,
            },
        }
    }

    /// One line on what was read and skipped.
    pub fn summary(&self) -> String {
        match self {
            #[cfg(feature = "video")]
            DataSource::Video(loader) => loader.stats().summary(),
            DataSource::Synthetic(s) => format!(
                "synthetic: {} videos, {} batches served",
                s.videos, s.position
            ),
        }
    }
}

/// Deterministic synthetic clips: per video a colour gradient with a moving square and
/// a moving stripe, so consecutive frames differ and codes have structure to learn.
/// Batches are drawn ahead on a background thread, as the video loader does, so the
/// trainer never waits on them.
pub struct Synthetic {
    videos: u64,
    /// Batches served so far.
    position: u64,
    rx: std::sync::mpsc::Receiver<ClipBatch>,
}

/// What the drawing thread needs.
#[derive(Clone, Copy)]
struct Pattern {
    videos: u64,
    batch: usize,
    frames: usize,
    stride: usize,
    res: usize,
    seed: u64,
    /// Validation: a fixed number of batches per pass.
    limit: Option<u64>,
    /// (rank, world size): this source draws clips `rank, rank + world size, …`.
    part: (u64, u64),
}

impl Synthetic {
    fn new(
        cfg: &Config,
        split: Split,
        spec: &str,
        position: u64,
        part: (u64, u64),
    ) -> Result<Synthetic, TrainError> {
        let videos = match spec.strip_prefix(SYNTHETIC) {
            Some("") => 16,
            Some(n) => n
                .strip_prefix(':')
                .and_then(|n| n.parse().ok())
                .filter(|&n| n >= 1)
                .ok_or_else(|| {
                    TrainError::Usage(format!(
                        "`{spec}`: expected `{SYNTHETIC}` or `{SYNTHETIC}:N` with N ≥ 1"
                    ))
                })?,
            None => unreachable!("caller matched the prefix"),
        };
        let batch = cfg.train.batch_size;
        let pattern = Pattern {
            videos,
            batch,
            frames: cfg.data.sequence_length,
            stride: cfg.data.frame_stride,
            res: cfg.data_resolution(),
            // Validation clips come from other start times than training ones.
            seed: cfg.train.seed
                ^ if split == Split::Val {
                    0x0005_eed0_f7a1
                } else {
                    0
                },
            limit: (split == Split::Val).then(|| {
                (videos * cfg.data.val_clips_per_video as u64)
                    .div_ceil(batch as u64)
                    .max(1)
            }),
            part,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.data.prefetch_batches.max(1));
        std::thread::spawn(move || {
            let mut next = position;
            while pattern.limit.is_none_or(|n| next < n) {
                if tx.send(pattern.batch(next)).is_err() {
                    break; // the source was dropped
                }
                next += 1;
            }
        });
        Ok(Synthetic {
            videos,
            position,
            rx,
        })
    }

    fn next_batch(&mut self) -> Option<ClipBatch> {
        let batch = self.rx.recv().ok()?;
        self.position += 1;
        Some(batch)
    }
}

impl Pattern {
    fn batch(&self, index: u64) -> ClipBatch {
        let (b, d, r) = (self.batch, self.frames, self.res);
        let mut images = vec![0u8; b * d * r * r * 3];
        let mut paths = Vec::with_capacity(b);
        for i in 0..b {
            let (rank, world_size) = self.part;
            let clip = (index * b as u64 + i as u64) * world_size + rank;
            let video = clip % self.videos;
            let start = splitmix(self.seed ^ clip) % 600;
            paths.push(format!("{SYNTHETIC}/{video:04}"));
            for j in 0..d {
                let t = (start + (j * self.stride) as u64) as f64;
                let frame = &mut images[(i * d + j) * r * r * 3..][..r * r * 3];
                draw(frame, r, video, t);
            }
        }
        ClipBatch {
            images,
            shape: [b, d, r, r, 3],
            paths,
        }
    }
}

fn draw(frame: &mut [u8], r: usize, video: u64, t: f64) {
    let h = splitmix(video);
    let hue = [
        (h & 255) as f64,
        ((h >> 8) & 255) as f64,
        ((h >> 16) & 255) as f64,
    ];
    let size = r / 4 + (h >> 24) as usize % (r / 4).max(1);
    let (vx, vy) = (1.0 + ((h >> 32) % 3) as f64, 1.0 + ((h >> 40) % 2) as f64);
    let sx = (t * vx) as usize % r;
    let sy = (t * vy) as usize % r;
    let stripe = (t * 0.5) as usize % r;
    for y in 0..r {
        for x in 0..r {
            let px = &mut frame[(y * r + x) * 3..][..3];
            let in_square = (x + r - sx) % r < size && (y + r - sy) % r < size;
            for c in 0..3 {
                let grad = (x + y) as f64 / (2 * r) as f64;
                let mut v = hue[c] * (0.4 + 0.6 * grad);
                if in_square {
                    v = 255.0 - v;
                }
                if (x + r - stripe) % r < 2 {
                    v *= 0.5;
                }
                px[c] = v as u8;
            }
        }
    }
}

/// SplitMix64: a well-mixed, platform-independent hash for deterministic patterns.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let mut c = Config::parse(include_str!("../../../../configs/vqvae_tiny.json")).unwrap();
        c.data.train = vec!["synthetic:3".into()];
        c
    }

    #[test]
    fn synthetic_is_deterministic_resumable_and_moving() {
        let c = cfg();
        let mut a = DataSource::open(&c, Split::Train, None).unwrap();
        let first = a.next_batch().unwrap().unwrap();
        let second = a.next_batch().unwrap().unwrap();
        let state = a.state();
        let third = a.next_batch().unwrap().unwrap();
        assert_eq!(first.shape, [2, 2, 64, 64, 3]);
        assert_ne!(first.images, second.images);
        let frame = 64 * 64 * 3;
        assert_ne!(
            first.images[..frame],
            first.images[frame..2 * frame],
            "frames of a clip differ"
        );
        let mut b = DataSource::open(&c, Split::Train, Some(&state)).unwrap();
        assert_eq!(b.next_batch().unwrap().unwrap().images, third.images);
        let mut again = DataSource::open(&c, Split::Train, None).unwrap();
        assert_eq!(again.next_batch().unwrap().unwrap().images, first.images);
    }

    /// Rank r of 2 with batch 1 draws clip r of the one-process batch of 2.
    #[test]
    fn synthetic_ranks_split_each_batch() {
        let c = cfg();
        let mut whole = DataSource::open(&c, Split::Train, None).unwrap();
        let mut half = c.clone();
        half.train.batch_size = 1;
        let mut ranks: Vec<DataSource> = (0..2)
            .map(|r| DataSource::open_rank(&half, Split::Train, None, r, 2).unwrap())
            .collect();
        for _ in 0..3 {
            let b = whole.next_batch().unwrap().unwrap();
            let clip = b.images.len() / 2;
            for (r, source) in ranks.iter_mut().enumerate() {
                let part = source.next_batch().unwrap().unwrap();
                assert_eq!(part.images, b.images[r * clip..(r + 1) * clip]);
                assert_eq!(part.paths, b.paths[r..r + 1]);
            }
        }
    }

    #[test]
    fn synthetic_validation_is_one_finite_pass() {
        let c = cfg();
        let mut v = DataSource::open(&c, Split::Val, None).unwrap();
        let mut n = 0;
        while v.next_batch().unwrap().is_some() {
            n += 1;
        }
        // 3 videos × 2 clips each, batch 2.
        assert_eq!(n, 3);
    }

    #[test]
    fn bad_synthetic_spec_is_a_usage_error() {
        let mut c = cfg();
        c.data.train = vec!["synthetic:0".into()];
        assert!(matches!(
            DataSource::open(&c, Split::Train, None),
            Err(TrainError::Usage(_))
        ));
    }
}
