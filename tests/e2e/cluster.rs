//! Several daemons on one PostgreSQL registry: concurrent registration
//! through all of them, token revocation across daemons, duty failover
//! after `kill -9`, PostgreSQL restarting under load, and bad registry
//! configuration. The database is Debian's real `postgres`, started by the
//! registry's test harness.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelwatch_registry::postgres_server::{PASSWORD, PostgresServer};
use serde_json::{Value, json};

use crate::support::*;

/// A daemon on the PostgreSQL registry at `url`, with its own data
/// directory (telemetry history stays per daemon).
fn daemon_on(url: &str, extra: &[&str]) -> Daemon {
    let mut args = vec!["--registry-url", url];
    args.extend_from_slice(extra);
    Daemon::start_with(Start::args(&args))
}

/// `GET /api/v1/cluster` as seen by `d`.
async fn cluster(d: &Daemon) -> Value {
    d.http().get_expect("/api/v1/cluster", 200).await
}

/// Which member holds each duty (unexpired leases only), per `view`.
fn holders(view: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for m in view["members"].as_array().expect("members") {
        for duty in m["duties"].as_array().expect("duties") {
            out.insert(
                duty.as_str().unwrap().to_string(),
                m["id"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

#[tokio::test]
async fn three_daemons_register_concurrently_into_one_gapless_audited_registry() {
    let url = PostgresServer::shared().fresh_database().await;
    let daemons: Vec<Daemon> = (0..3).map(|_| daemon_on(&url, &[])).collect();
    daemons[0].http().model_with_versions("fraud", 0).await;

    // 32 clients, spread over the three daemons, register for 10 s.
    let acknowledged = Arc::new(Mutex::new(Vec::<i64>::new()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let http = daemons[c % 3].http();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let (status, body) = http
                        .post(
                            "/api/v1/models/fraud/versions",
                            json!({ "description": format!("client {c}") }),
                        )
                        .await;
                    assert_eq!(status, 201, "{body}");
                    let number = body["version"].as_i64().expect("a version number");
                    acknowledged.lock().unwrap().push(number);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let mut numbers = acknowledged.lock().unwrap().clone();
    numbers.sort_unstable();
    let n = numbers.len() as i64;
    assert!(n >= 32, "only {n} versions in 10 s");
    assert_eq!(numbers, (1..=n).collect::<Vec<_>>(), "unique and gapless");

    // Every acknowledged version is there, read through another daemon.
    let mut listed = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/models/fraud/versions?limit=500&cursor={c}"),
            None => "/api/v1/models/fraud/versions?limit=500".to_string(),
        };
        let page = daemons[2].http().get_expect(&path, 200).await;
        for v in page["items"].as_array().unwrap() {
            listed.insert(v["version"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(listed, numbers.iter().copied().collect::<BTreeSet<_>>());

    // One unbroken audit chain holds every registration.
    let verified = daemons[1]
        .http()
        .get_expect("/api/v1/audit/verify", 200)
        .await;
    assert_eq!(verified["ok"], json!(true), "{verified}");
    assert!(
        verified["entries_checked"].as_i64().unwrap() > n,
        "{verified}"
    );

    // The cluster: three members, each duty held by exactly one of them.
    let view = cluster(&daemons[0]).await;
    assert_eq!(view["backend"], json!("postgres"));
    let members: BTreeSet<String> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(members.len(), 3, "{view}");
    let held = holders(&view);
    assert_eq!(
        held.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "artifact_gc",
            "evaluator",
            "webhook_dispatcher",
            "webhook_sender"
        ],
        "{view}"
    );
    assert!(held.values().all(|h| members.contains(h)), "{view}");
    let metrics = daemons[0].http().get_text("/metrics").await;
    assert!(
        metrics.contains("modelwatch_cluster_members 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_token_revoked_on_one_daemon_is_refused_by_another_within_a_second() {
    let url = PostgresServer::shared().fresh_database().await;
    let (a, b) = (daemon_on(&url, &[]), daemon_on(&url, &[]));
    let secret = a.http().token("ci", "reader").await;
    let on_b = b.http().with_token(Some(&secret));
    // Used on B first, so B has it cached.
    assert_eq!(on_b.get("/api/v1/models").await.0, 200);

    let (status, body) = a.http().send("DELETE", "/api/v1/tokens/ci", None).await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let revoked = Instant::now();
    let refused_after = wait_for(Duration::from_secs(5), "B refusing the token", || {
        let on_b = on_b.clone();
        async move {
            match on_b.get("/api/v1/models").await.0 {
                401 => Ok(revoked.elapsed()),
                status => Err(format!("B still answers {status}")),
            }
        }
    })
    .await;
    // wait_for polls every 250 ms: the refusal came within the cache's
    // half second plus one poll.
    assert!(
        refused_after <= Duration::from_millis(1000),
        "took {refused_after:?}"
    );
}

/// Receives webhook deliveries; counts each event id.
async fn webhook_receiver() -> (String, Arc<Mutex<BTreeMap<String, u32>>>) {
    let seen = Arc::new(Mutex::new(BTreeMap::<String, u32>::new()));
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(id) = event["id"].as_str() {
                    *sink.lock().unwrap().entry(id.to_string()).or_default() += 1;
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The `modelwatch_evaluation_cycle_duration_seconds_count` of a daemon (0 before any).
async fn evaluator_cycles(d: &Daemon) -> f64 {
    d.http()
        .get_text("/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with("modelwatch_evaluation_cycle_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn duties_move_to_a_surviving_daemon_after_kill_9_and_nothing_is_delivered_twice() {
    const TAKEOVER: Duration = Duration::from_secs(3);
    let url = PostgresServer::shared().fresh_database().await;
    let flags = ["--duty-takeover-seconds", "3"];
    let mut daemons = vec![daemon_on(&url, &flags), daemon_on(&url, &flags)];
    let (hook, seen) = webhook_receiver().await;
    daemons[0]
        .http()
        .post_expect(
            "/api/v1/webhooks",
            json!({ "name": "all", "url": hook, "events": ["version.created"] }),
            201,
        )
        .await;
    daemons[0].http().model_with_versions("fraud", 3).await;

    // Whoever holds the evaluator, the other is idle: its evaluator has
    // not run a scheduled cycle.
    let view = cluster(&daemons[0]).await;
    let holder = holders(&view)["evaluator"].clone();
    let ids: Vec<String> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let holder_index = ids.iter().position(|id| *id == holder).unwrap();
    // `members` is oldest first, as the daemons were started.
    let survivor = daemons.remove(1 - holder_index);
    let victim = daemons.remove(0);
    assert_eq!(evaluator_cycles(&survivor).await, 0.0);
    wait_for(
        Duration::from_secs(10),
        "3 version.created deliveries",
        || {
            let seen = seen.clone();
            async move {
                let n = seen.lock().unwrap().len();
                if n == 3 {
                    Ok(())
                } else {
                    Err(format!("{n} delivered"))
                }
            }
        },
    )
    .await;

    victim.kill9();
    let killed = Instant::now();
    let survivor_id = cluster(&survivor).await["this_daemon"]
        .as_str()
        .unwrap()
        .to_string();
    let took_over = wait_for(TAKEOVER * 3, "the survivor holding every duty", || {
        let survivor = &survivor;
        let survivor_id = survivor_id.clone();
        async move {
            let held = holders(&cluster(survivor).await);
            // evaluator, webhook dispatcher and sender, artifact GC
            if held.len() == 4 && held.values().all(|h| *h == survivor_id) {
                Ok(killed.elapsed())
            } else {
                Err(format!("{held:?}"))
            }
        }
    })
    .await;
    // One poll of wait_for on top of the stated takeover time.
    assert!(
        took_over <= TAKEOVER + Duration::from_millis(500),
        "took {took_over:?}"
    );
    // The next evaluation runs on the survivor.
    wait_for(
        Duration::from_secs(30),
        "an evaluator cycle on the survivor",
        || {
            let survivor = &survivor;
            async move {
                let n = evaluator_cycles(survivor).await;
                if n > 0.0 {
                    Ok(())
                } else {
                    Err("no cycle yet".into())
                }
            }
        },
    )
    .await;

    // The webhook duties moved too: new events are delivered, and no event
    // was delivered twice.
    for _ in 0..2 {
        survivor
            .http()
            .post_expect("/api/v1/models/fraud/versions", json!({}), 201)
            .await;
    }
    wait_for(
        Duration::from_secs(30),
        "5 version.created deliveries",
        || {
            let seen = seen.clone();
            async move {
                let n = seen.lock().unwrap().len();
                if n == 5 {
                    Ok(())
                } else {
                    Err(format!("{n} delivered"))
                }
            }
        },
    )
    .await;
    let counts = seen.lock().unwrap().clone();
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
    let verified = survivor
        .http()
        .get_expect("/api/v1/audit/verify", 200)
        .await;
    assert_eq!(verified["ok"], json!(true), "{verified}");
}

#[tokio::test]
async fn postgres_restarting_under_load_answers_503_with_retry_after_and_loses_nothing() {
    let server = PostgresServer::dedicated().expect("a PostgreSQL of this test's own");
    let url = server.fresh_database().await;
    let d = daemon_on(&url, &["--registry-acquire-timeout-seconds", "1"]);
    d.http().model_with_versions("fraud", 0).await;

    let acknowledged = Arc::new(Mutex::new(Vec::<i64>::new()));
    let unavailable = Arc::new(Mutex::new(0u32));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let http = d.http();
            let (acknowledged, unavailable, stop) =
                (acknowledged.clone(), unavailable.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let res = http
                        .client
                        .post(format!("{}/api/v1/models/fraud/versions", http.url))
                        .bearer_auth(http.token.as_deref().unwrap())
                        .json(&json!({}))
                        .send()
                        .await
                        .expect("the daemon answers");
                    match res.status().as_u16() {
                        201 => {
                            let body: Value = res.json().await.unwrap();
                            acknowledged
                                .lock()
                                .unwrap()
                                .push(body["version"].as_i64().unwrap());
                        }
                        503 => {
                            let retry = res.headers().get("retry-after").cloned();
                            let body: Value = res.json().await.unwrap();
                            assert!(retry.is_some(), "503 without Retry-After: {body}");
                            *unavailable.lock().unwrap() += 1;
                        }
                        other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
                    }
                }
            })
        })
        .collect();
    wait_for(
        Duration::from_secs(10),
        "registrations before the restart",
        || {
            let acknowledged = acknowledged.clone();
            async move {
                let n = acknowledged.lock().unwrap().len();
                if n >= 20 { Ok(()) } else { Err(format!("{n}")) }
            }
        },
    )
    .await;

    server.stop().expect("stop PostgreSQL");
    wait_for(
        Duration::from_secs(20),
        "503 answers while PostgreSQL is down",
        || {
            let unavailable = unavailable.clone();
            async move {
                let n = *unavailable.lock().unwrap();
                if n >= 3 {
                    Ok(())
                } else {
                    Err(format!("{n} 503s"))
                }
            }
        },
    )
    .await;
    let before_restart = acknowledged.lock().unwrap().len();
    server.start_again().expect("start PostgreSQL again");
    wait_for(
        Duration::from_secs(30),
        "registrations after the restart",
        || {
            let acknowledged = acknowledged.clone();
            async move {
                let n = acknowledged.lock().unwrap().len();
                if n >= before_restart + 20 {
                    Ok(())
                } else {
                    Err(format!("{n}"))
                }
            }
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    // Nothing acknowledged is lost; the same process serves throughout.
    let numbers = acknowledged.lock().unwrap().clone();
    for n in &numbers {
        d.http()
            .get_expect(&format!("/api/v1/models/fraud/versions/{n}"), 200)
            .await;
    }
    let distinct: BTreeSet<_> = numbers.iter().collect();
    assert_eq!(distinct.len(), numbers.len(), "no number given twice");
    let verified = d.http().get_expect("/api/v1/audit/verify", 200).await;
    assert_eq!(verified["ok"], json!(true), "{verified}");
}

/// Runs `serve` on `url` expecting it to refuse to start; its stderr.
fn refused_start(url: &str) -> String {
    let data = tempfile::tempdir().unwrap();
    let o = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--registry-url", url])
        .args([
            "--otlp-http-listen",
            "off",
            "--otlp-grpc-listen",
            "off",
            "--pg-listen",
            "off",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("MODELWATCH_REGISTRY_URL")
        .output()
        .expect("run modelwatch serve");
    let err = stderr(&o);
    assert!(!o.status.success(), "started on {url:?}: {err}");
    err
}

#[tokio::test]
async fn a_bad_registry_configuration_is_refused_at_start_with_a_clear_message() {
    let server = PostgresServer::shared();

    // Nothing listens there.
    let port = free_port();
    let err = refused_start(&format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{port}/none"
    ));
    assert!(
        err.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}")),
        "{err}"
    );

    // A wrong password, never echoed.
    let url = server.fresh_database().await;
    let err = refused_start(&url.replace(PASSWORD, "wrong-secret"));
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");

    // Not a PostgreSQL URL.
    let err = refused_start("mysql://root:pw@127.0.0.1/registry");
    assert!(
        err.contains("registry_url") && err.contains("postgres://"),
        "{err}"
    );
    assert!(!err.contains("pw@"), "{err}");

    // A database migrated by a newer modelwatch.
    let d = daemon_on(&url, &[]);
    drop(d);
    let name = url.rsplit('/').next().unwrap();
    server
        .psql(
            name,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', true, '\\x00', 0)",
        )
        .await
        .unwrap();
    let err = refused_start(&url);
    assert!(err.contains("schema is version 9999"), "{err}");
}

#[tokio::test]
async fn migrate_copies_a_sqlite_registry_into_postgres_and_daemons_serve_it() {
    // A registry on the embedded SQLite, stopped.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let lite = Daemon::start_in(data.clone(), None, Start::default());
    lite.http().model_with_versions("fraud", 3).await;
    lite.http().put_alias("fraud", "production", 2, 200).await;
    let before = lite
        .http()
        .get_expect("/api/v1/models/fraud/aliases/production", 200)
        .await;
    let (status, log) = lite.terminate();
    assert!(status.success(), "{log}");

    let url = PostgresServer::shared().fresh_database().await;
    let o = Command::new(binary())
        .args(["migrate", "--to", &url, "--data-dir"])
        .arg(&data)
        .output()
        .expect("run modelwatch migrate");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("audit chain verified on PostgreSQL"), "{out}");
    assert!(out.contains("versions"), "{out}");
    assert!(!stderr(&o).contains(PASSWORD), "{}", stderr(&o));

    // A daemon on PostgreSQL serves what SQLite held, and goes on.
    let pg = daemon_on(&url, &[]);
    let after = pg
        .http()
        .get_expect("/api/v1/models/fraud/aliases/production", 200)
        .await;
    assert_eq!(after, before);
    let v4 = pg
        .http()
        .post_expect("/api/v1/models/fraud/versions", json!({}), 201)
        .await;
    assert_eq!(v4["version"], json!(4));
    let verified = pg.http().get_expect("/api/v1/audit/verify", 200).await;
    assert_eq!(verified["ok"], json!(true), "{verified}");

    // Migrating again into the now non-empty database is refused.
    let o = Command::new(binary())
        .args(["migrate", "--to", &url, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already holds registry data"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn a_daemon_never_holds_a_duty_it_does_not_run() {
    let url = PostgresServer::shared().fresh_database().await;
    // Started first, it takes every lease it claims; the evaluator is not
    // one of them, so the daemon that runs it holds it.
    let quiet = daemon_on(&url, &["--no-evaluator"]);
    let busy = daemon_on(&url, &[]);
    let view = cluster(&busy).await;
    let busy_id = view["this_daemon"].as_str().unwrap().to_string();
    let quiet_id = cluster(&quiet).await["this_daemon"]
        .as_str()
        .unwrap()
        .to_string();
    let held = holders(&view);
    assert_eq!(held.get("evaluator"), Some(&busy_id), "{view}");
    assert_eq!(held.get("webhook_sender"), Some(&quiet_id), "{view}");
    // Neither anchors the audit chain, so neither holds that lease.
    assert!(!held.contains_key("audit_anchor"), "{view}");
}
