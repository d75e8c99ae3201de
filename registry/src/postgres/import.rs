//! `modelwatch migrate --to postgres://…`: a SQLite registry copied into an
//! empty PostgreSQL database, row for row, in one transaction.
//!
//! The stored forms are the same on both backends (RFC 3339 text, JSON
//! text, the same ids), so the copy is mechanical: every table the two
//! schemas share is copied in foreign-key order (read from SQLite's
//! `pragma foreign_key_list`), each row with its id, each column read as
//! the type PostgreSQL declares for it; then the identity sequences are
//! moved past the copied ids. The audit chain is verified on arrival,
//! inside the copy's transaction: unless the chain read back from
//! PostgreSQL verifies with as many entries as SQLite held, nothing is
//! committed. A target holding any registry row is refused.
//!
//! Not copied: the cluster's membership and leases (they describe running
//! daemons), and PostgreSQL's own lock row (`audit_head`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{
    AssertSqlSafe, Connection, PgConnection, Postgres, QueryBuilder, Row, SqliteConnection,
};

use super::PgStore;
use crate::error::{Error, Result};

/// Tables that describe the running daemons, not the registry.
const NOT_COPIED: [&str; 3] = ["_sqlx_migrations", "cluster_members", "duty_leases"];

/// Rows inserted per statement.
const BATCH: usize = 500;

/// A statement naming tables and columns: their names come from the two
/// schemas (`sqlite_master`, `information_schema`), never from input.
fn schema_sql(sql: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(sql)
}

/// How far the import is, after each batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProgress {
    pub table: String,
    /// Rows of this table copied so far.
    pub copied: u64,
    /// Rows of this table in all.
    pub total: u64,
    /// Rows of every table copied so far, and in all.
    pub copied_all: u64,
    pub total_all: u64,
}

/// What an import copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows per table, in copy order.
    pub tables: Vec<(String, u64)>,
    /// Audit entries, verified on PostgreSQL.
    pub audit_entries: i64,
}

/// A PostgreSQL column's type, as the copy binds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnType {
    Integer,
    Text,
    Boolean,
    Float,
}

impl ColumnType {
    fn from_postgres(table: &str, column: &str, data_type: &str) -> Result<Self> {
        Ok(match data_type {
            "bigint" | "integer" | "smallint" => ColumnType::Integer,
            "text" | "character varying" => ColumnType::Text,
            "boolean" => ColumnType::Boolean,
            "double precision" | "real" => ColumnType::Float,
            other => {
                return Err(Error::Corrupt(format!(
                    "{table}.{column} has type {other}, which the import cannot copy"
                )));
            }
        })
    }
}

impl PgStore {
    /// Copies the SQLite registry at `sqlite` (migrated to this binary's
    /// schema first, as `serve` would) into this store's database, which
    /// must hold no registry data; `progress` is called after every batch.
    pub async fn import_sqlite(
        &self,
        sqlite: &Path,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportReport> {
        if !sqlite.exists() {
            return Err(Error::invalid(
                "source",
                format!(
                    "{} does not exist; pass the data directory of the SQLite registry",
                    sqlite.display()
                ),
            ));
        }
        crate::SqliteStore::open(sqlite).await?.close().await;
        let mut source = SqliteConnection::connect_with(
            &SqliteConnectOptions::new().filename(sqlite).read_only(true),
        )
        .await?;
        // One read transaction: every table from the same snapshot, even
        // while a daemon still writes to the file.
        let mut source = source.begin().await?;
        let tables = copy_order(&mut source).await?;
        let mut target = self.pool.acquire().await?;
        let columns = target_columns(&mut target, &tables).await?;
        refuse_non_empty(&mut target, &tables).await?;

        let mut totals = Vec::with_capacity(tables.len());
        for table in &tables {
            let n: i64 = sqlx::query_scalar(schema_sql(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *source)
                .await?;
            totals.push(u64::try_from(n).unwrap_or(0));
        }
        let total_all = totals.iter().sum();
        let source_audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&mut *source)
            .await?;

        let mut tx = Connection::begin(&mut *target).await?;
        let mut copied_all = 0;
        let mut report = Vec::with_capacity(tables.len());
        for (table, total) in tables.iter().zip(totals) {
            let cols = &columns[table];
            // Rows seeded by the migrations (the outbox cursor) make way
            // for the source's.
            sqlx::query(schema_sql(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
            let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
            let select = format!("SELECT {} FROM {table} ORDER BY rowid", names.join(", "));
            let rows = sqlx::query(schema_sql(select))
                .fetch_all(&mut *source)
                .await?;
            let mut copied = 0;
            for chunk in rows.chunks(BATCH) {
                insert_batch(&mut tx, table, cols, chunk).await?;
                copied += chunk.len() as u64;
                copied_all += chunk.len() as u64;
                progress(&ImportProgress {
                    table: table.clone(),
                    copied,
                    total,
                    copied_all,
                    total_all,
                });
            }
            if rows.is_empty() {
                progress(&ImportProgress {
                    table: table.clone(),
                    copied: 0,
                    total: 0,
                    copied_all,
                    total_all,
                });
            }
            reset_identity(&mut tx, table).await?;
            report.push((table.clone(), copied));
        }
        let entries = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(super::records::audit_from_row)
            .collect::<Result<Vec<_>>>()?;
        let verified = crate::rules::audit::verify(entries);
        if !verified.ok || verified.entries_checked != source_audit {
            return Err(Error::Corrupt(format!(
                "the audit chain does not verify on PostgreSQL ({} of {source_audit} entries checked{}); \
                 nothing was imported",
                verified.entries_checked,
                verified
                    .first_broken_seq
                    .map(|s| format!(", first broken at seq {s}"))
                    .unwrap_or_default()
            )));
        }
        tx.commit().await?;
        Ok(ImportReport {
            tables: report,
            audit_entries: verified.entries_checked,
        })
    }
}

/// The SQLite registry's tables, each after the tables it references.
async fn copy_order(source: &mut SqliteConnection) -> Result<Vec<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut *source)
    .await?;
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| !NOT_COPIED.contains(&n.as_str()))
        .collect();
    let mut references = BTreeMap::new();
    for name in &names {
        let parents: Vec<String> =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(name)
                .fetch_all(&mut *source)
                .await?;
        let parents: BTreeSet<String> = parents.into_iter().filter(|p| p != name).collect();
        references.insert(name.clone(), parents);
    }
    let mut order = Vec::with_capacity(names.len());
    while order.len() < names.len() {
        let ready: Vec<String> = names
            .iter()
            .filter(|n| !order.contains(*n))
            .filter(|n| references[*n].iter().all(|p| order.contains(p)))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(Error::Corrupt(
                "the SQLite registry's tables reference each other in a cycle".into(),
            ));
        }
        order.extend(ready);
    }
    Ok(order)
}

