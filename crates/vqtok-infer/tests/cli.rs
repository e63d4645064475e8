//! End-to-end tests of the `vqtokenize` binary on generated videos and model folders
//! exported from the repository's tiny configs with seeded random weights.

mod common;
mod shards;

use std::path::Path;

use common::*;
use vqtok_infer::TokenFile;
use vqtok_runtime::{Input, Output, Session, SessionOptions};
use vqtok_video::{Fit, FrameSelect, Geometry, VideoReader};

/// The encoder run directly, frame by frame, on frames decoded and placed by the test:
/// what the streaming, batched pipeline must reproduce exactly.
fn reference_indices(model: &Path, video: &Path, geometry: &Geometry, stride: usize) -> Vec<i64> {
    let mut session =
        Session::open(&model.join("encoder.onnx"), SessionOptions::default()).unwrap();
    let mut reader = VideoReader::open(video).unwrap();
    let select = FrameSelect {
        stride,
        size: Some((geometry.scaled_width, geometry.scaled_height)),
        ..FrameSelect::default()
    };
    let (w, h) = (geometry.out_width, geometry.out_height);
    let mut all = Vec::new();
    for tf in reader.frames(&select).unwrap() {
        let frame = geometry.place(&tf.unwrap().frame).unwrap();
        let out = session
            .run(&[("frames", Input::U8(vec![1, h, w, 3], &frame.data))])
            .unwrap();
        match &out[0].1 {
            Output::I64(t) => all.extend_from_slice(&t.data),
            other => panic!("{other:?}"),
        }
    }
    all
}

/// PSNR of the decoder's frames for `tokens` against the source frames they came from,
/// computed here from the graphs and the reader directly.
fn reference_psnr(model: &Path, video: &Path, tokens: &TokenFile) -> f64 {
    let mut decoder =
        Session::open(&model.join("decoder.onnx"), SessionOptions::default()).unwrap();
    let m = &tokens.meta;
    let g = m.geometry;
    let mut reader = VideoReader::open(video).unwrap();
    let select = FrameSelect {
        stride: m.sampling.stride,
        size: Some((g.scaled_width, g.scaled_height)),
        ..FrameSelect::default()
    };
    let sources: Vec<Vec<u8>> = reader
        .frames(&select)
        .unwrap()
        .map(|f| g.place(&f.unwrap().frame).unwrap().data)
        .collect();
    assert_eq!(sources.len(), m.frames());
    let level = &tokens.levels[0];
    let (mut sse, mut n) = (0.0, 0usize);
    for (t, src) in sources.iter().enumerate() {
        let idx: Vec<i64> = level.frames(t, 1).iter().map(|&v| v as i64).collect();
        let out = decoder
            .run(&[(
                "indices",
                Input::I64(vec![1, level.shape[1], level.shape[2]], &idx),
            )])
            .unwrap();
        let Output::U8(frame) = &out[0].1 else {
            panic!("u8 frames")
        };
        sse += vqtok_core::psnr::squared_error_u8(&frame.data, src);
        n += src.len();
    }
    vqtok_core::psnr::psnr_db(sse / n as f64)
}

