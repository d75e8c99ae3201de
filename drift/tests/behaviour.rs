//! Behavioural tests.
