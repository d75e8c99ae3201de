#!/usr/bin/env python3
"""Regenerate drift/tests/fixtures/*.json from scipy (versions pinned in
requirements.txt). The Rust tests read the committed JSON; they never run
Python. Run from anywhere:  python3 drift/scripts/gen_fixtures.py

Data are rounded to 9 significant digits before anything is computed, so the
JSON text round-trips to the same doubles in any correct parser and ties are
the same on both sides.
"""
import json
import math
import os
import warnings

import numpy as np
import scipy
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.stats._mannwhitneyu import _MWU

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def r9(a):
    return [float(f"{v:.9g}") for v in np.asarray(a, dtype=float)]


def datasets():
    rng = np.random.default_rng(20261127)
    d = {}
    d["small"] = (r9(rng.normal(0, 1, 5)), r9(rng.normal(0.5, 1, 7)))
    d["small_equal_n"] = (r9(rng.normal(0, 1, 8)), r9(rng.normal(0, 1, 8)))
    d["tiny"] = (r9(rng.normal(0, 1, 2)), r9(rng.normal(1, 1, 3)))
    d["single"] = ([1.5], r9(rng.normal(0, 1, 6)))
    d["medium"] = (r9(rng.normal(0, 1, 300)), r9(rng.normal(0.2, 1.1, 250)))
    d["medium_same"] = (r9(rng.normal(0, 1, 400)), r9(rng.normal(0, 1, 400)))
    d["tied"] = (r9(rng.integers(0, 6, 120)), r9(rng.integers(1, 7, 90)))
    d["tied_small"] = (r9(rng.integers(0, 3, 7)), r9(rng.integers(0, 3, 6)))
    d["skewed"] = (r9(rng.lognormal(0, 1.2, 500)), r9(rng.lognormal(0.15, 1.0, 450)))
    d["discrete"] = (r9(rng.poisson(3.0, 800)), r9(rng.poisson(3.4, 700)))
    d["exponential_shift"] = (r9(rng.exponential(1.0, 1500)), r9(rng.exponential(1.0, 1300) + 0.05))
    d["constant_same"] = ([2.0] * 20, [2.0] * 15)
    d["constant_diff"] = ([2.0] * 20, [3.0] * 15)
    d["large"] = (r9(rng.normal(0, 1, 12000)), r9(rng.normal(0.03, 1, 11000)))
    d["large_unbalanced"] = (r9(rng.normal(0, 1, 20000)), r9(rng.normal(0.1, 1, 40)))
    d["empty"] = ([], r9(rng.normal(0, 1, 10)))
    return d


def safe(f):
    try:
        v = f()
        if isinstance(v, tuple):
            v = tuple(float(x) for x in v)
        return v
    except Exception as e:  # scipy rejects degenerate input: Rust must say not_enough_data
        return {"error": str(e)}


def fin(x):
    x = float(x)
    return x if math.isfinite(x) else None


def numeric_cases():
    out = []
    for name, (a, b) in datasets().items():
        A, B = np.array(a), np.array(b)
        c = {"name": name, "reference": a, "current": b}
        for mode in ["auto", "exact", "asymp"]:
            if len(A) == 0:
                c[f"ks_{mode}"] = {"error": "empty"}
                continue
            res = stats.ks_2samp(A, B, method=mode)
            c[f"ks_{mode}"] = {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}
        if len(A) and len(B):
            w = stats.wasserstein_distance(A, B)
            c["wasserstein"] = {"raw": float(w), "normed": float(w / max(np.std(A), 0.001))}
            c["energy"] = float(stats.energy_distance(A, B))
            edges = np.unique(np.quantile(A, [i / 10 for i in range(1, 10)]))
            rc = np.bincount(np.searchsorted(edges, A, side="left"), minlength=len(edges) + 1) / len(A)
            cc = np.bincount(np.searchsorted(edges, B, side="left"), minlength=len(edges) + 1) / len(B)
            rc = np.where(rc == 0, 1e-4, rc)
            cc = np.where(cc == 0, 1e-4, cc)
            c["psi"] = float(np.sum((cc - rc) * np.log(cc / rc)))
            e = np.histogram_bin_edges(np.concatenate([A, B]), bins=30)
            hr = np.histogram(A, e)[0].astype(float)
            hc = np.histogram(B, e)[0].astype(float)
            c["js_e"] = float(jensenshannon(hr, hc))
            c["js_2"] = float(jensenshannon(hr, hc, base=2))
            pr, pc = hr / hr.sum(), hc / hc.sum()
            c["hellinger"] = float(np.sqrt(np.sum((np.sqrt(pr) - np.sqrt(pc)) ** 2)) / np.sqrt(2))
        def ad():
            r = stats.anderson_ksamp([A, B], variant="midrank")
            if not math.isfinite(r.statistic):
                raise ValueError("non-finite")
            return {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}
        c["anderson"] = safe(ad)
        for mode in ["auto", "exact", "asymptotic"]:
            def cvm(mode=mode):
                if mode == "exact" and max(len(A), len(B)) > 20:
                    raise ValueError("exact too large")
                r = stats.cramervonmises_2samp(A, B, method=mode)
                if not math.isfinite(r.statistic):
                    raise ValueError("non-finite")
                return {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}
            c[f"cvm_{mode}"] = safe(cvm)
        for mode in ["auto", "exact", "asymptotic"]:
            def mw(mode=mode):
                if mode == "exact" and len(A) * len(B) > 20000:
                    raise ValueError("exact too large")
                r = stats.mannwhitneyu(A, B, method=mode, alternative="two-sided", use_continuity=True)
                if not (math.isfinite(r.statistic) and math.isfinite(r.pvalue)):
                    raise ValueError("non-finite")
                return {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}
            c[f"mw_{mode}"] = safe(mw)
        def welch():
            r = stats.ttest_ind(A, B, equal_var=False)
            if not (math.isfinite(r.statistic) and math.isfinite(r.pvalue)):
                raise ValueError("non-finite")
            return {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}
        c["welch"] = safe(welch)
        out.append(c)
    return out


