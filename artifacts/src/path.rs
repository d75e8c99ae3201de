//! Names inside the store, checked before anything is written: a file's
//! path within a version (or a run, or a logged model), and the tree it
//! belongs to. Pure: no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted file path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Most directory levels in a file path.
pub const MAX_PATH_SEGMENTS: usize = 32;
/// Longest accepted path segment (a file or directory name), in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// A file's path relative to its tree: `/`-separated, relative, without
/// `.`/`..`, empty segments, backslashes or control characters, so that it
/// names the same file on every platform and can never leave its tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactPath(String);

impl TryFrom<String> for ArtifactPath {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        Self::parse(&raw)
    }
}

impl From<ArtifactPath> for String {
    fn from(p: ArtifactPath) -> String {
        p.0
    }
}

impl ArtifactPath {
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidPath {
            path: raw.chars().take(200).collect(),
            reason: why.to_string(),
        };
        if raw.is_empty() {
            return Err(bad("it is empty; name a file, e.g. model/MLmodel"));
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(bad(&format!("it is longer than {MAX_PATH_BYTES} bytes")));
        }
        if raw.starts_with('/') {
            return Err(bad(
                "it is absolute; paths are relative to the version, e.g. model/MLmodel",
            ));
        }
        if raw.contains('\\') {
            return Err(bad("it contains a backslash; separate directories with /"));
        }
        if raw.chars().any(char::is_control) {
            return Err(bad("it contains a control character"));
        }
        let segments: Vec<&str> = raw.split('/').collect();
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(bad(&format!(
                "it is more than {MAX_PATH_SEGMENTS} directories deep"
            )));
        }
        for segment in segments {
            match segment {
                "" => return Err(bad("it has an empty segment (// or a trailing /)")),
                "." | ".." => return Err(bad("it has a . or .. segment")),
                s if s.len() > MAX_SEGMENT_BYTES => {
                    return Err(bad(&format!(
                        "a segment is longer than {MAX_SEGMENT_BYTES} bytes"
                    )));
                }
                _ => {}
            }
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` lies under directory `dir` (`""` is the root).
    pub fn is_under(&self, dir: &str) -> bool {
        dir.is_empty()
            || self
                .0
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Each directory above the file: `a/b/c` → `a`, `a/b`.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(move |(i, _)| &self.0[..i])
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of files being written: a model version's (native uploads), an
/// MLflow run's or an MLflow logged model's (the MLflow artifact proxy).
/// A tree is a staging area; what a version serves is the sealed manifest
/// its `artifact_digest` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tree {
    /// A registered version's uploads. `created` (unix microseconds of the
    /// version's `created_at`) is part of the key because names and
    /// numbers come back: a model deleted and registered again starts at
    /// version 1 again, and that new version 1 must not see the old one's
    /// files.
    Version {
        model: String,
        version: i64,
        created: i64,
    },
    Run(String),
    LoggedModel(String),
}

impl Tree {
    /// Checks the identifiers: a model name as the registry accepts it,
    /// a version ≥ 1, run and logged-model ids of letters, digits, `-`, `_`.
    pub fn validate(&self) -> Result<()> {
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let ok = match self {
            Tree::Version { model, version, .. } => {
                *version >= 1
                    && !model.is_empty()
                    && model.len() <= 255
                    && model
                        .bytes()
                        .next()
                        .is_some_and(|b| b.is_ascii_alphanumeric())
                    && model
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            }
            Tree::Run(id) | Tree::LoggedModel(id) => id_ok(id),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidTree(self.to_string()))
        }
    }

    /// The tree's folder under `trees/` in the store.
    pub(crate) fn key(&self) -> String {
        match self {
            Tree::Version {
                model,
                version,
                created,
            } => format!("versions/{model}/{version}/{created}"),
            Tree::Run(id) => format!("runs/{id}"),
            Tree::LoggedModel(id) => format!("logged-models/{id}"),
        }
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tree::Version { model, version, .. } => {
                write!(f, "version {version} of model {model:?}")
            }
            Tree::Run(id) => write!(f, "run {id:?}"),
            Tree::LoggedModel(id) => write!(f, "logged model {id:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_model_files() {
        for ok in [
            "MLmodel",
            "model/model.pkl",
            "a/b/c/d.txt",
            "weights v2.bin",
            "ünïcode/名前.json",
            ".hidden",
            "x..y",
        ] {
            assert_eq!(ArtifactPath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_paths_that_could_leave_the_tree_or_are_ambiguous() {
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        let deep = vec!["d"; MAX_PATH_SEGMENTS + 1].join("/");
        let wide_segment = "s".repeat(MAX_SEGMENT_BYTES + 1);
        for bad in [
            "",
            "/etc/passwd",
            "../secret",
            "a/../../b",
            "a/./b",
            "..",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            "a\nb",
            long.as_str(),
            deep.as_str(),
            wide_segment.as_str(),
        ] {
            let err = ArtifactPath::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn directories_and_ancestors() {
        let p = ArtifactPath::parse("model/sub/file.bin").unwrap();
        assert!(p.is_under(""));
        assert!(p.is_under("model"));
        assert!(p.is_under("model/sub"));
        assert!(!p.is_under("mod"));
        assert!(!p.is_under("model/sub/file.bin"));
        assert_eq!(p.ancestors().collect::<Vec<_>>(), ["model", "model/sub"]);
    }

    #[test]
    fn tree_identifiers_are_checked() {
        let v = |m: &str, n| Tree::Version {
            model: m.into(),
            version: n,
            created: 1_700_000_000_123_456,
        };
        assert!(v("fraud-detector.v2", 3).validate().is_ok());
        assert!(v("fraud", 0).validate().is_err());
        assert!(v("../x", 1).validate().is_err());
        assert!(v(".x", 1).validate().is_err());
        assert!(Tree::Run("abc_123-x".into()).validate().is_ok());
        assert!(Tree::Run("a/b".into()).validate().is_err());
        assert!(Tree::LoggedModel("".into()).validate().is_err());
        assert_eq!(v("fraud", 3).key(), "versions/fraud/3/1700000000123456");
    }
}
