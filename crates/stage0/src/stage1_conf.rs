//! rkt's `stage1.d` (`rktKind: stage1`): the default stage1 of pods started without a
//! `--stage1-*` flag. rkt 1.30 read a `name` and `version` (looked up in the image store) and
//! a `location` (fetched when that image was not stored); a later configuration directory
//! overrides the name-and-version pair and the location separately, and naming either in two
//! files of one directory is an error.
//!
//! This rkt's stage1 flavours are built in ([`crate::fly::NAMES`]), so they are always "in the
//! store": a name of one of them selects it and its location is never consulted, as rkt would
//! not have consulted it. A location alone selects the flavour its file is named after
//! (`…/stage1-fly.aci`), as `--stage1-from-dir` does. Anything else names a stage1 image this
//! rkt cannot run and is refused, with the file named.

use crate::config::config_files;
use crate::error::{Error, Result};
use crate::fly::{NAMES, VERSION};
use crate::spec::Stage1;
use std::path::{Path, PathBuf};

/// A value of `stage1.d` and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromFile<T> {
    pub value: T,
    pub file: PathBuf,
}

/// The merged `stage1.d` of the configuration directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stage1Conf {
    /// `name` and `version`, given together.
    pub name: Option<FromFile<(String, String)>>,
    /// `location`: a path or a URL of a stage1 image.
    pub location: Option<FromFile<String>>,
}

impl Stage1Conf {
    /// Reads `stage1.d` from `dirs`, lowest precedence first.
    pub fn read(dirs: &[PathBuf]) -> Result<Stage1Conf> {
        let mut merged = Stage1Conf::default();
        for dir in dirs {
            let mut here = Stage1Conf::default();
            for file in config_files(dir, "stage1.d") {
                here.add(&file)?;
            }
            merged.name = here.name.or(merged.name);
            merged.location = here.location.or(merged.location);
        }
        Ok(merged)
    }

