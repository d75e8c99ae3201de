//! End-to-end tests against the real `modelwatch` binary.
