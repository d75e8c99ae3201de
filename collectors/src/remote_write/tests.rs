//! The remote-write decoder's tests: 1.0 and 2.0 end to end, the borrowed
//! reader against prost, bad input, header negotiation.

use super::proto::*;
use super::*;
use crate::ErrorClass;
use crate::test_support::{column, map_row, promoted_labels};
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use prost::Message;

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn body(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn decode(req: &WriteRequest) -> Result<RemoteWriteBatches> {
    decode_remote_write(
        &body(req),
        RemoteWriteVersion::V1,
        &RemoteWriteConfig::default(),
    )
}

#[test]
fn round_trip_with_unsorted_labels_stale_markers_and_missing_model() {
    let stale = f64::from_bits(crate::schema::STALE_NAN_BITS);
    let req = WriteRequest {
        timeseries: vec![
            // unsorted on purpose
            series(
                &[
                    ("model_version", "3"),
                    ("instance", "a:9000"),
                    ("__name__", "latency_seconds"),
                    ("model", "fraud"),
                    ("job", "serve"),
                ],
                &[(0.25, 1_700_000_000_123), (stale, 1_700_000_015_000)],
            ),
            series(
                &[("__name__", "up"), ("job", "node"), ("empty", "")],
                &[(f64::NAN, 1_700_000_000_000)],
            ),
        ],
        metadata: vec![MetricMetadata::default()],
    };
    let out = decode(&req).unwrap();
    let b = &rows(&out);
    assert_eq!(b.schema(), crate::samples_schema());
    assert_eq!(b.num_rows(), 3);
    let metric = column(b, "metric").as_string::<i32>();
    assert_eq!(metric.value(0), "latency_seconds");
    assert_eq!(metric.value(2), "up");
    let ts = column(b, "ts").as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), 1_700_000_000_123_000);
    let value = column(b, "value").as_primitive::<Float64Type>();
    assert_eq!(value.value(0), 0.25);
    assert_eq!(value.value(1).to_bits(), crate::schema::STALE_NAN_BITS);
    assert!(value.value(2).is_nan());
    let st = column(b, "stale").as_boolean();
    assert_eq!(
        (st.value(0), st.value(1), st.value(2)),
        (false, true, false)
    );
    let model = column(b, "model").as_string::<i32>();
    let version = column(b, "version").as_string::<i32>();
    assert_eq!(model.value(0), "fraud");
    assert_eq!(version.value(1), "3");
    assert!(model.is_null(2) && version.is_null(2));
    assert_eq!(
        map_row(b, "labels", 0),
        vec![
            ("instance".to_string(), "a:9000".to_string()),
            ("job".to_string(), "serve".to_string())
        ]
    );
    assert_eq!(map_row(b, "labels", 2), vec![("job".into(), "node".into())]);
    let kind = column(b, "kind").as_string::<i32>();
    assert_eq!(kind.value(0), "untyped");
    let source = column(b, "source").as_string::<i32>();
    assert_eq!(source.value(0), crate::schema::SOURCE_REMOTE_WRITE);
    assert_eq!(
        out.summary,
        RemoteWriteSummary {
            series: 2,
            samples: 3,
            samples_without_model: 1,
            stale_markers: 1,
            metadata_ignored: 1,
            ..Default::default()
        }
    );
    assert_eq!(out.histograms.num_rows(), 0);
}

#[test]
fn configurable_attribution_labels() {
    let cfg = RemoteWriteConfig {
        model_label: "svc_model".into(),
        version_label: "svc_version".into(),
        ..Default::default()
    };
    let req = WriteRequest {
        timeseries: vec![series(
            &[
                ("__name__", "x"),
                ("svc_model", "m"),
                ("svc_version", "v1.2"),
                ("model", "stays-a-label"),
            ],
            &[(1.0, 1)],
        )],
        ..Default::default()
    };
    let out = decode_remote_write(&body(&req), RemoteWriteVersion::V1, &cfg).unwrap();
    let b = &rows(&out);
    assert_eq!(column(b, "model").as_string::<i32>().value(0), "m");
    assert_eq!(column(b, "version").as_string::<i32>().value(0), "v1.2");
    assert_eq!(
        map_row(b, "labels", 0),
        vec![("model".into(), "stays-a-label".into())]
    );
}

#[test]
fn bucket_series_stay_samples() {
    let req = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "req_bucket"), ("le", "+Inf"), ("model", "m")],
            &[(10.0, 5)],
        )],
        ..Default::default()
    };
    let out = decode(&req).unwrap();
    assert_eq!(out.samples.num_rows(), 1);
    assert_eq!(out.histograms.num_rows(), 0);
}

/// The decoded samples as whole rows.
#[test]
fn the_hottest_labels_get_their_own_columns_and_stay_in_labels() {
    let req = WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "latency_bucket"),
                    ("le", "0.25"),
                    ("code", "200"),
                ],
                &[(1.0, 1_700_000_000_000), (2.0, 1_700_000_015_000)],
            ),
            series(
                &[("__name__", "rpc"), ("quantile", "0.99"), ("status", "500")],
                &[(3.0, 1_700_000_000_000)],
            ),
            series(&[("__name__", "up")], &[(1.0, 1_700_000_000_000)]),
        ],
        metadata: vec![],
    };
    let b = rows(&decode(&req).unwrap());
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        promoted_labels(&b),
        vec![
            [some("0.25"), None, None, some("200")],
            [some("0.25"), None, None, some("200")],
            [None, some("0.99"), some("500"), None],
            [None, None, None, None],
        ]
    );
}

fn rows(out: &RemoteWriteBatches) -> arrow_array::RecordBatch {
    out.samples
        .to_rows(&crate::samples_schema())
        .expect("series-form samples become whole rows")
}

fn class_of(body: &[u8]) -> (ErrorClass, String) {
    let e = decode_remote_write(body, RemoteWriteVersion::V1, &RemoteWriteConfig::default())
        .unwrap_err();
    (e.class(), e.to_string())
}

