//! Which stored objects a garbage-collection sweep may delete: a pure
//! decision (no I/O, no clock), like `alerts::decision`. The store's side
//! (listing, reading pointers, deleting) is `gc_io`; the server's duty
//! reads the registry and calls both.
//!
//! What it must not do: decide from anything but its inputs, or ever plan
//! the deletion of an object a live version needs. Everything it is not
//! sure about (a tree or manifest it could not read, a name it does not
//! understand) is kept.
//!
//! # Rules
//! 1. **Live** objects are never deleted:
//!    - a manifest named by the `artifact_digest` of an existing version;
//!    - the tree of an existing version (`versions/<model>/<version>/<created>`);
//!    - every run and logged-model tree (MLflow runs are only soft-deleted,
//!      and a run may be restored);
//!    - a blob listed by a live manifest or named by a pointer of a kept tree.
//!
//!    Trees of versions that no longer exist (and those of the previous
//!    on-disk format, `versions/<model>/<version>` without the creation
//!    time, which nothing reads any more) keep nothing alive: they are
//!    collected together with what only they pointed to.
//! 2. An object found unreferenced is **marked** with the time it was
//!    first seen so; a mark is dropped as soon as the object is seen
//!    referenced again (or is gone), so a mark's age is how long the object
//!    has been unreferenced on every sweep since.
//! 3. An object is **deleted** only if it was marked by an earlier sweep,
//!    that mark is at least `grace` old, and its own last-modified time is
//!    at least `grace` old. The first condition means nothing is deleted on
//!    the sweep that first sees it unreferenced (one inconsistent reading
//!    of the registry cannot delete anything); the last protects uploads in
//!    flight (a blob is renamed into place before its pointer is written,
//!    and an upload of content already stored renames it in again, which
//!    refreshes its time).
//! 4. Nothing an **aliased** version references (its tree, its manifest,
//!    the blobs of either) is ever in a plan: checked again on the finished
//!    plan, independently of rule 1, and a plan that fails the check is an
//!    error (nothing is deleted).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::Sha256Digest;
use crate::path::Tree;

/// The marks file's format, written into `"format"`; a reader that finds
/// another starts from no marks (which only delays deletions).
pub const MARKS_FORMAT: &str = "modelwatch-artifacts-gc-marks/1";

/// A tree as it is found in the store, by its folder under `trees/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TreeKey {
    /// `versions/<model>/<version>/<created>` (see [`Tree::Version`]).
    Version {
        model: String,
        version: i64,
        created: i64,
    },
    /// `versions/<model>/<version>`, written by releases before the
    /// creation time was part of the key. Nothing reads these any more.
    LegacyVersion {
        model: String,
        version: i64,
    },
    Run(String),
    LoggedModel(String),
}

/// Which of a tree's two kinds of objects a stored object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeObject {
    /// `files/<sha256 of path>`: a pointer to a blob.
    Pointer,
    /// `dirs/<sha256 of dir>`: a directory marker.
    Directory,
}

impl TreeKey {
    /// The tree's folder under `trees/`; its objects are under
    /// `<folder>/files/` and `<folder>/dirs/` (and only there: a legacy
    /// version folder also holds the folders of newer trees).
    pub fn folder(&self) -> String {
        match self {
            TreeKey::Version {
                model,
                version,
                created,
            } => format!("versions/{model}/{version}/{created}"),
            TreeKey::LegacyVersion { model, version } => format!("versions/{model}/{version}"),
            TreeKey::Run(id) => format!("runs/{id}"),
            TreeKey::LoggedModel(id) => format!("logged-models/{id}"),
        }
    }

    /// Whether the tree belongs to a version (and is collected with it).
    pub fn is_version(&self) -> bool {
        matches!(
            self,
            TreeKey::Version { .. } | TreeKey::LegacyVersion { .. }
        )
    }

