//! Anchored audit (issue 21, item 4): the daemon signs checkpoints of the
//! chain head into a directory; `audit verify --anchors` then catches what
//! the chain alone cannot — its newest entries deleted, or an entry edited
//! and every hash after it recomputed — and a token's role changed in the
//! `tokens` table is caught by the chain itself. Refused credentials and
//! denied gates are on the record too (the latter in `gates.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use modelwatch_client::{AuditQuery, PageQuery};
use modelwatch_registry::audit::{canonical_entry, chain_hash, format_time};
use modelwatch_registry::prelude::*;
use modelwatch_registry::{AuditFilter, PageRequest, SqliteStore};

use crate::support::*;

/// `modelwatch audit keygen --out DIR/anchor-key`: the key and its `.pub`.
fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("anchor-key");
    let out = Command::new(binary())
        .args(["audit", "keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ed25519:"), "{}", stdout(&out));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the private key is readable by others");
    // Never overwritten.
    let again = Command::new(binary())
        .args(["audit", "keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("never overwritten"),
        "{}",
        stderr(&again)
    );
    (key.clone(), dir.join("anchor-key.pub"))
}

fn anchoring(anchors: &Path, key: &Path) -> Start {
    Start::args(&[
        "--audit-anchor-dir",
        anchors.to_str().unwrap(),
        "--audit-signing-key",
        key.to_str().unwrap(),
        "--audit-anchor-every-entries",
        "2",
        "--audit-anchor-interval-seconds",
        "1",
    ])
}

