//! Hand-written prost types for `prompb/remote.proto` and `prompb/types.proto`
//! (Prometheus, remote write 1.0) and, in [`v2`], for
//! `prompb/io/prometheus/write/v2/types.proto` (remote write 2.0). Field
//! numbers as upstream.
//!
//! The decoders do not use them (they read the wire format with the borrowed
//! reader in `wire.rs`): they are here to **encode** requests (load
//! generators, tests, benches) and as the reference the decoder is tested
//! against.

/// `prometheus.WriteRequest`. Field 2 is reserved upstream (Cortex).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Field 3.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// `MetricType` enum (0 unknown, 1 counter, 2 gauge, 3 histogram,
    /// 4 gaugehistogram, 5 summary, 6 info, 7 stateset).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Field 4.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Field 5.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Field 1: sorted, unique, non-empty names (by the spec).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Field 2.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Field 3.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Field 4: native histograms.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Field 1.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Field 2: milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Field 2.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Field 3: milliseconds.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.Histogram` (native histogram, integer or float).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Fields 1 (`count_int`) / 2 (`count_float`).
    #[prost(oneof = "histogram::Count", tags = "1, 2")]
    pub count: Option<histogram::Count>,
    /// Field 3.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Field 4.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Field 5.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Fields 6 (`zero_count_int`) / 7 (`zero_count_float`).
    #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: Option<histogram::ZeroCount>,
    /// Field 8.
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Field 9.
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Field 10.
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    /// Field 11.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Field 12.
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Field 13.
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// Field 14: `ResetHint` (0 unknown, 1 yes, 2 no, 3 gauge).
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    /// Field 15: milliseconds.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// Oneofs of [`Histogram`].
pub mod histogram {
    /// Observation count.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Count {
        /// Field 1.
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        /// Field 2.
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }
    /// Zero-bucket count.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum ZeroCount {
        /// Field 6.
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        /// Field 7.
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }
}

/// `prometheus.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// Field 1: gap to the previous span (start index for the first).
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Field 2.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// Hand-written prost types for `io.prometheus.write.v2` (remote write 2.0,
/// `prompb/io/prometheus/write/v2/types.proto`). Field numbers as upstream.
pub mod v2 {
    use std::collections::HashMap;

    /// A symbol table as a sender builds it: `""` first, each string once.
    #[derive(Debug, Clone)]
    pub struct SymbolTable {
        symbols: Vec<String>,
        index: HashMap<String, u32>,
    }

    impl Default for SymbolTable {
        fn default() -> Self {
            Self {
                symbols: vec![String::new()],
                index: HashMap::from([(String::new(), 0)]),
            }
        }
    }

    impl SymbolTable {
        /// The reference of `s`, added on first use.
        pub fn symbol(&mut self, s: &str) -> u32 {
            if let Some(&r) = self.index.get(s) {
                return r;
            }
            let r = self.symbols.len() as u32;
            self.symbols.push(s.to_string());
            self.index.insert(s.to_string(), r);
            r
        }

        /// `labels_refs` of (name, value) pairs, in the order given.
        pub fn label_refs<'a>(
            &mut self,
            labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        ) -> Vec<u32> {
            labels
                .into_iter()
                .flat_map(|(name, value)| [self.symbol(name), self.symbol(value)])
                .collect()
        }

