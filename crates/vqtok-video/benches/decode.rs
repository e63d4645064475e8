//! Decode + resize throughput for a 720p H.264 file to 256², in frames/s:
//! - `reader`: one `VideoReader` (one decoder thread) streaming every frame, scaled to 455×256
//!   and centre-cropped;
//! - `loader/N`: the training loader with N workers (random 16-frame clips, so every clip
//!   seeks and decodes from a key frame), batches of 4 clips.
//!
//! The input is generated at start with the ffmpeg CLI (testsrc2, libx264 preset medium,
//! crf 23, a key frame every 2 s as in typical web video) into a temp dir.
//! Run: `cargo bench -p vqtok-video --bench decode`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vqtok_config::ShortVideos;
use vqtok_video::{
    Crop, FrameSelect, Geometry, LoaderOptions, OpenOptions, Split, VideoLoader, VideoReader,
};

const SECONDS: u32 = 12;
const CLIP: usize = 16;
const BATCH: usize = 4;

fn make_720p(path: &Path) {
    let src = format!("testsrc2=size=1280x720:rate=25:duration={SECONDS}");
    let ok = Command::new("ffmpeg")
        .args([
            "-v", "error", "-y", "-f", "lavfi", "-i", &src, "-c:v", "libx264", "-preset", "medium",
        ])
        .args(["-crf", "23", "-g", "50", "-pix_fmt", "yuv420p"])
        .arg(path)
        .status()
        .expect("the ffmpeg CLI makes the benchmark input");
    assert!(ok.success());
}

fn loader_options(dir: &Path, workers: usize) -> LoaderOptions {
    LoaderOptions {
        split: Split::Train,
        sources: vec![dir.display().to_string()],
        holdout: None,
        batch_size: BATCH,
        sequence_length: CLIP,
        frame_stride: 1,
        resolution: 256,
        short_videos: ShortVideos::Skip,
        random_flip: true,
        val_clips_per_video: 1,
        num_workers: workers,
        prefetch_batches: 4,
        decode_timeout: Duration::from_secs(60),
        extensions: vec!["mp4".into()],
        seed: 0,
        decoder_threads: 1,
        max_side: 16384,
        quiet: true,
        rank: 0,
        world_size: 1,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v0.mp4");
    make_720p(&file);
    // Four names for the same content give the loader a 4-file epoch.
    for k in 1..4 {
        std::fs::hard_link(&file, dir.path().join(format!("v{k}.mp4"))).unwrap();
    }
    let frames = u64::from(SECONDS) * 25;
    let geometry = Geometry::short_side_crop(1280, 720, 256, Crop::Centre).unwrap();

    let mut g = c.benchmark_group("decode_resize_720p_to_256");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(frames));
    g.bench_function("reader", |b| {
        b.iter(|| {
            let one_thread = OpenOptions {
                threads: 1,
                ..OpenOptions::default()
            };
            let mut r = VideoReader::open_with(&file, &one_thread).unwrap();
            let sel = FrameSelect {
                size: Some((geometry.scaled_width, geometry.scaled_height)),
                ..FrameSelect::default()
            };
            let mut n = 0u64;
            for f in r.frames(&sel).unwrap() {
                let out = geometry.place(&f.unwrap().frame).unwrap();
                n += out.data.len() as u64 / (256 * 256 * 3);
            }
            assert_eq!(n, frames);
        })
    });
    g.throughput(Throughput::Elements((BATCH * CLIP) as u64));
    for workers in [1, 2] {
        let mut loader = VideoLoader::new(loader_options(dir.path(), workers)).unwrap();
        g.bench_function(format!("loader/{workers}"), |b| {
            b.iter(|| loader.next_batch().unwrap().unwrap().images.len())
        });
        let s = loader.stats();
        eprintln!(
            "loader/{workers}: {} batches, decode {:.1} s summed over workers, consumer waited {:.1} s",
            s.batches, s.decode_seconds, s.wait_seconds
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
