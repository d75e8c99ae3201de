//! Artifact garbage collection against the real daemon, with a grace period
//! and an interval of one second: a deleted version's own files leave the
//! disk, an aliased version keeps every file (also those it shares with the
//! deleted one), a model deleted and registered again starts with no files,
//! and `/metrics` counts the deletions. Every wait is for an observable
//! state (`wait_for`), never a fixed time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::*;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where the store keeps a content (`docs/artifacts.md`).
fn blob_path(data_dir: &Path, content: &[u8]) -> PathBuf {
    let hex = sha256_hex(content);
    data_dir.join(format!("artifacts/blobs/sha256/{}/{hex}", &hex[..2]))
}

fn manifest_path(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    data_dir.join(format!("artifacts/manifests/sha256/{}/{hex}", &hex[..2]))
}

async fn upload(http: &Http, model: &str, version: i64, path: &str, body: &[u8]) {
    let res = http
        .client
        .put(format!(
            "{}/api/v1/models/{model}/versions/{version}/artifacts/{path}",
            http.url
        ))
        .bearer_auth(http.token.as_deref().unwrap_or_default())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap());
}

async fn download(http: &Http, model: &str, version: i64, path: &str) -> (u16, Vec<u8>) {
    let res = http
        .client
        .get(format!(
            "{}/api/v1/models/{model}/versions/{version}/artifacts/{path}",
            http.url
        ))
        .bearer_auth(http.token.as_deref().unwrap_or_default())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.bytes().await.unwrap().to_vec())
}

/// The value of one series in the `/metrics` text.
/// Waits for a sweep to delete `path`.
async fn wait_until_gone(path: &Path, what: &str) {
    wait_for(Duration::from_secs(60), what, || {
        let path = path.to_path_buf();
        async move {
            if path.exists() {
                Err(format!("{path:?} still exists"))
            } else {
                Ok(())
            }
        }
    })
    .await;
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

/// A daemon whose sweeps run every second with a one-second grace.
fn sweeping_every_second() -> Daemon {
    Daemon::start_with(Start::args(&[
        "--artifact-gc-interval-seconds",
        "1",
        "--artifact-gc-grace-seconds",
        "1",
    ]))
}

#[tokio::test]
async fn a_deleted_versions_files_are_collected_and_an_aliased_versions_are_kept() {
    let d = sweeping_every_second();
    let http = d.http();
    http.model_with_versions("fraud", 2).await;
    let shared = b"a tokenizer both versions use".to_vec();
    let weights = |v: i64| format!("weights of version {v}").into_bytes();
    let mut digests = Vec::new();
    for v in [1, 2] {
        upload(&http, "fraud", v, "model/weights.bin", &weights(v)).await;
        upload(&http, "fraud", v, "model/tokenizer.json", &shared).await;
        let sealed = http
            .post_expect(
                &format!("/api/v1/models/fraud/versions/{v}/artifacts"),
                json!({}),
                200,
            )
            .await;
        assert_eq!(sealed["state"], "sealed", "{sealed}");
        digests.push(sealed["artifact_digest"].as_str().unwrap().to_string());
    }
    http.put_alias("fraud", "production", 1, 200).await;
    // The alias keeps version 1 from being deleted, and its files from
    // being collected.
    let (status, _) = http
        .send("DELETE", "/api/v1/models/fraud/versions/1", None)
        .await;
    assert_eq!(status, 409);
    let (status, body) = http
        .send("DELETE", "/api/v1/models/fraud/versions/2", None)
        .await;
    assert_eq!(status, 204, "{body}");

    let gone = blob_path(&d.data_dir, &weights(2));
    assert!(gone.exists(), "{gone:?} is there before the sweep");
    wait_until_gone(&gone, "version 2's own blob leaving the disk").await;

    // Version 2's manifest went too; version 1 keeps its manifest, its own
    // blob and the one both versions shared.
    assert!(!manifest_path(&d.data_dir, &digests[1]).exists());
    assert!(manifest_path(&d.data_dir, &digests[0]).exists());
    assert!(blob_path(&d.data_dir, &weights(1)).exists());
    assert!(blob_path(&d.data_dir, &shared).exists());
    assert_eq!(
        download(&http, "fraud", 1, "model/weights.bin").await,
        (200, weights(1))
    );
    assert_eq!(
        download(&http, "fraud", 1, "model/tokenizer.json").await,
        (200, shared.clone())
    );
    let listing = http
        .get_expect("/api/v1/models/fraud/versions/1/artifacts", 200)
        .await;
    assert_eq!(listing["state"], "sealed", "{listing}");
    assert_eq!(listing["artifact_digest"], digests[0].as_str());

    // The sweeps are counted, with what they deleted (a blob, a manifest
    // and version 2's tree, at least).
    let text = http.get_text("/metrics").await;
    assert!(
        metric(
            &text,
            "modelwatch_artifact_gc_runs_total{outcome=\"completed\"}"
        ) >= 2.0
    );
    assert_eq!(
        metric(
            &text,
            "modelwatch_artifact_gc_runs_total{outcome=\"failed\"}"
        ),
        0.0
    );
    assert!(metric(&text, "modelwatch_artifact_gc_deleted_total{kind=\"blob\"}") >= 1.0);
    assert!(
        metric(
            &text,
            "modelwatch_artifact_gc_deleted_total{kind=\"manifest\"}"
        ) >= 1.0
    );
    assert!(metric(&text, "modelwatch_artifact_gc_deleted_total{kind=\"tree\"}") >= 1.0);
    assert!(metric(&text, "modelwatch_artifact_gc_freed_bytes_total") >= weights(2).len() as f64);
    assert!(
        text.contains("modelwatch_duty_lease_held{duty=\"artifact_gc\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_model_deleted_with_unsealed_files_and_registered_again_starts_empty() {
    let d = sweeping_every_second();
    let http = d.http();
    http.model_with_versions("churn", 1).await;
    let draft = b"weights never sealed".to_vec();
    upload(&http, "churn", 1, "model.bin", &draft).await;
    let (status, body) = http.send("DELETE", "/api/v1/models/churn", None).await;
    assert_eq!(status, 204, "{body}");

    // The same name and number again: a new version, with no files.
    http.model_with_versions("churn", 1).await;
    let listing = http
        .get_expect("/api/v1/models/churn/versions/1/artifacts", 200)
        .await;
    assert_eq!(listing["state"], "open", "{listing}");
    assert_eq!(listing["files"], json!([]), "{listing}");
    let (status, _) = download(&http, "churn", 1, "model.bin").await;
    assert_eq!(status, 404);

    // The old version's upload is collected with its tree.
    let gone = blob_path(&d.data_dir, &draft);
    wait_until_gone(
        &gone,
        "the deleted model's unsealed upload leaving the disk",
    )
    .await;
    // The new version 1 works as any open version.
    upload(&http, "churn", 1, "model.bin", b"new weights").await;
    assert_eq!(
        download(&http, "churn", 1, "model.bin").await,
        (200, b"new weights".to_vec())
    );
}
