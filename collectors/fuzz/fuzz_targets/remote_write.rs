//! Fuzz the remote-write decoders: the first byte picks the path (bit 0:
//! snappy body or raw protobuf, which reaches the validation code far more
//! often; bit 1: remote write 1.0 or 2.0), the rest is the body. Any panic
//! is a bug; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelwatch_collectors::{
    RemoteWriteConfig, RemoteWriteVersion, decode_remote_write, decode_request_v2,
    decode_write_request,
};

fuzz_target!(|data: &[u8]| {
    let cfg = RemoteWriteConfig {
        max_decompressed_bytes: 1 << 20,
        ..Default::default()
    };
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let version = if mode & 2 == 0 {
        RemoteWriteVersion::V1
    } else {
        RemoteWriteVersion::V2
    };
    let result = match (mode & 1, version) {
        (0, _) => decode_remote_write(body, version, &cfg),
        (_, RemoteWriteVersion::V1) => decode_write_request(body, &cfg),
        (_, RemoteWriteVersion::V2) => decode_request_v2(body, &cfg),
    };
    if let Ok(out) = result {
        assert_eq!(out.summary.samples, out.samples.num_rows());
        assert_eq!(out.summary.histograms, out.histograms.num_rows());
    }
});
