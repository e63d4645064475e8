//! The loader: exact clips, geometry, determinism across worker counts, resume, validation,
//! short videos, stills, manifests, splits, and a corpus of broken files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use vqtok_config::ShortVideos;
use vqtok_video::{
    Batch, FrameSelect, LoaderOptions, LoaderState, SkipReason, Split, VideoError, VideoLoader,
    VideoReader,
};

/// Lengths of the pattern videos of the standard dataset.
const LENGTHS: [usize; 6] = [20, 16, 24, 12, 18, 22];

fn dataset(dir: &Path) {
    for (k, &n) in LENGTHS.iter().enumerate() {
        write_pattern(&dir.join(format!("v{k}.mp4")), n, 25.0, 5);
    }
}

fn opts(sources: &[&Path], split: Split) -> LoaderOptions {
    LoaderOptions {
        split,
        sources: sources.iter().map(|p| p.display().to_string()).collect(),
        holdout: None,
        batch_size: 2,
        sequence_length: 3,
        frame_stride: 2,
        resolution: 48,
        short_videos: ShortVideos::Skip,
        random_flip: split == Split::Train,
        val_clips_per_video: 2,
        num_workers: 2,
        prefetch_batches: 2,
        decode_timeout: Duration::from_secs(20),
        extensions: ["mp4", "png", "jpg", "y4m", "webm"]
            .map(String::from)
            .to_vec(),
        seed: 7,
        decoder_threads: 1,
        max_side: 16384,
        quiet: true,
        rank: 0,
        world_size: 1,
    }
}

fn take(loader: &mut VideoLoader, n: usize) -> Vec<Batch> {
    (0..n)
        .map(|_| loader.next_batch().unwrap().unwrap())
        .collect()
}

/// Frame `k` of clip `c` in a batch.
fn frame(b: &Batch, c: usize, k: usize) -> &[u8] {
    let [_, d, h, w, ch] = b.shape;
    let size = h * w * ch;
    &b.images[(c * d + k) * size..(c * d + k + 1) * size]
}

/// Every frame of `path` at its native size, as the reader decodes it sequentially.
fn reference_frames(path: &Path) -> Vec<vqtok_video::Frame> {
    let mut r = VideoReader::open(path).unwrap();
    r.frames(&FrameSelect::default())
        .unwrap()
        .map(|f| f.unwrap().frame)
        .collect()
}

#[test]
fn clips_have_the_reported_frames_crop_and_flip() {
    let t = tempfile::tempdir().unwrap();
    dataset(t.path());
    let reference: Vec<_> = (0..LENGTHS.len())
        .map(|k| reference_frames(&t.path().join(format!("v{k}.mp4"))))
        .collect();
    let mut loader = VideoLoader::new(opts(&[t.path()], Split::Train)).unwrap();
    let mut flips = 0;
    let mut offsets = std::collections::HashSet::new();
    for b in take(&mut loader, 9) {
        assert_eq!(b.shape, [2, 3, 48, 48, 3]);
        assert_eq!(b.images.len(), 2 * 3 * 48 * 48 * 3);
        for (c, info) in b.clips.iter().enumerate() {
            assert_eq!(b.paths[c], info.path);
            // The file list is sorted: file k is v{k}.mp4.
            assert!(
                info.path.ends_with(format!("v{}.mp4", info.file_index)),
                "{info:?}"
            );
            let k0 = info.start_frame;
            assert_eq!(info.frame_indices, vec![k0, k0 + 2, k0 + 4]);
            assert!(k0 + 4 < LENGTHS[info.file_index] as u64, "{info:?}");
            let g = info.geometry;
            // 64×48 with resolution 48: no scaling, a horizontal crop only.
            assert_eq!((g.scaled_width, g.scaled_height, g.offset_y), (64, 48, 0));
            assert!((0..=16).contains(&g.offset_x));
            offsets.insert(g.offset_x);
            flips += usize::from(g.flip);
            for (k, &idx) in info.frame_indices.iter().enumerate() {
                let f = frame(&b, c, k);
                assert_eq!(frame_number(f) as u64, idx, "{info:?} frame {k}");
                // Seeking decodes bit-exactly what sequential decoding gives, so the clip frame
                // is exactly the reported crop (and flip) of the reference frame.
                let want = g.place(&reference[info.file_index][idx as usize]).unwrap();
                assert!(
                    f == want.data.as_slice(),
                    "{info:?} frame {k} differs from its reference crop"
                );
                // And the geometry means what it says on the known pattern: R = 4·(source x),
                // so R/4 − x averaged over a row recovers the offset (±1 px of coding noise).
                let row = 20 * 48 * 3;
                let est: f64 = (0..48)
                    .map(|x| f[row + x * 3] as f64 / 4.0 - if g.flip { 47 - x } else { x } as f64)
                    .sum::<f64>()
                    / 48.0;
                assert!(
                    (est - g.offset_x as f64).abs() < 1.0,
                    "offset {} estimated {est}",
                    g.offset_x
                );
            }
        }
    }
    // Random crops and flips actually vary (18 clips).
    assert!(flips > 0 && flips < 18, "{flips}");
    assert!(offsets.len() > 3, "{offsets:?}");
    let s = loader.stats();
    assert_eq!((s.files, s.files_ok, s.skipped.len()), (6, 6, 0));
    assert_eq!(s.clips, 18);
}

