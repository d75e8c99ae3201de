//! The artifact garbage-collection duty: on the daemon holding the
//! `artifact_gc` lease, one sweep of the artifact store right after taking
//! the lease and then every `--artifact-gc-interval-seconds`, deleting the
//! files of deleted versions once they have been unreferenced for
//! `--artifact-gc-grace-seconds` (`docs/artifacts.md`, "Retention and
//! garbage collection").
//!
//! This module only reads the registry (every version, page by page),
//! hands it to the store's sweep, and reports: a `tracing` span per sweep
//! and the `modelwatch_artifact_gc_*` metrics. What it must not do: decide
//! what is deleted (`modelwatch_artifacts::gc::plan`, pure, decides; the
//! store carries it out), write to the registry, or stop the loop because
//! a sweep failed (logged, counted, tried again at the next interval).

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;
use tracing::Instrument;

use modelwatch_artifacts::ArtifactStore;
use modelwatch_artifacts::gc::LiveVersion;
use modelwatch_artifacts::{GcReport, Sha256Digest};
use modelwatch_registry::{ModelFilter, PageRequest, RegistryStore, VersionFilter};

use crate::cluster::{Leased, stopped_within};
use crate::config::{DEFAULT_ARTIFACT_GC_GRACE_SECONDS, DEFAULT_ARTIFACT_GC_INTERVAL_SECONDS};

/// Values of `modelwatch_artifact_gc_runs_total`'s `outcome` label.
pub const OUTCOMES: [&str; 2] = ["completed", "failed"];
/// Values of the `kind` label of `modelwatch_artifact_gc_waiting`, and
/// with [`UPLOAD_KIND`] of `modelwatch_artifact_gc_deleted_total`.
pub const KINDS: [&str; 3] = ["tree", "manifest", "blob"];
/// The `kind` of a resumable upload discarded after [`UPLOAD_EXPIRY`].
pub const UPLOAD_KIND: &str = "upload";
/// A resumable upload not completed this long after it began is
/// discarded by the sweep.
pub const UPLOAD_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// While another daemon holds the lease, whether it is ours yet is looked
/// at this often (at most; never more often than the interval).
const LEASE_POLL: Duration = Duration::from_secs(5);

/// When sweeps run and what they wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// Between two sweeps (`--artifact-gc-interval-seconds`).
    pub interval: Duration,
    /// How long an object must have been unreferenced, on every sweep, and
    /// unmodified before it is deleted (`--artifact-gc-grace-seconds`).
    pub grace: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(DEFAULT_ARTIFACT_GC_INTERVAL_SECONDS),
            grace: Duration::from_secs(DEFAULT_ARTIFACT_GC_GRACE_SECONDS),
        }
    }
}

