//! Fuzz the remote-write decoder: the first byte picks the path (snappy
//! body or raw protobuf, which reaches the validation code far more often),
//! the rest is the body. Any panic is a bug; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelwatch_collectors::{RemoteWriteConfig, decode_remote_write, decode_write_request};

fuzz_target!(|data: &[u8]| {
    let cfg = RemoteWriteConfig {
        max_decompressed_bytes: 1 << 20,
        ..Default::default()
    };
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let result = if mode & 1 == 0 {
        decode_remote_write(body, &cfg)
    } else {
        decode_write_request(body, &cfg)
    };
    if let Ok(out) = result {
        assert_eq!(out.summary.samples, out.samples.num_rows());
        assert_eq!(out.summary.histograms, out.histograms.num_rows());
    }
});
