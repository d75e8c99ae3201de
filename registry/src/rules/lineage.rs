//! Lineage from a tracking run, decided without a database.

use std::collections::BTreeMap;

use crate::tracking::MetricPoint;
use crate::types::Lineage;

/// Fills a new version's lineage from the run it names: the run's
/// parameters become `lineage.parameters` and the latest value of each
/// metric (`latest`, one point per key) `lineage.metrics`. Values given
/// explicitly in the request win. (A run id the registry does not know is
/// left alone by the caller: it may name a run in another tracking server.)
pub fn merge_run(
    params: BTreeMap<String, String>,
    latest: Vec<MetricPoint>,
    lineage: &mut Lineage,
) {
    for (k, v) in params {
        lineage.parameters.entry(k).or_insert(v);
    }
    for m in latest {
        lineage.metrics.entry(m.key).or_insert(m.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_values_fill_gaps_and_explicit_values_win() {
        let mut lineage = Lineage {
            parameters: [("depth".to_string(), "8".to_string())].into(),
            metrics: [("auc".to_string(), 0.5)].into(),
            ..Default::default()
        };
        let params = [
            ("depth".to_string(), "6".to_string()),
            ("lr".to_string(), "0.1".to_string()),
        ]
        .into();
        let point = |key: &str, value| MetricPoint {
            key: key.into(),
            value,
            timestamp: 0,
            step: 3,
        };
        merge_run(
            params,
            vec![point("auc", 0.9), point("loss", 0.2)],
            &mut lineage,
        );
        assert_eq!(lineage.parameters["depth"], "8");
        assert_eq!(lineage.parameters["lr"], "0.1");
        assert_eq!(lineage.metrics["auc"], 0.5);
        assert_eq!(lineage.metrics["loss"], 0.2);
    }
}
