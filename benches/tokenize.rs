//! Tokenizing throughput through ONNX Runtime (criterion, frames/s):
//!
//! - `encode/{tiny,seed}/b{1,8}`: the u8 encoder graph on random frames (tiny:
//!   configs/taming_tiny.json at 64², seed: configs/taming_vqgan_f16_1024.json at 256²);
//! - `decode/{tiny,seed}/b{1,8}`: the u8 decoder graph on random index grids;
//! - `video/{tiny,seed}`: `vqtok_infer::encode_video` on a generated 640×360 H.264 file
//!   (decode + resize + centre crop on one thread, batches of 8 through the encoder on
//!   another, token file written), to compare with `encode/*/b8`: the overlap target is
//!   ≥ 95 % of encoder-only throughput.
//!
//! Models are random-init exports made at the first run into `$VQTOK_BENCH_DIR` (default
//! `<target>/tmp/vqtok-bench`), with their weights saved beside them so `cargo xtask
//! bench` can run the same graphs through Python onnxruntime and PyTorch eager.
//! Environment: `VQTOK_BENCH_THREADS` (ORT intra-op threads; default: one per physical
//! core), `VQTOK_BENCH_SPIN=1` (ORT spinning on; vqtokenize's default is off),
//! `VQTOK_BENCH_ONLY` (comma list of exact ids such as `encode/seed/b8,video/seed`: the
//! others are not even set up, which a criterion filter cannot do; `cargo xtask bench`
//! uses it to alternate our cases with the Python ones).
//!
//! `cargo bench -p vqtok --bench tokenize [-- FILTER]`

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use vqtok_export::{ExportOptions, RandomWeights, export};
use vqtok_infer::encoder::OrtEncoder;
use vqtok_infer::progress::NoProgress;
use vqtok_infer::{EncodeOptions, encode_video};
use vqtok_runtime::{Input, Manifest, ModelFolder, Session, SessionOptions};
use vqtok_video::{VideoWriter, WriterOptions};

/// A benchmark model: its config file and the frame size it is timed at.
struct Case {
    name: &'static str,
    config: &'static str,
    size: usize,
    /// Frames of the generated video for `video/NAME`.
    video_frames: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "tiny",
        config: "taming_tiny.json",
        size: 64,
        video_frames: 96,
    },
    Case {
        name: "seed",
        config: "taming_vqgan_f16_1024.json",
        size: 256,
        video_frames: 16,
    },
];

fn bench_dir() -> PathBuf {
    std::env::var_os("VQTOK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("vqtok-bench"))
}

/// The model folder of `case` (exported on first use; reused while the config is the same).
fn model_dir(case: &Case) -> PathBuf {
    let dir = bench_dir().join(case.name);
    let config_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(case.config);
    let config = vqtok_config::Config::from_path(&config_path).expect("bench config");
    let current = Manifest::load(&dir)
        .map(|m| m.model_hash == config.model_hash())
        .unwrap_or(false);
    if !current || !dir.join("weights.safetensors").is_file() {
        let mut weights = RandomWeights::new(5);
        let options = ExportOptions {
            float_variants: false,
            ..ExportOptions::default()
        };
        export(&config, &mut weights, &dir, &options).expect("export");
        weights
            .save(&dir.join("weights.safetensors"))
            .expect("save weights");
    }
    dir
}

/// A 640×360 H.264 test video (moving gradient), made once.
fn video(frames: usize) -> PathBuf {
    let path = bench_dir().join(format!("video-640x360-{frames}.mp4"));
    if !path.is_file() {
        let (w, h) = (640, 360);
        let opts = WriterOptions {
            fps: 25.0,
            ..WriterOptions::default()
        };
        let mut writer = VideoWriter::create(&path, w, h, &opts).expect("writer");
        for i in 0..frames {
            let data: Vec<u8> = (0..h)
                .flat_map(|y| {
                    (0..w).flat_map(move |x| {
                        [
                            ((x + 3 * i) % 256) as u8,
                            ((y + i) % 256) as u8,
                            ((x ^ y) % 256) as u8,
                        ]
                    })
                })
                .collect();
            writer.write(&data).expect("frame");
        }
        writer.finish().expect("finish");
    }
    path
}

fn session_options() -> SessionOptions {
    SessionOptions {
        threads: std::env::var("VQTOK_BENCH_THREADS")
            .ok()
            .and_then(|v| v.parse().ok()),
        spinning: Some(std::env::var("VQTOK_BENCH_SPIN").is_ok_and(|v| v == "1")),
        ..SessionOptions::default()
    }
}

fn pseudo_random(n: usize, modulus: u64) -> impl Iterator<Item = u64> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n).map(move |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % modulus
    })
}

