//! stage1's one error type: the operation that failed, the path it was done to (when there is
//! one) and the operating system's answer (when it came from a system call), printed as
//! `OPERATION PATH: ERROR` after whatever larger step it was part of.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Error {
    op: String,
    path: Option<PathBuf>,
    os: Option<io::Error>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failed system call (or library call that wraps one); `op` names it, with its
    /// arguments where they help.
    pub fn os(op: impl Into<String>, os: impl Into<io::Error>) -> Error {
        Error {
            op: op.into(),
            path: None,
            os: Some(os.into()),
        }
    }

    /// A failed system call on `path`.
    pub fn at(op: impl Into<String>, path: impl AsRef<Path>, os: impl Into<io::Error>) -> Error {
        Error {
            op: op.into(),
            path: Some(path.as_ref().to_path_buf()),
            os: Some(os.into()),
        }
    }

    /// The system call that just failed, from `errno`.
    pub fn last(op: impl Into<String>) -> Error {
        Error::os(op, io::Error::last_os_error())
    }

    /// A failure no system call reported: a plan stage1 cannot carry out, an image without
    /// what the plan needs.
    pub fn msg(what: impl Into<String>) -> Error {
        Error {
            op: what.into(),
            path: None,
            os: None,
        }
    }

    /// Names the larger step this failure is part of, in front of it.
    pub fn context(mut self, step: impl fmt::Display) -> Error {
        self.op = format!("{step}: {}", self.op);
        self
    }
}

/// A plan stage1 cannot read or parse: the host's or stage0's fault, never the app's.
impl From<layout::plan::PlanError> for Error {
    fn from(e: layout::plan::PlanError) -> Error {
        match e {
            layout::plan::PlanError::Read { path, source } => {
                Error::at("reading the plan", path, source)
            }
            e => Error::msg(e.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.op)?;
        if let Some(p) = &self.path {
            write!(f, " {}", p.display())?;
        }
        if let Some(e) = &self.os {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.os.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OS error number the error carries as its source.
    fn errno(e: &Error) -> Option<i32> {
        std::error::Error::source(e)?
            .downcast_ref::<io::Error>()?
            .raw_os_error()
    }

    #[test]
    fn says_the_step_the_operation_the_path_and_the_os_error() {
        let e = Error::at("open", "/sys/fs/cgroup/x", io::Error::from_raw_os_error(16))
            .context("joining the pod's cgroups");
        assert_eq!(
            e.to_string(),
            format!(
                "joining the pod's cgroups: open /sys/fs/cgroup/x: {}",
                io::Error::from_raw_os_error(16)
            )
        );
        assert_eq!(errno(&e), Some(16));
        let m = Error::msg("no app named web");
        assert_eq!(
            (m.to_string(), errno(&m)),
            ("no app named web".into(), None)
        );
    }

    #[test]
    fn rustix_errors_keep_their_number() {
        let e = Error::os("capset", rustix::io::Errno::PERM);
        assert_eq!(errno(&e), Some(libc::EPERM));
    }
}
