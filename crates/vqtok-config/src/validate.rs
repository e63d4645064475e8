//! Semantic checks: every value parsed, but does the combination work?
//! Each check names the JSON path of the value to change.

use crate::classic::{VqVae2Args, VqVaeArgs};
use crate::data::{DataArgs, Normalize};
use crate::error::ConfigError;
use crate::model::ModelConfig;
use crate::quantizer::{EmaArgs, QuantizerKind};
use crate::taming::{ModelVariant, TamingArgs};
use crate::train::{Amp, LrDecayKind, TrainArgs};

type Check = Result<(), ConfigError>;

fn ensure(ok: bool, path: &str, message: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::semantic(path, message()))
    }
}

fn positive(value: usize, path: &str) -> Check {
    ensure(value >= 1, path, || "must be at least 1".into())
}

fn non_negative_f(value: f64, path: &str) -> Check {
    ensure(value.is_finite() && value >= 0.0, path, || {
        format!("must be a finite number ≥ 0, got {value}")
    })
}

fn unit_open(value: f64, path: &str) -> Check {
    ensure(value > 0.0 && value < 1.0, path, || {
        format!("must be in (0, 1), got {value}")
    })
}

pub(crate) fn model(m: &ModelConfig) -> Check {
    match m {
        ModelConfig::Taming(a) => taming(a),
        ModelConfig::VqVae(a) => vqvae(a),
        ModelConfig::VqVae2(a) => vqvae2(a),
    }
}

/// A codebook of `size` entries of `dim` values, named `model_args.SIZE_NAME` and
/// `model_args.DIM_NAME`.
fn codebook(size: usize, dim: usize, size_name: &str, dim_name: &str) -> Check {
    ensure(size >= 2, &format!("model_args.{size_name}"), || {
        format!("a codebook needs at least 2 entries, got {size}")
    })?;
    positive(dim, &format!("model_args.{dim_name}"))
}

fn ema(e: &EmaArgs, used: bool) -> Check {
    if !used {
        return Ok(());
    }
    unit_open(e.decay, "model_args.ema.decay")?;
    ensure(
        e.eps.is_finite() && e.eps > 0.0,
        "model_args.ema.eps",
        || format!("must be > 0, got {}", e.eps),
    )?;
    non_negative_f(e.dead_code_threshold, "model_args.ema.dead_code_threshold")
}

pub(crate) fn taming(a: &TamingArgs) -> Check {
    codebook(a.n_embed, a.embed_dim, "n_embed", "embed_dim")?;
    non_negative_f(a.beta, "model_args.beta")?;
    ema(&a.ema, a.model_variant == ModelVariant::EMAVQ)?;
    let d = &a.ddconfig;
    let p = |k: &str| format!("model_args.ddconfig.{k}");
    ensure(!d.double_z, &p("double_z"), || {
        "must be false: VQModel's quant_conv expects z_channels, not 2·z_channels".into()
    })?;
    positive(d.in_channels, &p("in_channels"))?;
    positive(d.out_ch, &p("out_ch"))?;
    positive(d.z_channels, &p("z_channels"))?;
    positive(d.num_res_blocks, &p("num_res_blocks"))?;
    ensure(!d.ch_mult.is_empty(), &p("ch_mult"), || {
        "must list at least one level".into()
    })?;
    // in_ch_mult starts with 1, so the stem's GroupNorm sees ch channels and every
    // later one ch·ch_mult[i]: ch divisible by 32 is necessary and sufficient.
    ensure(d.ch >= 32 && d.ch.is_multiple_of(32), &p("ch"), || {
        format!(
            "GroupNorm(32) needs ch·ch_mult divisible by 32 at every level, including the stem (ch·1); got ch = {}",
            d.ch
        )
    })?;
    for (i, m) in d.ch_mult.iter().enumerate() {
        ensure(*m >= 1, &format!("{}[{i}]", p("ch_mult")), || {
            "must be at least 1".into()
        })?;
    }
    let factor = d.factor();
    ensure(
        d.resolution >= factor && d.resolution.is_multiple_of(factor),
        &p("resolution"),
        || {
            format!(
                "must be divisible by 2^(len(ch_mult)-1) = {factor} (and at least that), got {}",
                d.resolution
            )
        },
    )?;
    let levels = d.level_resolutions();
    for (i, r) in d.attn_resolutions.iter().enumerate() {
        ensure(
            levels.contains(r),
            &format!("{}[{i}]", p("attn_resolutions")),
            || {
                format!(
                    "{r} matches no feature resolution of this encoder; the levels are {levels:?}"
                )
            },
        )?;
    }
    ensure((0.0..1.0).contains(&d.dropout), &p("dropout"), || {
        format!("must be in [0, 1), got {}", d.dropout)
    })?;

    let l = &a.lossconfig;
    ensure(
        l.target.rsplit('.').next() == Some("VQLPIPSWithDiscriminator"),
        "model_args.lossconfig.target",
        || {
            format!(
                "only VQLPIPSWithDiscriminator is supported, got `{}`",
                l.target
            )
        },
    )?;
    let lp = |k: &str| format!("model_args.lossconfig.params.{k}");
    ensure(!l.params.disc_conditional, &lp("disc_conditional"), || {
        "must be false: a VQModel never passes a condition to its discriminator".into()
    })?;
    ensure(
        l.params.disc_in_channels == d.out_ch,
        &lp("disc_in_channels"),
        || {
            format!(
                "the discriminator sees reconstructions with out_ch = {} channels, got {}",
                d.out_ch, l.params.disc_in_channels
            )
        },
    )?;
    positive(l.params.disc_num_layers, &lp("disc_num_layers"))?;
    positive(l.params.disc_ndf, &lp("disc_ndf"))?;
    for (k, v) in [
        ("codebook_weight", l.params.codebook_weight),
        ("pixelloss_weight", l.params.pixelloss_weight),
        ("disc_factor", l.params.disc_factor),
        ("disc_weight", l.params.disc_weight),
        ("perceptual_weight", l.params.perceptual_weight),
    ] {
        non_negative_f(v, &lp(k))?;
    }
    Ok(())
}

