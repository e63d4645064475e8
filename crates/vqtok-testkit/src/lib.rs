//! vqtok-testkit: what the test suites of the vqtok crates share, so no helper is copied
//! from one test binary to the next. No libtorch and no ONNX Runtime here: the crates that
//! test against those keep their own helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vqtok_video::VideoWriter;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's test fixtures (`tests/fixtures/`, see its README).
pub fn fixtures() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

/// A file of the tiny taming fixture made by the original code.
pub fn taming_tiny(file: &str) -> PathBuf {
    fixtures().join("taming_tiny").join(file)
}

/// The venv's Python, for checking our files with the reference packages
/// (`.cargo/config.toml` sets `VQTOK_PYTHON`).
pub fn python() -> PathBuf {
    std::env::var_os("VQTOK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// The LPIPS weights setup converted (`.cargo/config.toml` sets `VQTOK_LPIPS_WEIGHTS`).
pub fn lpips_weights() -> PathBuf {
    std::env::var_os("VQTOK_LPIPS_WEIGHTS")
        .map(PathBuf::from)
        .expect("VQTOK_LPIPS_WEIGHTS is set by .cargo/config.toml; run `cargo xtask setup`")
}

/// `a` with `b` merged in: objects key by key, anything else replaced.
pub fn merge_json(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge_json(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Asserts that `text` contains every one of `needles`, showing the text when one is missing.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` not in:\n{text}");
    }
}

/// One `#[test]` per named case, each calling `check` with the case's arguments: for tests
/// that differ only in their data (say the same check in f64 and in f32).
///
/// ```ignore
/// vqtok_testkit::test_cases! { check_parity;
///     matches_in_f64: (Kind::Double, 1e-9);
///     matches_in_f32: (Kind::Float, 1e-4);
/// }
/// ```
#[macro_export]
macro_rules! test_cases {
    ($check:expr; $($name:ident: ($($arg:expr),* $(,)?);)+) => {
        $(
            #[test]
            fn $name() {
                ($check)($($arg),*)
            }
        )+
    };
}

/// Deterministic pseudo-random bytes (xorshift), for test frames and files.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 56) as u8
        })
        .collect()
}

/// `dir`, fresh and empty: whatever an earlier run of the test left there is removed.
/// Tests put it under their crate's `CARGO_TARGET_TMPDIR`.
pub fn fresh_dir(dir: PathBuf) -> PathBuf {
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a test folder");
    dir
}

/// Every file below `root` (hidden ones included), as paths relative to it, sorted: what
/// tests compare output trees by.
pub fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("list a test folder")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path.strip_prefix(root).expect("below root").to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// The token files (`*.vqt.safetensors`) below `root`: relative path → bytes.
pub fn token_files(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    files_below(root)
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".vqt.safetensors"))
        .map(|f| {
            let bytes = std::fs::read(root.join(&f)).expect("read a token file");
            (f, bytes)
        })
        .collect()
}

/// Generated videos with content a tokenizer can learn and tests can reason about.
pub mod video {
    pub use vqtok_video::WriterOptions;

    use super::*;

    /// Frame `t` of textured boxes moving over gradients (what a tiny model learns in a
    /// few hundred CPU steps), `size`², seeded.
    pub fn moving_boxes(t: usize, size: usize, seed: u32) -> Vec<u8> {
        let (s, t) = (size as i64, t as i64);
        let mut rgb = vec![0u8; size * size * 3];
        for y in 0..s {
            for x in 0..s {
                let i = ((y * s + x) * 3) as usize;
                let cx = (x - (t * 2 + seed as i64 * 7) % s).rem_euclid(s);
                let cy = (y - t % s).rem_euclid(s);
                let in_box = cx < s / 3 && cy < s / 3;
                rgb[i] = if in_box { 230 } else { (x * 255 / s) as u8 };
                rgb[i + 1] = if in_box { 40 } else { (y * 255 / s) as u8 };
                rgb[i + 2] = ((((x / 4) + (y / 4) + t) % 2) * 120 + seed as i64 * 30 % 100) as u8;
            }
        }
        rgb
    }

    /// Frame `i` of a smooth moving pattern, `w × h`: gradients, a bright square moving
    /// right and a ripple, so codes vary over space and time.
    pub fn ripple(i: usize, w: usize, h: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let sq = (x + 2 * w - 3 * i % w) % w < w / 4 && y > h / 4 && y < h / 2;
                let ripple = (((x * x + y * y) as f64).sqrt() * 0.4 - i as f64 * 0.5).sin();
                let boost = if sq { 80.0 } else { 0.0 };
                for v in [
                    (x * 255 / w) as f64 + boost,
                    (y * 255 / h) as f64 + boost,
                    128.0 + 90.0 * ripple,
                ] {
                    out.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
        out
    }

    /// Writes `frames` frames of `w × h` made by `frame(i)` (mp4, libx264 else MPEG-4).
    pub fn write(
        path: &Path,
        frames: usize,
        (w, h): (usize, usize),
        opts: &WriterOptions,
        frame: impl Fn(usize) -> Vec<u8>,
    ) {
        let mut writer = VideoWriter::create(path, w, h, opts).expect("create test video");
        for i in 0..frames {
            writer.write(&frame(i)).expect("write test frame");
        }
        writer.finish().expect("finish test video");
    }
}

/// Running the workspace's binaries.
pub mod process {
    use super::*;

    /// Asserts the exit status, showing the output when it differs.
    pub fn assert_status(out: &Output, code: i32) {
        assert_eq!(
            out.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// stdout parsed as JSON (panics with both streams when it is not).
    pub fn stdout_json(out: &Output) -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    pub fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Builds `(package, binary)`s of the workspace in the profile of the running test,
    /// with `features` (none: a no-op under `cargo test --workspace`, which built them),
    /// and returns the folder they are in.
    pub fn build_bins(bins: &[(&str, &str)], features: &[&str]) -> PathBuf {
        let mut args: Vec<&str> = Vec::new();
        for (package, bin) in bins {
            args.extend(["-p", package, "--bin", bin]);
        }
        for feature in features {
            args.extend(["--features", feature]);
        }
        build(&args)
    }

    /// Builds the libraries of `packages` (e.g. vqtok-pydist's cdylib, which `cargo test`
    /// does not build) in the running test's profile; returns the folder they are in.
    pub fn build_libs(packages: &[&str]) -> PathBuf {
        let mut args = vec!["--lib"];
        for package in packages {
            args.extend(["-p", package]);
        }
        build(&args)
    }

    fn build(args: &[&str]) -> PathBuf {
        let exe = std::env::current_exe().expect("the test's path");
        // target/<profile>/deps/TEST-HASH → target/<profile>
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("a test lives in target/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet"]).current_dir(workspace_root());
        cmd.args(args);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert_status(&cmd.output().expect("cannot run cargo"), 0);
        dir
    }
}
