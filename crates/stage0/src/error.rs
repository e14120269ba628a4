//! stage0's errors: each carries a [`Kind`] that says what a caller can do about it, so that
//! nobody has to search an error's text to decide whether to retry.

use std::fmt;

/// What a caller can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input (a flag, a spec, an image that cannot be used as asked): fix it; retrying
    /// the same thing fails the same way.
    InvalidInput,
    /// The pod, image or file named does not exist.
    NotFound,
    /// A registry or network could not be reached, or answered 5xx: a retry may work.
    Retryable,
    /// Busy or in the wrong state (locked by another rkt, running when it must be stopped).
    Conflict,
    /// Anything else: the store, the kernel or a tool failed; the message says what.
    Failed,
}

/// A stage0 error: its kind, and a message that names the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: Kind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(Kind::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, message)
    }

    pub fn retryable(message: impl Into<String>) -> Error {
        Error::new(Kind::Retryable, message)
    }

    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(Kind::Conflict, message)
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::new(Kind::Failed, message)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether trying again later may succeed (Nomad's recoverable errors).
    pub fn is_retryable(&self) -> bool {
        self.kind == Kind::Retryable
    }

    /// The same error, with `context` (what was being done) in front of its message.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error {
            kind: Kind::Failed,
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::failed(e.to_string())
    }
}

impl From<layout::plan::PlanError> for Error {
    fn from(e: layout::plan::PlanError) -> Error {
        use layout::plan::PlanError;
        match e {
            // What was asked for cannot be written down for stage1: the caller's input.
            PlanError::Unencodable(why) => Error::invalid(why),
            // A damaged or foreign pod directory, or the host: not the caller's fault.
            e @ PlanError::Malformed { .. } => Error::failed(e.to_string()),
            PlanError::Read { path, source } => {
                Error::failed(format!("reading {}: {source}", path.display()))
            }
        }
    }
}

impl From<net::Error> for Error {
    fn from(e: net::Error) -> Error {
        let kind = match &e {
            net::Error::Config(_) => Kind::InvalidInput,
            net::Error::Conflict(_) => Kind::Conflict,
            net::Error::Host(_) => Kind::Failed,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<image::reference::ParseError> for Error {
    fn from(e: image::reference::ParseError) -> Error {
        Error::invalid(e.to_string())
    }
}

/// A `registries.d` file that cannot be used: fix it.
impl From<image::registries::ConfigError> for Error {
    fn from(e: image::registries::ConfigError) -> Error {
        Error::invalid(e.to_string())
    }
}

/// An image error's variant says what kind it is: a registry's failure, an image or a
/// configuration file that cannot be used, an image that is not there.
impl From<image::Error> for Error {
    fn from(e: image::Error) -> Error {
        use image::error::Failure;
        let kind = match &e {
            image::Error::Registry { failure, .. } => match failure {
                Failure::Unavailable => Kind::Retryable,
                Failure::NotFound => Kind::NotFound,
                Failure::Denied | Failure::Refused => Kind::InvalidInput,
            },
            image::Error::Refused(_) | image::Error::InvalidInput(_) | image::Error::Config(_) => {
                Kind::InvalidInput
            }
            image::Error::NotFound(_) => Kind::NotFound,
            image::Error::Io { .. } | image::Error::Failed(_) => Kind::Failed,
        };
        let message = e.to_string();
        Error {
            kind,
            message,
            source: match e {
                image::Error::Io { error, .. } => Some(Box::new(error)),
                _ => None,
            },
        }
    }
}

/// A pod error's variant says what kind it is.
impl From<pod::Error> for Error {
    fn from(e: pod::Error) -> Error {
        let kind = match &e {
            pod::Error::InvalidInput(_) => Kind::InvalidInput,
            pod::Error::NotFound(_) => Kind::NotFound,
            pod::Error::Corrupt(_) | pod::Error::Io { .. } => Kind::Failed,
        };
        Error::new(kind, e.to_string())
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

/// Returns an [`Kind::InvalidInput`] error with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::invalid(format!($($arg)*)))
    };
}

/// An [`Kind::InvalidInput`] error with a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::error::Error::invalid(format!($($arg)*))
    };
}

pub(crate) use bail;
pub(crate) use invalid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_failures_keep_their_kind_through_context() {
        use image::error::Failure;
        let e = image::Error::registry(Failure::Unavailable, "giving up after 3 attempts")
            .context("registry 127.0.0.1:1 unreachable");
        let e = Error::from(e).context("fetching docker://127.0.0.1:1/x");
        assert_eq!(e.kind(), Kind::Retryable);
        assert!(e.is_retryable());
        assert!(e.to_string().contains("unreachable: giving up"), "{e}");
        let e = Error::from(image::Error::failed("some other failure"));
        assert_eq!(e.kind(), Kind::Failed);
    }

