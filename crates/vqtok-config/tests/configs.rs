//! Every shipped config loads; malformed ones fail with the right JSON path and reason.

use vqtok_config::{Config, ErrorKind, ModelFamily};
use vqtok_testkit::{fixtures, workspace_root as repo_root};

#[test]
fn every_shipped_config_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo_root().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let cfg = Config::from_path(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!cfg.summary().is_empty());
            // Written-out configs parse back to the same value (the run folder keeps one).
            assert_eq!(
                Config::parse(&cfg.to_json_pretty()).unwrap(),
                cfg,
                "{}",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 8, "expected the 8 shipped configs, found {n}");
}

#[test]
fn seed_config_has_the_f16_geometry() {
    let cfg = Config::from_path(repo_root().join("configs/taming_vqgan_f16_1024.json")).unwrap();
    let levels = cfg.model.levels();
    assert_eq!(levels.len(), 1);
    assert_eq!(
        (levels[0].factor, levels[0].codebook_size, levels[0].dim),
        (16, 1024, 256)
    );
    assert_eq!(cfg.train.disc_update_every, 3);
    assert_eq!(cfg.train.adam_betas, [0.5, 0.9]);
}

#[test]
fn taming_tiny_fixture_loads_as_is() {
    let path = fixtures().join("taming_tiny/param.json");
    let cfg = Config::from_path(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.model.family(), ModelFamily::Taming);
    assert_eq!(cfg.train.disc_update_every, 1);
    assert_eq!(cfg.model.size_multiple(), 4);
    // Defaults the fixture leaves out are taming's.
    let vqtok_config::ModelConfig::Taming(t) = &cfg.model else {
        unreachable!()
    };
    assert!(t.legacy);
    assert_eq!(t.beta, 0.25);
    assert_eq!(t.lossconfig.params.perceptual_weight, 1.0);
    assert_eq!(t.lossconfig.params.disc_loss, vqtok_config::DiscLoss::Hinge);
}

#[test]
fn aliases_select_the_seed_adapters() {
    // The seed's adapter table (§3), written out independently of MODEL_TYPE_ALIASES.
    let seed: [(ModelFamily, &[&str]); 3] = [
        (
            ModelFamily::Taming,
            &[
                "TamingVQGAN",
                "taming_vqgan",
                "EMAVQ",
                "emavq",
                "VQGAN",
                "vqgan",
            ],
        ),
        (ModelFamily::VqVae2, &["VQVAE2", "vqvae2"]),
        (ModelFamily::VqVae, &["VqVae", "vqvae"]),
    ];
    for (family, names) in seed {
        for name in names {
            assert_eq!(ModelFamily::from_model_type(name), Some(family), "{name}");
        }
    }
    assert_eq!(ModelFamily::from_model_type("VQVAE"), None);
}

const TINY: &str = r#"{
  "model_type": "TamingVQGAN",
  "model_args": {
    "n_embed": 32, "embed_dim": 8,
    "ddconfig": {"z_channels": 16, "resolution": 32, "ch": 32, "ch_mult": [1, 2, 2],
                 "num_res_blocks": 1, "attn_resolutions": [8]},
    "lossconfig": {"target": "x.VQLPIPSWithDiscriminator", "params": {"disc_start": 0}}
  },
  "train_args": {"lr": 0.001},
  "data_args": {"resolution": 32}
}"#;

/// TINY with one JSON pointer replaced (or removed when `value` is None).
fn tiny_with(pointer: &str, value: Option<serde_json::Value>) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(TINY).unwrap();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let obj = doc.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match value {
        Some(v) => obj.insert(key.to_string(), v),
        None => obj.remove(key),
    };
    doc.to_string()
}

#[test]
fn tiny_base_document_is_valid() {
    Config::parse(TINY).unwrap();
}