fn valid_request() -> WriteRequest {
    WriteRequest {
        timeseries: (0..20)
            .map(|i| {
                series(
                    &[("__name__", "m"), ("i", &i.to_string())],
                    &[(i as f64, 1000 + i)],
                )
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn truncated_bodies_are_bad_requests() {
    let full = body(&valid_request());
    for cut in [1, full.len() / 2, full.len() - 1] {
        let (c, msg) = class_of(&full[..cut]);
        assert_eq!(c, ErrorClass::BadRequest, "{msg}");
    }
    // valid snappy around a truncated protobuf
    let pb = valid_request().encode_to_vec();
    let cut = snap::raw::Encoder::new()
        .compress_vec(&pb[..pb.len() - 3])
        .unwrap();
    let (c, msg) = class_of(&cut);
    assert_eq!(c, ErrorClass::BadRequest);
    assert!(msg.contains("protobuf"), "{msg}");
}

#[test]
fn garbage_is_a_bad_request() {
    let (c, _) = class_of(b"\x13hello, this is not snappy at all");
    assert_eq!(c, ErrorClass::BadRequest);
    let (c, _) = class_of(&[0x80; 3]);
    assert_eq!(c, ErrorClass::BadRequest);
    let (c, _) = class_of(b"");
    // empty body: zero-length varint missing → snappy error
    assert_eq!(c, ErrorClass::BadRequest);
}

#[test]
fn huge_declared_length_is_too_large_before_allocating() {
    // varint for 1 TiB, then junk
    let mut b = Vec::new();
    let mut n: u64 = 1 << 40;
    while n >= 0x80 {
        b.push((n as u8) | 0x80);
        n >>= 7;
    }
    b.push(n as u8);
    b.extend_from_slice(b"abc");
    let e =
        decode_remote_write(&b, RemoteWriteVersion::V1, &RemoteWriteConfig::default()).unwrap_err();
    assert_eq!(e.class(), ErrorClass::PayloadTooLarge);
    assert_eq!(e.http_status(), 413);
    assert!(matches!(e, Error::DecompressedTooLarge { .. }));

    let cfg = RemoteWriteConfig {
        max_decompressed_bytes: 10,
        ..Default::default()
    };
    let e = decode_remote_write(&body(&valid_request()), RemoteWriteVersion::V1, &cfg).unwrap_err();
    assert_eq!(e.class(), ErrorClass::PayloadTooLarge);

    let cfg = RemoteWriteConfig {
        max_body_bytes: 10,
        ..Default::default()
    };
    let e = decode_remote_write(&body(&valid_request()), RemoteWriteVersion::V1, &cfg).unwrap_err();
    assert!(matches!(e, Error::BodyTooLarge { .. }));
}

#[test]
fn output_expansion_is_bounded() {
    let cfg = RemoteWriteConfig {
        max_output_bytes: 1000,
        ..Default::default()
    };
    let e = decode_remote_write(&body(&valid_request()), RemoteWriteVersion::V1, &cfg).unwrap_err();
    assert!(matches!(e, Error::OutputTooLarge { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::PayloadTooLarge);
}

#[test]
fn impossible_declared_length_under_the_limit_is_a_bad_request() {
    // declares 1 MiB (under the 64 MiB limit) in a 5-byte body
    let e = decode_remote_write(
        &[0x80, 0x80, 0x40, 0, 0],
        RemoteWriteVersion::V1,
        &RemoteWriteConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Snappy(_)), "{e}");
    // the best real compression stays accepted: 1 MiB of zeros
    let zeros = snap::raw::Encoder::new()
        .compress_vec(&[0u8; 1 << 20])
        .unwrap();
    assert!(decompress_snappy(&zeros, 64 << 20).is_ok());
}

#[test]
fn framed_snappy_is_a_bad_request() {
    use std::io::Write;
    let mut w = snap::write::FrameEncoder::new(Vec::new());
    w.write_all(&valid_request().encode_to_vec()).unwrap();
    let framed = w.into_inner().unwrap();
    let e = decode_remote_write(
        &framed,
        RemoteWriteVersion::V1,
        &RemoteWriteConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::SnappyFramed), "{e}");
    assert_eq!(e.class(), ErrorClass::BadRequest);
}

#[test]
fn uncompressed_protobuf_sent_as_snappy_is_a_bad_request() {
    let (c, msg) = class_of(&valid_request().encode_to_vec());
    assert_eq!(c, ErrorClass::BadRequest, "{msg}");
}

#[test]
fn invalid_series_reject_the_whole_request_with_their_index() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("__name__", "m"), ("", "x")], "empty label name"),
        (vec![("__name__", "m"), ("a", "1"), ("a", "2")], "duplicate"),
        (vec![("job", "x")], "__name__"),
        (vec![("__name__", "")], "__name__"),
    ];
    for (labels, want) in cases {
        let mut req = valid_request();
        req.timeseries.insert(7, series(&labels, &[(1.0, 1)]));
        let e = decode(&req).unwrap_err();
        match &e {
            Error::InvalidSeries { index, reason } => {
                assert_eq!(*index, 7);
                assert!(reason.contains(want), "{reason}");
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(e.class(), ErrorClass::BadRequest);
    }
    // timestamp overflow
    let mut req = valid_request();
    req.timeseries[3].samples[0].timestamp = i64::MAX;
    assert!(matches!(
        decode(&req).unwrap_err(),
        Error::InvalidSeries { index: 3, .. }
    ));
}

#[test]
fn header_negotiation() {
    use RemoteWriteVersion::{V1, V2};
    const V2_SPACED: &str = "application/x-protobuf; proto=\"io.prometheus.write.v2.Request\"";
    // (content type, encoding, version) → message, or the 415 message's gist
    type Want = std::result::Result<RemoteWriteVersion, &'static str>;
    type Row = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Want,
    );
    let table: &[Row] = &[
        (
            Some("application/x-protobuf"),
            Some("snappy"),
            Some("0.1.0"),
            Ok(V1),
        ),
        (Some(CONTENT_TYPE_V1), Some("snappy"), None, Ok(V1)),
        (Some(CONTENT_TYPE_V1), Some("snappy"), Some("1.0"), Ok(V1)),
        (None, None, None, Ok(V1)),
        (
            Some(CONTENT_TYPE_V2),
            Some("snappy"),
            Some(VERSION_V2),
            Ok(V2),
        ),
        (Some(V2_SPACED), Some("snappy"), Some("2.1.0"), Ok(V2)),
        (Some(CONTENT_TYPE_V2), None, None, Ok(V2)),
        // an explicit 1.0 message tolerates an unknown version, as before
        (Some(CONTENT_TYPE_V1), None, Some("0.2"), Ok(V1)),
        // unknown message
        (
            Some("application/x-protobuf;proto=foo.Bar"),
            Some("snappy"),
            None,
            Err(
                "prometheus.WriteRequest (remote write 1.0) and proto=io.prometheus.write.v2.Request",
            ),
        ),
        // version / message mismatch
        (
            Some("application/x-protobuf"),
            None,
            Some("2.0.0"),
            Err("with a prometheus.WriteRequest (1.0) content type"),
        ),
        (
            Some(CONTENT_TYPE_V1),
            None,
            Some("2.0.0"),
            Err("with a prometheus.WriteRequest (1.0) content type"),
        ),
        (
            Some(CONTENT_TYPE_V2),
            None,
            Some("0.1.0"),
            Err("2.x expected"),
        ),
        (
            Some(CONTENT_TYPE_V2),
            None,
            Some("3.0.0"),
            Err("2.x expected"),
        ),
        // unknown version without a message named
        (
            Some("application/x-protobuf"),
            None,
            Some("0.2"),
            Err("is not supported"),
        ),
        // media type and encoding
        (
            Some("application/json"),
            Some("snappy"),
            None,
            Err("requires application/x-protobuf"),
        ),
        (
            Some("text/plain"),
            None,
            None,
            Err("requires application/x-protobuf"),
        ),
        (
            Some("application/x-protobuf"),
            Some("gzip"),
            None,
            Err("requires snappy"),
        ),
        (
            Some(CONTENT_TYPE_V2),
            Some("zstd"),
            Some(VERSION_V2),
            Err("requires snappy"),
        ),
    ];
    for (ct, enc, v, want) in table {
        let got = check_remote_write_headers(*ct, *enc, *v);
        match (want, got) {
            (Ok(w), Ok(g)) => assert_eq!(*w, g, "{ct:?} {enc:?} {v:?}"),
            (Err(gist), Err(e)) => {
                assert_eq!(e.http_status(), 415, "{e}");
                assert!(e.to_string().contains(gist), "{ct:?} {enc:?} {v:?}: {e}");
            }
            (w, g) => panic!("{ct:?} {enc:?} {v:?}: want {w:?}, got {g:?}"),
        }
    }
    assert_eq!(V1.message(), "prometheus.WriteRequest");
    assert_eq!(V2.message(), "io.prometheus.write.v2.Request");
}

#[test]
fn native_histograms_go_to_the_histograms_batch() {
    let mut ts = series(
        &[("__name__", "lat"), ("model", "m"), ("model_version", "1")],
        &[],
    );
    ts.histograms.push(Histogram {
        count: Some(histogram::Count::CountInt(6)),
        sum: 12.5,
        schema: 0,
        zero_threshold: 1e-128,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![
            BucketSpan {
                offset: -1,
                length: 2,
            },
            BucketSpan {
                offset: 2,
                length: 1,
            },
        ],
        // absolute counts 2, 1, (0, 0), 2
        positive_deltas: vec![2, -1, 1],
        timestamp: 1_000,
        ..Default::default()
    });
    // custom-bucket schema: skipped and counted
    ts.histograms.push(Histogram {
        schema: -53,
        ..Default::default()
    });
    ts.exemplars.push(Exemplar::default());
    let out = decode(&WriteRequest {
        timeseries: vec![ts],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(out.summary.histograms, 1);
    assert_eq!(out.summary.native_histograms_skipped, 1);
    assert_eq!(out.summary.exemplars_dropped, 1);
    let h = &out.histograms;
    assert_eq!(h.schema(), crate::histograms_schema());
    assert_eq!(
        h.column_by_name("positive_offset")
            .unwrap()
            .as_primitive::<arrow_array::types::Int32Type>()
            .value(0),
        -1
    );
    let pc = h
        .column_by_name("positive_counts")
        .unwrap()
        .as_list::<i32>();
    let row = pc.value(0);
    let row = row.as_primitive::<Float64Type>();
    assert_eq!(row.values().to_vec(), vec![2.0, 1.0, 0.0, 0.0, 2.0]);
    assert!(h.column_by_name("negative_counts").unwrap().is_null(0));
    assert_eq!(
        column(h, "count").as_primitive::<Float64Type>().value(0),
        6.0
    );

    // spans disagreeing with the deltas: invalid series
    let mut bad = series(&[("__name__", "lat")], &[]);
    bad.histograms.push(Histogram {
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_deltas: vec![1],
        ..Default::default()
    });
    let e = decode(&WriteRequest {
        timeseries: vec![bad],
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, Error::InvalidSeries { index: 0, .. }), "{e}");
}

proptest::proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = decode_remote_write(&data, RemoteWriteVersion::V1, &RemoteWriteConfig::default());
        let _ = decode_write_request(&data, &RemoteWriteConfig::default());
        let compressed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let _ = decode_remote_write(&compressed, RemoteWriteVersion::V1, &RemoteWriteConfig::default());
    }
}

// ---------------------------------------------------------------------------
// The borrowed reader against prost (the decoder as it was).

/// What a decode came to, comparable across decoders: malformed protobuf is
/// one outcome whatever the wording (prost's and the reader's differ).
#[derive(Debug, PartialEq)]
enum Outcome {
    Batches(Box<(crate::SeriesRows, RecordBatch, RemoteWriteSummary)>),
    Malformed,
    Refused(String),
}

fn outcome(r: Result<RemoteWriteBatches>) -> Outcome {
    match r {
        Ok(b) => Outcome::Batches(Box::new((b.samples, b.histograms, b.summary))),
        Err(Error::Protobuf { .. } | Error::Wire { .. }) => Outcome::Malformed,
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

fn both_v1(raw: &[u8]) -> (Outcome, Outcome) {
    let cfg = RemoteWriteConfig::default();
    (
        outcome(super::reference::decode_write_request(raw, &cfg)),
        outcome(decode_write_request(raw, &cfg)),
    )
}

mod arb {
    use super::super::proto::*;
    use proptest::prelude::*;

    pub const STALE: f64 = f64::from_bits(crate::schema::STALE_NAN_BITS);

    pub fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => -1e6f64..1e6,
            1 => any::<f64>(),
            1 => Just(STALE),
            1 => Just(f64::NAN),
        ]
    }

    pub fn timestamp() -> impl Strategy<Value = i64> {
        prop_oneof![9 => 0i64..2_000_000_000_000, 1 => any::<i64>()]
    }

    pub fn label() -> impl Strategy<Value = Label> {
        (
            prop::sample::select(vec![
                "job",
                "instance",
                "le",
                "model",
                "model_version",
                "a",
                "é",
                "",
                "zz",
            ]),
            prop::sample::select(vec!["", "x", "fraud", "3", "ünï", "10.0.0.1:9100"]),
        )
            .prop_map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
    }

    pub fn labels() -> impl Strategy<Value = Vec<Label>> {
        (
            prop::option::weighted(0.9, prop::sample::select(vec!["up", "m", "", "x_total"])),
            prop::collection::vec(label(), 0..5),
        )
            .prop_map(|(name, mut rest)| {
                if let Some(n) = name {
                    rest.insert(
                        rest.len() / 2,
                        Label {
                            name: "__name__".into(),
                            value: n.into(),
                        },
                    );
                }
                rest
            })
    }

    pub fn sample() -> impl Strategy<Value = Sample> {
        (value(), timestamp()).prop_map(|(value, timestamp)| Sample { value, timestamp })
    }

    pub fn histogram() -> impl Strategy<Value = Histogram> {
        (
            prop_oneof![8 => -4i32..=8, 1 => Just(-53), 1 => -60i32..60],
            any::<bool>(),
            0u64..100,
            value(),
            (
                any::<bool>(),
                -3i32..3,
                prop::collection::vec(-3i64..6, 0..6),
            ),
            (any::<bool>(), prop::collection::vec(0.0f64..9.0, 0..4)),
            0i32..5,
            timestamp(),
        )
            .prop_map(
                |(
                    schema,
                    int,
                    count,
                    sum,
                    (consistent, offset, deltas),
                    (neg, counts),
                    reset_hint,
                    timestamp,
                )| {
                    let span = |len: usize, gap: i32| BucketSpan {
                        offset: gap,
                        length: len as u32,
                    };
                    let positive_spans = if consistent {
                        if deltas.len() > 2 {
                            vec![span(2, offset), span(deltas.len() - 2, 1)]
                        } else {
                            vec![span(deltas.len(), offset)]
                        }
                    } else {
                        vec![span(1, offset)]
                    };
                    Histogram {
                        count: Some(if int {
                            histogram::Count::CountInt(count)
                        } else {
                            histogram::Count::CountFloat(count as f64 / 3.0)
                        }),
                        sum,
                        schema,
                        zero_threshold: 1e-128,
                        zero_count: Some(if int {
                            histogram::ZeroCount::ZeroCountInt(count / 2)
                        } else {
                            histogram::ZeroCount::ZeroCountFloat(0.5)
                        }),
                        negative_spans: if neg && !counts.is_empty() {
                            vec![span(counts.len(), -1)]
                        } else {
                            vec![]
                        },
                        negative_counts: if neg { counts } else { vec![] },
                        positive_spans,
                        positive_deltas: deltas,
                        reset_hint,
                        timestamp,
                        ..Default::default()
                    }
                },
            )
    }

    pub fn series() -> impl Strategy<Value = TimeSeries> {
        (
            labels(),
            prop::collection::vec(sample(), 0..4),
            prop::collection::vec(
                (prop::collection::vec(label(), 0..2), value(), timestamp()).prop_map(
                    |(labels, value, timestamp)| Exemplar {
                        labels,
                        value,
                        timestamp,
                    },
                ),
                0..2,
            ),
            prop::collection::vec(histogram(), 0..2),
        )
            .prop_map(|(labels, samples, exemplars, histograms)| TimeSeries {
                labels,
                samples,
                exemplars,
                histograms,
            })
    }

    pub fn request() -> impl Strategy<Value = WriteRequest> {
        (
            prop::collection::vec(series(), 0..5),
            prop::collection::vec(
                (0i32..8, "[a-z_]{0,8}", ".{0,6}", "[a-z]{0,3}").prop_map(|(t, n, h, u)| {
                    MetricMetadata {
                        r#type: t,
                        metric_family_name: n,
                        help: h,
                        unit: u,
                    }
                }),
                0..2,
            ),
        )
            .prop_map(|(timeseries, metadata)| WriteRequest {
                timeseries,
                metadata,
            })
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Any request prost can encode decodes to the same batches (or the same
    /// refusal) with the borrowed reader as with prost.
    #[test]
    fn reader_matches_prost_on_arbitrary_requests(req in arb::request()) {
        let raw = req.encode_to_vec();
        let (reference, reader) = both_v1(&raw);
        proptest::prop_assert_eq!(reference, reader);
    }

    /// The same request with bytes changed, inserted or cut: both decoders
    /// agree on every outcome (mostly malformed, sometimes a different but
    /// valid request).
    #[test]
    fn reader_matches_prost_on_mutated_requests(
        req in arb::request(),
        edits in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY, 0u8..3), 1..4),
        cut in proptest::option::of(proptest::num::usize::ANY),
    ) {
        let mut raw = req.encode_to_vec();
        for (at, byte, op) in edits {
            if raw.is_empty() {
                raw.push(byte);
                continue;
            }
            let at = at % raw.len();
            match op {
                0 => raw[at] = byte,
                1 => raw.insert(at, byte),
                _ => { raw.remove(at); }
            }
        }
        if let Some(c) = cut {
            raw.truncate(c % (raw.len() + 1));
        }
        let (reference, reader) = both_v1(&raw);
        proptest::prop_assert_eq!(reference, reader);
    }

    #[test]
    fn reader_matches_prost_on_arbitrary_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let (reference, reader) = both_v1(&data);
        proptest::prop_assert_eq!(reference, reader);
    }
}

