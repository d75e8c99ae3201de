//! Agreement with fairlearn on the committed fixtures
//! (`scripts/gen_fairness_fixtures.py`): every figure to 1e-12 (rates are
//! ratios of counts, so only the last bit can differ).

use modelwatch_drift::fairness;
use serde_json::Value;

use crate::common::{assert_close, fixture};

const TOL: f64 = 1e-12;

fn flags(v: &Value) -> Vec<bool> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_i64() == Some(1))
        .collect()
}

#[test]
fn fairness_figures_equal_fairlearns() {
    let all = fixture("fairness.json");
    let cases = all["cases"].as_object().expect("cases");
    assert!(cases.len() >= 4);
    for (name, case) in cases {
        let groups: Vec<&str> = case["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        let selected = flags(&case["selected"]);
        let labels: Vec<Option<bool>> = flags(&case["labels"]).into_iter().map(Some).collect();
        let f = fairness::fairness(&groups, &selected, &labels)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let by_group = case["by_group"].as_object().unwrap();
        assert_eq!(f.groups.len(), by_group.len(), "{name}: groups");
        for g in &f.groups {
            let want = &by_group[&g.group];
            let what = |m: &str| format!("{name} {} {m}", g.group);
            assert_eq!(
                g.rows as f64,
                want["count"].as_f64().unwrap(),
                "{}",
                what("count")
            );
            assert_close(
                g.selection_rate,
                want["selection_rate"].as_f64().unwrap(),
                TOL,
                &what("selection_rate"),
            );
            assert_close(
                g.true_positive_rate.expect("defined"),
                want["true_positive_rate"].as_f64().unwrap(),
                TOL,
                &what("true_positive_rate"),
            );
            assert_close(
                g.false_positive_rate.expect("defined"),
                want["false_positive_rate"].as_f64().unwrap(),
                TOL,
                &what("false_positive_rate"),
            );
        }
        for (field, got) in [
            (
                "demographic_parity_difference",
                Some(f.demographic_parity_difference),
            ),
            ("demographic_parity_ratio", f.disparate_impact_ratio),
            (
                "equal_opportunity_difference",
                f.equal_opportunity_difference,
            ),
            ("equalized_odds_difference", f.equalized_odds_difference),
        ] {
            assert_close(
                got.expect("defined"),
                case[field].as_f64().unwrap(),
                TOL,
                &format!("{name} {field}"),
            );
        }
    }
}