#[test]
fn same_seed_same_batches_whatever_the_worker_count() {
    let t = tempfile::tempdir().unwrap();
    dataset(t.path());
    let run = |workers: usize, prefetch: usize| {
        let mut o = opts(&[t.path()], Split::Train);
        o.num_workers = workers;
        o.prefetch_batches = prefetch;
        // 32² forces real resizing (64×48 → 43×32) on top of the crop.
        o.resolution = 32;
        let mut l = VideoLoader::new(o).unwrap();
        take(&mut l, 7)
    };
    let one = run(1, 1);
    let three = run(3, 4);
    assert_eq!(one, three);
    // Seven batches of two cross two epochs of six files: every file appears per epoch.
    let first_epoch: std::collections::BTreeSet<usize> = one
        .iter()
        .flat_map(|b| &b.clips)
        .filter(|c| c.epoch == 0)
        .map(|c| c.file_index)
        .collect();
    assert_eq!(first_epoch.len(), 6);
    let mut other = opts(&[t.path()], Split::Train);
    other.seed = 8;
    other.resolution = 32;
    let different = take(&mut VideoLoader::new(other).unwrap(), 7);
    assert_ne!(one, different);
}

/// Data-parallel ranks: rank r of 2 with batch b reads, batch for batch, the clips of
/// positions r, r+2, … of one loader's batch of 2b; so both together read exactly what one
/// process would, disjointly, and each rank resumes on its own.
#[test]
fn ranks_split_the_sequence_disjointly_and_resume() {
    let t = tempfile::tempdir().unwrap();
    dataset(t.path());
    let mut whole = opts(&[t.path()], Split::Train);
    whole.batch_size = 4;
    let whole = take(&mut VideoLoader::new(whole).unwrap(), 4);
    let rank = |r: usize| {
        let mut o = opts(&[t.path()], Split::Train);
        o.rank = r;
        o.world_size = 2;
        o
    };
    let parts: Vec<Vec<Batch>> = (0..2)
        .map(|r| take(&mut VideoLoader::new(rank(r)).unwrap(), 4))
        .collect();
    for (i, b) in whole.iter().enumerate() {
        for (r, part) in parts.iter().enumerate() {
            assert_eq!(part[i].clips[0], b.clips[r], "batch {i} rank {r}");
            assert_eq!(part[i].clips[1], b.clips[2 + r], "batch {i} rank {r}");
            assert_eq!(frame(&part[i], 1, 2), frame(b, 2 + r, 2));
        }
    }
    let mut one = VideoLoader::new(rank(1)).unwrap();
    take(&mut one, 2);
    let state = one.state();
    let mut resumed = VideoLoader::resume(rank(1), &state).unwrap();
    assert_eq!(take(&mut resumed, 2), parts[1][2..]);
    let mut bad = rank(0);
    bad.rank = 2;
    assert!(matches!(
        VideoLoader::new(bad),
        Err(VideoError::Invalid { .. })
    ));
}