#[test]
fn reader_matches_prost_on_the_handwritten_cases() {
    // a NaN-valued and a stale row compare equal to themselves (bitwise)
    let stale = f64::from_bits(crate::schema::STALE_NAN_BITS);
    let mut req = valid_request();
    req.timeseries[0].samples.push(Sample {
        value: stale,
        timestamp: 5,
    });
    req.timeseries[1].samples.push(Sample {
        value: f64::NAN,
        timestamp: 5,
    });
    let (reference, reader) = both_v1(&req.encode_to_vec());
    assert!(matches!(reference, Outcome::Batches(_)));
    assert_eq!(reference, reader);
    // a different value is noticed
    let mut other = req.clone();
    other.timeseries[1].samples[0].value = 1.5;
    assert_ne!(both_v1(&other.encode_to_vec()).1, reader);
}

#[test]
fn truncated_at_every_offset_v1_agrees_with_prost() {
    let mut req = valid_request();
    req.timeseries[2].histograms.push(Histogram {
        count: Some(histogram::Count::CountInt(3)),
        schema: 1,
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, 1],
        timestamp: 7,
        ..Default::default()
    });
    req.timeseries[3].exemplars.push(Exemplar {
        labels: vec![label("trace_id", "abc")],
        value: 1.0,
        timestamp: 3,
    });
    req.metadata.push(MetricMetadata {
        r#type: 1,
        metric_family_name: "m".into(),
        help: "help".into(),
        unit: "s".into(),
    });
    let raw = req.encode_to_vec();
    let mut shorter_valid = 0;
    for cut in 0..raw.len() {
        let (reference, reader) = both_v1(&raw[..cut]);
        assert_eq!(reference, reader, "cut at {cut}");
        shorter_valid += usize::from(matches!(reader, Outcome::Batches(_)));
    }
    // prefixes that end on a field boundary are valid, shorter requests
    assert!(shorter_valid > 0);
}

