//! The crate's one integration-test binary: scipy fixture agreement,
//! property tests, the false-alarm rate, sketch error, the report, anomaly
//! detectors and the canary judge.

mod common;
mod scipy_agreement;
mod properties;
mod behaviour;
