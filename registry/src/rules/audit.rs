//! The audit chain: how an entry is made canonical, hashed and verified.
//!
//! `hash = sha256(prev_hash ‖ canonical entry)` in lowercase hex, where
//! `prev_hash` is the previous entry's hash as its 64 ASCII hex characters
//! (64 `0`s before the first entry) and the canonical entry is the compact
//! JSON object `{"action","actor","after","at","before","seq","target"}`
//! with keys sorted at every level and `at` in RFC 3339 with microseconds. This is chain format version 1.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::types::{AuditEntry, AuditVerification, TokenInfo};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Timestamps are stored and hashed in one textual form.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The bytes that are hashed for one entry.
pub fn canonical_entry(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Vec<u8> {
    let entry = json!({
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "target": target,
        "before": before.cloned().unwrap_or(Value::Null),
        "after": after.cloned().unwrap_or(Value::Null),
    });
    let mut out = String::new();
    write_sorted(&entry, &mut out);
    out.into_bytes()
}

/// Compact JSON with object keys sorted at every level. Written by hand rather
/// than relying on serde_json's map order, which a dependency enabling the
/// `preserve_order` feature would silently change.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_sorted(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Where a new entry goes in the chain: its sequence number, the hash it
/// links to and its own hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// Chains a new entry after the last one (`None` for the first entry):
/// `seq` is the next number, `prev_hash` the last entry's hash (the genesis
/// hash before the first), `hash` covers the entry's canonical form. The
/// backend only reads the last `(seq, hash)` and inserts what this returns.
pub fn link(
    last: Option<(i64, String)>,
    at: &str,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Link {
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_string()),
    };
    let canonical = canonical_entry(seq, at, actor, action, target, before, after);
    let hash = chain_hash(&prev_hash, &canonical);
    Link {
        seq,
        prev_hash,
        hash,
    }
}

pub fn chain_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical);
    hex::encode(h.finalize())
}

/// Checks entries given in `seq` order: sequence numbers contiguous from 1,
/// every `prev_hash` equal to the previous entry's hash, every hash equal
/// to the recomputed one. Reports the first entry that fails.
pub fn verify(entries: impl IntoIterator<Item = AuditEntry>) -> AuditVerification {
    let mut prev = GENESIS_HASH.to_string();
    let mut checked = 0;
    for (expected_seq, e) in (1..).zip(entries) {
        let broken = |problem: String| AuditVerification {
            entries_checked: checked,
            ok: false,
            first_broken_seq: Some(e.seq),
            problem: Some(problem),
            head_hash: None,
            tokens_checked: 0,
            anchors: None,
        };
        if e.seq != expected_seq {
            return broken(format!(
                "expected entry {expected_seq} but found {}: entries were removed",
                e.seq
            ));
        }
        if e.prev_hash != prev {
            return broken(format!(
                "prev_hash {} does not match the hash of the entry before it ({prev})",
                e.prev_hash
            ));
        }
        let canonical = canonical_entry(
            e.seq,
            &format_time(e.at),
            &e.actor,
            &e.action,
            &e.target,
            e.before.as_ref(),
            e.after.as_ref(),
        );
        let recomputed = chain_hash(&prev, &canonical);
        if recomputed != e.hash {
            return broken(format!(
                "stored hash {} does not match the recomputed {recomputed}: the entry was changed after it was written",
                e.hash
            ));
        }
        prev = e.hash;
        checked += 1;
    }
    AuditVerification {
        entries_checked: checked,
        ok: true,
        first_broken_seq: None,
        problem: None,
        head_hash: Some(prev),
        tokens_checked: 0,
        anchors: None,
    }
}

/// Something worth a chain entry that changes no record: a refusal a
/// security review wants on the record.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditEvent {
    /// A gate denied a version: a promotion refused (nothing moved) or a
    /// gate evaluation answered "denied".
    GateDenied {
        model: String,
        version: i64,
        alias: Option<String>,
        /// True when the denial refused a promotion.
        promotion: bool,
        reasons: Vec<String>,
        policy_sha256: Option<String>,
    },
    /// A presented credential was refused: an unknown, revoked or expired
    /// token, or a malformed one at the UI's sign-in.
    AuthFailed {
        reason: String,
        /// The token's name, when the secret matched a known token.
        token: Option<String>,
        /// `api` or `ui`.
        via: &'static str,
        /// Failures not recorded since the previous `auth.failed` entry
        /// (the daemon bounds how many it records per minute).
        suppressed: u64,
    },
}