#[test]
fn resume_continues_with_the_same_batches() {
    let t = tempfile::tempdir().unwrap();
    dataset(t.path());
    let mut a = VideoLoader::new(opts(&[t.path()], Split::Train)).unwrap();
    let head = take(&mut a, 3);
    let saved = serde_json::to_string(&a.state()).unwrap();
    let tail = take(&mut a, 5);
    drop(a);
    assert_eq!(head.len(), 3);
    let state: LoaderState = serde_json::from_str(&saved).unwrap();
    assert_eq!((state.epoch, state.position), (1, 0));
    let mut b = VideoLoader::resume(opts(&[t.path()], Split::Train), &state).unwrap();
    assert_eq!(take(&mut b, 5), tail);

    let mut other_seed = opts(&[t.path()], Split::Train);
    other_seed.seed = 1;
    assert!(matches!(
        VideoLoader::resume(other_seed, &state),
        Err(VideoError::State { .. })
    ));
    write_pattern(&t.path().join("v9.mp4"), 20, 25.0, 5);
    let changed = VideoLoader::resume(opts(&[t.path()], Split::Train), &state)
        .err()
        .unwrap();
    assert!(
        changed.to_string().contains("file list changed"),
        "{changed}"
    );
}

#[test]
fn validation_is_evenly_spaced_centred_and_repeatable() {
    let t = tempfile::tempdir().unwrap();
    dataset(t.path());
    let pass = || {
        let mut l = VideoLoader::new(opts(&[t.path()], Split::Val)).unwrap();
        let mut all = Vec::new();
        while let Some(b) = l.next_batch().unwrap() {
            all.push(b);
        }
        assert!(l.next_batch().unwrap().is_none());
        all
    };
    let a = pass();
    assert_eq!(a, pass());
    let clips: Vec<_> = a.iter().flat_map(|b| b.clips.clone()).collect();
    assert_eq!(clips.len(), 12);
    // 20 frames, span 5 → 16 starts; centres of the halves: 4 and 12.
    let v0: Vec<u64> = clips
        .iter()
        .filter(|c| c.file_index == 0)
        .map(|c| c.start_frame)
        .collect();
    assert_eq!(v0, vec![4, 12]);
    for b in &a {
        for (c, info) in b.clips.iter().enumerate() {
            assert_eq!((info.geometry.offset_x, info.geometry.flip), (8, false));
            assert_eq!(frame_number(frame(b, c, 0)) as u64, info.start_frame);
        }
    }
}

#[test]
fn short_videos_are_skipped_or_looped_and_counted() {
    let t = tempfile::tempdir().unwrap();
    write_pattern(&t.path().join("long.mp4"), 20, 25.0, 5);
    write_pattern(&t.path().join("short.mp4"), 3, 25.0, 5);
    let mut o = opts(&[t.path()], Split::Train);
    let mut skip = VideoLoader::new(o.clone()).unwrap();
    let batches = take(&mut skip, 3);
    assert!(
        batches
            .iter()
            .flat_map(|b| &b.clips)
            .all(|c| c.path.ends_with("long.mp4"))
    );
    let s = skip.stats();
    assert_eq!(s.skipped.len(), 1);
    assert_eq!((s.skipped[0].reason, s.files_ok), (SkipReason::TooShort, 1));
    assert!(s.skipped[0].path.ends_with("short.mp4"));

    o.short_videos = ShortVideos::Loop;
    let mut looped = VideoLoader::new(o).unwrap();
    let batches = take(&mut looped, 3);
    let short: Vec<_> = batches
        .iter()
        .flat_map(|b| b.clips.iter().zip(0..))
        .filter(|(c, _)| c.looped)
        .collect();
    assert!(!short.is_empty());
    for (c, _) in &short {
        // 3 frames, stride 2: start s, s+2, s+4 modulo 3.
        let s0 = c.start_frame;
        assert_eq!(c.frame_indices, vec![s0, (s0 + 2) % 3, (s0 + 4) % 3]);
    }
    for b in &batches {
        for (i, c) in b.clips.iter().enumerate() {
            for (k, &idx) in c.frame_indices.iter().enumerate() {
                assert_eq!(frame_number(frame(b, i, k)) as u64, idx);
            }
        }
    }
    let s = looped.stats();
    assert_eq!((s.looped, s.skipped.len(), s.files_ok), (1, 0, 2));
}

