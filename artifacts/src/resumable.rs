//! Resumable uploads: a large file sent in chunks over several requests,
//! surviving a broken connection or a restarted daemon.
//!
//! An upload is begun with the file's path, its size and (optionally) its
//! declared sha256; chunks are appended at the offset the store reports,
//! each one fsynced (and the offset recorded) before it is acknowledged;
//! when the last byte arrives the file is hashed, checked and committed
//! into its tree exactly as a one-request upload is. Until then nothing is
//! visible in the tree.
//!
//! What it must not do: decide who may upload where (the server checks the
//! version is open and the caller's role) or keep state in memory that a
//! restart would lose: the session is its two files.
//!
//! On disk (local stores only; an object store would use its own
//! multipart upload):
//! ```text
//! uploads/<id>.json    the session: {"format":"modelwatch-artifacts-upload/1",
//!                      "tree":…, "path":…, "size":…, "sha256":…|null, "created_at":<unix s>}
//! uploads/<id>.offset  bytes acknowledged so far (decimal), replaced atomically
//! uploads/<id>.data    the bytes; anything past the recorded offset (a chunk
//!                      cut by a crash) is cut off before the next append
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::manifest::{ListedFile, Sha256Digest};
use crate::path::{ArtifactPath, Tree};
use crate::store::{ArtifactStore, fsync};

const SESSION_FORMAT: &str = "modelwatch-artifacts-upload/1";
/// Bytes per read when hashing a completed upload.
const HASH_CHUNK: usize = 1 << 20;

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    pub id: String,
    pub tree: Tree,
    pub path: ArtifactPath,
    /// The file's whole size, announced when the upload began.
    pub size: u64,
    /// The digest the client declared, checked when the last byte arrives.
    pub sha256: Option<Sha256Digest>,
    /// Bytes received and acknowledged so far: where the next chunk starts.
    pub offset: u64,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Serialize, Deserialize)]
struct SessionFile {
    format: String,
    tree: Tree,
    path: ArtifactPath,
    size: u64,
    sha256: Option<Sha256Digest>,
    created_at: i64,
}

/// What one append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// More bytes are expected; the session as it is now.
    Partial(UploadSession),
    /// The last byte arrived: the file, verified and in its tree.
    Complete(ListedFile),
}

/// Uploads being appended to right now, so two requests never write one
/// upload at once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Busy(Arc<Mutex<HashSet<String>>>);

struct BusyGuard {
    busy: Busy,
    id: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.busy.0.lock() {
            set.remove(&self.id);
        }
    }
}

impl Busy {
    fn claim(&self, id: &str) -> Result<BusyGuard> {
        let mut set = self
            .0
            .lock()
            .map_err(|_| Error::Corrupt("the upload lock was poisoned".into()))?;
        if !set.insert(id.to_string()) {
            return Err(Error::UploadBusy(id.to_string()));
        }
        Ok(BusyGuard {
            busy: self.clone(),
            id: id.to_string(),
        })
    }
}

/// Upload ids are 32 lowercase hex digits: anything else is not one (and
/// never reaches the file system).
fn check_id(id: &str) -> Result<()> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(Error::UploadNotFound(id.to_string()))
    }
}

impl ArtifactStore {
    fn uploads_dir(&self) -> Result<PathBuf> {
        self.local_root
            .as_ref()
            .map(|root| root.join("uploads"))
            .ok_or(Error::Unsupported(
                "resumable uploads need a local artifact store; send the file in one request",
            ))
    }

