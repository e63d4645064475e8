//! Peak signal-to-noise ratio on the 0–255 pixel scale: the one definition the trainer's
//! validation, export's verification and `vqtokenize decode --psnr` all report.

/// PSNR in dB of a mean squared error on the 0–255 scale, 10·log10(255² / mse); +∞ for a
/// perfect match.
pub fn psnr_db(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// Sum of squared differences between two u8 buffers (of the same length).
pub fn squared_error_u8(a: &[u8], b: &[u8]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_definition() {
        // Every value off by 1: MSE 1 → 20·log10(255) = 48.1308 dB.
        let mse = squared_error_u8(&[10; 300], &[11; 300]) / 300.0;
        assert!((psnr_db(mse) - 48.130_803_608_679_1).abs() < 1e-12);
        assert_eq!(psnr_db(0.0), f64::INFINITY);
    }
}
