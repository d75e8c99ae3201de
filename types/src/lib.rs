//! # modelwatch-types
//!
//! The few definitions every other modelwatch crate shares, so that none
//! has to copy another's: the injected [`Clock`]; the registry's vocabulary
//! (roles, feature kinds, stages, alias moves, recommendation kinds and
//! states, alias-name rules); the names of the drift statistics and
//! corrections; the monitoring policy every component reads; the history
//! tables' names; the registry's records as the API sends them
//! ([`records`], one definition for the registry, the server and the
//! client).
//!
//! It must not grow behaviour: no I/O, no async, no dependency on another
//! modelwatch crate. Anything here is a public name (API JSON, SQL, audit
//! entries): change one only with a deprecation path.

pub mod clock;
pub mod drift;
pub mod policy;
pub mod records;
pub mod tables;
pub mod vocabulary;

pub use clock::{Clock, ManualClock, SystemClock};
pub use drift::{Correction, DetectorConfig, DriftMethod};
pub use policy::{
    AnomalyPolicy, DataQualityPolicy, ErrorSource, FairnessPolicy, FeaturePolicy, HIGHER_IS_BETTER,
    LOWER_IS_BETTER, LatencySource, MAX_FAIRNESS_ATTRIBUTES, MAX_POLICY_ANOMALIES,
    MAX_POLICY_FEATURES, MonitoringPolicy, MultivariatePolicy, PerformancePolicy, PerformanceTask,
    Period, ReferenceSource, RollbackPolicy, SPAN_SERIES, SeriesSource,
};
pub use vocabulary::{
    FeatureKind, Features, InvalidValue, MoveKind, RecommendationKind, RecommendationStatus, Role,
    Severity, Stage, Tags, Transition, VersionStatus, check_alias_name,
};
