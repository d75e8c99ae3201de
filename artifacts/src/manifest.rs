//! A sealed file list: every file of a version with its size and sha256.
//! Its own sha256, over the canonical JSON below, is the version's
//! `artifact_digest`, so one digest names every byte of every file.
//! Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The manifest format written into `"format"`; a reader refuses others.
pub const MANIFEST_FORMAT: &str = "modelwatch-artifacts-manifest/1";

/// A content digest: `sha256:<64 lowercase hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses `sha256:<hex>` or bare hex (64 characters, either case).
    pub fn parse(raw: &str) -> Result<Self> {
        let hex_part = raw.strip_prefix("sha256:").unwrap_or(raw);
        let mut out = [0u8; 32];
        if hex_part.len() != 64 || hex::decode_to_slice(hex_part, &mut out).is_err() {
            return Err(Error::InvalidDigest(raw.chars().take(100).collect()));
        }
        Ok(Self(out))
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Sha256Digest::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// A file in a listing: its path relative to the tree (or the listed
/// directory) and its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedFile {
    pub path: String,
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// Every file of a sealed version, by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Serialize, Deserialize)]
struct ManifestJson {
    format: String,
    files: Vec<ListedFile>,
}

impl Manifest {
    /// The canonical bytes: keys in a fixed order, files sorted by path,
    /// no whitespace. The digest is taken over exactly these bytes.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        let doc = ManifestJson {
            format: MANIFEST_FORMAT.to_string(),
            files: self.listing(""),
        };
        serde_json::to_vec(&doc).expect("a manifest always serializes")
    }

    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::of(&self.to_canonical_json())
    }

    /// Reads a stored manifest, checking that it is the one `expected`
    /// names: a manifest whose bytes do not hash to the digest the version
    /// records has been altered, and nothing it lists is served.
    pub fn from_stored(bytes: &[u8], expected: &Sha256Digest) -> Result<Self> {
        let actual = Sha256Digest::of(bytes);
        if &actual != expected {
            return Err(Error::Corrupt(format!(
                "the manifest stored for {expected} hashes to {actual}; the artifact store was altered outside modelwatch"
            )));
        }
        let doc: ManifestJson = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("manifest {expected} does not parse: {e}")))?;
        if doc.format != MANIFEST_FORMAT {
            return Err(Error::Corrupt(format!(
                "manifest {expected} has format {:?}; this release reads {MANIFEST_FORMAT:?}",
                doc.format
            )));
        }
        Ok(Self::from_listing(doc.files))
    }

    /// The manifest of listed files (a later file of the same path wins).
    pub fn from_listing(files: impl IntoIterator<Item = ListedFile>) -> Self {
        Self {
            files: files
                .into_iter()
                .map(|f| {
                    let entry = FileEntry {
                        size: f.size,
                        sha256: f.sha256,
                    };
                    (f.path, entry)
                })
                .collect(),
        }
    }

    /// Files under directory `dir` (`""`: all), with paths relative to it.
    pub fn listing(&self, dir: &str) -> Vec<ListedFile> {
        self.files
            .iter()
            .filter_map(|(path, e)| {
                let rel = if dir.is_empty() {
                    path.as_str()
                } else {
                    path.strip_prefix(dir)?.strip_prefix('/')?
                };
                Some(ListedFile {
                    path: rel.to_string(),
                    size: e.size,
                    sha256: e.sha256,
                })
            })
            .collect()
    }

    /// The manifest of the files under `dir`, with paths relative to it:
    /// what a version registered from a run's `model/` folder holds.
    pub fn subtree(&self, dir: &str) -> Manifest {
        Self::from_listing(self.listing(dir))
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|e| e.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(content: &[u8]) -> FileEntry {
        FileEntry {
            size: content.len() as u64,
            sha256: Sha256Digest::of(content),
        }
    }

    fn sample() -> Manifest {
        let mut m = Manifest::default();
        m.files.insert("model/model.pkl".into(), entry(b"weights"));
        m.files
            .insert("model/MLmodel".into(), entry(b"flavors: {}"));
        m.files.insert("README.md".into(), entry(b"# card"));
        m
    }

    #[test]
    fn the_digest_is_over_canonical_bytes_and_changes_with_any_file() {
        let m = sample();
        let bytes = m.to_canonical_json();
        assert_eq!(m.digest(), Sha256Digest::of(&bytes));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(r#"{"format":"modelwatch-artifacts-manifest/1","files":[{"path":"README.md","size":6,"sha256":"sha256:"#), "{text}");
        let mut changed = sample();
        changed
            .files
            .insert("model/model.pkl".into(), entry(b"weightz"));
        assert_ne!(changed.digest(), m.digest());
        let mut renamed = sample();
        let e = renamed.files.remove("README.md").unwrap();
        renamed.files.insert("README.txt".into(), e);
        assert_ne!(renamed.digest(), m.digest());
    }

    #[test]
    fn a_stored_manifest_round_trips_only_under_its_own_digest() {
        let m = sample();
        let bytes = m.to_canonical_json();
        assert_eq!(Manifest::from_stored(&bytes, &m.digest()).unwrap(), m);
        let other = Sha256Digest::of(b"something else");
        assert!(matches!(
            Manifest::from_stored(&bytes, &other),
            Err(Error::Corrupt(_))
        ));
        let garbage = b"{not json";
        assert!(matches!(
            Manifest::from_stored(garbage, &Sha256Digest::of(garbage)),
            Err(Error::Corrupt(_))
        ));
        let future = br#"{"format":"modelwatch-artifacts-manifest/9","files":[]}"#;
        assert!(matches!(
            Manifest::from_stored(future, &Sha256Digest::of(future)),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn listing_and_subtree_are_relative_to_the_directory() {
        let m = sample();
        let names = |l: Vec<ListedFile>| l.into_iter().map(|f| f.path).collect::<Vec<_>>();
        assert_eq!(names(m.listing("model")), ["MLmodel", "model.pkl"]);
        assert_eq!(names(m.listing("mod")), Vec::<String>::new());
        assert_eq!(m.listing("").len(), 3);
        let sub = m.subtree("model");
        assert_eq!(sub.files.len(), 2);
        assert_eq!(sub.total_bytes(), 7 + 11);
    }

    #[test]
    fn digests_parse_with_or_without_prefix_and_refuse_garbage() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(Sha256Digest::parse(&d.to_string()).unwrap(), d);
        assert_eq!(Sha256Digest::parse(&d.hex().to_uppercase()).unwrap(), d);
        for bad in ["", "sha256:", "sha256:zz", "md5:abc", &d.hex()[..63]] {
            assert!(Sha256Digest::parse(bad).is_err(), "{bad}");
        }
    }
}
