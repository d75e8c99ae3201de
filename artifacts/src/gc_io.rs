//! The store's side of garbage collection: list what is stored, read what
//! the plan needs (the pointers of kept trees, the manifests versions
//! record), carry a plan out, keep the marks in `gc/marks.json`. Which
//! objects go is decided by [`crate::gc::plan`], without I/O.
//!
//! What it must not do: delete anything the plan does not name, or a blob
//! or manifest whose last-modified time is no longer older than the grace
//! period when its turn comes (an upload or a seal of the same content
//! renamed it in again since the listing).
//!
//! On a local directory, a blob or manifest is first **moved aside** into
//! `gc/quarantine/`, its time is read there, and only then is it deleted
//! or, if it turns out to be fresh, put back. The move is atomic and takes
//! whatever file holds the name at that instant, so an upload that renames
//! the same content in at any moment is never lost: before the move, the
//! moved file is the fresh one and goes back; after it, the name holds the
//! fresh one and the old file is deleted. A crash in between leaves the
//! file in `gc/quarantine/`, put back by [`ArtifactStore::recover_quarantine`]
//! at the next start or sweep. Over other object stores (no atomic move
//! exists there) the time is checked with a `HEAD` just before the delete.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use crate::error::{Error, Result};
use crate::gc::{
    self, Counts, GcObject, LiveSet, LiveVersion, Marks, Plan, Snapshot, StoredManifest,
    StoredObject, StoredTree, TreeKey, TreeObject,
};
use crate::manifest::{ListedFile, Sha256Digest};
use crate::store::{ArtifactStore, blob_key, manifest_key};

/// Where the marks are kept.
pub const MARKS_KEY: &str = "gc/marks.json";
/// Where a blob or manifest waits, moved aside, while its time is checked.
const QUARANTINE_DIR: &str = "gc/quarantine";
/// Pointers read at once while taking the snapshot.
const CONCURRENT_READS: usize = 16;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Versions the registry holds.
    pub live_versions: usize,
    /// Objects deleted, by kind.
    pub deleted: Counts,
    /// Bytes of the deleted objects.
    pub bytes_freed: u64,
    /// Deletions planned but not carried out: the object was modified
    /// again since the listing, or the sweep was told to stop.
    pub skipped: usize,
    /// Unreferenced objects left waiting out their grace period, by kind.
    pub waiting: Counts,
    /// Objects a previous, interrupted sweep had moved aside, put back.
    pub restored: usize,
    /// Whether the sweep stopped before the end of its plan.
    pub stopped: bool,
    /// Deletions that failed (each logged; the sweep carries on, and the
    /// next one tries again).
    pub failed: usize,
}

/// What the listing found, before the registry is read.
#[derive(Debug, Default)]
pub struct GcListing {
    blobs: BTreeMap<Sha256Digest, StoredObject>,
    manifests: BTreeMap<Sha256Digest, StoredObject>,
    trees: BTreeMap<TreeKey, TreeListing>,
}

#[derive(Debug)]
struct TreeListing {
    pointers: Vec<ObjectPath>,
    objects: usize,
    bytes: u64,
    last_modified: DateTime<Utc>,
}

/// What became of one planned deletion.
enum Deletion {
    Deleted(u64),
    /// Modified since the cut-off: kept.
    Fresh,
    /// Not there any more.
    Gone,
}

/// `<kind>-<hex>`: the name of an object moved aside.
fn quarantine_name(object: &GcObject) -> Option<String> {
    match object {
        GcObject::Blob(d) => Some(format!("blob-{}", d.hex())),
        GcObject::Manifest(d) => Some(format!("manifest-{}", d.hex())),
        GcObject::Tree(_) => None,
    }
}

/// Where an object moved aside belongs.
fn quarantined_origin(name: &str) -> Option<ObjectPath> {
    let (kind, hex) = name.split_once('-')?;
    let digest = Sha256Digest::parse(hex).ok()?;
    match kind {
        "blob" => Some(blob_key(&digest)),
        "manifest" => Some(manifest_key(&digest)),
        _ => None,
    }
}