        /// The table, for `Request.symbols`.
        pub fn into_symbols(self) -> Vec<String> {
            self.symbols
        }
    }

    fn label_pairs(labels: &[super::Label]) -> impl Iterator<Item = (&str, &str)> {
        labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))
    }

    /// The same series as a 1.0 request, as 2.0 sends them: every string
    /// once in the symbol table, no metadata (1.0 carries none per series).
    impl From<&super::WriteRequest> for Request {
        fn from(req: &super::WriteRequest) -> Self {
            let mut table = SymbolTable::default();
            let timeseries = req
                .timeseries
                .iter()
                .map(|ts| TimeSeries {
                    labels_refs: table.label_refs(label_pairs(&ts.labels)),
                    samples: ts
                        .samples
                        .iter()
                        .map(|s| Sample {
                            value: s.value,
                            timestamp: s.timestamp,
                        })
                        .collect(),
                    histograms: ts
                        .histograms
                        .iter()
                        .map(|h| Histogram {
                            count: h.count,
                            sum: h.sum,
                            schema: h.schema,
                            zero_threshold: h.zero_threshold,
                            zero_count: h.zero_count,
                            negative_spans: h.negative_spans.clone(),
                            negative_deltas: h.negative_deltas.clone(),
                            negative_counts: h.negative_counts.clone(),
                            positive_spans: h.positive_spans.clone(),
                            positive_deltas: h.positive_deltas.clone(),
                            positive_counts: h.positive_counts.clone(),
                            reset_hint: h.reset_hint,
                            timestamp: h.timestamp,
                            custom_values: vec![],
                        })
                        .collect(),
                    exemplars: ts
                        .exemplars
                        .iter()
                        .map(|e| Exemplar {
                            labels_refs: table.label_refs(label_pairs(&e.labels)),
                            value: e.value,
                            timestamp: e.timestamp,
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect();
            Request {
                symbols: table.into_symbols(),
                timeseries,
            }
        }
    }

    /// `io.prometheus.write.v2.Request`. Fields 1 to 3 are reserved upstream
    /// (so that a 1.0 `WriteRequest` read as a 2.0 request is detectably
    /// wrong; the decoder refuses them).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// Field 4: de-duplicated strings; `symbols[0]` must be `""`.
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        /// Field 5.
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// `io.prometheus.write.v2.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Field 1: (name, value) pairs of indices into `Request.symbols`,
        /// sorted by name.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Field 2.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Field 3: native histograms.
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<Histogram>,
        /// Field 4.
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        /// Field 5.
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        /// Field 6: milliseconds, 0 = unset.
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    /// `io.prometheus.write.v2.Exemplar`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Field 1: as `TimeSeries.labels_refs`.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Field 2.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Field 3: milliseconds, 0 = unset.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// `io.prometheus.write.v2.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Field 1.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Field 2: milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// `io.prometheus.write.v2.Metadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        /// Field 1: [`metadata::MetricType`].
        #[prost(enumeration = "metadata::MetricType", tag = "1")]
        pub r#type: i32,
        /// Field 3: index into `Request.symbols` (0 = no help).
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        /// Field 4: index into `Request.symbols` (0 = no unit).
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }

    /// Enums of [`Metadata`].
    pub mod metadata {
        /// `io.prometheus.write.v2.Metadata.MetricType`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum MetricType {
            /// 0.
            Unspecified = 0,
            /// 1.
            Counter = 1,
            /// 2.
            Gauge = 2,
            /// 3.
            Histogram = 3,
            /// 4.
            Gaugehistogram = 4,
            /// 5.
            Summary = 5,
            /// 6.
            Info = 6,
            /// 7.
            Stateset = 7,
        }
    }

    /// `io.prometheus.write.v2.Histogram` (native histogram, integer or
    /// float).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// Fields 1 (`count_int`) / 2 (`count_float`).
        #[prost(oneof = "super::histogram::Count", tags = "1, 2")]
        pub count: Option<super::histogram::Count>,
        /// Field 3.
        #[prost(double, tag = "3")]
        pub sum: f64,
        /// Field 4: -4..=8 exponential, -53 custom buckets.
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        /// Field 5.
        #[prost(double, tag = "5")]
        pub zero_threshold: f64,
        /// Fields 6 (`zero_count_int`) / 7 (`zero_count_float`).
        #[prost(oneof = "super::histogram::ZeroCount", tags = "6, 7")]
        pub zero_count: Option<super::histogram::ZeroCount>,
        /// Field 8.
        #[prost(message, repeated, tag = "8")]
        pub negative_spans: Vec<BucketSpan>,
        /// Field 9.
        #[prost(sint64, repeated, tag = "9")]
        pub negative_deltas: Vec<i64>,
        /// Field 10.
        #[prost(double, repeated, tag = "10")]
        pub negative_counts: Vec<f64>,
        /// Field 11.
        #[prost(message, repeated, tag = "11")]
        pub positive_spans: Vec<BucketSpan>,
        /// Field 12.
        #[prost(sint64, repeated, tag = "12")]
        pub positive_deltas: Vec<i64>,
        /// Field 13.
        #[prost(double, repeated, tag = "13")]
        pub positive_counts: Vec<f64>,
        /// Field 14: `ResetHint` (0 unspecified, 1 yes, 2 no, 3 gauge).
        #[prost(int32, tag = "14")]
        pub reset_hint: i32,
        /// Field 15: milliseconds.
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
        /// Field 16: bucket bounds of the custom-bucket schema (-53).
        #[prost(double, repeated, tag = "16")]
        pub custom_values: Vec<f64>,
    }

    /// The same message as 1.0's `BucketSpan`.
    pub use super::BucketSpan;
}