def cat_cases():
    cases = [
        ("binary", {"a": 40, "b": 60}, {"a": 55, "b": 45}),
        ("binary_small", {"a": 3, "b": 9}, {"a": 8, "b": 2}),
        ("multi", {"x": 120, "y": 300, "z": 80, "w": 5}, {"x": 150, "y": 260, "z": 90, "w": 2}),
        ("unseen", {"x": 50, "y": 50}, {"x": 40, "y": 45, "new1": 10, "new2": 5}),
        ("unseen_binary", {"x": 30}, {"x": 25, "new": 5}),
        ("large", {"c%d" % i: 1000 + 37 * i for i in range(12)}, {"c%d" % i: 1100 + 29 * i for i in range(12)}),
        ("big_fisher", {"a": 5000, "b": 95000}, {"a": 5300, "b": 94700}),
    ]
    out = []
    for name, ref, cur in cases:
        labels = sorted(ref)
        rc = [ref[k] for k in labels]
        cc = [cur.get(k, 0) for k in labels]
        unseen = sum(v for k, v in cur.items() if k not in ref)
        if unseen:
            rc.append(0)
            cc.append(unseen)
        t = np.array([rc, cc], dtype=float)
        c = {"name": name, "reference": ref, "current": cur}
        if t.shape[1] >= 2:
            for corr in [True, False]:
                s, p, dof, _ = stats.chi2_contingency(t, correction=corr)
                c[f"chi2_{corr}"] = {"statistic": float(s), "pvalue": float(p)}
                s, p, dof, _ = stats.chi2_contingency(t, correction=corr, lambda_="log-likelihood")
                c[f"g_{corr}"] = {"statistic": float(s), "pvalue": float(p)}
            c["cramers_v"] = float(stats.contingency.association(t.astype(np.int64), method="cramer"))
        if t.shape[1] == 2:
            res = stats.fisher_exact(np.array([[rc[0], rc[1]], [cc[0], cc[1]]]))
            c["fisher"] = {"statistic": fin(res.statistic), "pvalue": float(res.pvalue)}
            n1, n2 = sum(rc), sum(cc)
            p1, p2 = rc[0] / n1, cc[0] / n2
            P = (rc[0] + cc[0]) / (n1 + n2)
            z = (p1 - p2) / math.sqrt(P * (1 - P) * (1 / n1 + 1 / n2))
            c["z"] = {"statistic": z, "pvalue": float(2 * stats.norm.sf(abs(z)))}
        pr, pc = t[0] / t[0].sum(), t[1] / t[1].sum()
        c["tv"] = float(0.5 * np.abs(pr - pc).sum())
        c["linf"] = float(np.abs(pr - pc).max())
        c["js_e"] = float(jensenshannon(t[0], t[1]))
        c["js_2"] = float(jensenshannon(t[0], t[1], base=2))
        er = np.where(pr == 0, 1e-4, pr)
        ec = np.where(pc == 0, 1e-4, pc)
        c["psi"] = float(np.sum((ec - er) * np.log(ec / er)))
        out.append(c)
    return out


def binned_cases():
    cases = [
        ("plain", [10, 20, 30, 25, 15], [12, 18, 33, 20, 17]),
        ("empty_buckets", [0, 20, 30, 0, 15], [5, 18, 0, 0, 17]),
        ("shifted", [50, 30, 15, 5, 0, 0], [5, 10, 20, 30, 25, 10]),
    ]
    out = []
    for name, r, c in cases:
        R, C = np.array(r, float), np.array(c, float)
        pr, pc = R / R.sum(), C / C.sum()
        er = np.where(pr == 0, 1e-4, pr)
        ec = np.where(pc == 0, 1e-4, pc)
        keep = (R + C) > 0
        s, p, _, _ = stats.chi2_contingency(np.array([R[keep], C[keep]]))
        out.append({
            "name": name, "reference": r, "current": c,
            "psi": float(np.sum((ec - er) * np.log(ec / er))),
            "js_e": float(jensenshannon(R, C)),
            "js_2": float(jensenshannon(R, C, base=2)),
            "hellinger": float(np.sqrt(np.sum((np.sqrt(pr) - np.sqrt(pc)) ** 2)) / np.sqrt(2)),
            "chi2": {"statistic": float(s), "pvalue": float(p)},
        })
    return out