#[test]
fn encode_matches_the_encoder_frame_by_frame_and_decodes_back() {
    let (dir, video) = scratch_with_video("round_trip", "clip.mp4", 21, (80, 48), 10.0);
    let model = model("taming_tiny.json", 3);
    let out = vqtokenize(&[
        &video,
        &"-m",
        &model,
        &"--batch",
        &"4",
        &"--stride",
        &"2",
        // Threaded FFmpeg decoding yields the same frames.
        &"--decode-threads",
        &"2",
        &"--json",
    ]);
    assert_status(&out, 0);
    let summary = stdout_json(&out);
    assert_eq!(summary["encoded"], 1, "{summary}");
    let tokens_path = dir.join("clip.vqt.safetensors");
    let tokens = TokenFile::open(&tokens_path).unwrap();
    let m = &tokens.meta;
    // 21 frames, every second one: slots 0, 2, …, 20.
    assert_eq!(m.frame_indices, (0..=20).step_by(2).collect::<Vec<u64>>());
    // taming_tiny: 64² training crops, factor 4 → 16×16 codes of 64.
    assert_eq!(tokens.levels[0].shape, [11, 16, 16]);
    assert_eq!((m.geometry.out_width, m.geometry.out_height), (64, 64));
    assert_eq!(
        m.geometry,
        Geometry::fit(80, 48, 64, 64, Fit::Crop).unwrap()
    );
    assert_eq!(m.sampling.fps(), 5.0);
    let want = reference_indices(&model, &video, &m.geometry, 2);
    let got: Vec<i64> = tokens.levels[0].data.iter().map(|&v| v as i64).collect();
    assert_eq!(
        got, want,
        "batched streaming must equal frame-by-frame encoding"
    );
    // Random weights with jittered norms still use most codes, so order bugs show.
    let distinct: std::collections::BTreeSet<_> = got.iter().collect();
    assert!(
        distinct.len() > 16,
        "only {} distinct codes",
        distinct.len()
    );

    // Back to video: 11 frames of 64×64 at the token rate, and the reported PSNR is the
    // one of the decoder's frames against the re-read source frames.
    let recon = dir.join("recon.mp4");
    let out = decode(&tokens_path, &model, &[&"-o", &recon, &"--psnr", &"--json"]);
    assert_status(&out, 0);
    let d = stdout_json(&out);
    assert_eq!(d["frames"], 11);
    assert_eq!(d["size"], serde_json::json!([64, 64]));
    let psnr = d["psnr_db"].as_f64().unwrap();
    let want = reference_psnr(&model, &video, &tokens);
    // Both sum the same integer squared errors; only the f64 summation order differs.
    assert!(
        (psnr - want).abs() < 1e-9,
        "reported {psnr} dB, recomputed {want} dB"
    );
    let mut reader = VideoReader::open(&recon).unwrap();
    assert_eq!((reader.meta().width, reader.meta().height), (64, 64));
    assert!((reader.meta().fps - 5.0).abs() < 1e-6);
    let decoded: Vec<_> = reader
        .frames(&FrameSelect::default())
        .unwrap()
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(decoded.len(), 11);
}

#[test]
fn vqvae2_writes_one_grid_per_level_and_decodes_both() {
    let (dir, video) = scratch_with_video("vqvae2", "v.mp4", 6, (64, 64), 25.0);
    let model = model("vqvae2_tiny.json", 5);
    let tokens_path = dir.join("out/v.vqt.safetensors");
    let out = vqtokenize(&[&video, &"-m", &model, &"-o", &tokens_path, &"-q"]);
    assert_status(&out, 0);
    let tokens = TokenFile::open(&tokens_path).unwrap();
    let names: Vec<_> = tokens
        .levels
        .iter()
        .map(|l| (l.tensor.as_str(), l.shape))
        .collect();
    // Top grid at factor 8, bottom at factor 4 of the 64² training size.
    assert_eq!(
        names,
        vec![("indices_t", [6, 8, 8]), ("indices_b", [6, 16, 16])]
    );
    assert_eq!(tokens.meta.index_dtype, vqtok_infer::IndexDtype::I16);
    let recon = dir.join("v.mp4.recon.mp4");
    let out = decode(&tokens_path, &model, &[&"-o", &recon, &"-q"]);
    assert_status(&out, 0);
    let reader = VideoReader::open(&recon).unwrap();
    assert_eq!((reader.meta().width, reader.meta().height), (64, 64));
    assert_eq!(reader.meta().frame_count, 6);
}

