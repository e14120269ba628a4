//! The image crate's errors: one enum whose variants say what a caller can do about them
//! (retry a registry later, report an image or a file that cannot be used, report that
//! something is missing, or give up), so that nobody has to search an error's text.
//!
//! Each variant's text is the whole message, with what was being done in front
//! ("fetching image X: reading Y: No such file or directory"), exactly as it is printed.
//! [`Error::context`] adds to the front and keeps the variant: the innermost failure decides
//! what kind of error it is. Errors of other crates are kept in the variant (an
//! [`std::io::Error`] in [`Error::Io`]) but their text is already in the message, so
//! `source()` does not return them and a printed chain says nothing twice.

use crate::reference::ParseError;
use crate::registries::ConfigError;
pub use crate::registry::Failure;
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A registry or an HTTP server could not give what was asked; `failure` says why
    /// (unreachable or 5xx: try again later; 404; credentials refused; any other refusal).
    #[error("{message}")]
    Registry { failure: Failure, message: String },
    /// The image cannot be used as it is: a bad manifest, config, layer entry or archive, a
    /// signature that does not verify or a signer not trusted, an image that is not the one
    /// asked for. Retrying fetches the same bytes and fails the same way.
    #[error("{0}")]
    Refused(String),
    /// The caller asked for something that cannot be: an image name that is not one, a
    /// trust prefix, an output that exists, a pull policy that forbids what is needed.
    #[error("{0}")]
    InvalidInput(String),
    /// No such image in the store.
    #[error("{0}")]
    NotFound(String),
    /// A configuration file (auth.d, registries.d, trusted keys) cannot be used.
    #[error("{0}")]
    Config(String),
    /// A file operation failed; `context` says which (empty when nothing was added).
    #[error("{}", io_message(.context, .error))]
    Io {
        context: String,
        error: std::io::Error,
    },
    /// The store, the kernel or a tool failed in a way that is none of the above.
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_message(context: &str, error: &std::io::Error) -> String {
    if context.is_empty() {
        chain(error)
    } else {
        format!("{context}: {}", chain(error))
    }
}

/// An error and its causes, joined by ": " (what anyhow's `{:#}` printed before).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Error {
    pub fn registry(failure: Failure, message: impl Into<String>) -> Error {
        Error::Registry {
            failure,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Error {
        Error::Refused(message.into())
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidInput(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::NotFound(message.into())
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::Config(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::Failed(message.into())
    }

    /// The registry failure this is, if it is one.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            Error::Registry { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    /// The same error with `context` (what was being done) in front of its message.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        match &mut self {
            Error::Registry { message, .. }
            | Error::Refused(message)
            | Error::InvalidInput(message)
            | Error::NotFound(message)
            | Error::Config(message)
            | Error::Failed(message) => *message = format!("{context}: {message}"),
            Error::Io { context: c, .. } if c.is_empty() => *c = context.to_string(),
            Error::Io { context: c, .. } => *c = format!("{context}: {c}"),
        }
        self
    }

    /// A registry failure of `failure` whose message is `context: ` and this error's: for
    /// a lower failure (a broken connection) that says what happened to the registry.
    pub(crate) fn into_registry(self, failure: Failure, context: impl fmt::Display) -> Error {
        Error::registry(failure, format!("{context}: {self}"))
    }

    /// The same message as a refusal of the image, unless it already says what kind of
    /// registry failure it is.
    pub(crate) fn refusal(self) -> Error {
        match self {
            Error::Registry { .. } | Error::Refused(_) => self,
            other => Error::Refused(other.to_string()),
        }
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

/// JSON the image crate parses comes from images and registries: it is the image's fault.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Refused(e.to_string())
    }
}

/// Keys and signatures come with images: one that does not parse or verify is refused.
impl From<pgp::errors::Error> for Error {
    fn from(e: pgp::errors::Error) -> Error {
        Error::Refused(chain(&e))
    }
}

/// A broken connection or body may mend; a client that cannot be built or a redirect loop
/// will not.
impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Error {
        let failure = if e.is_builder() {
            return Error::Failed(chain(&e));
        } else if e.is_redirect() {
            Failure::Refused
        } else {
            Failure::Unavailable
        };
        Error::registry(failure, chain(&e))
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Error {
        Error::InvalidInput(e.to_string())
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e.to_string())
    }
}

/// `context` and `with_context` for results whose error becomes an [`Error`].
pub trait Context<T> {
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

/// Returns an [`Error::Refused`] with a formatted message: the image (or what it
/// contains) cannot be used.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Refused(format!($($arg)*)))
    };
}

pub(crate) use refuse;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_goes_in_front_and_keeps_the_kind() {
        let e = Error::registry(Failure::Unavailable, "giving up after 3 attempts")
            .context("registry 127.0.0.1:1 unreachable")
            .context("fetching docker://127.0.0.1:1/x");
        assert_eq!(e.failure(), Some(Failure::Unavailable));
        assert_eq!(
            e.to_string(),
            "fetching docker://127.0.0.1:1/x: registry 127.0.0.1:1 unreachable: giving up after 3 attempts"
        );
        let io = std::fs::read("/nonexistent/x")
            .context("reading /nonexistent/x")
            .context("fetching y")
            .unwrap_err();
        assert!(
            matches!(&io, Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
        );
        assert!(
            io.to_string()
                .starts_with("fetching y: reading /nonexistent/x: No such file"),
            "{io}"
        );
        // The io::Error's text is in the message already; a printed chain says it once.
        assert!(std::error::Error::source(&io).is_none());
    }

    #[test]
    fn a_refusal_keeps_registry_failures() {
        let e = Error::registry(Failure::NotFound, "no such key").refusal();
        assert_eq!(e.failure(), Some(Failure::NotFound));
        let e = Error::from(std::io::Error::other("bad archive")).refusal();
        assert!(matches!(e, Error::Refused(m) if m == "bad archive"));
    }
}
