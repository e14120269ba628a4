//! An app's command made absolute, as appc requires of `exec[0]` and as rkt's stage1 did it
//! (`FindBinPath`): a name without `/` is looked up in the app's `PATH` inside the image, a
//! relative path with `/` is taken from the working directory. The result goes into the pod
//! manifest and is what the app runs as, so `ps` in the pod and readers of
//! `rkt cat-manifest` see `/bin/sleep` rather than `sleep`.
//!
//! The lookup happens at prepare time, in the image's tree and beneath its root
//! (`image::rootfs::stat`, RESOLVE_IN_ROOT): an image's symlinks cannot send it to the host.

use crate::error::{invalid, Result};
use std::path::Path;

/// What to look a command up in: the image's tree and what the app will see.
pub(crate) struct Lookup<'a> {
    pub rootfs: &'a Path,
    /// `NAME=VALUE` entries of the app's environment; `PATH` is taken from here.
    pub env: &'a [String],
    pub workdir: &'a str,
    /// The image as the user named it, for messages.
    pub image: &'a str,
}

impl Lookup<'_> {
    /// `command` as an absolute path inside the image. Absolute paths are kept as they are
    /// (stage1 reports a missing one when it starts the app, as rkt did).
    pub(crate) fn absolute(&self, command: &str) -> Result<String> {
        if command.starts_with('/') {
            return Ok(command.to_string());
        }
        if command.is_empty() {
            return Err(invalid!(
                "the command of image {} is empty; give one with --exec",
                self.image
            ));
        }
        if command.contains('/') {
            return Ok(clean(&format!("{}/{command}", self.workdir)));
        }
        let path = self.path();
        path.split(':')
            .map(|dir| self.in_workdir(dir))
            .map(|dir| clean(&format!("{dir}/{command}")))
            .find(|candidate| self.is_executable(candidate))
            .ok_or_else(|| {
                invalid!(
                    "command {command:?} not found in image {}: no executable {command} in its PATH {path:?} (looked up inside the image); give the absolute path of a program the image has",
                    self.image
                )
            })
    }

    /// The app's `PATH` (prepare always sets one; rkt's fallback is kept for safety).
    fn path(&self) -> String {
        self.env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}:/bin:/usr/bin", self.workdir))
    }

    /// A `PATH` entry; relative ones (and the empty one, the current directory) are taken
    /// from the working directory, as execvp(3) in the app would.
    fn in_workdir(&self, dir: &str) -> String {
        if dir.starts_with('/') {
            dir.to_string()
        } else {
            format!("{}/{dir}", self.workdir)
        }
    }

    /// A file with an execute bit, symlinks followed inside the image.
    fn is_executable(&self, path: &str) -> bool {
        image::rootfs::stat(self.rootfs, path)
            .is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR && st.st_mode & 0o111 != 0)
    }
}

/// `path` made absolute and lexically clean (Go's filepath.Clean): no `.`, `..` or doubled
/// `/`; `..` stops at the root.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn found_in_the_images_path_beneath_its_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        executable(&root.join("usr/bin/tool"));
        executable(&root.join("bin/busybox"));
        symlink("busybox", root.join("bin/sleep")).unwrap();
        std::fs::write(root.join("bin/plain"), b"x").unwrap();
        // A host program the image's symlink points at must not count.
        executable(&t.path().join("hostonly"));
        symlink(t.path().join("hostonly"), root.join("bin/hostonly")).unwrap();
        std::fs::create_dir_all(root.join("opt/app/sbin")).unwrap();
        executable(&root.join("opt/app/run.sh"));
        let env = ["PATH=/sbin:/usr/bin:/bin:/opt/app".to_string()];
        let l = Lookup {
            rootfs: &root,
            env: &env,
            workdir: "/opt/app",
            image: "img",
        };
        assert_eq!(l.absolute("tool").unwrap(), "/usr/bin/tool");
        // The path as found, not the symlink's target, as rkt kept it.
        assert_eq!(l.absolute("sleep").unwrap(), "/bin/sleep");
        assert_eq!(l.absolute("/x/y").unwrap(), "/x/y");
        assert_eq!(l.absolute("./run.sh").unwrap(), "/opt/app/run.sh");
        assert_eq!(l.absolute("../app/run.sh").unwrap(), "/opt/app/run.sh");
        for missing in ["plain", "hostonly", "nope", "sbin"] {
            let e = l.absolute(missing).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{missing:?}")) && e.contains("/sbin:/usr/bin:/bin"),
                "{e}"
            );
        }
        let relative_path = ["PATH=sbin:".to_string()];
        let l = Lookup {
            env: &relative_path,
            ..l
        };
        assert_eq!(l.absolute("run.sh").unwrap(), "/opt/app/run.sh");
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("/a/./b//c/../d"), "/a/b/d");
        assert_eq!(clean("/../../x"), "/x");
        assert_eq!(clean("/"), "/");
    }
}
