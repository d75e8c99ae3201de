//! A version's files: the real `mlflow` package logs and loads a
//! scikit-learn model through modelwatch (`tests/python/mlflow_log_model.py`),
//! and the native routes are driven with good and bad uploads over HTTP
//! (and raw TCP, for bodies that end early or a daemon killed mid-upload).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The manifest digest as docs/artifacts.md defines it, computed here
/// independently of the daemon: canonical JSON, files sorted by path.
fn manifest_digest(files: &BTreeMap<String, (u64, String)>) -> String {
    let entries: Vec<String> = files
        .iter()
        .map(|(path, (size, sha))| {
            format!(
                "{{\"path\":{},\"size\":{size},\"sha256\":\"sha256:{sha}\"}}",
                serde_json::to_string(path).unwrap()
            )
        })
        .collect();
    let doc = format!(
        "{{\"format\":\"modelwatch-artifacts-manifest/1\",\"files\":[{}]}}",
        entries.join(",")
    );
    format!("sha256:{}", sha256_hex(doc.as_bytes()))
}

fn listed_files(listing: &Value) -> BTreeMap<String, (u64, String)> {
    listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let sha = f["sha256"].as_str().unwrap();
            (
                f["path"].as_str().unwrap().to_string(),
                (
                    f["size"].as_u64().unwrap(),
                    sha.strip_prefix("sha256:").unwrap().to_string(),
                ),
            )
        })
        .collect()
}

async fn download(http: &Http, path: &str) -> (u16, Vec<u8>, Option<String>) {
    let res = http
        .client
        .get(format!("{}{path}", http.url))
        .bearer_auth(http.token.as_deref().unwrap_or_default())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let digest = res
        .headers()
        .get("x-content-sha256")
        .map(|v| v.to_str().unwrap().to_string());
    (status, res.bytes().await.unwrap().to_vec(), digest)
}

