//! # modelwatch-dashboards
//!
//! Grafana dashboards (JSON) and provisioning files, embedded in the binary
//! so `modelwatch dashboards export DIR` can write them, with checks that
//! every query names a real metric or table.
//!
//! It must not depend on the daemon: it holds files and checks them. Filled
//! by the alerts-and-dashboards issue.
