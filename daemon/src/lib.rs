//! # modelwatch (daemon)
//!
//! Configuration, CLI, the HTTP server and its thin handlers, and the wiring
//! of the library crates into one process.
