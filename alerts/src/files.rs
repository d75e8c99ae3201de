//! The files shipped in `alerts/`, embedded so `modelwatch alerts export
//! DIR` can write them next to a Prometheus and an Alertmanager, and read
//! here so tests can check every rule's expression against the daemon's
//! metrics.

use serde::Deserialize;

/// Every file, by its path under `alerts/` (and under an export directory).
pub const FILES: &[(&str, &str)] = &[
    (
        "rules/modelwatch.yml",
        include_str!("../rules/modelwatch.yml"),
    ),
    (
        "tests/modelwatch_test.yml",
        include_str!("../tests/modelwatch_test.yml"),
    ),
    (
        "alertmanager.example.yml",
        include_str!("../alertmanager.example.yml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("rule file {file}: {detail}")]
    Parse { file: String, detail: String },
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
}

/// Every rule's name (`alert` or `record`) and PromQL expression, from
/// every embedded rule file.
pub fn rule_expressions() -> Result<Vec<(String, String)>, RulesError> {
    let mut out = Vec::new();
    for (path, text) in FILES.iter().filter(|(p, _)| p.starts_with("rules/")) {
        let file: RuleFile = serde_yaml_ng::from_str(text).map_err(|e| RulesError::Parse {
            file: path.to_string(),
            detail: e.to_string(),
        })?;
        for rule in file.groups.into_iter().flat_map(|g| g.rules) {
            let name = rule.alert.or(rule.record).unwrap_or_default();
            out.push((name, rule.expr));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    /// Read when the test runs, not when it was compiled: a test binary
    /// reused from a build in another clone must not use that clone.
    fn alerts_dir() -> PathBuf {
        PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
        )
    }

    /// Runs a Prometheus tool from Debian's packages (installed by
    /// `.ci/run`) in `alerts/` and returns its output, failing on a
    /// non-zero exit.
    fn tool(program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .current_dir(alerts_dir())
            .output()
            .unwrap_or_else(|e| panic!("{program} could not run ({e}); .ci/run installs it"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
        text
    }

    #[test]
    fn promtool_accepts_the_rules() {
        let out = tool("promtool", &["check", "rules", "rules/modelwatch.yml"]);
        assert!(out.contains("SUCCESS"), "{out}");
    }

    #[test]
    fn promtool_unit_tests_of_the_rules_pass() {
        let out = tool("promtool", &["test", "rules", "tests/modelwatch_test.yml"]);
        assert!(out.contains("SUCCESS"), "{out}");
    }

    #[test]
    fn amtool_accepts_the_example_alertmanager_configuration() {
        let out = tool("amtool", &["check-config", "alertmanager.example.yml"]);
        assert!(out.contains("SUCCESS"), "{out}");
    }

    #[test]
    fn every_rule_has_an_expression_and_the_action_label() {
        let rules = rule_expressions().unwrap();
        assert!(rules.len() >= 8, "{rules:?}");
        let text = FILES[0].1;
        let actions = text.matches("modelwatch_action:").count();
        assert_eq!(actions, rules.len(), "every rule carries modelwatch_action");
        let names: Vec<&str> = rules.iter().map(|(n, _)| n.as_str()).collect();
        for wanted in [
            "ModelwatchRollbackRecommended",
            "ModelwatchDriftDetected",
            "ModelwatchEvaluatorStalled",
            "ModelwatchIngestRejecting",
            "ModelwatchPersistenceStalled",
        ] {
            assert!(names.contains(&wanted), "{names:?}");
        }
    }
}
