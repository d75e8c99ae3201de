//! MLflow REST compatibility: the real `mlflow` Python client
//! (`tests/python/mlflow_client.py`) drives `/api/2.0/mlflow/`, and the
//! records it leaves are checked through the native API and the audit chain.
//! Error shapes, authentication and bad input are checked over raw HTTP.

use std::collections::BTreeMap;

use modelwatch_client::{AuditQuery, PageQuery, Stage};
use serde_json::{Value, json};

use crate::support::*;

const MLFLOW: &str = "/api/2.0/mlflow";

/// Runs the MLflow client script with a token, returns what it printed.
async fn run_client(url: &str, token: &str) -> Value {
    let stdout = run_python_script(
        "mlflow_client.py",
        &[],
        &[
            ("MLFLOW_TRACKING_URI", url),
            ("MLFLOW_TRACKING_TOKEN", token),
            // A failing call must fail the test, not be retried for minutes.
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
        ],
    )
    .await;
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("script output {stdout:?}: {e}"))
}

#[tokio::test]
async fn mlflow_client_lands_in_the_native_registry_and_audit_chain() {
    let d = Daemon::start();
    let http = d.http();
    // An approver: moving a version to Production needs what moving the
    // protected `production` alias needs.
    let token = http.token("mlflow-ci", "approver").await;
    let seen = run_client(&d.url, &token).await;

    // What the client saw.
    assert_eq!(seen["default_experiment"], "0");
    assert_eq!(seen["missing_experiment"], Value::Null);
    let run_id = seen["run"]["id"].as_str().unwrap().to_string();
    assert_eq!(run_id.len(), 32);
    assert_eq!(seen["run"]["status"], "FINISHED");
    assert_eq!(seen["run"]["metrics"], json!({"auc": 0.93, "loss": 0.2}));
    assert_eq!(
        seen["run"]["params"],
        json!({"learning_rate": "0.01", "max_depth": "6"})
    );
    assert_eq!(seen["run"]["tags"]["dataset"], "cards-2026-10");
    assert_eq!(seen["run"]["tags"]["owner"], "risk-team");
    assert_eq!(
        seen["model"],
        json!({"name": "fraud", "description": "card fraud", "tags": {"team": "risk", "tier": "1"}})
    );
    assert_eq!(seen["created"]["status"], "READY");
    assert_eq!(seen["created"]["version"], "1");
    assert_eq!(seen["created"]["run_id"], run_id.as_str());
    assert_eq!(seen["version1"]["tags"], json!({"validated": "true"}));
    assert_eq!(seen["version1"]["description"], "first, reviewed");
    assert_eq!(seen["download_uri"], "s3://models/fraud/1");
    assert_eq!(seen["champion"]["version"], "1");
    assert_eq!(seen["champion"]["aliases"], json!(["champion"]));
    assert_eq!(seen["model_aliases"], json!({"champion": "1"}));
    assert_eq!(
        seen["stages"],
        json!({"1": "Archived", "2": "Production", "3": "Staging"})
    );
    assert_eq!(seen["latest_production"], json!(["2"]));
    assert_eq!(
        seen["latest_all"],
        json!([["Archived", "1"], ["Production", "2"], ["Staging", "3"]])
    );
    assert_eq!(seen["by_name"], json!(["1", "2", "3"]));
    assert_eq!(seen["by_run"], json!(["1"]));
    assert_eq!(seen["by_tag"], json!(["2"]));
    assert_eq!(seen["by_number"], json!(["1", "3"]));
    assert_eq!(seen["version_pages"], json!([["1", "2"], ["3"]]));
    assert_eq!(seen["model_search"], json!(["fraud", "fraud-shadow"]));
    assert_eq!(
        seen["model_pages"],
        json!([["churn", "fraud"], ["fraud-shadow"]])
    );
    assert_eq!(seen["renamed"], "fraud-canary");
    assert_eq!(
        seen["errors"],
        json!({
            "missing_model": "RESOURCE_DOES_NOT_EXIST",
            "duplicate_model": "RESOURCE_ALREADY_EXISTS",
            "missing_version": "RESOURCE_DOES_NOT_EXIST",
            "bad_filter": "INVALID_PARAMETER_VALUE",
            "param_change": "INVALID_PARAMETER_VALUE",
        })
    );

    // The same records through the native API.
    let model = http.get_expect("/api/v1/models/fraud", 200).await;
    assert_eq!(model["description"], "card fraud");
    assert_eq!(model["tags"], json!({"team": "risk", "tier": "1"}));
    assert_eq!(model["aliases"], json!({"champion": 1}));
    assert_eq!(model["latest_version"], 3);
    let api = http.api();
    let v1 = api.versions("fraud").get(1).await.unwrap();
    assert_eq!(v1.source_uri.as_deref(), Some("s3://models/fraud/1"));
    assert_eq!(v1.run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(v1.stage, Stage::Archived);
    assert_eq!(v1.created_by, "mlflow-ci");
    // The run became the version's lineage: its parameters and the latest
    // value of each metric.
    assert_eq!(
        v1.lineage.parameters,
        BTreeMap::from([
            ("learning_rate".to_string(), "0.01".to_string()),
            ("max_depth".to_string(), "6".to_string())
        ])
    );
    assert_eq!(
        v1.lineage.metrics,
        BTreeMap::from([("auc".to_string(), 0.93), ("loss".to_string(), 0.2)])
    );
    let alias = api.aliases("fraud").get("champion").await.unwrap();
    assert_eq!(alias.version, 1);
    assert_eq!(alias.updated_by, "mlflow-ci");
    let gone = api.aliases("fraud").get("challenger").await.unwrap_err();
    assert_eq!(gone.status(), Some(404), "the deleted alias is gone");
    let renamed = api.models().get("fraud-shadow").await.unwrap_err();
    assert_eq!(renamed.status(), Some(404), "renamed away");
    let deleted = api.models().get("fraud-canary").await.unwrap_err();
    assert_eq!(deleted.status(), Some(404), "deleted");

    // Every change is in the audit chain under the token's name.
    let by_ci = AuditQuery {
        page: PageQuery::limit(1000),
        actor: Some("mlflow-ci".into()),
        ..AuditQuery::default()
    };
    let audit = api.audit().list(&by_ci).await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .items
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str()))
        .collect();
    for expected in [
        ("experiment.create", "experiment/1"),
        ("run.create", &*format!("run/{run_id}")),
        ("run.log", &*format!("run/{run_id}")),
        ("run.update", &*format!("run/{run_id}")),
        ("model.create", "model/fraud"),
        ("model.update", "model/fraud"),
        ("model.tag.set", "model/fraud"),
        ("model.tag.delete", "model/fraud"),
        ("version.create", "model/fraud/version/1"),
        ("version.update", "model/fraud/version/1"),
        ("version.tag.set", "model/fraud/version/1"),
        ("version.tag.delete", "model/fraud/version/1"),
        ("alias.set", "model/fraud/alias/champion"),
        ("alias.delete", "model/fraud/alias/challenger"),
        ("version.stage", "model/fraud/version/1"),
        ("version.stage", "model/fraud/version/2"),
        ("version.stage", "model/fraud/version/3"),
        ("model.rename", "model/fraud-shadow"),
        ("version.delete", "model/fraud-canary/version/1"),
        ("model.delete", "model/fraud-canary"),
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} missing from {actions:?}"
        );
    }
    // Version 1 went None → Production, then was archived by version 2's move.
    let stage_moves: Vec<&Value> = audit
        .items
        .iter()
        .filter(|e| e.action == "version.stage" && e.target == "model/fraud/version/1")
        .map(|e| &e.after.as_ref().unwrap()["stage"])
        .collect();
    assert_eq!(stage_moves, [&json!("Production"), &json!("Archived")]);
    let verify = api.audit().verify().await.unwrap();
    assert!(verify.ok, "{verify:?}");
}

