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

/// The table definitions: sort keys put a version's rows together (the
/// evaluator reads per version), index columns let the manifest prune files.
pub fn table_defs(retention: Duration) -> Vec<TableDef> {
    collectors::all_schemas()
        .into_iter()
        .map(|(name, schema)| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let has = |c: &str| names.contains(&c);
            let mut sort: Vec<&str> = ["model", "version", "metric", "name"]
                .into_iter()
                .filter(|c| has(c))
                .collect();
            let index = sort.clone();
            sort.push("ts");
            let def = TableDef::new(name, schema.clone())
                .with_sort_key(sort)
                .with_index_columns(index);
            // Reference data is what drift is measured against: it is kept
            // until its version is gone, not aged out.
            if name == collectors::schema::REFERENCE {
                def
            } else {
                def.with_retention(retention)
            }
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
        collectors::check_remote_write_headers(content_type, content_encoding, version)?;
        let batches = collectors::decode_remote_write(body, &self.remote_write)?;
        let mut set = WriteSet::new();
        if batches.samples.num_rows() > 0 {
            set.push(collectors::schema::SAMPLES, batches.samples);
        }
        if batches.histograms.num_rows() > 0 {
            set.push(collectors::schema::HISTOGRAMS, batches.histograms);
        }
        if set.rows() > 0 {
            self.store.write(set).await?;
        }
        Ok(batches.summary)
    }
}
