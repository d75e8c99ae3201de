//! # modelwatch-alerts
//!
//! Alertmanager webhook (version 4) payloads ([`webhook`]), the rules that
//! turn one alert into a rollback, a retrain recommendation or a recorded
//! refusal ([`decision`]), and the Prometheus rule files and example
//! Alertmanager configuration shipped in `alerts/` ([`files`]).
//!
//! It must not touch the registry or the network: it parses and decides,
//! the daemon acts (and the registry re-checks, in the same transaction as
//! the move, that the alias still points where the alert said).
//!
//! ## Formats
//! - Alertmanager webhook payload `"version": "4"`; unknown fields are
//!   ignored, as Alertmanager's documentation asks of receivers.
//! - Prometheus rule files in Prometheus 2.x YAML (`groups[].rules[]`).

pub mod decision;
pub mod files;
pub mod webhook;

pub use decision::{Action, Decision, PolicyView, decide};
pub use files::{FILES, RulesError, rule_expressions};
pub use webhook::{Alert, AlertStatus, Notification, PayloadError, parse_notification};

/// Label naming the model an alert is about.
pub const LABEL_MODEL: &str = "model";
/// Label naming the model version (its number) an alert is about.
pub const LABEL_VERSION: &str = "version";
/// Optional label naming the alias to roll back (default: the alias the
/// model's monitoring policy watches).
pub const LABEL_ALIAS: &str = "alias";
/// Label telling modelwatch what to do: `rollback`, `retrain` or `none`.
pub const LABEL_ACTION: &str = "modelwatch_action";
