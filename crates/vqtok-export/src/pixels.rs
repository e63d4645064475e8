//! Pixel normalisation inside the u8 graphs, with the constants of the model folder's
//! `vqtok_runtime::PixelIo`: `x̂ = (u8 / a − b) / s` per channel (minus_one_one:
//! a = 127.5, b = 1, s = 1; mean/std: a = 255, b = mean, s = std), computed in that
//! order in f32 so that the graph produces the same bits as the data pipeline's
//! `x / 127.5 − 1` rather than an equivalent affine form that differs in the last
//! ulp (which can flip argmin near-ties). The inverse is `u8 = round(clamp((x̂·s + b)·a,
//! 0, 255))` with round-half-to-even (ONNX Round, like torch.round).

use vqtok_runtime::PixelIo;

use crate::onnx::{Attr, GraphBuilder};

fn consts(g: &mut GraphBuilder, name: &str, v: &[f64]) -> String {
    let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    g.init_f32(&format!("pixels.{name}"), &[data.len()], &data)
}

/// u8 frames `[N, H, W, C]` → normalised f32 `[N, C, H, W]`.
pub fn normalize(g: &mut GraphBuilder, p: &PixelIo, frames: &str) -> String {
    let x = g.op("Cast", &[frames], vec![Attr::Int("to", 1)]);
    let a = consts(g, "divisor", &p.divisor);
    let b = consts(g, "offset", &p.offset);
    let x = g.op("Div", &[&x, &a], vec![]);
    let mut x = g.op("Sub", &[&x, &b], vec![]);
    if !p.unit_std() {
        let s = consts(g, "std", &p.std);
        x = g.op("Div", &[&x, &s], vec![]);
    }
    g.op(
        "Transpose",
        &[&x],
        vec![Attr::Ints("perm", vec![0, 3, 1, 2])],
    )
}

/// Normalised f32 `[N, C, H, W]` → u8 frames `[N, H, W, C]`.
pub fn to_u8(g: &mut GraphBuilder, p: &PixelIo, x: &str) -> String {
    let mut x = g.op(
        "Transpose",
        &[x],
        vec![Attr::Ints("perm", vec![0, 2, 3, 1])],
    );
    if !p.unit_std() {
        let s = consts(g, "std", &p.std);
        x = g.op("Mul", &[&x, &s], vec![]);
    }
    let a = consts(g, "divisor", &p.divisor);
    let b = consts(g, "offset", &p.offset);
    let x = g.op("Add", &[&x, &b], vec![]);
    let x = g.op("Mul", &[&x, &a], vec![]);
    let lo = g.const_f32(0.0);
    let hi = g.const_f32(255.0);
    let x = g.op("Clip", &[&x, &lo, &hi], vec![]);
    let x = g.op("Round", &[&x], vec![]);
    g.op("Cast", &[&x], vec![Attr::Int("to", 2)])
}