/// Measurement time for 10 flat samples of `f` (timed once here), so slow cases run
/// exactly 10 calls without criterion's "unable to complete" warning.
fn measurement_time(mut f: impl FnMut()) -> Duration {
    let t = std::time::Instant::now();
    f();
    Duration::from_secs_f64((t.elapsed().as_secs_f64() * 12.0).max(3.0))
}

/// Whether benchmark `id` runs (all of them unless `VQTOK_BENCH_ONLY` lists some).
fn selected(id: &str) -> bool {
    std::env::var("VQTOK_BENCH_ONLY").map_or(true, |only| only.split(',').any(|o| o.trim() == id))
}

fn bench(c: &mut Criterion) {
    for case in &CASES {
        let ids = ["encode", "decode"]
            .iter()
            .flat_map(|p| {
                [
                    format!("{p}/{}/b1", case.name),
                    format!("{p}/{}/b8", case.name),
                ]
            })
            .chain([format!("video/{}", case.name)]);
        if !ids.into_iter().any(|id| selected(&id)) {
            continue;
        }
        let dir = model_dir(case);
        let s = case.size;
        let mut encoder =
            Session::open(&dir.join("encoder.onnx"), session_options()).expect("encoder");
        let mut decoder =
            Session::open(&dir.join("decoder.onnx"), session_options()).expect("decoder");
        let manifest = Manifest::load(&dir).expect("manifest");
        let level = &manifest.levels[0];
        let g = s / level.factor;

        let mut group = c.benchmark_group(format!("encode/{}", case.name));
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        let mut b8_seconds = None;
        for batch in [1usize, 8] {
            let frames: Vec<u8> = pseudo_random(batch * s * s * 3, 256)
                .map(|v| v as u8)
                .collect();
            let mut run = || {
                encoder
                    .run(&[("frames", Input::U8(vec![batch, s, s, 3], &frames))])
                    .expect("encoder run")
            };
            let wanted = selected(&format!("encode/{}/b{batch}", case.name));
            if batch == 8 && (wanted || selected(&format!("video/{}", case.name))) {
                // One timed call sizes this benchmark and the video one.
                let t = measurement_time(|| drop(run()));
                b8_seconds = Some(t.as_secs_f64() / 12.0);
                group.measurement_time(t);
            } else if wanted {
                group.measurement_time(measurement_time(|| drop(run())));
            }
            if !wanted {
                continue;
            }
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::from_parameter(format!("b{batch}")), |b| {
                b.iter(&mut run)
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("decode/{}", case.name));
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        for batch in [1usize, 8] {
            let idx: Vec<i64> = pseudo_random(batch * g * g, level.codebook_size as u64)
                .map(|v| v as i64)
                .collect();
            let mut run = || {
                decoder
                    .run(&[(level.indices.as_str(), Input::I64(vec![batch, g, g], &idx))])
                    .expect("decoder run")
            };
            if !selected(&format!("decode/{}/b{batch}", case.name)) {
                continue;
            }
            group.measurement_time(measurement_time(|| drop(run())));
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::from_parameter(format!("b{batch}")), |b| {
                b.iter(&mut run)
            });
        }
        group.finish();
        drop(decoder);

        let model = ModelFolder::open(&dir).expect("model");
        let shared = OrtEncoder::new(&model, encoder);
        let input = video(case.video_frames);
        let out = bench_dir().join(format!("{}.vqt.safetensors", case.name));
        let options = EncodeOptions {
            batch: 8,
            ..EncodeOptions::default()
        };
        if !selected(&format!("video/{}", case.name)) {
            continue;
        }
        let run =
            || encode_video(&model, &shared, &input, &out, &options, &NoProgress).expect("encode");
        let mut group = c.benchmark_group("video");
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        // Sized from the encoder's batch time: a calibration call would cost a whole video.
        let per_batch = b8_seconds.expect("timed with encode b8");
        let batches = case.video_frames.div_ceil(8) as f64;
        group.measurement_time(Duration::from_secs_f64(
            (12.0 * per_batch * batches).max(3.0),
        ));
        group.throughput(Throughput::Elements(case.video_frames as u64));
        group.bench_function(BenchmarkId::from_parameter(case.name), |b| b.iter(run));
        group.finish();
    }
}

fn main() {
    // SAFETY: before any thread exists.
    unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}