#[test]
fn still_images_are_one_frame_videos() {
    let t = tempfile::tempdir().unwrap();
    let img = pattern(3, W, H);
    image::RgbImage::from_raw(W as u32, H as u32, img.data.clone())
        .unwrap()
        .save(t.path().join("a.png"))
        .unwrap();
    image::RgbImage::from_raw(W as u32, H as u32, img.data.clone())
        .unwrap()
        .save(t.path().join("b.jpg"))
        .unwrap();
    let mut o = opts(&[t.path()], Split::Train);
    o.sequence_length = 1;
    let mut l = VideoLoader::new(o.clone()).unwrap();
    for b in take(&mut l, 2) {
        for (c, info) in b.clips.iter().enumerate() {
            assert_eq!(info.frame_indices, vec![0]);
            assert_eq!(frame_number(frame(&b, c, 0)), 3);
        }
    }
    // Longer clips of a still: skipped by default, repeated when looping.
    o.sequence_length = 2;
    o.short_videos = ShortVideos::Loop;
    let b = take(&mut VideoLoader::new(o).unwrap(), 1).remove(0);
    assert_eq!(b.clips[0].frame_indices, vec![0, 0]);
    assert_eq!(frame(&b, 0, 0), frame(&b, 0, 1));
}

#[test]
fn jsonl_segments_bound_the_clip() {
    let t = tempfile::tempdir().unwrap();
    write_pattern(&t.path().join("v.mp4"), 24, 25.0, 4);
    let m = t.path().join("m.jsonl");
    // [0.4, 0.6) s = frames 10..15: a span-5 clip fits exactly once.
    std::fs::write(&m, "{\"path\": \"v.mp4\", \"start\": 0.4, \"end\": 0.6}\n").unwrap();
    let mut l = VideoLoader::new(opts(&[&m], Split::Train)).unwrap();
    for b in take(&mut l, 2) {
        for (c, info) in b.clips.iter().enumerate() {
            assert_eq!(info.frame_indices, vec![10, 12, 14]);
            assert_eq!(frame_number(frame(&b, c, 2)), 14);
        }
    }
}

#[test]
fn hash_split_is_disjoint_and_complete() {
    let t = tempfile::tempdir().unwrap();
    for k in 0..12 {
        write_pattern(&t.path().join(format!("c{k:02}.mp4")), 6, 25.0, 6);
    }
    let mut tr = opts(&[t.path()], Split::Train);
    tr.holdout = Some(0.3);
    let mut va = opts(&[t.path()], Split::Val);
    va.holdout = Some(0.3);
    let train = VideoLoader::new(tr.clone()).unwrap();
    let val = VideoLoader::new(va).unwrap();
    let names = |l: &VideoLoader| {
        l.files()
            .iter()
            .map(|i| i.split_key.clone())
            .collect::<Vec<_>>()
    };
    let (a, b) = (names(&train), names(&val));
    assert!(!a.is_empty() && !b.is_empty(), "{a:?} {b:?}");
    assert!(a.iter().all(|n| !b.contains(n)));
    assert_eq!(a.len() + b.len(), 12);
    // Stable: the same split again.
    assert_eq!(names(&VideoLoader::new(tr).unwrap()), a);
}

