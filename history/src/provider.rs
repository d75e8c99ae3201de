//! The DataFusion table provider: buffer ∪ Parquet files, with files pruned
//! from the manifest by time range and index-column filters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use datafusion::physical_expr_adapter::PhysicalExprAdapterFactory;

use crate::manifest::FileMeta;
use crate::promoted::PromotedKeysAdapterFactory;
use crate::store::Shared;
use crate::table::{TIME_COLUMN, TableDef};

/// A history table as a DataFusion [`TableProvider`].
///
/// Every scan takes a consistent snapshot of the manifest and the buffer, so
/// a concurrent persist never makes rows appear twice or vanish.
pub struct HistoryTable {
    shared: Arc<Shared>,
    idx: usize,
}

impl std::fmt::Debug for HistoryTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryTable")
            .field("table", &self.def().name)
            .finish()
    }
}

impl HistoryTable {
    pub(crate) fn new(shared: Arc<Shared>, idx: usize) -> Self {
        Self { shared, idx }
    }

    fn def(&self) -> &TableDef {
        &self.shared.defs[self.idx]
    }
}

/// Files written before a key was promoted read its column from the map.
fn promoted_keys_adapter(def: &TableDef) -> Option<Arc<dyn PhysicalExprAdapterFactory>> {
    (!def.promoted_keys().is_empty()).then(|| {
        Arc::new(PromotedKeysAdapterFactory::new(
            def.promoted_keys().to_vec(),
        )) as _
    })
}

/// What the filters say about which files can hold matching rows.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Pruning {
    /// Inclusive lower bound on `ts`, micros.
    pub min_ts: Option<i64>,
    /// Inclusive upper bound on `ts`, micros.
    pub max_ts: Option<i64>,
    /// Index column → the only values a matching row may have.
    pub values: BTreeMap<String, BTreeSet<String>>,
    /// The filters can match nothing.
    pub empty: bool,
}

fn ts_micros(v: &ScalarValue, round_up: bool) -> Option<i64> {
    let div = |x: i64, d: i64| {
        if round_up {
            x.div_euclid(d) + i64::from(x.rem_euclid(d) != 0)
        } else {
            x.div_euclid(d)
        }
    };
    match v {
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampMillisecond(Some(x), _) => x.checked_mul(1_000),
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1_000_000),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(div(*x, 1_000)),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_micros()),
        _ => None,
    }
}

