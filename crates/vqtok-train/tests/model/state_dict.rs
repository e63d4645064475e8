//! Strict safetensors state dicts: every problem listed at once, prefixes, dtype
//! conversion, and save → load round trips.

use crate::support::{assert_close, assert_contains_all, read_tensors, taming_tiny};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vqtok_config::Config;
use vqtok_train::model::create_model;
use vqtok_train::state_dict::{LoadOptions, StateDictError, load_state_dict, save_state_dict};

fn tiny_store(kind: Kind) -> VarStore {
    let mut vs = VarStore::new(Device::Cpu);
    vs.set_kind(kind);
    let cfg = Config::from_path(taming_tiny("param.json")).expect("fixture config");
    create_model(&cfg.model, &vs.root()).expect("tiny model");
    vs
}

fn autoencoder_only() -> LoadOptions {
    LoadOptions {
        ignore_prefixes: vec!["loss.".into()],
        ..LoadOptions::default()
    }
}

/// A var named by a dotted key (`a.b.c`), as a store whose names mirror a file.
fn add_dotted(vs: &VarStore, key: &str, like: &Tensor) {
    let parts: Vec<&str> = key.split('.').collect();
    let mut path = vs.root();
    for p in &parts[..parts.len() - 1] {
        path = path.sub(*p);
    }
    let _ = path.add(parts[parts.len() - 1], like.zeros_like(), false);
}

