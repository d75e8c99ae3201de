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
//!
//! # On-disk format (version 1)
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
//!     <tree>: versions/<model>/<version> | runs/<run id> | logged-models/<model id>
//! staging/<random>                   an upload in flight (swept at start)
//! ```
//! An upload streams into `staging/`, is hashed on the way, fsynced, then
//! renamed to its blob name; only then is the tree's pointer written (and
//! fsynced). A crash at any point leaves either the old pointer or the new
//! one, never a pointer to a partial file.

mod error;
mod hashing;
mod manifest;
mod path;
mod store;

pub use error::{Error, Result};
pub use manifest::{FileEntry, ListedFile, MANIFEST_FORMAT, Manifest, Sha256Digest};
pub use path::{ArtifactPath, MAX_PATH_BYTES, MAX_PATH_SEGMENTS, MAX_SEGMENT_BYTES, Tree};
pub use store::{ArtifactStore, DEFAULT_MAX_FILE_BYTES, FileStream};