/// The newest entry anchored in `dir`, from its files.
fn newest_anchored(dir: &Path) -> i64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let text = std::fs::read_to_string(e.ok()?.path()).ok()?;
                    serde_json::from_str::<Value>(&text).ok()?["seq"].as_i64()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Whether the exposition holds this sample line exactly (not a HELP text
/// that happens to contain it).
fn has_sample(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

async fn head_seq(http: &Http) -> i64 {
    let query = AuditQuery {
        page: PageQuery::limit(1000),
        ..AuditQuery::default()
    };
    let page = http.api().audit().list(&query).await.unwrap();
    page.items.last().map(|e| e.seq).unwrap_or(0)
}

/// Runs SQL on a registry file with Debian's `sqlite3`.
fn sqlite(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 must be installed (.ci/run installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A copy of the registry files of `data` in a new directory.
fn copy_registry(data: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("registry.sqlite") {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
    to.to_path_buf()
}

/// `modelwatch audit verify --data-dir DIR [--anchors A --public-key P]`.
fn verify(data: &Path, anchors: Option<(&Path, &Path)>) -> (Option<i32>, String) {
    let mut args = vec![
        "audit".to_string(),
        "verify".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    if let Some((dir, public)) = anchors {
        args.extend([
            "--anchors".into(),
            dir.display().to_string(),
            "--public-key".into(),
            public.display().to_string(),
        ]);
    }
    let out = Command::new(binary()).args(&args).output().unwrap();
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// Edits entry `from`'s actor and recomputes every hash after it, as an
/// attacker with the database file and the chain format would.
async fn rewrite_chain_from(db: &Path, from: i64) {
    let store = SqliteStore::open(db).await.unwrap();
    let entries = store
        .list_audit(
            &AuditFilter::default(),
            &PageRequest {
                limit: PageRequest::MAX_LIMIT,
                cursor: None,
            },
        )
        .await
        .unwrap()
        .items;
    store.close().await;
    let mut prev = entries[(from - 2) as usize].hash.clone();
    let mut sql = String::from("BEGIN;");
    for e in entries.iter().filter(|e| e.seq >= from) {
        let actor = if e.seq == from { "mallory" } else { &e.actor };
        let canonical = canonical_entry(
            e.seq,
            &format_time(e.at),
            actor,
            &e.action,
            &e.target,
            e.before.as_ref(),
            e.after.as_ref(),
        );
        let hash = chain_hash(&prev, &canonical);
        sql.push_str(&format!(
            "UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', hash = '{hash}' WHERE seq = {};",
            e.seq
        ));
        prev = hash;
    }
    sql.push_str("COMMIT;");
    sqlite(db, &sql);
}

#[tokio::test]
async fn anchors_catch_truncation_and_a_rehashed_rewrite_that_the_chain_alone_misses() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let anchors = tmp.path().join("anchors");
    let data = tmp.path().join("data");
    let d = Daemon::start_in(data.clone(), None, anchoring(&anchors, &key));
    let http = d.http();
    http.token("ci", "editor").await;
    http.post_expect("/api/v1/models", json!({"name": "m"}), 201)
        .await;
    for _ in 0..4 {
        http.post_expect("/api/v1/models/m/versions", json!({}), 201)
            .await;
    }
    let head = head_seq(&http).await;
    assert_eq!(head, 7, "bootstrap token, ci token, model, four versions");
    let anchored = wait_for(Duration::from_secs(30), "the head to be anchored", || {
        let anchors = anchors.clone();
        async move {
            let n = newest_anchored(&anchors);
            if n == head {
                Ok(n)
            } else {
                Err(format!("newest anchor covers {n}"))
            }
        }
    })
    .await;
    let metrics = http.get_text("/metrics").await;
    assert!(
        has_sample(
            &metrics,
            &format!("modelwatch_audit_anchored_seq {anchored}")
        ),
        "{metrics}"
    );
    assert!(has_sample(&metrics, "modelwatch_audit_anchor_failing 0"));
    // The daemon checks its own anchors: the API, the CLI and the UI say so.
    let v = http.get_expect("/api/v1/audit/verify", 200).await;
    assert_eq!(v["anchors"]["ok"], true, "{v}");
    assert_eq!(v["anchors"]["newest_anchored_seq"], anchored, "{v}");
    let out = d.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("anchors: "), "{}", stdout(&out));
    let mut ui = crate::ui::Session::new(&d.url);
    ui.login(TOKEN).await;
    let (_, _, page) = ui.get("/ui/audit?verify=now").await;
    assert!(page.contains("The signed anchors match"), "{page}");
    let (status, _) = d.terminate();
    assert!(status.success());

    // Intact: the chain, the tokens and the anchors agree.
    let (code, out) = verify(&data, Some((&anchors, &public)));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 tokens match the chain"), "{out}");
    assert!(out.contains("the newest covers entry 7"), "{out}");

    // The two newest entries deleted: the chain alone still verifies…
    let truncated = copy_registry(&data, &tmp.path().join("truncated"));
    sqlite(
        &truncated.join("registry.sqlite"),
        "DELETE FROM audit_log WHERE seq > 5;",
    );
    let (code, out) = verify(&truncated, None);
    assert_eq!(code, Some(0), "the gap anchors close: {out}");
    // …the anchors do not.
    let (code, out) = verify(&truncated, Some((&anchors, &public)));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the chain ends at entry 5") && out.contains("were deleted"),
        "{out}"
    );

    // Entry 3 edited and every hash after it recomputed: the chain alone
    // verifies, the anchors name where.
    let rewritten = copy_registry(&data, &tmp.path().join("rewritten"));
    rewrite_chain_from(&rewritten.join("registry.sqlite"), 3).await;
    let (code, out) = verify(&rewritten, None);
    assert_eq!(code, Some(0), "the gap anchors close: {out}");
    let (code, out) = verify(&rewritten, Some((&anchors, &public)));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the chain was rewritten from an entry between"),
        "{out}"
    );
    let (_, json_out) = {
        let out = Command::new(binary())
            .args([
                "audit",
                "verify",
                "--json",
                "--data-dir",
                rewritten.to_str().unwrap(),
                "--anchors",
                anchors.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (out.status.code(), stdout(&out))
    };
    let report: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(report["ok"], true, "the chain itself verifies");
    assert_eq!(report["anchors"]["ok"], false);
    assert!(report["anchors"]["first_broken_seq"].as_i64().unwrap() >= 3);
    assert!(
        report["anchors"]["warning"]
            .as_str()
            .unwrap()
            .contains("--public-key")
    );

    // A forged anchor, or one signed by another key, is refused.
    let (_, stranger) = keygen(&tmp.path().join("other"));
    let (code, out) = verify(&data, Some((&anchors, &stranger)));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not by the given public key"), "{out}");

    // A token's role raised in the table: the chain names it.
    let escalated = copy_registry(&data, &tmp.path().join("escalated"));
    sqlite(
        &escalated.join("registry.sqlite"),
        "UPDATE tokens SET role = 'admin' WHERE name = 'ci';",
    );
    let (code, out) = verify(&escalated, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("token \"ci\" in the tokens table (role admin") && out.contains("role editor"),
        "{out}"
    );
}

#[tokio::test]
async fn the_daemon_will_not_anchor_a_chain_that_lost_its_anchored_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, _) = keygen(tmp.path());
    let anchors = tmp.path().join("anchors");
    let data = tmp.path().join("data");
    let d = Daemon::start_in(data.clone(), None, anchoring(&anchors, &key));
    let http = d.http();
    http.post_expect("/api/v1/models", json!({"name": "m"}), 201)
        .await;
    http.post_expect("/api/v1/models/m/versions", json!({}), 201)
        .await;
    let head = head_seq(&http).await;
    wait_for(Duration::from_secs(30), "the head to be anchored", || {
        let anchors = anchors.clone();
        async move {
            let n = newest_anchored(&anchors);
            if n == head {
                Ok(())
            } else {
                Err(format!("newest anchor covers {n}"))
            }
        }
    })
    .await;
    let (status, _) = d.terminate();
    assert!(status.success());
    sqlite(
        &data.join("registry.sqlite"),
        &format!("DELETE FROM audit_log WHERE seq >= {head};"),
    );

    let d = Daemon::start_in(data.clone(), None, anchoring(&anchors, &key));
    let http = d.http();
    wait_for(Duration::from_secs(30), "anchoring to stop", || {
        let http = http.clone();
        async move {
            let metrics = http.get_text("/metrics").await;
            if has_sample(&metrics, "modelwatch_audit_anchor_failing 1") {
                Ok(())
            } else {
                Err("modelwatch_audit_anchor_failing is not 1".to_string())
            }
        }
    })
    .await;
    // Verification through the daemon names the cut, and fails.
    let v = http.get_expect("/api/v1/audit/verify", 200).await;
    assert_eq!(v["ok"], true, "the chain alone still verifies: {v}");
    assert_eq!(v["anchors"]["ok"], false, "{v}");
    let problem = v["anchors"]["problem"].as_str().unwrap();
    assert!(problem.contains("were deleted"), "{problem}");
    assert_eq!(d.cli(&["audit", "verify"]).status.code(), Some(1));
    // New entries are not anchored: the newest anchor stays the old one.
    http.post_expect("/api/v1/models", json!({"name": "n"}), 201)
        .await;
    let (_, log) = d.terminate();
    assert!(
        log.contains(&format!("no longer holds entry {head}")),
        "{log}"
    );
    assert_eq!(newest_anchored(&anchors), head);
}

#[test]
fn a_wrong_key_or_a_missing_half_stops_the_start_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("key.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let anchors = tmp.path().join("anchors");
    let dir = ["--audit-anchor-dir", anchors.to_str().unwrap()];
    let key = ["--audit-signing-key", garbage.to_str().unwrap()];
    serve_refuses(
        tmp.path(),
        &[dir, key].concat(),
        "is not an Ed25519 private key in PKCS#8",
    );
    serve_refuses(tmp.path(), &dir, "needs --audit-signing-key");
}

#[tokio::test]
async fn refused_credentials_are_audited_and_counted() {
    let d = Daemon::start();
    let admin = d.http();
    let stranger = admin.with_token(Some("mw_not_a_token_anyone_has"));
    assert_eq!(stranger.get("/api/v1/models").await.0, 401);
    let failed = AuditQuery {
        page: PageQuery::limit(1000),
        action: Some("auth.failed".into()),
        ..AuditQuery::default()
    };
    // Recorded in the background: the 401 does not wait for the write.
    let entries = wait_for(Duration::from_secs(30), "the auth.failed entry", || {
        let (admin, failed) = (admin.clone(), failed.clone());
        async move {
            let items = admin.api().audit().list(&failed).await.unwrap().items;
            if items.is_empty() {
                Err("none yet".to_string())
            } else {
                Ok(items)
            }
        }
    })
    .await;
    let e = &entries[0];
    assert_eq!(
        (e.actor.as_str(), e.target.as_str()),
        ("unauthenticated", "auth")
    );
    let after = e.after.as_ref().unwrap();
    assert_eq!(after["via"], "api");
    assert_eq!(after["reason"], "unknown or revoked token");
    let metrics = admin.get_text("/metrics").await;
    assert!(
        has_sample(&metrics, "modelwatch_auth_failures_total{via=\"api\"} 1"),
        "{metrics}"
    );
    // The chain still verifies with the refusal in it.
    let out = d.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn anchors_are_posted_to_the_webhook_signed_and_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let anchors = tmp.path().join("anchors");
    // The collector fails the first delivery: the anchor comes again.
    let collector = crate::webhooks::Receiver::start(&[503]).await;
    let mut start = anchoring(&anchors, &key);
    start
        .args
        .extend(["--audit-anchor-webhook".into(), collector.url.clone()]);
    let d = Daemon::start_with(start);
    let http = d.http();
    http.post_expect("/api/v1/models", json!({"name": "m"}), 201)
        .await;
    let first = collector.wait_for(1).await[0].json();
    assert_eq!(collector.got()[0].event, "audit.anchor");
    // The refused first delivery arrives again.
    wait_for(Duration::from_secs(30), "the retried anchor", || {
        let got = collector.got();
        let first = first.clone();
        async move {
            let repeats = got[1..].iter().filter(|r| r.json() == first).count();
            if repeats > 0 {
                Ok(())
            } else {
                Err(format!("{} deliveries, no retry yet", got.len()))
            }
        }
    })
    .await;
    // What arrived is an anchor signed by the daemon's key, and the same
    // as the file in the directory.
    let anchor: modelwatch_registry::anchor::Anchor =
        serde_json::from_value(first.clone()).unwrap();
    let pinned = modelwatch_registry::anchor::PublicKey::from_bytes(
        &std::fs::read(&public).unwrap(),
        "public key",
    )
    .unwrap();
    assert_eq!(anchor.signer().unwrap(), pinned);
    let file = anchors.join(modelwatch_registry::anchor::dir::file_name(anchor.seq));
    let on_disk: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(on_disk, first);
    let metrics = http.get_text("/metrics").await;
    let delivered: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("modelwatch_audit_anchor_deliveries_total{outcome=\"delivered\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(delivered >= 1.0, "{metrics}");
}
