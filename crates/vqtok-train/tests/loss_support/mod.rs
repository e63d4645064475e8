//! Shared by the loss tests: where the ground truth is, tolerance checks, and a toy
//! model behind the `VqModel` trait (the real models live on another branch).
#![allow(dead_code)] // each test crate uses a different part of this module

use std::collections::HashMap;
use std::path::PathBuf;

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use vqtok_train::model::{ModelError, ModelOutput, VqModel};

/// ../shared, or `$VQTOK_SHARED`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("VQTOK_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

pub fn taming_tiny(file: &str) -> PathBuf {
    shared_dir().join("fixtures/taming_tiny").join(file)
}

pub fn read_named(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// The LPIPS weights setup made (`.cargo/config.toml` exports the variable).
pub fn lpips_weights() -> PathBuf {
    PathBuf::from(
        std::env::var("VQTOK_LPIPS_WEIGHTS")
            .expect("VQTOK_LPIPS_WEIGHTS is set by .cargo/config.toml"),
    )
}

/// max |got − want| ≤ rtol · max(max |want|, 1e-3): relative to the tensor's scale,
/// so entries near zero do not demand an impossible relative precision.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f64) {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let got = got.to_kind(Kind::Double).to_device(Device::Cpu);
    let want = want.to_kind(Kind::Double).to_device(Device::Cpu);
    let err = (&got - &want).abs().max().double_value(&[]);
    let scale = want.abs().max().double_value(&[]).max(1e-3);
    assert!(
        err <= rtol * scale,
        "{what}: max abs error {err:e} > {rtol:e} × {scale:e}\n got {got}\nwant {want}"
    );
}

pub fn scalar(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).double_value(&[])
}

/// A tiny conv autoencoder with a differentiable stand-in for the quantizer loss.
/// Its `last_layer` is the weight of the conv that produces the reconstruction, as
/// in the real models.
pub struct ToyModel {
    pub vs: nn::VarStore,
    enc: nn::Conv2D,
    mid: nn::Conv2D,
    out: nn::Conv2D,
    taming: bool,
}

impl ToyModel {
    pub fn new(kind: Kind, taming: bool) -> ToyModel {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let c = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let enc = nn::conv2d(root.sub("encoder"), 3, 4, 3, c);
        let mid = nn::conv2d(root.sub("decoder").sub("mid"), 4, 8, 3, c);
        let out = nn::conv2d(root.sub("decoder").sub("conv_out"), 8, 3, 3, c);
        if kind == Kind::Double {
            vs.double();
        }
        ToyModel {
            vs,
            enc,
            mid,
            out,
            taming,
        }
    }

    fn decode(&self, z: &Tensor) -> Tensor {
        self.out.forward(&self.mid.forward(z).tanh())
    }
}

impl VqModel for ToyModel {
    fn forward_t(&self, images: &Tensor, _train: bool) -> Result<ModelOutput, ModelError> {
        let z = self.enc.forward(images);
        let vq_loss = z.square().mean(z.kind()) * 0.25;
        Ok(ModelOutput {
            vq_loss,
            recon: self.decode(&z),
            perplexity: vec![],
            indices: self.encode(images)?,
        })
    }

    fn encode(&self, images: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        Ok(vec![self.enc.forward(images).argmax(1, false)])
    }

    fn decode_indices(&self, indices: &[Tensor]) -> Result<Tensor, ModelError> {
        let z = indices[0]
            .one_hot(4)
            .permute([0, 3, 1, 2])
            .to_kind(self.out.ws.kind());
        Ok(self.decode(&z))
    }

    fn last_layer(&self) -> Tensor {
        self.out.ws.shallow_clone()
    }

    fn trainable_vars(&self) -> Vec<Tensor> {
        self.vs.trainable_variables()
    }

    fn output_channels(&self) -> usize {
        3
    }

    fn is_taming(&self) -> bool {
        self.taming
    }
}
