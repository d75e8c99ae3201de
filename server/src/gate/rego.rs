//! Promotion gate policies in Rego, evaluated with `regorus`: policy text
//! and input document in, decision out.
//!
//! The contract: a policy is one Rego (v1 syntax) module in
//! `package modelwatch.gate` that defines a partial set rule `deny`
//! (human-readable reasons) and optionally `warn`; a version is allowed
//! iff `deny` is empty. [`check`] is what an upload must pass (parse,
//! package, a `deny` rule, and one evaluation against [`super::example_input`]
//! so unsafe variables, unknown functions and a `deny` that is not a set
//! are refused at upload rather than at promotion time).
//!
//! This module is pure and synchronous: no registry, no I/O, no async.
//! Callers run it on a blocking thread. Evaluation is bounded: the policy
//! text by [`MAX_POLICY_LINES`] and the registry's size limit, the input
//! by [`MAX_INPUT_BYTES`], and the run time by [`TIME_LIMIT`] (regorus's
//! cooperative execution timer). Memory is not bounded: regorus's memory
//! limiter needs its own global allocator, which would replace mimalloc, so
//! gate policies are trusted code (setting one needs role `approver`).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, PolicyLengthConfig, Value};
use serde::Serialize;

/// The package every gate policy declares.
pub const PACKAGE: &str = "modelwatch.gate";
/// Longest one evaluation may run before it is stopped.
pub const TIME_LIMIT: Duration = Duration::from_secs(2);
/// Largest input document (serialized JSON) a policy is evaluated on.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;
/// Most lines a policy may have (its bytes are bounded by the registry).
pub const MAX_POLICY_LINES: usize = 5_000;
/// Furthest column a policy's code may reach (regorus checks tokens, not
/// comments).
pub const MAX_POLICY_COLUMNS: u32 = 1_024;

/// The file name policies are compiled under; parser messages cite it.
const SOURCE_NAME: &str = "gate.rego";

/// What is wrong with a policy, or with one evaluation of it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is not valid Rego; the parser's message names line and column.
    #[error("the gate policy does not compile: {0}")]
    Compile(String),
    #[error(
        "the gate policy declares `package {found}`; gate policies must declare `package {PACKAGE}`"
    )]
    WrongPackage { found: String },
    #[error(
        "the gate policy has no `deny` rule; define `deny contains msg if {{ … }}` (an empty deny allows the version)"
    )]
    MissingDeny,
    #[error(
        "`{rule}` must be a set of messages (`{rule} contains msg if {{ … }}`), but the policy made it {found}"
    )]
    NotASet { rule: &'static str, found: String },
    /// A runtime error (conflicting values, a failed builtin in strict form…).
    #[error("the gate policy failed while evaluating: {0}")]
    Evaluation(String),
    #[error(
        "the gate policy ran longer than {limit:?} and was stopped; simplify it (avoid large loops)",
        limit = TIME_LIMIT
    )]
    TimeLimit,
    #[error(
        "the gate input is {size} bytes, more than the {MAX_INPUT_BYTES} a policy is evaluated on"
    )]
    InputTooLarge { size: usize },
}

/// A gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `reasons` is empty.
    pub allowed: bool,
    /// The policy's `deny` messages, sorted.
    pub reasons: Vec<String>,
    /// The policy's `warn` messages, sorted; they never deny.
    pub warnings: Vec<String>,
}

/// A parsed policy, ready to evaluate.
struct Compiled {
    engine: Engine,
    has_warn: bool,
}

fn compile(rego: &str) -> Result<Compiled, PolicyError> {
    let mut engine = Engine::new();
    engine.set_policy_length_config(PolicyLengthConfig {
        max_col: NonZeroU32::new(MAX_POLICY_COLUMNS).expect("non-zero"),
        max_file_bytes: NonZeroUsize::new(modelwatch_registry::gate::MAX_GATE_POLICY_BYTES)
            .expect("non-zero"),
        max_lines: NonZeroUsize::new(MAX_POLICY_LINES).expect("non-zero"),
    });
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: TIME_LIMIT,
        check_interval: NonZeroU32::new(64).expect("non-zero"),
    });
    let package = engine
        .add_policy(SOURCE_NAME.to_string(), rego.to_string())
        .map_err(|e| PolicyError::Compile(one_line(&e.to_string())))?;
    let found = package.strip_prefix("data.").unwrap_or(&package);
    if found != PACKAGE {
        return Err(PolicyError::WrongPackage {
            found: found.to_string(),
        });
    }
    let declares = |engine: &Engine, rule: &str| {
        engine
            .has_declared_rule_rooted_at(SOURCE_NAME, rule)
            .map_err(|e| PolicyError::Compile(one_line(&e.to_string())))
    };
    if !declares(&engine, "deny")? {
        return Err(PolicyError::MissingDeny);
    }
    let has_warn = declares(&engine, "warn")?;
    Ok(Compiled { engine, has_warn })
}