async fn upload(http: &Http, path: &str, body: Vec<u8>, sha: Option<&str>) -> (u16, Value) {
    let mut req = http
        .client
        .put(format!("{}{path}", http.url))
        .bearer_auth(http.token.as_deref().unwrap_or_default())
        .body(body);
    if let Some(sha) = sha {
        req = req.header("x-content-sha256", sha);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A `PUT` over raw TCP announcing `announced` bytes and sending `sent`
/// of them (what an HTTP client cannot be made to do): the connection
/// stays open for the caller to cut.
fn partial_put(d: &Daemon, path: &str, announced: usize, sent: usize) -> std::net::TcpStream {
    partial_request(d, "PUT", path, "", announced, &vec![9u8; sent])
}

/// [`partial_put`] with any method, extra header lines and the bytes sent.
fn partial_request(
    d: &Daemon,
    method: &str,
    path: &str,
    headers: &str,
    announced: usize,
    sent: &[u8],
) -> std::net::TcpStream {
    let addr = d.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n{headers}Content-Length: {announced}\r\n\r\n"
    )
    .unwrap();
    s.write_all(sent).unwrap();
    s.flush().unwrap();
    s
}

/// A `PATCH` of one chunk of a resumable upload.
async fn append_chunk(http: &Http, path: &str, offset: Option<u64>, chunk: &[u8]) -> (u16, Value) {
    let mut req = http
        .client
        .patch(format!("{}{path}", http.url))
        .bearer_auth(http.token.as_deref().unwrap_or_default())
        .body(chunk.to_vec());
    if let Some(offset) = offset {
        req = req.header("upload-offset", offset.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn mlflow_logs_a_sklearn_model_and_loads_it_back_through_models_uris() {
    let d = Daemon::start();
    let http = d.http();
    // An approver: the script points the protected `production` alias.
    let token = http.token("trainer", "approver").await;
    let stdout = run_python_script(
        "mlflow_log_model.py",
        &[],
        &[
            ("MLFLOW_TRACKING_URI", &d.url),
            ("MLFLOW_TRACKING_TOKEN", &token),
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
            ("MODEL_NAME", "fraud"),
        ],
    )
    .await;
    let last = stdout.lines().last().unwrap_or_default();
    let seen: Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("script output {stdout:?}: {e}"));

    // The model came back whole, by alias and by number.
    assert_eq!(seen["version"], "1");
    assert_eq!(seen["by_alias"], seen["original"], "{seen}");
    assert_eq!(seen["by_number"], seen["original"], "{seen}");
    assert_eq!(seen["probabilities_equal"], true, "{seen}");
    let model_id = seen["model_id"].as_str().unwrap();
    assert!(model_id.starts_with("m-"), "{seen}");
    assert_eq!(seen["source"], format!("models:/{model_id}"));

    // The version's files are sealed, and its digest is the manifest of
    // exactly the files MLflow uploaded and downloaded.
    let version = http
        .get_expect("/api/v1/models/fraud/versions/1", 200)
        .await;
    let listing = http
        .get_expect("/api/v1/models/fraud/versions/1/artifacts", 200)
        .await;
    assert_eq!(listing["state"], "sealed", "{listing}");
    assert_eq!(listing["artifact_digest"], version["artifact_digest"]);
    let files = listed_files(&listing);
    assert!(
        files.contains_key("MLmodel") && files.contains_key("requirements.txt"),
        "{listing}"
    );
    assert_eq!(
        Some(manifest_digest(&files).as_str()),
        version["artifact_digest"].as_str()
    );
    let mut downloaded: BTreeMap<String, String> =
        serde_json::from_value(seen["files"].clone()).unwrap();
    // MLflow adds this file on the client's side after downloading.
    downloaded.remove("registered_model_meta");
    let stored: BTreeMap<String, String> = files
        .iter()
        .map(|(p, (_, sha))| (p.clone(), sha.clone()))
        .collect();
    assert_eq!(downloaded, stored);

    // Registered again from the run (`runs:/<run>/model`): the same files,
    // so the same digest.
    assert_eq!(seen["from_run_version"], "2");
    let v2 = http
        .get_expect("/api/v1/models/fraud/versions/2", 200)
        .await;
    assert_eq!(v2["artifact_digest"], version["artifact_digest"]);

    // The native route serves the same bytes, with their digest.
    let (status, mlmodel, digest) =
        download(&http, "/api/v1/models/fraud/versions/1/artifacts/MLmodel").await;
    assert_eq!(status, 200);
    assert_eq!(sha256_hex(&mlmodel), files["MLmodel"].1);
    assert_eq!(digest, Some(format!("sha256:{}", files["MLmodel"].1)));
    assert!(String::from_utf8_lossy(&mlmodel).contains("sklearn"));

    // Sealed means fixed: neither an upload nor a second seal changes it.
    let (status, body) = upload(
        &http,
        "/api/v1/models/fraud/versions/1/artifacts/MLmodel",
        b"replaced".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "artifacts_sealed");
    let (status, _) = http
        .post("/api/v1/models/fraud/versions/1/artifacts", json!({}))
        .await;
    assert_eq!(status, 409);
    let again = http
        .get_expect("/api/v1/models/fraud/versions/1/artifacts", 200)
        .await;
    assert_eq!(again, listing);

    // Audited: the logged model, and the version with its digest.
    let audit = http.get_expect("/api/v1/audit?limit=200", 200).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"logged_model.create"), "{actions:?}");
    let created = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "version.create")
        .unwrap();
    assert_eq!(
        created["after"]["artifact_digest"],
        version["artifact_digest"]
    );
    assert_eq!(created["actor"], "trainer");
    assert_eq!(
        http.get_expect("/api/v1/audit/verify", 200).await["ok"],
        true
    );

    metadata_read_from_the_mlmodel_is_typed_queried_and_gated(&d, &version).await;
}

