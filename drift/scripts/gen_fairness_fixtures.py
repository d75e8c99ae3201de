#!/usr/bin/env python3
"""Regenerate drift/tests/fixtures/fairness.json from fairlearn (versions
pinned in requirements.txt). The Rust tests read the committed JSON; they
never run Python. Run from anywhere:
    python3 drift/scripts/gen_fairness_fixtures.py

Each case is groups, decisions (1 = selected) and labels (1 = the positive
outcome was right), with fairlearn's figures. Every group of a case has
positive and negative labels, where fairlearn's rates are defined.
"""
import json
import os
import warnings

import fairlearn
import numpy as np
from fairlearn import metrics as fm

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def case(groups, selected, labels):
    groups = list(groups)
    y_pred = np.asarray(selected, dtype=int)
    y_true = np.asarray(labels, dtype=int)
    frame = fm.MetricFrame(
        metrics={
            "selection_rate": fm.selection_rate,
            "true_positive_rate": fm.true_positive_rate,
            "false_positive_rate": fm.false_positive_rate,
            "count": fm.count,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    by_group = {
        str(g): {k: float(v) for k, v in row.items()}
        for g, row in frame.by_group.iterrows()
    }
    kw = dict(y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    return {
        "groups": groups,
        "selected": [int(v) for v in y_pred],
        "labels": [int(v) for v in y_true],
        "by_group": by_group,
        "demographic_parity_difference": float(fm.demographic_parity_difference(**kw)),
        "demographic_parity_ratio": float(fm.demographic_parity_ratio(**kw)),
        "equal_opportunity_difference": float(fm.equal_opportunity_difference(**kw)),
        "equalized_odds_difference": float(fm.equalized_odds_difference(**kw)),
    }


def biased(rng, n, rates):
    """Groups drawn evenly; each selected with its group's rate, labels
    correlated with the decision."""
    names = list(rates)
    groups = [names[i] for i in rng.integers(0, len(names), n)]
    selected = [int(rng.uniform() < rates[g]) for g in groups]
    labels = [int(rng.uniform() < (0.7 if s else 0.3)) for s in selected]
    return groups, selected, labels


def main():
    rng = np.random.default_rng(20261207)
    cases = {
        "fair_two_groups": case(*biased(rng, 4000, {"f": 0.30, "m": 0.31})),
        "biased_two_groups": case(*biased(rng, 4000, {"f": 0.15, "m": 0.40})),
        "four_groups": case(*biased(rng, 6000, {"de": 0.2, "fr": 0.25, "it": 0.5, "es": 0.35})),
        "small": case(
            ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c", "c", "c"],
            [1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0],
            [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0],
        ),
    }
    meta = {"fairlearn": fairlearn.__version__, "numpy": np.__version__}
    with open(os.path.join(OUT, "fairness.json"), "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, allow_nan=False)


if __name__ == "__main__":
    main()
