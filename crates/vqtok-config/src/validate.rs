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

/// Largest frame side (and model resolution): the video reader's own limit, so that no
/// size taken from a config can ask for a frame buffer no video could fill.
pub const MAX_SIDE: usize = 16384;
/// Largest channel count of any layer: far above real models, far below sizes whose
/// weight tensors could not be allocated.
const MAX_CHANNELS: usize = 1 << 16;
/// Most entries of one codebook (token files store indices as int32).
pub const MAX_CODEBOOK: usize = 1 << 22;
/// Most elements of one codebook table (`size × dim`, 1 GiB of f32).
const MAX_CODEBOOK_ELEMENTS: usize = 1 << 28;
/// Most `ch_mult` levels (a factor of 2^10 = 1024) and largest VQ-VAE `downsample`.
const MAX_FACTOR_LEVELS: usize = 11;
/// Most repetitions of a block (residual blocks, discriminator layers).
const MAX_BLOCKS: usize = 64;
/// Largest batch, clip length, stride and worker count: bounds the buffers a run allocates.
const MAX_COUNT: usize = 1 << 16;

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

/// `1 ≤ value ≤ max`: a size that a layer or buffer is built from.
fn bounded(value: usize, max: usize, path: &str) -> Check {
    ensure((1..=max).contains(&value), path, || {
        format!("must be between 1 and {max}, got {value}")
    })
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
    let size_path = format!("model_args.{size_name}");
    ensure(size >= 2, &size_path, || {
        format!("a codebook needs at least 2 entries, got {size}")
    })?;
    ensure(size <= MAX_CODEBOOK, &size_path, || {
        format!("at most {MAX_CODEBOOK} entries are supported, got {size}")
    })?;
    bounded(dim, MAX_CHANNELS, &format!("model_args.{dim_name}"))?;
    ensure(
        size.checked_mul(dim)
            .is_some_and(|n| n <= MAX_CODEBOOK_ELEMENTS),
        &size_path,
        || {
            format!(
                "{size} entries of {dim} values exceed {MAX_CODEBOOK_ELEMENTS} codebook elements"
            )
        },
    )
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
    bounded(d.in_channels, MAX_CHANNELS, &p("in_channels"))?;
    bounded(d.out_ch, MAX_CHANNELS, &p("out_ch"))?;
    bounded(d.z_channels, MAX_CHANNELS, &p("z_channels"))?;
    bounded(d.num_res_blocks, MAX_BLOCKS, &p("num_res_blocks"))?;
    // Checked before `factor()` shifts by the level count.
    ensure(
        (1..=MAX_FACTOR_LEVELS).contains(&d.ch_mult.len()),
        &p("ch_mult"),
        || {
            format!(
                "must list 1 to {MAX_FACTOR_LEVELS} levels (a factor of at most 1024), got {}",
                d.ch_mult.len()
            )
        },
    )?;
    // in_ch_mult starts with 1, so the stem's GroupNorm sees ch channels and every
    // later one ch·ch_mult[i]: ch divisible by 32 is necessary and sufficient.
    ensure(d.ch >= 32 && d.ch.is_multiple_of(32), &p("ch"), || {
        format!(
            "GroupNorm(32) needs ch·ch_mult divisible by 32 at every level, including the stem (ch·1); got ch = {}",
            d.ch
        )
    })?;
    bounded(d.ch, MAX_CHANNELS, &p("ch"))?;
    for (i, m) in d.ch_mult.iter().enumerate() {
        ensure(*m >= 1, &format!("{}[{i}]", p("ch_mult")), || {
            "must be at least 1".into()
        })?;
        ensure(
            d.ch.checked_mul(*m).is_some_and(|c| c <= MAX_CHANNELS),
            &format!("{}[{i}]", p("ch_mult")),
            || format!("ch·ch_mult = {}·{m} exceeds {MAX_CHANNELS} channels", d.ch),
        )?;
    }
    let factor = d.factor();
    ensure(d.resolution <= MAX_SIDE, &p("resolution"), || {
        format!("must be at most {MAX_SIDE}, got {}", d.resolution)
    })?;
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
    bounded(l.params.disc_num_layers, MAX_BLOCKS, &lp("disc_num_layers"))?;
    bounded(l.params.disc_ndf, MAX_CHANNELS, &lp("disc_ndf"))?;
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
        (2..=MAX_CHANNELS).contains(&value) && value.is_multiple_of(2),
        &format!("model_args.{name}"),
        || {
            format!(
                "must be even, ≥ 2 and at most {MAX_CHANNELS} (the first conv has {name}/2 \
                 channels), got {value}"
            )
        },
    )
}