impl AuditEvent {
    pub fn action(&self) -> &'static str {
        match self {
            Self::GateDenied { .. } => "gate.denied",
            Self::AuthFailed { .. } => "auth.failed",
        }
    }

    pub fn target(&self) -> String {
        match self {
            Self::GateDenied { model, version, .. } => format!("model/{model}/version/{version}"),
            Self::AuthFailed { token: Some(t), .. } => format!("token/{t}"),
            Self::AuthFailed { token: None, .. } => "auth".to_string(),
        }
    }

    /// The entry's `after`: what was refused and why.
    pub fn after(&self) -> Value {
        match self {
            Self::GateDenied {
                alias,
                promotion,
                reasons,
                policy_sha256,
                ..
            } => json!({
                "allowed": false,
                "alias": alias,
                "promotion": promotion,
                "reasons": reasons,
                "policy_sha256": policy_sha256,
            }),
            Self::AuthFailed {
                reason,
                via,
                suppressed,
                ..
            } => json!({"reason": reason, "via": via, "suppressed": suppressed}),
        }
    }
}

/// A row of the `tokens` table, as the token check reads it.
#[derive(Debug, Clone)]
pub struct StoredToken {
    pub info: TokenInfo,
    pub secret_hash: String,
}

/// Key of the secret's fingerprint in a `token.create` entry's `after`.
pub const SECRET_FINGERPRINT: &str = "secret_fingerprint";

/// Compares the `tokens` table with what the chain's `token.create` and
/// `token.revoke` entries (in `seq` order) say it must hold: the same
/// tokens with the same role, creator, times and — for tokens created
/// since entries carry it — secret fingerprint. A role raised, a
/// revocation undone, a secret swapped or a token added or removed
/// behind the registry's back is named. Returns how many tokens were
/// checked, or the entry (when one is to blame) and the problem.
pub fn tokens_match_chain(
    entries: &[AuditEntry],
    tokens: &[StoredToken],
) -> Result<i64, (Option<i64>, String)> {
    use std::collections::BTreeMap;
    // name → (what the chain says, the fingerprint it recorded, the entry)
    let mut expected: BTreeMap<String, (TokenInfo, Option<String>, i64)> = BTreeMap::new();
    for e in entries {
        if e.action != "token.create" && e.action != "token.revoke" {
            continue;
        }
        let after = e.after.clone().unwrap_or(Value::Null);
        let info: TokenInfo = serde_json::from_value(after.clone()).map_err(|err| {
            (
                Some(e.seq),
                format!(
                    "entry {} ({}) does not describe a token: {err}",
                    e.seq, e.action
                ),
            )
        })?;
        let recorded = after
            .get(SECRET_FINGERPRINT)
            .and_then(Value::as_str)
            .map(str::to_string);
        let fingerprint = match (e.action.as_str(), expected.remove(&info.name)) {
            ("token.create", _) => recorded,
            (_, Some((_, fingerprint, _))) => fingerprint,
            (_, None) => {
                return Err((
                    Some(e.seq),
                    format!(
                        "entry {} revokes token {:?}, which no earlier entry created",
                        e.seq, info.name
                    ),
                ));
            }
        };
        expected.insert(info.name.clone(), (info, fingerprint, e.seq));
    }
    for t in tokens {
        let Some((want, fingerprint, seq)) = expected.remove(&t.info.name) else {
            return Err((
                None,
                format!(
                    "token {:?} (role {}) is in the tokens table but no audit entry created it: it was added behind the registry's back",
                    t.info.name, t.info.role
                ),
            ));
        };
        if t.info != want {
            return Err((
                Some(seq),
                format!(
                    "token {:?} in the tokens table ({}) is not what audit entry {seq} recorded ({}): the table was changed behind the registry's back",
                    t.info.name,
                    describe_token(&t.info),
                    describe_token(&want)
                ),
            ));
        }
        if let Some(fingerprint) = fingerprint
            && fingerprint != crate::tokens::secret_fingerprint(&t.secret_hash)
        {
            return Err((
                Some(seq),
                format!(
                    "token {:?}'s secret is not the one audit entry {seq} recorded: it was swapped behind the registry's back",
                    t.info.name
                ),
            ));
        }
    }
    if let Some((name, (_, _, seq))) = expected.into_iter().next() {
        return Err((
            Some(seq),
            format!(
                "token {name:?}, recorded by audit entry {seq}, is missing from the tokens table: it was deleted behind the registry's back"
            ),
        ));
    }
    Ok(i64::try_from(tokens.len()).unwrap_or(i64::MAX))
}

