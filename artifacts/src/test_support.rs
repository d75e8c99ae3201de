//! What the crate's unit tests share: bodies made of chunks, files on
//! disk. Test code only.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::path::{ArtifactPath, Tree};

/// A version's tree.
pub fn tree() -> Tree {
    Tree::Version {
        model: "fraud".into(),
        version: 1,
        created: 1_700_000_000_000_000,
    }
}

/// A valid path.
pub fn path(p: &str) -> ArtifactPath {
    ArtifactPath::parse(p).unwrap()
}

pub type Chunk = std::result::Result<Bytes, std::io::Error>;

/// An upload body of the given chunks.
pub fn body(parts: &[&[u8]]) -> impl futures::Stream<Item = Chunk> + Unpin + Send + use<> {
    let owned: Vec<Chunk> = parts
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    futures::stream::iter(owned)
}

/// Every file under `dir`, recursively, sorted (none when it is missing).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}
