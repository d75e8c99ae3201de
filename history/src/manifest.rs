//! The manifest: the list of persisted Parquet files, replaced atomically.
//!
//! `manifest.json` (format version 1):
//! ```json
//! { "format_version": 1, "generation": 7, "persisted_seq": 1234,
//!   "next_file_id": 42,
//!   "files": [ { "id": 41, "table": "samples",
//!                "path": "tables/samples/date=2026-11-27/hour=04/00000000000000000041.parquet",
//!                "partition_hour": 1795665600000000,
//!                "min_ts": 1795665600000000, "max_ts": 1795667000000000,
//!                "rows": 10000, "bytes": 52000, "min_seq": 1, "max_seq": 1234,
//!                "columns": { "model": { "min": "a", "max": "z", "values": ["a", "z"] } } } ] }
//! ```
//! Times are microseconds since the Unix epoch (UTC). `values` is absent when
//! a file holds more than [`MAX_INDEX_VALUES`] distinct values; `min`/`max`
//! are then used for pruning. Written as `manifest.json.tmp`, fsynced,
//! renamed over `manifest.json`, then the directory is fsynced.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::wal::sync_dir;

/// Current manifest format version.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
/// File name of the manifest inside the data directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Distinct values kept per index column and file before falling back to
/// min/max only.
pub const MAX_INDEX_VALUES: usize = 64;

/// Summary of one text column in one file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ColumnSummary {
    /// Smallest non-null value.
    pub min: Option<String>,
    /// Largest non-null value.
    pub max: Option<String>,
    /// Every distinct non-null value, when there are few.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeSet<String>>,
    /// Whether the column has nulls in this file.
    #[serde(default)]
    pub has_nulls: bool,
}

impl ColumnSummary {
    /// May this file hold a row whose column equals `v`?
    pub fn may_contain(&self, v: &str) -> bool {
        if let Some(values) = &self.values {
            return values.contains(v);
        }
        match (&self.min, &self.max) {
            (Some(min), Some(max)) => min.as_str() <= v && v <= max.as_str(),
            _ => false,
        }
    }
}

/// One persisted Parquet file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileMeta {
    /// Unique id, also the file name.
    pub id: u64,
    /// Owning table.
    pub table: String,
    /// Path relative to the data directory (and object store root).
    pub path: String,
    /// Start of the hour partition, micros since epoch.
    pub partition_hour: i64,
    /// Smallest `ts`, micros.
    pub min_ts: i64,
    /// Largest `ts`, micros.
    pub max_ts: i64,
    /// Row count.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Smallest WAL sequence number of the rows.
    pub min_seq: u64,
    /// Largest WAL sequence number of the rows.
    pub max_seq: u64,
    /// Summaries of the table's index columns.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSummary>,
}

/// The manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT_VERSION`].
    pub format_version: u32,
    /// Incremented on every commit.
    pub generation: u64,
    /// Every WAL record with a sequence number up to this one is in `files`.
    pub persisted_seq: u64,
    /// Next file id to allocate.
    pub next_file_id: u64,
    /// The files.
    pub files: Vec<FileMeta>,
    /// Keyed bulk loads committed within the retention
    /// (`HistoryConfig::load_record_retention`); absent in manifests
    /// written before bulk loads existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loads: Vec<crate::bulk::LoadRecord>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            format_version: MANIFEST_FORMAT_VERSION,
            generation: 0,
            persisted_seq: 0,
            next_file_id: 1,
            files: Vec::new(),
            loads: Vec::new(),
        }
    }
}

impl Manifest {
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Load the manifest, or an empty one when there is none yet.
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io("read manifest", path, e)),
        };
        Self::parse(path, &data)
    }

    /// A manifest from the bytes of the file at `path` (named in errors).
    pub(crate) fn parse(path: PathBuf, data: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let v: Version = serde_json::from_slice(data).map_err(|e| Error::ManifestCorrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if v.format_version != MANIFEST_FORMAT_VERSION {
            return Err(Error::ManifestCorrupt {
                path,
                detail: format!(
                    "format version {} is not supported (this build reads {MANIFEST_FORMAT_VERSION})",
                    v.format_version
                ),
            });
        }
        serde_json::from_slice(data).map_err(|e| Error::ManifestCorrupt {
            path,
            detail: e.to_string(),
        })
    }

    /// Write atomically: temp file, fsync, rename, directory fsync.
    pub(crate) fn store(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
        let data = serde_json::to_vec_pretty(self).map_err(|e| Error::ManifestCorrupt {
            path: path.clone(),
            detail: format!("cannot serialise: {e}"),
        })?;
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| Error::io("create manifest temp file", &tmp, e))?;
        f.write_all(&data)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io("write manifest temp file", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io("rename manifest into place", &path, e))?;
        sync_dir(dir)
    }

    /// Files of one table.
    pub fn table_files<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a FileMeta> + 'a {
        self.files.iter().filter(move |f| f.table == table)
    }
}