fn power_of_two_at_least_2(v: usize) -> bool {
    v >= 2 && v.is_power_of_two()
}

/// The hidden width `model_args.NAME` of a classic encoder, whose first conv has half of it.
fn halvable_channels(value: usize, name: &str) -> Check {
    ensure(
        value >= 2 && value.is_multiple_of(2),
        &format!("model_args.{name}"),
        || format!("must be even and ≥ 2 (the first conv has {name}/2 channels), got {value}"),
    )
}

pub(crate) fn vqvae(a: &VqVaeArgs) -> Check {
    codebook(
        a.num_embeddings,
        a.embedding_dim,
        "num_embeddings",
        "embedding_dim",
    )?;
    positive(a.in_channels, "model_args.in_channels")?;
    halvable_channels(a.num_hiddens, "num_hiddens")?;
    positive(a.num_residual_hiddens, "model_args.num_residual_hiddens")?;
    ensure(
        power_of_two_at_least_2(a.downsample),
        "model_args.downsample",
        || format!("must be a power of two ≥ 2, got {}", a.downsample),
    )?;
    non_negative_f(a.commitment_cost, "model_args.commitment_cost")?;
    ema(&a.ema, a.quantizer == QuantizerKind::Ema)
}

pub(crate) fn vqvae2(a: &VqVae2Args) -> Check {
    codebook(a.n_embed, a.embed_dim, "n_embed", "embed_dim")?;
    positive(a.in_channels, "model_args.in_channels")?;
    halvable_channels(a.channel, "channel")?;
    positive(a.n_res_channel, "model_args.n_res_channel")?;
    non_negative_f(a.commitment_cost, "model_args.commitment_cost")?;
    ema(&a.ema, a.quantizer == QuantizerKind::Ema)
}

