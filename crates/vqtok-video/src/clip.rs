//! Which frames make a clip: `sequence_length` frames `frame_stride` apart, at a random start
//! (training) or at evenly spaced starts (validation); short videos are skipped or looped.

/// A clip's frame indices, relative to the start of the usable range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClipPlan {
    pub(crate) start: u64,
    pub(crate) indices: Vec<u64>,
    pub(crate) looped: bool,
}

/// Clips of `len` frames `stride` apart; a video shorter than one clip is skipped, or
/// looped when `allow_loop`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClipShape {
    pub(crate) len: usize,
    pub(crate) stride: usize,
    pub(crate) allow_loop: bool,
}

/// Where the clips of a video can start.
enum Starts {
    /// At any of the first `count` frames, without looping.
    Fit(u64),
    /// The video is shorter than a clip, and may loop.
    Loop,
}

impl ClipShape {
    /// Frames one clip spans: `(len − 1) · stride + 1`.
    pub(crate) fn span(&self) -> u64 {
        (self.len as u64 - 1) * self.stride as u64 + 1
    }

    /// A clip starting at `start`; wraps around modulo `n` when `looped`.
    fn at(&self, start: u64, n: u64, looped: bool) -> ClipPlan {
        let indices = (0..self.len as u64)
            .map(|k| {
                let i = start + k * self.stride as u64;
                if looped { i % n } else { i }
            })
            .collect();
        ClipPlan {
            start,
            indices,
            looped,
        }
    }

    /// Where clips start in `n` frames; `None` for no frames, or a video shorter than a
    /// clip that may not loop.
    fn starts(&self, n: u64) -> Option<Starts> {
        let s = self.span();
        if n == 0 {
            None
        } else if n >= s {
            Some(Starts::Fit(n - s + 1))
        } else if self.allow_loop {
            Some(Starts::Loop)
        } else {
            None
        }
    }

    /// Training clip from `n` frames with a start drawn as `u ∈ [0, 1)`: uniform over all
    /// valid starts. `None` when the video is too short and may not loop.
    pub(crate) fn train(&self, n: u64, u: f64) -> Option<ClipPlan> {
        Some(match self.starts(n)? {
            Starts::Fit(count) => self.at(((u * count as f64) as u64).min(count - 1), n, false),
            Starts::Loop => self.at(((u * n as f64) as u64).min(n - 1), n, true),
        })
    }

    /// Up to `per_video` validation clips: the valid start range is cut into `per_video`
    /// equal parts and each clip starts at the floor of its part's centre; equal starts
    /// (short videos) are kept once. A looped short video gives one clip from frame 0.
    pub(crate) fn val(&self, n: u64, per_video: usize) -> Vec<ClipPlan> {
        let count = match self.starts(n) {
            None => return Vec::new(),
            Some(Starts::Loop) => return vec![self.at(0, n, true)],
            Some(Starts::Fit(count)) => count,
        };
        let m = per_video.max(1) as u64;
        let mut out: Vec<ClipPlan> = Vec::new();
        for k in 0..m {
            let start = ((2 * k + 1) * count) / (2 * m);
            if out.last().is_none_or(|c| c.start != start) {
                out.push(self.at(start, n, false));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(len: usize, stride: usize, allow_loop: bool) -> ClipShape {
        ClipShape {
            len,
            stride,
            allow_loop,
        }
    }

    #[test]
    fn train_start_covers_every_valid_start() {
        // 20 frames, 3 frames 2 apart → span 5, starts 0..=15.
        let clips = shape(3, 2, false);
        assert_eq!(clips.span(), 5);
        let c = clips.train(20, 0.0).unwrap();
        assert_eq!(
            (c.start, c.indices.clone(), c.looped),
            (0, vec![0, 2, 4], false)
        );
        let last = clips.train(20, 0.999_999).unwrap();
        assert_eq!(last.indices, vec![15, 17, 19]);
        let mut seen = [false; 16];
        for i in 0..160 {
            seen[clips.train(20, i as f64 / 160.0).unwrap().start as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        // Exactly one clip fits.
        assert_eq!(clips.train(5, 0.7).unwrap().indices, vec![0, 2, 4]);
    }

    #[test]
    fn short_videos_skip_or_loop() {
        assert_eq!(shape(3, 2, false).train(4, 0.5), None);
        let c = shape(3, 2, true).train(4, 0.5).unwrap();
        // start floor(0.5·4) = 2: 2, 4 mod 4 = 0, 6 mod 4 = 2.
        assert_eq!((c.indices, c.looped), (vec![2, 0, 2], true));
        // A still image is a one-frame video.
        assert_eq!(shape(4, 1, true).train(1, 0.3).unwrap().indices, vec![0; 4]);
        assert_eq!(shape(1, 1, true).train(0, 0.3), None);
        assert!(shape(3, 2, false).val(4, 2).is_empty());
        assert_eq!(shape(3, 2, true).val(4, 2)[0].indices, vec![0, 2, 0]);
    }

    #[test]
    fn val_clips_are_evenly_spaced_and_unique() {
        // 100 frames, span 4 → 97 starts; two clips at floor(97/4) = 24 and floor(3·97/4) = 72.
        let c = shape(4, 1, false).val(100, 2);
        assert_eq!(c.iter().map(|c| c.start).collect::<Vec<_>>(), vec![24, 72]);
        assert_eq!(c[1].indices, vec![72, 73, 74, 75]);
        assert_eq!(shape(4, 1, false).val(100, 1)[0].start, 48);
        // Only 2 possible starts for 5 wanted clips: each kept once.
        let few = shape(4, 1, false).val(5, 5);
        assert_eq!(few.iter().map(|c| c.start).collect::<Vec<_>>(), vec![0, 1]);
    }
}