#[test]
fn from_config_maps_data_and_train_args() {
    let text = r#"{
        "model_type": "vqvae",
        "model_args": {"in_channels": 3, "num_hiddens": 32, "num_residual_layers": 1,
                       "num_residual_hiddens": 8, "embedding_dim": 8, "num_embeddings": 16},
        "train_args": {"batch_size": 5, "seed": 11},
        "data_args": {"train": "videos/", "val_fraction": 0.2, "sequence_length": 6,
                      "frame_stride": 3, "resolution": 64, "random_flip": true,
                      "short_videos": "loop", "num_workers": 3, "decode_timeout_s": 2.5}
    }"#;
    let cfg = vqtok_config::Config::parse(text).unwrap();
    let tr = LoaderOptions::from_config(&cfg, Split::Train);
    assert_eq!(
        (tr.batch_size, tr.seed, tr.sequence_length, tr.frame_stride),
        (5, 11, 6, 3)
    );
    assert_eq!(
        (tr.resolution, tr.num_workers, tr.holdout),
        (64, 3, Some(0.2))
    );
    assert_eq!((tr.short_videos, tr.random_flip), (ShortVideos::Loop, true));
    assert_eq!(tr.decode_timeout, Duration::from_millis(2500));
    assert_eq!(tr.sources, vec!["videos/".to_string()]);
    let va = LoaderOptions::from_config(&cfg, Split::Val);
    assert_eq!(
        (va.random_flip, va.holdout.unwrap(), va.sources.clone()),
        (false, 0.2, tr.sources.clone())
    );
}

/// Makes the broken corpus; returns (file name, expected reason) pairs.
fn broken_corpus(d: &Path) -> Vec<(&'static str, SkipReason)> {
    write_pattern(&d.join("good0.mp4"), 20, 25.0, 5);
    write_pattern(&d.join("good1.mp4"), 16, 25.0, 5);
    let good = std::fs::read(d.join("good0.mp4")).unwrap();
    std::fs::write(d.join("empty.mp4"), b"").unwrap();
    std::fs::write(d.join("text.mp4"), b"plain text, not a video\n".repeat(40)).unwrap();
    std::fs::write(d.join("cut.mp4"), &good[..good.len() / 2]).unwrap();
    write_audio_only(&d.join("audio.mp4"), "0.3");
    write_huge_y4m(&d.join("huge.y4m"), 4000);
    // A PNG header claiming 100000×100000 pixels, then nothing.
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    std::fs::write(d.join("bomb.png"), png).unwrap();
    // A webm cut short keeps its first frames: still usable for clips near its start, and
    // either way never a crash.
    transcode(
        &d.join("good0.mp4"),
        &d.join("partial.webm"),
        &["-c:v", "libvpx-vp9", "-b:v", "200k"],
    );
    let webm = std::fs::read(d.join("partial.webm")).unwrap();
    std::fs::write(d.join("partial.webm"), &webm[..webm.len() * 2 / 3]).unwrap();
    // Garbage over the middle of an mp4 (index intact): decodes with errors.
    let mut noisy = good.clone();
    let mid = noisy.len() / 2;
    for (i, b) in noisy[mid - 300..mid + 300].iter_mut().enumerate() {
        *b = (i * 37 % 251) as u8;
    }
    std::fs::write(d.join("noisy.mp4"), noisy).unwrap();
    vec![
        ("empty.mp4", SkipReason::Empty),
        ("text.mp4", SkipReason::Unreadable),
        ("cut.mp4", SkipReason::Unreadable),
        ("audio.mp4", SkipReason::NoVideoStream),
        ("huge.y4m", SkipReason::AbsurdResolution),
        ("bomb.png", SkipReason::AbsurdResolution),
    ]
}

/// CRC-32 (IEEE) as PNG chunks use it, so the forged header is otherwise valid.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn broken_files_are_skipped_once_with_a_reason() {
    let t = tempfile::tempdir().unwrap();
    let expected = broken_corpus(t.path());
    let mut l = VideoLoader::new(opts(&[t.path()], Split::Train)).unwrap();
    // 3 epochs of 10 files.
    for b in take(&mut l, 15) {
        assert_eq!(b.shape, [2, 3, 48, 48, 3]);
        for (c, info) in b.clips.iter().enumerate() {
            assert_eq!(
                frame_number(frame(&b, c, 0)) as u64,
                info.frame_indices[0],
                "{info:?}"
            );
        }
    }
    let s = l.stats();
    for (name, reason) in &expected {
        let hits: Vec<_> = s
            .skipped
            .iter()
            .filter(|f| f.path.ends_with(name))
            .collect();
        assert_eq!(hits.len(), 1, "{name}: {:?}", s.skipped);
        assert_eq!(hits[0].reason, *reason, "{name}: {}", hits[0]);
        let line = hits[0].to_string();
        assert!(
            line.contains(name) && line.contains(&reason.to_string()),
            "{line}"
        );
    }
    // Each file at most once in the skip list; the two good files always work.
    let mut paths: Vec<&PathBuf> = s.skipped.iter().map(|f| &f.path).collect();
    paths.dedup();
    assert_eq!(paths.len(), s.skipped.len());
    assert!(s.files_ok >= 2, "{}", s.summary());
    assert_eq!(s.files, 10);
    assert!(s.summary().contains("empty file"), "{}", s.summary());
}

