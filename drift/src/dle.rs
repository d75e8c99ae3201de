//! Direct loss estimation (DLE) of a regression model's error on a window
//! without labels (NannyML's DLE). STUB: signatures fixed, bodies to be
//! written.

use serde::{Deserialize, Serialize};

use crate::cbpe::Estimate;
use crate::error::{Result, not_enough};
use crate::matrix::FeatureMatrix;

/// The loss models fitted on the labelled reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dle {
    rows: u64,
}

/// A window's estimated regression errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DleEstimates {
    pub rows: u64,
    pub mae: Estimate,
    pub mse: Estimate,
    pub rmse: Estimate,
    pub mape: Estimate,
}

impl Dle {
    /// Fits the loss models on the reference's features, predictions and
    /// labels (one per row).
    pub fn fit(reference: &FeatureMatrix, predictions: &[f64], labels: &[f64]) -> Result<Self> {
        let _ = (reference, predictions, labels);
        Err(not_enough("dle", "not implemented"))
    }

    /// Estimates the window's errors from its features and predictions.
    pub fn estimate(&self, current: &FeatureMatrix, predictions: &[f64]) -> Result<DleEstimates> {
        let _ = (current, predictions);
        Err(not_enough("dle", "not implemented"))
    }
}
