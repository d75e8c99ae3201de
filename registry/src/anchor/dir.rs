//! Anchor files in a directory: `anchor-<seq, 20 digits>.json`, one per
//! anchor, never overwritten.
//!
//! A new anchor is written to a hidden temporary file, fsynced, then
//! hard-linked to its name — a link fails rather than replace an existing
//! file — and the directory is fsynced, so an anchor is either whole under
//! its name or absent. The directory should be one the daemon's user can
//! add to but not rewrite (an append-only mount, `chattr +a`, a synced
//! WORM bucket): that is what makes a rewrite of the anchors themselves
//! impossible, which no file format can promise alone.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Anchor, AnchorError, ReadAnchor};

const PREFIX: &str = "anchor-";
const SUFFIX: &str = ".json";

/// The file name of the anchor of entry `seq`.
pub fn file_name(seq: i64) -> String {
    format!("{PREFIX}{seq:020}{SUFFIX}")
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AnchorError + 'a {
    move |source| AnchorError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `anchor` into `dir` (created if missing) and returns its path.
/// An existing file for the same entry is left alone: identical content
/// (another daemon anchored the same entry) is success, different content
/// is [`AnchorError::Conflict`].
pub fn write(dir: &Path, anchor: &Anchor) -> Result<PathBuf, AnchorError> {
    std::fs::create_dir_all(dir).map_err(io("create the anchor directory", dir))?;
    let path = dir.join(file_name(anchor.seq));
    let mut text = serde_json::to_string_pretty(anchor).unwrap_or_default();
    text.push('\n');
    if path.exists() {
        return same_or_conflict(&path, anchor);
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name(anchor.seq),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                same_or_conflict(&path, anchor).map(|_| ())
            }
            Err(e) => Err(io("link the anchor to", &path)(e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    written?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))?;
    Ok(path)
}

fn same_or_conflict(path: &Path, anchor: &Anchor) -> Result<PathBuf, AnchorError> {
    match read_one(path) {
        Ok(existing) if existing == *anchor => Ok(path.to_path_buf()),
        _ => Err(AnchorError::Conflict {
            path: path.to_path_buf(),
            seq: anchor.seq,
        }),
    }
}

fn read_one(path: &Path) -> Result<Anchor, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| format!("not an anchor's JSON: {e}"))
}

/// The anchor file names in `dir`, oldest entry first. A missing
/// directory holds none.
fn names(dir: &Path) -> Result<Vec<String>, AnchorError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read the anchor directory", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("read the anchor directory", dir))?;
        if let Some(name) = entry.file_name().to_str()
            && name.starts_with(PREFIX)
            && name.ends_with(SUFFIX)
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Every anchor file in `dir`, each as read (a file that is not a valid
/// anchor is kept with the reason, for the check to report).
pub fn read_all(dir: &Path) -> Result<Vec<ReadAnchor>, AnchorError> {
    Ok(names(dir)?
        .into_iter()
        .map(|name| {
            let read = read_one(&dir.join(&name));
            (name, read)
        })
        .collect())
}

/// The newest anchor in `dir` (highest entry), if any; `Err` in the inner
/// result when that file is not a valid anchor.
pub fn newest(dir: &Path) -> Result<Option<ReadAnchor>, AnchorError> {
    Ok(names(dir)?.pop().map(|name| {
        let read = read_one(&dir.join(&name));
        (name, read)
    }))
}