    /// Reads a stored object's location (`trees/…/files/<hex>` or
    /// `…/dirs/<hex>`). `None` for anything else: what the collector does
    /// not recognise, it never deletes.
    pub fn of_object(location: &str) -> Option<(TreeKey, TreeObject)> {
        let parts: Vec<&str> = location.split('/').collect();
        let kind = |k: &str| match k {
            "files" => Some(TreeObject::Pointer),
            "dirs" => Some(TreeObject::Directory),
            _ => None,
        };
        let name_ok = |n: &str| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit());
        match parts.as_slice() {
            ["trees", "versions", model, version, created, k, name] if name_ok(name) => Some((
                TreeKey::Version {
                    model: model.to_string(),
                    version: version.parse().ok()?,
                    created: created.parse().ok()?,
                },
                kind(k)?,
            )),
            ["trees", "versions", model, version, k, name] if name_ok(name) => Some((
                TreeKey::LegacyVersion {
                    model: model.to_string(),
                    version: version.parse().ok()?,
                },
                kind(k)?,
            )),
            ["trees", "runs", id, k, name] if name_ok(name) => {
                Some((TreeKey::Run(id.to_string()), kind(k)?))
            }
            ["trees", "logged-models", id, k, name] if name_ok(name) => {
                Some((TreeKey::LoggedModel(id.to_string()), kind(k)?))
            }
            _ => None,
        }
    }
}

impl From<&Tree> for TreeKey {
    fn from(tree: &Tree) -> Self {
        match tree {
            Tree::Version {
                model,
                version,
                created,
            } => TreeKey::Version {
                model: model.clone(),
                version: *version,
                created: *created,
            },
            Tree::Run(id) => TreeKey::Run(id.clone()),
            Tree::LoggedModel(id) => TreeKey::LoggedModel(id.clone()),
        }
    }
}

impl fmt::Display for TreeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.folder())
    }
}

/// A version as the registry has it now: what keeps its files alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVersion {
    pub model: String,
    pub version: i64,
    /// Unix microseconds of the version's `created_at` (part of its tree's key).
    pub created: i64,
    /// The recorded `artifact_digest`, when it is a sha256 digest (one
    /// that is not names nothing stored here).
    pub artifact_digest: Option<Sha256Digest>,
    /// Whether an alias points at it.
    pub aliased: bool,
}

impl LiveVersion {
    pub fn tree(&self) -> TreeKey {
        TreeKey::Version {
            model: self.model.clone(),
            version: self.version,
            created: self.created,
        }
    }
}

/// What the registry keeps alive, as sets to look things up in.
#[derive(Debug, Clone, Default)]
pub struct LiveSet {
    trees: BTreeSet<TreeKey>,
    manifests: BTreeSet<Sha256Digest>,
    aliased_trees: BTreeSet<TreeKey>,
    aliased_manifests: BTreeSet<Sha256Digest>,
    versions: usize,
}

impl LiveSet {
    pub fn new(versions: &[LiveVersion]) -> Self {
        let mut live = LiveSet {
            versions: versions.len(),
            ..LiveSet::default()
        };
        for v in versions {
            live.trees.insert(v.tree());
            if v.aliased {
                live.aliased_trees.insert(v.tree());
            }
            if let Some(d) = v.artifact_digest {
                live.manifests.insert(d);
                if v.aliased {
                    live.aliased_manifests.insert(d);
                }
            }
        }
        live
    }

    /// Whether a tree is kept: every run and logged-model tree, and the
    /// tree of a version that exists.
    pub fn keeps_tree(&self, tree: &TreeKey) -> bool {
        !tree.is_version() || self.trees.contains(tree)
    }

    /// Whether an existing version records this manifest's digest.
    pub fn names_manifest(&self, digest: &Sha256Digest) -> bool {
        self.manifests.contains(digest)
    }

    /// How many versions exist.
    pub fn versions(&self) -> usize {
        self.versions
    }
}

/// A stored object's size and last-modified time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// A stored manifest. `blobs` (what it lists) is read only for manifests
/// a version names; `None` otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub object: StoredObject,
    pub blobs: Option<BTreeSet<Sha256Digest>>,
}

/// A stored tree: its objects' count, total size and newest
/// last-modified time. `blobs` (what its pointers name) is read only for
/// kept trees; `None` otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTree {
    pub objects: usize,
    pub bytes: u64,
    pub last_modified: DateTime<Utc>,
    pub blobs: Option<BTreeSet<Sha256Digest>>,
}

