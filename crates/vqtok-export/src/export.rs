//! Checkpoint → model folder: the graphs, the codebooks, the weights and config a
//! libtorch runtime builds the model from, and manifest.json hashing all of them.

use std::collections::BTreeMap;
use std::path::Path;

use vqtok_config::Config;
use vqtok_core::hash::sha256_hex;
use vqtok_runtime::{
    CODEBOOK_FILE, CONFIG_FILE, DECODE_FORMULA, ENCODE_FORMULA, FORMAT_VERSION, FileInfo,
    GraphInfo, GraphKind, IoInfo, LevelInfo, Manifest, Normalization, PixelIo, Verification,
    WEIGHTS_FILE, indices_name,
};

use crate::error::{ExportError, Result};
use crate::graphs::build_graph;
use crate::onnx::{IR_VERSION, OPSET, write_model};
use crate::tensor_file::{RawTensor, write_tensors};
use crate::weights::{CheckpointWeights, Init, RecordingWeights, WeightSource};

/// Protobuf messages cannot exceed 2 GiB; past this many bytes of weights a graph
/// stores them in `<graph>.onnx.data` instead.
pub const DEFAULT_EXTERNAL_DATA_THRESHOLD: u64 = 1_800_000_000;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Also write `encoder_float.onnx` / `decoder_float.onnx` (verification needs them).
    pub float_variants: bool,
    /// Bytes of weights per graph above which they go to an external-data file.
    pub external_data_threshold: u64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            float_variants: true,
            external_data_threshold: DEFAULT_EXTERNAL_DATA_THRESHOLD,
        }
    }
}

/// A trained model ready to export: its config and weights.
pub struct ModelSource {
    pub config: Config,
    pub weights: CheckpointWeights,
}

impl ModelSource {
    /// Bare weights with taming's names (a checkpoint's model.safetensors, or a taming
    /// model converted by `cargo xtask import-taming`) and the param.json they belong to.
    pub fn files(weights: &Path, config: &Path) -> Result<ModelSource> {
        let config = Config::from_path(config)?;
        let weights = CheckpointWeights::open(weights)?;
        Ok(ModelSource { config, weights })
    }
}

fn grid_rule(config: &Config) -> String {
    let levels = config.model.levels();
    let grids = levels
        .iter()
        .map(|l| format!("`{}` is [N, H/{f}, W/{f}]", indices_name(l), f = l.factor))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "H and W must be multiples of {}; {grids}",
        config.model.size_multiple()
    )
}

/// Lists the file `out_dir/name`, already written, with its sha256.
fn list_written(out_dir: &Path, name: &str, files: &mut BTreeMap<String, FileInfo>) -> Result<()> {
    let path = out_dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| ExportError::io(&path, e))?;
    files.insert(
        name.to_string(),
        FileInfo {
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        },
    );
    Ok(())
}

/// Writes the model folder `out_dir` (created if needed; files of ours are replaced)
/// and returns its manifest, whose verification is `not_run`.
pub fn export(
    config: &Config,
    weights: &mut dyn WeightSource,
    out_dir: &Path,
    options: &ExportOptions,
) -> Result<Manifest> {
    std::fs::create_dir_all(out_dir).map_err(|e| ExportError::io(out_dir, e))?;
    let weights = &mut RecordingWeights::new(weights);
    let mut files: BTreeMap<String, FileInfo> = BTreeMap::new();
    let mut graphs = BTreeMap::new();
    for kind in GraphKind::ALL {
        if kind.is_float() && !options.float_variants {
            continue;
        }
        let (model, inputs, outputs) = build_graph(config, kind, weights)?;
        let file = format!("{}.onnx", kind.key());
        let written = write_model(model, out_dir, &file, options.external_data_threshold)?;
        let external_data = written.get(1).map(|w| w.name.clone());
        for w in written {
            files.insert(
                w.name,
                FileInfo {
                    bytes: w.bytes,
                    sha256: w.sha256,
                },
            );
        }
        let io = |v: Vec<crate::graphs::Io>| {
            v.into_iter()
                .map(|io| IoInfo {
                    name: io.name,
                    dtype: io.dtype,
                    shape: io.shape.iter().map(|d| d.to_manifest()).collect(),
                })
                .collect()
        };
        graphs.insert(
            kind.key().to_string(),
            GraphInfo {
                file,
                external_data,
                inputs: io(inputs),
                outputs: io(outputs),
            },
        );
    }

    let levels = config.model.levels();
    let mut tables = Vec::new();
    let mut level_info = Vec::new();
    for l in &levels {
        let key = format!("{}.embedding.weight", l.name);
        let shape = [l.codebook_size, l.dim];
        let init = Init::Codebook {
            size: l.codebook_size,
        };
        let data = weights.tensor(&key, &shape, init)?;
        tables.push((key.clone(), RawTensor::from_f32(&shape, &data)));
        level_info.push(LevelInfo {
            name: l.name.to_string(),
            indices: indices_name(l),
            factor: l.factor,
            codebook_size: l.codebook_size,
            dim: l.dim,
            codebook_tensor: key,
        });
    }
    write_tensors(&out_dir.join(CODEBOOK_FILE), &tables)?;
    list_written(out_dir, CODEBOOK_FILE, &mut files)?;
    weights.save(&out_dir.join(WEIGHTS_FILE))?;
    list_written(out_dir, WEIGHTS_FILE, &mut files)?;
    let param = out_dir.join(CONFIG_FILE);
    vqtok_core::fs::write_atomic(&param, (config.to_json_pretty() + "\n").as_bytes())
        .map_err(|e| ExportError::io(&param, e))?;
    list_written(out_dir, CONFIG_FILE, &mut files)?;

    let pixels = PixelIo::new(&config.data.normalize, config.model.in_channels())?;
    let manifest = Manifest {
        format: "vqtok-onnx".into(),
        format_version: FORMAT_VERSION,
        vqtok_version: env!("CARGO_PKG_VERSION").into(),
        family: config.model.family().as_str().into(),
        model_type: config.model_type.clone(),
        model_hash: config.model_hash(),
        config: config.to_json(),
        size_multiple: config.model.size_multiple(),
        grid_rule: grid_rule(config),
        levels: level_info,
        normalization: Normalization {
            encode: ENCODE_FORMULA.into(),
            decode: DECODE_FORMULA.into(),
            pixels,
        },
        opset: OPSET,
        ir_version: IR_VERSION,
        graphs,
        files,
        verification: Verification::NotRun {
            reason: "no reference file was given (export --reference FILE runs it)".into(),
        },
    };
    manifest.save(out_dir)?;
    Ok(manifest)
}
