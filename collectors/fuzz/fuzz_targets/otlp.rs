//! Fuzz the OTLP decoders (protobuf and JSON; metrics, logs, traces): the
//! first byte picks the decoder. Any panic is a bug; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelwatch_collectors::otlp::{Encoding, OtlpConfig, decode_logs, decode_metrics, decode_traces};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let cfg = OtlpConfig::default();
    let enc = if mode & 1 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    match (mode >> 1) % 3 {
        0 => {
            if let Ok(out) = decode_metrics(body, enc, &cfg) {
                assert_eq!(out.summary.samples, out.samples.num_rows());
            }
        }
        1 => {
            let _ = decode_logs(body, enc, &cfg);
        }
        _ => {
            let _ = decode_traces(body, enc, &cfg);
        }
    }
});