/// Each table's columns and types on PostgreSQL; every table must exist.
async fn target_columns(
    target: &mut PgConnection,
    tables: &[String],
) -> Result<BTreeMap<String, Vec<(String, ColumnType)>>> {
    let mut out = BTreeMap::new();
    for table in tables {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *target)
        .await?;
        if rows.is_empty() {
            return Err(Error::Corrupt(format!(
                "table {table} of the SQLite registry does not exist on PostgreSQL"
            )));
        }
        let cols = rows
            .into_iter()
            .map(|(name, ty)| Ok((name.clone(), ColumnType::from_postgres(table, &name, &ty)?)))
            .collect::<Result<Vec<_>>>()?;
        out.insert(table.clone(), cols);
    }
    Ok(out)
}

/// Rows the migrations seed, which are not registry data: which rows of
/// these tables are data.
const SEEDED: [(&str, &str); 2] = [
    // The outbox cursor.
    ("webhook_cursor", "FALSE"),
    // MLflow's default experiment.
    ("experiments", "id <> 0"),
];

/// Refuses a target holding registry data.
async fn refuse_non_empty(target: &mut PgConnection, tables: &[String]) -> Result<()> {
    for table in tables {
        let data = SEEDED
            .iter()
            .find(|(t, _)| t == table)
            .map_or("TRUE", |(_, rows)| rows);
        let any: bool = sqlx::query_scalar(schema_sql(format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE {data})"
        )))
        .fetch_one(&mut *target)
        .await?;
        if any {
            return Err(Error::Conflict(format!(
                "the target database already holds registry data (table {table} has rows); \
                 migrate into an empty database (createdb a new one)"
            )));
        }
    }
    Ok(())
}

async fn insert_batch(
    tx: &mut PgConnection,
    table: &str,
    cols: &[(String, ColumnType)],
    rows: &[SqliteRow],
) -> Result<()> {
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    // QueryBuilder takes the statement's start as given (it binds values).
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE ",
        names.join(", ")
    ));
    let mut failure = None;
    q.push_values(rows, |mut values, row| {
        for (i, (name, ty)) in cols.iter().enumerate() {
            let bound = match ty {
                ColumnType::Integer => row.try_get::<Option<i64>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
                ColumnType::Text => row.try_get::<Option<String>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
                ColumnType::Boolean => row.try_get::<Option<bool>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
                ColumnType::Float => row.try_get::<Option<f64>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
            };
            if let Err(e) = bound
                && failure.is_none()
            {
                failure = Some(Error::Corrupt(format!("{table}.{name}: {e}")));
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    q.build().execute(&mut *tx).await?;
    Ok(())
}

/// Moves the table's identity sequence (if it has one) past its ids.
async fn reset_identity(tx: &mut PgConnection, table: &str) -> Result<()> {
    let identity: Option<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
    )
    .bind(table)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(column) = identity {
        sqlx::query(schema_sql(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
             COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
        )))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