    /// One file's fields, refused when another file of the same directory gave them.
    fn add(&mut self, file: &Path) -> Result<()> {
        let bad = |why: String| {
            Error::invalid(format!(
                "{}: {why}; a stage1 file is {{\"rktKind\":\"stage1\",\"rktVersion\":\"v1\",\"name\":\"coreos.com/rkt/stage1-coreos\",\"version\":\"{VERSION}\"}}",
                file.display()
            ))
        };
        let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if v["rktKind"] != "stage1" || v["rktVersion"] != "v1" {
            return Err(bad("not rktKind \"stage1\", rktVersion \"v1\"".into()));
        }
        let mut name = None;
        let mut version = None;
        let mut location = None;
        for (key, value) in v.as_object().into_iter().flatten() {
            let text = || {
                value
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("{key:?} must be a string that is not empty")))
            };
            match key.as_str() {
                "rktKind" | "rktVersion" => {}
                "name" => name = Some(text()?),
                "version" => version = Some(text()?),
                "location" => location = Some(text()?),
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        let twice = |what: &str, earlier: &Path| {
            bad(format!(
                "{what} is given in {} too, in the same directory; keep it in one file",
                earlier.display()
            ))
        };
        match (name, version) {
            (Some(n), Some(v)) => {
                if let Some(earlier) = &self.name {
                    return Err(twice("the name and version", &earlier.file));
                }
                self.name = Some(FromFile {
                    value: (n, v),
                    file: file.to_path_buf(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "\"name\" and \"version\" go together: give both or neither".into(),
                ))
            }
        }
        if let Some(l) = location {
            if let Some(earlier) = &self.location {
                return Err(twice("the location", &earlier.file));
            }
            self.location = Some(FromFile {
                value: l,
                file: file.to_path_buf(),
            });
        }
        Ok(())
    }

    /// The built-in flavour this configuration makes the default.
    pub fn flavour(&self) -> Result<Stage1> {
        let known = || {
            NAMES
                .iter()
                .map(|(n, f, _)| format!("\"name\": \"{n}\" (\"version\": \"{VERSION}\") or a location ending in /{f}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if let Some(FromFile {
            value: (n, v),
            file,
        }) = &self.name
        {
            return match NAMES.iter().find(|(name, _, _)| name == n) {
                Some((_, _, flavour)) if v == VERSION => Ok(*flavour),
                _ => Err(Error::invalid(format!(
                    "{}: stage1 {n:?} version {v:?} is not one of this rkt's built-in stage1 flavours, and this rkt runs no stage1 images; use {}",
                    file.display(),
                    known()
                ))),
            };
        }
        if let Some(FromFile { value: l, file }) = &self.location {
            let path = l.strip_prefix("file://").unwrap_or(l);
            let named = Path::new(path).file_name().and_then(|f| f.to_str());
            let found = NAMES.iter().find(|(_, f, _)| Some(*f) == named);
            return match found {
                Some((_, _, flavour)) if path.starts_with('/') => Ok(*flavour),
                _ => Err(Error::invalid(format!(
                    "{}: location {l:?} is not one of this rkt's built-in stage1 flavours, and this rkt fetches no stage1 images; use {}",
                    file.display(),
                    known()
                ))),
            };
        }
        Ok(Stage1::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join("stage1.d")).unwrap();
        std::fs::write(dir.join("stage1.d").join(name), text).unwrap();
    }

    fn conf(name: &str, version: &str, location: &str) -> String {
        let mut v = serde_json::json!({"rktKind": "stage1", "rktVersion": "v1"});
        for (k, x) in [("name", name), ("version", version), ("location", location)] {
            if !x.is_empty() {
                v[k] = x.into();
            }
        }
        v.to_string()
    }

    #[test]
    fn the_local_directory_overrides_name_and_location_separately() {
        let sys = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        let dirs = vec![sys.path().to_path_buf(), local.path().to_path_buf()];
        assert_eq!(
            Stage1Conf::read(&dirs).unwrap().flavour().unwrap(),
            Stage1::Default
        );
        write(
            sys.path(),
            "coreos.json",
            &conf(
                "coreos.com/rkt/stage1-coreos",
                "1.30.0",
                "/usr/lib/rkt/stage1-images/stage1-coreos.aci",
            ),
        );
        let c = Stage1Conf::read(&dirs).unwrap();
        assert_eq!(c.flavour().unwrap(), Stage1::Default);
        // A location of the local directory replaces the system's, its name stays.
        write(
            local.path(),
            "loc.json",
            &conf("", "", "file:///opt/stage1-fly.aci"),
        );
        let c = Stage1Conf::read(&dirs).unwrap();
        assert_eq!(
            c.location.as_ref().unwrap().value,
            "file:///opt/stage1-fly.aci"
        );
        assert_eq!(
            c.name.as_ref().unwrap().value.0,
            "coreos.com/rkt/stage1-coreos"
        );
        assert_eq!(
            c.flavour().unwrap(),
            Stage1::Default,
            "the name wins over a location"
        );
        write(
            local.path(),
            "name.json",
            &conf("coreos.com/rkt/stage1-fly", "1.30.0", ""),
        );
        assert_eq!(
            Stage1Conf::read(&dirs).unwrap().flavour().unwrap(),
            Stage1::Fly
        );
        // A location alone picks the flavour its file is named after.
        std::fs::remove_file(local.path().join("stage1.d/name.json")).unwrap();
        std::fs::remove_file(sys.path().join("stage1.d/coreos.json")).unwrap();
        assert_eq!(
            Stage1Conf::read(&dirs).unwrap().flavour().unwrap(),
            Stage1::Fly
        );
    }

    #[test]
    fn what_this_rkt_cannot_run_is_refused_with_the_file_named() {
        let local = tempfile::tempdir().unwrap();
        let dirs = vec![local.path().to_path_buf()];
        let refused = |text: &str, wants: &[&str]| {
            write(local.path(), "s.json", text);
            let e = Stage1Conf::read(&dirs)
                .and_then(|c| c.flavour())
                .unwrap_err()
                .to_string();
            assert!(e.contains("s.json"), "{e}");
            for w in wants {
                assert!(e.contains(w), "{e} should say {w}");
            }
        };
        refused(
            &conf("example.com/rkt/stage1", "1.2.3", ""),
            &["example.com/rkt/stage1", "stage1-fly"],
        );
        refused(
            &conf("coreos.com/rkt/stage1-fly", "1.29.0", ""),
            &["1.29.0"],
        );
        refused(
            &conf("", "", "https://example.com/stage1.aci"),
            &["https://example.com/stage1.aci"],
        );
        refused(&conf("", "", "stage1-fly.aci"), &["location"]);
        refused(&conf("coreos.com/rkt/stage1-fly", "", ""), &["give both"]);
        refused(
            &conf("", "", "").replace("\"v1\"", "\"v2\""),
            &["rktVersion"],
        );
        refused(
            r#"{"rktKind":"stage1","rktVersion":"v1","image":"x"}"#,
            &["unknown key"],
        );
        std::fs::remove_file(local.path().join("stage1.d/s.json")).unwrap();
        // Two files of one directory may not both name the default.
        write(
            local.path(),
            "a.json",
            &conf("coreos.com/rkt/stage1-fly", "1.30.0", ""),
        );
        write(
            local.path(),
            "b.json",
            &conf("coreos.com/rkt/stage1-coreos", "1.30.0", ""),
        );
        let e = Stage1Conf::read(&dirs).unwrap_err().to_string();
        assert!(e.contains("a.json") && e.contains("b.json"), "{e}");
    }
}
