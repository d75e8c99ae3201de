//! [`Views`] on the SQL backends: liveness, the SQL views' rows, change figures.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Connection;

use super::dialect::Store;
use super::records::*;
use crate::error::Result;
use crate::roles::{RegistryStats, Views};
use crate::types::*;

#[async_trait]
impl Views for Store {
    async fn ping(&self) -> Result<()> {
        self.read(async {
            let mut conn = self.reader().await?;
            conn.ping().await?;
            Ok(())
        })
        .await
    }

    async fn export_view(&self, view: RegistryView) -> Result<Vec<Value>> {
        // The database builds each row's JSON object itself; the statement
        // is chosen from a fixed set, never built from input. JSON fields
        // are stored as text and exported as text.
        let sql: &'static str = match view {
            RegistryView::Models => {
                concat!(
                    "SELECT CAST(",
                    json_object!(),
                    "('model', name, 'description', description, 'owner', owner, 'tags', tags,
                    'latest_version', next_version - 1, 'created_at', created_at, 'updated_at', updated_at) AS TEXT)
                 FROM models ORDER BY id"
                )
            }
            RegistryView::Versions => {
                concat!(
                    "SELECT CAST(",
                    json_object!(),
                    "('model', m.name, 'version', v.version, 'description', v.description,
                    'status', v.status, 'stage', v.stage, 'source_uri', v.source_uri, 'artifact_digest', v.artifact_digest,
                    'run_id', v.run_id, 'lineage', v.lineage, 'tags', v.tags, 'features', v.features,
                    'reference_uri', v.reference_uri, 'metadata', v.metadata, 'health', v.health,
                    'created_by', v.created_by, 'created_at', v.created_at, 'updated_at', v.updated_at) AS TEXT)
                 FROM versions v JOIN models m ON m.id = v.model_id ORDER BY m.id, v.version"
                )
            }
            RegistryView::Aliases => {
                concat!(
                    "SELECT CAST(",
                    json_object!(),
                    "('model', m.name, 'alias', a.name, 'version', a.version,
                    'updated_by', a.updated_by, 'updated_at', a.updated_at) AS TEXT)
                 FROM aliases a JOIN models m ON m.id = a.model_id ORDER BY m.id, a.name"
                )
            }
            RegistryView::AliasMoves => {
                concat!(
                    "SELECT CAST(",
                    json_object!(),
                    "('model', m.name, 'alias', x.alias, 'ts', x.at, 'kind', x.kind,
                    'from_version', x.from_version, 'to_version', x.to_version, 'actor', x.actor,
                    'reason', x.reason) AS TEXT)
                 FROM alias_moves x JOIN models m ON m.id = x.model_id ORDER BY x.id"
                )
            }
            RegistryView::Recommendations => {
                concat!(
                    "SELECT CAST(",
                    json_object!(),
                    "('id', r.id, 'model', m.name, 'version', r.version, 'kind', r.kind,
                    'severity', r.severity, 'status', r.status, 'reason', r.reason, 'evidence', r.evidence,
                    'raised_by', r.raised_by, 'created_at', r.created_at, 'updated_at', r.updated_at,
                    'resolved_by', r.resolved_by, 'resolved_at', r.resolved_at) AS TEXT)
                 FROM recommendations r JOIN models m ON m.id = r.model_id ORDER BY r.id"
                )
            }
            RegistryView::AuditLog => {
                concat!(
                    "SELECT CAST(",
                    json_object!(),
                    "('seq', seq, 'ts', at, 'actor', actor, 'action', action, 'target', target,
                    'before', before, 'after', after, 'prev_hash', prev_hash, 'hash', hash) AS TEXT)
                 FROM audit_log ORDER BY seq"
                )
            }
        };
        self.read(async {
            let mut conn = self.reader().await?;
            let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *conn).await?;
            rows.iter()
                .map(|r| {
                    let mut row = parse_json(view.table_name(), r)?;
                    if view == RegistryView::Versions {
                        metadata_columns(&mut row)?;
                    }
                    Ok(row)
                })
                .collect()
        })
        .await
    }

    fn stats(&self) -> RegistryStats {
        self.change_stats()
    }
}

/// The versions view shows each metadata section as its own column (JSON
/// text, null when not declared), so SQL can ask `model_card IS NULL`
/// without JSON functions.
fn metadata_columns(row: &mut Value) -> Result<()> {
    let Some(obj) = row.as_object_mut() else {
        return Ok(());
    };
    let stored = obj.remove("metadata");
    let metadata: ModelMetadata = match stored.as_ref().and_then(Value::as_str) {
        Some(text) => parse_json("versions.metadata", text)?,
        None => ModelMetadata::default(),
    };
    let text = |v: Option<Value>| match v {
        Some(v) => Value::String(v.to_string()),
        None => Value::Null,
    };
    obj.insert(
        "flavors".into(),
        text((!metadata.flavors.is_empty()).then(|| serde_json::json!(metadata.flavors))),
    );
    obj.insert(
        "signature".into(),
        text(metadata.signature.map(|s| serde_json::json!(s))),
    );
    obj.insert("input_example".into(), text(metadata.input_example));
    obj.insert(
        "environment".into(),
        text(metadata.environment.map(|e| serde_json::json!(e))),
    );
    obj.insert(
        "model_card".into(),
        text(metadata.model_card.map(|c| serde_json::json!(c))),
    );
    Ok(())
}
