#!/usr/bin/env python3
"""Regenerate drift/tests/fixtures/dle.json from NannyML's DLE (versions
pinned in requirements-nannyml.txt; NannyML needs its own environment).
The Rust tests read the committed JSON; they never run Python. Run from
anywhere:
    python3 drift/scripts/gen_dle_fixtures.py

Each case is a labelled reference window (features, predictions, labels)
and an unlabelled analysis window (features, predictions) of a regression
model, with NannyML's estimated MAE, MSE, RMSE and MAPE on the analysis
window (one chunk), their sampling errors and confidence bounds, and the
realized values on the analysis labels NannyML never saw (for the reader).
Numbers are rounded to 9 significant digits, so the JSON round-trips to the
same doubles; a missing value is null.
"""
import json
import os
import warnings

# NannyML reports usage to a web service unless told not to.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import lightgbm  # noqa: E402
import nannyml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

warnings.filterwarnings("ignore")
# NannyML 0.13.1 reshapes the categorical columns it has just imputed; under
# pandas 3's default str inference they become Arrow arrays, which cannot
# be reshaped. Object columns, as in the pandas NannyML was written for.
pd.set_option("future.infer_string", False)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
METRICS = ["mae", "mse", "rmse", "mape"]


def r9(a):
    return np.array([float(f"{v:.9g}") for v in np.asarray(a, dtype=float)])


def listed(a):
    """Rounded numbers, NaN as null."""
    return [None if np.isnan(v) else float(v) for v in r9(a)]


def heteroscedastic(rng, n, x1):
    """y = 20 + 4·x1 + 2·x2 + noise whose spread grows with x1²; the model
    predicts 20 + 4·x1 + 1.8·x2 (a small slope error on x2)."""
    x2 = rng.normal(0.0, 1.0, n)
    x3 = rng.uniform(-1.0, 1.0, n)  # irrelevant
    y = 20 + 4 * x1 + 2 * x2 + rng.normal(0.0, 1.0, n) * (0.3 + 3 * x1**2)
    pred = 20 + 4 * x1 + 1.8 * x2
    frame = pd.DataFrame({"x1": r9(x1), "x2": r9(x2), "x3": r9(x3), "y_pred": r9(pred), "y": r9(y)})
    return frame, ["x1", "x2", "x3"], []


SEGMENTS = ["a", "b", "c", "d", "e", "f"]
SEGMENT_NOISE = {"a": 0.2, "b": 0.4, "c": 0.6, "d": 1.0, "e": 2.0, "f": 3.0, "g": 3.0}
CHANNELS = ["app", "store", "web"]


def categorical(rng, n, segment_p, unseen):
    """A segment (6 categories, some missing, `unseen` share of a category
    the reference never had) sets the noise; x1 (8 % missing) adds to it; a
    3-category channel shifts the label a little."""
    x1 = rng.uniform(0.0, 1.0, n)
    seg = rng.choice(SEGMENTS, n, p=segment_p).astype(object)
    seg[rng.uniform(0, 1, n) < unseen] = "g"
    channel = rng.choice(CHANNELS, n, p=[0.5, 0.3, 0.2]).astype(object)
    noise = np.array([SEGMENT_NOISE[s] for s in seg]) + x1
    shift = np.where(channel == "store", 1.0, 0.0)
    y = 15 + 5 * x1 + shift + rng.normal(0.0, 1.0, n) * noise
    pred = 15 + 5 * x1 + 0.5 * shift
    x1 = x1.copy()
    x1[rng.uniform(0, 1, n) < 0.08] = np.nan
    seg[rng.uniform(0, 1, n) < 0.05] = None
    channel[rng.uniform(0, 1, n) < 0.03] = None
    frame = pd.DataFrame({
        "x1": r9(x1),
        "segment": pd.Series(seg, dtype=object),
        "channel": pd.Series(channel, dtype=object),
        "y_pred": r9(pred),
        "y": r9(y),
    })
    return frame, ["x1"], ["channel", "segment"]


def rows(frame, numeric, cats, with_labels):
    out = {
        "numeric": {c: listed(frame[c]) for c in numeric},
        "categorical": {c: [None if v is None or v != v else str(v) for v in frame[c]] for c in cats},
        "prediction": listed(frame["y_pred"]),
    }
    if with_labels:
        out["label"] = listed(frame["y"])
    return out


def case(reference, analysis):
    (ref, numeric, cats), (ana, _, _) = reference, analysis
    est = nannyml.DLE(
        feature_column_names=numeric + cats, y_pred="y_pred", y_true="y", metrics=METRICS, chunk_number=1,
    )
    est.fit(ref)
    # The categorical columns must reach LightGBM as categorical features.
    assert all(m.categorical_column_names == sorted(cats) for m in est.metrics), cats
    row = est.estimate(ana.drop(columns=["y"])).filter(period="analysis").to_df().iloc[0]
    err = ana["y"] - ana["y_pred"]
    realized = {
        "mae": float(np.mean(np.abs(err))),
        "mse": float(np.mean(err**2)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err) / np.maximum(np.finfo(float).eps, np.abs(ana["y"])))),
    }
    out = {
        "reference": rows(ref, numeric, cats, True),
        "analysis": rows(ana, numeric, cats, False),
        # What the labels NannyML never saw say (for the reader; the tests
        # compare estimates with NannyML's).
        "realized": realized,
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
    rng = np.random.default_rng(20261208)
    even = [1 / 6] * 6
    noisy = [0.05, 0.05, 0.1, 0.1, 0.35, 0.35]
    cases = {
        # Noise grows with x1; the analysis window is drawn like the reference.
        "heteroscedastic_stable": case(
            heteroscedastic(rng, 3000, rng.uniform(0, 1, 3000)),
            heteroscedastic(rng, 2000, rng.uniform(0, 1, 2000)),
        ),
        # The analysis window crowds into the noisy region (x1 near 1), so
        # the estimated errors rise.
        "heteroscedastic_shifted": case(
            heteroscedastic(rng, 3000, rng.uniform(0, 1, 3000)),
            heteroscedastic(rng, 2000, rng.beta(4.0, 1.0, 2000)),
        ),
        # Categorical features with missing values and a category unseen in
        # the reference; the analysis window favours the noisy segments.
        "categorical_missing": case(
            categorical(rng, 3000, even, 0.0),
            categorical(rng, 2000, noisy, 0.01),
        ),
    }
    meta = {
        "nannyml": nannyml.__version__,
        "lightgbm": lightgbm.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    with open(os.path.join(OUT, "dle.json"), "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, allow_nan=False)


if __name__ == "__main__":
    main()
