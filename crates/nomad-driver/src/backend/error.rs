//! The driver's errors. Every call ends as an [`Error`], which says what Nomad needs to know:
//! whether its restart policy should retry. Below that, each part keeps the error of what it
//! does (a job option refused, a stage0 failure, a file that could not be read), and the
//! conversions here decide the kind in one place.

use std::path::PathBuf;

/// A failed driver call, as Nomad needs to know it: whether its restart policy should retry.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Retrying will fail the same way (bad configuration, an image that does not exist).
    Fatal(String),
    /// Worth a retry (a registry that could not be reached): Nomad's RecoverableError.
    Recoverable(String),
    /// No task has the ID Nomad gave.
    TaskNotFound,
}

impl Error {
    pub fn fatal(msg: impl Into<String>) -> Error {
        Error::Fatal(msg.into())
    }

    pub fn not_found() -> Error {
        Error::TaskNotFound
    }

    /// A stage0 error with `context` (what the driver was doing) in front. Whether Nomad
    /// retries follows stage0's kind: only an unreachable registry or network is worth it.
    pub fn from_stage0(context: impl std::fmt::Display, e: stage0::Error) -> Error {
        let retry = e.is_retryable();
        let msg = format!("{context}: {e}");
        if retry {
            Error::Recoverable(msg)
        } else {
            Error::Fatal(msg)
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Fatal(m) | Error::Recoverable(m) => f.write_str(m),
            Error::TaskNotFound => f.write_str("task not found for given id"),
        }
    }
}

impl From<stage0::Error> for Error {
    fn from(e: stage0::Error) -> Error {
        if e.is_retryable() {
            Error::Recoverable(e.to_string())
        } else {
            Error::Fatal(e.to_string())
        }
    }
}

/// A task configuration this driver will not run, with what to write instead. It is the
/// job's to fix: retrying the same job fails the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTask(String);

/// An [`InvalidTask`] from `format!` arguments: the option named, and the fix.
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::backend::InvalidTask::new(format!($($arg)*))
    };
}
pub(crate) use invalid;

impl InvalidTask {
    pub fn new(message: impl Into<String>) -> InvalidTask {
        InvalidTask(message.into())
    }

    /// The same refusal with `context` (the option it came from) in front.
    pub fn context(self, context: impl std::fmt::Display) -> InvalidTask {
        InvalidTask(format!("{context}: {}", self.0))
    }
}

impl From<&'static str> for InvalidTask {
    fn from(message: &'static str) -> InvalidTask {
        InvalidTask::new(message)
    }
}

impl std::fmt::Display for InvalidTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidTask {}

impl From<InvalidTask> for Error {
    fn from(e: InvalidTask) -> Error {
        Error::Fatal(format!("invalid task configuration: {e}"))
    }
}

/// A file of the driver's own (its state, a cgroup's counters) that could not be read or
/// written.
#[derive(Debug)]
pub struct FileError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl FileError {
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> FileError {
        FileError {
            op,
            path: path.into(),
            source,
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for FileError {}

impl From<FileError> for Error {
    fn from(e: FileError) -> Error {
        Error::Fatal(e.to_string())
    }
}