/// Whether an upload may store this policy: it compiles, declares the
/// package and `deny`, and evaluates on the documented example input.
pub fn check(rego: &str) -> Result<(), PolicyError> {
    match evaluate(rego, &super::example_input()) {
        Ok(_) => Ok(()),
        // regorus analyses a policy (unsafe variables, unknown functions)
        // only when it first evaluates it: for the author these are
        // compile errors.
        Err(PolicyError::Evaluation(m)) => Err(PolicyError::Compile(m)),
        Err(e) => Err(e),
    }
}

/// Evaluates a policy on an input document.
pub fn evaluate(rego: &str, input: &serde_json::Value) -> Result<Decision, PolicyError> {
    let text = input.to_string();
    if text.len() > MAX_INPUT_BYTES {
        return Err(PolicyError::InputTooLarge { size: text.len() });
    }
    let Compiled {
        mut engine,
        has_warn,
    } = compile(rego)?;
    let input = Value::from_json_str(&text).map_err(|e| PolicyError::Evaluation(e.to_string()))?;
    engine.set_input(input);
    let reasons = messages(&mut engine, "deny")?;
    let warnings = if has_warn {
        messages(&mut engine, "warn")?
    } else {
        Vec::new()
    };
    Ok(Decision {
        allowed: reasons.is_empty(),
        reasons,
        warnings,
    })
}

/// The members of a set rule as text (strings as they are, anything else
/// as JSON), sorted; an undefined rule is empty.
fn messages(engine: &mut Engine, rule: &'static str) -> Result<Vec<String>, PolicyError> {
    let value = engine
        .eval_rule(format!("data.{PACKAGE}.{rule}"))
        .map_err(evaluation_error)?;
    let set = match &value {
        Value::Undefined => return Ok(Vec::new()),
        Value::Set(set) => set,
        other => {
            return Err(PolicyError::NotASet {
                rule,
                found: other
                    .to_json_str()
                    .unwrap_or_else(|_| "a value that is not a set".into()),
            });
        }
    };
    let mut out: Vec<String> = set
        .iter()
        .map(|m| match m {
            Value::String(s) => s.to_string(),
            other => serde_json::to_string(other).unwrap_or_default(),
        })
        .collect();
    out.sort();
    Ok(out)
}

fn evaluation_error(e: anyhow::Error) -> PolicyError {
    if let Some(regorus::LimitError::TimeLimitExceeded { .. }) = e.downcast_ref() {
        return PolicyError::TimeLimit;
    }
    PolicyError::Evaluation(one_line(&e.to_string()))
}