/// A digest named by the last segment of `blobs/sha256/<2>/<64>` (or
/// `manifests/…`), checked against its folder.
fn digest_of(location: &ObjectPath) -> Option<Sha256Digest> {
    let parts: Vec<&str> = location.as_ref().split('/').collect();
    match parts.as_slice() {
        [_, "sha256", dir, name] if name.len() == 64 && name.starts_with(dir) => {
            Sha256Digest::parse(name).ok()
        }
        _ => None,
    }
}

/// Puts a file moved aside back under its name, unless the name holds a
/// file again (the same content, stored since). The link is made durable
/// before the aside copy goes.
fn restore(aside: &Path, origin: &Path) -> std::io::Result<()> {
    for _ in 0..3 {
        match std::fs::hard_link(aside, origin) {
            Ok(()) => {
                if let Some(dir) = origin.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                return std::fs::remove_file(aside);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return std::fs::remove_file(aside);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && aside.exists() => {
                if let Some(dir) = origin.parent() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "cannot put {} back as {}",
        aside.display(),
        origin.display()
    )))
}

impl ArtifactStore {
    /// One garbage-collection sweep: lists the store, then asks `live` for
    /// the versions that exist (read after the listing, so anything listed
    /// that no version names had lost its version before the read), reads
    /// what the plan needs, plans with the marks of the last sweep and
    /// carries the plan out while `go_on` says so. `now` is the sweep's
    /// time: an object modified after `now - grace` is kept.
    pub async fn collect_garbage<E, F, Fut>(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        live: F,
        go_on: &(dyn Fn() -> bool + Send + Sync),
    ) -> std::result::Result<GcReport, E>
    where
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Vec<LiveVersion>, E>>,
    {
        let restored = self.recover_quarantine().await?;
        let listing = self.gc_list().await?;
        let versions = live().await?;
        let set = LiveSet::new(&versions);
        let snapshot = self.gc_read(listing, &set).await?;
        let previous = self.gc_marks().await?;
        let plan = gc::plan(&snapshot, &versions, &previous, now, grace)?;
        let cutoff = now - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let mut report = self.carry_out(plan, cutoff, go_on).await?;
        report.restored = restored;
        report.live_versions = set.versions();
        Ok(report)
    }

    /// Puts back what an interrupted sweep had moved aside (the next sweep
    /// decides about it again). Returns how many.
    pub async fn recover_quarantine(&self) -> Result<usize> {
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        let restored = tokio::task::spawn_blocking(move || -> Result<usize> {
            let dir = root.join(QUARANTINE_DIR);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e.into()),
            };
            let mut restored = 0;
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(origin) = quarantined_origin(&name) else {
                    tracing::warn!(file = %entry.path().display(), "unknown file in the artifact store's gc/quarantine; left alone");
                    continue;
                };
                restore(&entry.path(), &root.join(origin.as_ref()))?;
                restored += 1;
            }
            Ok(restored)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        if restored > 0 {
            tracing::warn!(
                restored,
                "put back artifact files an interrupted garbage collection had moved aside"
            );
        }
        Ok(restored)
    }

    /// Lists blobs, manifests and trees with their sizes and times.
    pub async fn gc_list(&self) -> Result<GcListing> {
        let mut listing = GcListing::default();
        for (prefix, is_blob) in [("blobs/sha256", true), ("manifests/sha256", false)] {
            let mut objects = self.store.list(Some(&ObjectPath::from(prefix)));
            while let Some(meta) = objects.next().await {
                let meta = meta?;
                // What it cannot name, it leaves alone.
                let Some(digest) = digest_of(&meta.location) else {
                    continue;
                };
                let object = StoredObject {
                    size: meta.size,
                    last_modified: meta.last_modified,
                };
                if is_blob {
                    listing.blobs.insert(digest, object);
                } else {
                    listing.manifests.insert(digest, object);
                }
            }
        }
        let mut objects = self.store.list(Some(&ObjectPath::from("trees")));
        while let Some(meta) = objects.next().await {
            let meta = meta?;
            let Some((key, kind)) = TreeKey::of_object(meta.location.as_ref()) else {
                continue;
            };
            let tree = listing.trees.entry(key).or_insert_with(|| TreeListing {
                pointers: Vec::new(),
                objects: 0,
                bytes: 0,
                last_modified: meta.last_modified,
            });
            tree.objects += 1;
            tree.bytes += meta.size;
            tree.last_modified = tree.last_modified.max(meta.last_modified);
            if kind == TreeObject::Pointer {
                tree.pointers.push(meta.location);
            }
        }
        Ok(listing)
    }

    /// Reads what the plan needs of the listing: the blobs named by the
    /// pointers of every kept tree and listed by every manifest a version
    /// records.
    pub async fn gc_read(&self, listing: GcListing, live: &LiveSet) -> Result<Snapshot> {
        let mut snapshot = Snapshot {
            blobs: listing.blobs,
            ..Snapshot::default()
        };
        for (digest, object) in listing.manifests {
            let blobs = if live.names_manifest(&digest) {
                match self.manifest(&digest).await {
                    Ok(m) => Some(m.files.values().map(|e| e.sha256).collect()),
                    Err(Error::NotFound(_)) => continue,
                    Err(e) => {
                        return Err(Error::GcUnsafe(format!(
                            "manifest {digest}, which a version records, cannot be read ({e}); restore it from a backup (until then nothing is collected)"
                        )));
                    }
                }
            } else {
                None
            };
            snapshot
                .manifests
                .insert(digest, StoredManifest { object, blobs });
        }
        for (key, tree) in listing.trees {
            let blobs = if live.keeps_tree(&key) {
                Some(self.pointed_blobs(&key, tree.pointers).await?)
            } else {
                None
            };
            snapshot.trees.insert(
                key,
                StoredTree {
                    objects: tree.objects,
                    bytes: tree.bytes,
                    last_modified: tree.last_modified,
                    blobs,
                },
            );
        }
        Ok(snapshot)
    }

    /// The blobs a tree's pointers name.
    async fn pointed_blobs(
        &self,
        tree: &TreeKey,
        pointers: Vec<ObjectPath>,
    ) -> Result<BTreeSet<Sha256Digest>> {
        let read = stream::iter(pointers)
            .map(|location| async move {
                let bytes = match self.store.get(&location).await {
                    Ok(r) => r.bytes().await?,
                    // Only a sweep deletes pointers; gone is nothing to keep.
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(Error::from(e)),
                };
                let file: ListedFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::GcUnsafe(format!(
                        "pointer {location} of {tree} does not parse ({e}), so the blob it needs is unknown; remove or repair it"
                    ))
                })?;
                Ok(Some(file.sha256))
            })
            .buffer_unordered(CONCURRENT_READS);
        read.try_filter_map(|d| async move { Ok(d) })
            .try_collect()
            .await
    }

    /// The marks the last sweep left. A missing file is no marks; one that
    /// cannot be read is no marks too, with a warning: that only restarts
    /// the grace periods, it never deletes sooner.
    pub async fn gc_marks(&self) -> Result<Marks> {
        let bytes = match self.store.get(&ObjectPath::from(MARKS_KEY)).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(Marks::default()),
            Err(e) => return Err(e.into()),
        };
        match Marks::from_json(&bytes) {
            Ok(marks) => Ok(marks),
            Err(e) => {
                tracing::warn!(error = %e, "starting the artifact garbage collection's marks afresh");
                Ok(Marks::default())
            }
        }
    }

    /// Stores the marks (replaced atomically, then fsynced).
    pub async fn save_gc_marks(&self, marks: &Marks) -> Result<()> {
        let key = ObjectPath::from(MARKS_KEY);
        self.store
            .put(&key, PutPayload::from(marks.to_json()))
            .await?;
        self.sync_local(&key).await?;
        self.sync_local_dir(&key).await
    }

    /// Carries a plan out (trees, then manifests, then blobs, so that no
    /// remaining object names a deleted one) and stores the marks left.
    /// An object modified after `cutoff` is kept.
    pub async fn carry_out(
        &self,
        plan: Plan,
        cutoff: DateTime<Utc>,
        go_on: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut marks = plan.marks;
        let mut work: Vec<(GcObject, u64)> = Vec::new();
        work.extend(plan.trees.into_iter().map(|(t, b)| (GcObject::Tree(t), b)));
        work.extend(
            plan.manifests
                .into_iter()
                .map(|(d, b)| (GcObject::Manifest(d), b)),
        );
        work.extend(plan.blobs.into_iter().map(|(d, b)| (GcObject::Blob(d), b)));
        let planned = work.len();
        for (done, (object, _)) in work.into_iter().enumerate() {
            if !go_on() {
                report.stopped = true;
                report.skipped += planned - done;
                break;
            }
            let outcome = match &object {
                GcObject::Tree(tree) => self.delete_tree(tree).await,
                GcObject::Manifest(d) => {
                    self.delete_untouched(&manifest_key(d), &object, cutoff)
                        .await
                }
                GcObject::Blob(d) => self.delete_untouched(&blob_key(d), &object, cutoff).await,
            };
            match outcome {
                Ok(Deletion::Deleted(bytes)) => {
                    marks.0.remove(&object);
                    report.bytes_freed += bytes;
                    match object {
                        GcObject::Tree(_) => report.deleted.trees += 1,
                        GcObject::Manifest(_) => report.deleted.manifests += 1,
                        GcObject::Blob(_) => report.deleted.blobs += 1,
                    }
                }
                Ok(Deletion::Gone) => {
                    marks.0.remove(&object);
                }
                Ok(Deletion::Fresh) => report.skipped += 1,
                // The rest of the plan is still carried out.
                Err(e) => {
                    tracing::warn!(object = %object, error = %e, "cannot delete an unreferenced artifact object; the next sweep tries again");
                    report.failed += 1;
                }
            }
        }
        for object in marks.0.keys() {
            match object {
                GcObject::Tree(_) => report.waiting.trees += 1,
                GcObject::Manifest(_) => report.waiting.manifests += 1,
                GcObject::Blob(_) => report.waiting.blobs += 1,
            }
        }
        self.save_gc_marks(&marks).await?;
        Ok(report)
    }

    /// Deletes every object of a tree: its `files/` and `dirs/` folders
    /// (only those: a legacy version folder holds newer trees too).
    async fn delete_tree(&self, tree: &TreeKey) -> Result<Deletion> {
        let mut bytes = 0;
        let mut any = false;
        for part in ["files", "dirs"] {
            let prefix = ObjectPath::from(format!("trees/{}/{part}", tree.folder()));
            let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
            for meta in objects {
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                bytes += meta.size;
                any = true;
            }
        }
        Ok(if any {
            Deletion::Deleted(bytes)
        } else {
            Deletion::Gone
        })
    }

    /// Deletes a blob or manifest unless it was modified after `cutoff`
    /// (see the module doc for why it is moved aside first).
    async fn delete_untouched(
        &self,
        key: &ObjectPath,
        object: &GcObject,
        cutoff: DateTime<Utc>,
    ) -> Result<Deletion> {
        let Some(root) = self.local_root.clone() else {
            let meta = match self.store.head(key).await {
                Ok(meta) => meta,
                Err(object_store::Error::NotFound { .. }) => return Ok(Deletion::Gone),
                Err(e) => return Err(e.into()),
            };
            if meta.last_modified > cutoff {
                return Ok(Deletion::Fresh);
            }
            self.store.delete(key).await?;
            return Ok(Deletion::Deleted(meta.size));
        };
        let name = quarantine_name(object).expect("only blobs and manifests are moved aside");
        let origin = root.join(key.as_ref());
        let aside_dir = root.join(QUARANTINE_DIR);
        tokio::task::spawn_blocking(move || -> Result<Deletion> {
            std::fs::create_dir_all(&aside_dir)?;
            let aside = aside_dir.join(name);
            match std::fs::rename(&origin, &aside) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Deletion::Gone),
                Err(e) => return Err(e.into()),
            }
            let meta = match std::fs::metadata(&aside) {
                Ok(meta) => meta,
                // Put back meanwhile by a daemon starting on the same store.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Deletion::Fresh),
                Err(e) => return Err(e.into()),
            };
            let modified: DateTime<Utc> = meta.modified()?.into();
            if modified > cutoff {
                restore(&aside, &origin)?;
                return Ok(Deletion::Fresh);
            }
            match std::fs::remove_file(&aside) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Deletion::Fresh),
                Err(e) => return Err(e.into()),
            }
            // The two-hex folder, if that was its last file (a writer
            // recreates it).
            if let Some(dir) = origin.parent() {
                let _ = std::fs::remove_dir(dir);
            }
            Ok(Deletion::Deleted(meta.len()))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;
    use crate::path::{ArtifactPath, Tree};
    use crate::test_support::{body, files_under};

    const DAY: Duration = Duration::from_secs(86_400);

    fn version(n: i64) -> Tree {
        Tree::Version {
            model: "m".into(),
            version: n,
            created: n * 10,
        }
    }

    async fn put(store: &ArtifactStore, tree: &Tree, path: &str, content: &'static [u8]) {
        store
            .put_file(
                tree,
                &ArtifactPath::parse(path).unwrap(),
                body(&[content]),
                None,
            )
            .await
            .unwrap();
    }

    async fn seal(store: &ArtifactStore, tree: &Tree) -> Sha256Digest {
        let m = store.tree_manifest(tree).await.unwrap();
        store.seal("test", &m).await.unwrap()
    }

    async fn read_all(store: &ArtifactStore, tree: &Tree) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for (path, entry) in store.tree_manifest(tree).await.unwrap().files {
            let chunks: Vec<Bytes> = store
                .open(&entry)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            out.insert(path, chunks.concat());
        }
        out
    }

    fn root(store: &ArtifactStore) -> PathBuf {
        store.local_root.clone().unwrap()
    }

    /// Sets every stored file's last-modified time `ago` in the past, as
    /// if it had been written then.
    fn age(store: &ArtifactStore, ago: Duration) {
        let then = SystemTime::now() - ago;
        for f in files_under(&root(store)) {
            std::fs::File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
    }

    fn blob_file(store: &ArtifactStore, content: &[u8]) -> PathBuf {
        root(store).join(blob_key(&Sha256Digest::of(content)).as_ref())
    }

    fn modified(path: &Path) -> DateTime<Utc> {
        std::fs::metadata(path).unwrap().modified().unwrap().into()
    }

    #[tokio::test]
    async fn a_sweep_deletes_exactly_what_no_live_version_needs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        put(&store, &version(1), "model/a.bin", b"shared").await;
        put(&store, &version(1), "one.bin", b"one").await;
        put(&store, &version(2), "model/a.bin", b"shared").await;
        put(&store, &version(2), "two.bin", b"two").await;
        put(&store, &Tree::Run("r1".into()), "r.bin", b"run").await;
        // A version deleted while still open.
        put(&store, &version(3), "three.bin", b"three").await;
        let m1 = seal(&store, &version(1)).await;
        let m2 = seal(&store, &version(2)).await;
        let v1_files = read_all(&store, &version(1)).await;
        age(&store, 3 * DAY);

        // Version 1 exists and is aliased; versions 2 and 3 were deleted.
        let live = vec![LiveVersion {
            model: "m".into(),
            version: 1,
            created: 10,
            artifact_digest: Some(m1),
            aliased: true,
        }];
        let sweep = |now: DateTime<Utc>| {
            let live = live.clone();
            let store = store.clone();
            async move {
                store
                    .collect_garbage(now, DAY, || async { Ok::<_, Error>(live) }, &|| true)
                    .await
                    .unwrap()
            }
        };
        let now = Utc::now();
        let first = sweep(now).await;
        assert_eq!(first.deleted, Counts::default(), "marked only: {first:?}");
        let waiting = Counts {
            trees: 2,
            manifests: 1,
            blobs: 2,
        };
        assert_eq!((first.waiting, first.live_versions), (waiting, 1));
        let marks = store.gc_marks().await.unwrap();
        assert_eq!(marks.0.len(), 5);
        assert!(marks.0.values().all(|t| *t == now));

        // Within the grace period: still nothing.
        let early = sweep(now + chrono::Duration::hours(23)).await;
        assert_eq!(early.deleted, Counts::default());

        let second = sweep(now + chrono::Duration::days(1)).await;
        assert_eq!(second.deleted, waiting, "{second:?}");
        assert_eq!(second.waiting, Counts::default());
        assert_eq!((second.skipped, second.stopped), (0, false));
        assert!(second.bytes_freed >= 3 + 5, "{second:?}");

        let r = root(&store);
        let left: Vec<PathBuf> = files_under(&r.join("blobs"));
        let want: Vec<PathBuf> = {
            let mut w: Vec<PathBuf> = [&b"shared"[..], b"one", b"run"]
                .iter()
                .map(|c| blob_file(&store, c))
                .collect();
            w.sort();
            w
        };
        assert_eq!(left, want);
        assert!(store.has_manifest(&m1).await.unwrap());
        assert!(!store.has_manifest(&m2).await.unwrap());
        // The deleted versions' folders are gone whole, the others intact.
        assert!(!r.join("trees/versions/m/2").exists());
        assert!(!r.join("trees/versions/m/3").exists());
        assert_eq!(read_all(&store, &version(1)).await, v1_files);
        assert_eq!(
            read_all(&store, &Tree::Run("r1".into())).await["r.bin"],
            b"run"
        );
        assert!(store.gc_marks().await.unwrap().0.is_empty());
        assert!(files_under(&r.join(QUARANTINE_DIR)).is_empty());
    }

    #[tokio::test]
    async fn content_stored_again_is_kept_and_an_interrupted_move_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        put(&store, &version(1), "fresh.bin", b"fresh").await;
        put(&store, &version(1), "old.bin", b"old").await;
        let manifest = seal(&store, &version(1)).await;
        age(&store, 3 * DAY);
        let hour_ago = Utc::now() - chrono::Duration::hours(1);

        // Uploading content that is stored already renames it in again,
        // and sealing a stored manifest writes it again: both are fresh.
        put(&store, &version(2), "again.bin", b"fresh").await;
        assert!(modified(&blob_file(&store, b"fresh")) > hour_ago);
        assert!(modified(&blob_file(&store, b"old")) < hour_ago);
        seal(&store, &version(1)).await;
        let manifest_file = root(&store).join(manifest_key(&manifest).as_ref());
        assert!(modified(&manifest_file) > hour_ago);

        // A plan made before that: the fresh ones are kept, the old one goes.
        let (fresh, old) = (Sha256Digest::of(b"fresh"), Sha256Digest::of(b"old"));
        let since = Utc::now() - chrono::Duration::days(2);
        let plan = Plan {
            manifests: vec![(manifest, 1)],
            blobs: vec![(fresh, 5), (old, 3)],
            marks: Marks(
                [
                    (GcObject::Manifest(manifest), since),
                    (GcObject::Blob(fresh), since),
                    (GcObject::Blob(old), since),
                ]
                .into(),
            ),
            ..Plan::default()
        };
        let report = store
            .carry_out(plan.clone(), hour_ago, &|| true)
            .await
            .unwrap();
        assert_eq!(report.deleted.blobs, 1);
        assert_eq!((report.deleted.manifests, report.skipped), (0, 2));
        assert_eq!(report.bytes_freed, 3);
        assert!(blob_file(&store, b"fresh").exists() && manifest_file.exists());
        assert!(!blob_file(&store, b"old").exists());
        assert!(files_under(&root(&store).join(QUARANTINE_DIR)).is_empty());
        let marks = store.gc_marks().await.unwrap();
        assert_eq!(marks.0.len(), 2, "the kept ones stay marked: {marks:?}");

        // Told to stop: nothing more is deleted.
        let report = store.carry_out(plan, Utc::now(), &|| false).await.unwrap();
        assert!(report.stopped && report.deleted == Counts::default());
        assert!(blob_file(&store, b"fresh").exists());

        // A sweep interrupted after moving a blob aside: put back.
        let aside = root(&store).join(QUARANTINE_DIR);
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::rename(
            blob_file(&store, b"fresh"),
            aside.join(format!("blob-{}", fresh.hex())),
        )
        .unwrap();
        assert_eq!(store.recover_quarantine().await.unwrap(), 1);
        assert_eq!(read_all(&store, &version(2)).await["again.bin"], b"fresh");
        assert!(files_under(&aside).is_empty());
    }

    #[tokio::test]
    async fn a_live_tree_with_an_unreadable_pointer_stops_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open_local(dir.path(), 1 << 20).unwrap();
        put(&store, &Tree::Run("r1".into()), "r.bin", b"run").await;
        put(&store, &version(5), "stray.bin", b"stray").await;
        let pointers = files_under(&root(&store).join("trees/runs/r1/files"));
        std::fs::write(&pointers[0], b"{not json").unwrap();
        age(&store, 3 * DAY);
        let err = store
            .collect_garbage(
                Utc::now(),
                DAY,
                || async { Ok::<_, Error>(vec![]) },
                &|| true,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::GcUnsafe(_)), "{err}");
        assert!(err.to_string().contains("runs/r1"), "{err}");
        assert!(
            store.gc_marks().await.unwrap().0.is_empty(),
            "nothing marked either"
        );
    }
}
