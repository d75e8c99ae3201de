//! # modelwatch (the binary's library half)
//!
//! Thin: the command line ([`cli`]) with its client subcommands and offline
//! commands, and process-wide logging with the daemon's own trace export
//! ([`logging`]). The running daemon is `modelwatch-server`; this crate
//! parses flags and hands them over. It must not hold server or domain
//! logic.

pub mod cli;
pub mod logging;
