//! `xtask/scripts/import_taming.py` (behind `cargo xtask import-taming`): a synthetic
//! Lightning-shaped taming checkpoint made with the venv's torch imports back to the
//! fixture's exact weights, which then reproduce the original model's outputs — and the
//! pickle's foreign objects, including a code-execution payload, are never run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{
    assert_close, assert_contains_all, read_tensors, taming_tiny, workspace_root,
};
use tch::nn::VarStore;
use tch::{Device, Kind};
use vqtok_config::Config;
use vqtok_train::model::create_model;
use vqtok_train::state_dict::{LoadOptions, load_state_dict};

/// Registers stand-in `pytorch_lightning` modules so the callback class can be pickled
/// (and, in the control, unpickled), as a real Lightning checkpoint would name it.
const FAKE_LIGHTNING: &str = r#"
import sys, types
for name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
    sys.modules[name] = types.ModuleType(name)
mod = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
class ModelCheckpoint:
    def __init__(self):
        self.best_model_path = "logs/last.ckpt"
ModelCheckpoint.__module__ = mod.__name__
mod.ModelCheckpoint = ModelCheckpoint
sys.modules[mod.__name__] = mod
"#;

/// argv: fixture model.safetensors, output .ckpt, marker path for the payload.
const MAKE_CKPT: &str = r#"
import collections, subprocess
import torch
from safetensors.torch import load_file
src, out, marker = sys.argv[1], sys.argv[2], sys.argv[3]
sd = collections.OrderedDict(load_file(src))
sd["loss.perceptual_loss.net.slice1.0.weight"] = torch.zeros(64, 3, 3, 3)
sd["loss.perceptual_loss.lin0.model.1.weight"] = torch.zeros(1, 64, 1, 1)
class Payload:
    def __reduce__(self):
        return (subprocess.call, (["touch", marker],))
names = [k for k in sd if not k.startswith("loss.perceptual")]
adam = {"state": {i: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(sd[k]),
                      "exp_avg_sq": torch.zeros_like(sd[k])} for i, k in enumerate(names[:5])},
        "param_groups": [{"lr": 4.5e-6, "betas": (0.5, 0.9), "params": list(range(5))}]}
torch.save({"epoch": 3, "global_step": 1234, "pytorch-lightning_version": "1.0.8",
            "state_dict": sd, "optimizer_states": [adam, adam], "lr_schedulers": [],
            "callbacks": {ModelCheckpoint: ModelCheckpoint(), "payload": Payload()}}, out)
"#;

fn python() -> PathBuf {
    std::env::var_os("VQTOK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

fn run_python(args: &[&Path], code: Option<&str>) -> Output {
    let mut cmd = Command::new(python());
    if let Some(code) = code {
        cmd.arg("-c").arg(code);
    }
    cmd.args(args).output().expect("the venv's python runs")
}

fn import(ckpt: &Path, out: &Path) -> Output {
    let script = workspace_root().join("xtask/scripts/import_taming.py");
    run_python(&[&script, ckpt, out], None)
}

#[test]
fn lightning_checkpoint_imports_to_the_fixture_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, out, marker) = (
        dir.path().join("last.ckpt"),
        dir.path().join("model.safetensors"),
        dir.path().join("payload-ran"),
    );
    let fixture = taming_tiny("model.safetensors");
    let made = run_python(
        &[&fixture, &ckpt, &marker],
        Some(&format!("{FAKE_LIGHTNING}{MAKE_CKPT}")),
    );
    assert!(
        made.status.success(),
        "making the checkpoint: {}",
        String::from_utf8_lossy(&made.stderr)
    );

    let res = import(&ckpt, &out);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "import failed: {}{}",
        stdout,
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(!marker.exists(), "the checkpoint's payload was executed");
    assert_contains_all(
        &stdout,
        &[
            "encoder.*",
            "loss.discriminator.*",
            "dropped loss.perceptual_loss.* (2 tensors)",
            "global_step 1234",
        ],
    );

    // Exactly the fixture's tensors (autoencoder + discriminator), bit for bit.
    let want = read_tensors(&fixture);
    let got = read_tensors(&out);
    let mut keys: Vec<_> = got.keys().collect();
    keys.sort();
    let mut want_keys: Vec<_> = want.keys().collect();
    want_keys.sort();
    assert_eq!(keys, want_keys);
    for (k, t) in &want {
        assert_eq!(got[k].kind(), t.kind(), "{k}");
        assert_close(k, &got[k], t, 0.0);
    }

    // The imported autoencoder reproduces taming's reconstruction (f32: 1e-4).
    let vs = VarStore::new(Device::Cpu);
    let cfg = Config::from_path(taming_tiny("param.json")).expect("fixture config");
    let model = create_model(&cfg.model, &vs.root()).expect("tiny model");
    let opts = LoadOptions {
        ignore_prefixes: vec!["loss.".into()],
        ..LoadOptions::default()
    };
    load_state_dict(&vs, &out, &opts).expect("strict load of the import");
    let exp = read_tensors(&taming_tiny("expected.safetensors"));
    let recon = tch::no_grad(|| {
        model
            .forward_t(&exp["x"].to_kind(Kind::Float), false)
            .expect("forward")
            .recon
    });
    assert_close("xrec", &recon, &exp["xrec"], 1e-4);

    // Control: an ordinary unpickling of the same file does run the payload, so the
    // absence of the marker above means something.
    let control =
        format!("{FAKE_LIGHTNING}\nimport torch\ntorch.load(sys.argv[1], weights_only=False)\n");
    let ran = run_python(&[&ckpt], Some(&control));
    assert!(
        ran.status.success(),
        "control load: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(
        marker.exists(),
        "control: the payload should run under a plain pickle load"
    );
}

#[test]
fn non_checkpoints_are_rejected_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.ckpt");
    std::fs::write(&garbage, b"definitely not a checkpoint").expect("write");
    let out = dir.path().join("out.safetensors");
    let res = import(&garbage, &out);
    assert_eq!(
        res.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stderr).contains("garbage.ckpt"));
    assert!(!out.exists());

    let no_state = dir.path().join("weights.ckpt");
    let code =
        "import torch, sys\ntorch.save({'state_dict': {'a': torch.zeros(2)}}, sys.argv[1])\n";
    assert!(run_python(&[&no_state], Some(code)).status.success());
    let res = import(&no_state, &out);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("no taming autoencoder"));
}
