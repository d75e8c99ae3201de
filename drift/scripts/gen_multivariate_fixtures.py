#!/usr/bin/env python3
"""Regenerate drift/tests/fixtures/multivariate.json from NannyML's
DataReconstructionDriftCalculator (versions pinned in
requirements-nannyml.txt; NannyML needs its own environment). The Rust
tests read the committed JSON; they never run Python. Run from anywhere:
    python3 drift/scripts/gen_multivariate_fixtures.py

Each case is a reference window and an analysis window of numeric and
categorical features (missing values as null), with what NannyML 0.13.1
reports for each window as one chunk: the mean reconstruction error, its
sampling error and confidence bounds; the principal components it kept and
their explained-variance ratios; and the first rows' own reconstruction
errors, computed with the calculator's fitted imputers, encoder, scaler and
PCA exactly as its `_calculate_dre_results` does before averaging. Numbers
are rounded to 9 significant digits, so the JSON round-trips to the same
doubles.
"""
import json
import os
import warnings

# NannyML reports usage to a web service unless told not to.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
import nannyml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
HEAD_ROWS = 40


def r9(a):
    return np.array([float(f"{v:.9g}") for v in np.asarray(a, dtype=float)])


def with_missing(rng, values, share):
    """`values` with about `share` of them missing (NaN or None)."""
    out = np.array(values, dtype=object if values.dtype.kind in "OUS" else float)
    out[rng.uniform(0, 1, len(out)) < share] = None if out.dtype == object else np.nan
    return out


def correlated(rng, n, rho, noise=3):
    """Features a, b with correlation `rho` (each N(0, 1)), c = a moderate
    mix of a and noise, and `noise` independent N(0, 1) features."""
    a = rng.normal(0, 1, n)
    b = rho * a + np.sqrt(1 - rho * rho) * rng.normal(0, 1, n)
    c = 0.5 * a + rng.normal(0, 1, n)
    cols = {"a": a, "b": b, "c": c}
    for j in range(noise):
        cols[f"n{j}"] = rng.normal(0, 1, n)
    return {k: r9(v) for k, v in cols.items()}


def regions(rng, x, categories, unseen=None):
    """A category that follows x: the higher x, the later the category
    (optionally an unseen one for a share of rows)."""
    edges = np.quantile(x, np.linspace(0, 1, len(categories) + 1)[1:-1])
    out = np.array([categories[i] for i in np.searchsorted(edges, x)], dtype=object)
    flip = rng.uniform(0, 1, len(x)) < 0.15
    out[flip] = rng.choice(categories, flip.sum())
    if unseen is not None:
        out[rng.uniform(0, 1, len(x)) < unseen[1]] = unseen[0]
    return out


def frame(numeric, categorical):
    """The windows as pandas reads them: float64 numbers with NaN, and
    pandas 3's default string dtype, whose missing value is NaN. (An object
    column holding None is not the same to NannyML: scikit-learn's
    SimpleImputer(missing_values=np.nan) does not see None as missing, so
    the CountEncoder then counts it as a category of its own instead of
    imputing the most frequent one. The documented behaviour, imputation, is
    the one reproduced.)"""
    df = pd.DataFrame({k: v for k, v in numeric.items()})
    for k, v in categorical.items():
        df[k] = pd.Series(list(v), dtype="str")
        assert df[k].isna().sum() == sum(x is None for x in v)
    return df


def as_json(numeric, categorical):
    def num(v):
        return None if np.isnan(v) else float(v)

    def cat(v):
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    return {
        "numeric": [{"name": k, "values": [num(x) for x in v]} for k, v in numeric.items()],
        "categorical": [{"name": k, "values": [cat(x) for x in v]} for k, v in categorical.items()],
    }


def row_errors(calc, df):
    """`_calculate_dre_results` of the fitted calculator, before the mean."""
    data = df.copy(deep=True)
    if calc.categorical_column_names:
        data[calc.categorical_column_names] = calc._imputer_categorical.transform(data[calc.categorical_column_names])
    if calc.continuous_column_names:
        data[calc.continuous_column_names] = calc._imputer_continuous.transform(data[calc.continuous_column_names])
    data = calc._encoder.transform(data[calc.column_names]).to_numpy()
    data = calc._scaler.transform(data)
    rec = calc._pca.inverse_transform(calc._pca.transform(data))
    return np.linalg.norm(data - rec, axis=1)


