#!/usr/bin/env python3
"""Regenerate drift/tests/fixtures/performance.json from scikit-learn
(versions pinned in requirements.txt). The Rust tests read the committed
JSON; they never run Python. Run from anywhere:
    python3 drift/scripts/gen_performance_fixtures.py

Scores and regression values are rounded to 9 significant digits first, so
the JSON text round-trips to the same doubles and ties are the same on both
sides.
"""
import json
import os
import warnings

import numpy as np
import sklearn
from sklearn import metrics
from sklearn.calibration import calibration_curve

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def r9(a):
    return [float(f"{v:.9g}") for v in np.asarray(a, dtype=float)]


def classification_case(labels, predictions, scores=None, positive=None):
    classes = sorted(set(labels) | set(predictions))
    p, r, f, s = metrics.precision_recall_fscore_support(
        labels, predictions, labels=classes, average=None, zero_division=0
    )
    case = {
        "labels": labels,
        "predictions": predictions,
        "accuracy": metrics.accuracy_score(labels, predictions),
        "macro_precision": metrics.precision_score(labels, predictions, average="macro", zero_division=0),
        "macro_recall": metrics.recall_score(labels, predictions, average="macro", zero_division=0),
        "macro_f1": metrics.f1_score(labels, predictions, average="macro", zero_division=0),
        "weighted_f1": metrics.f1_score(labels, predictions, average="weighted", zero_division=0),
        "classes": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
    }
    if scores is not None:
        y = np.asarray([1 if l == positive else 0 for l in labels])
        prob = np.asarray(scores)
        true_b, pred_b = calibration_curve(y, prob, n_bins=10, strategy="uniform")
        bins = np.linspace(0.0, 1.0, 11)
        counts = np.bincount(np.searchsorted(bins[1:-1], prob), minlength=10)
        counts = counts[counts != 0]
        case["positive_class"] = positive
        case["scores"] = scores
        case["roc_auc"] = float(metrics.roc_auc_score(y, prob)) if len(set(y)) == 2 else None
        case["log_loss"] = float(metrics.log_loss(y, prob, labels=[0, 1]))
        case["calibration_error"] = float(np.sum(counts / len(y) * np.abs(true_b - pred_b)))
    return case


def regression_case(labels, predictions):
    return {
        "labels": labels,
        "predictions": predictions,
        "mae": metrics.mean_absolute_error(labels, predictions),
        "rmse": metrics.root_mean_squared_error(labels, predictions),
        "mape": metrics.mean_absolute_percentage_error(labels, predictions),
        "r2": float(metrics.r2_score(labels, predictions)) if len(labels) >= 2 else None,
    }


def main():
    rng = np.random.default_rng(20261207)
    cases = {}
    # Binary with probabilities: a decent model, and one with tied scores.
    y = rng.integers(0, 2, 2000)
    prob = np.clip(0.35 * y + rng.uniform(0, 0.65, 2000), 0, 1)
    prob = r9(prob)
    labels = ["fraud" if v else "ok" for v in y]
    preds = ["fraud" if p >= 0.5 else "ok" for p in prob]
    cases["binary_scored"] = classification_case(labels, preds, prob, "fraud")
    tied = r9(np.round(rng.uniform(0, 1, 500), 1))
    yt = rng.integers(0, 2, 500)
    lt = [str(v) for v in yt]
    pt = ["1" if p > 0.5 else "0" for p in tied]
    cases["binary_tied_scores"] = classification_case(lt, pt, tied, "1")
    # Scores at the extremes: log loss clipping, bin edges.
    edge_scores = [0.0, 1.0, 0.1, 0.2, 0.30000000000000004, 0.5, 0.9, 1.0, 0.0, 0.7]
    edge_labels = ["1", "1", "0", "0", "1", "0", "1", "0", "0", "1"]
    cases["binary_edges"] = classification_case(edge_labels, edge_labels[::-1], edge_scores, "1")
    # Multiclass, with a class never predicted and one never labelled.
    ym = rng.integers(0, 4, 3000)
    noise = rng.integers(0, 4, 3000)
    pm = np.where(rng.uniform(0, 1, 3000) < 0.7, ym, noise)
    names = np.array(["cat", "dog", "bird", "fish"])
    ml = list(names[ym])
    mp = [("lizard" if v == "fish" else v) for v in names[pm]]
    cases["multiclass"] = classification_case(ml, mp)
    cases["single_row"] = classification_case(["a"], ["b"])

    regression = {}
    yr = r9(rng.normal(100, 20, 5000))
    regression["noisy"] = regression_case(yr, r9(np.asarray(yr) + rng.normal(0, 5, 5000)))
    ys = r9(rng.normal(0, 1, 1000))
    regression["near_zero_labels"] = regression_case(ys, r9(np.asarray(ys) * 1.1 + 0.01))
    regression["with_zero_label"] = regression_case([0.0, 1.0, 2.0], [0.5, 1.0, 2.5])
    regression["constant_exact"] = regression_case([3.0, 3.0, 3.0], [3.0, 3.0, 3.0])
    regression["constant_missed"] = regression_case([3.0, 3.0, 3.0], [3.0, 2.0, 3.0])
    regression["single_row"] = regression_case([3.0], [2.0])

    meta = {"sklearn": sklearn.__version__, "numpy": np.__version__}
    with open(os.path.join(OUT, "performance.json"), "w") as f:
        json.dump({"meta": meta, "classification": cases, "regression": regression}, f, allow_nan=False)


if __name__ == "__main__":
    main()