#[test]
fn decode_refuses_token_files_of_another_model() {
    let (dir, video) = scratch_with_video("wrong_model", "v.mp4", 4, (64, 64), 25.0);
    let (a, b) = (model("taming_tiny.json", 3), model("taming_tiny.json", 4));
    assert_status(&vqtokenize(&[&video, &"-m", &a, &"-q"]), 0);
    let tokens = dir.join("v.vqt.safetensors");
    let recon = dir.join("r.mp4");
    let out = decode(&tokens, &b, &[&"-o", &recon]);
    assert_status(&out, 2);
    let err = stderr(&out);
    let id_a = TokenFile::open(&tokens).unwrap().meta.model_sha256;
    assert!(
        err.contains("made by model") && err.contains(&id_a),
        "{err}"
    );
    assert!(!recon.exists(), "nothing may be written for a refused file");
    // The same tokens decode with their own model.
    assert_status(&decode(&tokens, &a, &[&"-o", &recon, &"-q"]), 0);
}

#[test]
fn batch_mode_reports_bad_inputs_keeps_going_and_resumes() {
    let dir = scratch("batch");
    let model = model("taming_tiny.json", 3);
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    write_video(&input.join("a.mp4"), 8, 64, 48, 25.0);
    write_video(&input.join("sub/b.mp4"), 5, 48, 64, 25.0);
    // Not a video at all, and a video cut in half (its index is at the end).
    std::fs::write(input.join("noise.mp4"), random_bytes(5000, 1)).unwrap();
    let good = std::fs::read(input.join("a.mp4")).unwrap();
    std::fs::write(input.join("cut.mp4"), &good[..good.len() / 2]).unwrap();
    let out_dir = dir.join("out");
    let run = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &input, &"-o", &out_dir, &"-m", &model, &"--jobs", &"2", &"--json",
        ];
        for e in extra {
            args.push(e);
        }
        let out = vqtokenize(&args);
        (out.status.code(), stdout_json(&out), stderr(&out))
    };
    let status_of = |summary: &serde_json::Value, name: &str| -> String {
        summary["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["input"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in {summary}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let (code, s, err) = run(&[]);
    assert_eq!(code, Some(1), "any failed input makes the run fail: {s}");
    assert_eq!(
        (s["encoded"].as_u64(), s["failed"].as_u64()),
        (Some(2), Some(2)),
        "{s}"
    );
    for bad in ["noise.mp4", "cut.mp4"] {
        assert_eq!(status_of(&s, bad), "failed");
        assert!(err.contains(bad), "the reason names {bad}: {err}");
    }
    let a_out = out_dir.join("a.vqt.safetensors");
    let b_out = out_dir.join("sub/b.vqt.safetensors");
    assert_eq!(TokenFile::open(&b_out).unwrap().meta.frames(), 5);
    let a_bytes = std::fs::read(&a_out).unwrap();

    // A killed run: b's output cut short, a dead process's partial file next to a.
    let b_bytes = std::fs::read(&b_out).unwrap();
    std::fs::write(&b_out, &b_bytes[..b_bytes.len() - 100]).unwrap();
    let partial = out_dir.join(".a.vqt.safetensors.partial-4999999");
    std::fs::write(&partial, b"half").unwrap();
    let (code, s, _) = run(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(status_of(&s, "a.mp4"), "up_to_date");
    assert_eq!(status_of(&s, "b.mp4"), "encoded");
    assert!(
        std::fs::read(&a_out).unwrap() == a_bytes,
        "a was not rewritten"
    );
    assert!(
        std::fs::read(&b_out).unwrap() == b_bytes,
        "b was re-made byte for byte"
    );
    assert!(!partial.exists(), "stale partial files are cleaned up");

    // Another selection re-encodes; so does --force.
    let (_, s, _) = run(&["--stride", "2"]);
    assert_eq!(status_of(&s, "a.mp4"), "encoded");
    assert_eq!(TokenFile::open(&a_out).unwrap().meta.frames(), 4);
    let (_, s, _) = run(&["--stride", "2", "--force"]);
    assert_eq!(s["encoded"].as_u64(), Some(2), "{s}");
}

#[test]
fn a_concurrent_writers_partial_file_is_left_alone_until_its_lock_is_gone() {
    let dir = scratch("shared_output");
    let model = model("taming_tiny.json", 3);
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    write_video(&input.join("a.mp4"), 4, 64, 48, 25.0);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    // Another vqtokenize writing the same output from another host (or container) that
    // shares the folder: its pid names no process here, but it holds its file's lock.
    let partial = out_dir.join(".a.vqt.safetensors.partial-4999999-otherhost-00ff00ff00ff00ff.L0");
    std::fs::write(&partial, b"in progress").unwrap();
    let writer = std::fs::File::open(&partial).unwrap();
    writer.try_lock().unwrap();
    let run = || vqtokenize(&[&input, &"-o", &out_dir, &"-m", &model, &"--json"]);

    assert_status(&run(), 0);
    assert!(partial.exists(), "a live writer's file is kept");
    assert_eq!(
        TokenFile::open(&out_dir.join("a.vqt.safetensors"))
            .unwrap()
            .meta
            .frames(),
        4
    );
    // The writer is gone (killed): its file is stale now, whatever its pid says.
    drop(writer);
    assert_status(&run(), 0);
    assert!(!partial.exists(), "a dead writer's file is cleaned up");
}

#[test]
fn single_bad_inputs_exit_2_with_the_reason() {
    let (dir, video) = scratch_with_video("bad_single", "v.mp4", 3, (64, 64), 25.0);
    let model = model("taming_tiny.json", 3);

    let missing_model = dir.join("no-model-here");
    let out = vqtokenize(&[&video, &"-m", &missing_model]);
    assert_status(&out, 2);
    assert!(stderr(&out).contains("no-model-here") && stderr(&out).contains("model folder"));

    let noise = dir.join("noise.mp4");
    std::fs::write(&noise, random_bytes(3000, 1)).unwrap();
    for input in [noise.clone(), dir.join("absent.mp4")] {
        let out = vqtokenize(&[&input, &"-m", &model]);
        assert_status(&out, 2);
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        assert!(stderr(&out).contains(&name), "{}", stderr(&out));
    }

    let out = vqtokenize(&[&video, &"-m", &model, &"--size", &"30"]);
    assert_status(&out, 2);
    assert!(stderr(&out).contains("multiples of 4"), "{}", stderr(&out));

    let out = decode(&video, &model, &[]);
    assert_status(&out, 2);
    assert!(stderr(&out).contains("v.mp4"), "{}", stderr(&out));
}

#[test]
fn token_files_read_in_python_with_their_metadata() {
    let (dir, video) = scratch_with_video("python", "v.mp4", 7, (64, 64), 25.0);
    let model = model("taming_tiny.json", 3);
    let tokens_path = dir.join("v.vqt.safetensors");
    assert_status(&vqtokenize(&[&video, &"-m", &model, &"-q"]), 0);
    let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
t = load_file(sys.argv[1])["indices"]
md = safe_open(sys.argv[1], "np").metadata()
print(json.dumps({
    "dtype": str(t.dtype), "shape": list(t.shape), "sum": int(t.astype("int64").sum()),
    "frames": int(md["frames"]), "model": md["model_sha256"], "codebook": int(md["codebook_size"]),
    "indices": json.loads(md["frame_indices"]), "grid": json.loads(md["grid"]),
    "source": json.loads(md["source"])["width"], "fit": md["fit"],
}))
"#;
    let out = std::process::Command::new(python())
        .args(["-c", script])
        .arg(&tokens_path)
        .output()
        .unwrap();
    assert_status(&out, 0);
    let py = stdout_json(&out);
    let rust = TokenFile::open(&tokens_path).unwrap();
    let sum: i64 = rust.levels[0].data.iter().map(|&v| v as i64).sum();
    assert_eq!(py["dtype"], "int16");
    assert_eq!(py["shape"], serde_json::json!([7, 16, 16]));
    assert_eq!(py["sum"].as_i64(), Some(sum));
    assert_eq!(py["frames"], 7);
    assert_eq!(py["model"].as_str(), Some(rust.meta.model_sha256.as_str()));
    assert_eq!(py["codebook"], 64);
    assert_eq!(py["indices"], serde_json::json!([0, 1, 2, 3, 4, 5, 6]));
    assert_eq!(py["grid"], serde_json::json!({"indices": [16, 16]}));
    assert_eq!(
        (py["source"].as_u64(), py["fit"].as_str()),
        (Some(64), Some("crop"))
    );
}

#[test]
fn padded_frames_decode_back_to_the_source_size() {
    let (dir, video) = scratch_with_video("pad", "wide.mp4", 4, (64, 48), 25.0);
    let model = model("taming_tiny.json", 3);
    let out = vqtokenize(&[
        &video, &"-m", &model, &"--size", &"32", &"--fit", &"pad", &"-q",
    ]);
    assert_status(&out, 0);
    let tokens_path = dir.join("wide.vqt.safetensors");
    let info = vqtokenize(&[&"info", &tokens_path, &"--json"]);
    assert_status(&info, 0);
    let md = &stdout_json(&info)["metadata"];
    assert_eq!(md["fit"], "pad");
    let g: Geometry = serde_json::from_str(md["geometry"].as_str().unwrap()).unwrap();
    // 64×48 into 32²: scaled to 32×24, 4 rows of black above and below.
    assert_eq!(
        (g.scaled_width, g.scaled_height, g.offset_x, g.offset_y),
        (32, 24, 0, -4)
    );
    let recon = dir.join("wide.recon.mp4");
    let out = decode(&tokens_path, &model, &[&"--size", &"source", &"-q"]);
    assert_status(&out, 0);
    let reader = VideoReader::open(&recon).unwrap();
    assert_eq!((reader.meta().width, reader.meta().height), (64, 48));
    let text = vqtokenize(&[&"info", &tokens_path]);
    assert_status(&text, 0);
    assert!(String::from_utf8_lossy(&text.stdout).contains("fit Pad"));
}

/// Issue 14: a token file or model folder edited by hand gets exit 2 and names the file
/// and field; before the checks these divided by zero (factor 0), or asked for an
/// endless resize that aborted on allocation (`scaled_width: 0`).
#[test]
fn crafted_token_files_and_manifests_exit_2_with_the_field() {
    let (dir, video) = scratch_with_video("crafted", "v.mp4", 2, (64, 48), 25.0);
    let model = model("taming_tiny.json", 3);
    assert_status(&vqtokenize(&[&video, &"-m", &model, &"-q"]), 0);
    let tokens = dir.join("v.vqt.safetensors");
    let good = TokenFile::open(&tokens).unwrap();
    type Edit = fn(&mut TokenFile);
    let edits: [(Edit, &str); 4] = [
        (|f| f.meta.geometry.scaled_width = 0, "`geometry`"),
        (|f| f.meta.geometry.offset_x = i64::MIN, "`geometry`"),
        (|f| f.meta.levels[0].factor = 0, "`levels[0].factor`"),
        (|f| f.meta.sampling.stride = 0, "`sampling.stride`"),
    ];
    let crafted = dir.join("crafted.vqt.safetensors");
    for (edit, field) in edits {
        let mut f = good.clone();
        edit(&mut f);
        std::fs::write(&crafted, f.to_bytes()).unwrap();
        let out = decode(&crafted, &model, &[&"--size", &"source", &"-q"]);
        assert_status(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains("crafted.vqt.safetensors") && err.contains(field),
            "{err}"
        );
    }

    let folder = dir.join("model");
    std::fs::create_dir_all(&folder).unwrap();
    for e in std::fs::read_dir(&model).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), folder.join(e.file_name())).unwrap();
    }
    let manifest = folder.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["levels"][0]["factor"] = 0.into();
    std::fs::write(&manifest, m.to_string()).unwrap();
    let out = vqtokenize(&[
        &video,
        &"-m",
        &folder,
        &"-o",
        &dir.join("x.vqt.safetensors"),
    ]);
    assert_status(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("manifest.json") && err.contains("`levels[0].factor` is 0"),
        "{err}"
    );
}