def kstwo_cases():
    pts = []
    for n in [3, 10, 50, 140]:
        for x in [0.6 / n, 0.9 / n, 1.5 / n, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.9, 1 - 1.5 / n]:
            if 0 < x < 1:
                pts.append((n, x))
    for n in [141, 500, 5000, 60000, 100000, 250000, 600000]:
        for z in [0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0]:
            pts.append((n, z / math.sqrt(n)))
    return [{"n": n, "x": x, "sf": float(stats.kstwo.sf(x, n))} for n, x in pts]


def canary_case(name, x, y, conf=0.98):
    """Reference values from the definition of R's wilcox.test(x, y,
    conf.int=TRUE): exact branch via order statistics of all pairwise
    differences and qwilcox from scipy's exact null distribution;
    asymptotic branch by evaluating R's wdiff() between every pair of
    consecutive distinct differences and locating the sign change."""
    x, y = np.array(x, float), np.array(y, float)
    nx, ny = len(x), len(y)
    D = np.sort(np.subtract.outer(x, y).ravel())
    N = len(D)
    alpha = 1 - conf
    pooled = np.concatenate([x, y])
    ties = len(np.unique(pooled)) != len(pooled)
    exact = nx < 50 and ny < 50 and not ties
    est = float(np.median(D))
    if exact:
        dist = _MWU(nx, ny)
        qu = 0
        target = alpha / 2 - 10 * np.finfo(float).eps
        while float(dist.cdf(np.array([qu]))[0]) < target:
            qu += 1
        if qu == 0:
            qu = 1
        ql = N - qu
        lo, hi = float(D[qu - 1]), float(D[ql])
        p = float(stats.mannwhitneyu(x, y, method="exact").pvalue)
    else:
        def wdiff(d, zq):
            dr = stats.rankdata(np.concatenate([x - d, y]))
            _, cnt = np.unique(dr, return_counts=True)
            dz = dr[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
            corr = np.sign(dz) * 0.5
            sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1) - (cnt ** 3 - cnt).sum() / ((nx + ny) * (nx + ny - 1))))
            return (dz - corr) / sigma - zq
        U = np.unique(D)
        mids = np.concatenate([[U[0] - 1.0], (U[:-1] + U[1:]) / 2, [U[-1] + 1.0]])
        def root(zq):
            vals = [wdiff(m, zq) for m in mids]
            for i in range(1, len(vals)):
                if vals[i - 1] > 0 and vals[i] <= 0:
                    return float(U[i - 1])
            return float(U[0]) if vals[0] <= 0 else float(U[-1])
        z = stats.norm.ppf(1 - alpha / 2)
        lo, hi = root(z), root(-z)
        p = float(stats.mannwhitneyu(x, y, method="asymptotic").pvalue)
    return {"name": name, "canary": list(map(float, x)), "baseline": list(map(float, y)), "confidence": conf,
            "exact": bool(exact), "estimate": est, "lower": lo, "upper": hi, "pvalue": p}


def canary_cases():
    rng = np.random.default_rng(7)
    return [
        canary_case("exact_small", r9(rng.normal(1.0, 1, 10)), r9(rng.normal(0, 1, 12))),
        canary_case("exact_null", r9(rng.normal(0, 1, 20)), r9(rng.normal(0, 1, 25))),
        canary_case("exact_95", r9(rng.normal(0.3, 1, 15)), r9(rng.normal(0, 1, 9)), conf=0.95),
        canary_case("ties_small", r9(rng.integers(0, 8, 15)), r9(rng.integers(1, 9, 14))),
        canary_case("asymptotic", r9(rng.normal(100, 10, 60)), r9(rng.normal(95, 10, 70))),
        canary_case("asymptotic_skewed", r9(rng.lognormal(3, 0.5, 80)), r9(rng.lognormal(3, 0.5, 75))),
    ]


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {"scipy": scipy.__version__, "numpy": np.__version__}
    for fname, data in [
        ("numeric.json", numeric_cases()),
        ("categorical.json", cat_cases()),
        ("binned.json", binned_cases()),
        ("kstwo.json", kstwo_cases()),
        ("canary.json", canary_cases()),
    ]:
        with open(os.path.join(OUT, fname), "w") as f:
            json.dump({"meta": meta, "cases": data}, f, allow_nan=False)
        print("wrote", fname)


if __name__ == "__main__":
    main()
