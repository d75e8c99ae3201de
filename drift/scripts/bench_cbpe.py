#!/usr/bin/env python3
"""Time NannyML's CBPE on the same data as benches/model_quality.rs (group
`cbpe`): a 100,000-row labelled reference and a 100,000-row window of a
binary classifier's under-confident scores.

The data recipe (splitmix64 uniforms -> Box-Muller normals; score
sigmoid(z), label 1 with probability sigmoid(2z)) is the bench's, value
for value; the printed checksum must equal the one the criterion bench
prints. NannyML fits on the reference (its calibration check and
isotonic fit) and estimates accuracy, precision, recall and F1 on the
window as one chunk, as modelwatch's evaluator does per window.

With --with-drift it also times what the issue's comparison adds to CBPE
on the drift bench's data (bench_peers.py's recipe, 20 numeric and 5
categorical features, 100,000 reference and current rows): NannyML's
UnivariateDriftCalculator with modelwatch's default methods (Wasserstein
for numeric features, Jensen-Shannon for categorical ones) and its data
quality calculators (missing values, unseen values, numerical range),
each fitted on the reference and run on the current window as one chunk.

Usage: python3 drift/scripts/bench_cbpe.py [--rows 100000] [--repeat 3] [--with-drift]
Install: pip install -r drift/scripts/requirements-nannyml.txt
"""
import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import nannyml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# The splitmix64 uniforms of every bench recipe, defined once.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import uniforms  # noqa: E402

warnings.filterwarnings("ignore")


def scored(seed, n, sd):
    u1, u2 = uniforms(seed, n), uniforms(seed + 1, n)
    z = sd * np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
    score = 1.0 / (1.0 + np.exp(-z))
    label = (uniforms(seed + 2, n) < 1.0 / (1.0 + np.exp(-2.0 * z))).astype(int)
    return score, label


def run(reference, window):
    est = nannyml.CBPE(
        y_pred_proba="p", y_pred="y_pred", y_true="y",
        metrics=["accuracy", "precision", "recall", "f1"],
        chunk_number=1, problem_type="classification_binary",
    )
    est.fit(reference)
    return est.estimate(window).filter(period="analysis").to_df().iloc[0]


def drift_quality_calculators(ref):
    """NannyML's univariate drift (modelwatch's default methods: Wasserstein
    for numeric features, Jensen-Shannon for categorical ones) and data
    quality calculators (missing, unseen, range), fitted on `ref`."""
    numeric = [c for c in ref.columns if c.startswith("num_")]
    categorical = [c for c in ref.columns if c.startswith("cat_")]
    calculators = [
        nannyml.UnivariateDriftCalculator(
            column_names=numeric + categorical, treat_as_categorical=categorical,
            continuous_methods=["wasserstein"], categorical_methods=["jensen_shannon"],
            chunk_number=1,
        ),
        nannyml.MissingValuesCalculator(column_names=numeric + categorical, chunk_number=1),
        nannyml.UnseenValuesCalculator(column_names=categorical, chunk_number=1),
        nannyml.NumericalRangeCalculator(column_names=numeric, chunk_number=1),
    ]
    for c in calculators:
        c.fit(ref)
    return calculators


def drift_and_quality(ref, cur):
    for c in drift_quality_calculators(ref):
        c.calculate(cur)


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times), sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--with-drift", action="store_true")
    args = ap.parse_args()
    n = args.rows
    ref_score, ref_label = scored(10, n, 1.0)
    win_score, _ = scored(20, n, 0.6)
    reference = pd.DataFrame({"p": ref_score, "y_pred": (ref_score >= 0.5).astype(int), "y": ref_label})
    window = pd.DataFrame({"p": win_score, "y_pred": (win_score >= 0.5).astype(int)})
    row = run(reference, window)
    print(f"nannyml {nannyml.__version__}, pandas {pd.__version__}")
    print(f"cbpe n={n} checksum {ref_score.sum() + win_score.sum():.12f} "
          f"(accuracy {row[('accuracy', 'value')]:.6f}, f1 {row[('f1', 'value')]:.6f})")
    b, m = best(lambda: run(reference, window), args.repeat)
    print(f"nannyml CBPE fit+estimate best {b*1e3:.1f} ms median {m*1e3:.1f} ms")
    if args.with_drift:
        from bench_peers import make

        ref, cur = make(n)
        b, m = best(lambda: drift_and_quality(ref, cur), args.repeat)
        print(f"nannyml univariate drift + data quality, 25 features, best {b*1e3:.1f} ms median {m*1e3:.1f} ms")


if __name__ == "__main__":
    main()
