//! The registry through the real daemon: REST API, roles, bad input, the
//! audit chain, and the CLI.

use std::collections::BTreeSet;
use std::process::Command;

use modelwatch_client::{
    AuditQuery, ModelQuery, NewModel, NewRecommendation, NewVersion, PageQuery, RecommendationKind,
    RecommendationQuery, RecommendationStatus, Severity, VersionQuery,
};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn readme_walkthrough_through_the_cli() {
    let d = Daemon::start();
    let run = |args: &[&str]| {
        let o = d.cli(args);
        assert!(
            o.status.success(),
            "modelwatch {args:?} failed:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    };
    run(&[
        "models",
        "create",
        "fraud-detector",
        "--owner",
        "risk-team",
        "--tag",
        "team=risk",
    ]);
    let v1: Value = serde_json::from_str(&run(&[
        "versions",
        "create",
        "fraud-detector",
        "--source-uri",
        "s3://models/fraud/1",
        "--run-id",
        "run-1",
        "--metric",
        "auc=0.91",
        "--code-commit",
        "4f2a9c1",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["lineage"]["metrics"]["auc"], 0.91);
    run(&[
        "versions",
        "create",
        "fraud-detector",
        "--parent-version",
        "1",
    ]);
    run(&["aliases", "set", "fraud-detector", "production", "1"]);
    run(&[
        "aliases",
        "set",
        "fraud-detector",
        "production",
        "2",
        "--reason",
        "better auc",
    ]);
    let out = run(&[
        "aliases",
        "rollback",
        "fraud-detector",
        "production",
        "--reason",
        "latency regression",
    ]);
    assert!(out.contains("rolled back to version 1"), "{out}");
    let alias: Value = serde_json::from_str(&run(&[
        "aliases",
        "get",
        "fraud-detector",
        "production",
        "--json",
    ]))
    .unwrap();
    assert_eq!(alias["version"], 1);
    assert_eq!(alias["history"][0]["kind"], "rollback");
    assert_eq!(alias["history"][0]["reason"], "latency regression");

    let table = run(&["models", "list"]);
    assert!(
        table.contains("fraud-detector") && table.contains("production=1"),
        "{table}"
    );
    let audit = run(&["audit", "list", "--action", "alias.rollback"]);
    assert!(
        audit.contains("model/fraud-detector/alias/production"),
        "{audit}"
    );
    let verify = run(&["audit", "verify"]);
    assert!(verify.contains("audit chain intact"), "{verify}");
}

#[tokio::test]
async fn openapi_lists_every_route_and_every_listed_route_is_served() {
    let d = Daemon::start();
    let http = d.http();
    let (status, doc) = http.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let listed: BTreeSet<String> = openapi_operations(&http)
        .await
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            // A path parameter is a `{name}` of the path; listings'
            // `limit`, `cursor`, filters are query parameters.
            for p in operation["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default();
                let in_path = path.contains(&format!("{{{name}}}"));
                let declared_in = p["in"].as_str().unwrap_or_default();
                assert_eq!(
                    declared_in == "path",
                    in_path,
                    "{method} {path}: parameter {name:?} is declared in {declared_in}"
                );
            }
        }
    }
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
        "GET /api/v1/models",
        "POST /api/v1/models",
        "GET /api/v1/models/{model}",
        "PATCH /api/v1/models/{model}",
        "DELETE /api/v1/models/{model}",
        "PUT /api/v1/models/{model}/tags/{key}",
        "DELETE /api/v1/models/{model}/tags/{key}",
        "GET /api/v1/models/{model}/versions",
        "POST /api/v1/models/{model}/versions",
        "GET /api/v1/models/{model}/versions/{version}",
        "PATCH /api/v1/models/{model}/versions/{version}",
        "DELETE /api/v1/models/{model}/versions/{version}",
        "PUT /api/v1/models/{model}/versions/{version}/tags/{key}",
        "DELETE /api/v1/models/{model}/versions/{version}/tags/{key}",
        "POST /api/v1/models/{model}/versions/{version}/recommendations",
        "POST /api/v1/models/{model}/versions/{version}/inferences",
        "POST /api/v1/models/{model}/versions/{version}/reference",
        "POST /api/v1/models/{model}/versions/{version}/labels",
        "GET /api/v1/models/{model}/versions/{version}/artifacts",
        "POST /api/v1/models/{model}/versions/{version}/artifacts",
        "GET /api/v1/models/{model}/versions/{version}/artifacts/{path}",
        "PUT /api/v1/models/{model}/versions/{version}/artifacts/{path}",
        "POST /api/v1/models/{model}/versions/{version}/artifact-uploads",
        "GET /api/v1/models/{model}/versions/{version}/artifact-uploads/{id}",
        "PATCH /api/v1/models/{model}/versions/{version}/artifact-uploads/{id}",
        "DELETE /api/v1/models/{model}/versions/{version}/artifact-uploads/{id}",
        "GET /api/v1/models/{model}/aliases",
        "GET /api/v1/models/{model}/aliases/{alias}",
        "PUT /api/v1/models/{model}/aliases/{alias}",
        "DELETE /api/v1/models/{model}/aliases/{alias}",
        "POST /api/v1/models/{model}/aliases/{alias}/rollback",
        "GET /api/v1/recommendations",
        "GET /api/v1/recommendations/{id}",
        "POST /api/v1/recommendations/{id}/acknowledge",
        "POST /api/v1/recommendations/{id}/dismiss",
        "GET /api/v1/audit",
        "GET /api/v1/audit/verify",
        "GET /api/v1/cluster",
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{name}",
        "GET /api/v1/webhooks",
        "POST /api/v1/webhooks",
        "GET /api/v1/webhooks/{name}",
        "DELETE /api/v1/webhooks/{name}",
        "GET /api/v1/webhooks/{name}/deliveries",
        "POST /api/v1/webhooks/{name}/test",
        "POST /api/v1/write",
        "POST /api/v1/sql",
        "GET /api/v1/models/{model}/policy",
        "PUT /api/v1/models/{model}/policy",
        "DELETE /api/v1/models/{model}/policy",
        "GET /api/v1/policies",
        "POST /api/v1/evaluate",
        "POST /api/v1/alerts/alertmanager",
        "GET /api/v1/alerts",
        "GET /api/v1/models/{model}/gate-policy",
        "PUT /api/v1/models/{model}/gate-policy",
        "DELETE /api/v1/models/{model}/gate-policy",
        "POST /api/v1/models/{model}/versions/{version}/gate",
        "POST /api/v1/models/{model}/versions/{version}/promote",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        listed, expected,
        "the OpenAPI document and the route table differ"
    );

    // Every listed operation is really routed: without a token it answers
    // 401 (or 200 for the open health routes), never 404/405.
    let anonymous = http.with_token(None);
    for op in &listed {
        let (method, path) = op.split_once(' ').unwrap();
        let (status, reply) = anonymous
            .send(method, &concrete_path(path), body_for(method))
            .await;
        if path == "/healthz" || path == "/readyz" {
            assert_eq!(status, 200, "{op}");
        } else {
            assert_eq!(status, 401, "{op} without a token: {reply}");
            assert_eq!(reply["error"]["code"], "unauthenticated", "{op}");
        }
    }
}

#[tokio::test]
async fn roles_gate_every_kind_of_change() {
    let d = Daemon::start();
    let admin = d.http();
    let reader = admin.with_token(Some(&admin.token("dashboards", "reader").await));
    let ingest = admin.with_token(Some(&admin.token("servers", "ingest").await));
    let editor = admin.with_token(Some(&admin.token("ci", "editor").await));
    let approver = admin.with_token(Some(&admin.token("release-manager", "approver").await));

    editor.model_with_versions("m", 2).await;
    // Readers read and change nothing; ingest tokens cannot even read.
    assert_eq!(reader.get("/api/v1/models/m").await.0, 200);
    let (status, body) = reader.post("/api/v1/models", json!({"name": "x"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("permission_denied"))
    );
    assert_eq!(ingest.get("/api/v1/models").await.0, 403);
    // Editors move ordinary aliases but not protected ones.
    editor.put_alias("m", "staging", 1, 200).await;
    editor.put_alias("m", "production", 1, 403).await;
    approver.put_alias("m", "production", 1, 200).await;
    approver.put_alias("m", "production", 2, 200).await;
    // Rollback needs approver.
    editor
        .post_expect(
            "/api/v1/models/m/aliases/production/rollback",
            json!({}),
            403,
        )
        .await;
    let (status, alias) = approver
        .post(
            "/api/v1/models/m/aliases/production/rollback",
            json!({"reason": "p99"}),
        )
        .await;
    assert_eq!((status, alias["version"].as_i64()), (200, Some(1)));
    // Tokens are admin business; a revoked token stops working at once.
    assert_eq!(approver.get("/api/v1/tokens").await.0, 403);
    assert_eq!(admin.send("DELETE", "/api/v1/tokens/ci", None).await.0, 200);
    let (status, body) = editor.get("/api/v1/models").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, _) = admin
        .with_token(Some("mw_not_a_real_token"))
        .get("/api/v1/models")
        .await;
    assert_eq!(status, 401);

    // The audit log names who did what.
    let rollbacks = AuditQuery {
        action: Some("alias.rollback".into()),
        ..AuditQuery::default()
    };
    let log = admin.api().audit().list(&rollbacks).await.unwrap();
    assert_eq!(log.items[0].actor, "release-manager");
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    let d = Daemon::start_with(Start::args(&["--max-body-bytes", "4096"]));
    let http = d.http();
    http.post_expect("/api/v1/models", json!({"name": "m"}), 201)
        .await;
    let audit_len = http.audit_len().await;

    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/models",
            Some(json!({"name": "bad name!"})),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/api/v1/models",
            Some(json!({"name": "m"})),
            409,
            "already_exists",
        ),
        (
            "POST",
            "/api/v1/models",
            Some(json!({"name": "n", "colour": "red"})),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/api/v1/models",
            Some(json!({"name": 5})),
            400,
            "invalid_argument",
        ),
        ("GET", "/api/v1/models/nope", None, 404, "not_found"),
        ("GET", "/api/v1/models/m/versions/7", None, 404, "not_found"),
        (
            "GET",
            "/api/v1/models/m/versions/seven",
            None,
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/api/v1/models/nope/versions",
            Some(json!({})),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/models/m/versions",
            Some(json!({"artifact_digest": "md5:abc"})),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/api/v1/models/m/versions",
            Some(json!({"lineage": {"parent_version": 3}})),
            400,
            "invalid_argument",
        ),
        (
            "PUT",
            "/api/v1/models/m/aliases/production",
            Some(json!({"version": 1})),
            404,
            "not_found",
        ),
        (
            "PUT",
            "/api/v1/models/m/aliases/latest",
            Some(json!({"version": 1})),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/api/v1/models/m/aliases/production/rollback",
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/models?limit=0",
            None,
            400,
            "invalid_argument",
        ),
        (
            "GET",
            "/api/v1/models?cursor=zzz",
            None,
            400,
            "invalid_argument",
        ),
        (
            "GET",
            "/api/v1/models?colour=red",
            None,
            400,
            "invalid_argument",
        ),
        ("GET", "/api/v1/nowhere", None, 404, "not_found"),
        ("PATCH", "/api/v1/audit", None, 405, "method_not_allowed"),
        (
            "POST",
            "/api/v1/recommendations/99/dismiss",
            None,
            404,
            "not_found",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, reply) = http.send(method, path, body.clone()).await;
        assert_eq!(got, status, "{method} {path} {body:?}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{method} {path}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Malformed JSON, wrong content type, oversized body.
    let (status, reply) = http
        .raw(
            "POST",
            "/api/v1/models",
            "application/json",
            b"{\"name\": ".to_vec(),
        )
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, reply) = http
        .raw("POST", "/api/v1/models", "text/plain", b"{}".to_vec())
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let huge =
        serde_json::to_vec(&json!({"name": "big", "description": "x".repeat(10_000)})).unwrap();
    let (status, reply) = http
        .raw("POST", "/api/v1/models", "application/json", huge)
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    assert_eq!(
        http.audit_len().await,
        audit_len,
        "a rejected request wrote something"
    );
    let models = http
        .api()
        .models()
        .list(&ModelQuery::default())
        .await
        .unwrap();
    assert_eq!(models.items.len(), 1);
    assert_eq!(
        http.api().models().get("m").await.unwrap().latest_version,
        0
    );
}