def case(reference, analysis):
    (ref_num, ref_cat), (ana_num, ana_cat) = reference, analysis
    ref, ana = frame(ref_num, ref_cat), frame(ana_num, ana_cat)
    columns = list(ref_num) + list(ref_cat)
    calc = nannyml.DataReconstructionDriftCalculator(column_names=columns, chunk_number=1)
    calc.fit(ref)
    res = calc.calculate(ana).to_df()

    def window(period):
        row = res[res[("chunk", "period")] == period].iloc[0]
        rc = "reconstruction_error"
        return {
            "value": float(row[(rc, "value")]),
            "sampling_error": float(row[(rc, "sampling_error")]),
            "lower": float(row[(rc, "lower_confidence_boundary")]),
            "upper": float(row[(rc, "upper_confidence_boundary")]),
        }

    assert calc._pca._fit_svd_solver == "covariance_eigh", calc._pca._fit_svd_solver
    # Missing categories were imputed, not counted as a category.
    for col, mapping in calc._encoder.mapping.items():
        assert not mapping.index.isna().any(), (col, mapping)
    return {
        "reference_rows": as_json(ref_num, ref_cat),
        "analysis_rows": as_json(ana_num, ana_cat),
        "components": int(calc._pca.n_components_),
        # Only the kept components' ratios (scikit-learn drops the rest).
        "explained_variance_ratio": [float(v) for v in calc._pca.explained_variance_ratio_],
        "reference": window("reference"),
        "analysis": window("analysis"),
        "reference_errors_head": [float(v) for v in row_errors(calc, ref.head(HEAD_ROWS))],
        "analysis_errors_head": [float(v) for v in row_errors(calc, ana.head(HEAD_ROWS))],
    }


def main():
    rng = np.random.default_rng(20261208)
    cases = {}

    # Numbers only: a and b lose their correlation; every marginal stays N(0, 1).
    cases["numeric_correlation_broken"] = case(
        (correlated(rng, 3000, 0.9), {}),
        (correlated(rng, 2000, 0.0), {}),
    )

    # The same population again: no drift expected.
    cases["numeric_stable"] = case(
        (correlated(rng, 2500, 0.8, noise=2), {}),
        (correlated(rng, 1500, 0.8, noise=2), {}),
    )

    # A categorical feature that follows a; in the analysis it stops
    # following it and an unseen category appears.
    ref_num = correlated(rng, 2500, 0.85, noise=1)
    ana_num = correlated(rng, 1500, 0.85, noise=1)
    cats = ["north", "east", "south", "west"]
    cases["categorical_decoupled_with_unseen"] = case(
        (ref_num, {"region": regions(rng, ref_num["a"], cats)}),
        (ana_num, {"region": regions(rng, rng.normal(0, 1, 1500), cats, unseen=("mars", 0.1))}),
    )

    # Missing numbers and categories in both windows (imputed with the
    # reference's mean and most frequent category); b drifts in mean.
    ref_num = correlated(rng, 2500, 0.9, noise=1)
    ana_num = correlated(rng, 1500, 0.9, noise=1)
    ana_num["b"] = r9(ana_num["b"] + 0.4)
    ref_cat = {"tier": regions(rng, ref_num["c"], ["gold", "silver", "bronze"])}
    ana_cat = {"tier": regions(rng, ana_num["c"], ["gold", "silver", "bronze"])}
    for cols in (ref_num, ana_num):
        for k in ("a", "b", "n0"):
            cols[k] = with_missing(rng, cols[k], 0.06)
    for cols in (ref_cat, ana_cat):
        cols["tier"] = with_missing(rng, cols["tier"], 0.08)
    cases["missing_values"] = case((ref_num, ref_cat), (ana_num, ana_cat))

    meta = {
        "nannyml": nannyml.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
    }
    with open(os.path.join(OUT, "multivariate.json"), "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, allow_nan=False)


if __name__ == "__main__":
    main()
