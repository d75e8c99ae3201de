//! Backup and restore (issue 21, item 5): the restore drill — telemetry and
//! registrations keep arriving while `modelwatch backup` runs beside the
//! daemon; `modelwatch restore` into a new data directory brings back
//! everything acknowledged before the backup began, the chain verifies,
//! and a daemon serves the restored directory. Damaged backups and bad
//! targets are refused with nothing left behind.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelwatch_collectors::remote_write::proto::WriteRequest;
use serde_json::{Value, json};

use crate::support::*;
use crate::telemetry::{encode, series, write};

/// `modelwatch <args> --json` (a backup or restore), its JSON report.
fn run_json(args: &[&str]) -> Value {
    let out = Command::new(binary())
        .args(args)
        .arg("--json")
        .output()
        .expect("run modelwatch");
    assert!(
        out.status.success(),
        "modelwatch {args:?} failed: {}",
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// What the writers had acknowledged, each with when.
#[derive(Default)]
struct Acknowledged {
    samples: Vec<(i64, Instant)>,
    versions: Vec<(i64, Instant)>,
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_drill_brings_back_everything_acknowledged_before_the_backup() {
    // Small persists, so the backups hold Parquet files as well as WAL
    // segments, and the second one finds files the first stored.
    let d = Daemon::start_with(Start::args(&["--persist-buffer-bytes", "16384"]));
    let http = d.http();
    http.post_expect("/api/v1/models", json!({"name": "drill"}), 201)
        .await;
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = chrono::Utc::now().timestamp_millis();
    let samples = tokio::spawn({
        let (http, acked, stop) = (http.clone(), acked.clone(), stop.clone());
        async move {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let req = WriteRequest {
                    timeseries: vec![series(
                        &[("__name__", "drill_seq"), ("model", "drill")],
                        &[(i as f64, t0 + i)],
                    )],
                    ..Default::default()
                };
                let (status, body) = write(&http, encode(&req)).await;
                assert_eq!(status, 204, "{body}");
                acked.lock().unwrap().samples.push((i, Instant::now()));
                i += 1;
            }
        }
    });
    let versions = tokio::spawn({
        let (http, acked, stop) = (http.clone(), acked.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let created = http
                    .post_expect("/api/v1/models/drill/versions", json!({}), 201)
                    .await;
                let version = created["version"].as_i64().unwrap();
                acked
                    .lock()
                    .unwrap()
                    .versions
                    .push((version, Instant::now()));
            }
        }
    });
    let count = |acked: &Arc<Mutex<Acknowledged>>| {
        let a = acked.lock().unwrap();
        (a.samples.len(), a.versions.len())
    };
    wait_for(
        Duration::from_secs(60),
        "writes and a persist before the backup",
        || {
            let (now, http) = (count(&acked), http.clone());
            async move {
                let metrics = http.get_text("/metrics").await;
                let persisted = metrics
                    .lines()
                    .find_map(|l| l.strip_prefix("modelwatch_history_persists_total "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
                if now.0 >= 50 && now.1 >= 5 && persisted >= 1.0 {
                    Ok(())
                } else {
                    Err(format!("{now:?} acknowledged, {persisted} persists"))
                }
            }
        },
    )
    .await;

    // The backup, mid-stream.
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("b");
    let began = Instant::now();
    let report = {
        let (data, to) = (d.data_dir.clone(), to.clone());
        tokio::task::spawn_blocking(move || {
            run_json(&[
                "backup",
                "--data-dir",
                data.to_str().unwrap(),
                "--to",
                to.to_str().unwrap(),
            ])
        })
        .await
        .unwrap()
    };
    let id = report["id"].as_str().unwrap().to_string();
    assert_eq!(
        report["new_files"], report["files"],
        "a first backup: {report}"
    );

    // Writing goes on after it.
    let after = count(&acked);
    wait_for(Duration::from_secs(60), "writes after the backup", || {
        let now = count(&acked);
        async move {
            if now.0 >= after.0 + 20 && now.1 > after.1 {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    samples.await.unwrap();
    versions.await.unwrap();

    // A second backup into the same directory stores only what is new.
    let again = run_json(&[
        "backup",
        "--data-dir",
        d.data_dir.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(
        again["new_files"].as_u64().unwrap() < again["files"].as_u64().unwrap(),
        "{again}"
    );

    // The first backup, restored into a new directory, and served.
    let restored_dir = backups.path().join("restored");
    let restored = run_json(&[
        "restore",
        "--from",
        to.to_str().unwrap(),
        "--backup",
        &id,
        "--data-dir",
        restored_dir.to_str().unwrap(),
    ]);
    assert_eq!(restored["id"], id.as_str());
    let r = Daemon::start_in(
        restored_dir,
        None,
        Start {
            bootstrap: false,
            ..Default::default()
        },
    );
    let rh = r.http();
    let verify = rh.get_expect("/api/v1/audit/verify", 200).await;
    assert_eq!(verify["ok"], true, "{verify}");

    let (before_samples, before_versions): (Vec<i64>, Vec<i64>) = {
        let a = acked.lock().unwrap();
        (
            a.samples
                .iter()
                .filter(|(_, at)| *at < began)
                .map(|(i, _)| *i)
                .collect(),
            a.versions
                .iter()
                .filter(|(_, at)| *at < began)
                .map(|(v, _)| *v)
                .collect(),
        )
    };
    assert!(
        before_samples.len() >= 50 && before_versions.len() >= 5,
        "{} samples and {} versions before the backup",
        before_samples.len(),
        before_versions.len()
    );
    let rows = sql(
        &rh,
        "SELECT CAST(value AS BIGINT) AS i FROM samples WHERE metric = 'drill_seq'",
    )
    .await;
    let present: std::collections::BTreeSet<i64> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["i"].as_i64().unwrap())
        .collect();
    let missing: Vec<_> = before_samples
        .iter()
        .filter(|i| !present.contains(i))
        .collect();
    assert!(
        missing.is_empty(),
        "samples acknowledged before the backup are missing: {missing:?}"
    );
    assert_eq!(
        present.len() as i64,
        rows["row_count"].as_i64().unwrap(),
        "no sample twice"
    );
    let listed = rh
        .get_expect("/api/v1/models/drill/versions?limit=1000", 200)
        .await;
    let have: Vec<i64> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    for v in before_versions {
        assert!(have.contains(&v), "version {v} is missing: {have:?}");
    }
    // The restored daemon takes changes.
    rh.post_expect("/api/v1/models/drill/versions", json!({}), 201)
        .await;
}

/// The object of `path` in a backup directory's newest backup.
fn object_of(backup_dir: &Path, path: &str) -> std::path::PathBuf {
    let backups = backup_dir.join("backups");
    let newest = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let manifest: Value = serde_json::from_slice(&std::fs::read(newest).unwrap()).unwrap();
    let sha = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    backup_dir.join("objects/sha256").join(&sha[..2]).join(sha)
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_backups_and_bad_targets_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    d.http().model_with_versions("fraud", 2).await;
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("b");
    let args = [
        "backup",
        "--data-dir",
        d.data_dir.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ];
    run_json(&args);

    let fails = |args: &[&str], reason: &str| {
        let out = Command::new(binary()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(reason), "{args:?}: {}", stderr(&out));
    };
    // A registry object with one byte flipped.
    let object = object_of(&to, "registry.sqlite");
    let mut bytes = std::fs::read(&object).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let target = tmp.path().join("restored");
    let restore = [
        "restore",
        "--from",
        to.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ];
    fails(&restore, "registry.sqlite in the backup is damaged");
    assert!(
        !target.exists(),
        "a failed restore leaves no data directory"
    );
    assert!(!tmp.path().join("restored.partial").exists());

    // Into a directory in use, from nothing, of nothing, to a bucket.
    fails(
        &[
            "restore",
            "--from",
            to.to_str().unwrap(),
            "--data-dir",
            d.data_dir.to_str().unwrap(),
        ],
        "exists and is not empty",
    );
    fails(
        &[
            "restore",
            "--from",
            tmp.path().to_str().unwrap(),
            "--data-dir",
            target.to_str().unwrap(),
        ],
        "no backup in",
    );
    fails(
        &[
            "backup",
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ],
        "holds no embedded registry",
    );
    fails(
        &[
            "backup",
            "--data-dir",
            d.data_dir.to_str().unwrap(),
            "--to",
            "s3://bucket/backups",
        ],
        "not supported yet",
    );
}
