//! What an online backup copies of an artifact store's directory, in an
//! order that keeps the copy whole while uploads and sealing go on: the
//! trees' pointers first, then the sealed manifests, then the blobs. A
//! pointer or a manifest is written only after the blobs it names, so
//! every pointer and manifest copied finds its blobs among those copied
//! after it. Uploads in flight (`staging/`, `uploads/`) and garbage
//! collection's state (`gc/`) are left out: an interrupted upload is
//! sent again, and marks start afresh.

use std::path::Path;

/// The directories copied, in order.
pub const BACKED_UP: [&str; 3] = ["trees", "manifests", "blobs"];

/// The files to copy, as `/`-separated paths relative to the store's
/// root, in [`BACKED_UP`]'s order (each directory's files sorted).
pub fn backup_order(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for dir in BACKED_UP {
        let mut files = Vec::new();
        walk(&root.join(dir), dir, &mut files)?;
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // Not created yet, or removed by a sweep meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = format!("{rel}/{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &path, out)?;
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_come_before_manifests_before_blobs_and_uploads_stay_out() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "blobs/sha256/ab/abcd",
            "manifests/sha256/cd/cdef",
            "trees/versions/fraud/1/1700/files/aa",
            "staging/tmp-1",
            "uploads/u.json",
            "gc/marks.json",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        assert_eq!(
            backup_order(dir.path()).unwrap(),
            [
                "trees/versions/fraud/1/1700/files/aa",
                "manifests/sha256/cd/cdef",
                "blobs/sha256/ab/abcd"
            ]
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(backup_order(empty.path()).unwrap().is_empty());
    }
}