pub(crate) fn vqvae(a: &VqVaeArgs) -> Check {
    codebook(
        a.num_embeddings,
        a.embedding_dim,
        "num_embeddings",
        "embedding_dim",
    )?;
    bounded(a.in_channels, MAX_CHANNELS, "model_args.in_channels")?;
    halvable_channels(a.num_hiddens, "num_hiddens")?;
    bounded(
        a.num_residual_hiddens,
        MAX_CHANNELS,
        "model_args.num_residual_hiddens",
    )?;
    ensure(
        a.num_residual_layers <= MAX_BLOCKS,
        "model_args.num_residual_layers",
        || {
            format!(
                "must be at most {MAX_BLOCKS}, got {}",
                a.num_residual_layers
            )
        },
    )?;
    ensure(
        power_of_two_at_least_2(a.downsample) && a.downsample < 1 << MAX_FACTOR_LEVELS,
        "model_args.downsample",
        || {
            format!(
                "must be a power of two from 2 to 1024, got {}",
                a.downsample
            )
        },
    )?;
    non_negative_f(a.commitment_cost, "model_args.commitment_cost")?;
    ema(&a.ema, a.quantizer == QuantizerKind::Ema)
}

pub(crate) fn vqvae2(a: &VqVae2Args) -> Check {
    codebook(a.n_embed, a.embed_dim, "n_embed", "embed_dim")?;
    bounded(a.in_channels, MAX_CHANNELS, "model_args.in_channels")?;
    halvable_channels(a.channel, "channel")?;
    bounded(a.n_res_channel, MAX_CHANNELS, "model_args.n_res_channel")?;
    ensure(
        a.n_res_block <= MAX_BLOCKS,
        "model_args.n_res_block",
        || format!("must be at most {MAX_BLOCKS}, got {}", a.n_res_block),
    )?;
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
    bounded(t.batch_size, MAX_COUNT, &p("batch_size"))?;
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
    bounded(t.val_batches, MAX_COUNT, &p("val_batches"))?;
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
    bounded(l.disc_num_layers, MAX_BLOCKS, &lp("disc_num_layers"))?;
    bounded(l.disc_ndf, MAX_CHANNELS, &lp("disc_ndf"))
}

fn valid_device(d: &str) -> bool {
    matches!(d, "auto" | "cpu" | "cuda")
        || d.strip_prefix("cuda:")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn data(d: &DataArgs, m: &ModelConfig) -> Check {
    let p = |k: &str| format!("data_args.{k}");
    bounded(d.sequence_length, MAX_COUNT, &p("sequence_length"))?;
    bounded(d.frame_stride, MAX_COUNT, &p("frame_stride"))?;
    bounded(d.num_workers, MAX_COUNT, &p("num_workers"))?;
    bounded(d.prefetch_batches, MAX_COUNT, &p("prefetch_batches"))?;
    bounded(d.val_clips_per_video, MAX_COUNT, &p("val_clips_per_video"))?;
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
        ensure(
            r >= k && r % k == 0 && r <= MAX_SIDE,
            &p("resolution"),
            || {
                format!(
                    "must be a multiple of the model's downsampling factor {k} and at most \
                 {MAX_SIDE}, got {r}"
                )
            },
        )?;
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
