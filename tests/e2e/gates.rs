//! Promotion gates through the real daemon: a Rego policy is compiled at
//! upload (a malformed one is refused with its line and nothing is stored),
//! a gate allows or denies over HTTP and through `modelwatch gate` (exit
//! code), `promote` moves an alias only when allowed and audits the
//! decision, roles apply, and the gate sees the version's latest
//! `drift_results` evaluation.

use modelwatch_client::{AuditEntry, AuditQuery, PageQuery};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

fn example(name: &str) -> String {
    let path = format!("{}/../policies/gates/{name}", manifest_dir());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `fraud` v1 passes `combined.rego` (auc 0.91, lineage, MIT); v2 does not
/// (auc 0.70).
async fn two_versions(admin: &Http) {
    admin
        .post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;
    for auc in [0.91, 0.70] {
        let body = json!({
            "lineage": {
                "metrics": {"auc": auc},
                "code_commit": "4f248b6",
                "training_data": [{"uri": "s3://data/train.parquet",
                                   "digest": format!("sha256:{}", "a".repeat(64))}]
            },
            "tags": {"license": "MIT"}
        });
        admin
            .post_expect("/api/v1/models/fraud/versions", body, 201)
            .await;
    }
}

async fn gate_audit(admin: &Http) -> Vec<AuditEntry> {
    let query = AuditQuery {
        page: PageQuery::limit(1000),
        target_prefix: Some("model/fraud/gate-policy".into()),
        ..AuditQuery::default()
    };
    admin.api().audit().list(&query).await.unwrap().items
}

#[tokio::test]
async fn policies_are_checked_at_upload_and_gates_decide_promotions() {
    // A body limit above the 64 KiB policy limit, small enough to exceed.
    let d = Daemon::start_with(Start::args(&["--max-body-bytes", "200000"]));
    let admin = d.http();
    let approver_token = admin.token("release", "approver").await;
    let approver = admin.with_token(Some(&approver_token));
    let editor = admin.with_token(Some(&admin.token("ci", "editor").await));
    let reader = admin.with_token(Some(&admin.token("dash", "reader").await));
    two_versions(&admin).await;
    let path = "/api/v1/models/fraud/gate-policy";

    // Malformed Rego: 400 naming the line, nothing stored, nothing audited.
    let broken = "package modelwatch.gate\n\ndeny contains msg if {\n    msg := \n}\n";
    let (status, body) = approver.raw("PUT", path, "text/plain", broken.into()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_policy");
    let message = error_message(&body);
    assert!(message.contains("gate.rego:4:9"), "{message}");
    assert!(message.contains("nothing was stored"), "{message}");
    // Wrong package and a policy without `deny`, as JSON this time.
    for (rego, needle) in [
        (
            "package other\ndeny contains \"x\" if false\n",
            "package modelwatch.gate",
        ),
        ("package modelwatch.gate\nallow if true\n", "no `deny` rule"),
    ] {
        let body = approver.put_expect(path, json!({"rego": rego}), 400).await;
        assert!(error_message(&body).contains(needle), "{body}");
    }
    let (status, body) = approver.raw("PUT", path, "image/png", b"x".to_vec()).await;
    assert_eq!(status, 415, "{body}");
    // Garbage and oversized bodies.
    let (status, body) = approver
        .raw("PUT", path, "text/plain", vec![0xff, 0xfe, 0x00])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("UTF-8"), "{body}");
    let body = approver.put_expect(path, json!({"rego": 42}), 400).await;
    assert_eq!(body["error"]["code"], "malformed_json");
    let big = format!("package modelwatch.gate\n{}", "# pad\n".repeat(20_000));
    let (status, body) = approver.raw("PUT", path, "text/plain", big.into()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("at most 65536 bytes"),
        "{body}"
    );
    let (status, body) = approver
        .raw("PUT", path, "text/plain", vec![b'#'; 300_000])
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(reader.get(path).await.0, 404);
    assert!(gate_audit(&admin).await.is_empty());

    // Only an approver sets the gate.
    let combined = example("combined.rego");
    let (status, body) = editor
        .raw("PUT", path, "text/plain", combined.clone().into())
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, stored) = approver
        .raw("PUT", path, "text/plain", combined.clone().into())
        .await;
    assert_eq!(status, 200, "{stored}");
    let sha = hex::encode(Sha256::digest(combined.as_bytes()));
    assert_eq!(stored["sha256"], sha);
    assert_eq!(stored["updated_by"], "release");
    let got = reader.api().gate_policies().get("fraud").await.unwrap();
    assert_eq!(got.rego, combined);

    // The gate over HTTP: 200 either way, readers may ask.
    let allowed = reader
        .post_expect(
            "/api/v1/models/fraud/versions/1/gate",
            json!({"alias": "production"}),
            200,
        )
        .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(allowed["policy_sha256"], sha);
    assert_eq!(allowed["input"]["metrics"]["auc"], 0.91);
    assert_eq!(allowed["input"]["alias"], "production");
    assert_eq!(allowed["input"]["version"]["tags"]["license"], "MIT");
    assert_eq!(allowed["input"]["drift"], Value::Null);
    assert_eq!(
        allowed["warnings"],
        json!(["the version has never been evaluated for drift"])
    );
    let (status, denied) = reader
        .send("POST", "/api/v1/models/fraud/versions/2/gate", None)
        .await;
    assert_eq!(status, 200, "{denied}");
    assert_eq!(denied["allowed"], false);
    assert_eq!(
        denied["reasons"],
        json!(["evaluation metric \"auc\" is 0.7, below the minimum 0.8"])
    );
    assert_eq!(denied["input"]["alias"], Value::Null);
    reader
        .post_expect("/api/v1/models/fraud/versions/9/gate", json!({}), 404)
        .await;
    reader
        .post_expect(
            "/api/v1/models/fraud/versions/1/gate",
            json!({"alias": "latest"}),
            400,
        )
        .await;
    let (status, body) = reader
        .raw(
            "POST",
            "/api/v1/models/fraud/versions/1/gate",
            "application/json",
            b"{\"alias\":".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // The gate through the CLI: exit 0 allowed, 1 denied.
    let out = d.cli_line_as(
        &approver_token,
        "gate --model fraud --version 1 --alias production",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ALLOWED model fraud version 1 for alias production"),
        "{}",
        stdout(&out)
    );
    let out = d.cli(&["gate", "--model", "fraud", "--version", "2", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["allowed"], false);
    let out = d.cli(&["gate", "--model", "fraud", "--version", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("DENIED"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("  - evaluation metric \"auc\" is 0.7"),
        "{}",
        stdout(&out)
    );

    // Promotion: the alias's role first, then the gate.
    let promote = |v: i64| format!("/api/v1/models/fraud/versions/{v}/promote");
    editor
        .post_expect(&promote(1), json!({"alias": "production"}), 403)
        .await;
    reader
        .post_expect(&promote(1), json!({"alias": "staging"}), 403)
        .await;
    let body = approver
        .post_expect(
            &promote(2),
            json!({"alias": "production", "reason": "ci"}),
            409,
        )
        .await;
    assert_eq!(body["error"]["code"], "gate_denied");
    let message = error_message(&body);
    assert!(message.contains("below the minimum 0.8"), "{message}");
    assert!(message.contains("nothing was moved"), "{message}");
    // Denials are on the record: the reader's and the CLI's gate checks
    // and the refused promotion (by the approver), each with its reasons.
    let denials = AuditQuery {
        page: PageQuery::limit(1000),
        action: Some("gate.denied".into()),
        ..AuditQuery::default()
    };
    let denied = admin.api().audit().list(&denials).await.unwrap().items;
    let who: Vec<_> = denied
        .iter()
        .map(|e| {
            let after = e.after.as_ref().unwrap();
            (
                e.actor.as_str(),
                e.target.as_str(),
                after["promotion"].as_bool(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("dash", "model/fraud/version/2", Some(false)),
            ("bootstrap-admin", "model/fraud/version/2", Some(false)),
            ("bootstrap-admin", "model/fraud/version/2", Some(false)),
            ("release", "model/fraud/version/2", Some(true)),
        ]
    );
    let last = denied[3].after.as_ref().unwrap();
    assert_eq!(last["alias"], "production");
    assert!(
        last["reasons"][0]
            .as_str()
            .unwrap()
            .contains("below the minimum 0.8"),
        "{last}"
    );
    assert_eq!(
        reader
            .get("/api/v1/models/fraud/aliases/production")
            .await
            .0,
        404
    );

    let promoted = approver
        .post_expect(
            &promote(1),
            json!({"alias": "production", "reason": "release 1"}),
            200,
        )
        .await;
    assert_eq!(promoted["alias"]["version"], 1);
    assert_eq!(promoted["gate"]["allowed"], true);
    let alias = reader
        .api()
        .aliases("fraud")
        .get("production")
        .await
        .unwrap();
    assert_eq!(alias.version, 1);
    let alias_sets = AuditQuery {
        page: PageQuery::limit(1000),
        action: Some("alias.set".into()),
        ..AuditQuery::default()
    };
    let moves = admin.api().audit().list(&alias_sets).await.unwrap();
    let entry = moves.items.last().unwrap().clone();
    assert_eq!(entry.actor, "release");
    let after = entry.after.unwrap();
    assert_eq!(after["version"], 1);
    assert_eq!(after["reason"], "release 1");
    assert_eq!(after["gate"]["policy_sha256"], sha);

    // Through the CLI, a denied promotion fails with the reasons and moves nothing.
    let out = d.cli_line_as(
        &approver_token,
        "promote --model fraud --version 2 --alias production",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("below the minimum 0.8"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        reader
            .get("/api/v1/models/fraud/aliases/production")
            .await
            .1["version"],
        1
    );

    // The CLI uploads a policy file; a malformed one is refused with its line.
    let set_policy = |file: &std::path::Path| {
        let file = file.to_str().unwrap();
        d.cli_as(
            &approver_token,
            &["gate-policy", "set", "--model", "fraud", file],
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.rego");
    std::fs::write(&file, broken).unwrap();
    let out = set_policy(&file);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("gate.rego:4:9"), "{}", stderr(&out));
    let file = dir.path().join("min_metric.rego");
    std::fs::write(&file, example("min_metric.rego")).unwrap();
    let out = set_policy(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d.cli(&["gate-policy", "get", "--model", "fraud"]);
    assert_eq!(
        stdout(&out).trim_end(),
        example("min_metric.rego").trim_end()
    );
    // min_metric.rego also wants a recall metric, which neither version has.
    let out = d.cli(&["gate", "--model", "fraud", "--version", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("\"recall\" is missing"),
        "{}",
        stdout(&out)
    );

    // Without a policy every version passes, with a warning.
    assert_eq!(editor.send("DELETE", path, None).await.0, 403);
    let out = d.cli_line_as(&approver_token, "gate-policy delete --model fraud");
    assert!(out.status.success(), "{}", stderr(&out));
    let report = reader.api().versions("fraud").gate(2, None).await.unwrap();
    assert!(report.allowed);
    assert_eq!(report.policy_sha256, None);
    assert!(
        report.warnings[0].contains("has no gate policy"),
        "{report:?}"
    );

    // Every change is audited with what it replaced.
    let audit = gate_audit(&admin).await;
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["gate_policy.set", "gate_policy.set", "gate_policy.delete"]
    );
    assert_eq!(audit[1].before.as_ref().unwrap()["sha256"], sha);
    assert_eq!(
        audit[1].after.as_ref().unwrap()["rego"],
        example("min_metric.rego")
    );
    assert!(admin.api().audit().verify().await.unwrap().ok);
}

#[tokio::test]
async fn the_gate_sees_the_latest_drift_evaluation() {
    let d = Daemon::start();
    let admin = d.http();
    crate::monitoring::drifting_fraud_model(
        &admin,
        json!({"current_window": "1h", "min_rows": 100}),
    )
    .await;
    admin
        .post_expect("/api/v1/models/fraud/versions", json!({}), 201)
        .await;
    admin
        .post_expect("/api/v1/evaluate", json!({"model": "fraud"}), 200)
        .await;
    let rego = r#"package modelwatch.gate

deny contains msg if {
    input.drift.dataset_drift
    msg := sprintf("drift in %v (%v seconds ago)", [input.drift.drifted_features, input.drift.age_seconds])
}

deny contains "never evaluated for drift" if input.drift == null
"#;
    let (status, body) = admin
        .raw(
            "PUT",
            "/api/v1/models/fraud/gate-policy",
            "text/plain",
            rego.into(),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let report = admin.api().versions("fraud").gate(1, None).await.unwrap();
    assert!(!report.allowed, "{report:?}");
    let drift = &report.input["drift"];
    let newest = sql(
        &admin,
        "SELECT evaluation_id, drifted_share FROM drift_results \
         WHERE model = 'fraud' AND version = '1' ORDER BY ts DESC LIMIT 1",
    )
    .await["rows"][0]
        .clone();
    assert_eq!(drift["evaluation_id"], newest["evaluation_id"], "{drift}");
    assert_eq!(drift["drifted_share"], newest["drifted_share"]);
    assert_eq!(drift["dataset_drift"], true);
    assert_eq!(drift["drifted_features"], json!(["amount"]));
    assert_eq!(drift["features"]["amount"]["drifted"], true);
    assert_eq!(drift["features"]["country"]["drifted"], false);
    assert!(drift["features"]["amount"]["statistic"].as_f64().unwrap() > 0.0);
    let age = drift["age_seconds"].as_i64().unwrap();
    assert!((0..600).contains(&age), "{age}");
    assert!(
        report.reasons[0].starts_with("drift in [\"amount\"]"),
        "{report:?}"
    );

    // Version 2 was never evaluated.
    let report = admin.api().versions("fraud").gate(2, None).await.unwrap();
    assert_eq!(report.input["drift"], Value::Null);
    assert_eq!(report.reasons, ["never evaluated for drift"]);
}
