#!/usr/bin/env python3
"""Time NannyML on the same data as benches/model_quality.rs (groups
`multivariate`, `dle` and `cbpe/estimate_only`), 100,000 reference rows
and a 100,000-row window each:

  * multivariate drift: NannyML's DataReconstructionDriftCalculator
    (default n_components=0.65) on 10 correlated numeric features, fitted
    on the reference and calculated on the window as one chunk; timed as
    fit + calculate, and calculate only (after one fit);
  * DLE: NannyML's DLE (LightGBM loss models for MAE, MSE, RMSE, MAPE) on a
    regression model's 7 numeric features and prediction; timed as
    fit + estimate, and estimate only (after one fit);
  * CBPE steady state: NannyML's CBPE (accuracy, precision, recall, F1 and
    ROC AUC) fitted once on bench_cbpe.py's reference, then estimate only
    on its window;
  * with --with-drift, the rest of the issue's comparison in steady state:
    bench_cbpe.py --with-drift's univariate drift and data quality
    calculators fitted once on the drift bench's reference, then calculate
    only on its current window.

The data recipes (splitmix64 uniforms -> Box-Muller normals) are the
bench's, value for value. The multivariate and DLE checksums sum each
column in row order (np.cumsum, not numpy's pairwise sum) as the bench
does, so they must equal the bench's to the last printed digit; the
estimates are printed so agreement can be checked.

Usage: python3 drift/scripts/bench_estimation.py [--rows 100000] [--repeat 3] [--with-drift]
Install: pip install -r drift/scripts/requirements-nannyml.txt
"""
import argparse
import os
import sys
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import nannyml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# The splitmix64 uniforms of every bench recipe, defined once.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cbpe import best, drift_quality_calculators, scored  # noqa: E402
from bench_peers import uniforms  # noqa: E402

warnings.filterwarnings("ignore")


def normal(seed, n):
    """Box-Muller on streams seed, seed + 1 (recipe::normal)."""
    u1, u2 = uniforms(seed, n), uniforms(seed + 1, n)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


def correlated(base, n, broken):
    """recipe::correlated: ten features from three factors and own noise."""
    f = [normal(base + 2 * k, n) for k in range(3)]
    cols = {}
    for j in range(10):
        a, b = (1.0, 0.3) if j < 5 else (0.3, 1.0)
        c = 0.5 if j % 2 == 0 else -0.5
        if broken and j >= 7:
            c = -c
        mu, sd = 0.1 * j, 1.0 + 0.1 * j
        e = normal(base + 10 + 2 * j, n)
        cols[f"x{j}"] = mu + sd * (a * f[0] + b * f[1] + c * f[2] + 0.6 * e)
    return pd.DataFrame(cols)


def regression(base, n, shift):
    """recipe::regression: 7 features, prediction, heteroscedastic label."""
    x = [normal(base + 2 * k, n) for k in range(4)]
    x[0] = shift + (1.0 + shift) * x[0]
    x += [2.0 * uniforms(base + 10 + k, n) - 1.0 for k in range(3)]
    pred = 50.0 + 4.0 * x[0] + 1.8 * x[1] - 1.5 * x[2] + 3.0 * x[4]
    noise = normal(base + 20, n)
    spread = 0.3 + 2.0 * x[0] * x[0] + 1.5 * np.abs(x[5])
    label = pred + 0.2 * x[1] + noise * spread
    frame = pd.DataFrame({f"x{k}": v for k, v in enumerate(x)})
    frame["y_pred"] = pred
    frame["y"] = label
    return frame


def checksum(frames):
    """Each column summed in row order, the column sums added in order
    (recipe::checksum)."""
    total = 0.0
    for frame in frames:
        for c in frame.columns:
            total += float(np.cumsum(frame[c].to_numpy())[-1])
    return total


def multivariate(n, repeat):
    ref, cur = correlated(100, n, False), correlated(200, n, True)
    print(f"multivariate n={n} checksum {checksum([ref, cur]):.12f}")
    cols = list(ref.columns)

    def fit():
        calc = nannyml.DataReconstructionDriftCalculator(column_names=cols, chunk_number=1)
        calc.fit(ref)
        return calc

    def calculate(calc):
        return calc.calculate(cur).filter(period="analysis").to_df().iloc[0]

    calc = fit()
    row = calculate(calc)
    refrow = calc.result.filter(period="reference").to_df().iloc[0]
    m = ("reconstruction_error",)
    print(
        f"multivariate components {calc._pca.n_components_} "
        f"reference {refrow[m + ('value',)]:.12f} window {row[m + ('value',)]:.12f} "
        f"sampling error {row[m + ('sampling_error',)]:.12f} alert {row[m + ('alert',)]}"
    )
    # NannyML's band is the window's own spread; modelwatch's is the
    # reference's (drift::multivariate), NannyML's reference-chunk figure.
    print(f"multivariate reference-chunk sampling error {refrow[m + ('sampling_error',)]:.12f}")
    b, md = best(lambda: calculate(fit()), repeat)
    print(f"nannyml DataReconstructionDrift fit+calculate best {b*1e3:.1f} ms median {md*1e3:.1f} ms")
    b, md = best(lambda: calculate(calc), repeat)
    print(f"nannyml DataReconstructionDrift calculate only best {b*1e3:.1f} ms median {md*1e3:.1f} ms")