#[test]
fn v1_bad_wire_input() {
    let cfg = RemoteWriteConfig::default();
    let wire = |raw: &[u8]| match decode_write_request(raw, &cfg).unwrap_err() {
        e @ Error::Wire { .. } => {
            assert_eq!(e.class(), ErrorClass::BadRequest);
            e.to_string()
        }
        other => panic!("unexpected {other}"),
    };
    // invalid UTF-8 in a label value: series{label{name "a", value 0xc3 0x28}}
    let msg = wire(&[0x0a, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, 0xff]);
    assert!(msg.contains("UTF-8"), "{msg}");
    assert!(
        msg.starts_with("invalid protobuf prometheus.WriteRequest:"),
        "{msg}"
    );
    // wrong wire type for a known field: timeseries as a varint
    let msg = wire(&[0x08, 0x01]);
    assert!(msg.contains("invalid wire type"), "{msg}");
    // a sample's value as a varint
    let msg = wire(&[0x0a, 0x04, 0x12, 0x02, 0x08, 0x01]);
    assert!(msg.contains("invalid wire type"), "{msg}");
    // a varint over 10 bytes (the series' length)
    let mut b = vec![0x0a];
    b.extend([0x80; 10]);
    b.push(0x01);
    assert!(wire(&b).contains("invalid varint"));
    // a length beyond the buffer
    assert!(wire(&[0x0a, 0x10, 0x01]).contains("buffer underflow"));
}

