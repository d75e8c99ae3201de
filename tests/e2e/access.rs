//! The access matrix (issue 21): every operation of the OpenAPI document,
//! asked with every kind of bad credential, answers 401 and writes
//! nothing; and asked by a reader and by an ingest token, each gets what
//! `docs/api.md` documents — a reader changes nothing and never reads
//! tokens or webhooks, an ingest token only sends telemetry.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::oidc::{Provider, idp_args, rs256, token_claims};
use crate::support::*;

/// Reads a reader may not make: tokens and webhooks (admin), a resumable
/// upload in progress (editor: it is part of uploading).
const ABOVE_READER: [&str; 5] = [
    "/api/v1/tokens",
    "/api/v1/webhooks",
    "/api/v1/webhooks/{name}",
    "/api/v1/webhooks/{name}/deliveries",
    "/api/v1/models/{model}/versions/{version}/artifact-uploads/{id}",
];
/// Operations with a body a reader may call: they change nothing.
const READER_WRITES: [&str; 2] = [
    "POST /api/v1/sql",
    "POST /api/v1/models/{model}/versions/{version}/gate",
];
/// What an ingest token may do: send telemetry, nothing else.
const INGEST: [&str; 4] = [
    "POST /api/v1/write",
    "POST /api/v1/models/{model}/versions/{version}/inferences",
    "POST /api/v1/models/{model}/versions/{version}/reference",
    "POST /api/v1/models/{model}/versions/{version}/labels",
];
/// Operations open to anyone.
const OPEN: [&str; 2] = ["/healthz", "/readyz"];

#[tokio::test]
async fn every_operation_refuses_every_bad_credential_and_roles_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let idp = Provider::new(tmp.path());
    let d = Daemon::start_with(idp_args(&idp, tmp.path()));
    let admin = d.http();
    let reader = admin.with_token(Some(&admin.token("dash", "reader").await));
    let ingest = admin.with_token(Some(&admin.token("collector", "ingest").await));
    let revoked = admin.token("gone", "admin").await;
    let (status, reply) = admin.send("DELETE", "/api/v1/tokens/gone", None).await;
    assert!(matches!(status, 200 | 204), "{reply}");
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (status, created) = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "brief", "role": "admin", "expires_at": at}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let expiring = created["token"].as_str().unwrap().to_string();
    let mut stale_claims = token_claims("alice", &["ml-engineers"]);
    stale_claims["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let stale_jwt = idp.token(rs256(), stale_claims);
    let foreign_jwt =
        Provider::new(tmp.path()).token(rs256(), token_claims("alice", &["ml-admins"]));
    // The brief token has expired once it is refused.
    wait_for(Duration::from_secs(30), "the brief token to expire", || {
        let caller = admin.with_token(Some(&expiring));
        async move {
            match caller.get("/api/v1/models").await.0 {
                401 => Ok(()),
                status => Err(format!("still {status}")),
            }
        }
    })
    .await;

    let operations = openapi_operations(&admin).await;
    let before = admin.audit_len().await;
    let bad: [(&str, Option<&str>); 6] = [
        ("no token", None),
        ("an unknown token", Some("mw_not_a_token_of_this_registry")),
        ("a revoked token", Some(&revoked)),
        ("an expired token", Some(&expiring)),
        ("a JWT of another provider", Some(&foreign_jwt)),
        ("an expired JWT", Some(&stale_jwt)),
    ];
    for (method, path) in &operations {
        let url = concrete_path(path);
        for (what, credential) in &bad {
            let (status, reply) = admin
                .with_token(*credential)
                .send(method, &url, body_for(method))
                .await;
            if OPEN.contains(&path.as_str()) {
                assert_eq!(status, 200, "{method} {path} with {what}");
            } else {
                assert_eq!(status, 401, "{method} {path} with {what}: {reply}");
                assert_eq!(reply["error"]["code"], "unauthenticated", "{method} {path}");
            }
        }
    }
    assert_eq!(
        admin.audit_len().await,
        before,
        "a refused request wrote something"
    );

    // Roles: a role check comes before anything about the body, so an
    // empty object shows what each role may call.
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for (method, path) in &operations {
        if OPEN.contains(&path.as_str()) {
            continue;
        }
        let url = concrete_path(path);
        let reader_status = reader.send(method, &url, body_for(method)).await.0;
        let ingest_status = ingest.send(method, &url, body_for(method)).await.0;
        let op = format!("{method} {path}");
        let reader_refused = if method == "GET" {
            ABOVE_READER.contains(&path.as_str())
        } else {
            !READER_WRITES.contains(&op.as_str())
        };
        if reader_refused != (reader_status == 403) || reader_status == 401 {
            wrong.push(format!("reader: {op} gave {reader_status}"));
        }
        let ingest_refused = !INGEST.contains(&op.as_str());
        if ingest_refused != (ingest_status == 403) || ingest_status == 401 {
            wrong.push(format!("ingest: {op} gave {ingest_status}"));
        }
        seen.insert(method.clone());
    }
    assert!(wrong.is_empty(), "not as documented:\n{}", wrong.join("\n"));
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(
        admin.audit_len().await,
        before,
        "a refused request wrote something"
    );
}
