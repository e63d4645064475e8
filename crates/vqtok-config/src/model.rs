//! `model_type` aliases (exactly the seed's create_model table) and the per-family
//! `model_args` they select.

use serde::Serialize;

use crate::classic::{VqVae2Args, VqVaeArgs};
use crate::quantizer::QuantizerKind;
use crate::taming::{ModelVariant, TamingArgs};

/// The adapter a `model_type` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    Taming,
    VqVae,
    VqVae2,
}

/// Every accepted `model_type` spelling and its family (seed §3).
pub const MODEL_TYPE_ALIASES: [(&str, ModelFamily); 10] = [
    ("TamingVQGAN", ModelFamily::Taming),
    ("taming_vqgan", ModelFamily::Taming),
    ("EMAVQ", ModelFamily::Taming),
    ("emavq", ModelFamily::Taming),
    ("VQGAN", ModelFamily::Taming),
    ("vqgan", ModelFamily::Taming),
    ("VQVAE2", ModelFamily::VqVae2),
    ("vqvae2", ModelFamily::VqVae2),
    ("VqVae", ModelFamily::VqVae),
    ("vqvae", ModelFamily::VqVae),
];

impl ModelFamily {
    pub fn from_model_type(name: &str) -> Option<Self> {
        MODEL_TYPE_ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map(|(_, f)| *f)
    }

    /// Stable lower-case name used in manifests and token files.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFamily::Taming => "taming",
            ModelFamily::VqVae => "vqvae",
            ModelFamily::VqVae2 => "vqvae2",
        }
    }
}

/// The parsed `model_args`, one variant per family.
// A config is built once per run; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModelConfig {
    Taming(TamingArgs),
    VqVae(VqVaeArgs),
    VqVae2(VqVae2Args),
}

/// One codebook of a model, as consumers of its indices need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodebookLevel {
    /// `quantize`, `quantize_t` or `quantize_b`: the state-dict prefix of the codebook.
    pub name: &'static str,
    /// Pixels per token side at this level.
    pub factor: usize,
    /// K, the number of codes (`n_embed`, or `num_embeddings` for VQ-VAE, in param.json).
    pub codebook_size: usize,
    /// D, the dimension of a code.
    pub dim: usize,
}

impl ModelConfig {
    pub fn family(&self) -> ModelFamily {
        match self {
            ModelConfig::Taming(_) => ModelFamily::Taming,
            ModelConfig::VqVae(_) => ModelFamily::VqVae,
            ModelConfig::VqVae2(_) => ModelFamily::VqVae2,
        }
    }

    pub fn is_taming(&self) -> bool {
        self.family() == ModelFamily::Taming
    }

    pub fn in_channels(&self) -> usize {
        match self {
            ModelConfig::Taming(a) => a.ddconfig.in_channels,
            ModelConfig::VqVae(a) => a.in_channels,
            ModelConfig::VqVae2(a) => a.in_channels,
        }
    }

    pub fn output_channels(&self) -> usize {
        match self {
            ModelConfig::Taming(a) => a.ddconfig.out_ch,
            ModelConfig::VqVae(a) => a.in_channels,
            ModelConfig::VqVae2(a) => a.in_channels,
        }
    }

    pub fn quantizer(&self) -> QuantizerKind {
        match self {
            ModelConfig::Taming(a) => match a.model_variant {
                ModelVariant::VQModel => QuantizerKind::Vq,
                ModelVariant::EMAVQ => QuantizerKind::Ema,
            },
            ModelConfig::VqVae(a) => a.quantizer,
            ModelConfig::VqVae2(a) => a.quantizer,
        }
    }

    /// The codebooks in the order the model returns index grids (VQ-VAE-2: top, bottom):
    /// the one place the families' codebook keys are read.
    pub fn levels(&self) -> Vec<CodebookLevel> {
        match self {
            ModelConfig::Taming(a) => vec![a.level()],
            ModelConfig::VqVae(a) => vec![a.level()],
            ModelConfig::VqVae2(a) => a.levels().to_vec(),
        }
    }

    /// Input height and width must be multiples of this.
    pub fn size_multiple(&self) -> usize {
        self.levels().iter().map(|l| l.factor).max().unwrap_or(1)
    }

    /// The resolution the architecture was designed for, used when `data_args.resolution` is absent.
    pub fn nominal_resolution(&self) -> usize {
        match self {
            ModelConfig::Taming(a) => a.ddconfig.resolution,
            ModelConfig::VqVae(_) | ModelConfig::VqVae2(_) => 256,
        }
    }
}