// ---------------------------------------------------------------------------
// Remote write 2.0.

use super::proto::v2;

fn v2_series(
    sym: &mut v2::SymbolTable,
    labels: &[(&str, &str)],
    samples: &[(f64, i64)],
) -> v2::TimeSeries {
    v2::TimeSeries {
        labels_refs: sym.label_refs(labels.iter().copied()),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| v2::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn v2_body(req: &v2::Request) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn decode_v2(req: &v2::Request) -> Result<RemoteWriteBatches> {
    decode_remote_write(
        &v2_body(req),
        RemoteWriteVersion::V2,
        &RemoteWriteConfig::default(),
    )
}

fn metadata(
    sym: &mut v2::SymbolTable,
    t: v2::metadata::MetricType,
    help: &str,
    unit: &str,
) -> Option<v2::Metadata> {
    Some(v2::Metadata {
        r#type: t as i32,
        help_ref: sym.symbol(help),
        unit_ref: sym.symbol(unit),
    })
}

const T0: i64 = 1_700_000_000_000;

/// What Prometheus 3 sends: a symbol table shared by the series, counter
/// and gauge metadata, units, created timestamps, a native histogram, an
/// exemplar, a stale marker.
fn spec_request() -> v2::Request {
    use v2::metadata::MetricType;
    let stale = f64::from_bits(crate::schema::STALE_NAN_BITS);
    let mut sym = v2::SymbolTable::default();
    let base = [
        ("job", "scorer"),
        ("model", "fraud"),
        ("model_version", "3"),
    ];
    let with = |name: &str, extra: &[(&'static str, &'static str)]| {
        let mut l: Vec<(String, String)> = vec![("__name__".into(), name.into())];
        l.extend(base.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        l.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        l.sort();
        l
    };
    let counter = with("requests_total", &[("method", "POST")]);
    let gauge = with("memory_bytes", &[]);
    fn as_refs(l: &[(String, String)]) -> Vec<(&str, &str)> {
        l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }
    let hist = with("latency_seconds", &[]);

    let mut s0 = v2_series(
        &mut sym,
        &as_refs(&counter),
        &[(10.0, T0), (12.0, T0 + 15_000)],
    );
    s0.metadata = metadata(&mut sym, MetricType::Counter, "Requests served.", "");
    s0.created_timestamp = T0 - 60_000;
    s0.exemplars.push(v2::Exemplar {
        labels_refs: sym.label_refs([("trace_id", "4bf92f3577b34da6")]),
        value: 0.25,
        timestamp: T0,
    });

    let mut s1 = v2_series(
        &mut sym,
        &as_refs(&gauge),
        &[(1024.0, T0), (stale, T0 + 15_000)],
    );
    s1.metadata = metadata(&mut sym, MetricType::Gauge, "Resident memory.", "bytes");

    let mut s2 = v2_series(&mut sym, &as_refs(&hist), &[]);
    s2.metadata = metadata(&mut sym, MetricType::Histogram, "Latency.", "seconds");
    s2.created_timestamp = T0 - 60_000;
    s2.histograms.push(v2::Histogram {
        count: Some(proto::histogram::Count::CountInt(6)),
        sum: 1.5,
        schema: 0,
        zero_threshold: 1e-128,
        zero_count: Some(proto::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![
            BucketSpan {
                offset: -1,
                length: 2,
            },
            BucketSpan {
                offset: 1,
                length: 1,
            },
        ],
        // absolute 2, 1, (0), 2
        positive_deltas: vec![2, -1, 1],
        timestamp: T0,
        ..Default::default()
    });
    // no metadata, labels unsorted on purpose
    let s3 = v2_series(
        &mut sym,
        &[("job", "scorer"), ("__name__", "up")],
        &[(1.0, T0)],
    );
    // INFO → untyped
    let mut s4 = v2_series(
        &mut sym,
        &[
            ("__name__", "build_info"),
            ("job", "scorer"),
            ("revision", "abc"),
        ],
        &[(1.0, T0)],
    );
    s4.metadata = metadata(&mut sym, MetricType::Info, "", "");
    v2::Request {
        symbols: sym.into_symbols(),
        timeseries: vec![s0, s1, s2, s3, s4],
    }
}

#[test]
fn v2_spec_shaped_request_decodes_to_exactly_the_expected_rows() {
    use arrow_array::types::Int32Type;
    let req = spec_request();
    // the symbol table is shared: "scorer", "job", "fraud" appear once
    assert_eq!(req.symbols.iter().filter(|s| *s == "scorer").count(), 1);
    let out = decode_v2(&req).unwrap();
    assert_eq!(
        out.summary,
        RemoteWriteSummary {
            series: 5,
            samples: 6,
            histograms: 1,
            exemplars_written: 0,
            samples_without_model: 2,
            histograms_without_model: 0,
            stale_markers: 1,
            exemplars_dropped: 1,
            native_histograms_skipped: 0,
            metadata_ignored: 0,
        }
    );
    let b = &rows(&out);
    assert_eq!(b.schema(), crate::samples_schema());
    let us = |ms: i64| ms * 1000;
    let ts = column(b, "ts").as_primitive::<TimestampMicrosecondType>();
    let start = column(b, "start_ts").as_primitive::<TimestampMicrosecondType>();
    let metric = column(b, "metric").as_string::<i32>();
    let value = column(b, "value").as_primitive::<Float64Type>();
    let kind = column(b, "kind").as_string::<i32>();
    let stale = column(b, "stale").as_boolean();
    let model = column(b, "model").as_string::<i32>();
    let version = column(b, "version").as_string::<i32>();
    let unit = column(b, "unit").as_string::<i32>();
    let opt =
        |a: &arrow_array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    let opt_ts = |i: usize| (!start.is_null(i)).then(|| start.value(i));
    #[allow(clippy::type_complexity)]
    let expected: Vec<(
        i64,
        Option<i64>,
        &str,
        f64,
        &str,
        bool,
        Option<&str>,
        Option<&str>,
        Option<&str>,
    )> = vec![
        (
            us(T0),
            Some(us(T0 - 60_000)),
            "requests_total",
            10.0,
            "counter",
            false,
            Some("fraud"),
            Some("3"),
            None,
        ),
        (
            us(T0 + 15_000),
            Some(us(T0 - 60_000)),
            "requests_total",
            12.0,
            "counter",
            false,
            Some("fraud"),
            Some("3"),
            None,
        ),
        (
            us(T0),
            None,
            "memory_bytes",
            1024.0,
            "gauge",
            false,
            Some("fraud"),
            Some("3"),
            Some("bytes"),
        ),
        (
            us(T0 + 15_000),
            None,
            "memory_bytes",
            f64::NAN,
            "gauge",
            true,
            Some("fraud"),
            Some("3"),
            Some("bytes"),
        ),
        (us(T0), None, "up", 1.0, "untyped", false, None, None, None),
        (
            us(T0),
            None,
            "build_info",
            1.0,
            "untyped",
            false,
            None,
            None,
            None,
        ),
    ];
    assert_eq!(b.num_rows(), expected.len());
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(ts.value(i), e.0, "row {i}");
        assert_eq!(opt_ts(i), e.1, "row {i}");
        assert_eq!(metric.value(i), e.2, "row {i}");
        if e.5 {
            assert_eq!(value.value(i).to_bits(), crate::schema::STALE_NAN_BITS);
        } else {
            assert_eq!(value.value(i), e.3, "row {i}");
        }
        assert_eq!(kind.value(i), e.4, "row {i}");
        assert_eq!(stale.value(i), e.5, "row {i}");
        assert_eq!(opt(model, i).as_deref(), e.6, "row {i}");
        assert_eq!(opt(version, i).as_deref(), e.7, "row {i}");
        assert_eq!(opt(unit, i).as_deref(), e.8, "row {i}");
        assert!(column(b, "temporality").is_null(i) && column(b, "monotonic").is_null(i));
        assert_eq!(
            column(b, "source").as_string::<i32>().value(i),
            crate::schema::SOURCE_REMOTE_WRITE
        );
    }
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        map_row(b, "labels", 0),
        pairs(&[("job", "scorer"), ("method", "POST")])
    );
    assert_eq!(map_row(b, "labels", 2), pairs(&[("job", "scorer")]));
    assert_eq!(map_row(b, "labels", 4), pairs(&[("job", "scorer")]));
    assert_eq!(
        map_row(b, "labels", 5),
        pairs(&[("job", "scorer"), ("revision", "abc")])
    );

    let h = &out.histograms;
    assert_eq!(h.schema(), crate::histograms_schema());
    assert_eq!(h.num_rows(), 1);
    assert_eq!(
        column(h, "ts")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        us(T0)
    );
    assert_eq!(
        column(h, "start_ts")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        us(T0 - 60_000)
    );
    assert_eq!(
        column(h, "metric").as_string::<i32>().value(0),
        "latency_seconds"
    );
    assert_eq!(column(h, "kind").as_string::<i32>().value(0), "exponential");
    assert_eq!(
        column(h, "temporality").as_string::<i32>().value(0),
        "cumulative"
    );
    assert_eq!(column(h, "unit").as_string::<i32>().value(0), "seconds");
    assert_eq!(column(h, "model").as_string::<i32>().value(0), "fraud");
    assert_eq!(
        column(h, "count").as_primitive::<Float64Type>().value(0),
        6.0
    );
    assert_eq!(column(h, "sum").as_primitive::<Float64Type>().value(0), 1.5);
    assert_eq!(
        column(h, "zero_count")
            .as_primitive::<Float64Type>()
            .value(0),
        1.0
    );
    assert_eq!(column(h, "scale").as_primitive::<Int32Type>().value(0), 0);
    assert_eq!(
        column(h, "positive_offset")
            .as_primitive::<Int32Type>()
            .value(0),
        -1
    );
    let pc = column(h, "positive_counts").as_list::<i32>().value(0);
    assert_eq!(
        pc.as_primitive::<Float64Type>().values().to_vec(),
        vec![2.0, 1.0, 0.0, 2.0]
    );
    assert!(column(h, "negative_counts").is_null(0));
    assert_eq!(map_row(h, "labels", 0), pairs(&[("job", "scorer")]));
}

#[test]
fn v2_gauge_histograms_and_custom_buckets() {
    use v2::metadata::MetricType;
    let mut sym = v2::SymbolTable::default();
    let mut s = v2_series(&mut sym, &[("__name__", "queue_size")], &[]);
    s.metadata = metadata(&mut sym, MetricType::Gaugehistogram, "", "");
    s.histograms.push(v2::Histogram {
        count: Some(proto::histogram::Count::CountFloat(2.5)),
        schema: 3,
        timestamp: 1,
        ..Default::default()
    });
    s.histograms.push(v2::Histogram {
        schema: -53,
        custom_values: vec![0.1, 1.0],
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_deltas: vec![1, 0, 0],
        timestamp: 2,
        ..Default::default()
    });
    let out = decode_v2(&v2::Request {
        symbols: sym.into_symbols(),
        timeseries: vec![s],
    })
    .unwrap();
    assert_eq!(out.summary.histograms, 1);
    assert_eq!(out.summary.native_histograms_skipped, 1);
    assert!(column(&out.histograms, "temporality").is_null(0));
    assert_eq!(
        column(&out.histograms, "count")
            .as_primitive::<Float64Type>()
            .value(0),
        2.5
    );
}

fn v1_and_v2(req: &WriteRequest) -> (Outcome, Outcome) {
    let cfg = RemoteWriteConfig::default();
    let v1 = outcome(decode_remote_write(
        &body(req),
        RemoteWriteVersion::V1,
        &cfg,
    ));
    let v2 = outcome(decode_remote_write(
        &v2_body(&v2::Request::from(req)),
        RemoteWriteVersion::V2,
        &cfg,
    ));
    (v1, v2)
}

#[test]
fn v1_and_v2_give_identical_batches_for_the_same_series() {
    let mut req = valid_request();
    req.timeseries.push(series(
        &[
            ("model_version", "2"),
            ("__name__", "lat"),
            ("model", "m"),
            ("e", ""),
        ],
        &[
            (f64::from_bits(crate::schema::STALE_NAN_BITS), 9),
            (0.5, 10),
        ],
    ));
    let (v1, v2) = v1_and_v2(&req);
    let Outcome::Batches(b) = &v1 else {
        panic!("{v1:?}")
    };
    assert_eq!(b.0.num_rows(), 22);
    assert_eq!(v1, v2);
}

proptest::proptest! {
    /// Any 1.0 request and its 2.0 translation (no metadata) come to the
    /// same outcome: same batches, same counts, same refusal.
    #[test]
    fn v1_and_v2_agree_on_arbitrary_series(mut req in arb::request()) {
        req.metadata.clear();
        let (v1, v2) = v1_and_v2(&req);
        proptest::prop_assert_eq!(v1, v2);
    }

    #[test]
    fn v2_arbitrary_bodies_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let cfg = RemoteWriteConfig::default();
        let _ = decode_remote_write(&data, RemoteWriteVersion::V2, &cfg);
        if let Ok(out) = decode_request_v2(&data, &cfg) {
            proptest::prop_assert_eq!(out.summary.samples, out.samples.num_rows());
        }
        let compressed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let _ = decode_remote_write(&compressed, RemoteWriteVersion::V2, &cfg);
    }
}

#[test]
fn v2_truncated_at_every_offset_is_an_error_or_a_shorter_request() {
    let raw = spec_request().encode_to_vec();
    let cfg = RemoteWriteConfig::default();
    let full = decode_request_v2(&raw, &cfg).unwrap();
    let mut valid = 0;
    for cut in 0..raw.len() {
        match decode_request_v2(&raw[..cut], &cfg) {
            Ok(out) => {
                valid += 1;
                assert!(out.summary.samples <= full.summary.samples, "cut {cut}");
                assert_eq!(out.summary.samples, out.samples.num_rows());
            }
            Err(e) => assert_eq!(e.class(), ErrorClass::BadRequest, "cut {cut}: {e}"),
        }
        // and the compressed body cut at the same offset
        let body = v2_body(&spec_request());
        if cut < body.len() {
            let e = decode_remote_write(&body[..cut], RemoteWriteVersion::V2, &cfg);
            assert!(e.is_err(), "compressed cut {cut}");
        }
    }
    assert!(valid > 0);
}

#[test]
fn v2_oversized_bodies_are_refused() {
    let body = v2_body(&spec_request());
    let too = |cfg: RemoteWriteConfig| {
        let e = decode_remote_write(&body, RemoteWriteVersion::V2, &cfg).unwrap_err();
        assert_eq!(e.class(), ErrorClass::PayloadTooLarge, "{e}");
        e
    };
    let e = too(RemoteWriteConfig {
        max_body_bytes: 10,
        ..Default::default()
    });
    assert!(matches!(e, Error::BodyTooLarge { .. }));
    let e = too(RemoteWriteConfig {
        max_decompressed_bytes: 10,
        ..Default::default()
    });
    assert!(matches!(e, Error::DecompressedTooLarge { .. }));
    let e = too(RemoteWriteConfig {
        max_output_bytes: 500,
        ..Default::default()
    });
    assert!(matches!(e, Error::OutputTooLarge { .. }));
}

#[test]
fn v2_invalid_references_reject_the_whole_request_naming_the_series() {
    let invalid = |req: &v2::Request, index: usize, want: &str| match decode_v2(req).unwrap_err() {
        Error::InvalidSeries { index: i, reason } => {
            assert_eq!(i, index, "{reason}");
            assert!(reason.contains(want), "{reason}");
        }
        other => panic!("unexpected {other}"),
    };
    let base = spec_request();
    let n = base.symbols.len() as u32;

    let mut req = base.clone();
    req.timeseries[1].labels_refs[3] = n;
    invalid(&req, 1, &format!("labels_refs[3] = {n} is out of range"));

    let mut req = base.clone();
    req.timeseries[3].labels_refs.pop();
    invalid(&req, 3, "odd length");

    let mut req = base.clone();
    req.timeseries[2].metadata.as_mut().unwrap().unit_ref = n + 5;
    invalid(&req, 2, "metadata.unit_ref");

    let mut req = base.clone();
    req.timeseries[0].metadata.as_mut().unwrap().help_ref = u32::MAX;
    invalid(&req, 0, "metadata.help_ref");

    let mut req = base.clone();
    req.timeseries[0].exemplars[0].labels_refs[1] = n;
    invalid(&req, 0, "exemplar 0");

    // a label rule broken through symbols: duplicate names, empty name,
    // no __name__
    let mut req = base.clone();
    let job = req.timeseries[4].labels_refs[2];
    req.timeseries[4].labels_refs[0] = job;
    invalid(&req, 4, "duplicate label name");
    let mut req = base.clone();
    req.timeseries[3].labels_refs[0] = 0;
    invalid(&req, 3, "empty label name");
    let mut req = base.clone();
    req.timeseries[3].labels_refs.truncate(2);
    invalid(&req, 3, "__name__");

    // created timestamp out of range
    let mut req = base;
    req.timeseries[1].created_timestamp = i64::MIN;
    invalid(&req, 1, "out of range");
}

#[test]
fn v2_bad_wire_input() {
    let cfg = RemoteWriteConfig::default();
    let wire = |raw: &[u8]| match decode_request_v2(raw, &cfg).unwrap_err() {
        e @ Error::Wire { .. } => {
            assert_eq!(e.class(), ErrorClass::BadRequest);
            e.to_string()
        }
        other => panic!("unexpected {other}"),
    };
    // symbols[0] not empty
    let mut req = spec_request();
    req.symbols[0] = "oops".into();
    let msg = wire(&req.encode_to_vec());
    assert!(msg.contains("symbols[0]"), "{msg}");
    assert!(
        msg.starts_with("invalid protobuf io.prometheus.write.v2.Request:"),
        "{msg}"
    );
    // invalid UTF-8 in a symbol
    assert!(wire(&[0x22, 0x00, 0x22, 0x02, 0xc3, 0x28]).contains("UTF-8"));
    // wrong wire type: timeseries (5) as a varint, a sample value as a varint,
    // labels_refs as fixed64
    assert!(wire(&[0x28, 0x01]).contains("invalid wire type"));
    assert!(wire(&[0x2a, 0x04, 0x12, 0x02, 0x08, 0x01]).contains("invalid wire type"));
    assert!(wire(&[0x2a, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0, 0]).contains("invalid wire type"));
    // varint over 10 bytes
    let mut b = vec![0x2a];
    b.extend([0xff; 10]);
    b.push(0x01);
    assert!(wire(&b).contains("invalid varint"));
    // a length beyond the buffer
    assert!(wire(&[0x2a, 0x10, 0x01]).contains("buffer underflow"));
    // a 1.0 request sent as 2.0: reserved fields refused, not an empty write
    let msg = wire(&valid_request().encode_to_vec());
    assert!(msg.contains("reserved"), "{msg}");
    // unknown fields of every wire type are skipped
    let mut raw = spec_request().encode_to_vec();
    raw.extend([0x48, 0x96, 0x01]); // field 9 varint
    raw.extend([0x51, 1, 2, 3, 4, 5, 6, 7, 8]); // field 10 fixed64
    raw.extend([0x5a, 0x01, b'x']); // field 11 bytes
    raw.extend([0x65, 1, 2, 3, 4]); // field 12 fixed32
    raw.extend([0x6b, 0x08, 0x01, 0x6c]); // field 13 group
    let out = decode_request_v2(&raw, &cfg).unwrap();
    assert_eq!(out.summary.samples, 6);
}

#[test]
fn v2_empty_request_and_empty_symbol_table() {
    let cfg = RemoteWriteConfig::default();
    let out = decode_request_v2(&[], &cfg).unwrap();
    assert_eq!((out.samples.num_rows(), out.summary.series), (0, 0));
    // a series in a request without symbols cannot name its metric
    let req = v2::Request {
        symbols: vec![],
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2],
            ..Default::default()
        }],
    };
    assert!(matches!(
        decode_v2(&req).unwrap_err(),
        Error::InvalidSeries { index: 0, .. }
    ));
}

