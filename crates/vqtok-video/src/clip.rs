//! Which frames make a clip: `sequence_length` frames `frame_stride` apart, at a random start
//! (training) or at evenly spaced starts (validation); short videos are skipped or looped.

/// A clip's frame indices, relative to the start of the usable range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClipPlan {
    pub(crate) start: u64,
    pub(crate) indices: Vec<u64>,
    pub(crate) looped: bool,
}

/// Frames one clip spans: `(len − 1) · stride + 1`.
pub(crate) fn span(len: usize, stride: usize) -> u64 {
    (len as u64 - 1) * stride as u64 + 1
}

/// A clip starting at `start`; wraps around modulo `n` when `looped`.
fn clip_at(start: u64, n: u64, len: usize, stride: usize, looped: bool) -> ClipPlan {
    let indices = (0..len as u64)
        .map(|k| {
            let i = start + k * stride as u64;
            if looped { i % n } else { i }
        })
        .collect();
    ClipPlan {
        start,
        indices,
        looped,
    }
}

/// Training clip from `n` frames with a start drawn as `u ∈ [0, 1)`: uniform over all valid
/// starts. `None` when the video is too short and `allow_loop` is false.
pub(crate) fn train_clip(
    n: u64,
    len: usize,
    stride: usize,
    u: f64,
    allow_loop: bool,
) -> Option<ClipPlan> {
    let s = span(len, stride);
    if n == 0 {
        return None;
    }
    if n >= s {
        let starts = n - s + 1;
        let start = ((u * starts as f64) as u64).min(starts - 1);
        Some(clip_at(start, n, len, stride, false))
    } else if allow_loop {
        let start = ((u * n as f64) as u64).min(n - 1);
        Some(clip_at(start, n, len, stride, true))
    } else {
        None
    }
}

/// Up to `per_video` validation clips: the valid start range is cut into `per_video` equal
/// parts and each clip starts at the floor of its part's centre; equal starts (short videos)
/// are kept once. A looped short video gives one clip from frame 0.
pub(crate) fn val_clips(
    n: u64,
    len: usize,
    stride: usize,
    per_video: usize,
    allow_loop: bool,
) -> Vec<ClipPlan> {
    let s = span(len, stride);
    if n == 0 {
        return Vec::new();
    }
    if n < s {
        return if allow_loop {
            vec![clip_at(0, n, len, stride, true)]
        } else {
            Vec::new()
        };
    }
    let starts = n - s + 1;
    let m = per_video.max(1) as u64;
    let mut out: Vec<ClipPlan> = Vec::new();
    for k in 0..m {
        let start = ((2 * k + 1) * starts) / (2 * m);
        if out.last().is_none_or(|c| c.start != start) {
            out.push(clip_at(start, n, len, stride, false));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_start_covers_every_valid_start() {
        // 20 frames, 3 frames 2 apart → span 5, starts 0..=15.
        assert_eq!(span(3, 2), 5);
        let c = train_clip(20, 3, 2, 0.0, false).unwrap();
        assert_eq!(
            (c.start, c.indices.clone(), c.looped),
            (0, vec![0, 2, 4], false)
        );
        let last = train_clip(20, 3, 2, 0.999_999, false).unwrap();
        assert_eq!(last.indices, vec![15, 17, 19]);
        let mut seen = [false; 16];
        for i in 0..160 {
            seen[train_clip(20, 3, 2, i as f64 / 160.0, false).unwrap().start as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        // Exactly one clip fits.
        assert_eq!(
            train_clip(5, 3, 2, 0.7, false).unwrap().indices,
            vec![0, 2, 4]
        );
    }

    #[test]
    fn short_videos_skip_or_loop() {
        assert_eq!(train_clip(4, 3, 2, 0.5, false), None);
        let c = train_clip(4, 3, 2, 0.5, true).unwrap();
        // start floor(0.5·4) = 2: 2, 4 mod 4 = 0, 6 mod 4 = 2.
        assert_eq!((c.indices, c.looped), (vec![2, 0, 2], true));
        // A still image is a one-frame video.
        assert_eq!(train_clip(1, 4, 1, 0.3, true).unwrap().indices, vec![0; 4]);
        assert_eq!(train_clip(0, 1, 1, 0.3, true), None);
        assert!(val_clips(4, 3, 2, 2, false).is_empty());
        assert_eq!(val_clips(4, 3, 2, 2, true)[0].indices, vec![0, 2, 0]);
    }

    #[test]
    fn val_clips_are_evenly_spaced_and_unique() {
        // 100 frames, span 4 → 97 starts; two clips at floor(97/4) = 24 and floor(3·97/4) = 72.
        let c = val_clips(100, 4, 1, 2, false);
        assert_eq!(c.iter().map(|c| c.start).collect::<Vec<_>>(), vec![24, 72]);
        assert_eq!(c[1].indices, vec![72, 73, 74, 75]);
        assert_eq!(val_clips(100, 4, 1, 1, false)[0].start, 48);
        // Only 2 possible starts for 5 wanted clips: each kept once.
        let few = val_clips(5, 4, 1, 5, false);
        assert_eq!(few.iter().map(|c| c.start).collect::<Vec<_>>(), vec![0, 1]);
    }
}