/// What MLflow's files say about the model becomes typed metadata: the
/// signature declares the features, SQL sees each section, and a gate
/// requiring a model card refuses the promotion until one is written.
async fn metadata_read_from_the_mlmodel_is_typed_queried_and_gated(d: &Daemon, version: &Value) {
    let http = d.http();
    let meta = &version["metadata"];
    assert_eq!(
        meta["flavors"],
        json!(["python_function", "sklearn"]),
        "{meta}"
    );
    let inputs: Vec<(&str, &str)> = meta["signature"]["inputs"]
        .as_array()
        .unwrap_or_else(|| panic!("no signature inputs: {meta}"))
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(inputs, [("amount", "double"), ("ratio", "double")]);
    assert_eq!(
        meta["input_example"]["columns"],
        json!(["amount", "ratio"]),
        "{meta}"
    );
    let requirements = meta["environment"]["requirements"].as_array().unwrap();
    assert!(
        requirements
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("scikit-learn")),
        "{meta}"
    );
    assert!(meta["environment"]["python_version"].is_string(), "{meta}");
    assert_eq!(
        version["features"],
        json!({"amount": "numeric", "ratio": "numeric"}),
        "the signature declares the features"
    );

    // SQL: a column per section, null when not declared.
    let rows = http
        .post_expect(
            "/api/v1/sql",
            json!({"sql": "SELECT version, flavors, model_card FROM versions WHERE model = 'fraud' ORDER BY version"}),
            200,
        )
        .await;
    assert_eq!(
        rows["rows"][0]["flavors"], "[\"python_function\",\"sklearn\"]",
        "{rows}"
    );
    assert_eq!(rows["rows"][0]["model_card"], Value::Null, "{rows}");

    // The files are fixed, so is what describes them; the card is not.
    let (status, body) = http
        .send(
            "PATCH",
            "/api/v1/models/fraud/versions/1",
            Some(json!({"metadata": {"signature": {"inputs": [], "outputs": []}}})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        error_message(&body).contains("model card can still be edited"),
        "{body}"
    );

    // A gate requiring a card and a signature: denied, then allowed once
    // the card is written with the CLI.
    http.put_example_gate("fraud", "model_card_and_signature.rego")
        .await;
    let gate = || async {
        http.post_expect(
            "/api/v1/models/fraud/versions/2/gate",
            json!({"alias": "champion"}),
            200,
        )
        .await
    };
    let denied = gate().await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(
        denied["reasons"]
            .to_string()
            .contains("the model card has no intended_use"),
        "{denied}"
    );
    assert_eq!(denied["input"]["metadata"]["flavors"][1], "sklearn");

    let dir = tempfile::tempdir().unwrap();
    let card = dir.path().join("card.yaml");
    std::fs::write(
        &card,
        "intended_use: Flagging card payments for review\nlimitations: Trained on six rows\n",
    )
    .unwrap();
    let out = d.cli(&[
        "versions",
        "update",
        "fraud",
        "2",
        "--model-card",
        card.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Trained on six rows"));
    let allowed = gate().await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let v2 = http
        .get_expect("/api/v1/models/fraud/versions/2", 200)
        .await;
    assert_eq!(
        v2["metadata"]["signature"],
        version["metadata"]["signature"]
    );
    assert_eq!(
        v2["metadata"]["model_card"]["limitations"],
        "Trained on six rows"
    );
    let garbage = dir.path().join("garbage.yaml");
    std::fs::write(&garbage, "intended_use: [unclosed\n").unwrap();
    let out = d.cli(&[
        "versions",
        "update",
        "fraud",
        "2",
        "--model-card",
        garbage.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.yaml"));
}

#[tokio::test]
async fn native_uploads_are_verified_confined_bounded_and_sealed_once() {
    let d = Daemon::start_with(Start::args(&["--max-artifact-file-bytes", "4096"]));
    let http = d.http();
    http.model_with_versions("churn", 2).await;
    let base = "/api/v1/models/churn/versions/1/artifacts";
    let weights = vec![7u8; 3000];
    let weights_sha = sha256_hex(&weights);

    // A good upload, then the same bytes back with their digest.
    let (status, body) = upload(
        &http,
        &format!("{base}/model/weights.bin"),
        weights.clone(),
        Some(&weights_sha),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sha256"], format!("sha256:{weights_sha}"));
    let (status, bytes, digest) = download(&http, &format!("{base}/model/weights.bin")).await;
    assert_eq!((status, bytes.len()), (200, 3000));
    assert_eq!(bytes, weights);
    assert_eq!(digest, Some(format!("sha256:{weights_sha}")));

    // Bad uploads: a clear 4xx, and nothing of them is kept.
    let wrong = sha256_hex(b"something else");
    // (path, body, declared sha256, status, error code)
    type Case<'a> = (String, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            format!("{base}/card.md"),
            b"# card".to_vec(),
            Some(wrong.as_str()),
            400,
            "digest_mismatch",
        ),
        (
            format!("{base}/card.md"),
            b"# card".to_vec(),
            Some("sha256:nothex"),
            400,
            "invalid_digest",
        ),
        (
            format!("{base}/..%2F..%2Fescape.txt"),
            b"x".to_vec(),
            None,
            400,
            "invalid_artifact_path",
        ),
        (
            format!("{base}/%2Fetc%2Fpasswd"),
            b"x".to_vec(),
            None,
            400,
            "invalid_artifact_path",
        ),
        (
            format!("{base}/a%5Cb.txt"),
            b"x".to_vec(),
            None,
            400,
            "invalid_artifact_path",
        ),
        (
            format!("{base}/big.bin"),
            vec![1u8; 5000],
            None,
            413,
            "payload_too_large",
        ),
        (
            format!("{base}/model/weights.bin/inner"),
            b"x".to_vec(),
            None,
            409,
            "conflict",
        ),
        (
            "/api/v1/models/churn/versions/9/artifacts/x".to_string(),
            b"x".to_vec(),
            None,
            404,
            "not_found",
        ),
    ];
    for (path, body, sha, want, code) in cases {
        let (status, reply) = upload(&http, &path, body, sha).await;
        assert_eq!(status, want, "{path}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{path}: {reply}");
    }
    // Reading needs a token; writing needs an editor.
    let reader = http.token("viewer", "reader").await;
    let as_reader = http.with_token(Some(&reader));
    let (status, _) = upload(&as_reader, &format!("{base}/r.txt"), b"x".to_vec(), None).await;
    assert_eq!(status, 403);
    let (status, _, _) = download(
        &http.with_token(Some("mw_wrong")),
        &format!("{base}/model/weights.bin"),
    )
    .await;
    assert_eq!(status, 401);

    // A body that ends before its Content-Length: 400, nothing kept.
    let mut s = partial_put(&d, &format!("{base}/partial.bin"), 2000, 500);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reply = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("truncated_upload"), "{reply}");
    assert!(
        files_under(&d.data_dir.join("artifacts/staging")).is_empty(),
        "the cut upload's staging file is dropped"
    );
    let listing = http.get_expect(base, 200).await;
    assert_eq!(listing["state"], "open");
    let files = listed_files(&listing);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["model/weights.bin"],
        "{listing}"
    );
    let blobs = files_under(&d.data_dir.join("artifacts/blobs"));
    assert_eq!(
        blobs.len(),
        1,
        "only the good upload's content is stored: {blobs:?}"
    );

    // Sealing: a wrong declared digest changes nothing; the right one
    // (computed by the client as documented) fixes the files.
    let (status, reply) = http
        .post(base, json!({"artifact_digest": format!("sha256:{wrong}")}))
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("digest_mismatch")),
        "{reply}"
    );
    assert_eq!(http.get_expect(base, 200).await["state"], "open");
    let expected = manifest_digest(&files);
    let sealed = http
        .post_expect(base, json!({"artifact_digest": expected}), 200)
        .await;
    assert_eq!(sealed["state"], "sealed");
    assert_eq!(sealed["artifact_digest"], expected.as_str());
    let v1 = http
        .get_expect("/api/v1/models/churn/versions/1", 200)
        .await;
    assert_eq!(v1["artifact_digest"], expected.as_str());
    let (status, _) = upload(&http, &format!("{base}/late.txt"), b"x".to_vec(), None).await;
    assert_eq!(status, 409);
    // Nothing uploaded: nothing to seal.
    let (status, reply) = http
        .post("/api/v1/models/churn/versions/2/artifacts", json!({}))
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("no_artifacts")),
        "{reply}"
    );
    let audit = http
        .get_expect("/api/v1/audit?action=version.artifacts_sealed", 200)
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(
        audit["items"][0]["after"]["artifact_digest"],
        expected.as_str()
    );

    // A version registered with the digest of files stored elsewhere.
    let external = http
        .post_expect(
            "/api/v1/models/churn/versions",
            json!({"source_uri": "s3://models/churn/3", "artifact_digest": format!("sha256:{}", "a".repeat(64))}),
            201,
        )
        .await;
    let path = format!(
        "/api/v1/models/churn/versions/{}/artifacts",
        external["version"]
    );
    assert_eq!(http.get_expect(&path, 200).await["state"], "external");
    let (status, reply) = http.get(&format!("{path}/MLmodel")).await;
    assert_eq!(status, 404);
    assert!(
        error_message(&reply).contains("s3://models/churn/3"),
        "{reply}"
    );
}