def dle(n, repeat):
    ref, win = regression(300, n, 0.0), regression(400, n, 0.5)
    print(f"dle n={n} checksum {checksum([ref, win]):.12f}")
    features = [f"x{k}" for k in range(7)]
    analysis = win.drop(columns=["y"])

    def fit():
        est = nannyml.DLE(
            feature_column_names=features, y_pred="y_pred", y_true="y",
            metrics=["mae", "mse", "rmse", "mape"], chunk_number=1,
        )
        est.fit(ref)
        return est

    def estimate(est):
        return est.estimate(analysis).filter(period="analysis").to_df().iloc[0]

    est = fit()
    row = estimate(est)
    v = lambda m, k: row[(m, k)]  # noqa: E731
    realized = float(np.mean(np.abs(win["y"] - win["y_pred"])))
    print(f"dle estimates (realized mae {realized:.6f})")
    for m in ["mae", "mse", "rmse", "mape"]:
        print(
            f"  {m} {v(m, 'value'):.6f} "
            f"[{v(m, 'lower_confidence_boundary'):.6f}, {v(m, 'upper_confidence_boundary'):.6f}]"
        )
    b, md = best(lambda: estimate(fit()), repeat)
    print(f"nannyml DLE fit+estimate best {b*1e3:.1f} ms median {md*1e3:.1f} ms")
    b, md = best(lambda: estimate(est), repeat)
    print(f"nannyml DLE estimate only best {b*1e3:.1f} ms median {md*1e3:.1f} ms")


def cbpe_steady(n, repeat):
    ref_score, ref_label = scored(10, n, 1.0)
    win_score, _ = scored(20, n, 0.6)
    reference = pd.DataFrame({"p": ref_score, "y_pred": (ref_score >= 0.5).astype(int), "y": ref_label})
    window = pd.DataFrame({"p": win_score, "y_pred": (win_score >= 0.5).astype(int)})
    est = nannyml.CBPE(
        y_pred_proba="p", y_pred="y_pred", y_true="y",
        metrics=["roc_auc", "accuracy", "precision", "recall", "f1"],
        chunk_number=1, problem_type="classification_binary",
    )
    est.fit(reference)

    def estimate():
        return est.estimate(window).filter(period="analysis").to_df().iloc[0]

    row = estimate()
    print(
        f"cbpe estimate only n={n}: accuracy {row[('accuracy', 'value')]:.6f} f1 {row[('f1', 'value')]:.6f} "
        f"roc_auc {row[('roc_auc', 'value')]:.6f} (sampling error {row[('roc_auc', 'sampling_error')]:.6f})"
    )
    b, md = best(estimate, repeat)
    print(f"nannyml CBPE estimate only (5 metrics) best {b*1e3:.1f} ms median {md*1e3:.1f} ms")


def drift_quality_steady(n, repeat):
    """bench_cbpe.py --with-drift's calculators (univariate drift with
    Wasserstein / Jensen-Shannon, missing, unseen and range), fitted once on
    the drift bench's reference; calculate only on its current window."""
    from bench_peers import make

    ref, cur = make(n)
    calculators = drift_quality_calculators(ref)

    def calculate():
        for c in calculators:
            c.calculate(cur)

    b, md = best(calculate, repeat)
    print(f"nannyml univariate drift + data quality, 25 features, calculate only best {b*1e3:.1f} ms "
          f"median {md*1e3:.1f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--with-drift", action="store_true",
                    help="also NannyML's univariate drift + data quality, calculate only after fit")
    args = ap.parse_args()
    import lightgbm

    print(f"nannyml {nannyml.__version__}, lightgbm {lightgbm.__version__}, pandas {pd.__version__}")
    multivariate(args.rows, args.repeat)
    dle(args.rows, args.repeat)
    cbpe_steady(args.rows, args.repeat)
    if args.with_drift:
        drift_quality_steady(args.rows, args.repeat)


if __name__ == "__main__":
    main()
