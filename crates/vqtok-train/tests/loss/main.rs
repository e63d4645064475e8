//! The losses against taming's formulas and fixtures: LPIPS, the PatchGAN, the adaptive
//! weight, the calculator on both paths, Adam.

#[path = "../support/mod.rs"]
mod support;

mod adam;
mod adaptive;
mod calculator;
mod discriminator;
mod gan;
mod lpips;
mod taming_fixture;