    #[test]
    fn bad_names_and_bad_registries_files_are_invalid_input() {
        let parse = image::reference::Reference::parse("docker://Upper").unwrap_err();
        let e = Error::from(image::Error::from(parse).context("fetching"));
        assert_eq!(e.kind(), Kind::InvalidInput);
        let mut r = image::registries::Registries::default();
        let bad = r
            .add_file("{", std::path::Path::new("/x/registries.d/a.json"))
            .unwrap_err();
        assert_eq!(Error::from(bad.clone()).kind(), Kind::InvalidInput);
        let e = Error::from(image::Error::from(bad));
        assert_eq!(e.kind(), Kind::InvalidInput);
        assert!(
            e.to_string().contains("/x/registries.d/a.json, line 1"),
            "{e}"
        );
    }

    #[test]
    fn image_and_pod_errors_keep_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = image::store::Store::open(dir.path()).unwrap();
        let e = Error::from(store.resolve("sha512-0123").unwrap_err());
        assert_eq!(e.kind(), Kind::NotFound);
        assert!(e.to_string().contains("no image with ID"), "{e}");
        let e = Error::from(image::aci::location("ftp://h/a.aci").unwrap_err());
        assert_eq!(e.kind(), Kind::InvalidInput);
        assert!(e.to_string().contains("unsupported scheme"), "{e}");
        let Err(e) = image::store::Store::open(std::path::Path::new("/proc/no-store")) else {
            panic!("a store under /proc")
        };
        assert_eq!(Error::from(e).kind(), Kind::Failed);

        let pods = pod::Pods::open(dir.path()).unwrap();
        let e = Error::from(pods.find("0123").unwrap_err());
        assert_eq!(e.kind(), Kind::NotFound);
        assert!(e.to_string().contains("no pod with UUID \"0123\""), "{e}");
        let e = pod::caps::effective_set(Some(&["CAP_NO_SUCH".to_string()]), None).unwrap_err();
        assert_eq!(Error::from(e).kind(), Kind::InvalidInput);
        let e = pod::seccomp::filter(Some(
            &pod::seccomp::Spec::parse("mode=retain,no_such_call").unwrap(),
        ))
        .unwrap_err();
        assert_eq!(Error::from(e).kind(), Kind::InvalidInput);
    }
}

#[cfg(test)]
mod net_kinds {
    use super::*;

    /// A network error says whose it is: the user's, another holder's, or the host's.
    #[test]
    fn network_errors_keep_their_kind() {
        let kind = |e: net::Error| Error::from(e).kind();
        assert_eq!(kind(net::Error::Config("x".into())), Kind::InvalidInput);
        assert_eq!(kind(net::Error::Conflict("x".into())), Kind::Conflict);
        assert_eq!(
            kind(net::Error::Host("iptables-restore: x".into())),
            Kind::Failed
        );
        let e = net::conf::parse_mode(&[":x".into()]).unwrap_err();
        assert_eq!(kind(e), Kind::InvalidInput);
    }
}
