//! # modelwatch-tests
//!
//! End-to-end tests live in `e2e/`: they start the real `modelwatch` binary
//! on ephemeral ports with a temporary data directory and drive it over HTTP
//! and through its CLI. This library is empty on purpose.
