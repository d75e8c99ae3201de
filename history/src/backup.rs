//! What an online backup copies of a history directory, and in which
//! order, so that the copy holds every write acknowledged before it began
//! while the store keeps writing, persisting and compacting.
//!
//! 1. The WAL segments ([`wal_segments`]), first. A write is acknowledged
//!    after its record is fsynced, so every record acknowledged before the
//!    copy began is in them whole; the segment being appended to may end
//!    in a torn record, which replay truncates (the backup's cut point).
//!    A segment deleted meanwhile was covered by a manifest committed
//!    before its deletion, which step 2 reads.
//! 2. The manifest ([`manifest_snapshot`]), read once: its bytes are what
//!    the backup holds and its files are what it copies next. Its
//!    `persisted_seq` tells replay which WAL records the files already
//!    hold, so nothing is restored twice.
//! 3. The manifest's files. Compaction and retention delete a dropped file
//!    only [`crate::HistoryConfig::file_delete_grace`] after the manifest
//!    that drops it: a backup that takes longer than that may find one
//!    gone, and must be run again.
//!
//! It only names files; copying them is the caller's.

use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FILE, Manifest};

/// The WAL segments, as paths relative to the history directory, oldest
/// first.
pub fn wal_segments(dir: &Path) -> Result<Vec<String>> {
    let wal = dir.join(crate::store::WAL_DIR);
    let entries = match std::fs::read_dir(&wal) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list WAL segments", wal, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| format!("{}/{n}", crate::store::WAL_DIR))
        .collect())
}

/// The manifest as its file holds it now: its bytes (what a backup
/// stores, unchanged) and what they say. An empty store has none: `None`.
pub fn manifest_snapshot(dir: &Path) -> Result<Option<(Vec<u8>, Manifest)>> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read manifest", path, e)),
    };
    let manifest = Manifest::parse(path, &bytes)?;
    Ok(Some((bytes, manifest)))
}

/// The manifest's file name in a history directory.
pub const MANIFEST: &str = MANIFEST_FILE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_listed_oldest_first_and_a_missing_manifest_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(wal_segments(dir.path()).unwrap().is_empty());
        assert!(manifest_snapshot(dir.path()).unwrap().is_none());
        let wal = dir.path().join("wal");
        std::fs::create_dir(&wal).unwrap();
        for name in [
            "00000000000000000020.wal",
            "00000000000000000001.wal",
            "notes.txt",
        ] {
            std::fs::write(wal.join(name), b"x").unwrap();
        }
        assert_eq!(
            wal_segments(dir.path()).unwrap(),
            [
                "wal/00000000000000000001.wal",
                "wal/00000000000000000020.wal"
            ]
        );
        std::fs::write(dir.path().join(MANIFEST), b"{\"format_version\": 99}").unwrap();
        assert!(
            manifest_snapshot(dir.path()).is_err(),
            "a newer format is refused"
        );
    }
}
