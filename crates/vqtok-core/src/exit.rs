//! How every vqtok binary (and xtask) ends: 0 success, 2 when the user's input or usage is
//! at fault (a bad file, flag or config: fix it and run again), 1 for everything else
//! (a failure of ours or of the machine). Library errors say which they are through
//! [`Blame`]; a binary lists the error types it can meet and [`code`] walks the chain.

use std::error::Error;
use std::process::{ExitCode, ExitStatus};

/// Exit status for bad input or usage.
pub const BAD_INPUT: u8 = 2;
/// Exit status for a failure that is not the input's fault.
pub const FAILURE: u8 = 1;

/// Whose fault an error is.
pub trait Blame {
    /// True when the user's input (files, flags, config) is at fault.
    fn is_user_error(&self) -> bool;
}

/// A usage or input error raised directly by a binary (a missing flag, a file that is not
/// there): always the user's fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// An [`anyhow::Error`] holding a [`UserError`].
pub fn user_error(message: impl Into<String>) -> anyhow::Error {
    UserError(message.into()).into()
}

/// Recognises one error type in a chain: `Some(is_user_error)` when the link is one.
pub type Classifier = fn(&(dyn Error + 'static)) -> Option<bool>;

/// The [`Classifier`] of `E`.
pub fn blame<E: Blame + Error + 'static>(link: &(dyn Error + 'static)) -> Option<bool> {
    link.downcast_ref::<E>().map(E::is_user_error)
}

/// The exit status of `e`: the first link of its chain that a classifier (or
/// [`UserError`]) recognises decides; unrecognised errors are failures.
pub fn code(e: &anyhow::Error, classifiers: &[Classifier]) -> u8 {
    for link in e.chain() {
        if link.is::<UserError>() {
            return BAD_INPUT;
        }
        if let Some(user) = classifiers.iter().find_map(|c| c(link)) {
            return if user { BAD_INPUT } else { FAILURE };
        }
    }
    FAILURE
}

/// The chain as one line, `outer: inner: …`, each text once (a transparent wrapper
/// repeats its source's text).
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for link in e.chain() {
        let text = link.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Prints `error: …` ([`message`]) to stderr and returns [`code`]'s status.
pub fn report(e: &anyhow::Error, classifiers: &[Classifier]) -> ExitCode {
    eprintln!("error: {}", message(e));
    ExitCode::from(code(e, classifiers))
}

/// The same rule read back from a child vqtok process: 0 → Ok, 2 → a [`UserError`] (its
/// own message is already on the terminal), anything else → a failure.
pub fn child(status: ExitStatus, what: &str) -> anyhow::Result<()> {
    match status.code() {
        Some(0) => Ok(()),
        Some(c) if c == i32::from(BAD_INPUT) => {
            Err(user_error(format!("{what} rejected its input (see above)")))
        }
        _ => anyhow::bail!("{what} failed with {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("lib error, user: {0}")]
    struct LibError(bool);

    impl Blame for LibError {
        fn is_user_error(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn the_first_known_link_decides() {
        let known = [blame::<LibError> as Classifier];
        let user = anyhow::Error::new(LibError(true)).context("while reading x");
        assert_eq!(code(&user, &known), BAD_INPUT);
        let ours = anyhow::Error::new(LibError(false)).context("while reading x");
        assert_eq!(code(&ours, &known), FAILURE);
        assert_eq!(code(&user_error("no such flag"), &[]), BAD_INPUT);
        assert_eq!(code(&anyhow::anyhow!("unknown"), &known), FAILURE);
        assert_eq!(code(&anyhow::Error::new(LibError(true)), &[]), FAILURE);
    }

    #[test]
    fn messages_name_each_link_once() {
        let e = anyhow::Error::new(LibError(true)).context("reading x");
        assert_eq!(message(&e), "reading x: lib error, user: true");
    }

    #[test]
    fn child_statuses_map_back() {
        use std::os::unix::process::ExitStatusExt;
        assert!(child(ExitStatus::from_raw(0), "x").is_ok());
        let e = child(ExitStatus::from_raw(2 << 8), "x").unwrap_err();
        assert_eq!(code(&e, &[]), BAD_INPUT);
        let e = child(ExitStatus::from_raw(1 << 8), "x").unwrap_err();
        assert_eq!(code(&e, &[]), FAILURE);
    }
}