/// Why a sweep failed (nothing after the failure was deleted).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot read the registry's versions: {0}")]
    Registry(#[from] modelwatch_registry::Error),
    #[error(transparent)]
    Store(#[from] modelwatch_artifacts::Error),
}

/// Every version the registry holds now, as the collector needs it. Read
/// page by page, not as one snapshot: a model deleted or renamed during
/// the read may be missed, which can only get its objects marked, never
/// deleted (a deletion needs the mark of an earlier sweep, and any sweep
/// that sees the version drops it).
pub async fn live_versions(
    registry: &dyn RegistryStore,
) -> Result<Vec<LiveVersion>, modelwatch_registry::Error> {
    read_live(registry, PageRequest::MAX_LIMIT).await
}

async fn read_live(
    registry: &dyn RegistryStore,
    page_size: u32,
) -> Result<Vec<LiveVersion>, modelwatch_registry::Error> {
    let page = |cursor| PageRequest {
        limit: page_size,
        cursor,
    };
    let mut live = Vec::new();
    let mut models_cursor = None;
    loop {
        let models = registry
            .list_models(&ModelFilter::default(), &page(models_cursor))
            .await?;
        for model in &models.items {
            let mut cursor = None;
            loop {
                let versions = match registry
                    .list_versions(&model.name, &VersionFilter::default(), &page(cursor))
                    .await
                {
                    Ok(versions) => versions,
                    Err(modelwatch_registry::Error::NotFound { .. }) => {
                        tracing::debug!(model = %model.name, "model gone during the artifact GC's read");
                        break;
                    }
                    Err(e) => return Err(e),
                };
                live.extend(versions.items.iter().map(|v| {
                    LiveVersion {
                        model: v.model.clone(),
                        version: v.version,
                        created: v.created_at.timestamp_micros(),
                        // A digest that is not sha256 names nothing stored here.
                        artifact_digest: v
                            .artifact_digest
                            .as_deref()
                            .and_then(|d| Sha256Digest::parse(d).ok()),
                        aliased: !v.aliases.is_empty(),
                    }
                }));
                match versions.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        match models.next_cursor {
            Some(next) => models_cursor = Some(next),
            None => break,
        }
    }
    Ok(live)
}

/// One sweep: the store against the versions `registry` holds now.
pub async fn sweep(
    store: &ArtifactStore,
    registry: &dyn RegistryStore,
    grace: Duration,
    go_on: &(dyn Fn() -> bool + Send + Sync),
) -> Result<GcReport, SweepError> {
    store
        .collect_garbage(
            Utc::now(),
            grace,
            || async { Ok::<_, SweepError>(live_versions(registry).await?) },
            go_on,
        )
        .await
}

/// Starts the duty's loop; it ends when `stop` turns true.
pub fn spawn(
    store: ArtifactStore,
    config: GcConfig,
    duty: Leased,
    stop: watch::Receiver<bool>,
    duties: &crate::duties::Duties,
) -> tokio::task::JoinHandle<()> {
    duties.spawn(
        crate::duties::names::ARTIFACT_GC,
        gc_loop(store, config, duty, stop),
    )
}

async fn gc_loop(
    store: ArtifactStore,
    config: GcConfig,
    duty: Leased,
    mut stop: watch::Receiver<bool>,
) {
    let idle = config.interval.min(LEASE_POLL);
    loop {
        if !duty.holds() {
            if stopped_within(&mut stop, idle).await {
                return;
            }
            continue;
        }
        round(&store, &config, &duty, &stop).await;
        if stopped_within(&mut stop, config.interval).await {
            return;
        }
    }
}

/// One sweep with its span, log line and metrics.
async fn round(
    store: &ArtifactStore,
    config: &GcConfig,
    duty: &Leased,
    stop: &watch::Receiver<bool>,
) {
    use tracing::field::Empty;
    let span = tracing::info_span!(
        "artifact_gc",
        grace_seconds = config.grace.as_secs(),
        live_versions = Empty,
        trees_deleted = Empty,
        manifests_deleted = Empty,
        blobs_deleted = Empty,
        bytes_freed = Empty,
        skipped = Empty,
        failed = Empty,
        waiting = Empty,
        restored = Empty,
        stopped = Empty,
        uploads_expired = Empty,
        took_ms = Empty,
    );
    let started = Instant::now();
    // A sweep stops between deletions once the lease is lost or the daemon
    // stops: another daemon may be sweeping by then.
    let go_on = {
        let (duty, stop) = (duty.clone(), stop.clone());
        move || duty.holds() && !*stop.borrow()
    };
    let result = sweep(store, duty.store.as_ref(), config.grace, &go_on)
        .instrument(span.clone())
        .await;
    span.record("took_ms", started.elapsed().as_millis() as u64);
    let m = crate::metrics::metrics();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            m.artifact_gc_runs.with_label_values(&["failed"]).inc();
            tracing::warn!(parent: &span, error = %e, "artifact garbage collection failed; it tries again at the next interval");
            return;
        }
    };
    // Resumable uploads abandoned long ago hold disk and nothing else.
    let expired = match store
        .expire_uploads(Utc::now().timestamp() - UPLOAD_EXPIRY.as_secs() as i64)
        .await
    {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(parent: &span, error = %e, "expiring abandoned resumable uploads failed; the next sweep tries again");
            0
        }
    };
    span.record("uploads_expired", expired as u64);
    let deleted = [
        (UPLOAD_KIND, expired),
        ("tree", report.deleted.trees),
        ("manifest", report.deleted.manifests),
        ("blob", report.deleted.blobs),
    ];
    let waiting = [
        ("tree", report.waiting.trees),
        ("manifest", report.waiting.manifests),
        ("blob", report.waiting.blobs),
    ];
    for (kind, n) in deleted {
        m.artifact_gc_deleted
            .with_label_values(&[kind])
            .inc_by(n as u64);
    }
    for (kind, w) in waiting {
        m.artifact_gc_waiting
            .with_label_values(&[kind])
            .set(i64::try_from(w).unwrap_or(i64::MAX));
    }
    m.artifact_gc_freed_bytes.inc_by(report.bytes_freed);
    let outcome = if report.failed > 0 {
        "failed"
    } else {
        "completed"
    };
    m.artifact_gc_runs.with_label_values(&[outcome]).inc();
    let waiting_total = report.waiting.trees + report.waiting.manifests + report.waiting.blobs;
    span.record("live_versions", report.live_versions as u64);
    span.record("trees_deleted", report.deleted.trees as u64);
    span.record("manifests_deleted", report.deleted.manifests as u64);
    span.record("blobs_deleted", report.deleted.blobs as u64);
    span.record("bytes_freed", report.bytes_freed);
    span.record("skipped", report.skipped as u64);
    span.record("failed", report.failed as u64);
    span.record("waiting", waiting_total as u64);
    span.record("restored", report.restored as u64);
    span.record("stopped", report.stopped);
    let deleted_any = report.deleted.trees + report.deleted.manifests + report.deleted.blobs > 0;
    if report.failed > 0 {
        tracing::warn!(parent: &span, failed = report.failed, "artifact garbage collection could not delete some objects; the next sweep tries again");
    } else if deleted_any || report.stopped {
        tracing::info!(
            parent: &span,
            trees = report.deleted.trees,
            manifests = report.deleted.manifests,
            blobs = report.deleted.blobs,
            bytes_freed = report.bytes_freed,
            waiting = waiting_total,
            stopped = report.stopped,
            "artifact garbage collection deleted unreferenced files"
        );
    } else {
        tracing::debug!(parent: &span, waiting = waiting_total, "artifact garbage collection: nothing to delete yet");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use modelwatch_artifacts::{ArtifactPath, Tree};
    use modelwatch_registry::{Actor, NewModel, NewVersion, Role, SqliteStore};

    use super::*;

    async fn put(store: &ArtifactStore, tree: &Tree, path: &str, content: &'static [u8]) {
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(content))]);
        store
            .put_file(tree, &ArtifactPath::parse(path).unwrap(), body, None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn live_versions_reads_every_page_of_every_model_with_aliases_and_digests() {
        let dir = tempfile::tempdir().unwrap();
        let registry: Arc<dyn RegistryStore> = Arc::new(
            SqliteStore::open(&dir.path().join("registry.sqlite"))
                .await
                .unwrap(),
        );
        let admin = Actor::new("admin", Role::Admin);
        let digest = Sha256Digest::of(b"manifest").to_string();
        for name in ["a", "b"] {
            registry
                .create_model(
                    &admin,
                    NewModel {
                        name: name.into(),
                        ..NewModel::default()
                    },
                )
                .await
                .unwrap();
        }
        for _ in 0..3 {
            registry
                .create_version(&admin, "a", NewVersion::default())
                .await
                .unwrap();
        }
        let sealed = NewVersion {
            artifact_digest: Some(digest.clone()),
            ..NewVersion::default()
        };
        registry.create_version(&admin, "b", sealed).await.unwrap();
        registry
            .set_alias(&admin, "a", "champion", 2, "test")
            .await
            .unwrap();

        // Pages of one: every page of models and of versions is read.
        let mut live = read_live(registry.as_ref(), 1).await.unwrap();
        assert_eq!(live_versions(registry.as_ref()).await.unwrap().len(), 4);
        live.sort_by(|x, y| (&x.model, x.version).cmp(&(&y.model, y.version)));
        let seen: Vec<(&str, i64, bool, bool)> = live
            .iter()
            .map(|v| {
                (
                    v.model.as_str(),
                    v.version,
                    v.aliased,
                    v.artifact_digest.is_some(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("a", 1, false, false),
                ("a", 2, true, false),
                ("a", 3, false, false),
                ("b", 1, false, true)
            ]
        );
        let a2 = registry.get_version("a", 2).await.unwrap();
        assert_eq!(live[1].created, a2.created_at.timestamp_micros());
        // The key the collector keeps is the one uploads go to.
        assert_eq!(
            modelwatch_artifacts::gc::TreeKey::from(&crate::artifacts::version_tree(&a2)),
            live[1].tree()
        );

        // A sweep against that registry keeps a live version's files and
        // marks a deleted one's.
        let store = ArtifactStore::open_local(&dir.path().join("artifacts"), 1 << 20).unwrap();
        put(
            &store,
            &crate::artifacts::version_tree(&a2),
            "w.bin",
            b"live",
        )
        .await;
        let gone = Tree::Version {
            model: "a".into(),
            version: 9,
            created: 1,
        };
        put(&store, &gone, "w.bin", b"dead").await;
        let report = sweep(&store, registry.as_ref(), Duration::from_secs(1), &|| true)
            .await
            .unwrap();
        assert_eq!(report.live_versions, 4);
        assert_eq!(report.waiting.trees, 1, "{report:?}");
        assert_eq!(report.waiting.blobs, 1, "{report:?}");
    }
}
