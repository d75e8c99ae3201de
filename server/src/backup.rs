//! Online backup and verified restore of a data directory: the embedded
//! registry, the telemetry history and the artifact store.
//!
//! `modelwatch backup --data-dir D --to B` runs beside a daemon serving
//! `D` and keeps every write acknowledged before it began:
//! 1. the registry, as one committed transaction (`VACUUM INTO`), whose
//!    audit chain is verified in the copy and whose head is recorded;
//! 2. the artifact store, pointers before manifests before blobs
//!    ([`modelwatch_artifacts::backup`]);
//! 3. the history, WAL segments before the manifest before its files
//!    ([`modelwatch_history::backup`]).
//!
//! The backup directory is content-addressed, so backups into the same
//! directory are incremental (a Parquet file, a blob or a WAL segment
//! already stored is not copied again):
//! ```text
//! B/objects/sha256/<2 hex>/<64 hex>   a file's bytes, named by their sha256
//! B/backups/<id>.json                 one backup, format `modelwatch-backup/1`:
//!     {format, id, created_at, modelwatch_version, source,
//!      registry: {audit_entries, audit_head_seq, audit_head_hash},
//!      history: {persisted_seq, wal_segments, files},
//!      excluded: [what a restore needs from elsewhere],
//!      files: [{path, sha256, bytes}]}      paths relative to the data dir
//! B/tmp/                              copies in flight
//! ```
//! `modelwatch restore --from B --data-dir NEW` checks every file's sha256
//! while it copies, into `NEW.partial`, verifies the restored audit chain
//! and its head against the backup's, and only then renames the directory
//! to `NEW`: a restore that fails leaves no data directory behind.
//!
//! Must not: back up a PostgreSQL registry (`pg_dump` does; the command
//! says so), or write into the data directory it backs up.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use modelwatch_registry::{Audit, SqliteStore};

/// The format of a backup's description.
pub const BACKUP_FORMAT: &str = "modelwatch-backup/1";

/// The registry file in a data directory.
const REGISTRY_FILE: &str = "registry.sqlite";