#[tokio::test]
async fn fifty_concurrent_version_creations_are_numbered_one_to_fifty() {
    let d = Daemon::start();
    let http = d.http();
    http.post_expect("/api/v1/models", json!({"name": "busy"}), 201)
        .await;
    let replies = futures::future::join_all((0..50).map(|i| {
        let http = http.clone();
        async move {
            http.post(
                "/api/v1/models/busy/versions",
                json!({"run_id": format!("r{i}")}),
            )
            .await
        }
    }))
    .await;
    let mut numbers: Vec<i64> = replies
        .iter()
        .map(|(status, v)| {
            assert_eq!(*status, 201, "{v}");
            v["version"].as_i64().unwrap()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=50).collect::<Vec<_>>());
    // Listing pages through all of them in order.
    let mut seen = Vec::new();
    let mut query = VersionQuery {
        page: PageQuery::limit(20),
        ..VersionQuery::default()
    };
    loop {
        let page = http.api().versions("busy").list(&query).await.unwrap();
        seen.extend(page.items.iter().map(|v| v.version));
        match page.next_cursor {
            Some(c) => query.page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    let run_r7 = VersionQuery {
        run_id: Some("r7".into()),
        ..VersionQuery::default()
    };
    let filtered = http.api().versions("busy").list(&run_r7).await.unwrap();
    assert_eq!(filtered.items.len(), 1);
}

#[tokio::test]
async fn tampering_behind_the_daemons_back_is_named_by_audit_verify() {
    let d = Daemon::start();
    let http = d.http();
    http.post("/api/v1/models", json!({"name": "m"})).await;
    http.post("/api/v1/models/m/versions", json!({})).await;
    http.put("/api/v1/models/m/aliases/production", json!({"version": 1}))
        .await;
    let ok = d.cli(&["audit", "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // Entry 1 is the bootstrap token, 2 the model, 3 the version.
    let db = d.data_dir.join("registry.sqlite");
    let edit = Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3;")
        .output()
        .expect("sqlite3 must be installed (.ci/run installs it)");
    assert!(edit.status.success(), "{}", stderr(&edit));

    let broken = d.cli(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1), "{}", stdout(&broken));
    assert!(
        stdout(&broken).contains("BROKEN at entry 3"),
        "{}",
        stdout(&broken)
    );
    let json: Value =
        serde_json::from_str(&stdout(&d.cli(&["audit", "verify", "--json"]))).unwrap();
    assert_eq!(json["first_broken_seq"], 3);
    // The offline check reads the same file without the daemon.
    let offline = d.cli(&[
        "audit",
        "verify",
        "--data-dir",
        d.data_dir.to_str().unwrap(),
    ]);
    assert_eq!(offline.status.code(), Some(1));
    assert!(stdout(&offline).contains("BROKEN at entry 3"));
}

#[tokio::test]
async fn recommendations_can_be_raised_acknowledged_and_dismissed() {
    let d = Daemon::start();
    let http = d.http();
    let api = http.api();
    api.models().create(&NewModel::named("m")).await.unwrap();
    api.versions("m")
        .create(&NewVersion::default())
        .await
        .unwrap();
    let raise = json!({"kind": "retrain", "severity": "warning", "reason": "psi 0.31 on amount", "evidence": {"psi": 0.31}});
    let rec = http
        .post_expect(
            "/api/v1/models/m/versions/1/recommendations",
            raise.clone(),
            200,
        )
        .await;
    let raise_again = NewRecommendation {
        kind: RecommendationKind::Retrain,
        severity: Severity::Warning,
        reason: "psi 0.31 on amount".into(),
        evidence: json!({"psi": 0.31}),
    };
    let again = api.versions("m").recommend(1, &raise_again).await.unwrap();
    assert_eq!(
        json!(again.id),
        rec["id"],
        "one open recommendation per kind per version"
    );
    let version = api.versions("m").get(1).await.unwrap();
    assert_eq!(version.recommendations[0].kind, RecommendationKind::Retrain);
    let id = rec["id"].as_i64().unwrap();
    let (status, acked) = http
        .post(
            &format!("/api/v1/recommendations/{id}/acknowledge"),
            json!({}),
        )
        .await;
    assert_eq!((status, acked["status"].as_str()), (200, Some("open")));
    let o = d.cli(&[
        "recommendations",
        "dismiss",
        &id.to_string(),
        "--note",
        "seasonal",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dismissed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(dismissed["status"], "dismissed");
    assert_eq!(dismissed["resolution_note"], "seasonal");
    let (status, reply) = http
        .post(&format!("/api/v1/recommendations/{id}/dismiss"), json!({}))
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let open_only = RecommendationQuery {
        status: Some(RecommendationStatus::Open),
        ..RecommendationQuery::default()
    };
    let open = api.recommendations().list(&open_only).await.unwrap();
    assert!(open.items.is_empty());
}

#[tokio::test]
async fn tags_on_models_and_versions_filter_listings() {
    let d = Daemon::start();
    let http = d.http();
    let api = http.api();
    let mut gold_model = NewModel::named("a");
    gold_model.tags.insert("tier".into(), "gold".into());
    api.models().create(&gold_model).await.unwrap();
    api.models().create(&NewModel::named("b")).await.unwrap();
    let o = d.cli(&["tags", "set", "b", "tier", "silver"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tier_gold = ModelQuery {
        tags: vec![("tier".into(), "gold".into())],
        ..ModelQuery::default()
    };
    let gold = api.models().list(&tier_gold).await.unwrap();
    let names: Vec<_> = gold.items.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a"]);
    api.versions("b")
        .create(&NewVersion::default())
        .await
        .unwrap();
    let (status, tags) = http
        .put(
            "/api/v1/models/b/versions/1/tags/stage",
            json!({"value": "canary"}),
        )
        .await;
    assert_eq!((status, tags["stage"].as_str()), (200, Some("canary")));
    let canary = VersionQuery {
        tags: vec![("stage".into(), "canary".into())],
        ..VersionQuery::default()
    };
    let list = api.versions("b").list(&canary).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        http.send("DELETE", "/api/v1/models/b/versions/1/tags/stage", None)
            .await
            .0,
        200
    );
    assert_eq!(
        http.send("DELETE", "/api/v1/models/b/versions/1/tags/stage", None)
            .await
            .0,
        404
    );
}