pub(crate) fn train(t: &TrainArgs, m: &ModelConfig) -> Check {
    let p = |k: &str| format!("train_args.{k}");
    if t.use_taming_loss == Some(true) {
        ensure(m.is_taming(), &p("use_taming_loss"), || {
            format!(
                "is true but model_type selects a {} model, which has no taming loss",
                m.family().as_str()
            )
        })?;
    }
    ensure(t.lr.is_finite() && t.lr > 0.0, &p("lr"), || {
        format!("must be > 0, got {}", t.lr)
    })?;
    ensure(t.num_steps >= 1, &p("num_steps"), || {
        "must be at least 1".into()
    })?;
    positive(t.batch_size, &p("batch_size"))?;
    for (i, b) in t.adam_betas.iter().enumerate() {
        ensure(
            (0.0..1.0).contains(b),
            &format!("{}[{i}]", p("adam_betas")),
            || format!("must be in [0, 1), got {b}"),
        )?;
    }
    ensure(t.adam_eps > 0.0, &p("adam_eps"), || {
        format!("must be > 0, got {}", t.adam_eps)
    })?;
    ensure(t.disc_update_every >= 1, &p("disc_update_every"), || {
        "must be at least 1".into()
    })?;
    if let Some(c) = t.grad_clip {
        ensure(c.is_finite() && c > 0.0, &p("grad_clip"), || {
            format!("must be > 0, got {c}")
        })?;
    }
    for (k, v) in [
        ("checkpoint_every", t.checkpoint_every),
        ("log_every", t.log_every),
        ("image_every", t.image_every),
        ("val_every", t.val_every),
    ] {
        ensure(v >= 1, &p(k), || "must be at least 1".into())?;
    }
    positive(t.keep_checkpoints, &p("keep_checkpoints"))?;
    positive(t.val_batches, &p("val_batches"))?;
    ensure(t.max_bad_steps >= 1, &p("max_bad_steps"), || {
        "must be at least 1".into()
    })?;
    ensure(valid_device(&t.device), &p("device"), || {
        format!(
            "expected `auto`, `cpu`, `cuda` or `cuda:N`, got `{}`",
            t.device
        )
    })?;
    ensure(
        !(t.amp == Amp::Bf16 && t.device == "cpu"),
        &p("amp"),
        || {
            "bf16 autocast runs on CUDA only (on CPU it is ~10× slower); use `none` with device `cpu`".into()
        },
    )?;
    if let Some(d) = &t.lr_decay {
        let dp = |k: &str| format!("train_args.lr_decay.{k}");
        ensure(d.warmup_steps < t.num_steps, &dp("warmup_steps"), || {
            format!(
                "must be smaller than num_steps ({}), got {}",
                t.num_steps, d.warmup_steps
            )
        })?;
        let gamma_ok = |path: &str| match d.gamma {
            Some(g) => ensure(g > 0.0 && g <= 1.0, path, || {
                format!("must be in (0, 1], got {g}")
            }),
            None => Err(ConfigError::semantic(
                path,
                format!("is required for `{:?}` decay", d.kind).to_lowercase(),
            )),
        };
        match d.kind {
            LrDecayKind::Step => {
                ensure(
                    d.step_size.is_some_and(|s| s >= 1),
                    &dp("step_size"),
                    || "is required for `step` decay and must be at least 1".into(),
                )?;
                gamma_ok(&dp("gamma"))?;
            }
            LrDecayKind::Exponential => gamma_ok(&dp("gamma"))?,
            LrDecayKind::Cosine => {
                ensure(d.min_lr >= 0.0 && d.min_lr <= t.lr, &dp("min_lr"), || {
                    format!("must be in [0, lr = {}], got {}", t.lr, d.min_lr)
                })?;
            }
        }
    }
    let l = &t.traditional_loss;
    let lp = |k: &str| format!("train_args.traditional_loss.{k}");
    non_negative_f(l.perceptual_weight, &lp("perceptual_weight"))?;
    non_negative_f(l.gan_weight, &lp("gan_weight"))?;
    positive(l.disc_num_layers, &lp("disc_num_layers"))?;
    positive(l.disc_ndf, &lp("disc_ndf"))
}

fn valid_device(d: &str) -> bool {
    matches!(d, "auto" | "cpu" | "cuda")
        || d.strip_prefix("cuda:")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn data(d: &DataArgs, m: &ModelConfig) -> Check {
    let p = |k: &str| format!("data_args.{k}");
    positive(d.sequence_length, &p("sequence_length"))?;
    positive(d.frame_stride, &p("frame_stride"))?;
    positive(d.num_workers, &p("num_workers"))?;
    positive(d.prefetch_batches, &p("prefetch_batches"))?;
    positive(d.val_clips_per_video, &p("val_clips_per_video"))?;
    ensure(
        (0.0..1.0).contains(&d.val_fraction),
        &p("val_fraction"),
        || format!("must be in [0, 1), got {}", d.val_fraction),
    )?;
    ensure(
        d.decode_timeout_s.is_finite() && d.decode_timeout_s > 0.0,
        &p("decode_timeout_s"),
        || format!("must be > 0, got {}", d.decode_timeout_s),
    )?;
    if let Some(r) = d.resolution {
        let k = m.size_multiple();
        ensure(r >= k && r % k == 0, &p("resolution"), || {
            format!("must be a multiple of the model's downsampling factor {k}, got {r}")
        })?;
    }
    if let Normalize::MeanStd { std, .. } = &d.normalize {
        ensure(
            std.iter().all(|s| s.is_finite() && *s > 0.0),
            &p("normalize.std"),
            || format!("every std must be > 0, got {std:?}"),
        )?;
    }
    ensure(!d.extensions.is_empty(), &p("extensions"), || {
        "must list at least one extension".into()
    })
}
