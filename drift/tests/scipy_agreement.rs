//! Agreement with scipy on the committed fixtures (`scripts/gen_fixtures.py`).
//!
//! Tolerances (relative):
//! - `EXACT` = 1e-9 wherever scipy's computation is exact or a closed form:
//!   KS statistic and exact p-value, Wasserstein, energy, PSI, JS,
//!   Hellinger, Anderson–Darling (statistic and interpolated p-value),
//!   Cramér–von Mises (statistic, exact and asymptotic p), Mann–Whitney
//!   (statistic, exact and asymptotic p), Welch's t, chi-square, G-test,
//!   Cramér's V, Fisher, z-test, total variation, L∞;
//! - `ASYMP` = 1e-8 for the KS asymptotic p-value (`kstwo.sf`): scipy mixes
//!   exact algorithms and series there and we substitute the Durbin matrix
//!   for Pomeranz's recursion and a log-space Smirnov sum for the
//!   double-double one; agreement is about 2e-9 at worst, asserted at 1e-8.

use modelwatch_drift::numeric::{self, CvmMode, KsMode, MwMode};
use modelwatch_drift::{CategoryCounts, DriftError, binned, categorical};
use serde_json::Value;

use crate::common::{assert_close, fixture, floats};

const EXACT: f64 = 1e-9;
const ASYMP: f64 = 1e-8;

fn is_error(v: &Value) -> bool {
    v.get("error").is_some()
}

fn check_stat_p(
    got: Result<modelwatch_drift::Statistic, DriftError>,
    want: &Value,
    stat_tol: f64,
    p_tol: f64,
    what: &str,
) {
    if is_error(want) {
        match got {
            Err(DriftError::NotEnoughData { .. }) => {}
            other => panic!("{what}: scipy rejects this input, we returned {other:?}"),
        }
        return;
    }
    let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_close(
        got.statistic,
        want["statistic"].as_f64().unwrap_or(f64::NAN),
        stat_tol,
        &format!("{what} statistic"),
    );
    let p = got.p_value.unwrap_or_else(|| panic!("{what}: no p-value"));
    assert_close(
        p,
        want["pvalue"].as_f64().unwrap_or(f64::NAN),
        p_tol,
        &format!("{what} p-value"),
    );
}

