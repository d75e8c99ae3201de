//! Operational anomaly detectors for metric series (latency, error rate,
//! prediction mean): rolling z-score, median/MAD bands, EWMA control chart,
//! CUSUM and Page–Hinkley.
//!
//! Every detector classifies each point as a *breach* or not; an *alarm*
//! is raised only after `persistence` consecutive breaches, so a single
//! spike does not page anyone. Detectors that need a baseline (EWMA, CUSUM)
//! estimate it from the first `warmup` points; window detectors compare a
//! point with the window *before* it. During warm-up no point breaches.
//! Scores and bands are `None`, never NaN or infinite, when undefined (for
//! example a constant window: then any different value breaches).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::{Result, check_finite, invalid};
use crate::special;

pub use modelwatch_types::DetectorConfig;

/// [`DetectorConfig::check`] as this crate's error.
fn validate(config: &DetectorConfig) -> Result<()> {
    config
        .check()
        .map_err(|(name, reason)| invalid(name, reason))
}

/// One point's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyPoint {
    /// Position in the series.
    pub index: usize,
    /// The value.
    pub value: f64,
    /// The detector's statistic (z, EWMA value, CUSUM sum, PH statistic).
    pub score: Option<f64>,
    /// Lower band, where the detector has one.
    pub lower: Option<f64>,
    /// Upper band, where the detector has one.
    pub upper: Option<f64>,
    /// Whether this point breaches.
    pub breach: bool,
    /// Consecutive breaches ending here.
    pub consecutive: usize,
    /// Whether `consecutive` reached the persistence rule.
    pub alarm: bool,
}

/// A detector run over a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyReport {
    /// Detector and parameters.
    pub detector: DetectorConfig,
    /// Breaches needed in a row for an alarm.
    pub persistence: usize,
    /// Per-point verdicts.
    pub points: Vec<AnomalyPoint>,
    /// Indices where an alarm is raised.
    pub alarms: Vec<usize>,
    /// Whether the last point is in alarm (what a live evaluator acts on).
    pub alarming: bool,
}

/// A streaming detector: feed points one at a time.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    persistence: usize,
    index: usize,
    consecutive: usize,
    window: VecDeque<f64>,
    warm: Vec<f64>,
    mu0: f64,
    sigma0: f64,
    z: f64,
    s_hi: f64,
    s_lo: f64,
    ph_n: f64,
    ph_mean: f64,
    ph_m: f64,
    ph_min: f64,
    ph_max: f64,
}

impl Detector {
    /// A detector with a persistence rule (`persistence` ≥ 1).
    pub fn new(config: DetectorConfig, persistence: usize) -> Result<Self> {
        validate(&config)?;
        if persistence == 0 {
            return Err(invalid("persistence", "must be at least 1"));
        }
        Ok(Detector {
            config,
            persistence,
            index: 0,
            consecutive: 0,
            window: VecDeque::new(),
            warm: Vec::new(),
            mu0: 0.0,
            sigma0: 0.0,
            z: 0.0,
            s_hi: 0.0,
            s_lo: 0.0,
            ph_n: 0.0,
            ph_mean: 0.0,
            ph_m: 0.0,
            ph_min: 0.0,
            ph_max: 0.0,
        })
    }

    /// Feeds one finite value and returns its verdict. Non-finite values
    /// are rejected so they cannot poison the detector's state.
    pub fn update(&mut self, x: f64) -> Result<AnomalyPoint> {
        if !x.is_finite() {
            return Err(crate::error::DriftError::NonFinite {
                what: "series value",
            });
        }
        let (score, lower, upper, breach) = self.step(x);
        self.consecutive = if breach { self.consecutive + 1 } else { 0 };
        let alarm = self.consecutive >= self.persistence;
        let p = AnomalyPoint {
            index: self.index,
            value: x,
            score: score.filter(|s| s.is_finite()),
            lower: lower.filter(|s| s.is_finite()),
            upper: upper.filter(|s| s.is_finite()),
            breach,
            consecutive: self.consecutive,
            alarm,
        };
        if alarm {
            self.after_alarm();
        }
        self.index += 1;
        Ok(p)
    }

    fn after_alarm(&mut self) {
        // Sequential change detectors restart so the next change can be
        // seen; window detectors simply keep sliding.
        match self.config {
            DetectorConfig::Cusum { .. } => {
                self.s_hi = 0.0;
                self.s_lo = 0.0;
            }
            DetectorConfig::PageHinkley { .. } => {
                self.ph_n = 0.0;
                self.ph_mean = 0.0;
                self.ph_m = 0.0;
                self.ph_min = 0.0;
                self.ph_max = 0.0;
            }
            _ => {}
        }
    }

