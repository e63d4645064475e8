//! Test videos with checkable pixels, made by our writer or the ffmpeg CLI.
//!
//! Pattern of frame `i` at pixel `(x, y)`: R = 4x, G = 5y, B = 10i + 5 (so i < 25). R and G
//! locate a pixel after crops and flips; the mean of B identifies the frame through lossy
//! coding and the 4:2:0 round trip (±3 levels → ±0.3 frames).

use std::path::{Path, PathBuf};
use std::process::Command;

use vqtok_video::{Frame, VideoWriter, WriterOptions};

pub const W: usize = 64;
pub const H: usize = 48;

pub fn pattern(i: usize, w: usize, h: usize) -> Frame {
    assert!(i < 25, "B = 10i + 5 must stay below 256");
    let data = (0..h)
        .flat_map(|y| {
            (0..w).flat_map(move |x| {
                [
                    (4 * x).min(255) as u8,
                    (5 * y).min(255) as u8,
                    (10 * i + 5) as u8,
                ]
            })
        })
        .collect();
    Frame::new(w, h, data).unwrap()
}

/// Writes `n` pattern frames at `fps`, near-lossless H.264 (crf 0) with key frames every
/// `gop` frames so seeks land mid-stream.
pub fn write_pattern(path: &Path, n: usize, fps: f64, gop: u32) {
    let opts = WriterOptions {
        fps,
        crf: 0,
        gop: Some(gop),
        ..WriterOptions::default()
    };
    let mut w = VideoWriter::create(path, W, H, &opts).unwrap();
    for i in 0..n {
        w.write(&pattern(i, W, H).data).unwrap();
    }
    w.finish().unwrap();
}

/// A temporary folder holding the video `name`: `n` pattern frames at 25 fps, a key frame
/// every `gop` frames. Returns the folder (removed on drop) and the video's path.
pub fn pattern_in_tempdir(name: &str, n: usize, gop: u32) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join(name);
    write_pattern(&path, n, 25.0, gop);
    (t, path)
}

/// Frame number encoded in a decoded frame's blue channel.
pub fn frame_number(rgb: &[u8]) -> usize {
    let blue: f64 = rgb.chunks(3).map(|p| p[2] as f64).sum::<f64>() / (rgb.len() / 3) as f64;
    let i = ((blue - 5.0) / 10.0).round();
    assert!(
        (blue - (10.0 * i + 5.0)).abs() < 3.0,
        "blue mean {blue} is not a frame level"
    );
    i as usize
}

/// Runs the ffmpeg CLI (quiet, overwrite), panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg CLI is needed by the tests (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pattern video re-encoded by the CLI to another container/codec.
pub fn transcode(src: &Path, dst: &Path, codec_args: &[&str]) {
    let mut args = vec!["-i", src.to_str().unwrap()];
    args.extend_from_slice(codec_args);
    args.push(dst.to_str().unwrap());
    ffmpeg(&args);
}

/// The pattern video of `pattern_in_tempdir(n, gop)` re-encoded by the CLI as lossless
/// H.264, with `filter_args` (filters, stream options) before the codec, as `name` in the
/// same temporary folder. Returns the folder and the re-encoded video's path.
pub fn lossless_transcoded_pattern(
    n: usize,
    gop: u32,
    name: &str,
    filter_args: &[&str],
) -> (tempfile::TempDir, PathBuf) {
    let (t, src) = pattern_in_tempdir("src.mp4", n, gop);
    let dst = t.path().join(name);
    let codec = ["-c:v", "libx264", "-qp", "0"];
    transcode(&src, &dst, &[filter_args, &codec].concat());
    (t, dst)
}

/// An mp4 with `seconds` of a sine tone and no video stream.
pub fn write_audio_only(path: &Path, seconds: &str) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=duration={seconds}"),
        "-c:a",
        "aac",
        path.to_str().unwrap(),
    ]);
}

/// A y4m stream whose header claims 20000×16 pixels: one frame marker, then `padding` zeros.
pub fn write_huge_y4m(path: &Path, padding: usize) {
    let mut y4m = b"YUV4MPEG2 W20000 H16 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    y4m.extend(vec![0u8; padding]);
    std::fs::write(path, y4m).unwrap();
}

/// RGB24 frames of `path` as the ffmpeg CLI decodes them (autorotate on).
pub fn cli_frames(path: &Path, w: usize, h: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.chunks(w * h * 3).map(<[u8]>::to_vec).collect()
}

pub fn max_abs_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64
}

/// The shared sample videos, or a panic telling how to get them.
pub fn samples_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("VQTOK_SAMPLES").expect("VQTOK_SAMPLES is set by .cargo/config.toml"),
    );
    assert!(
        dir.join("bigbuckbunny.mp4").is_file(),
        "sample videos missing in {}: run `cargo xtask setup`",
        dir.display()
    );
    dir
}