fn describe_token(t: &TokenInfo) -> String {
    let time = |t: Option<DateTime<Utc>>| t.map(format_time).unwrap_or_else(|| "never".into());
    format!(
        "role {}, created by {} at {}, revoked {}, expires {}",
        t.role,
        t.created_by,
        format_time(t.created_at),
        time(t.revoked_at),
        time(t.expires_at)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        (1..=n)
            .map(|seq| {
                let after = json!({"n": seq, "nested": {"b": 1, "a": 2}});
                let c = canonical_entry(
                    seq,
                    &format_time(at),
                    "admin",
                    "model.create",
                    "model/x",
                    None,
                    Some(&after),
                );
                let hash = chain_hash(&prev, &c);
                let e = AuditEntry {
                    seq,
                    at,
                    actor: "admin".into(),
                    action: "model.create".into(),
                    target: "model/x".into(),
                    before: None,
                    after: Some(after),
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let v = verify(chain(5));
        assert!(v.ok, "{v:?}");
        assert_eq!(v.entries_checked, 5);
    }

    #[test]
    fn edited_entry_is_named() {
        let mut c = chain(5);
        c[2].actor = "mallory".into();
        let v = verify(c);
        assert!(!v.ok);
        assert_eq!(v.first_broken_seq, Some(3));
    }

    #[test]
    fn removed_entry_is_named() {
        let mut c = chain(5);
        c.remove(1);
        let v = verify(c);
        assert_eq!(v.first_broken_seq, Some(3));
    }

    #[test]
    fn rehashed_entry_breaks_the_next_link() {
        // An attacker who edits entry 2 and recomputes its hash still breaks entry 3.
        let mut c = chain(4);
        c[1].target = "model/y".into();
        let canon = canonical_entry(
            2,
            &format_time(c[1].at),
            "admin",
            "model.create",
            "model/y",
            None,
            c[1].after.as_ref(),
        );
        c[1].hash = chain_hash(&c[1].prev_hash, &canon);
        let v = verify(c);
        assert_eq!(v.first_broken_seq, Some(3));
    }

    #[test]
    fn links_continue_the_chain_and_verify() {
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let t = format_time(at);
        let after = json!({"b": [1, {"d": 1, "c": 2}], "a": null});
        let first = link(
            None,
            &t,
            "root",
            "model.create",
            "model/m",
            None,
            Some(&after),
        );
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
        let second = link(
            Some((first.seq, first.hash.clone())),
            &t,
            "root",
            "model.delete",
            "model/m",
            Some(&after),
            None,
        );
        assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
        // The hash is the documented one: sha256(prev_hash ‖ canonical).
        let canonical =
            canonical_entry(2, &t, "root", "model.delete", "model/m", Some(&after), None);
        assert_eq!(second.hash, chain_hash(&first.hash, &canonical));
        // Pinned value: chain format v1 must not drift.
        assert_eq!(
            first.hash,
            chain_hash(
                GENESIS_HASH,
                br#"{"action":"model.create","actor":"root","after":{"a":null,"b":[1,{"c":2,"d":1}]},"at":"2026-01-01T00:00:00.000000Z","before":null,"seq":1,"target":"model/m"}"#
            )
        );
        let entries = [
            (first, None, Some(after.clone()), "model.create"),
            (second, Some(after.clone()), None, "model.delete"),
        ]
        .into_iter()
        .map(|(l, before, after, action)| AuditEntry {
            seq: l.seq,
            at,
            actor: "root".into(),
            action: action.into(),
            target: "model/m".into(),
            before,
            after,
            prev_hash: l.prev_hash,
            hash: l.hash,
        });
        assert!(verify(entries).ok);
    }

    #[test]
    fn canonical_form_sorts_keys() {
        let a = canonical_entry(1, "t", "a", "x", "y", None, Some(&json!({"z": 1, "a": 2})));
        let text = String::from_utf8(a).unwrap();
        assert!(text.find("\"action\"").unwrap() < text.find("\"actor\"").unwrap());
        assert!(text.contains("{\"a\":2,\"z\":1}"));
    }

    fn token_entry(seq: i64, action: &str, info: &TokenInfo, secret_hash: &str) -> AuditEntry {
        let mut after = serde_json::to_value(info).unwrap();
        if action == "token.create" {
            after[SECRET_FINGERPRINT] = crate::tokens::secret_fingerprint(secret_hash).into();
        }
        AuditEntry {
            seq,
            at: info.created_at,
            actor: "admin".into(),
            action: action.into(),
            target: format!("token/{}", info.name),
            before: None,
            after: Some(after),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn token(name: &str, role: crate::types::Role) -> TokenInfo {
        TokenInfo {
            name: name.into(),
            role,
            created_by: "admin".into(),
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            revoked_at: None,
            expires_at: None,
        }
    }

    #[test]
    fn the_tokens_table_must_be_what_the_chain_says() {
        use crate::types::Role;
        let ci = token("ci", Role::Editor);
        let mut old = token("old", Role::Reader);
        let mut entries = vec![
            token_entry(1, "token.create", &ci, "h-ci"),
            token_entry(2, "model.create", &ci, ""),
            token_entry(3, "token.create", &old, "h-old"),
        ];
        old.revoked_at = Some("2026-02-01T00:00:00Z".parse().unwrap());
        entries.push(token_entry(4, "token.revoke", &old, ""));
        let stored = |info: &TokenInfo, hash: &str| StoredToken {
            info: info.clone(),
            secret_hash: hash.into(),
        };
        let table = vec![stored(&ci, "h-ci"), stored(&old, "h-old")];
        assert_eq!(tokens_match_chain(&entries, &table), Ok(2));

        let problem = |table: Vec<StoredToken>| tokens_match_chain(&entries, &table).unwrap_err();
        // A role raised behind the registry's back.
        let (seq, p) = problem(vec![
            stored(&token("ci", Role::Admin), "h-ci"),
            table[1].clone(),
        ]);
        assert_eq!(seq, Some(1));
        assert!(p.contains("role admin") && p.contains("role editor"), "{p}");
        // A revocation undone.
        let (seq, _) = problem(vec![
            table[0].clone(),
            stored(&token("old", Role::Reader), "h-old"),
        ]);
        assert_eq!(seq, Some(4));
        // A secret swapped.
        let (_, p) = problem(vec![stored(&ci, "h-mallory"), table[1].clone()]);
        assert!(p.contains("swapped"), "{p}");
        // A token added, and one deleted.
        let mut added = table.clone();
        added.push(stored(&token("backdoor", Role::Admin), "h"));
        assert!(problem(added).1.contains("no audit entry created it"));
        assert!(
            problem(vec![table[0].clone()])
                .1
                .contains("missing from the tokens table")
        );
        // Tokens created before entries carried a fingerprint are still
        // checked for everything else.
        let mut legacy = entries.clone();
        legacy[0]
            .after
            .as_mut()
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(SECRET_FINGERPRINT);
        let swapped = vec![stored(&ci, "h-other"), table[1].clone()];
        assert_eq!(tokens_match_chain(&legacy, &swapped), Ok(2));
    }

    #[test]
    fn events_name_their_action_target_and_reasons() {
        let e = AuditEvent::GateDenied {
            model: "fraud".into(),
            version: 2,
            alias: None,
            promotion: false,
            reasons: vec!["r".into()],
            policy_sha256: None,
        };
        assert_eq!(
            (e.action(), e.target().as_str()),
            ("gate.denied", "model/fraud/version/2")
        );
        assert_eq!(e.after()["reasons"], json!(["r"]));
        let f = AuditEvent::AuthFailed {
            reason: "expired".into(),
            token: Some("oncall".into()),
            via: "ui",
            suppressed: 0,
        };
        assert_eq!(
            (f.action(), f.target().as_str()),
            ("auth.failed", "token/oncall")
        );
    }
}
