#!/usr/bin/env python3
"""Time the peers on the same data as benches/drift_report.rs.

The data recipe (splitmix64 uniforms -> Box-Muller normals, 20 numeric and
5 categorical features) is the bench's, value for value; the printed
checksum must equal the one the criterion bench prints.

Peers:
  * scipy, per-feature loop, the same statistics as modelwatch's default
    report (Evidently's choice for > 1000 reference rows): Wasserstein
    distance normed by the reference std (scipy.stats.wasserstein_distance)
    for numeric features, Jensen-Shannon distance of category frequencies
    (scipy.spatial.distance.jensenshannon, counts via pandas value_counts)
    for categorical ones.
  * Evidently DataDriftPreset on pandas DataFrames (its default tests, which
    are the same methods).

Usage: python3 drift/scripts/bench_peers.py [--rows 100000 1000000] [--repeat 3]
Install: pip install -r drift/scripts/requirements.txt
"""
import argparse
import math
import time
import warnings

import numpy as np
import pandas as pd
import scipy
from scipy import stats
from scipy.spatial.distance import jensenshannon

warnings.filterwarnings("ignore")
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniforms(seed, n):
    base = np.uint64((seed * 0x0100000001B3) & 0xFFFFFFFFFFFFFFFF)
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = mix(base + GOLDEN * i)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / float(1 << 53))


def normals(seed, n):
    u = uniforms(seed, 2 * n)
    return np.sqrt(-2.0 * np.log(1.0 - u[:n])) * np.cos(2.0 * math.pi * u[n:])


def numeric(j, n):
    mu, sd = j * 0.1, 1.0 + 0.05 * j
    shift = 0.2 * sd if j % 4 == 0 else 0.0
    r = mu + 0.0 + sd * normals(1000 + j, n)
    c = mu + shift + sd * normals(2000 + j, n)
    if j % 5 == 1:
        r, c = np.exp(0.5 * r), np.exp(0.5 * c)
    return r, c


def categorical(k, n):
    p = 1.0 + 0.5 * k
    pc = p * 1.3 if k % 2 == 0 else p
    lab = lambda u, p: np.char.add("c", np.minimum(np.floor(8.0 * u ** p), 7).astype(int).astype(str))
    return lab(uniforms(3000 + k, n), p), lab(uniforms(4000 + k, n), pc)


def make(n):
    ref, cur = {}, {}
    for j in range(20):
        ref[f"num_{j}"], cur[f"num_{j}"] = numeric(j, n)
    for k in range(5):
        r, c = categorical(k, n)
        ref[f"cat_{k}"], cur[f"cat_{k}"] = r.astype(object), c.astype(object)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def scipy_loop(ref, cur):
    drifted = 0
    for j in range(20):
        r, c = ref[f"num_{j}"].to_numpy(), cur[f"num_{j}"].to_numpy()
        w = stats.wasserstein_distance(r, c) / max(np.std(r), 0.001)
        drifted += w >= 0.1
    for k in range(5):
        rc = ref[f"cat_{k}"].value_counts()
        cc = cur[f"cat_{k}"].value_counts()
        keys = sorted(set(rc.index) | set(cc.index))
        js = jensenshannon(rc.reindex(keys, fill_value=0).to_numpy(float), cc.reindex(keys, fill_value=0).to_numpy(float))
        drifted += js >= 0.1
    return int(drifted)


def evidently_run(ref, cur):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    dd = DataDefinition(numerical_columns=[f"num_{j}" for j in range(20)],
                        categorical_columns=[f"cat_{k}" for k in range(5)])
    r = Dataset.from_pandas(ref, data_definition=dd)
    c = Dataset.from_pandas(cur, data_definition=dd)
    snap = Report([DataDriftPreset()]).run(current_data=c, reference_data=r)
    return snap


def timeit(f, repeat):
    best = math.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-evidently", action="store_true")
    a = ap.parse_args()
    import evidently
    print(f"numpy {np.__version__}, scipy {scipy.__version__}, pandas {pd.__version__}, evidently {evidently.__version__}")
    for n in a.rows:
        ref, cur = make(n)
        checksum = sum(ref[f"num_{j}"].iloc[0] + cur[f"num_{j}"].iloc[-1] for j in range(20))
        c0 = int((ref["cat_0"] == "c0").sum())
        print(f"n={n}: recipe checksum {checksum:.12f} / c0 count {c0}")
        t, d = timeit(lambda: scipy_loop(ref, cur), a.repeat)
        print(f"n={n}: scipy per-feature loop: {t * 1e3:.1f} ms (best of {a.repeat}), {d} of 25 drift")
        if not a.skip_evidently:
            t, _ = timeit(lambda: evidently_run(ref, cur), max(1, a.repeat - 1) if n <= 100_000 else 1)
            print(f"n={n}: evidently DataDriftPreset: {t * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