#[test]
fn malformed_configs_name_path_and_reason() {
    use serde_json::json;
    let cases: Vec<(&str, String, ErrorKind, &str, &str)> = vec![
        (
            "truncated JSON",
            TINY[..40].to_string(),
            ErrorKind::Syntax,
            "",
            "not valid JSON",
        ),
        (
            "unterminated comment",
            format!("/* {TINY}"),
            ErrorKind::Syntax,
            "",
            "unterminated /* comment (line 1",
        ),
        (
            "unknown model type",
            tiny_with("/model_type", Some(json!("TamingVQGAM"))),
            ErrorKind::Schema,
            "model_type",
            "did you mean `TamingVQGAN`",
        ),
        (
            "missing model_args",
            tiny_with("/model_args", None),
            ErrorKind::Schema,
            "",
            "missing field `model_args`",
        ),
        (
            "typo top-level key",
            tiny_with("/train_arg", Some(json!({}))),
            ErrorKind::Schema,
            "train_arg",
            "did you mean `train_args`",
        ),
        (
            "typo ddconfig key",
            tiny_with("/model_args/ddconfig/chmult", Some(json!([1]))),
            ErrorKind::Schema,
            "model_args.ddconfig.chmult",
            "did you mean `ch_mult`",
        ),
        (
            "ch_mult wrong type",
            tiny_with("/model_args/ddconfig/ch_mult", Some(json!("1,2"))),
            ErrorKind::Schema,
            "model_args.ddconfig.ch_mult",
            "invalid type",
        ),
        (
            "ch_mult bad element",
            tiny_with("/model_args/ddconfig/ch_mult", Some(json!([1, -2]))),
            ErrorKind::Schema,
            "model_args.ddconfig.ch_mult[1]",
            "invalid value",
        ),
        (
            "GroupNorm channels",
            tiny_with("/model_args/ddconfig/ch", Some(json!(48))),
            ErrorKind::Semantic,
            "model_args.ddconfig.ch",
            "GroupNorm(32)",
        ),
        (
            "resolution not divisible",
            tiny_with("/model_args/ddconfig/resolution", Some(json!(30))),
            ErrorKind::Semantic,
            "model_args.ddconfig.resolution",
            "divisible by 2^(len(ch_mult)-1) = 4",
        ),
        (
            "attention nowhere",
            tiny_with("/model_args/ddconfig/attn_resolutions", Some(json!([7]))),
            ErrorKind::Semantic,
            "model_args.ddconfig.attn_resolutions[0]",
            "matches no feature resolution",
        ),
        (
            "double_z",
            tiny_with("/model_args/ddconfig/double_z", Some(json!(true))),
            ErrorKind::Semantic,
            "model_args.ddconfig.double_z",
            "must be false",
        ),
        (
            "codebook of one",
            tiny_with("/model_args/n_embed", Some(json!(1))),
            ErrorKind::Semantic,
            "model_args.n_embed",
            "at least 2 entries",
        ),
        (
            "missing disc_start",
            tiny_with("/model_args/lossconfig/params/disc_start", None),
            ErrorKind::Schema,
            "model_args.lossconfig.params",
            "missing field `disc_start`",
        ),
        (
            "wrong loss target",
            tiny_with(
                "/model_args/lossconfig/target",
                Some(json!("LPIPSWithDiscriminator")),
            ),
            ErrorKind::Semantic,
            "model_args.lossconfig.target",
            "only VQLPIPSWithDiscriminator",
        ),
        (
            "negative lr",
            tiny_with("/train_args/lr", Some(json!(-1.0))),
            ErrorKind::Semantic,
            "train_args.lr",
            "must be > 0",
        ),
        (
            "disc every 0",
            tiny_with("/train_args/disc_update_every", Some(json!(0))),
            ErrorKind::Semantic,
            "train_args.disc_update_every",
            "at least 1",
        ),
        (
            "amp typo",
            tiny_with("/train_args/amp", Some(json!("bf61"))),
            ErrorKind::Schema,
            "train_args.amp",
            "did you mean `bf16`",
        ),
        (
            "amp fp16",
            tiny_with("/train_args/amp", Some(json!("fp16"))),
            ErrorKind::Schema,
            "train_args.amp",
            "expected one of: `none`, `bf16`",
        ),
        (
            "adam betas length",
            tiny_with("/train_args/adam_betas", Some(json!([0.5]))),
            ErrorKind::Schema,
            "train_args.adam_betas",
            "invalid length 1",
        ),
        (
            "bad device",
            tiny_with("/train_args/device", Some(json!("gpu"))),
            ErrorKind::Semantic,
            "train_args.device",
            "`cuda:N`",
        ),
        (
            "bf16 on cpu",
            tiny_with("/train_args/amp", Some(json!("bf16")))
                .replace(r#""lr":0.001"#, r#""lr":0.001,"device":"cpu""#),
            ErrorKind::Semantic,
            "train_args.amp",
            "CUDA only",
        ),
        (
            "step decay without size",
            tiny_with(
                "/train_args/lr_decay",
                Some(json!({"type": "step", "gamma": 0.5})),
            ),
            ErrorKind::Semantic,
            "train_args.lr_decay.step_size",
            "required for `step`",
        ),
        (
            "unknown decay type",
            tiny_with("/train_args/lr_decay", Some(json!({"type": "cosin"}))),
            ErrorKind::Schema,
            "train_args.lr_decay.type",
            "did you mean `cosine`",
        ),
        (
            "data resolution",
            tiny_with("/data_args/resolution", Some(json!(30))),
            ErrorKind::Semantic,
            "data_args.resolution",
            "downsampling factor 4",
        ),
        (
            "normalize name",
            tiny_with("/data_args/normalize", Some(json!("imagenet"))),
            ErrorKind::Schema,
            "data_args.normalize",
            "minus_one_one",
        ),
        (
            "normalize zero std",
            tiny_with(
                "/data_args/normalize",
                Some(json!({"mean": [0, 0, 0], "std": [1, 0, 1]})),
            ),
            ErrorKind::Semantic,
            "data_args.normalize.std",
            "must be > 0",
        ),
        (
            "train source type",
            tiny_with("/data_args/train", Some(json!(5))),
            ErrorKind::Schema,
            "data_args.train",
            "path string or a list",
        ),
        (
            "taming loss on vqvae",
            r#"{"model_type": "vqvae", "model_args": {}, "train_args": {"use_taming_loss": true}}"#
                .to_string(),
            ErrorKind::Semantic,
            "train_args.use_taming_loss",
            "no taming loss",
        ),
        (
            "vqvae downsample",
            r#"{"model_type": "VqVae", "model_args": {"downsample": 3}}"#.to_string(),
            ErrorKind::Semantic,
            "model_args.downsample",
            "power of two",
        ),
        (
            "vqvae2 odd channel",
            r#"{"model_type": "VQVAE2", "model_args": {"channel": 33}}"#.to_string(),
            ErrorKind::Semantic,
            "model_args.channel",
            "must be even",
        ),
        // Crafted sizes (issue 14): each was accepted, or panicked, before the bounds.
        (
            "ch_mult longer than a shift",
            tiny_with("/model_args/ddconfig/ch_mult", Some(json!(vec![1; 70]))),
            ErrorKind::Semantic,
            "model_args.ddconfig.ch_mult",
            "must list 1 to 11 levels",
        ),
        (
            "huge ch",
            tiny_with("/model_args/ddconfig/ch", Some(json!(1u64 << 40))),
            ErrorKind::Semantic,
            "model_args.ddconfig.ch",
            "must be between 1 and 65536",
        ),
        (
            "ch·ch_mult overflows",
            tiny_with(
                "/model_args/ddconfig/ch_mult",
                Some(json!([1, usize::MAX / 16])),
            ),
            ErrorKind::Semantic,
            "model_args.ddconfig.ch_mult[1]",
            "exceeds 65536 channels",
        ),
        (
            "huge codebook",
            tiny_with("/model_args/n_embed", Some(json!(1u64 << 40))),
            ErrorKind::Semantic,
            "model_args.n_embed",
            "at most 4194304 entries",
        ),
        (
            "codebook table too large",
            r#"{"model_type": "vqvae",
                "model_args": {"num_embeddings": 4194304, "embedding_dim": 65536}}"#
                .to_string(),
            ErrorKind::Semantic,
            "model_args.num_embeddings",
            "codebook elements",
        ),
        (
            "huge data resolution",
            tiny_with("/data_args/resolution", Some(json!(1u64 << 40))),
            ErrorKind::Semantic,
            "data_args.resolution",
            "at most 16384",
        ),
        (
            "huge batch",
            tiny_with("/train_args/batch_size", Some(json!(1u64 << 40))),
            ErrorKind::Semantic,
            "train_args.batch_size",
            "must be between 1 and 65536",
        ),
        (
            "huge vqvae downsample",
            r#"{"model_type": "vqvae", "model_args": {"downsample": 4611686018427387904}}"#
                .to_string(),
            ErrorKind::Semantic,
            "model_args.downsample",
            "power of two from 2 to 1024",
        ),
    ];
    assert!(cases.len() >= 15);
    for (name, text, kind, path, reason) in cases {
        let err = match Config::parse(&text) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e,
        };
        assert_eq!(err.kind, kind, "{name}: {err}");
        assert_eq!(err.path, path, "{name}: {err}");
        assert!(
            err.message.contains(reason),
            "{name}: `{}` lacks `{reason}`",
            err.message
        );
    }
}

#[test]
fn error_from_file_names_the_file() {
    let dir = std::env::temp_dir().join(format!("vqtok-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        tiny_with("/train_args/lr", Some(serde_json::json!(0))),
    )
    .unwrap();
    let msg = Config::from_path(&file).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}: `train_args.lr`", file.display())),
        "{msg}"
    );
    let missing = Config::from_path(dir.join("nope.json")).unwrap_err();
    assert_eq!(missing.kind, ErrorKind::Io);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_hash_ignores_training_settings_but_not_architecture() {
    let a = Config::parse(TINY).unwrap();
    let b = Config::parse(&tiny_with("/train_args/lr", Some(serde_json::json!(0.5)))).unwrap();
    let c = Config::parse(&tiny_with(
        "/model_args/n_embed",
        Some(serde_json::json!(64)),
    ))
    .unwrap();
    assert_eq!(a.model_hash(), b.model_hash());
    assert_ne!(a.model_hash(), c.model_hash());
}
