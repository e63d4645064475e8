//! What can go wrong with a run folder; every variant names the path at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The folder or a file in it is not what a run holds (the message names it).
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// Another process holds the run folder's lock (`holder`: its pid and host, as it
    /// wrote them; empty if unreadable).
    #[error("{}: {}", path.display(), busy_message(holder))]
    Busy { path: PathBuf, holder: String },
}

fn busy_message(holder: &str) -> String {
    let who = if holder.is_empty() {
        String::new()
    } else {
        format!(" ({holder})")
    };
    format!(
        "this run folder is in use by another trainer{who}; wait for it to finish, or choose another --out folder"
    )
}

impl RunError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
        move |source| RunError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> RunError {
        RunError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl vqtok_core::exit::Blame for RunError {
    /// A folder that is not a run or checkpoint, or a file in it that does not parse,
    /// is the user's to fix, and so is pointing two trainers at one folder; failing to
    /// read or write one that is there is not.
    fn is_user_error(&self) -> bool {
        match self {
            RunError::Invalid { .. } | RunError::Busy { .. } => true,
            RunError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        }
    }
}
