//! [`ArtifactStore`]: files in, verified; files out, verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result};
use crate::hashing::PipelinedSha256;
use crate::manifest::{FileEntry, ListedFile, Manifest, Sha256Digest};
use crate::path::{ArtifactPath, Tree};

/// Default largest file accepted in one upload: 64 GiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 30;
/// Parts of one upload in flight to the object store (bounds its memory).
const MAX_PARTS_IN_FLIGHT: usize = 4;
/// Bytes per read when serving a local blob.
const READ_CHUNK: usize = 1 << 20;

/// A stream of a stored file's bytes. The content is hashed as it goes;
/// a file whose bytes do not match its digest ends with an error instead
/// of its last chunk, so a client never receives a silently altered file
/// as complete.
pub type FileStream = BoxStream<'static, Result<Bytes>>;

/// Content-addressed file storage over an `object_store` (see the crate
/// doc for the layout). Cheap to clone.
#[derive(Clone)]
pub struct ArtifactStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The directory behind `store` when it is the local file system:
    /// files are fsynced there before an upload is acknowledged, and read
    /// in large chunks.
    pub(crate) local_root: Option<PathBuf>,
    max_file_bytes: u64,
    /// Resumable uploads being appended to (`crate::resumable`).
    pub(crate) uploads_busy: crate::resumable::Busy,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("store", &self.store.to_string())
            .field("max_file_bytes", &self.max_file_bytes)
            .finish()
    }
}

pub(crate) fn blob_key(d: &Sha256Digest) -> ObjectPath {
    let hex = d.hex();
    ObjectPath::from(format!("blobs/sha256/{}/{hex}", &hex[..2]))
}

pub(crate) fn manifest_key(d: &Sha256Digest) -> ObjectPath {
    let hex = d.hex();
    ObjectPath::from(format!("manifests/sha256/{}/{hex}", &hex[..2]))
}

/// A tree's pointer for one path: named by the path's hash so any valid
/// path (any length, any characters) is one flat object name.
fn pointer_key(tree: &Tree, path: &ArtifactPath) -> ObjectPath {
    let name = Sha256Digest::of(path.as_str().as_bytes()).hex();
    ObjectPath::from(format!("trees/{}/files/{name}", tree.key()))
}

/// A tree's marker that `dir` is a directory (some file lies under it), so
/// an upload can tell a file/directory clash without listing the tree.
fn directory_key(tree: &Tree, dir: &str) -> ObjectPath {
    let name = Sha256Digest::of(dir.as_bytes()).hex();
    ObjectPath::from(format!("trees/{}/dirs/{name}", tree.key()))
}