fn text(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        ScalarValue::Dictionary(_, inner) => text(inner),
        _ => None,
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

impl Pruning {
    /// Read what the (conjunctive) filters imply for `def`.
    pub(crate) fn from_filters(def: &TableDef, filters: &[Expr]) -> Self {
        let mut p = Pruning::default();
        for f in filters {
            for e in split_conjunction(f) {
                p.add(def, e);
            }
        }
        if let (Some(a), Some(b)) = (p.min_ts, p.max_ts) {
            p.empty |= a > b;
        }
        p.empty |= p.values.values().any(|s| s.is_empty());
        p
    }

    fn lower(&mut self, v: i64) {
        self.min_ts = Some(self.min_ts.map_or(v, |m| m.max(v)));
    }

    fn upper(&mut self, v: i64) {
        self.max_ts = Some(self.max_ts.map_or(v, |m| m.min(v)));
    }

    fn restrict(&mut self, col: &str, vals: BTreeSet<String>) {
        match self.values.get_mut(col) {
            Some(cur) => cur.retain(|v| vals.contains(v)),
            None => {
                self.values.insert(col.to_string(), vals);
            }
        }
    }

    fn add(&mut self, def: &TableDef, e: &Expr) {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (col_expr, lit, op) = match (literal(right), literal(left)) {
                    (Some(l), _) => (left.as_ref(), l, *op),
                    (_, Some(l)) => match op.swap() {
                        Some(op) => (right.as_ref(), l, op),
                        None => return,
                    },
                    _ => return,
                };
                let Some(col) = column_name(col_expr) else {
                    return;
                };
                // A cast of `ts` changes what comparisons mean: only a plain
                // column bounds the time range.
                if col == TIME_COLUMN && matches!(col_expr, Expr::Column(_)) {
                    // The literal rounded up and down to whole microseconds.
                    let (up, down) = (ts_micros(lit, true), ts_micros(lit, false));
                    let (lower, upper) = match op {
                        Operator::GtEq => (up, None),
                        Operator::Gt => (down.map(|v| v.saturating_add(1)), None),
                        Operator::LtEq => (None, down),
                        Operator::Lt => (None, up.map(|v| v.saturating_sub(1))),
                        // Both bounds or neither.
                        Operator::Eq => up.zip(down).unzip(),
                        _ => (None, None),
                    };
                    if let Some(v) = lower {
                        self.lower(v);
                    }
                    if let Some(v) = upper {
                        self.upper(v);
                    }
                } else if op == Operator::Eq
                    && def.index_columns.iter().any(|c| c == col)
                    && let Some(v) = text(lit)
                {
                    self.restrict(col, BTreeSet::from([v]));
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if matches!(expr.as_ref(), Expr::Column(c) if c.name == TIME_COLUMN) => {
                if let Some(v) = literal(low).and_then(|l| ts_micros(l, true)) {
                    self.lower(v);
                }
                if let Some(v) = literal(high).and_then(|l| ts_micros(l, false)) {
                    self.upper(v);
                }
            }
            Expr::InList(il) if !il.negated => {
                let Some(col) = column_name(&il.expr) else {
                    return;
                };
                if !def.index_columns.iter().any(|c| c == col) {
                    return;
                }
                let mut vals = BTreeSet::new();
                for item in &il.list {
                    match literal(item).and_then(text) {
                        Some(v) => {
                            vals.insert(v);
                        }
                        None => return,
                    }
                }
                self.restrict(col, vals);
            }
            _ => {}
        }
    }

    /// May `f` hold a matching row?
    pub(crate) fn keeps_file(&self, f: &FileMeta) -> bool {
        if self.empty {
            return false;
        }
        if self.min_ts.is_some_and(|m| f.max_ts < m) || self.max_ts.is_some_and(|m| f.min_ts > m) {
            return false;
        }
        for (col, vals) in &self.values {
            if let Some(summary) = f.columns.get(col)
                && !vals.iter().any(|v| summary.may_contain(v))
            {
                return false;
            }
        }
        true
    }

    fn keeps_range(&self, min_ts: i64, max_ts: i64) -> bool {
        !self.empty
            && self.min_ts.is_none_or(|m| max_ts >= m)
            && self.max_ts.is_none_or(|m| min_ts <= m)
    }
}

#[async_trait]
impl TableProvider for HistoryTable {
    fn schema(&self) -> SchemaRef {
        self.def().schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Used for pruning only; DataFusion re-applies every filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let def = self.def();
        let schema = def.schema.clone();
        let (manifest, chunks) = self.shared.snapshot(self.idx);
        let pruning = Pruning::from_filters(def, filters);
        let all: Vec<&FileMeta> = manifest.table_files(&def.name).collect();
        let files: Vec<&FileMeta> = all
            .iter()
            .copied()
            .filter(|f| pruning.keeps_file(f))
            .collect();
        let stats = &self.shared.stats;
        stats
            .query_files_considered
            .fetch_add(all.len() as u64, Ordering::Relaxed);
        stats
            .query_files_scanned
            .fetch_add(files.len() as u64, Ordering::Relaxed);

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !files.is_empty() {
            let url = &self.shared.object_store_url;
            if state.runtime_env().object_store(url).is_err() {
                state
                    .runtime_env()
                    .register_object_store(url.as_ref(), self.shared.object_store.clone());
            }
            let mut options = state.table_options().parquet.clone();
            // Present the declared types, never Utf8View/BinaryView.
            options.global.schema_force_view_types = false;
            options.global.enable_page_index = true;
            // No predicate here: DataFusion's filter pushdown hands the
            // (Inexact) filters to the Parquet source, which uses them for
            // row-group and page-index pruning.
            let source = ParquetSource::new(schema.clone()).with_table_parquet_options(options);
            let n_groups = state.config().target_partitions().max(1).min(files.len());
            let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); n_groups];
            for (i, f) in files.iter().enumerate() {
                groups[i % n_groups].push(PartitionedFile::new(f.path.clone(), f.bytes));
            }
            let config = FileScanConfigBuilder::new(url.clone(), Arc::new(source))
                .with_expr_adapter(promoted_keys_adapter(def))
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        // Buffered rows in series form become whole rows here, and only
        // the projected columns: a query that does not read `labels` never
        // copies them.
        let batches: Vec<RecordBatch> = chunks
            .into_iter()
            .filter(|c| pruning.keeps_range(c.min_ts, c.max_ts))
            .map(|c| c.rows.materialize(def, projection.map(Vec::as_slice)))
            .collect::<crate::Result<_>>()
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        if !batches.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema.clone(),
            };
            inputs.push(MemorySourceConfig::try_new_exec(
                &[batches],
                projected,
                None,
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}
