//! Agreement with scikit-learn on the committed fixtures
//! (`scripts/gen_performance_fixtures.py`): every figure to 1e-9 relative
//! (sums in a different order differ in the last bits only).

use modelwatch_drift::performance::{self, Scores};
use serde_json::Value;

use crate::common::{assert_close, fixture, floats};

const TOL: f64 = 1e-9;

fn texts(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("text").to_string())
        .collect()
}

fn optional(got: Option<f64>, want: &Value, what: &str) {
    match (got, want.as_f64()) {
        (Some(g), Some(w)) => assert_close(g, w, TOL, what),
        (None, None) => {}
        (g, _) => panic!("{what}: got {g:?}, sklearn {want}"),
    }
}

#[test]
fn classification_metrics_equal_sklearns() {
    let all = fixture("performance.json");
    let cases = all["classification"].as_object().expect("cases");
    assert!(cases.len() >= 5);
    for (name, case) in cases {
        let labels = texts(&case["labels"]);
        let predictions = texts(&case["predictions"]);
        let score_values = case.get("scores").map(floats);
        let positive = case.get("positive_class").and_then(Value::as_str);
        let scores = score_values.as_deref().map(|values| Scores {
            positive_class: positive.expect("a positive class with scores"),
            values,
        });
        let m = performance::classification(&labels, &predictions, scores)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (field, got) in [
            ("accuracy", m.accuracy),
            ("macro_precision", m.macro_precision),
            ("macro_recall", m.macro_recall),
            ("macro_f1", m.macro_f1),
            ("weighted_f1", m.weighted_f1),
        ] {
            assert_close(
                got,
                case[field].as_f64().unwrap(),
                TOL,
                &format!("{name} {field}"),
            );
        }
        let want_classes = case["classes"].as_object().unwrap();
        assert_eq!(m.classes.len(), want_classes.len(), "{name}: classes");
        for (class, want) in want_classes {
            let got = &m.classes[class];
            let what = format!("{name} {class}");
            assert_close(
                got.precision,
                want["precision"].as_f64().unwrap(),
                TOL,
                &what,
            );
            assert_close(got.recall, want["recall"].as_f64().unwrap(), TOL, &what);
            assert_close(got.f1, want["f1"].as_f64().unwrap(), TOL, &what);
            assert_eq!(got.support, want["support"].as_u64().unwrap(), "{what}");
        }
        match &m.scores {
            Some(s) => {
                optional(s.roc_auc, &case["roc_auc"], &format!("{name} roc_auc"));
                assert_close(
                    s.log_loss,
                    case["log_loss"].as_f64().unwrap(),
                    TOL,
                    &format!("{name} log_loss"),
                );
                assert_close(
                    s.calibration_error,
                    case["calibration_error"].as_f64().unwrap(),
                    TOL,
                    &format!("{name} calibration_error"),
                );
            }
            None => assert!(case.get("roc_auc").is_none(), "{name}: scores expected"),
        }
    }
}

#[test]
fn regression_metrics_equal_sklearns() {
    let all = fixture("performance.json");
    let cases = all["regression"].as_object().expect("cases");
    assert!(cases.len() >= 5);
    for (name, case) in cases {
        let m = performance::regression(&floats(&case["labels"]), &floats(&case["predictions"]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_close(
            m.mae,
            case["mae"].as_f64().unwrap(),
            TOL,
            &format!("{name} mae"),
        );
        assert_close(
            m.rmse,
            case["rmse"].as_f64().unwrap(),
            TOL,
            &format!("{name} rmse"),
        );
        assert_close(
            m.mape,
            case["mape"].as_f64().unwrap(),
            TOL,
            &format!("{name} mape"),
        );
        optional(m.r2, &case["r2"], &format!("{name} r2"));
    }
}