#[tokio::test]
async fn a_daemon_killed_mid_upload_leaves_no_half_file() {
    let root = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(root.path().join("data"), None, Start::default());
    let http = d.http();
    http.model_with_versions("m", 1).await;
    let base = "/api/v1/models/m/versions/1/artifacts";
    let (status, _) = upload(&http, &format!("{base}/kept.bin"), vec![3u8; 100], None).await;
    assert_eq!(status, 201);

    // 12 MiB announced, 6 MiB sent (more than one 5 MiB part of the
    // staging upload), then the daemon dies.
    let s = partial_put(&d, &format!("{base}/half.bin"), 12 << 20, 6 << 20);
    let data_dir = d.data_dir.clone();
    let staging = data_dir.join("artifacts/staging");
    wait_for(
        Duration::from_secs(20),
        "the upload to reach staging",
        || {
            let staging = staging.clone();
            async move {
                let bytes: u64 = files_under(&staging)
                    .iter()
                    .filter_map(|f| std::fs::metadata(f).ok())
                    .map(|m| m.len())
                    .sum();
                if bytes > 0 {
                    Ok(())
                } else {
                    Err("nothing staged yet".to_string())
                }
            }
        },
    )
    .await;
    d.kill9();
    drop(s);

    let d = Daemon::start_in(data_dir.clone(), None, Start::default());
    let http = d.http();
    let listing = http.get_expect(base, 200).await;
    let files = listed_files(&listing);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["kept.bin"], "{listing}");
    assert!(
        files_under(&data_dir.join("artifacts/staging")).is_empty(),
        "the unfinished upload is swept at start"
    );
    let (status, _, _) = download(&http, &format!("{base}/half.bin")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_cli_pushes_a_model_directory_seals_it_and_pulls_it_back() {
    let d = Daemon::start();
    let http = d.http();
    http.model_with_versions("ranker", 1).await;
    let work = tempfile::tempdir().unwrap();
    let model_dir = work.path().join("model");
    std::fs::create_dir_all(model_dir.join("weights")).unwrap();
    std::fs::write(
        model_dir.join("MLmodel"),
        "flavors:\n  python_function: {}\n",
    )
    .unwrap();
    std::fs::write(model_dir.join("weights/layer0.bin"), vec![5u8; 300_000]).unwrap();
    std::fs::write(
        model_dir.join("README.md"),
        "# ranker\nintended use: search",
    )
    .unwrap();

    let out = d.cli(&[
        "artifacts",
        "push",
        "--model",
        "ranker",
        "--version",
        "1",
        "--seal",
        "--json",
        // The 300 kB file goes in chunks, resumably.
        "--chunk-bytes",
        "100000",
        model_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pushed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(pushed["state"], "sealed", "{pushed}");
    let listing = http
        .get_expect("/api/v1/models/ranker/versions/1/artifacts", 200)
        .await;
    let files = listed_files(&listing);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["MLmodel", "README.md", "weights/layer0.bin"]
    );
    assert_eq!(pushed["artifact_digest"], manifest_digest(&files).as_str());
    assert_eq!(
        files["weights/layer0.bin"].1,
        sha256_hex(&vec![5u8; 300_000])
    );
    // Sealing read the MLmodel.
    let v1 = http
        .get_expect("/api/v1/models/ranker/versions/1", 200)
        .await;
    assert_eq!(
        v1["metadata"]["flavors"],
        json!(["python_function"]),
        "{v1}"
    );

    let out = d.cli(&["artifacts", "ls", "--model", "ranker", "--version", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("sealed") && text.contains("weights/layer0.bin"),
        "{text}"
    );

    let pulled = work.path().join("pulled");
    let out = d.cli(&[
        "artifacts",
        "pull",
        "--model",
        "ranker",
        "--version",
        "1",
        "--to",
        pulled.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for rel in ["MLmodel", "README.md", "weights/layer0.bin"] {
        assert_eq!(
            std::fs::read(pulled.join(rel)).unwrap(),
            std::fs::read(model_dir.join(rel)).unwrap(),
            "{rel}"
        );
    }
    // A sealed version refuses a second push, and says why.
    let out = d.cli(&[
        "artifacts",
        "push",
        "--model",
        "ranker",
        "--version",
        "1",
        model_dir.join("README.md").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("register a new version"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_resumable_upload_survives_a_broken_chunk_and_a_killed_daemon() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let d = Daemon::start_in(data_dir.clone(), None, Start::default());
    let http = d.http();
    http.model_with_versions("big", 2).await;
    let content: Vec<u8> = (0..3u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let sha = format!("sha256:{}", sha256_hex(&content));
    let uploads = "/api/v1/models/big/versions/1/artifact-uploads";
    let begun = http
        .post_expect(
            uploads,
            json!({"path": "model/weights.bin", "size": content.len(), "sha256": sha}),
            201,
        )
        .await;
    assert_eq!(begun["offset"], 0);
    let id = begun["id"].as_str().unwrap().to_string();
    let upload = format!("{uploads}/{id}");

    // The first MiB, acknowledged; nothing in the version yet.
    let (status, reply) = append_chunk(&http, &upload, Some(0), &content[..1 << 20]).await;
    assert_eq!(
        (status, &reply["offset"], &reply["complete"]),
        (200, &json!(1 << 20), &json!(false)),
        "{reply}"
    );
    let listing = http
        .get_expect("/api/v1/models/big/versions/1/artifacts", 200)
        .await;
    assert!(listed_files(&listing).is_empty(), "{listing}");

    // Bad chunks change nothing.
    let (status, reply) = append_chunk(&http, &upload, None, b"x").await;
    assert_eq!(status, 400, "{reply}");
    assert!(error_message(&reply).contains("upload-offset"), "{reply}");
    let (status, reply) = append_chunk(&http, &upload, Some(0), b"x").await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("offset_mismatch")),
        "{reply}"
    );
    assert!(
        error_message(&reply).contains("send the bytes from offset 1048576"),
        "{reply}"
    );

    // A chunk cut mid-way: what arrived is kept, and the offset says so.
    let sent = 300_000;
    let mut cut = partial_request(
        &d,
        "PATCH",
        &upload,
        "Upload-Offset: 1048576\r\n",
        1 << 20,
        &content[1 << 20..(1 << 20) + sent],
    );
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    cut.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reply = String::new();
    let _ = std::io::Read::read_to_string(&mut cut, &mut reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("truncated_upload"), "{reply}");
    let at = (1u64 << 20) + sent as u64;
    assert_eq!(http.get_expect(&upload, 200).await["offset"], at);

    // A daemon killed and started again: the upload is where it was.
    d.kill9();
    let d = Daemon::start_in(data_dir.clone(), None, Start::default());
    let http = d.http();
    let status = http.get_expect(&upload, 200).await;
    assert_eq!(
        (&status["offset"], &status["path"]),
        (&json!(at), &json!("model/weights.bin"))
    );
    let (code, done) = append_chunk(&http, &upload, Some(at), &content[at as usize..]).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["complete"], true, "{done}");
    assert_eq!(done["file"]["sha256"], sha.as_str());
    let (code, body, digest) = download(
        &http,
        "/api/v1/models/big/versions/1/artifacts/model/weights.bin",
    )
    .await;
    assert_eq!(code, 200);
    assert!(body == content, "the stored file is the bytes sent");
    assert_eq!(digest.as_deref(), Some(sha.as_str()));
    assert_eq!(http.get(&upload).await.0, 404, "a completed upload is gone");
    assert!(files_under(&data_dir.join("artifacts/uploads")).is_empty());

    // Bad uploads: refused, nothing kept.
    let other = "/api/v1/models/big/versions/2/artifact-uploads";
    let reply = http
        .post_expect(other, json!({"path": "huge.bin", "size": 1u64 << 40}), 413)
        .await;
    assert_eq!(reply["error"]["code"], "payload_too_large");
    for (body, code) in [
        (
            json!({"path": "../etc/passwd", "size": 1}),
            "invalid_artifact_path",
        ),
        (json!({"path": "/abs", "size": 1}), "invalid_artifact_path"),
        (
            json!({"path": "a", "size": 1, "sha256": "md5:00"}),
            "invalid_digest",
        ),
        (json!({"path": "a", "size": "one"}), "invalid_argument"),
    ] {
        let reply = http.post_expect(other, body, 400).await;
        assert_eq!(reply["error"]["code"], code, "{reply}");
    }
    let small = http
        .post_expect(
            other,
            json!({"path": "a.txt", "size": 3, "sha256": format!("sha256:{}", sha256_hex(b"abc"))}),
            201,
        )
        .await;
    let small_path = format!("{other}/{}", small["id"].as_str().unwrap());
    let (status, reply) = append_chunk(&http, &small_path, Some(0), b"abcd").await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{reply}"
    );
    assert_eq!(http.get_expect(&small_path, 200).await["offset"], 0);
    let (status, reply) = append_chunk(&http, &small_path, Some(0), b"abd").await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("digest_mismatch")),
        "{reply}"
    );
    assert_eq!(
        http.get(&small_path).await.0,
        404,
        "a mismatch discards the upload"
    );
    let listing = http
        .get_expect("/api/v1/models/big/versions/2/artifacts", 200)
        .await;
    assert!(listed_files(&listing).is_empty(), "{listing}");
    // An upload belongs to its version, ids are not paths.
    let aborted = http
        .post_expect(other, json!({"path": "b.txt", "size": 5}), 201)
        .await;
    let aborted_id = aborted["id"].as_str().unwrap();
    assert_eq!(http.get(&format!("{uploads}/{aborted_id}")).await.0, 404);
    assert_eq!(http.get(&format!("{other}/zz")).await.0, 404);
    let (status, _) = http
        .send("DELETE", &format!("{other}/{aborted_id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(http.get(&format!("{other}/{aborted_id}")).await.0, 404);
    // Sealed versions take no new uploads; readers begin none.
    http.post_expect("/api/v1/models/big/versions/1/artifacts", json!({}), 200)
        .await;
    let reply = http
        .post_expect(uploads, json!({"path": "late.bin", "size": 1}), 409)
        .await;
    assert_eq!(reply["error"]["code"], "artifacts_sealed");
    let reader = http.with_token(Some(&http.token("viewer", "reader").await));
    assert_eq!(
        reader.post(other, json!({"path": "r", "size": 1})).await.0,
        403
    );
    assert!(files_under(&data_dir.join("artifacts/uploads")).is_empty());
}

#[tokio::test]
async fn a_file_altered_on_disk_never_downloads_as_complete() {
    let d = Daemon::start();
    let http = d.http();
    http.model_with_versions("rot", 1).await;
    let path = "/api/v1/models/rot/versions/1/artifacts/weights.bin";
    let content: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 253) as u8).collect();
    let (status, _) = upload(&http, path, content.clone(), None).await;
    assert_eq!(status, 201);
    // Bit rot: one byte flipped in the stored content, length unchanged.
    let hex = sha256_hex(&content);
    let blob = d
        .data_dir
        .join(format!("artifacts/blobs/sha256/{}/{hex}", &hex[..2]));
    let mut stored = std::fs::read(&blob).unwrap();
    stored[content.len() - 10] ^= 0xff;
    std::fs::write(&blob, stored).unwrap();

    let res = http
        .client
        .get(format!("{}{path}", http.url))
        .bearer_auth(http.token.as_deref().unwrap_or_default())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "the check runs as it streams");
    assert_eq!(res.content_length(), Some(content.len() as u64));
    let body = res.bytes().await;
    assert!(
        body.is_err(),
        "the response must break off before its last byte, not end with {} bytes",
        body.map(|b| b.len()).unwrap_or_default()
    );
}