#[test]
fn the_decompression_buffer_is_reused_but_not_kept_when_huge() {
    let cfg = RemoteWriteConfig::default();
    decode_remote_write(&body(&valid_request()), RemoteWriteVersion::V1, &cfg).unwrap();
    let kept = SCRATCH.take();
    assert!(kept.capacity() > 0 && kept.capacity() <= SCRATCH_RETAINED_BYTES);
    SCRATCH.set(kept);
    // a request decompressing to more than the retained size: decoded, then
    // its buffer dropped (one big request does not pin memory)
    let mut big = valid_request();
    big.timeseries[0]
        .labels
        .push(label("pad", &"x".repeat(5 << 20)));
    decode_remote_write(&body(&big), RemoteWriteVersion::V1, &cfg).unwrap();
    assert_eq!(SCRATCH.take().capacity(), 0);
    // and a smaller request after it still decodes from a fresh buffer
    let out = decode_remote_write(&body(&valid_request()), RemoteWriteVersion::V1, &cfg).unwrap();
    assert_eq!(out.samples.num_rows(), 20);
}

/// `tag` as a length-delimited field holding `bytes`.
fn len_field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    let mut v = u64::from(tag << 3 | 2);
    let push = |mut v: u64, out: &mut Vec<u8>| {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    push(v, out);
    v = bytes.len() as u64;
    push(v, out);
    out.extend_from_slice(bytes);
}

