//! Telemetry wiring: the collectors' tables declared in the history store,
//! and the ingest paths that decode with `modelwatch-collectors` and write
//! through `modelwatch-history`. No decoding or storage logic lives here.

use std::path::Path;
use std::time::Duration;

use modelwatch_collectors::{self as collectors, RemoteWriteConfig, RemoteWriteSummary};
use modelwatch_history::{self as history, HistoryConfig, HistoryStore, TableDef, WriteSet};

/// Default retention of raw telemetry.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why an ingest request failed; `http::error` turns it into a status.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Decode(#[from] collectors::Error),
    #[error(transparent)]
    Store(#[from] history::Error),
}

impl IngestError {
    /// The `reason` label of `modelwatch_ingest_rejected_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Decode(e) => match e.class() {
                collectors::ErrorClass::BadRequest => "malformed",
                collectors::ErrorClass::PayloadTooLarge => "too_large",
                collectors::ErrorClass::UnsupportedMediaType => "unsupported_media_type",
                collectors::ErrorClass::Internal => "internal",
            },
            IngestError::Store(history::Error::Overloaded { .. }) => "overloaded",
            IngestError::Store(_) => "store_failed",
        }
    }
}

/// Counts an ingest request's outcome in `/metrics`: the rows stored per
/// table, or the reason it was refused.
fn count_outcome<T>(
    protocol: &str,
    stored: &[(String, usize)],
    outcome: Result<T, IngestError>,
) -> Result<T, IngestError> {
    let m = crate::metrics::metrics();
    match &outcome {
        Ok(_) => {
            for (table, rows) in stored {
                m.ingest_rows
                    .with_label_values(&[protocol, table])
                    .inc_by(*rows as u64);
            }
        }
        Err(e) => m
            .ingest_rejected
            .with_label_values(&[protocol, e.reason()])
            .inc(),
    }
    outcome
}

/// Rows per table of a write, taken before the write consumes it.
fn rows_by_table(set: &WriteSet) -> Vec<(String, usize)> {
    set.entries()
        .map(|(table, batch)| (table.to_string(), batch.num_rows()))
        .collect()
}

/// The table definitions. Sort keys put one metric's (or span/log name's)
/// rows together, then a version's: dashboards and alert queries select a
/// metric, so with small Parquet pages the page index skips the others; a
/// version's rows of one metric stay contiguous for the evaluator. Index
/// columns let the manifest prune whole files.
pub fn table_defs(retention: Duration) -> Vec<TableDef> {
    collectors::all_schemas()
        .into_iter()
        .map(|(name, schema)| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let has = |c: &str| names.contains(&c);
            let mut sort: Vec<&str> = ["metric", "name", "model", "version"]
                .into_iter()
                .filter(|c| has(c))
                .collect();
            let index = sort.clone();
            sort.push("ts");
            TableDef::new(name, schema.clone())
                .with_sort_key(sort)
                .with_index_columns(index)
                .with_retention(retention)
        })
        .collect()
}

/// The telemetry side of the daemon.
pub struct Telemetry {
    pub store: HistoryStore,
    pub remote_write: RemoteWriteConfig,
}

impl Telemetry {
    pub async fn open(
        dir: &Path,
        config: HistoryConfig,
        remote_write: RemoteWriteConfig,
    ) -> history::Result<Self> {
        let store = HistoryStore::open(dir, table_defs(DEFAULT_RETENTION), config).await?;
        Ok(Self {
            store,
            remote_write,
        })
    }

    /// Prometheus remote write 1.0: headers checked, body decoded in full,
    /// then written in one all-or-nothing WAL record. Returns after fsync.
    pub async fn remote_write(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        version: Option<&str>,
        body: &[u8],
    ) -> Result<RemoteWriteSummary, IngestError> {
        const PROTOCOL: &str = "remote_write";
        let mut stored = Vec::new();
        let outcome = async {
            collectors::check_remote_write_headers(content_type, content_encoding, version)?;
            let batches = collectors::decode_remote_write(body, &self.remote_write)?;
            let mut set = WriteSet::new();
            if batches.samples.num_rows() > 0 {
                set.push(collectors::schema::SAMPLES, batches.samples);
            }
            if batches.histograms.num_rows() > 0 {
                set.push(collectors::schema::HISTOGRAMS, batches.histograms);
            }
            stored = rows_by_table(&set);
            if set.rows() > 0 {
                self.store.write(set).await?;
            }
            Ok(batches.summary)
        }
        .await;
        if let Ok(summary) = &outcome {
            crate::metrics::metrics()
                .ingest_rows_without_model
                .with_label_values(&[PROTOCOL])
                .inc_by(summary.samples_without_model as u64);
        }
        count_outcome(PROTOCOL, &stored, outcome)
    }
}