impl ArtifactStore {
    /// Opens (creating) the store in a local directory.
    pub fn open_local(dir: &Path, max_file_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let root = dir.canonicalize()?;
        // Folders left empty by a deletion go too (garbage collection
        // empties whole trees); writers recreate them as needed.
        let store = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            local_root: Some(root),
            max_file_bytes,
            uploads_busy: Default::default(),
        })
    }

    /// Over any object store (no fsync of its own: the store's PUT is the
    /// durability point).
    pub fn new(store: Arc<dyn ObjectStore>, max_file_bytes: u64) -> Self {
        Self {
            store,
            local_root: None,
            max_file_bytes,
            uploads_busy: Default::default(),
        }
    }

    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }

    /// Removes uploads a crash left in flight (nothing refers to them).
    pub async fn sweep_staging(&self) -> Result<usize> {
        let prefix = ObjectPath::from("staging");
        let mut listing = self.store.list(Some(&prefix));
        let mut removed = 0;
        while let Some(meta) = listing.next().await {
            self.store.delete(&meta?.location).await?;
            removed += 1;
        }
        if let Some(root) = &self.local_root {
            // A multipart upload killed mid-way leaves `<name>#<n>` part
            // files the listing does not show.
            let dir = root.join("staging");
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    if std::fs::remove_file(entry.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Stores one file of `tree` from a stream of its bytes. The content is
    /// hashed while it streams into a staging object; only when the whole
    /// body has arrived, is within the size limit and matches `expect` (if
    /// given) does it become a blob and the tree's entry for `path`. Any
    /// failure leaves the tree as it was.
    pub async fn put_file<S, E>(
        &self,
        tree: &Tree,
        path: &ArtifactPath,
        mut body: S,
        expect: Option<Sha256Digest>,
    ) -> Result<ListedFile>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        tree.validate()?;
        self.check_conflicts(tree, path).await?;

        let staging = ObjectPath::from(format!("staging/{:032x}", rand::random::<u128>()));
        let upload = self.store.put_multipart(&staging).await?;
        let mut writer = WriteMultipart::new(upload);
        let hasher = PipelinedSha256::new();
        let mut size: u64 = 0;
        let failure = loop {
            match body.next().await {
                None => break None,
                Some(Err(e)) => {
                    break Some(Error::Truncated {
                        path: path.to_string(),
                        cause: e.to_string(),
                    });
                }
                Some(Ok(chunk)) => {
                    size += chunk.len() as u64;
                    if size > self.max_file_bytes {
                        break Some(Error::TooLarge {
                            path: path.to_string(),
                            limit: self.max_file_bytes,
                        });
                    }
                    hasher.update(chunk.clone()).await;
                    writer.put(chunk);
                    if let Err(e) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                        break Some(e.into());
                    }
                }
            }
        };
        if let Some(e) = failure {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await?;
        let digest = hasher.finish().await?;
        if let Some(declared) = expect
            && declared != digest
        {
            let _ = self.store.delete(&staging).await;
            return Err(Error::DigestMismatch {
                what: format!("{path:?}"),
                declared: declared.to_string(),
                actual: digest.to_string(),
            });
        }
        self.sync_local(&staging).await?;
        self.commit_staged(tree, path, &staging, size, digest).await
    }

    /// A resumable upload's completed, verified file (`local` under the
    /// store's root) into `tree` as `path`.
    pub(crate) async fn commit_local_file(
        &self,
        tree: &Tree,
        path: &ArtifactPath,
        local: &Path,
        size: u64,
        digest: Sha256Digest,
    ) -> Result<ListedFile> {
        let root = self.local_root.as_ref().ok_or(Error::Unsupported(
            "resumable uploads need a local artifact store; send the file in one request",
        ))?;
        let relative = local
            .strip_prefix(root)
            .map_err(|_| Error::Corrupt(format!("{} is outside the store", local.display())))?;
        let key = ObjectPath::from(relative.to_string_lossy().as_ref());
        self.commit_staged(tree, path, &key, size, digest).await
    }

    /// The end of every upload: the fsynced, verified `staging` object
    /// becomes the blob of `digest`, then `tree`'s pointer for `path`.
    async fn commit_staged(
        &self,
        tree: &Tree,
        path: &ArtifactPath,
        staging: &ObjectPath,
        size: u64,
        digest: Sha256Digest,
    ) -> Result<ListedFile> {
        let staging = staging.clone();
        let blob = blob_key(&digest);
        // Renamed over the same content if it is stored already (an atomic
        // replace of identical bytes), rather than keeping the old file:
        // the blob's last-modified time is then this upload's, which is
        // what keeps garbage collection from deleting it before the
        // pointer below names it (see `gc`).
        if let Err(e) = self.store.rename(&staging, &blob).await {
            let _ = self.store.delete(&staging).await;
            return Err(e.into());
        }
        self.sync_local_dir(&blob).await?;
        let listed = ListedFile {
            path: path.to_string(),
            size,
            sha256: digest,
        };
        for dir in path.ancestors() {
            let marker = directory_key(tree, dir);
            self.store
                .put(&marker, PutPayload::from(dir.as_bytes().to_vec()))
                .await?;
        }
        let pointer = pointer_key(tree, path);
        let json = serde_json::to_vec(&listed).expect("a listed file always serializes");
        self.store.put(&pointer, PutPayload::from(json)).await?;
        self.sync_local(&pointer).await?;
        self.sync_local_dir(&pointer).await?;
        tracing::debug!(tree = %tree, path = %path, size, sha256 = %digest, "artifact stored");
        Ok(listed)
    }

    /// A file and a directory cannot share a name in one tree: later
    /// downloads into a file system would fail. Checked with a few direct
    /// reads (the path's directories, its own directory marker), never a
    /// listing, so pushing n files costs O(n).
    pub(crate) async fn check_conflicts(&self, tree: &Tree, path: &ArtifactPath) -> Result<()> {
        for dir in path.ancestors() {
            let dir_path = ArtifactPath::parse(dir)?;
            if self.tree_file(tree, &dir_path).await?.is_some() {
                return Err(Error::PathConflict {
                    path: path.to_string(),
                    existing: dir.to_string(),
                    kind: "file",
                    tree: tree.to_string(),
                });
            }
        }
        match self.store.head(&directory_key(tree, path.as_str())).await {
            Ok(_) => Err(Error::PathConflict {
                path: path.to_string(),
                existing: path.to_string(),
                kind: "directory",
                tree: tree.to_string(),
            }),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The files a tree holds now.
    pub async fn tree_manifest(&self, tree: &Tree) -> Result<Manifest> {
        tree.validate()?;
        let prefix = ObjectPath::from(format!("trees/{}/files", tree.key()));
        let mut listing = self.store.list(Some(&prefix));
        let mut manifest = Manifest::default();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let bytes = self.store.get(&meta.location).await?.bytes().await?;
            let f: ListedFile = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Corrupt(format!("pointer {} does not parse: {e}", meta.location))
            })?;
            manifest.files.insert(
                f.path,
                FileEntry {
                    size: f.size,
                    sha256: f.sha256,
                },
            );
        }
        Ok(manifest)
    }

    /// One file of a tree (its pointer read directly, without listing the tree).
    pub async fn tree_file(&self, tree: &Tree, path: &ArtifactPath) -> Result<Option<FileEntry>> {
        tree.validate()?;
        let bytes = match self.store.get(&pointer_key(tree, path)).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let f: ListedFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Corrupt(format!(
                "the pointer of {path} in {tree} does not parse: {e}"
            ))
        })?;
        if f.path != path.as_str() {
            return Err(Error::Corrupt(format!(
                "the pointer of {path} in {tree} names {:?}",
                f.path
            )));
        }
        Ok(Some(FileEntry {
            size: f.size,
            sha256: f.sha256,
        }))
    }

    /// Stores a manifest (immutable, named by its digest) and returns the
    /// digest: from then on the files it lists are what that digest
    /// serves, whatever happens to the tree they came from.
    pub async fn seal(&self, what: &str, manifest: &Manifest) -> Result<Sha256Digest> {
        if manifest.files.is_empty() {
            return Err(Error::NothingToSeal(what.to_string()));
        }
        for (path, entry) in &manifest.files {
            // Every blob must be there before the manifest names it.
            self.store
                .head(&blob_key(&entry.sha256))
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => Error::Corrupt(format!(
                        "{what} lists {path:?} ({}) but its content is not stored",
                        entry.sha256
                    )),
                    other => other.into(),
                })?;
        }
        let bytes = manifest.to_canonical_json();
        let digest = Sha256Digest::of(&bytes);
        let key = manifest_key(&digest);
        // Written even when the same manifest is stored already (an atomic
        // replace of identical bytes): its last-modified time is then this
        // seal's, so garbage collection, which may have found it
        // unreferenced, keeps it while the digest is being recorded.
        self.store.put(&key, PutPayload::from(bytes)).await?;
        self.sync_local(&key).await?;
        self.sync_local_dir(&key).await?;
        Ok(digest)
    }

    /// A sealed manifest, checked against its digest.
    pub async fn manifest(&self, digest: &Sha256Digest) -> Result<Manifest> {
        let bytes = match self.store.get(&manifest_key(digest)).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NotFound(format!("artifact manifest {digest}")));
            }
            Err(e) => return Err(e.into()),
        };
        Manifest::from_stored(&bytes, digest)
    }

    /// Whether `digest` names a manifest stored here.
    pub async fn has_manifest(&self, digest: &Sha256Digest) -> Result<bool> {
        match self.store.head(&manifest_key(digest)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of a stored file, verified against `entry` as they stream.
    pub async fn open(&self, entry: &FileEntry) -> Result<FileStream> {
        let key = blob_key(&entry.sha256);
        let raw: BoxStream<'static, Result<Bytes>> = match &self.local_root {
            Some(root) => {
                let file = tokio::fs::File::open(root.join(key.as_ref()))
                    .await
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => {
                            Error::Corrupt(format!("the content {} is not stored", entry.sha256))
                        }
                        _ => Error::Io(e),
                    })?;
                futures::stream::try_unfold(file, |mut file| async move {
                    let mut buf = BytesMut::with_capacity(READ_CHUNK);
                    let n = file.read_buf(&mut buf).await?;
                    Ok((n > 0).then(|| (buf.freeze(), file)))
                })
                .boxed()
            }
            None => self
                .store
                .get(&key)
                .await?
                .into_stream()
                .map(|r| r.map_err(Error::from))
                .boxed(),
        };
        Ok(verified(raw, *entry))
    }

    pub(crate) async fn sync_local(&self, key: &ObjectPath) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        fsync(root.join(key.as_ref())).await
    }

    /// Makes a rename or a new name in a directory durable.
    pub(crate) async fn sync_local_dir(&self, key: &ObjectPath) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        match root.join(key.as_ref()).parent() {
            Some(dir) => fsync(dir.to_path_buf()).await,
            None => Ok(()),
        }
    }
}