    /// Begins an upload of `size` bytes to `path` in `tree`. Nothing is
    /// visible in the tree until the last byte has arrived and verified.
    pub async fn begin_upload(
        &self,
        tree: &Tree,
        path: &ArtifactPath,
        size: u64,
        sha256: Option<Sha256Digest>,
        now_unix: i64,
    ) -> Result<UploadSession> {
        tree.validate()?;
        if size > self.max_file_bytes() {
            return Err(Error::TooLarge {
                path: path.to_string(),
                limit: self.max_file_bytes(),
            });
        }
        self.check_conflicts(tree, path).await?;
        let dir = self.uploads_dir()?;
        tokio::fs::create_dir_all(&dir).await?;
        let id = format!("{:032x}", rand::random::<u128>());
        let session = SessionFile {
            format: SESSION_FORMAT.into(),
            tree: tree.clone(),
            path: path.clone(),
            size,
            sha256,
            created_at: now_unix,
        };
        let json = serde_json::to_vec(&session).expect("a session always serializes");
        // The data file first: a session file always has its data beside it.
        create_synced(&dir.join(format!("{id}.data")), b"").await?;
        write_atomically(&dir, &format!("{id}.offset"), b"0").await?;
        write_atomically(&dir, &format!("{id}.json"), &json).await?;
        tracing::info!(upload = %id, tree = %tree, path = %path, size, "resumable upload begun");
        Ok(UploadSession {
            id,
            tree: session.tree,
            path: session.path,
            size,
            sha256,
            offset: 0,
            created_at: now_unix,
        })
    }

    /// An upload in progress, with its offset.
    pub async fn upload_session(&self, id: &str) -> Result<UploadSession> {
        check_id(id)?;
        let dir = self.uploads_dir()?;
        let raw = match tokio::fs::read(dir.join(format!("{id}.json"))).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::UploadNotFound(id.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let s: SessionFile = serde_json::from_slice(&raw)
            .map_err(|e| Error::Corrupt(format!("upload session {id} does not parse: {e}")))?;
        if s.format != SESSION_FORMAT {
            return Err(Error::Corrupt(format!(
                "upload session {id} has format {:?}, not {SESSION_FORMAT}",
                s.format
            )));
        }
        let offset_text = tokio::fs::read_to_string(dir.join(format!("{id}.offset"))).await?;
        let offset: u64 = offset_text.trim().parse().map_err(|_| {
            Error::Corrupt(format!(
                "upload {id}'s offset {offset_text:?} is not a number"
            ))
        })?;
        Ok(UploadSession {
            id: id.to_string(),
            tree: s.tree,
            path: s.path,
            size: s.size,
            sha256: s.sha256,
            offset,
            created_at: s.created_at,
        })
    }

    /// Appends the bytes of `body` at `offset`, which must be the session's
    /// offset (else nothing is written and the error says where to resume).
    /// Bytes that arrived before a body broke off are kept and acknowledged
    /// by the offset the next `upload_session` reports. When the last byte
    /// arrives, the file is hashed, checked against the declared digest and
    /// committed into its tree; on a mismatch the upload is discarded.
    pub async fn append_upload<S, E>(&self, id: &str, offset: u64, mut body: S) -> Result<Appended>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let _guard = self.uploads_busy.claim(id)?;
        let session = self.upload_session(id).await?;
        if offset != session.offset {
            return Err(Error::OffsetMismatch {
                id: id.to_string(),
                expected: session.offset,
                got: offset,
            });
        }
        let dir = self.uploads_dir()?;
        let data_path = dir.join(format!("{id}.data"));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&data_path)
            .await?;
        // Bytes past the acknowledged offset are from a chunk a crash cut.
        file.set_len(session.offset).await?;
        file.seek(std::io::SeekFrom::Start(session.offset)).await?;
        let mut written = session.offset;
        let mut broke_off = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    broke_off = Some(e.to_string());
                    break;
                }
            };
            if written + chunk.len() as u64 > session.size {
                // Nothing of this request is acknowledged: the client sent
                // more than it announced, so its idea of the file is wrong.
                file.set_len(session.offset).await?;
                return Err(Error::UploadOverrun {
                    id: id.to_string(),
                    size: session.size,
                });
            }
            file.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        file.sync_all().await?;
        // A completed upload is renamed into a blob: its time must be that
        // of this request, not of its first bytes, or a garbage-collection
        // sweep could take a blob whose bytes came in long ago for
        // unreferenced before the pointer below names it.
        file.into_std()
            .await
            .set_modified(std::time::SystemTime::now())?;
        write_atomically(
            &dir,
            &format!("{id}.offset"),
            written.to_string().as_bytes(),
        )
        .await?;
        if let Some(cause) = broke_off {
            tracing::info!(upload = %id, offset = written, %cause, "resumable upload chunk broke off; resume from the offset");
            return Err(Error::ChunkBrokeOff {
                id: id.to_string(),
                offset: written,
                cause,
            });
        }
        if written < session.size {
            return Ok(Appended::Partial(UploadSession {
                offset: written,
                ..session
            }));
        }
        let digest = hash_file(&data_path).await?;
        if let Some(declared) = session.sha256
            && declared != digest
        {
            self.remove_session(id).await?;
            return Err(Error::DigestMismatch {
                what: format!("{:?} (resumable upload {id})", session.path.as_str()),
                declared: declared.to_string(),
                actual: digest.to_string(),
            });
        }
        // A file or directory may have taken the path while the chunks came.
        self.check_conflicts(&session.tree, &session.path).await?;
        let listed = self
            .commit_local_file(
                &session.tree,
                &session.path,
                &data_path,
                session.size,
                digest,
            )
            .await?;
        self.remove_session(id).await?;
        tracing::info!(upload = %id, tree = %session.tree, path = %session.path, size = session.size, sha256 = %digest, "resumable upload complete");
        Ok(Appended::Complete(listed))
    }

    /// Aborts an upload, forgetting it and its bytes; refused while a
    /// chunk is being appended to it (that request would write on).
    pub async fn discard_upload(&self, id: &str) -> Result<()> {
        let _guard = self.uploads_busy.claim(id)?;
        self.upload_session(id).await?;
        self.remove_session(id).await
    }

    /// Removes an upload's files; the caller holds its busy claim.
    async fn remove_session(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let dir = self.uploads_dir()?;
        // The session file last gone: a session never lacks its data.
        for suffix in ["json", "offset", "data"] {
            match tokio::fs::remove_file(dir.join(format!("{id}.{suffix}"))).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Discards uploads begun before `before_unix` (abandoned ones);
    /// returns how many.
    pub async fn expire_uploads(&self, before_unix: i64) -> Result<usize> {
        let Ok(dir) = self.uploads_dir() else {
            return Ok(0);
        };
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut ids = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                ids.push(id.to_string());
            }
        }
        let mut expired = 0;
        for id in ids {
            // One being appended to right now is not abandoned.
            let Ok(_guard) = self.uploads_busy.claim(&id) else {
                continue;
            };
            match self.upload_session(&id).await {
                Ok(s) if s.created_at < before_unix => {
                    self.remove_session(&id).await?;
                    expired += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(upload = %id, error = %e, "unreadable upload session left alone")
                }
            }
        }
        Ok(expired)
    }
}

