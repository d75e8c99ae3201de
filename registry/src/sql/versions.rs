//! [`Versions`] on the SQL backends: versions, their tags and MLflow stages.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::dialect::{Db, Store};
use super::filter::{Scope, push_where};
use super::records::*;
use super::tx::Tx;
use crate::error::{Error, Result};
use crate::filter;
use crate::roles::Versions;
use crate::rules;
use crate::rules::recommendation::VERSION_DELETED_NOTE;
use crate::types::*;
use crate::validate;

/// Columns of the `versions` table, unaliased (native listing).
const VERSIONS: Scope = Scope {
    name: "NULL",
    owner: None,
    tags: "tags",
    run_id: Some("run_id"),
    version: Some("version"),
    source: Some("source_uri"),
    status: Some("status"),
    created_at: "created_at",
    updated_at: "updated_at",
    id: "version",
};

/// The versions in `stage`, locked: they are moved out of it after the
/// change's first audit entry, and locking them before it keeps the
/// lock order (rows, then the chain head) of every change.
async fn stage_versions(tx: &mut Tx<'_>, model_id: i64, stage: Stage) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT version FROM versions WHERE model_id = $1 AND stage = $2 ORDER BY version",
        row_lock!("FOR UPDATE")
    ))
    .bind(model_id)
    .bind(stage.as_str())
    .fetch_all(&mut *tx.conn)
    .await?)
}

async fn set_stage(
    tx: &mut Tx<'_>,
    model: &str,
    model_id: i64,
    version: i64,
    (from, to): (Stage, Stage),
) -> Result<()> {
    sqlx::query(
        "UPDATE versions SET stage = $1, updated_at = $2 WHERE model_id = $3 AND version = $4",
    )
    .bind(to.as_str())
    .bind(&tx.now)
    .bind(model_id)
    .bind(version)
    .execute(&mut *tx.conn)
    .await?;
    tx.audit(
        "version.stage",
        &version_target(model, version),
        Some(serde_json::json!({ "stage": from })),
        Some(serde_json::json!({ "stage": to })),
    )
    .await
}