    fn warmed(&mut self, x: f64, warmup: usize) -> bool {
        if self.warm.len() < warmup {
            self.warm.push(x);
            if self.warm.len() == warmup {
                self.mu0 = special::mean(&self.warm);
                self.sigma0 = special::variance(&self.warm, 1.0).sqrt();
                self.z = self.mu0;
            }
            return false;
        }
        true
    }

    /// Scores `x` against the trailing `window` values by a centre and a
    /// spread (`(x - centre) / spread`, anomalous beyond `k`), then slides
    /// the window. A zero spread makes any value off the centre anomalous.
    fn trailing_window(
        &mut self,
        x: f64,
        window: usize,
        k: f64,
        centre_and_spread: impl Fn(&[f64]) -> (f64, f64),
    ) -> (Option<f64>, Option<f64>, Option<f64>, bool) {
        let out = if self.window.len() >= window {
            let w: Vec<f64> = self.window.iter().copied().collect();
            let (centre, spread) = centre_and_spread(&w);
            if spread > 0.0 {
                let score = (x - centre) / spread;
                (
                    Some(score),
                    Some(centre - k * spread),
                    Some(centre + k * spread),
                    score.abs() > k,
                )
            } else {
                (None, Some(centre), Some(centre), x != centre)
            }
        } else {
            (None, None, None, false)
        };
        self.window.push_back(x);
        if self.window.len() > window {
            self.window.pop_front();
        }
        out
    }

    fn step(&mut self, x: f64) -> (Option<f64>, Option<f64>, Option<f64>, bool) {
        match self.config.clone() {
            DetectorConfig::RollingZ { window, threshold } => {
                self.trailing_window(x, window, threshold, |w| {
                    (special::mean(w), special::variance(w, 1.0).sqrt())
                })
            }
            DetectorConfig::Mad { window, k } => self.trailing_window(x, window, k, |w| {
                let mut w = w.to_vec();
                w.sort_unstable_by(f64::total_cmp);
                let med = special::median_sorted(&w);
                let mut dev: Vec<f64> = w.iter().map(|v| (v - med).abs()).collect();
                dev.sort_unstable_by(f64::total_cmp);
                (med, 1.4826 * special::median_sorted(&dev))
            }),
            DetectorConfig::Ewma { lambda, l, warmup } => {
                if !self.warmed(x, warmup) {
                    return (None, None, None, false);
                }
                self.z = lambda * x + (1.0 - lambda) * self.z;
                let t = (self.index + 1 - warmup) as f64;
                let w = self.sigma0
                    * (lambda / (2.0 - lambda) * (1.0 - (1.0 - lambda).powf(2.0 * t))).sqrt();
                let (lo, hi) = (self.mu0 - l * w, self.mu0 + l * w);
                let breach = if w > 0.0 {
                    self.z < lo || self.z > hi
                } else {
                    self.z != self.mu0
                };
                (Some(self.z), Some(lo), Some(hi), breach)
            }
            DetectorConfig::Cusum { k, h, warmup } => {
                if !self.warmed(x, warmup) {
                    return (None, None, None, false);
                }
                if self.sigma0 > 0.0 {
                    let u = (x - self.mu0) / self.sigma0;
                    self.s_hi = (self.s_hi + u - k).max(0.0);
                    self.s_lo = (self.s_lo - u - k).max(0.0);
                    let s = self.s_hi.max(self.s_lo);
                    (Some(s), None, Some(h), s > h)
                } else {
                    // Constant warm-up: any departure is a change.
                    (None, None, None, x != self.mu0)
                }
            }
            DetectorConfig::PageHinkley { delta, lambda } => {
                self.ph_n += 1.0;
                self.ph_mean += (x - self.ph_mean) / self.ph_n;
                self.ph_m += x - self.ph_mean - delta;
                self.ph_min = self.ph_min.min(self.ph_m);
                // Mirror statistic for decreases.
                let up = self.ph_m - self.ph_min;
                self.ph_max = self.ph_max.max(self.ph_m + 2.0 * delta * self.ph_n);
                let down = self.ph_max - (self.ph_m + 2.0 * delta * self.ph_n);
                let s = up.max(down);
                (Some(s), None, Some(lambda), s > lambda)
            }
        }
    }
}

/// Runs a detector over a whole series.
pub fn detect(
    config: &DetectorConfig,
    persistence: usize,
    series: &[f64],
) -> Result<AnomalyReport> {
    check_finite(series, "series")?;
    let mut d = Detector::new(config.clone(), persistence)?;
    let mut points = Vec::with_capacity(series.len());
    for &x in series {
        points.push(d.update(x)?);
    }
    let alarms: Vec<usize> = points.iter().filter(|p| p.alarm).map(|p| p.index).collect();
    let alarming = points.last().is_some_and(|p| p.alarm);
    Ok(AnomalyReport {
        detector: config.clone(),
        persistence,
        points,
        alarms,
        alarming,
    })
}
