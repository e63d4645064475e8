//! Reconstruction quality for validation: squared error (for PSNR) and SSIM on the
//! [0, 255] pixel scale.

use tch::{Kind, Tensor};

/// Mean squared error over every pixel and channel of `a` vs `b` (`[N, C, H, W]`), in
/// f64. On the [0, 255] scale, `vqtok_core::psnr::psnr_db` turns it into PSNR.
pub fn mse(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .square()
        .mean(Kind::Double)
        .double_value(&[])
}

/// PSNR of a validation pass: the squared error pooled over every frame, then one PSNR.
/// A mean of per-batch PSNRs would overweight the easy batches (PSNR is a log).
#[derive(Debug, Default)]
pub struct PooledPsnr {
    squared_error: f64,
    frames: f64,
}

impl PooledPsnr {
    /// Adds a batch of `frames` equal-sized frames whose mean squared error is `mse`.
    pub fn add(&mut self, mse: f64, frames: f64) {
        self.squared_error += mse * frames;
        self.frames += frames;
    }

    /// PSNR in dB on the [0, 255] scale.
    pub fn db(&self) -> f64 {
        vqtok_core::psnr::psnr_db(self.squared_error / self.frames)
    }
}

/// Mean SSIM (Wang et al. 2004): 11×11 Gaussian window with σ = 1.5 (shrunk for tiny
/// images), K1 = 0.01, K2 = 0.03, L = 255, per channel over the valid region,
/// averaged over channels and images.
pub fn ssim(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
    let size = a.size();
    let c = size[1];
    let win = 11.min(size[2]).min(size[3]);
    let sigma = 1.5 * win as f64 / 11.0;
    let coords = Tensor::arange(win, (Kind::Double, a.device())) - (win - 1) as f64 / 2.0;
    let g = (-(coords.square()) / (2.0 * sigma * sigma)).exp();
    let g = &g / g.sum(Kind::Double);
    let kernel = g
        .unsqueeze(1)
        .matmul(&g.unsqueeze(0))
        .expand([c, 1, win, win], false)
        .contiguous();
    let filter = |x: &Tensor| x.conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], c);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (mu_a, mu_b) = (filter(&a), filter(&b));
    let var_a = filter(&(&a * &a)) - mu_a.square();
    let var_b = filter(&(&b * &b)) - mu_b.square();
    let cov = filter(&(&a * &b)) - &mu_a * &mu_b;
    let num = (&mu_a * &mu_b * 2.0 + c1) * (cov * 2.0 + c2);
    let den = (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2);
    (num / den).mean(Kind::Double).double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn psnr_pools_the_squared_error_not_the_per_batch_psnrs() {
        // One perfect-ish batch (mse 1) and one poor batch (mse 100), 4 frames each:
        // pooled mse 50.5 → 31.09 dB; the mean of the batch PSNRs would be 38.13 dB.
        let mut p = PooledPsnr::default();
        p.add(1.0, 4.0);
        p.add(100.0, 4.0);
        let want = 10.0 * (255.0f64 * 255.0 / 50.5).log10();
        assert!((p.db() - want).abs() < 1e-12, "{} vs {want}", p.db());
    }

    fn constant(v: f64) -> Tensor {
        Tensor::full([1, 3, 16, 16], v, (Kind::Double, Device::Cpu))
    }

    #[test]
    fn mse_of_a_known_error() {
        assert_eq!(mse(&constant(10.0), &constant(11.0)), 1.0);
        assert_eq!(mse(&constant(3.0), &constant(3.0)), 0.0);
    }

    #[test]
    fn ssim_of_constants_has_the_closed_form() {
        // σ = 0 everywhere: SSIM = (2 μa μb + C1) / (μa² + μb² + C1).
        let c1 = (0.01f64 * 255.0).powi(2);
        let want = (2.0 * 100.0 * 120.0 + c1) / (100.0f64.powi(2) + 120.0f64.powi(2) + c1);
        assert!((ssim(&constant(100.0), &constant(120.0)) - want).abs() < 1e-12);
        let noise = Tensor::rand([2, 3, 32, 32], (Kind::Double, Device::Cpu)) * 255.0;
        assert!((ssim(&noise, &noise) - 1.0).abs() < 1e-12);
        let noisier = &noise + Tensor::randn([2, 3, 32, 32], (Kind::Double, Device::Cpu)) * 40.0;
        assert!(ssim(&noise, &noisier) < 0.9);
    }
}