/// fsync of a file or a directory, off the async threads.
pub(crate) async fn fsync(path: PathBuf) -> Result<()> {
    tokio::task::spawn_blocking(move || std::fs::File::open(path)?.sync_all())
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    Ok(())
}

/// Hashes a file's bytes as they pass (on the hashing thread) and fails
/// the stream, instead of ending it, when they are not the content `entry`
/// names. The last chunk is held back until the digest is known: with a
/// `Content-Length` announced, a client that had received every byte would
/// otherwise take an altered file as complete before the error came.
fn verified(raw: BoxStream<'static, Result<Bytes>>, entry: FileEntry) -> FileStream {
    struct State {
        raw: BoxStream<'static, Result<Bytes>>,
        hasher: Option<PipelinedSha256>,
        held: Option<Bytes>,
        seen: u64,
    }
    let state = State {
        raw,
        hasher: Some(PipelinedSha256::new()),
        held: None,
        seen: 0,
    };
    futures::stream::unfold(state, move |mut s| async move {
        loop {
            let hasher = s.hasher.as_ref()?;
            match s.raw.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    s.seen += chunk.len() as u64;
                    if s.seen > entry.size {
                        s.hasher = None;
                        let e = Error::Corrupt(format!(
                            "stored content {} is longer than its {} bytes",
                            entry.sha256, entry.size
                        ));
                        return Some((Err(e), s));
                    }
                    hasher.update(chunk.clone()).await;
                    match s.held.replace(chunk) {
                        Some(previous) => return Some((Ok(previous), s)),
                        None => continue,
                    }
                }
                Some(Err(e)) => {
                    s.hasher = None;
                    return Some((Err(e), s));
                }
                None => {
                    let hasher = s.hasher.take()?;
                    let actual = match hasher.finish().await {
                        Ok(d) => d,
                        Err(e) => return Some((Err(e.into()), s)),
                    };
                    if s.seen == entry.size && actual == entry.sha256 {
                        return s.held.take().map(|last| (Ok(last), s));
                    }
                    let e = Error::Corrupt(format!(
                        "stored content {} reads back as {} bytes hashing to {actual}; restore it from a backup",
                        entry.sha256, s.seen
                    ));
                    return Some((Err(e), s));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{body, files_under, path as p, tree};

    async fn read_all(store: &ArtifactStore, e: &FileEntry) -> Result<Vec<u8>> {
        let mut s = store.open(e).await?;
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_file_streams_in_and_out_and_seals_into_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        let f = store
            .put_file(
                &tree(),
                &p("model/model.pkl"),
                body(&[b"wei", b"ghts"]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(f.size, 7);
        assert_eq!(f.sha256, Sha256Digest::of(b"weights"));
        let m = store.tree_manifest(&tree()).await.unwrap();
        assert_eq!(m.files.len(), 1);
        let direct = store
            .tree_file(&tree(), &p("model/model.pkl"))
            .await
            .unwrap();
        assert_eq!(direct, Some(m.files["model/model.pkl"]));
        assert_eq!(
            store.tree_file(&tree(), &p("model/nope")).await.unwrap(),
            None
        );
        let digest = store.seal("version 1", &m).await.unwrap();
        assert_eq!(digest, m.digest());
        let sealed = store.manifest(&digest).await.unwrap();
        let entry = sealed.files["model/model.pkl"];
        assert_eq!(read_all(&store, &entry).await.unwrap(), b"weights");
        // Later writes to the tree do not change what the digest serves.
        store
            .put_file(&tree(), &p("model/extra.txt"), body(&[b"x"]), None)
            .await
            .unwrap();
        assert_eq!(store.manifest(&digest).await.unwrap().files.len(), 1);
    }

    #[tokio::test]
    async fn a_declared_digest_that_does_not_match_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        let wrong = Sha256Digest::of(b"something else");
        let err = store
            .put_file(&tree(), &p("a.bin"), body(&[b"content"]), Some(wrong))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(err.status(), 400);
        assert!(store.tree_manifest(&tree()).await.unwrap().files.is_empty());
        assert!(
            files_under(dir.path()).is_empty(),
            "{:?}",
            files_under(dir.path())
        );
        let right = Sha256Digest::of(b"content");
        store
            .put_file(&tree(), &p("a.bin"), body(&[b"content"]), Some(right))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_truncated_or_oversized_upload_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 10).unwrap();
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"part")),
            Err(std::io::Error::other("connection reset")),
        ]);
        let err = store
            .put_file(&tree(), &p("a.bin"), broken, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        let err = store
            .put_file(&tree(), &p("a.bin"), body(&[b"0123456", b"789ab"]), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 10, .. }), "{err}");
        assert_eq!(err.status(), 413);
        assert!(store.tree_manifest(&tree()).await.unwrap().files.is_empty());
        assert!(
            files_under(dir.path()).is_empty(),
            "{:?}",
            files_under(dir.path())
        );
    }

    #[tokio::test]
    async fn a_file_and_a_directory_cannot_share_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        store
            .put_file(&tree(), &p("model"), body(&[b"x"]), None)
            .await
            .unwrap();
        let err = store
            .put_file(&tree(), &p("model/MLmodel"), body(&[b"y"]), None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 409, "{err}");
        let other = Tree::Run("r1".into());
        store
            .put_file(&other, &p("d/f"), body(&[b"y"]), None)
            .await
            .unwrap();
        let err = store
            .put_file(&other, &p("d"), body(&[b"z"]), None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 409, "{err}");
        // Overwriting the same path in an unsealed tree is allowed.
        store
            .put_file(&other, &p("d/f"), body(&[b"w"]), None)
            .await
            .unwrap();
        let m = store.tree_manifest(&other).await.unwrap();
        assert_eq!(m.files["d/f"].sha256, Sha256Digest::of(b"w"));
    }

    #[tokio::test]
    async fn altered_content_on_disk_fails_the_download_instead_of_ending_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        let f = store
            .put_file(&tree(), &p("w.bin"), body(&[b"original"]), None)
            .await
            .unwrap();
        let entry = FileEntry {
            size: f.size,
            sha256: f.sha256,
        };
        let blob = dir.path().join(blob_key(&f.sha256).as_ref());
        std::fs::write(&blob, b"tampered").unwrap();
        let err = read_all(&store, &entry).await.unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
        // Same length, other bytes: the error comes before the last byte,
        // so a client counting on Content-Length never sees it complete.
        std::fs::write(&blob, b"0riginal").unwrap();
        let mut stream = store.open(&entry).await.unwrap();
        let mut delivered = 0;
        let mut failed = false;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => delivered += c.len(),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed);
        assert!(
            (delivered as u64) < entry.size,
            "{delivered} bytes went out"
        );
        std::fs::write(&blob, b"original and more").unwrap();
        assert!(read_all(&store, &entry).await.is_err());
    }

    #[tokio::test]
    async fn identical_content_is_stored_once_and_staging_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        store
            .put_file(&tree(), &p("a"), body(&[b"same"]), None)
            .await
            .unwrap();
        store
            .put_file(&tree(), &p("b"), body(&[b"same"]), None)
            .await
            .unwrap();
        let blobs = files_under(&dir.path().join("blobs"));
        assert_eq!(blobs.len(), 1, "{blobs:?}");
        std::fs::create_dir_all(dir.path().join("staging")).unwrap();
        std::fs::write(dir.path().join("staging/abc#1"), b"half").unwrap();
        assert_eq!(store.sweep_staging().await.unwrap(), 1);
        assert!(files_under(&dir.path().join("staging")).is_empty());
    }

    #[tokio::test]
    async fn sealing_refuses_an_empty_tree_and_a_missing_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        let empty = store.tree_manifest(&tree()).await.unwrap();
        assert!(matches!(
            store.seal("version 1", &empty).await,
            Err(Error::NothingToSeal(_))
        ));
        let mut ghost = Manifest::default();
        ghost.files.insert(
            "x".into(),
            FileEntry {
                size: 1,
                sha256: Sha256Digest::of(b"never stored"),
            },
        );
        assert!(matches!(
            store.seal("version 1", &ghost).await,
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            store.manifest(&ghost.digest()).await,
            Err(Error::NotFound(_))
        ));
    }
}
