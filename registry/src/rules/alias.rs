//! Rollback targets from an alias's move history.
//!
//! A rollback goes to the version the alias served *before the current one
//! was put there*, skipping what earlier rollbacks undid. The history is
//! replayed as a stack of deployments: a `set` pushes, a `rollback` pops the
//! version it moved away from, a `delete` clears the stack. Rolling back
//! twice after v1 → v2 → v3 therefore lands on v1, not back on v3.

use serde_json::{Value, json};

use crate::gate::GateApproval;
use crate::types::{AliasMove, MoveKind};

/// The audit target of an alias.
pub fn target(model: &str, alias: &str) -> String {
    format!("model/{model}/alias/{alias}")
}

/// The audit action of a move that puts the alias on a version.
pub fn move_action(kind: MoveKind) -> &'static str {
    match kind {
        MoveKind::Rollback => "alias.rollback",
        _ => "alias.set",
    }
}

/// The audit entry's `before` and `after` of a move from `from` to `to`;
/// a promotion carries its gate decision in `after.gate`.
pub fn move_audit(
    from: Option<i64>,
    to: i64,
    reason: &str,
    gate: Option<&GateApproval>,
) -> (Option<Value>, Value) {
    let after = match gate {
        Some(gate) => json!({ "version": to, "reason": reason, "gate": gate }),
        None => json!({ "version": to, "reason": reason }),
    };
    (from.map(|v| json!({ "version": v })), after)
}

/// The version a rollback of the alias should move to, given its moves
/// oldest first and a predicate telling whether a version still exists.
pub fn rollback_target(
    moves_oldest_first: &[AliasMove],
    exists: impl Fn(i64) -> bool,
) -> Option<i64> {
    let mut stack: Vec<i64> = Vec::new();
    for m in moves_oldest_first {
        match m.kind {
            MoveKind::Set => {
                if let Some(to) = m.to_version
                    && stack.last() != Some(&to)
                {
                    stack.push(to);
                }
            }
            MoveKind::Rollback => {
                stack.pop();
                if let Some(to) = m.to_version
                    && stack.last() != Some(&to)
                {
                    stack.push(to);
                }
            }
            MoveKind::Delete => stack.clear(),
        }
    }
    let current = stack.pop()?;
    while let Some(candidate) = stack.pop() {
        if candidate != current && exists(candidate) {
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(kind: MoveKind, from: Option<i64>, to: Option<i64>) -> AliasMove {
        AliasMove {
            from_version: from,
            to_version: to,
            kind,
            actor: "t".into(),
            reason: String::new(),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn first_rollback_goes_to_previous_target() {
        let h = [
            mv(MoveKind::Set, None, Some(1)),
            mv(MoveKind::Set, Some(1), Some(2)),
        ];
        assert_eq!(rollback_target(&h, |_| true), Some(1));
    }

    #[test]
    fn repeated_rollbacks_walk_back_instead_of_ping_ponging() {
        let h = [
            mv(MoveKind::Set, None, Some(1)),
            mv(MoveKind::Set, Some(1), Some(2)),
            mv(MoveKind::Set, Some(2), Some(3)),
            mv(MoveKind::Rollback, Some(3), Some(2)),
        ];
        assert_eq!(rollback_target(&h, |_| true), Some(1));
    }

    #[test]
    fn nothing_before_first_target() {
        assert_eq!(
            rollback_target(&[mv(MoveKind::Set, None, Some(4))], |_| true),
            None
        );
        assert_eq!(rollback_target(&[], |_| true), None);
    }

    #[test]
    fn delete_forgets_the_past_and_deleted_versions_are_skipped() {
        let h = [
            mv(MoveKind::Set, None, Some(1)),
            mv(MoveKind::Delete, Some(1), None),
            mv(MoveKind::Set, None, Some(2)),
        ];
        assert_eq!(rollback_target(&h, |_| true), None);
        let h = [
            mv(MoveKind::Set, None, Some(1)),
            mv(MoveKind::Set, Some(1), Some(2)),
            mv(MoveKind::Set, Some(2), Some(3)),
        ];
        assert_eq!(rollback_target(&h, |v| v != 2), Some(1));
    }

    #[test]
    fn move_audit_entries_name_the_versions_and_the_gate() {
        assert_eq!(move_action(MoveKind::Set), "alias.set");
        assert_eq!(move_action(MoveKind::Rollback), "alias.rollback");
        assert_eq!(target("m", "production"), "model/m/alias/production");
        let (before, after) = move_audit(None, 2, "go", None);
        assert_eq!(
            (before, after),
            (None, json!({"version": 2, "reason": "go"}))
        );
        let gate = GateApproval {
            policy_sha256: Some("ab".into()),
            warnings: vec![],
        };
        let (before, after) = move_audit(Some(1), 2, "ci", Some(&gate));
        assert_eq!(before, Some(json!({"version": 1})));
        assert_eq!(after["gate"]["policy_sha256"], "ab");
    }

    #[test]
    fn moving_back_and_forth_keeps_order() {
        // 1 → 2 → 1 (a manual set, not a rollback) → rollback goes to 2.
        let h = [
            mv(MoveKind::Set, None, Some(1)),
            mv(MoveKind::Set, Some(1), Some(2)),
            mv(MoveKind::Set, Some(2), Some(1)),
        ];
        assert_eq!(rollback_target(&h, |_| true), Some(2));
    }
}