/// A message whose bytes are the concatenation of two encodings is their
/// merge: non-repeated fields keep the last value sent (a oneof switches
/// variant), repeated ones append.
fn merged<M: Message>(a: &M, b: &M) -> Vec<u8> {
    let mut v = a.encode_to_vec();
    v.extend(b.encode_to_vec());
    v
}

proptest::proptest! {
    /// Sub-messages sent as two concatenated encodings (the protobuf merge)
    /// at every level: the reader merges them as prost does.
    #[test]
    fn reader_merges_repeated_messages_as_prost(
        series in proptest::collection::vec((arb::series(), arb::series()), 1..3),
        labels in proptest::collection::vec((arb::label(), arb::label()), 0..4),
        samples in proptest::collection::vec((arb::sample(), arb::sample()), 0..3),
        hists in proptest::collection::vec((arb::histogram(), arb::histogram()), 0..2),
    ) {
        // whole series merged (labels, samples, … appended): often invalid
        // (two __name__), compared all the same
        let mut raw = Vec::new();
        for (a, b) in &series {
            len_field(1, &merged(a, b), &mut raw);
        }
        let (reference, reader) = both_v1(&raw);
        proptest::prop_assert_eq!(reference, reader);

        // one valid series whose labels, samples and histograms are each
        // two merged encodings
        let mut ts = TimeSeries {
            labels: vec![label("__name__", "m")],
            ..Default::default()
        }
        .encode_to_vec();
        for (i, (la, lb)) in labels.iter().enumerate() {
            let lb = Label { name: format!("n{i}"), value: lb.value.clone() };
            len_field(1, &merged(la, &lb), &mut ts);
        }
        let tame = |s: &Sample| Sample { value: s.value, timestamp: s.timestamp % 1_000_000_000_000 };
        for (sa, sb) in &samples {
            len_field(2, &merged(&tame(sa), &tame(sb)), &mut ts);
        }
        let tame = |h: &Histogram| {
            let mut h = h.clone();
            h.timestamp %= 1_000_000_000_000;
            h.positive_spans = vec![BucketSpan { offset: 1, length: h.positive_deltas.len() as u32 }];
            h.positive_deltas.iter_mut().for_each(|d| *d = d.abs());
            for s in h.positive_spans.iter_mut().chain(h.negative_spans.iter_mut()) {
                s.offset = s.offset.abs();
            }
            h
        };
        for (ha, hb) in &hists {
            len_field(4, &merged(&tame(ha), &tame(hb)), &mut ts);
        }
        let mut raw = Vec::new();
        len_field(1, &ts, &mut raw);
        let (reference, reader) = both_v1(&raw);
        proptest::prop_assert!(matches!(reference, Outcome::Batches(_)), "{:?}", reference);
        proptest::prop_assert_eq!(reference, reader);
    }
}

