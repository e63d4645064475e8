//! Ctrl-C / SIGTERM: the first one asks the trainer to finish the current step, write
//! a checkpoint and exit 0; a second one exits at once (status 130).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Installs the process-wide handler (once per process) and returns the stop flag.
pub fn install_stop_flag() -> Result<Arc<AtomicBool>, ctrlc::Error> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: finishing this step and writing a checkpoint (interrupt again to abort)"
        );
    })?;
    Ok(flag)
}
