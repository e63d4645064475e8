//! Fault injection for the reliability tests, through the `fail` crate: the points are
//! compiled in only with the `failpoints` feature (vqtok-train's tests enable it), and
//! a point fires when the `FAILPOINTS` environment variable says `NAME=return(STEP)`.
//!
//! | point | effect at step STEP |
//! |---|---|
//! | `train-nan-batch` | the batch is all NaN |
//! | `train-skip-batch` | the batch is skipped without a forward (the reference a NaN batch must equal) |
//! | `train-poison-weights` | after the step, a model weight becomes NaN |
//! | `train-interrupt` | after the step, the run stops as on Ctrl-C (checkpoint, exit 0) |
//! | `checkpoint-after-model` | SIGKILL once the checkpoint's model file is written |
//! | `disc-nan-loss` | the discriminator's loss is NaN (after its forwards) |
//! | `disc-skip-update` | the discriminator's update is skipped as if not due (the reference for `disc-nan-loss`) |

/// Whether point `name` is set to fire at `step`.
pub fn fires_at(name: &str, step: u64) -> bool {
    fired(name, step).unwrap_or(false)
}

/// `Some(whether its argument is step)` when point `name` is set; without the feature
/// the point compiles to nothing and the arguments go unused.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
fn fired(name: &str, step: u64) -> Option<bool> {
    fail::fail_point!(name, |arg: Option<String>| {
        Some(arg.and_then(|s| s.trim().parse::<u64>().ok()) == Some(step))
    });
    None
}
