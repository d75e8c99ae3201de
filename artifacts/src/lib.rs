//! modelwatch's artifact store: the files of model versions (weights,
//! `MLmodel`, environments, model cards), stored content-addressed over an
//! [`object_store`] (a local directory by default) and verified by sha256
//! both when they arrive and when they are served.
//!
//! What it must not do: know about HTTP, the registry or roles. Callers
//! (the server's handlers) check who may write what and record a sealed
//! manifest's digest in the version record; this crate only stores bytes
//! and proves they are the bytes that were stored.
//!
//! # Model
//! - A **tree** ([`Tree`]) is a set of files being written: a version's
//!   (native uploads), an MLflow run's or an MLflow logged model's (the
//!   MLflow artifact proxy). Files in a tree may be added or replaced.
//! - **Sealing** turns a tree's file list into a [`Manifest`], stored
//!   immutably and named by its own sha256. That digest is what a version
//!   records as its `artifact_digest`; what the version serves is exactly
//!   what the manifest lists, whatever later happens to the tree.
//! - A **resumable upload** (`resumable`) brings one large file into a tree
//!   in chunks over several requests; nothing shows in the tree until its
//!   last byte has arrived and been verified.
//! - A version's **metadata** (flavors, signature, input example,
//!   environment) is read from an MLflow `MLmodel` among its files
//!   ([`mlmodel`], pure; [`ArtifactStore::describe`] reads the files).
//!
//! # On-disk format (version 2)
//! Under the store's root:
//! ```text
//! blobs/sha256/<2 hex>/<64 hex>      a file's content, named by its sha256 (immutable)
//! manifests/sha256/<2 hex>/<64 hex>  a sealed manifest (immutable), canonical JSON:
//!     {"format":"modelwatch-artifacts-manifest/1",
//!      "files":[{"path":"model/MLmodel","size":312,"sha256":"sha256:<hex>"}, …]}
//!     files sorted by path, no whitespace; its sha256 is the version's artifact_digest
//! trees/<tree>/files/<sha256 of path>   one pointer per file of a tree:
//!     {"path":…,"size":…,"sha256":…}
//! trees/<tree>/dirs/<sha256 of dir>     a directory of the tree (its path as content)
//!     <tree>: versions/<model>/<version>/<created> | runs/<run id> | logged-models/<model id>
//!     <created>: unix microseconds of the version's created_at, so that a version
//!     number given again (model deleted and re-created) starts with no files
//! staging/<random>                   an upload in flight (swept at start)
//! uploads/<id>.{json,offset,data}    a resumable upload: session, acknowledged
//!     bytes, content (kept across restarts; see `resumable`)
//! gc/marks.json                      garbage collection's marks (replaced atomically):
//!     {"format":"modelwatch-artifacts-gc-marks/1",
//!      "unreferenced_since":{"blob:sha256:<hex>":"<RFC 3339>",
//!                            "manifest:sha256:<hex>":…, "tree:<tree>":…}}
//! gc/quarantine/<blob|manifest>-<hex>  an object moved aside while a sweep checks
//!     its time (put back at start if a sweep was interrupted)
//! ```
//! An upload streams into `staging/`, is hashed on the way, fsynced, then
//! renamed to its blob name (over the same content if it is stored already,
//! which refreshes its last-modified time); only then is the tree's pointer
//! written (and fsynced). A crash at any point leaves either the old pointer
//! or the new one, never a pointer to a partial file. Sealing writes the
//! manifest even if it is stored already, for the same reason.
//!
//! Version 1 (issue 22, stop 34) keyed a version's tree
//! `versions/<model>/<version>` without `<created>`. Those trees are not
//! read any more (their files, never sealed, are not served) and garbage
//! collection deletes them; sealed versions are unaffected (their manifests
//! and blobs did not change).
//!
//! # Garbage collection
//! [`gc::plan`] decides, without I/O, what a sweep deletes: version trees
//! of versions that no longer exist, manifests no version records, and
//! blobs neither a recorded manifest nor a kept tree names, each only once
//! it has been unreferenced on every sweep for a grace period and not
//! modified for as long. [`ArtifactStore::collect_garbage`] runs one sweep
//! (listing, reading, deleting: `gc_io`); the server's leased duty calls
//! it with the versions the registry holds.

pub mod backup;
mod describe;
mod error;
pub mod gc;
mod gc_io;
mod hashing;
mod manifest;
pub mod mlmodel;
mod path;
mod resumable;
mod store;
#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
pub use gc_io::{GcListing, GcReport, MARKS_KEY};
pub use manifest::{FileEntry, ListedFile, MANIFEST_FORMAT, Manifest, Sha256Digest};
pub use path::{ArtifactPath, MAX_PATH_BYTES, MAX_PATH_SEGMENTS, MAX_SEGMENT_BYTES, Tree};
pub use resumable::{Appended, UploadSession};
pub use store::{ArtifactStore, DEFAULT_MAX_FILE_BYTES, FileStream};
