#!/usr/bin/env python3
"""Regenerate drift/tests/fixtures/cbpe.json and cbpe_multiclass.json from
NannyML's CBPE (versions
pinned in requirements-nannyml.txt; NannyML needs its own environment).
The Rust tests read the committed JSON; they never run Python. Run from
anywhere:
    python3 drift/scripts/gen_cbpe_fixtures.py

Each case is a labelled reference window (scores, labels) and an
unlabelled analysis window (scores) of a binary classifier, with NannyML's
estimated accuracy, precision, recall, F1 and ROC AUC on the analysis
window (one chunk), their sampling errors and confidence bounds, and whether
NannyML calibrated the scores.

cbpe_multiclass.json holds the same for a three-class classifier (one score
column per class, the decisions being the argmax of the scores): NannyML's
accuracy, macro precision, recall, F1, specificity and ROC AUC, and which
classes' one-vs-rest calibrators NannyML fitted. Its generator has its own
seed, so adding it left cbpe.json's cases as they were.

Scores are rounded to 9 significant digits, so the JSON round-trips to the
same doubles.
"""
import json
import os
import warnings

# NannyML reports usage to a web service unless told not to.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import nannyml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]
MULTICLASS_METRICS = ["accuracy", "precision", "recall", "f1", "specificity", "roc_auc"]
CLASSES = [0, 1, 2]
# The classes' logit directions in the latent plane, 120° apart.
DIRECTIONS = np.array([[np.cos(a), np.sin(a)] for a in (0.0, 2 * np.pi / 3, 4 * np.pi / 3)])
THRESHOLD = 0.5


def r9(a):
    return np.array([float(f"{v:.9g}") for v in np.asarray(a, dtype=float)])


def window(rng, n, mean, steepness, confidence):
    """Latent z ~ N(mean, 1); label 1 with probability sigmoid(steepness·z);
    the model's score is sigmoid(confidence·z) (miscalibrated unless
    confidence == steepness)."""
    z = rng.normal(mean, 1.0, n)
    labels = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-steepness * z))).astype(int)
    scores = r9(1 / (1 + np.exp(-confidence * z)))
    return scores, labels


def case(reference, analysis):
    (ref_scores, ref_labels), (scores, labels) = reference, analysis
    ref = pd.DataFrame({"p": ref_scores, "y_pred": (ref_scores >= THRESHOLD).astype(int), "y": ref_labels})
    ana = pd.DataFrame({"p": scores, "y_pred": (scores >= THRESHOLD).astype(int)})
    est = nannyml.CBPE(
        y_pred_proba="p", y_pred="y_pred", y_true="y", metrics=METRICS,
        chunk_number=1, problem_type="classification_binary",
    )
    est.fit(ref)
    row = est.estimate(ana).filter(period="analysis").to_df().iloc[0]
    out = {
        "reference_scores": list(ref_scores),
        "reference_labels": [int(v) for v in ref_labels],
        "scores": list(scores),
        "threshold": THRESHOLD,
        "needs_calibration": bool(est.needs_calibration),
        # What the labels NannyML never saw say (for the reader; the tests
        # compare estimates with NannyML's).
        "realized_accuracy": float(np.mean((scores >= THRESHOLD).astype(int) == labels)),
    }
    out.update(estimates(row, METRICS))
    return out


def estimates(row, metrics):
    return {
        m: {
            "value": float(row[(m, "value")]),
            "sampling_error": float(row[(m, "sampling_error")]),
            "lower": float(row[(m, "lower_confidence_boundary")]),
            "upper": float(row[(m, "upper_confidence_boundary")]),
        }
        for m in metrics
    }


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def multiclass_window(rng, n, mean, steepness, confidence):
    """Latent x ~ N(mean, I) in the plane; class c's logit is x·DIRECTIONS[c];
    the label is drawn from softmax(steepness·logits) and the model's scores
    are softmax(confidence·logits) (miscalibrated unless confidence ==
    steepness). Returns the score columns (one per class) and the labels."""
    x = rng.normal(0.0, 1.0, (n, 2)) + np.asarray(mean, dtype=float)
    logits = x @ DIRECTIONS.T
    truth = softmax(steepness * logits)
    u = rng.uniform(0, 1, n)
    labels = np.minimum((u[:, None] > np.cumsum(truth, axis=1)).sum(axis=1), len(CLASSES) - 1)
    scores = softmax(confidence * logits)
    return [r9(scores[:, c]) for c in CLASSES], labels


