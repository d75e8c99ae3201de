#!/usr/bin/env python3
"""Regenerate drift/tests/fixtures/cbpe.json from NannyML's CBPE (versions
pinned in requirements-nannyml.txt; NannyML needs its own environment).
The Rust tests read the committed JSON; they never run Python. Run from
anywhere:
    python3 drift/scripts/gen_cbpe_fixtures.py

Each case is a labelled reference window (scores, labels) and an
unlabelled analysis window (scores) of a binary classifier, with NannyML's
estimated accuracy, precision, recall and F1 on the analysis window (one
chunk), their sampling errors and confidence bounds, and whether NannyML
calibrated the scores. Scores are rounded to 9 significant digits, so the
JSON round-trips to the same doubles.
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
METRICS = ["accuracy", "precision", "recall", "f1"]
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
    for m in METRICS:
        out[m] = {
            "value": float(row[(m, "value")]),
            "sampling_error": float(row[(m, "sampling_error")]),
            "lower": float(row[(m, "lower_confidence_boundary")]),
            "upper": float(row[(m, "upper_confidence_boundary")]),
        }
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


if __name__ == "__main__":
    main()
