//! Progress display: an indicatif bar (step/total, img/s, key losses, ETA) on a
//! terminal, one summary line per log interval otherwise (CI logs, `nohup`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(start: u64, total: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total).with_position(start);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} ETA {eta}",
                )
                .expect("static template is valid"),
            );
            bar
        });
        Progress { bar }
    }

    /// Advances to `step`; `msg` is the short status (img/s, losses).
    pub fn update(&self, step: u64, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(msg.to_string());
        }
    }

    /// A line that stays: printed above the bar, or as is without one.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// The periodic summary: only printed where there is no bar.
    pub fn summary(&self, text: &str) {
        if self.bar.is_none() {
            eprintln!("{text}");
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
