#!/usr/bin/env python3
"""Time fairlearn on the same data as benches/model_quality.rs.

The data recipe (splitmix64 uniforms; four groups by row index, each
selected with its own rate, a label agreeing with the decision 70 % of the
time) is the bench's, value for value; the printed checksum must equal the
one the criterion bench prints.

fairlearn computes what modelwatch stores per sensitive attribute: a
MetricFrame of selection rate and true/false-positive rates by group, and
demographic_parity_difference / _ratio, equal_opportunity_difference and
equalized_odds_difference (each builds its own MetricFrame, as a user
calling them would).

Usage: python3 drift/scripts/bench_fairness.py [--rows 100000 1000000] [--repeat 3]
Install: pip install -r drift/scripts/requirements.txt
"""
import argparse
import os
import sys
import time
import warnings

import fairlearn
import numpy as np
from fairlearn import metrics as fm

# The splitmix64 uniforms of every bench recipe, defined once.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import uniforms  # noqa: E402

warnings.filterwarnings("ignore")
GROUPS = np.array(["de", "es", "fr", "it"])
RATES = np.array([0.2, 0.35, 0.25, 0.5])


def rows(n):
    g = np.arange(n) % 4
    selected = uniforms(1, n) < RATES[g]
    agrees = uniforms(2, n) < 0.7
    labels = selected == agrees
    return GROUPS[g], selected.astype(int), labels.astype(int)


def assess(groups, y_pred, y_true):
    frame = fm.MetricFrame(
        metrics={
            "selection_rate": fm.selection_rate,
            "true_positive_rate": fm.true_positive_rate,
            "false_positive_rate": fm.false_positive_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    kw = dict(y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    return (
        frame.by_group,
        fm.demographic_parity_difference(**kw),
        fm.demographic_parity_ratio(**kw),
        fm.equal_opportunity_difference(**kw),
        fm.equalized_odds_difference(**kw),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"fairlearn {fairlearn.__version__}, numpy {np.__version__}")
    for n in args.rows:
        groups, y_pred, y_true = rows(n)
        by_group, _, _, _, eod = assess(groups, y_pred, y_true)
        checksum = by_group["selection_rate"].sum() + eod
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            assess(groups, y_pred, y_true)
            times.append(time.perf_counter() - t)
        print(f"fairness n={n} checksum {checksum:.12f} fairlearn best {min(times)*1e3:.1f} ms "
              f"median {sorted(times)[len(times)//2]*1e3:.1f} ms")


if __name__ == "__main__":
    main()
