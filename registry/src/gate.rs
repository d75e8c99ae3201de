//! Promotion gate policies: per model, a Rego module that decides whether a
//! version may take an alias such as `production`.
//!
//! The registry stores the policy text with its sha256 and audits every
//! change (`gate_policy.set`, `gate_policy.delete`, with the text before
//! and after). It must not parse or evaluate Rego: the daemon's `gate`
//! module compiles a policy before it reaches
//! [`Gates::set_gate_policy`](crate::roles::Gates::set_gate_policy)
//! and evaluates it; this crate only bounds its size. A promotion that
//! passed its gate is stored with [`GateApproval`] in the alias move's
//! audit entry.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
pub use modelwatch_types::records::GatePolicyRecord;

/// Largest policy text accepted (bytes). Gate policies are a few rules;
/// the bound keeps audit entries and evaluation small.
pub const MAX_GATE_POLICY_BYTES: usize = 64 * 1024;

/// What a promotion's gate decided, stored in the alias move's audit entry
/// (`after.gate`). A promotion is only ever stored when the gate allowed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateApproval {
    /// The policy that allowed the move; `None` when the model has no gate
    /// policy (nothing was checked). The move is refused if the stored
    /// policy is no longer this one when it commits.
    pub policy_sha256: Option<String>,
    /// The policy's `warn` messages, kept with the decision.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Hex sha256 of a policy text.
pub fn policy_sha256(rego: &str) -> String {
    hex::encode(Sha256::digest(rego.as_bytes()))
}

/// The checks the registry owns: not blank, not too large.
pub fn validate_policy_text(rego: &str) -> Result<()> {
    if rego.trim().is_empty() {
        return Err(Error::invalid(
            "rego",
            "the policy is empty; send a Rego module with `package modelwatch.gate` and a `deny` rule",
        ));
    }
    if rego.len() > MAX_GATE_POLICY_BYTES {
        return Err(Error::invalid(
            "rego",
            format!(
                "the policy is {} bytes; at most {MAX_GATE_POLICY_BYTES} bytes are accepted",
                rego.len()
            ),
        ));
    }
    Ok(())
}

/// The audit target of a model's gate policy.
pub(crate) fn gate_policy_target(model: &str) -> String {
    format!("model/{model}/gate-policy")
}

/// The audit entry's view of a policy: its digest and its text, so the
/// log shows what changed.
pub(crate) fn audit_view(record: &GatePolicyRecord) -> serde_json::Value {
    json!({ "sha256": record.sha256, "rego": record.rego })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_hex_sha256_of_the_text() {
        assert_eq!(
            policy_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn blank_and_oversized_policies_are_refused() {
        for bad in [
            String::new(),
            " \n\t".into(),
            "#".repeat(MAX_GATE_POLICY_BYTES + 1),
        ] {
            match validate_policy_text(&bad) {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "rego"),
                other => panic!("{other:?}"),
            }
        }
        validate_policy_text("package modelwatch.gate\n").unwrap();
    }
}