#[tokio::test]
async fn errors_have_mlflow_s_shape_and_change_nothing() {
    let d = Daemon::start();
    let http = d.http();
    http.post_expect(
        &format!("{MLFLOW}/registered-models/create"),
        json!({"name": "m"}),
        200,
    )
    .await;

    // Missing records: 404 RESOURCE_DOES_NOT_EXIST, never the native shape.
    for path in [
        "/registered-models/get?name=nope",
        "/model-versions/get?name=m&version=7",
        "/registered-models/alias?name=m&alias=champion",
        "/experiments/get-by-name?experiment_name=nope",
        "/experiments/get?experiment_id=42",
        "/runs/get?run_id=0123456789abcdef0123456789abcdef",
    ] {
        let (status, body) = http.get(&format!("{MLFLOW}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error_code"], "RESOURCE_DOES_NOT_EXIST", "{path}");
        assert!(
            body["message"].as_str().unwrap().contains("not found"),
            "{body}"
        );
    }
    // An unknown endpoint, or a known one with the wrong method.
    for (method, path) in [("GET", "/nothing/here"), ("PUT", "/registered-models/get")] {
        let (status, body) = http.send(method, &format!("{MLFLOW}{path}"), None).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error_code"], "ENDPOINT_NOT_FOUND");
    }
    // Already there: 400, not the native 409.
    let (status, body) = http
        .post(
            &format!("{MLFLOW}/registered-models/create"),
            json!({"name": "m"}),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS"))
    );

    // Bad input: 400 INVALID_PARAMETER_VALUE with what was wrong.
    let bad: [(&str, &str, Option<Value>, &str); 9] = [
        (
            "GET",
            "/model-versions/search?filter=name%20%3D%20",
            None,
            "filter",
        ),
        (
            "GET",
            "/model-versions/search?filter=name%20%3D%20%27a%27%20OR%20name%20%3D%20%27b%27",
            None,
            "AND",
        ),
        (
            "GET",
            "/registered-models/search?page_token=garbage",
            None,
            "page_token",
        ),
        (
            "GET",
            "/registered-models/search?max_results=5000",
            None,
            "max_results",
        ),
        (
            "GET",
            "/model-versions/search?order_by=sideways",
            None,
            "order_by",
        ),
        (
            "POST",
            "/model-versions/create",
            Some(json!({"name": "m"})),
            "source",
        ),
        (
            "POST",
            "/model-versions/transition-stage",
            Some(json!({"name": "m", "version": "1", "stage": "Shipped"})),
            "stage",
        ),
        (
            "POST",
            "/registered-models/alias",
            Some(json!({"name": "m", "alias": "a", "version": "one"})),
            "version",
        ),
        (
            "POST",
            "/runs/log-batch",
            Some(json!({"run_id": "x", "metrics": [{"key": "k"}]})),
            "value",
        ),
    ];
    for (method, path, body, mentions) in bad {
        let (status, reply) = http.send(method, &format!("{MLFLOW}{path}"), body).await;
        assert_eq!(status, 400, "{path}: {reply}");
        assert_eq!(reply["error_code"], "INVALID_PARAMETER_VALUE", "{path}");
        assert!(
            reply["message"].as_str().unwrap().contains(mentions),
            "{path}: {reply}"
        );
    }
    // Garbage, truncated and oversized bodies.
    for body in [&b"{\"name\": "[..], b"\xff\xfe\x00", b"[1,2]"] {
        let (status, reply) = http
            .raw(
                "POST",
                &format!("{MLFLOW}/registered-models/create"),
                "application/json",
                body.to_vec(),
            )
            .await;
        assert_eq!(status, 400, "{reply}");
        assert_eq!(reply["error_code"], "INVALID_PARAMETER_VALUE");
    }
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    // Its own client: the server answers 413 before reading the whole body
    // and closes that connection, which must not be reused by later requests.
    let once = Http {
        client: crate::support::http_client(),
        ..http.clone()
    };
    let (status, reply) = once
        .raw(
            "POST",
            &format!("{MLFLOW}/registered-models/create"),
            "application/json",
            huge.into_bytes(),
        )
        .await;
    assert_eq!(status, 413, "{reply}");
    assert!(reply["error_code"].is_string(), "{reply}");

    // Unauthenticated and under-privileged callers change nothing.
    let anon = http.with_token(None);
    let (status, body) = anon
        .get(&format!("{MLFLOW}/registered-models/get?name=m"))
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let reader = http.with_token(Some(&http.token("viewer", "reader").await));
    let (status, body) = reader
        .post(
            &format!("{MLFLOW}/registered-models/create"),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    let (status, _) = reader
        .get(&format!("{MLFLOW}/registered-models/get?name=m"))
        .await;
    assert_eq!(status, 200, "reading needs only reader");
    let editor = http.with_token(Some(&http.token("dev", "editor").await));
    let (status, _) = editor
        .post(
            &format!("{MLFLOW}/model-versions/create"),
            json!({"name": "m", "source": "s3://a"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = editor
        .post(
            &format!("{MLFLOW}/model-versions/transition-stage"),
            json!({"name": "m", "version": "1", "stage": "Production", "archive_existing_versions": false}),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    let (status, _) = editor
        .post(
            &format!("{MLFLOW}/model-versions/transition-stage"),
            json!({"name": "m", "version": "1", "stage": "Staging"}),
        )
        .await;
    assert_eq!(status, 200, "Staging is not protected");

    // Nothing above but the two creations, the tokens, the version and its
    // staging move reached the registry.
    let (_, models) = http.get("/api/v1/models").await;
    assert_eq!(models["items"].as_array().unwrap().len(), 1, "{models}");
    let (_, audit) = http.get("/api/v1/audit?limit=1000").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "token.create",
            "model.create",
            "token.create",
            "token.create",
            "version.create",
            "version.stage"
        ]
    );
}