def multiclass_case(reference, analysis):
    (ref_scores, ref_labels), (scores, labels) = reference, analysis
    columns = {c: f"p{c}" for c in CLASSES}

    def frame(cols):
        df = pd.DataFrame({columns[c]: cols[c] for c in CLASSES})
        df["y_pred"] = np.argmax(np.column_stack(cols), axis=1)
        return df

    ref, ana = frame(ref_scores), frame(scores)
    ref["y"] = ref_labels
    est = nannyml.CBPE(
        y_pred_proba=columns, y_pred="y_pred", y_true="y", metrics=MULTICLASS_METRICS,
        chunk_number=1, problem_type="classification_multiclass",
    )
    est.fit(ref)
    row = est.estimate(ana).filter(period="analysis").to_df().iloc[0]
    out = {
        "classes": len(CLASSES),
        "reference_scores": [list(col) for col in ref_scores],
        "reference_labels": [int(v) for v in ref_labels],
        "reference_predicted": [int(v) for v in ref["y_pred"]],
        "scores": [list(col) for col in scores],
        "predicted": [int(v) for v in ana["y_pred"]],
        "needs_calibration": [
            not isinstance(est._calibrators[c], nannyml.calibration.NoopCalibrator) for c in CLASSES
        ],
        "realized_accuracy": float(np.mean(ana["y_pred"].to_numpy() == labels)),
    }
    out.update(estimates(row, MULTICLASS_METRICS))
    return out


def main():
    rng = np.random.default_rng(20261207)
    cases = {
        # Under-confident scores (calibration needed); covariate shift.
        "underconfident_shifted": case(window(rng, 5000, 0.0, 2.0, 1.0), window(rng, 5000, 0.5, 2.0, 1.0)),
        # Calibrated scores; the same population.
        "calibrated_stable": case(window(rng, 5000, 0.0, 1.5, 1.5), window(rng, 4000, 0.0, 1.5, 1.5)),
        # Over-confident scores; the population moves to the uncertain middle.
        "overconfident_to_middle": case(window(rng, 6000, 0.3, 1.0, 3.0), window(rng, 3000, 0.0, 1.0, 3.0)),
    }
    meta = {"nannyml": nannyml.__version__, "numpy": np.__version__, "pandas": pd.__version__}
    with open(os.path.join(OUT, "cbpe.json"), "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, allow_nan=False)

    rng = np.random.default_rng(20261208)
    cases = {
        # Calibrated scores; the same population.
        "calibrated_stable": multiclass_case(
            multiclass_window(rng, 4000, (0.0, 0.0), 1.5, 1.5), multiclass_window(rng, 3000, (0.0, 0.0), 1.5, 1.5)
        ),
        # Over-confident scores; the same population.
        "overconfident": multiclass_case(
            multiclass_window(rng, 5000, (0.0, 0.0), 1.0, 2.5), multiclass_window(rng, 3000, (0.0, 0.0), 1.0, 2.5)
        ),
        # Under-confident scores; the analysis window moves towards class 0.
        "underconfident_shifted": multiclass_case(
            multiclass_window(rng, 4000, (0.0, 0.0), 2.0, 1.0), multiclass_window(rng, 3500, (0.8, 0.3), 2.0, 1.0)
        ),
    }
    with open(os.path.join(OUT, "cbpe_multiclass.json"), "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, allow_nan=False)


if __name__ == "__main__":
    main()
