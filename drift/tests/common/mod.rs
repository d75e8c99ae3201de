//! Helpers shared by the test modules.

use std::path::PathBuf;

use serde_json::Value;

/// Loads `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> Value {
    // Read when the test runs: a binary reused from another clone's build
    // must read this clone's fixtures.
    let p = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("tests/fixtures")
    .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

/// Values of a JSON array of numbers.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")))
        .collect()
}

/// Asserts `|got - want| <= rel * |want|` (or `<= rel` when `want` is 0).
#[track_caller]
pub fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
    let err = (got - want).abs();
    let scale = want.abs().max(if want == 0.0 { 1.0 } else { 0.0 });
    assert!(
        err <= rel * scale,
        "{what}: got {got:e}, scipy {want:e}, rel err {:e} > {rel:e}",
        err / scale.max(f64::MIN_POSITIVE)
    );
}

/// Deterministic normal draws (Box–Muller over a seeded `StdRng`).
pub fn normals(rng: &mut rand::rngs::StdRng, n: usize, mean: f64, sd: f64) -> Vec<f64> {
    use rand::Rng;
    (0..n)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random();
            mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}