#[test]
fn every_file_bad_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("a.mp4"), b"").unwrap();
    std::fs::write(t.path().join("b.mp4"), b"nope").unwrap();
    let mut train = VideoLoader::new(opts(&[t.path()], Split::Train)).unwrap();
    let e = train.next_batch().unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, VideoError::NoUsableData { split: "train", .. }),
        "{msg}"
    );
    assert!(
        msg.contains("empty file") && msg.contains("not a readable"),
        "{msg}"
    );
    let mut val = VideoLoader::new(opts(&[t.path()], Split::Val)).unwrap();
    assert!(matches!(
        val.next_batch(),
        Err(VideoError::NoUsableData { split: "val", .. })
    ));
}

#[test]
fn a_stuck_file_does_not_stop_the_loader() {
    let t = tempfile::tempdir().unwrap();
    write_pattern(&t.path().join("good.mp4"), 20, 25.0, 5);
    // Opening a FIFO with no writer blocks in the kernel, beyond FFmpeg's interrupt callback.
    let fifo = t.path().join("stuck.mp4");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let list = t.path().join("list.txt");
    std::fs::write(&list, "good.mp4\nstuck.mp4\n").unwrap();
    let mut o = opts(&[&list], Split::Train);
    o.decode_timeout = Duration::from_millis(300);
    let mut l = VideoLoader::new(o).unwrap();
    let batches = take(&mut l, 3);
    assert!(
        batches
            .iter()
            .flat_map(|b| &b.paths)
            .all(|p| p.ends_with("good.mp4"))
    );
    let s = l.stats();
    assert_eq!(s.abandoned_workers, 1, "{}", s.summary());
    assert_eq!(s.skipped.len(), 1);
    assert_eq!(s.skipped[0].reason, SkipReason::Timeout);
    drop(l);
    // Release the abandoned worker: a writer that closes at once gives its open() an EOF.
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(0o4000 /* O_NONBLOCK */)
        .open(&fifo);
}

#[test]
fn prefetch_bounds_buffered_clips() {
    let t = tempfile::tempdir().unwrap();
    dataset(t.path());
    let mut o = opts(&[t.path()], Split::Train);
    o.num_workers = 3;
    o.prefetch_batches = 1;
    let mut l = VideoLoader::new(o).unwrap();
    for _ in 0..4 {
        l.next_batch().unwrap().unwrap();
        // A slow trainer: the workers fill the window, then wait.
        std::thread::sleep(Duration::from_millis(150));
    }
    let s = l.stats();
    assert!(s.peak_buffered_clips <= 3, "{}", s.peak_buffered_clips);
    assert!(
        s.peak_buffered_clips >= 2,
        "workers never ran ahead: {}",
        s.peak_buffered_clips
    );
}

#[test]
fn sample_videos_make_batches() {
    let dir = samples_dir();
    let mut o = opts(&[&dir], Split::Train);
    o.resolution = 64;
    o.sequence_length = 4;
    o.batch_size = 4;
    let mut l = VideoLoader::new(o).unwrap();
    let b = l.next_batch().unwrap().unwrap();
    assert_eq!(b.shape, [4, 4, 64, 64, 3]);
    let s = l.stats();
    assert_eq!((s.files, s.skipped.len()), (4, 0), "{}", s.summary());
    // bigbuckbunny is 1280×720: scaled to 114×64 before the crop.
    let bbb = b
        .clips
        .iter()
        .find(|c| c.path.ends_with("bigbuckbunny.mp4"))
        .unwrap();
    assert_eq!(
        (bbb.geometry.scaled_width, bbb.geometry.scaled_height),
        (114, 64)
    );
}