#[async_trait]
impl Versions for Store {
    async fn create_version(&self, actor: &Actor, model: &str, new: NewVersion) -> Result<Version> {
        validate::new_version(&new)?;
        let mut new = new;
        if let Some(features) = rules::metadata::features_from_signature(&new.features, &new.metadata)
        {
            new.features = features;
        }
        let args = (model.to_string(), new);
        self.audited(actor, args, |mut tx, (model, mut new)| {
            Box::pin(async move {
                // The model row stays locked until commit: concurrent
                // registrations take their numbers one after another.
                let id = lock_model(&mut *tx.conn, &model).await?;
                if let Some(run) = new.run_id.as_deref() {
                    super::tracking::lineage_from_run(&mut *tx.conn, run, &mut new.lineage).await?;
                }
                if let Some(parent) = new.lineage.parent_version
                    && !version_exists(&mut *tx.conn, id, parent).await?
                {
                    return Err(Error::invalid(
                        "lineage.parent_version",
                        format!("model {model:?} has no version {parent}"),
                    ));
                }
                // Allocating the number and inserting the row in the
                // transaction holding the model row's lock keeps numbers
                // unique and gapless under concurrent creation, from any
                // number of daemons.
                let number: i64 = sqlx::query_scalar(
                    "UPDATE models SET next_version = next_version + 1, updated_at = $1 WHERE id = $2 RETURNING next_version - 1",
                )
                .bind(&tx.now)
                .bind(id)
                .fetch_one(&mut *tx.conn)
                .await?;
                sqlx::query(
                    "INSERT INTO versions (model_id, version, description, source_uri, artifact_digest, run_id,
                         lineage, tags, features, reference_uri, metadata, status, created_by, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'ready', $12, $13, $14)",
                )
                .bind(id)
                .bind(number)
                .bind(&new.description)
                .bind(&new.source_uri)
                .bind(&new.artifact_digest)
                .bind(&new.run_id)
                .bind(to_json(&new.lineage))
                .bind(to_json(&new.tags))
                .bind(to_json(&new.features))
                .bind(&new.reference_uri)
                .bind(to_json(&new.metadata))
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .bind(&tx.now)
                .execute(&mut *tx.conn)
                .await?;
                // A new version has no aliases and no recommendations yet:
                // build the record from what was inserted instead of
                // reading it back.
                let at = parse_time(&tx.now)?;
                let version = Version {
                    model: model.clone(),
                    version: number,
                    description: new.description,
                    source_uri: new.source_uri,
                    artifact_digest: new.artifact_digest,
                    run_id: new.run_id,
                    lineage: new.lineage,
                    tags: new.tags,
                    features: new.features,
                    reference_uri: new.reference_uri,
                    metadata: new.metadata,
                    status: VersionStatus::Ready,
                    stage: Stage::None,
                    aliases: Vec::new(),
                    health: None,
                    recommendations: Vec::new(),
                    created_by: tx.actor.name.clone(),
                    created_at: at,
                    updated_at: at,
                };
                tx.audit(
                    "version.create",
                    &version_target(&model, number),
                    None,
                    Some(to_value(&version)),
                )
                .await?;
                Ok(version)
            })
        })
        .await
    }

    async fn get_version(&self, model: &str, version: i64) -> Result<Version> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_version(&mut conn, model, version).await
        })
        .await
    }

    async fn list_versions(
        &self,
        model: &str,
        filter: &VersionFilter,
        page: &PageRequest,
    ) -> Result<Page<Version>> {
        self.read(async {
            let after = decode_cursor(&page.cursor)?;
            let mut conn = self.reader().await?;
            let id = model_id(&mut conn, model).await?;
            let predicates = filter::version_filter(filter)?;
            let mut q = QueryBuilder::<Db>::new("SELECT * FROM versions WHERE model_id = ");
            q.push_bind(id).push(" AND version > ").push_bind(after);
            push_where(&mut q, &predicates, &VERSIONS);
            q.push(" ORDER BY version LIMIT ")
                .push_bind(i64::from(page.limit) + 1);
            let rows = q.build().fetch_all(&mut *conn).await?;
            let versions = versions_from_rows(&mut conn, model, id, &rows).await?;
            Ok(paginate(
                versions.into_iter().map(|v| (v.version, v)).collect(),
                page.limit,
            ))
        })
        .await
    }

    async fn update_version(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        update: VersionUpdate,
    ) -> Result<Version> {
        let args = (model.to_string(), update);
        self.audited(actor, args, move |mut tx, (model, update)| {
            Box::pin(async move {
                let before = load_version_locked(&mut *tx.conn, &model, version).await?;
                let description = update
                    .description
                    .unwrap_or_else(|| before.description.clone());
                let status = update.status.unwrap_or(before.status);
                let metadata = match update.metadata {
                    Some(m) => rules::metadata::updated(&before, m)?,
                    None => before.metadata.clone(),
                };
                let features = update.features.unwrap_or_else(|| before.features.clone());
                let features = rules::metadata::features_from_signature(&features, &metadata)
                    .unwrap_or(features);
                validate::new_version(&NewVersion {
                    description: description.clone(),
                    features: features.clone(),
                    metadata: metadata.clone(),
                    ..Default::default()
                })?;
                let id = model_id(&mut *tx.conn, &model).await?;
                sqlx::query("UPDATE versions SET description = $1, status = $2, features = $3, metadata = $4, updated_at = $5 WHERE model_id = $6 AND version = $7")
                    .bind(&description)
                    .bind(status.as_str())
                    .bind(to_json(&features))
                    .bind(to_json(&metadata))
                    .bind(&tx.now)
                    .bind(id)
                    .bind(version)
                    .execute(&mut *tx.conn)
                    .await?;
                let after = load_version(&mut *tx.conn, &model, version).await?;
                tx.audit(
                    "version.update",
                    &version_target(&model, version),
                    Some(to_value(&before)),
                    Some(to_value(&after)),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn seal_artifacts(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        artifact_digest: &str,
        read: ModelMetadata,
    ) -> Result<Version> {
        validate::digest("artifact_digest", artifact_digest)?;
        validate::metadata(&read)?;
        let args = (model.to_string(), artifact_digest.to_string(), read);
        self.audited(actor, args, move |mut tx, (model, digest, read)| {
            Box::pin(async move {
                let before = load_version_locked(&mut *tx.conn, &model, version).await?;
                if let Some(existing) = &before.artifact_digest {
                    return Err(Error::Conflict(format!(
                        "version {version} of model {model:?} already has artifact_digest {existing}; its files are fixed, register a new version for new files"
                    )));
                }
                let metadata = rules::metadata::sealed(&before.metadata, read);
                let features = rules::metadata::features_from_signature(&before.features, &metadata)
                    .unwrap_or_else(|| before.features.clone());
                let id = model_id(&mut *tx.conn, &model).await?;
                sqlx::query("UPDATE versions SET artifact_digest = $1, metadata = $2, features = $3, updated_at = $4 WHERE model_id = $5 AND version = $6")
                    .bind(&digest)
                    .bind(to_json(&metadata))
                    .bind(to_json(&features))
                    .bind(&tx.now)
                    .bind(id)
                    .bind(version)
                    .execute(&mut *tx.conn)
                    .await?;
                let after = load_version(&mut *tx.conn, &model, version).await?;
                tx.audit(
                    "version.artifacts_sealed",
                    &version_target(&model, version),
                    Some(serde_json::json!({
                        "artifact_digest": null,
                        "metadata": before.metadata,
                        "features": before.features,
                    })),
                    Some(serde_json::json!({
                        "artifact_digest": digest,
                        "metadata": after.metadata,
                        "features": after.features,
                    })),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn delete_version(&self, actor: &Actor, model: &str, version: i64) -> Result<()> {
        self.audited(actor, model.to_string(), move |mut tx, model| {
            Box::pin(async move {
                // Locked before it is read: an alias set meanwhile (which
                // holds the row FOR SHARE) has committed, and is seen.
                let before = load_version_locked(&mut *tx.conn, &model, version).await?;
                tx.protection.check(
                    &tx.actor,
                    before.stage.as_str(),
                    "deleting a version in that stage",
                )?;
                if !before.aliases.is_empty() {
                    return Err(Error::Conflict(format!(
                        "version {version} of model {model:?} is the target of alias(es) {}; move or delete them first",
                        before.aliases.join(", ")
                    )));
                }
                let id = model_id(&mut *tx.conn, &model).await?;
                sqlx::query("DELETE FROM versions WHERE model_id = $1 AND version = $2")
                    .bind(id)
                    .bind(version)
                    .execute(&mut *tx.conn)
                    .await?;
                // Its open recommendations can no longer be acted on.
                sqlx::query(
                    "UPDATE recommendations SET status = 'superseded', resolved_by = $1, resolved_at = $2,
                         resolution_note = $3, updated_at = $4
                     WHERE model_id = $5 AND version = $6 AND status = 'open'",
                )
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .bind(VERSION_DELETED_NOTE)
                .bind(&tx.now)
                .bind(id)
                .bind(version)
                .execute(&mut *tx.conn)
                .await?;
                tx.audit(
                    "version.delete",
                    &version_target(&model, version),
                    Some(to_value(&before)),
                    None,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn set_tag(
        &self,
        actor: &Actor,
        target: &TagTarget,
        key: &str,
        value: Option<&str>,
    ) -> Result<Tags> {
        validate::tag_key(key)?;
        if let Some(v) = value {
            validate::tag_value(key, v)?;
        }
        let args = (target.clone(), key.to_string(), value.map(str::to_string));
        self.audited(actor, args, |mut tx, (target, key, value)| {
            Box::pin(async move {
                let (mut tags, audit_target, action_prefix) = match &target {
                    TagTarget::Model { model } => (
                        load_model_locked(&mut *tx.conn, model).await?.tags,
                        model_target(model),
                        "model",
                    ),
                    TagTarget::Version { model, version } => (
                        load_version_locked(&mut *tx.conn, model, *version)
                            .await?
                            .tags,
                        version_target(model, *version),
                        "version",
                    ),
                };
                let before = tags.get(&key).cloned();
                match &value {
                    Some(v) => {
                        tags.insert(key.clone(), v.clone());
                        validate::tags(&tags)?;
                    }
                    None => {
                        if tags.remove(&key).is_none() {
                            return Err(Error::not_found(format!("tag {key:?} on {audit_target}")));
                        }
                    }
                }
                match &target {
                    TagTarget::Model { model } => {
                        sqlx::query("UPDATE models SET tags = $1, updated_at = $2 WHERE name = $3")
                            .bind(to_json(&tags))
                            .bind(&tx.now)
                            .bind(model)
                            .execute(&mut *tx.conn)
                            .await?;
                    }
                    TagTarget::Version { model, version } => {
                        let id = model_id(&mut *tx.conn, model).await?;
                        sqlx::query("UPDATE versions SET tags = $1, updated_at = $2 WHERE model_id = $3 AND version = $4")
                            .bind(to_json(&tags))
                            .bind(&tx.now)
                            .bind(id)
                            .bind(version)
                            .execute(&mut *tx.conn)
                            .await?;
                    }
                }
                let action = format!(
                    "{action_prefix}.tag.{}",
                    if value.is_some() { "set" } else { "delete" }
                );
                tx.audit(
                    &action,
                    &audit_target,
                    before.map(|b| serde_json::json!({ key.as_str(): b })),
                    value.map(|v| serde_json::json!({ key.as_str(): v })),
                )
                .await?;
                Ok(tags)
            })
        })
        .await
    }

    async fn transition_stage(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<Version> {
        if archive_existing && !matches!(stage, Stage::Staging | Stage::Production) {
            return Err(Error::invalid(
                "archive_existing_versions",
                format!(
                    "archive_existing_versions applies only to the Staging and Production stages, not {stage}"
                ),
            ));
        }
        self.protection
            .check(actor, stage.as_str(), "moving a version into that stage")?;
        self.audited(actor, model.to_string(), move |mut tx, model| {
            Box::pin(async move {
                let before = load_version_locked(&mut *tx.conn, &model, version).await?;
                tx.protection.check(
                    &tx.actor,
                    before.stage.as_str(),
                    "moving a version out of that stage",
                )?;
                let id = model_id(&mut *tx.conn, &model).await?;
                if archive_existing {
                    for other in stage_versions(&mut tx, id, stage).await? {
                        if other != version {
                            set_stage(&mut tx, &model, id, other, (stage, Stage::Archived)).await?;
                        }
                    }
                }
                set_stage(&mut tx, &model, id, version, (before.stage, stage)).await?;
                load_version(&mut *tx.conn, &model, version).await
            })
        })
        .await
    }
}
