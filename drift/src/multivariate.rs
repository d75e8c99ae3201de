//! Multivariate drift by PCA data reconstruction error (NannyML's
//! `DataReconstructionDriftCalculator`). STUB: signatures fixed, bodies to
//! be written.

use serde::{Deserialize, Serialize};

use crate::error::{Result, not_enough};
use crate::matrix::FeatureMatrix;

/// Share of the reference's variance the kept principal components
/// explain (NannyML's default `n_components=0.65`).
pub const DEFAULT_VARIANCE_KEPT: f64 = 0.65;

/// Encoders, imputers, scaler and principal components fitted on the
/// reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconstruction {
    components: usize,
}

impl Reconstruction {
    /// Fits on the reference rows, keeping the fewest components that
    /// explain at least `variance_kept` of the variance.
    pub fn fit(reference: &FeatureMatrix, variance_kept: f64) -> Result<Self> {
        let _ = (reference, variance_kept);
        Err(not_enough("reconstruction", "not implemented"))
    }

    /// Principal components kept.
    pub fn components(&self) -> usize {
        self.components
    }

    /// Each row's reconstruction error (Euclidean distance between the
    /// scaled row and its reconstruction).
    pub fn errors(&self, rows: &FeatureMatrix) -> Result<Vec<f64>> {
        let _ = rows;
        Err(not_enough("reconstruction", "not implemented"))
    }
}

/// A window's reconstruction error against the reference's, with its band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionDrift {
    /// Rows of the window.
    pub rows: u64,
    /// Mean reconstruction error of the window's rows.
    pub value: f64,
    /// Mean reconstruction error of the reference's rows.
    pub reference_value: f64,
    /// Standard deviation of the reference's row errors over √rows.
    pub sampling_error: f64,
    /// The band outside which the window has drifted.
    pub lower: f64,
    pub upper: f64,
    /// Principal components kept.
    pub components: usize,
    /// `value` is outside [`lower`, `upper`].
    pub drifted: bool,
}

/// Fits on `reference` and measures `current` against it.
pub fn reconstruction_drift(
    reference: &FeatureMatrix,
    current: &FeatureMatrix,
    variance_kept: f64,
) -> Result<ReconstructionDrift> {
    let _ = (reference, current, variance_kept);
    Err(not_enough("reconstruction", "not implemented"))
}