#[test]
fn strict_load_lists_every_problem_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut file: Vec<(String, Tensor)> = read_tensors(&taming_tiny("model.safetensors"))
        .into_iter()
        .filter(|(k, _)| !k.starts_with("loss.") && k != "decoder.conv_out.bias")
        .map(|(k, t)| {
            if k == "quant_conv.weight" {
                (k, Tensor::zeros([8, 16, 3, 3], (Kind::Float, Device::Cpu)))
            } else {
                (k, t)
            }
        })
        .collect();
    file.push((
        "decoder.extra.weight".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    let path = dir.path().join("broken.safetensors");
    Tensor::write_safetensors(&file, &path).expect("write");

    let vs = tiny_store(Kind::Float);
    let err = load_state_dict(&vs, &path, &LoadOptions::default()).expect_err("must fail");
    match &err {
        StateDictError::Mismatch {
            missing,
            unexpected,
            conflicts,
            ..
        } => {
            assert_eq!(missing, &vec!["decoder.conv_out.bias".to_string()]);
            assert_eq!(unexpected, &vec!["decoder.extra.weight".to_string()]);
            assert_eq!(conflicts.len(), 1);
            assert!(
                conflicts[0].starts_with("quant_conv.weight: shape [8, 16, 3, 3]"),
                "{conflicts:?}"
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_contains_all(
        &err.to_string(),
        &[
            "broken.safetensors",
            "decoder.conv_out.bias",
            "decoder.extra.weight",
            "quant_conv.weight",
        ],
    );

    // Non-strict (taming's init_from_ckpt): missing/unexpected only reported, but a
    // shape conflict still fails.
    let lenient = LoadOptions {
        strict: false,
        ..LoadOptions::default()
    };
    assert!(matches!(
        load_state_dict(&vs, &path, &lenient),
        Err(StateDictError::Mismatch { .. })
    ));
}

#[test]
fn non_strict_load_reports_and_loads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file: Vec<(String, Tensor)> = read_tensors(&taming_tiny("model.safetensors"))
        .into_iter()
        .filter(|(k, _)| k != "decoder.conv_out.bias")
        .collect();
    let path = dir.path().join("partial.safetensors");
    Tensor::write_safetensors(&file, &path).expect("write");
    let vs = tiny_store(Kind::Float);
    let before = vs.variables()["decoder.conv_out.bias"].copy();
    let opts = LoadOptions {
        strict: false,
        ..autoencoder_only()
    };
    let report = load_state_dict(&vs, &path, &opts).expect("lenient load");
    assert_eq!(report.missing, vec!["decoder.conv_out.bias".to_string()]);
    assert!(report.unexpected.is_empty());
    assert_eq!(report.loaded, vs.len() - 1);
    assert_close(
        "untouched",
        &vs.variables()["decoder.conv_out.bias"],
        &before,
        0.0,
    );
}

#[test]
fn f32_file_loads_into_f64_store() {
    let vs = tiny_store(Kind::Double);
    load_state_dict(&vs, taming_tiny("model.safetensors"), &autoencoder_only()).expect("load");
    let file = read_tensors(&taming_tiny("model.safetensors"));
    for (name, var) in vs.variables() {
        assert_eq!(var.kind(), Kind::Double, "{name} keeps the store's dtype");
        assert_close(&name, &var, &file[&name].to_kind(Kind::Double), 0.0);
    }
}

#[test]
fn selected_prefix_loads_a_discriminator_store() {
    let file = read_tensors(&taming_tiny("model.safetensors"));
    let disc: Vec<(&String, &Tensor)> = file
        .iter()
        .filter(|(k, _)| k.starts_with("loss.discriminator."))
        .collect();
    assert!(!disc.is_empty());

    // A store named below the prefix (`main.0.weight`): select and strip.
    let short = VarStore::new(Device::Cpu);
    for (k, t) in &disc {
        add_dotted(&short, k.trim_start_matches("loss.discriminator."), t);
    }
    let opts = LoadOptions {
        select_prefix: Some("loss.discriminator.".into()),
        strip_prefix: true,
        ..LoadOptions::default()
    };
    let report = load_state_dict(&short, taming_tiny("model.safetensors"), &opts).expect("load");
    assert_eq!(report.loaded, disc.len());
    assert_eq!(report.skipped, file.len() - disc.len());
    let vars = short.variables();
    for (k, t) in &disc {
        let v = &vars[k.trim_start_matches("loss.discriminator.")];
        assert_eq!(v.kind(), t.kind(), "{k}: int64 counters stay int64");
        assert_close(k, v, t, 0.0);
    }

    // A store with the full names: select without stripping.
    let full = VarStore::new(Device::Cpu);
    for (k, t) in &disc {
        add_dotted(&full, k, t);
    }
    let opts = LoadOptions {
        select_prefix: Some("loss.discriminator.".into()),
        ..LoadOptions::default()
    };
    assert_eq!(
        load_state_dict(&full, taming_tiny("model.safetensors"), &opts)
            .expect("load")
            .loaded,
        disc.len()
    );
}

#[test]
fn save_then_load_round_trips_several_stores() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let _rng = crate::support::seeded(5);
    let ae = tiny_store(Kind::Float);
    let disc = VarStore::new(Device::Cpu);
    let _ = disc.root().sub("main").sub("0").add(
        "weight",
        Tensor::randn([4, 3, 4, 4], (Kind::Float, Device::Cpu)),
        true,
    );
    let _ = disc
        .root()
        .sub("main")
        .sub("3")
        .add("num_batches_tracked", Tensor::from(7i64), false);
    let n = save_state_dict(&path, &[("", &ae), ("loss.discriminator.", &disc)]).expect("save");
    assert_eq!(n, ae.len() + 2);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "only the file, no partial: {left:?}");
    let saved = read_tensors(&path);
    assert_eq!(
        saved["loss.discriminator.main.3.num_batches_tracked"].kind(),
        Kind::Int64
    );

    let ae2 = tiny_store(Kind::Float);
    load_state_dict(&ae2, &path, &autoencoder_only()).expect("strict load of the autoencoder");
    let vars2 = ae2.variables();
    for (name, var) in ae.variables() {
        assert_close(&name, &vars2[&name], &var, 0.0);
    }

    let dup = save_state_dict(dir.path().join("dup.safetensors"), &[("", &ae), ("", &ae)]);
    assert!(matches!(dup, Err(StateDictError::DuplicateKey { .. })));
}

#[test]
fn unreadable_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let vs = tiny_store(Kind::Float);
    let missing = dir.path().join("nope.safetensors");
    let err = load_state_dict(&vs, &missing, &LoadOptions::default()).expect_err("missing file");
    assert!(
        matches!(err, StateDictError::Read { .. }) && err.to_string().contains("nope.safetensors"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").expect("write");
    let err = load_state_dict(&vs, &garbage, &LoadOptions::default()).expect_err("garbage");
    assert!(
        matches!(err, StateDictError::Read { .. })
            && err.to_string().contains("garbage.safetensors"),
        "{err}"
    );
}

#[test]
fn ignore_prefixes_follow_taming_semantics() {
    // taming's ignore_keys are raw prefixes: "loss" drops every loss.* key.
    let vs = tiny_store(Kind::Float);
    let opts = LoadOptions {
        ignore_prefixes: vec!["loss".into()],
        ..LoadOptions::default()
    };
    let report = load_state_dict(&vs, taming_tiny("model.safetensors"), &opts).expect("load");
    let file = read_tensors(&taming_tiny("model.safetensors"));
    assert_eq!(
        report.skipped,
        file.keys().filter(|k| k.starts_with("loss")).count()
    );
    assert!(matches!(
        load_state_dict(
            &vs,
            taming_tiny("model.safetensors"),
            &LoadOptions::default()
        ),
        Err(StateDictError::Mismatch { .. })
    ));
}