/// A binary built in the repo runs straight from `target/` with no ORT variable set (it
/// falls back to the library path it was built with); a wrong explicit path is named.
#[test]
fn finds_onnx_runtime_without_the_environment_and_names_a_wrong_path() {
    let (_dir, video) = scratch_with_video("ort_path", "v.mp4", 2, (64, 64), 25.0);
    let model = model("taming_tiny.json", 5);
    let run = |ort: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vqtokenize"));
        cmd.arg(&video)
            .arg("-m")
            .arg(&model)
            .args(["-q", "--force"])
            .env_remove("VQTOK_MODEL")
            .env_remove("ORT_DYLIB_PATH");
        if let Some(p) = ort {
            cmd.env("ORT_DYLIB_PATH", p);
        }
        cmd.output().expect("cannot start vqtokenize")
    };
    assert_status(&run(None), 0);
    let out = run(Some("/nonexistent/libonnxruntime.so"));
    assert_status(&out, 1);
    assert!(
        stderr(&out).contains("/nonexistent/libonnxruntime.so does not exist"),
        "{}",
        stderr(&out)
    );
}

/// Kill storm: a batch over a corpus, SIGKILLed 20 times at random moments and rerun
/// each time, ends with every output byte-identical to an uninterrupted run's and no
/// partial file left; every finished output in between is a valid token file.
#[test]
fn a_batch_killed_twenty_times_ends_identical_to_an_uninterrupted_run() {
    let dir = scratch("kill_storm");
    let model = model("taming_tiny.json", 3);
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    for i in 0..6 {
        let (w, h) = if i % 2 == 0 { (64, 48) } else { (48, 64) };
        let sub = if i < 3 { "" } else { "sub/" };
        write_video(&input.join(format!("{sub}c{i}.mp4")), 10 + i, w, h, 25.0);
    }
    let batch = |out: &Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vqtokenize"));
        c.arg(&input)
            .arg("-o")
            .arg(out)
            .arg("-m")
            .arg(&model)
            .args(["--jobs", "2", "-q"])
            .env_remove("VQTOK_MODEL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let reference = dir.join("reference");
    assert!(batch(&reference).status().unwrap().success());

    let out = dir.join("out");
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for kill in 0..20 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = batch(&out).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 + rng % 700));
        child.kill().unwrap();
        child.wait().unwrap();
        if out.is_dir() {
            for file in files_below(&out) {
                let name = file.to_string_lossy();
                if name.ends_with(".vqt.safetensors") && !name.contains("partial") {
                    TokenFile::open(&out.join(&file))
                        .unwrap_or_else(|e| panic!("after kill {kill}: {name}: {e}"));
                }
            }
        }
    }
    assert!(batch(&out).status().unwrap().success());
    let (want, got) = (files_below(&reference), files_below(&out));
    assert_eq!(
        got, want,
        "the same files, and no partial or claim file left"
    );
    // The index part differs on purpose: the last run found most outputs up to date.
    for file in want
        .iter()
        .filter(|f| !f.starts_with(vqtok_infer::index::INDEX_DIR))
    {
        assert!(
            std::fs::read(out.join(file)).unwrap() == std::fs::read(reference.join(file)).unwrap(),
            "{} differs from the uninterrupted run's",
            file.display()
        );
    }
}

/// The default build has no torch engine: asking for it is bad usage (exit 2) with the
/// build command in the message, before any model is opened.
#[cfg(not(feature = "torch"))]
#[test]
fn engine_torch_without_the_feature_exits_2_with_how_to_build_it() {
    let (_dir, video) = scratch_with_video("no_torch", "v.mp4", 2, (64, 64), 25.0);
    let model = model("taming_tiny.json", 3);
    let out = vqtokenize(&[&video, &"-m", &model, &"--engine", &"torch"]);
    assert_status(&out, 2);
    let e = stderr(&out);
    assert!(e.contains("--features torch"), "{e}");
}
