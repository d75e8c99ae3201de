//! # modelwatch-alerts
//!
//! Alertmanager webhook (version 4) types, the rules that turn a firing
//! alert into a rollback or retrain decision, and the Prometheus rule files
//! shipped in `alerts/rules/`.
//!
//! It must not touch the registry or the network itself: it decides, the
//! daemon acts. Filled by the alerts-and-dashboards issue.