async fn hash_file(path: &Path) -> Result<Sha256Digest> {
    let path = path.to_path_buf();
    // Read and hashed on a blocking thread: a multi-GB file would
    // otherwise hold an async worker for seconds.
    tokio::task::spawn_blocking(move || -> Result<Sha256Digest> {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; HASH_CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Sha256Digest(hasher.finalize().into()))
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

async fn create_synced(path: &Path, content: &[u8]) -> Result<()> {
    let mut f = tokio::fs::File::create(path).await?;
    f.write_all(content).await?;
    f.sync_all().await?;
    Ok(())
}

/// Writes `name` in `dir` through a temporary file and a rename, fsyncing
/// the file and the directory: a reader sees the old content or the new.
async fn write_atomically(dir: &Path, name: &str, content: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    create_synced(&tmp, content).await?;
    tokio::fs::rename(&tmp, dir.join(name)).await?;
    fsync(dir.to_path_buf()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{body, path, tree};

    #[tokio::test]
    async fn an_upload_resumes_across_a_restart_and_commits_when_whole() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"0123456789abcdef".to_vec();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        let begun = store
            .begin_upload(
                &tree(),
                &path("model/weights.bin"),
                16,
                Some(Sha256Digest::of(&content)),
                100,
            )
            .await
            .unwrap();
        let Appended::Partial(s) = store
            .append_upload(&begun.id, 0, body(&[&content[..4], &content[4..6]]))
            .await
            .unwrap()
        else {
            panic!("not complete yet")
        };
        assert_eq!(s.offset, 6);
        assert!(
            store
                .tree_file(&tree(), &path("model/weights.bin"))
                .await
                .unwrap()
                .is_none()
        );

        // A restarted daemon: a new store over the same directory, and a
        // chunk a crash cut after the offset was recorded.
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        let data = dir.path().join(format!("uploads/{}.data", begun.id));
        let mut raw = std::fs::read(&data).unwrap();
        raw.extend_from_slice(b"GARBAGE");
        std::fs::write(&data, raw).unwrap();
        let again = store.upload_session(&begun.id).await.unwrap();
        assert_eq!(again.offset, 6);
        assert_eq!(again.path, path("model/weights.bin"));
        assert!(matches!(
            store.append_upload(&begun.id, 4, body(&[b"x"])).await,
            Err(Error::OffsetMismatch {
                expected: 6,
                got: 4,
                ..
            })
        ));
        let done = store
            .append_upload(&begun.id, 6, body(&[&content[6..]]))
            .await
            .unwrap();
        let Appended::Complete(file) = done else {
            panic!("complete")
        };
        assert_eq!(file.sha256, Sha256Digest::of(&content));
        let entry = store
            .tree_file(&tree(), &path("model/weights.bin"))
            .await
            .unwrap()
            .unwrap();
        let served: Vec<Bytes> =
            futures::TryStreamExt::try_collect(store.open(&entry).await.unwrap())
                .await
                .unwrap();
        assert_eq!(served.concat(), content);
        assert!(matches!(
            store.upload_session(&begun.id).await,
            Err(Error::UploadNotFound(_))
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn bad_uploads_keep_nothing_in_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 64).unwrap();
        let p = path("a.bin");
        // Larger than the limit: refused before anything is written.
        assert!(matches!(
            store.begin_upload(&tree(), &p, 65, None, 0).await,
            Err(Error::TooLarge { .. })
        ));
        // A digest that does not match: the whole upload is discarded.
        let s = store
            .begin_upload(&tree(), &p, 3, Some(Sha256Digest::of(b"abc")), 0)
            .await
            .unwrap();
        assert!(matches!(
            store.append_upload(&s.id, 0, body(&[b"abd"])).await,
            Err(Error::DigestMismatch { .. })
        ));
        assert!(matches!(
            store.upload_session(&s.id).await,
            Err(Error::UploadNotFound(_))
        ));
        // More than announced: nothing of that request is kept.
        let s = store.begin_upload(&tree(), &p, 3, None, 0).await.unwrap();
        store.append_upload(&s.id, 0, body(&[b"a"])).await.unwrap();
        assert!(matches!(
            store.append_upload(&s.id, 1, body(&[b"bcd"])).await,
            Err(Error::UploadOverrun { .. })
        ));
        assert_eq!(store.upload_session(&s.id).await.unwrap().offset, 1);
        // A body that breaks off keeps what arrived.
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"b")),
            Err("connection reset".to_string()),
        ]);
        assert!(matches!(
            store.append_upload(&s.id, 1, broken).await,
            Err(Error::ChunkBrokeOff { offset: 2, .. })
        ));
        assert!(store.tree_file(&tree(), &p).await.unwrap().is_none());
        // Ids that are not ids never reach the file system.
        for bad in ["../../etc/passwd", "", "ABCDEF", &"0".repeat(33)] {
            assert!(matches!(
                store.upload_session(bad).await,
                Err(Error::UploadNotFound(_))
            ));
        }
        // An abort waits for no append: while one runs it is refused.
        let guard = store.uploads_busy.claim(&s.id).unwrap();
        assert!(matches!(
            store.discard_upload(&s.id).await,
            Err(Error::UploadBusy(_))
        ));
        assert_eq!(
            store.expire_uploads(1).await.unwrap(),
            0,
            "busy: not abandoned"
        );
        drop(guard);
        // Abandoned uploads expire.
        assert_eq!(store.expire_uploads(1).await.unwrap(), 1);
        assert!(matches!(
            store.upload_session(&s.id).await,
            Err(Error::UploadNotFound(_))
        ));
    }
}
