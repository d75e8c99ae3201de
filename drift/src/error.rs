//! The crate's one error type.
//!
//! Low-level statistics return [`Result`]; the report layer turns
//! [`DriftError::NotEnoughData`] into an explicit
//! [`Decision::NotEnoughData`](crate::Decision::NotEnoughData) result so a
//! degenerate feature never aborts a whole report and never leaks a NaN.

use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DriftError {
    /// The input is too small or too degenerate (empty, single value, all
    /// values equal, zero variance) for the statistic to be defined.
    #[error("not enough data for {method}: {reason}")]
    NotEnoughData {
        /// The method name, as in [`DriftMethod`](crate::DriftMethod)'s serialized form.
        method: &'static str,
        /// Why, in words a user can act on.
        reason: String,
    },
    /// A caller-supplied parameter is out of range (negative tolerance,
    /// alpha outside (0, 1), zero bins, mismatched bucket counts, ...).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The input contains NaN or infinite values; statistics would be
    /// meaningless, so they are rejected rather than silently dropped.
    #[error("non-finite value in {what}")]
    NonFinite {
        /// Which input.
        what: &'static str,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = DriftError> = std::result::Result<T, E>;

pub(crate) fn not_enough(method: &'static str, reason: impl Into<String>) -> DriftError {
    DriftError::NotEnoughData {
        method,
        reason: reason.into(),
    }
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> DriftError {
    DriftError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

/// Rejects NaN and infinities up front.
pub(crate) fn check_finite(xs: &[f64], what: &'static str) -> Result<()> {
    if xs.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(DriftError::NonFinite { what })
    }
}