/// regorus reports a located error as a caret diagram:
/// `\n--> gate.rego:5:1\n  |\n5 | }\n  | ^\nerror: expecting expression`.
/// An API message is one line: `gate.rego:5:1: expecting expression (near "}")`.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message.lines().collect();
    let Some(at) = lines.iter().position(|l| l.starts_with("--> ")) else {
        return lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
    };
    let location = &lines[at][4..];
    let last = lines.last().copied().unwrap_or_default();
    let detail = last.strip_prefix("error: ").unwrap_or(last);
    let near = lines
        .get(at + 2)
        .and_then(|l| l.split_once("| "))
        .map(|(_, code)| code.trim())
        .filter(|code| !code.is_empty());
    match near {
        Some(code) => format!("{location}: {detail} (near {code:?})"),
        None => format!("{location}: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MIN_AUC: &str = r#"
package modelwatch.gate

deny contains msg if {
    input.metrics.auc < 0.8
    msg := sprintf("auc %v is below 0.8", [input.metrics.auc])
}

deny contains "no auc metric" if not input.metrics.auc

warn contains "no code commit in the lineage" if not input.lineage.code_commit
"#;

    fn input(auc: Option<f64>) -> serde_json::Value {
        let mut i = super::super::example_input();
        i["metrics"] = match auc {
            Some(a) => json!({ "auc": a }),
            None => json!({}),
        };
        i
    }

    #[test]
    fn allow_deny_and_warn() {
        let mut good = input(Some(0.9));
        good["lineage"]["code_commit"] = json!("abc123");
        let d = evaluate(MIN_AUC, &good).unwrap();
        assert_eq!(
            d,
            Decision {
                allowed: true,
                reasons: vec![],
                warnings: vec![]
            }
        );

        let mut low = input(Some(0.5));
        low["lineage"] = json!({});
        let d = evaluate(MIN_AUC, &low).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.reasons, ["auc 0.5 is below 0.8"]);
        assert_eq!(d.warnings, ["no code commit in the lineage"]);

        let d = evaluate(MIN_AUC, &input(None)).unwrap();
        assert_eq!(d.reasons, ["no auc metric"]);
    }

    #[test]
    fn several_reasons_are_sorted_and_non_strings_become_json() {
        let rego = r#"
package modelwatch.gate
deny contains "b reason" if true
deny contains "a reason" if true
deny contains {"code": 7} if true
"#;
        let d = evaluate(rego, &json!({})).unwrap();
        assert_eq!(d.reasons, ["a reason", "b reason", r#"{"code":7}"#]);
        assert!(!d.allowed);
    }

    #[test]
    fn malformed_policies_name_line_and_column() {
        let rego = "package modelwatch.gate\n\ndeny contains msg if {\n    msg := \n}\n";
        match check(rego) {
            Err(PolicyError::Compile(m)) => {
                assert!(m.starts_with("gate.rego:4:9: "), "{m}");
            }
            other => panic!("{other:?}"),
        }
        for garbage in ["", "{}", "\u{0}\u{1}binary", "package", "deny contains"] {
            assert!(
                matches!(check(garbage), Err(PolicyError::Compile(_))),
                "{garbage:?}"
            );
        }
        // Truncated in the middle of a rule.
        let truncated = &MIN_AUC[..MIN_AUC.find("sprintf").unwrap() + 4];
        assert!(matches!(check(truncated), Err(PolicyError::Compile(_))));
    }

    #[test]
    fn located_errors_become_one_line() {
        let diagram = "\n--> gate.rego:5:1\n  |\n5 | }\n  | ^\nerror: expecting expression";
        assert_eq!(
            one_line(diagram),
            "gate.rego:5:1: expecting expression (near \"}\")"
        );
        assert_eq!(one_line("plain\n  failure "), "plain failure");
    }

    #[test]
    fn oversized_policies_are_refused_by_length() {
        let many_lines = format!(
            "package modelwatch.gate\ndeny contains \"x\" if false\n{}",
            "# filler\n".repeat(MAX_POLICY_LINES)
        );
        assert!(matches!(check(&many_lines), Err(PolicyError::Compile(_))));
        let long_line = format!(
            "package modelwatch.gate\ndeny contains \"{}\" if false\n",
            "x".repeat(5_000)
        );
        assert!(matches!(check(&long_line), Err(PolicyError::Compile(_))));
    }

    #[test]
    fn wrong_package_and_missing_deny_are_named() {
        let other = "package other.gate\ndeny contains \"x\" if false\n";
        match check(other) {
            Err(e @ PolicyError::WrongPackage { .. }) => {
                assert!(e.to_string().contains("other.gate"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let allow_only = "package modelwatch.gate\nallow if true\n";
        assert!(matches!(check(allow_only), Err(PolicyError::MissingDeny)));
    }

    #[test]
    fn semantic_errors_are_caught_at_check_time() {
        // An unsafe variable, an unknown function, and a deny that is not a set.
        let unsafe_var = "package modelwatch.gate\ndeny contains msg if { x > 1 }\n";
        assert!(matches!(check(unsafe_var), Err(PolicyError::Compile(_))));
        let unknown_fn = "package modelwatch.gate\ndeny contains msg if { msg := nope.fn(1) }\n";
        assert!(matches!(check(unknown_fn), Err(PolicyError::Compile(_))));
        let boolean = "package modelwatch.gate\ndeny := true\n";
        match check(boolean) {
            Err(PolicyError::NotASet {
                rule: "deny",
                found,
            }) => assert_eq!(found, "true"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_running_policies_are_stopped() {
        let rego = r#"
package modelwatch.gate
deny contains "slow" if {
    n := count([x | some i in numbers.range(1, 2000); some j in numbers.range(1, 2000); x := i * j])
    n < 0
}
"#;
        let started = std::time::Instant::now();
        assert!(matches!(
            evaluate(rego, &json!({})),
            Err(PolicyError::TimeLimit)
        ));
        assert!(
            started.elapsed() < TIME_LIMIT * 5,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn oversized_input_is_refused_before_evaluation() {
        let big = json!({ "blob": "x".repeat(MAX_INPUT_BYTES) });
        assert!(matches!(
            evaluate(MIN_AUC, &big),
            Err(PolicyError::InputTooLarge { .. })
        ));
    }

    #[test]
    fn input_of_any_shape_evaluates_without_panicking() {
        for garbage in [
            json!(null),
            json!([1, 2, 3]),
            json!("text"),
            json!({"metrics": "not an object"}),
            json!({"metrics": {"loss": 0.1}}),
        ] {
            let d = evaluate(MIN_AUC, &garbage).unwrap();
            // Nothing says the auc is good enough: it is denied.
            assert!(!d.allowed, "{garbage}");
        }
    }
}