#[test]
fn numeric_against_scipy() {
    let fx = fixture("numeric.json");
    let cases = fx["cases"].as_array().expect("cases");
    assert!(cases.len() >= 15);
    for c in cases {
        let name = c["name"].as_str().unwrap_or("?");
        let r = floats(&c["reference"]);
        let cur = floats(&c["current"]);
        for (key, mode) in [
            ("ks_auto", KsMode::Auto),
            ("ks_exact", KsMode::Exact),
            ("ks_asymp", KsMode::Asymp),
        ] {
            let got = numeric::ks_2samp(&r, &cur, mode);
            let used_exact = got
                .as_ref()
                .ok()
                .and_then(|s| s.params.get("mode_used").cloned())
                .is_some_and(|m| m == modelwatch_drift::Param::Text("exact".into()));
            let ptol = if used_exact { EXACT } else { ASYMP };
            check_stat_p(got, &c[key], EXACT, ptol, &format!("{name} {key}"));
        }
        if r.is_empty() {
            assert!(matches!(
                numeric::wasserstein(&r, &cur),
                Err(DriftError::NotEnoughData { .. })
            ));
            assert!(matches!(
                numeric::psi(&r, &cur, 10),
                Err(DriftError::NotEnoughData { .. })
            ));
            assert!(matches!(
                numeric::energy(&r, &cur),
                Err(DriftError::NotEnoughData { .. })
            ));
        } else {
            let w = numeric::wasserstein(&r, &cur).expect("wasserstein");
            assert_close(
                w.statistic,
                c["wasserstein"]["normed"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} wasserstein normed"),
            );
            let raw = numeric::wasserstein_raw(&r, &cur).expect("raw");
            assert_close(
                raw,
                c["wasserstein"]["raw"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} wasserstein raw"),
            );
            let e = numeric::energy(&r, &cur).expect("energy");
            assert_close(
                e.statistic,
                c["energy"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} energy"),
            );
            let p = numeric::psi(&r, &cur, 10).expect("psi");
            assert_close(
                p.statistic,
                c["psi"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} psi"),
            );
            let js = numeric::jensen_shannon(&r, &cur, 30, None).expect("js");
            assert_close(
                js.statistic,
                c["js_e"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} js e"),
            );
            let js2 = numeric::jensen_shannon(&r, &cur, 30, Some(2.0)).expect("js2");
            assert_close(
                js2.statistic,
                c["js_2"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} js 2"),
            );
            let h = numeric::hellinger(&r, &cur, 30).expect("hellinger");
            assert_close(
                h.statistic,
                c["hellinger"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} hellinger"),
            );
        }
        check_stat_p(
            numeric::anderson_ksamp(&[&r, &cur]),
            &c["anderson"],
            EXACT,
            EXACT,
            &format!("{name} anderson"),
        );
        for (key, mode) in [
            ("cvm_auto", CvmMode::Auto),
            ("cvm_exact", CvmMode::Exact),
            ("cvm_asymptotic", CvmMode::Asymptotic),
        ] {
            if key == "cvm_exact" && is_error(&c[key]) && r.len().max(cur.len()) > 20 {
                continue; // scipy's exact is only generated for small samples
            }
            let got = numeric::cramer_von_mises(&r, &cur, mode);
            // The asymptotic p-value is 1 - CDF in both implementations, so
            // it carries an absolute (not relative) rounding error of ~1e-15.
            if let (Ok(s), Some(want)) = (&got, c[key]["pvalue"].as_f64())
                && want < 1e-6
            {
                assert!(
                    (s.p_value.unwrap_or(1.0) - want).abs() < 1e-13,
                    "{name} {key} tiny p"
                );
                continue;
            }
            check_stat_p(got, &c[key], EXACT, EXACT, &format!("{name} {key}"));
        }
        for (key, mode) in [
            ("mw_auto", MwMode::Auto),
            ("mw_exact", MwMode::Exact),
            ("mw_asymptotic", MwMode::Asymptotic),
        ] {
            if key == "mw_exact" && is_error(&c[key]) && !r.is_empty() {
                continue; // too large for scipy's exact (generation time only)
            }
            let got = numeric::mann_whitney(&r, &cur, mode);
            // All values tied: scipy's z is -inf and its p-value 1; we report
            // not_enough_data instead (documented).
            if name == "constant_same" && mode != MwMode::Exact {
                assert!(
                    matches!(got, Err(DriftError::NotEnoughData { .. })),
                    "{name} {key}: {got:?}"
                );
                continue;
            }
            check_stat_p(got, &c[key], EXACT, EXACT, &format!("{name} {key}"));
        }
        check_stat_p(
            numeric::welch_t(&r, &cur),
            &c["welch"],
            EXACT,
            EXACT,
            &format!("{name} welch"),
        );
    }
}

#[test]
fn kstwo_distribution_against_scipy() {
    let fx = fixture("kstwo.json");
    for c in fx["cases"].as_array().expect("cases") {
        let n = c["n"].as_u64().expect("n");
        let x = c["x"].as_f64().expect("x");
        let want = c["sf"].as_f64().expect("sf");
        let got = modelwatch_drift::__private::kolmogorov_n_sf(n, x);
        assert_close(got, want, ASYMP, &format!("kstwo.sf({x}, {n})"));
    }
}

fn counts(v: &Value) -> CategoryCounts {
    CategoryCounts::from_pairs(
        v.as_object()
            .expect("object")
            .iter()
            .map(|(k, c)| (k.clone(), c.as_u64().expect("count"))),
    )
}