/// One backup: what was copied and where the cut is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: String,
    /// `YYYYMMDDTHHMMSSZ-<8 hex>`: sorts by time.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub modelwatch_version: String,
    /// The data directory backed up, as given.
    pub source: String,
    pub registry: RegistryCut,
    pub history: HistoryCut,
    /// What is not in the backup and a restore needs from elsewhere.
    pub excluded: Vec<String>,
    pub files: Vec<BackedUpFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCut {
    pub audit_entries: i64,
    pub audit_head_seq: Option<i64>,
    pub audit_head_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryCut {
    /// WAL records up to this one are in the Parquet files; later ones
    /// come back from the WAL segments at the restored daemon's start.
    pub persisted_seq: u64,
    pub wal_segments: usize,
    pub files: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackedUpFile {
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// What a backup did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub id: String,
    /// The backup's description file.
    pub manifest: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// Files whose bytes were not in the backup directory yet.
    pub new_files: usize,
    pub new_bytes: u64,
    pub audit_entries: i64,
    pub history_persisted_seq: u64,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub id: String,
    pub data_dir: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub audit_entries: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} holds no embedded registry (registry.sqlite): a PostgreSQL registry is backed up with pg_dump; run this against the data directory of a daemon on SQLite"
    )]
    NotSqlite(PathBuf),
    #[error(
        "{0} is not supported yet: back up into a directory (copy it to object storage afterwards)"
    )]
    Unsupported(String),
    #[error("the registry cannot be copied: {0}")]
    Registry(String),
    #[error("the history cannot be copied: {0}")]
    History(String),
    #[error(
        "the history file {0} was removed while it was being backed up (compaction or retention); run the backup again"
    )]
    Vanished(String),
    #[error("the audit chain of the {0} does not verify: {1}")]
    Chain(&'static str, String),
    #[error(
        "{path} in the backup is damaged: its sha256 is {found}, the backup recorded {expected}"
    )]
    Damaged {
        path: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} exists and is not empty: restore into a new data directory")]
    NotEmpty(PathBuf),
    #[error(
        "no backup in {0} (no backups/*.json): give the directory `modelwatch backup --to` wrote"
    )]
    NoBackup(PathBuf),
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Backs up `data_dir` into the directory `to`. `progress` hears each
/// step, for the command line.
pub async fn backup(
    data_dir: &Path,
    to: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<BackupReport> {
    let text = to.to_string_lossy();
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(BackupError::Unsupported(format!("a {scheme}:// target")));
    }
    let registry = data_dir.join(REGISTRY_FILE);
    if !registry.is_file() {
        return Err(BackupError::NotSqlite(data_dir.to_path_buf()));
    }
    let store = Objects::create(to)?;
    let now = Utc::now();
    let id = format!(
        "{}-{:08x}",
        now.format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    );
    let mut files = Vec::new();

    // 1. The registry, then its chain checked in the copy.
    progress("registry: copying one consistent snapshot");
    let snapshot = store.tmp.join(format!("registry-{id}.sqlite"));
    SqliteStore::snapshot(&registry, &snapshot)
        .await
        .map_err(|e| BackupError::Registry(e.to_string()))?;
    let cut = audit_of(&snapshot, "backup").await;
    let stored = store.put_file(&snapshot, REGISTRY_FILE);
    let _ = std::fs::remove_file(&snapshot);
    let registry_cut = cut?;
    files.push(stored?);

    // 2. The artifact store.
    let artifacts = data_dir.join("artifacts");
    let listed = modelwatch_artifacts::backup::backup_order(&artifacts)
        .map_err(io("list the artifact store", &artifacts))?;
    progress(&format!("artifacts: {} files", listed.len()));
    for rel in listed {
        match store.put_file(&artifacts.join(&rel), &format!("artifacts/{rel}")) {
            Ok(f) => files.push(f),
            // Collected by a sweep between the listing and the copy:
            // nothing the copied pointers and manifests still name.
            Err(BackupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }

    // 3. The history: WAL segments, then the manifest, then its files.
    let history = data_dir.join("history");
    let segments = modelwatch_history::backup::wal_segments(&history)
        .map_err(|e| BackupError::History(e.to_string()))?;
    progress(&format!("history: {} WAL segments", segments.len()));
    let mut wal_segments = 0;
    for rel in &segments {
        match store.put_file(&history.join(rel), &format!("history/{rel}")) {
            Ok(f) => {
                files.push(f);
                wal_segments += 1;
            }
            // Deleted after a persist: the manifest read next covers it.
            Err(BackupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let (persisted_seq, history_files) =
        match modelwatch_history::backup::manifest_snapshot(&history)
            .map_err(|e| BackupError::History(e.to_string()))?
        {
            None => (0, 0),
            Some((bytes, manifest)) => {
                progress(&format!("history: {} Parquet files", manifest.files.len()));
                files.push(store.put_bytes(
                    &bytes,
                    &format!("history/{}", modelwatch_history::backup::MANIFEST),
                )?);
                for file in &manifest.files {
                    match store
                        .put_file(&history.join(&file.path), &format!("history/{}", file.path))
                    {
                        Ok(f) => files.push(f),
                        Err(BackupError::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            return Err(BackupError::Vanished(file.path.clone()));
                        }
                        Err(e) => return Err(e),
                    }
                }
                (manifest.persisted_seq, manifest.files.len())
            }
        };

    let manifest = BackupManifest {
        format: BACKUP_FORMAT.into(),
        id: id.clone(),
        created_at: now,
        modelwatch_version: env!("CARGO_PKG_VERSION").into(),
        source: data_dir.display().to_string(),
        registry: registry_cut,
        history: HistoryCut {
            persisted_seq,
            wal_segments,
            files: history_files,
        },
        excluded: vec![
            "keys and certificates given by path (--audit-signing-key, --tls-key, --tls-cert, --oidc-jwks-file): keep them apart from backups and give them again at start".into(),
            "artifacts stored outside the data directory (--artifacts-url elsewhere)".into(),
            "uploads in flight (staging/, uploads/): clients send them again".into(),
        ],
        files: files.iter().map(|(f, _)| f.clone()).collect(),
    };
    let path = store.write_manifest(&manifest)?;
    let new: Vec<_> = files.iter().filter(|(_, new)| *new).collect();
    Ok(BackupReport {
        id,
        manifest: path,
        files: files.len(),
        bytes: files.iter().map(|(f, _)| f.bytes).sum(),
        new_files: new.len(),
        new_bytes: new.iter().map(|(f, _)| f.bytes).sum(),
        audit_entries: manifest.registry.audit_entries,
        history_persisted_seq: persisted_seq,
    })
}

/// Restores backup `id` (the newest when `None`) of the directory `from`
/// into the new data directory `data_dir`.
pub async fn restore(
    from: &Path,
    id: Option<&str>,
    data_dir: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RestoreReport> {
    let manifest = read_manifest(from, id)?;
    if manifest.format != BACKUP_FORMAT {
        return Err(BackupError::Invalid(format!(
            "backup {} has format {:?}; this modelwatch reads {BACKUP_FORMAT}",
            manifest.id, manifest.format
        )));
    }
    let empty = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io("read", data_dir)(e)),
    };
    if !empty {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    let partial = PathBuf::from(format!("{}.partial", data_dir.display()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io("remove the unfinished restore", &partial))?;
    }
    progress(&format!(
        "restoring backup {} ({} files) into {}",
        manifest.id,
        manifest.files.len(),
        data_dir.display()
    ));
    let objects = from.join("objects");
    let mut bytes = 0;
    for (n, file) in manifest.files.iter().enumerate() {
        let rel = safe_relative(&file.path)?;
        let source = object_path(&objects, &file.sha256)?;
        let target = partial.join(rel);
        let found = copy_hashing(&source, &target)?;
        if found != file.sha256 {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(BackupError::Damaged {
                path: file.path.clone(),
                expected: file.sha256.clone(),
                found,
            });
        }
        bytes += file.bytes;
        if (n + 1) % 1000 == 0 {
            progress(&format!("{} of {} files", n + 1, manifest.files.len()));
        }
    }
    progress("verifying the restored audit chain");
    let restored = match audit_of(&partial.join(REGISTRY_FILE), "restored registry").await {
        Ok(cut) => cut,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    if restored != manifest.registry {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(BackupError::Chain(
            "restored registry",
            format!(
                "its head is entry {:?}, the backup recorded {:?}",
                restored.audit_head_seq, manifest.registry.audit_head_seq
            ),
        ));
    }
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    if data_dir.exists() {
        std::fs::remove_dir(data_dir).map_err(io("replace the empty", data_dir))?;
    }
    std::fs::rename(&partial, data_dir).map_err(io("move the restored files to", data_dir))?;
    Ok(RestoreReport {
        id: manifest.id,
        data_dir: data_dir.to_path_buf(),
        files: manifest.files.len(),
        bytes,
        audit_entries: restored.audit_entries,
    })
}

/// The audit chain of the registry file `db`, verified.
async fn audit_of(db: &Path, which: &'static str) -> Result<RegistryCut> {
    let store = SqliteStore::open(db)
        .await
        .map_err(|e| BackupError::Registry(e.to_string()))?;
    let verified = store.verify_audit().await;
    let head = store.audit_head().await;
    store.close().await;
    let verified = verified.map_err(|e| BackupError::Registry(e.to_string()))?;
    if !verified.ok {
        return Err(BackupError::Chain(
            which,
            verified.problem.unwrap_or_else(|| "broken".into()),
        ));
    }
    let head = head.map_err(|e| BackupError::Registry(e.to_string()))?;
    Ok(RegistryCut {
        audit_entries: verified.entries_checked,
        audit_head_seq: head.as_ref().map(|(seq, _)| *seq),
        audit_head_hash: head.map(|(_, hash)| hash),
    })
}

/// A backup's description: `id`'s, or the newest.
pub fn read_manifest(from: &Path, id: Option<&str>) -> Result<BackupManifest> {
    let dir = from.join("backups");
    let path = match id {
        Some(id) => {
            if id.contains(['/', '\\']) || id.starts_with('.') {
                return Err(BackupError::Invalid(format!("{id:?} is not a backup id")));
            }
            dir.join(format!("{id}.json"))
        }
        None => {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map_err(|_| BackupError::NoBackup(from.to_path_buf()))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect();
            names.sort();
            let newest = names
                .pop()
                .ok_or_else(|| BackupError::NoBackup(from.to_path_buf()))?;
            dir.join(newest)
        }
    };
    let text = std::fs::read(&path).map_err(io("read the backup", &path))?;
    serde_json::from_slice(&text).map_err(|e| {
        BackupError::Invalid(format!(
            "{} is not a backup description: {e}",
            path.display()
        ))
    })
}

/// A path of the backup's file list as a relative path that stays inside
/// the data directory.
fn safe_relative(path: &str) -> Result<PathBuf> {
    let rel = PathBuf::from(path);
    let inside = !path.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if inside {
        Ok(rel)
    } else {
        Err(BackupError::Invalid(format!(
            "the backup lists {path:?}, which is not a path inside a data directory"
        )))
    }
}

fn object_path(objects: &Path, sha256: &str) -> Result<PathBuf> {
    let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(BackupError::Invalid(format!(
            "{sha256:?} is not a sha256 in hex"
        )));
    }
    Ok(objects.join("sha256").join(&sha256[..2]).join(sha256))
}

/// Copies `source` to `target` (directories created, fsynced), returning
/// the sha256 of what was copied.
fn copy_hashing(source: &Path, target: &Path) -> Result<String> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let mut input = std::fs::File::open(source).map_err(io("read", source))?;
    let mut output = std::fs::File::create(target).map_err(io("write", target))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input.read(&mut buf).map_err(io("read", source))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(io("write", target))?;
    }
    output.sync_all().map_err(io("fsync", target))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The content-addressed object store of a backup directory.
struct Objects {
    objects: PathBuf,
    backups: PathBuf,
    tmp: PathBuf,
}

impl Objects {
    fn create(to: &Path) -> Result<Self> {
        let store = Self {
            objects: to.join("objects"),
            backups: to.join("backups"),
            tmp: to.join("tmp"),
        };
        for dir in [&store.objects, &store.backups, &store.tmp] {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        Ok(store)
    }

    /// Stores the bytes of the file `source` as data-directory path `rel`;
    /// `true` when they were not stored yet.
    fn put_file(&self, source: &Path, rel: &str) -> Result<(BackedUpFile, bool)> {
        let tmp = self.tmp.join(format!("{:016x}", rand::random::<u64>()));
        let sha256 = match copy_hashing(source, &tmp) {
            Ok(sha) => sha,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.keep(tmp, sha256, rel)
    }

    fn put_bytes(&self, bytes: &[u8], rel: &str) -> Result<(BackedUpFile, bool)> {
        let tmp = self.tmp.join(format!("{:016x}", rand::random::<u64>()));
        std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
        self.keep(tmp, hex::encode(Sha256::digest(bytes)), rel)
    }

    fn keep(&self, tmp: PathBuf, sha256: String, rel: &str) -> Result<(BackedUpFile, bool)> {
        let bytes = std::fs::metadata(&tmp).map_err(io("read", &tmp))?.len();
        let object = object_path(&self.objects, &sha256)?;
        let new = !object.exists();
        if new {
            if let Some(parent) = object.parent() {
                std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            }
            std::fs::rename(&tmp, &object).map_err(io("store", &object))?;
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok((
            BackedUpFile {
                path: rel.to_string(),
                sha256,
                bytes,
            },
            new,
        ))
    }

    /// Writes the backup's description (temporary file, fsync, rename).
    fn write_manifest(&self, manifest: &BackupManifest) -> Result<PathBuf> {
        let path = self.backups.join(format!("{}.json", manifest.id));
        let tmp = self.tmp.join(format!("{}.json", manifest.id));
        let text =
            serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Invalid(e.to_string()))?;
        let mut file = std::fs::File::create(&tmp).map_err(io("write", &tmp))?;
        file.write_all(&text).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("write", &path))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_data_directory_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "history/../../x", "./a"] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            safe_relative("history/wal/1.wal").unwrap(),
            PathBuf::from("history/wal/1.wal")
        );
        let objects = Path::new("/b/objects");
        assert!(object_path(objects, "../../etc").is_err());
        assert!(object_path(objects, &"a".repeat(64)).is_ok());
    }

    #[test]
    fn identical_bytes_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Objects::create(dir.path()).unwrap();
        let (first, new) = store.put_bytes(b"same", "a").unwrap();
        assert!(new);
        let (second, new) = store.put_bytes(b"same", "b").unwrap();
        assert!(!new, "already stored");
        assert_eq!(first.sha256, second.sha256);
        assert_eq!(std::fs::read_dir(&store.tmp).unwrap().count(), 0);
    }
}