#[test]
fn the_decoded_length_comes_from_the_snappy_header_and_falls_back_to_the_body() {
    let cfg = RemoteWriteConfig::default();
    let req = WriteRequest {
        timeseries: (0..50)
            .map(|i| {
                series(
                    &[("__name__", "up"), ("instance", &format!("host-{i}"))],
                    &[(1.0, 1)],
                )
            })
            .collect(),
        ..Default::default()
    };
    let raw = req.encode_to_vec();
    let compressed = body(&req);
    assert!(compressed.len() < raw.len(), "the request compresses");
    assert_eq!(remote_write_decoded_len(&compressed, &cfg), raw.len());
    // Garbage, or a header over the limit: the body's own length (the
    // decoder refuses those with its own error).
    assert_eq!(remote_write_decoded_len(&[0xff; 3], &cfg), 3);
    let small = RemoteWriteConfig {
        max_decompressed_bytes: 16,
        ..RemoteWriteConfig::default()
    };
    assert_eq!(
        remote_write_decoded_len(&compressed, &small),
        compressed.len()
    );
    // A header claiming more than snappy can expand to.
    let mut lie = vec![0x80, 0x80, 0x80, 0x01];
    lie.extend_from_slice(&[0; 4]);
    assert_eq!(remote_write_decoded_len(&lie, &cfg), lie.len());
}
