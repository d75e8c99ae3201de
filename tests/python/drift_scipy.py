"""scipy's statistics on whole windows, for the evaluator's exactness test.

Reads a JSON file {feature: {"reference": [...], "current": [...]}} and
prints {feature: {"ks_statistic", "ks_p_value", "wasserstein_normed"}}:
`scipy.stats.ks_2samp` with its default method, and the Wasserstein
distance divided by the reference's standard deviation (ddof 0, floored at
0.001), which is Evidently's normed Wasserstein.
"""

import json
import sys

import numpy as np
from scipy import stats


def main(path):
    with open(path) as f:
        windows = json.load(f)
    out = {}
    for feature, w in windows.items():
        reference = np.asarray(w["reference"], dtype=np.float64)
        current = np.asarray(w["current"], dtype=np.float64)
        ks = stats.ks_2samp(reference, current)
        normed = stats.wasserstein_distance(reference, current) / max(
            float(np.std(reference)), 0.001
        )
        out[feature] = {
            "ks_statistic": float(ks.statistic),
            "ks_p_value": float(ks.pvalue),
            "wasserstein_normed": float(normed),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
