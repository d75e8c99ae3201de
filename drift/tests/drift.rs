//! The crate's one integration-test binary: scipy fixture agreement,
//! property tests, the false-alarm rate, sketch error, the report, anomaly
//! detectors and the canary judge.

mod behaviour;
mod common;
mod fairlearn_agreement;
mod nannyml_agreement;
mod nannyml_dle;
mod nannyml_multivariate;
mod properties;
mod scipy_agreement;
mod sklearn_agreement;