/// What the store holds, as one sweep saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub blobs: BTreeMap<Sha256Digest, StoredObject>,
    pub manifests: BTreeMap<Sha256Digest, StoredManifest>,
    pub trees: BTreeMap<TreeKey, StoredTree>,
}

/// Something the collector may delete.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GcObject {
    Tree(TreeKey),
    Manifest(Sha256Digest),
    Blob(Sha256Digest),
}

impl GcObject {
    /// The object's key in the marks file: `tree:<folder>`,
    /// `manifest:sha256:<hex>`, `blob:sha256:<hex>`.
    pub fn mark_key(&self) -> String {
        match self {
            GcObject::Tree(t) => format!("tree:{}", t.folder()),
            GcObject::Manifest(d) => format!("manifest:{d}"),
            GcObject::Blob(d) => format!("blob:{d}"),
        }
    }

    /// Reads [`GcObject::mark_key`] back; `None` for a key it cannot read
    /// (that mark is dropped, which only delays a deletion).
    pub fn from_mark_key(key: &str) -> Option<Self> {
        let (kind, rest) = key.split_once(':')?;
        match kind {
            "manifest" => Sha256Digest::parse(rest).ok().map(GcObject::Manifest),
            "blob" => Sha256Digest::parse(rest).ok().map(GcObject::Blob),
            "tree" => {
                // Any hex name stands in for an object of the folder.
                let probe = format!("trees/{rest}/files/{}", "0".repeat(64));
                let (tree, _) = TreeKey::of_object(&probe)?;
                (tree.folder() == rest).then_some(GcObject::Tree(tree))
            }
            _ => None,
        }
    }
}

impl fmt::Display for GcObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mark_key())
    }
}

/// When each unreferenced object was first seen unreferenced (on every
/// sweep since). Stored as `gc/marks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks(pub BTreeMap<GcObject, DateTime<Utc>>);

#[derive(Serialize, Deserialize)]
struct MarksJson {
    format: String,
    unreferenced_since: BTreeMap<String, DateTime<Utc>>,
}

impl Marks {
    pub fn to_json(&self) -> Vec<u8> {
        let doc = MarksJson {
            format: MARKS_FORMAT.to_string(),
            unreferenced_since: self.0.iter().map(|(o, t)| (o.mark_key(), *t)).collect(),
        };
        serde_json::to_vec_pretty(&doc).expect("marks always serialize")
    }

    /// Reads a marks file. Keys it cannot read are dropped (each such
    /// object is only marked again, later).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let doc: MarksJson = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("gc/marks.json does not parse: {e}")))?;
        if doc.format != MARKS_FORMAT {
            return Err(Error::Corrupt(format!(
                "gc/marks.json has format {:?}; this release reads {MARKS_FORMAT:?}",
                doc.format
            )));
        }
        Ok(Marks(
            doc.unreferenced_since
                .into_iter()
                .filter_map(|(k, t)| Some((GcObject::from_mark_key(&k)?, t)))
                .collect(),
        ))
    }
}

/// How many objects of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub trees: usize,
    pub manifests: usize,
    pub blobs: usize,
}

/// What one sweep deletes, and the marks it leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Version trees to delete, with their bytes.
    pub trees: Vec<(TreeKey, u64)>,
    /// Manifests to delete, with their bytes.
    pub manifests: Vec<(Sha256Digest, u64)>,
    /// Blobs to delete, with their bytes.
    pub blobs: Vec<(Sha256Digest, u64)>,
    /// Every object unreferenced now (planned for deletion or not yet),
    /// with the time it was first seen so. A deletion carried out removes
    /// its mark.
    pub marks: Marks,
    /// Objects unreferenced now, by kind (what `marks` holds).
    pub unreferenced: Counts,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.trees.is_empty() && self.manifests.is_empty() && self.blobs.is_empty()
    }
}