#[test]
fn categorical_against_scipy() {
    let fx = fixture("categorical.json");
    for c in fx["cases"].as_array().expect("cases") {
        let name = c["name"].as_str().unwrap_or("?");
        let r = counts(&c["reference"]);
        let cur = counts(&c["current"]);
        let a = categorical::align(&r, &cur);
        if a.labels.len() >= 2 {
            check_stat_p(
                categorical::chi_square(&r, &cur, true),
                &c["chi2_True"],
                EXACT,
                EXACT,
                &format!("{name} chi2 yates"),
            );
            check_stat_p(
                categorical::chi_square(&r, &cur, false),
                &c["chi2_False"],
                EXACT,
                EXACT,
                &format!("{name} chi2"),
            );
            check_stat_p(
                categorical::g_test(&r, &cur, true),
                &c["g_True"],
                EXACT,
                EXACT,
                &format!("{name} g yates"),
            );
            check_stat_p(
                categorical::g_test(&r, &cur, false),
                &c["g_False"],
                EXACT,
                EXACT,
                &format!("{name} g"),
            );
            let v = categorical::cramers_v(&r, &cur).expect("v");
            assert_close(
                v.statistic,
                c["cramers_v"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} cramers v"),
            );
        }
        if a.labels.len() == 2 {
            let f = categorical::fisher_exact(&r, &cur).expect("fisher");
            assert_close(
                f.p_value.unwrap_or(f64::NAN),
                c["fisher"]["pvalue"].as_f64().unwrap_or(f64::NAN),
                EXACT,
                &format!("{name} fisher p"),
            );
            if let Some(odds) = c["fisher"]["statistic"].as_f64() {
                assert_close(f.statistic, odds, EXACT, &format!("{name} fisher odds"));
            }
            check_stat_p(
                categorical::z_test(&r, &cur),
                &c["z"],
                EXACT,
                EXACT,
                &format!("{name} z"),
            );
        }
        let tv = categorical::total_variation(&r, &cur).expect("tv");
        assert_close(
            tv.statistic,
            c["tv"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} tv"),
        );
        let li = categorical::l_inf(&r, &cur).expect("linf");
        assert_close(
            li.statistic,
            c["linf"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} linf"),
        );
        let js = categorical::jensen_shannon(&r, &cur, None).expect("js");
        assert_close(
            js.statistic,
            c["js_e"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} js"),
        );
        let js2 = categorical::jensen_shannon(&r, &cur, Some(2.0)).expect("js2");
        assert_close(
            js2.statistic,
            c["js_2"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} js2"),
        );
        let psi = categorical::psi(&r, &cur).expect("psi");
        assert_close(
            psi.statistic,
            c["psi"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} psi"),
        );
    }
}

#[test]
fn binned_against_scipy() {
    let fx = fixture("binned.json");
    for c in fx["cases"].as_array().expect("cases") {
        let name = c["name"].as_str().unwrap_or("?");
        let r = floats(&c["reference"]);
        let cur = floats(&c["current"]);
        assert_close(
            binned::psi(&r, &cur).expect("psi").statistic,
            c["psi"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} psi"),
        );
        assert_close(
            binned::jensen_shannon(&r, &cur, None)
                .expect("js")
                .statistic,
            c["js_e"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} js"),
        );
        assert_close(
            binned::jensen_shannon(&r, &cur, Some(2.0))
                .expect("js")
                .statistic,
            c["js_2"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} js2"),
        );
        assert_close(
            binned::hellinger(&r, &cur).expect("h").statistic,
            c["hellinger"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} hellinger"),
        );
        check_stat_p(
            binned::chi_square(&r, &cur),
            &c["chi2"],
            EXACT,
            EXACT,
            &format!("{name} chi2"),
        );
    }
}

#[test]
fn canary_interval_against_definition() {
    let fx = fixture("canary.json");
    for c in fx["cases"].as_array().expect("cases") {
        let name = c["name"].as_str().unwrap_or("?");
        let x = floats(&c["canary"]);
        let y = floats(&c["baseline"]);
        let conf = c["confidence"].as_f64().expect("confidence");
        let iv = modelwatch_drift::canary::location_shift(&x, &y, conf).expect("interval");
        let exact = c["exact"].as_bool().expect("exact");
        assert_eq!(
            iv.mode,
            if exact { "exact" } else { "asymptotic" },
            "{name}"
        );
        assert_close(
            iv.estimate,
            c["estimate"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} estimate"),
        );
        assert_close(
            iv.lower,
            c["lower"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} lower"),
        );
        assert_close(
            iv.upper,
            c["upper"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} upper"),
        );
        assert_close(
            iv.p_value,
            c["pvalue"].as_f64().unwrap_or(f64::NAN),
            EXACT,
            &format!("{name} p"),
        );
    }
}
