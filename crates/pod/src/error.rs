//! The pod crate's errors, by what a caller can do about them: fix a flag or argument, give
//! a pod that exists, or report a failed file operation.
//!
//! Each variant's text is the whole message, with what was being done in front, as it is
//! printed; [`Error::context`] adds to the front and keeps the variant. An
//! [`std::io::Error`] is kept in [`Error::Io`], but its text is in the message already, so
//! `source()` does not return it and a printed chain says nothing twice.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or argument that cannot be used (`--caps-retain`, `--seccomp`, a UUID).
    #[error("{0}")]
    InvalidInput(String),
    /// No pod with the UUID given.
    #[error("{0}")]
    NotFound(String),
    /// A file the pod keeps (its manifest) does not parse: the pod is damaged.
    #[error("{0}")]
    Corrupt(String),
    /// A file operation on the pods' directories failed; `context` says which.
    #[error("{}", io_message(.context, .error))]
    Io {
        context: String,
        error: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_message(context: &str, error: &std::io::Error) -> String {
    if context.is_empty() {
        error.to_string()
    } else {
        format!("{context}: {error}")
    }
}

impl Error {
    /// The same error with `context` (what was being done) in front of its message.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        match &mut self {
            Error::InvalidInput(m) | Error::NotFound(m) | Error::Corrupt(m) => {
                *m = format!("{context}: {m}")
            }
            Error::Io { context: c, .. } if c.is_empty() => *c = context.to_string(),
            Error::Io { context: c, .. } => *c = format!("{context}: {c}"),
        }
        self
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::Io {
            context: String::new(),
            error,
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Error {
        Error::from(std::io::Error::from(e))
    }
}

/// `context` and `with_context` for results whose error becomes an [`Error`].
pub(crate) trait Context<T> {
    fn context(self, context: impl fmt::Display) -> Result<T>;
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

/// Returns an [`Error::InvalidInput`] with a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::InvalidInput(format!($($arg)*)))
    };
}

pub(crate) use invalid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_goes_in_front_and_keeps_the_kind() {
        let e = std::fs::read("/nonexistent/pod")
            .context("reading /nonexistent/pod")
            .unwrap_err();
        assert!(
            matches!(&e, Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
        );
        assert!(
            e.to_string()
                .starts_with("reading /nonexistent/pod: No such file"),
            "{e}"
        );
        let e = Error::NotFound("no pod with UUID \"x\"".into()).context("stopping");
        assert!(matches!(&e, Error::NotFound(m) if m == "stopping: no pod with UUID \"x\""));
    }
}