/// Decides what one sweep deletes (see the module doc for the rules).
///
/// `previous` are the marks the last sweep left, `now` the sweep's time,
/// `grace` how long an object must have been unreferenced, and untouched,
/// before it goes. Fails, planning nothing, when the snapshot lacks what
/// a live object needs read (a kept tree's pointers, a live manifest's
/// files) or when the finished plan would touch an aliased version.
pub fn plan(
    snapshot: &Snapshot,
    live: &[LiveVersion],
    previous: &Marks,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<Plan> {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let set = LiveSet::new(live);
    let old_enough = |t: DateTime<Utc>| now.signed_duration_since(t) >= grace;

    // Rule 1: what is referenced.
    let mut referenced: BTreeSet<Sha256Digest> = BTreeSet::new();
    for (key, tree) in &snapshot.trees {
        if !set.keeps_tree(key) {
            continue;
        }
        let blobs = tree.blobs.as_ref().ok_or_else(|| {
            Error::GcUnsafe(format!(
                "the pointers of kept tree {key} were not read, so the blobs it needs are unknown"
            ))
        })?;
        referenced.extend(blobs.iter().copied());
    }
    for (digest, manifest) in &snapshot.manifests {
        if !set.names_manifest(digest) {
            continue;
        }
        let blobs = manifest.blobs.as_ref().ok_or_else(|| {
            Error::GcUnsafe(format!(
                "manifest {digest}, which a version records, was not read, so the blobs it lists are unknown"
            ))
        })?;
        referenced.extend(blobs.iter().copied());
    }

    // Rules 2 and 3: mark what is unreferenced, delete what has been long enough.
    let mut out = Plan::default();
    let mut consider = |object: GcObject, last_modified: DateTime<Utc>| -> bool {
        let since = previous.0.get(&object).copied();
        out.marks.0.insert(object, since.unwrap_or(now));
        since.is_some_and(old_enough) && old_enough(last_modified)
    };
    for (key, tree) in &snapshot.trees {
        if set.keeps_tree(key) {
            continue;
        }
        out.unreferenced.trees += 1;
        if consider(GcObject::Tree(key.clone()), tree.last_modified) {
            out.trees.push((key.clone(), tree.bytes));
        }
    }
    for (digest, manifest) in &snapshot.manifests {
        if set.names_manifest(digest) {
            continue;
        }
        out.unreferenced.manifests += 1;
        if consider(GcObject::Manifest(*digest), manifest.object.last_modified) {
            out.manifests.push((*digest, manifest.object.size));
        }
    }
    for (digest, blob) in &snapshot.blobs {
        if referenced.contains(digest) {
            continue;
        }
        out.unreferenced.blobs += 1;
        if consider(GcObject::Blob(*digest), blob.last_modified) {
            out.blobs.push((*digest, blob.size));
        }
    }

    // Rule 4, checked on the result.
    spares_aliased(&out, snapshot, &set)?;
    Ok(out)
}

/// Checks that `plan` deletes nothing an aliased version references: its
/// tree, its manifest, or a blob either of them names.
pub fn spares_aliased(plan: &Plan, snapshot: &Snapshot, live: &LiveSet) -> Result<()> {
    let refuse = |what: String| {
        Err(Error::GcUnsafe(format!(
            "the plan would delete {what}, which an aliased version references"
        )))
    };
    let mut protected_blobs: BTreeSet<Sha256Digest> = BTreeSet::new();
    for tree in &live.aliased_trees {
        if plan.trees.iter().any(|(t, _)| t == tree) {
            return refuse(format!("tree {tree}"));
        }
        if let Some(blobs) = snapshot.trees.get(tree).and_then(|t| t.blobs.as_ref()) {
            protected_blobs.extend(blobs.iter().copied());
        }
    }
    for digest in &live.aliased_manifests {
        if plan.manifests.iter().any(|(d, _)| d == digest) {
            return refuse(format!("manifest {digest}"));
        }
        if let Some(blobs) = snapshot
            .manifests
            .get(digest)
            .and_then(|m| m.blobs.as_ref())
        {
            protected_blobs.extend(blobs.iter().copied());
        }
    }
    if let Some((blob, _)) = plan.blobs.iter().find(|(b, _)| protected_blobs.contains(b)) {
        return refuse(format!("blob {blob}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn t(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + chrono::Duration::hours(hours)
    }

    fn d(name: &str) -> Sha256Digest {
        Sha256Digest::of(name.as_bytes())
    }

    fn obj(at: DateTime<Utc>) -> StoredObject {
        StoredObject {
            size: 10,
            last_modified: at,
        }
    }

    fn version(model: &str, n: i64, manifest: Option<&str>, aliased: bool) -> LiveVersion {
        LiveVersion {
            model: model.into(),
            version: n,
            created: 1000 + n,
            artifact_digest: manifest.map(d),
            aliased,
        }
    }

    /// A store written at hour 0: two versions of `m`, each sealed (a
    /// manifest over its own blob and a shared one) with an open tree
    /// pointing at the same blobs; a run tree; one blob nothing names.
    fn store() -> Snapshot {
        let mut s = Snapshot::default();
        for b in ["shared", "one", "two", "run", "stray"] {
            s.blobs.insert(d(b), obj(t(0)));
        }
        for (m, blobs) in [("m1", ["shared", "one"]), ("m2", ["shared", "two"])] {
            s.manifests.insert(
                d(m),
                StoredManifest {
                    object: obj(t(0)),
                    blobs: Some(blobs.iter().map(|b| d(b)).collect()),
                },
            );
        }
        for (n, blobs) in [(1, ["shared", "one"]), (2, ["shared", "two"])] {
            s.trees.insert(
                version("m", n, None, false).tree(),
                StoredTree {
                    objects: 2,
                    bytes: 100,
                    last_modified: t(0),
                    blobs: Some(blobs.iter().map(|b| d(b)).collect()),
                },
            );
        }
        s.trees.insert(
            TreeKey::Run("r1".into()),
            StoredTree {
                objects: 1,
                bytes: 50,
                last_modified: t(0),
                blobs: Some([d("run")].into()),
            },
        );
        s
    }

    fn both_live() -> Vec<LiveVersion> {
        vec![
            version("m", 1, Some("m1"), true),
            version("m", 2, Some("m2"), false),
        ]
    }

    fn only_v1() -> Vec<LiveVersion> {
        vec![version("m", 1, Some("m1"), true)]
    }

    /// Sweeps at each hour in turn, carrying the marks; returns each plan.
    fn sweeps(s: &Snapshot, live: &[LiveVersion], hours: &[i64], grace: Duration) -> Vec<Plan> {
        let mut marks = Marks::default();
        hours
            .iter()
            .map(|h| {
                let p = plan(s, live, &marks, t(*h), grace).unwrap();
                marks = p.marks.clone();
                p
            })
            .collect()
    }

    fn blobs(p: &Plan) -> Vec<Sha256Digest> {
        p.blobs.iter().map(|(b, _)| *b).collect()
    }

    #[test]
    fn live_objects_are_never_marked_or_planned() {
        let p = sweeps(&store(), &both_live(), &[10, 20, 30], HOUR);
        for plan in &p {
            assert!(
                plan.trees.is_empty() && plan.manifests.is_empty(),
                "{plan:?}"
            );
            let only_stray = Counts {
                trees: 0,
                manifests: 0,
                blobs: 1,
            };
            assert_eq!(plan.unreferenced, only_stray);
        }
        // The blob nothing names: marked first, deleted on a later sweep.
        assert_eq!(blobs(&p[0]), Vec::<Sha256Digest>::new());
        assert_eq!(blobs(&p[1]), [d("stray")]);
    }

    #[test]
    fn nothing_is_deleted_on_the_sweep_that_first_sees_it_unreferenced() {
        // Even with no grace at all, and everything old.
        let p = plan(&store(), &[], &Marks::default(), t(100), Duration::ZERO).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.marks.0.len(), 2 + 2 + 4, "the run's blob is kept");
        assert!(p.marks.0.values().all(|at| *at == t(100)));
        // The next sweep deletes them (zero grace).
        let p = plan(&store(), &[], &p.marks, t(100), Duration::ZERO).unwrap();
        assert_eq!((p.trees.len(), p.manifests.len(), p.blobs.len()), (2, 2, 4));
        assert!(!blobs(&p).contains(&d("run")), "run trees keep theirs");
    }

    #[test]
    fn a_deleted_versions_tree_manifest_and_own_blob_go_after_the_grace_period() {
        let p = sweeps(&store(), &only_v1(), &[10, 10, 10, 11], HOUR);
        let v2 = version("m", 2, None, false).tree();
        // Marked at 10, still inside the grace period until 11.
        for early in &p[..3] {
            assert!(early.trees.is_empty() && early.manifests.is_empty());
            assert_eq!(blobs(early), Vec::<Sha256Digest>::new());
            assert_eq!(early.marks.0.get(&GcObject::Tree(v2.clone())), Some(&t(10)));
        }
        let last = &p[3];
        assert_eq!(last.trees, [(v2, 100)]);
        assert_eq!(last.manifests, [(d("m2"), 10)]);
        let mut gone = blobs(last);
        gone.sort();
        let mut want = vec![d("two"), d("stray")];
        want.sort();
        assert_eq!(gone, want, "the shared blob stays: version 1 lists it");
    }

    #[test]
    fn a_mark_is_dropped_when_the_object_is_referenced_again() {
        let s = store();
        let p1 = plan(&s, &only_v1(), &Marks::default(), t(0), HOUR).unwrap();
        assert!(p1.marks.0.contains_key(&GcObject::Manifest(d("m2"))));
        // A version naming m2 appears (registered with that digest).
        let mut relive = only_v1();
        relive.push(version("other", 1, Some("m2"), false));
        let p2 = plan(&s, &relive, &p1.marks, t(5), HOUR).unwrap();
        assert!(!p2.marks.0.contains_key(&GcObject::Manifest(d("m2"))));
        assert!(!p2.marks.0.contains_key(&GcObject::Blob(d("two"))));
        // Unreferenced again: the grace period starts over.
        let p3 = plan(&s, &only_v1(), &p2.marks, t(6), HOUR).unwrap();
        assert_eq!(p3.marks.0[&GcObject::Manifest(d("m2"))], t(6));
        let p4 = plan(
            &s,
            &only_v1(),
            &p3.marks,
            t(6) + chrono::Duration::minutes(59),
            HOUR,
        )
        .unwrap();
        assert!(p4.manifests.is_empty(), "{p4:?}");
        let p5 = plan(&s, &only_v1(), &p4.marks, t(7), HOUR).unwrap();
        assert_eq!(p5.manifests, [(d("m2"), 10)]);
    }

    #[test]
    fn a_recently_modified_object_is_kept_however_old_its_mark() {
        let mut s = store();
        // The stray blob was renamed in again at hour 10 (an upload of the
        // same content, its pointer not written yet).
        s.blobs.insert(d("stray"), obj(t(10)));
        let marks = Marks([(GcObject::Blob(d("stray")), t(0))].into());
        let p = plan(
            &s,
            &both_live(),
            &marks,
            t(10) + chrono::Duration::minutes(30),
            HOUR,
        )
        .unwrap();
        assert!(p.blobs.is_empty(), "{p:?}");
        assert_eq!(p.marks.0[&GcObject::Blob(d("stray"))], t(0), "mark kept");
        let p = plan(&s, &both_live(), &p.marks, t(11), HOUR).unwrap();
        assert_eq!(blobs(&p), [d("stray")]);
    }

    #[test]
    fn marks_of_objects_no_longer_stored_are_dropped() {
        let mut s = store();
        let p = plan(&s, &both_live(), &Marks::default(), t(0), HOUR).unwrap();
        assert!(p.marks.0.contains_key(&GcObject::Blob(d("stray"))));
        s.blobs.remove(&d("stray"));
        let p = plan(&s, &both_live(), &p.marks, t(1), HOUR).unwrap();
        assert!(p.marks.0.is_empty(), "{p:?}");
    }

    #[test]
    fn run_and_logged_model_trees_are_kept_and_keep_their_blobs() {
        let mut s = store();
        s.trees.insert(
            TreeKey::LoggedModel("m-abc".into()),
            StoredTree {
                objects: 1,
                bytes: 5,
                last_modified: t(0),
                blobs: Some([d("two")].into()),
            },
        );
        let p = sweeps(&s, &[], &[0, 10], HOUR);
        let last = &p[1];
        assert!(
            last.trees.iter().all(|(k, _)| k.is_version()),
            "{:?}",
            last.trees
        );
        assert!(!blobs(last).contains(&d("run")));
        assert!(!blobs(last).contains(&d("two")), "the logged model's");
        assert!(blobs(last).contains(&d("one")));
    }

    #[test]
    fn a_re_created_version_does_not_keep_the_old_ones_tree() {
        // Same model, same number, created later: the old tree is dead.
        let mut again = version("m", 2, None, false);
        again.created = 99_999;
        let live = vec![version("m", 1, Some("m1"), true), again];
        let p = sweeps(&store(), &live, &[0, 2], HOUR);
        assert_eq!(
            p[1].trees
                .iter()
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>(),
            [version("m", 2, None, false).tree()]
        );
    }

    #[test]
    fn trees_of_the_previous_format_are_collected() {
        let mut s = Snapshot::default();
        let legacy = TreeKey::LegacyVersion {
            model: "m".into(),
            version: 1,
        };
        s.trees.insert(
            legacy.clone(),
            StoredTree {
                objects: 1,
                bytes: 7,
                last_modified: t(0),
                blobs: None,
            },
        );
        let p = sweeps(&s, &[version("m", 1, None, false)], &[0, 1], HOUR);
        assert_eq!(p[1].trees, [(legacy, 7)]);
    }

    #[test]
    fn an_unread_kept_tree_or_live_manifest_stops_the_plan() {
        let mut s = store();
        s.trees.get_mut(&TreeKey::Run("r1".into())).unwrap().blobs = None;
        let err = plan(&s, &both_live(), &Marks::default(), t(0), HOUR).unwrap_err();
        assert!(err.to_string().contains("runs/r1"), "{err}");
        let mut s = store();
        s.manifests.get_mut(&d("m1")).unwrap().blobs = None;
        let err = plan(&s, &both_live(), &Marks::default(), t(0), HOUR).unwrap_err();
        assert!(matches!(err, Error::GcUnsafe(_)), "{err}");
        // Unread things nothing needs are fine.
        let mut s = store();
        s.manifests.get_mut(&d("m2")).unwrap().blobs = None;
        s.trees
            .get_mut(&version("m", 2, None, false).tree())
            .unwrap()
            .blobs = None;
        plan(&s, &only_v1(), &Marks::default(), t(0), HOUR).unwrap();
    }

    #[test]
    fn the_aliased_check_refuses_a_plan_touching_an_aliased_version() {
        let s = store();
        let live = LiveSet::new(&only_v1());
        let good = plan(&s, &only_v1(), &Marks::default(), t(0), HOUR).unwrap();
        spares_aliased(&good, &s, &live).unwrap();
        let v1 = version("m", 1, None, false).tree();
        for bad in [
            Plan {
                trees: vec![(v1, 1)],
                ..Plan::default()
            },
            Plan {
                manifests: vec![(d("m1"), 1)],
                ..Plan::default()
            },
            // Listed by the aliased version's manifest (and tree).
            Plan {
                blobs: vec![(d("one"), 1)],
                ..Plan::default()
            },
            Plan {
                blobs: vec![(d("shared"), 1)],
                ..Plan::default()
            },
        ] {
            let err = spares_aliased(&bad, &s, &live).unwrap_err();
            assert!(err.to_string().contains("aliased"), "{err}");
        }
        // A blob only in the aliased version's open tree is protected too.
        let mut s2 = store();
        s2.trees
            .get_mut(&version("m", 1, None, false).tree())
            .unwrap()
            .blobs
            .as_mut()
            .unwrap()
            .insert(d("stray"));
        let bad = Plan {
            blobs: vec![(d("stray"), 1)],
            ..Plan::default()
        };
        assert!(spares_aliased(&bad, &s2, &live).is_err());
    }

    #[test]
    fn an_aliased_version_is_never_collected_whatever_the_history() {
        // Every combination of which versions exist and are aliased, over
        // sweeps far apart with marks carried: nothing an aliased version
        // references is ever planned, and nothing a live version
        // references either.
        let s = store();
        for mask in 0..16u8 {
            let mut live = Vec::new();
            for (i, (n, m)) in [(1, "m1"), (2, "m2")].into_iter().enumerate() {
                if mask & (1 << (2 * i)) != 0 {
                    live.push(version("m", n, Some(m), mask & (1 << (2 * i + 1)) != 0));
                }
            }
            for p in sweeps(&s, &live, &[0, 100, 200], HOUR) {
                for v in &live {
                    assert!(!p.trees.iter().any(|(k, _)| *k == v.tree()), "{mask} {p:?}");
                    let m = v.artifact_digest.unwrap();
                    assert!(!p.manifests.iter().any(|(x, _)| *x == m), "{mask} {p:?}");
                    for b in s.manifests[&m].blobs.as_ref().unwrap() {
                        assert!(!blobs(&p).contains(b), "{mask} {p:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn tree_keys_read_back_from_object_names_and_match_the_store_layout() {
        let h = "ab".repeat(32);
        let tree = Tree::Version {
            model: "fraud.v2".into(),
            version: 3,
            created: 1_700_000_000_123_456,
        };
        let key = TreeKey::from(&tree);
        assert_eq!(key.folder(), tree.key());
        assert_eq!(
            TreeKey::of_object(&format!("trees/{}/files/{h}", tree.key())),
            Some((key.clone(), TreeObject::Pointer))
        );
        assert_eq!(
            TreeKey::of_object(&format!("trees/{}/dirs/{h}", tree.key())),
            Some((key, TreeObject::Directory))
        );
        for other in [Tree::Run("r_1".into()), Tree::LoggedModel("m-x".into())] {
            let found = TreeKey::of_object(&format!("trees/{}/files/{h}", other.key()));
            assert_eq!(found.map(|(k, _)| k), Some(TreeKey::from(&other)));
        }
        assert_eq!(
            TreeKey::of_object(&format!("trees/versions/fraud/3/files/{h}")),
            Some((
                TreeKey::LegacyVersion {
                    model: "fraud".into(),
                    version: 3
                },
                TreeObject::Pointer
            ))
        );
        for unknown in [
            format!("trees/versions/fraud/x/1/files/{h}"),
            format!("trees/versions/fraud/3/1/other/{h}"),
            "trees/runs/r/files/short".to_string(),
            format!("trees/somewhere/r/files/{h}"),
            format!("blobs/sha256/ab/{h}"),
        ] {
            assert_eq!(TreeKey::of_object(&unknown), None, "{unknown}");
        }
    }

    #[test]
    fn marks_round_trip_and_unreadable_entries_are_dropped() {
        let tree = version("m", 2, None, false).tree();
        let marks = Marks(
            [
                (GcObject::Tree(tree), t(1)),
                (
                    GcObject::Tree(TreeKey::LegacyVersion {
                        model: "m".into(),
                        version: 1,
                    }),
                    t(2),
                ),
                (GcObject::Manifest(d("m2")), t(3)),
                (GcObject::Blob(d("two")), t(4)),
            ]
            .into(),
        );
        let json = marks.to_json();
        assert_eq!(Marks::from_json(&json).unwrap(), marks);
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains(MARKS_FORMAT) && text.contains("tree:versions/m/2/1002"));
        let odd = format!(
            r#"{{"format":"{MARKS_FORMAT}","unreferenced_since":{{"what:x":"2024-01-01T00:00:00Z","blob:nothex":"2024-01-01T00:00:00Z","tree:../x":"2024-01-01T00:00:00Z","blob:{}":"2024-01-01T00:00:00Z"}}}}"#,
            d("kept")
        );
        let read = Marks::from_json(odd.as_bytes()).unwrap();
        assert_eq!(
            read.0.keys().collect::<Vec<_>>(),
            [&GcObject::Blob(d("kept"))]
        );
        assert!(Marks::from_json(b"{").is_err());
        assert!(Marks::from_json(br#"{"format":"other/9","unreferenced_since":{}}"#).is_err());
    }
}
