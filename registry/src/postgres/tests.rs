//! The conformance suite on PostgreSQL, and what only a shared database
//! has: several stores (daemons) writing at once, a schema migrated by a
//! newer binary, a server that cannot be reached.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::{Connection, PgConnection};

use crate::conformance::Backend;
use crate::postgres_server::{PostgresServer, free_port};
use crate::prelude::*;
use crate::*;

/// Small pools: many tests run at once against one server.
const LIMITS: PoolLimits = PoolLimits {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(30),
};

/// One fresh database on the test process's PostgreSQL server, created on
/// the first open.
struct PgBackend {
    url: tokio::sync::OnceCell<String>,
    open: Mutex<Option<PgStore>>,
}

#[async_trait(?Send)]
impl Backend for PgBackend {
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn RegistryStore> {
        let url = self
            .url
            .get_or_init(|| PostgresServer::shared().fresh_database())
            .await;
        let store = PgStore::connect(url, LIMITS, clock).await.unwrap();
        *self.open.lock().unwrap() = Some(store.clone());
        Arc::new(store)
    }

    async fn close(&self) {
        let store = self.open.lock().unwrap().take();
        if let Some(store) = store {
            store.close().await;
        }
    }

    fn fenced(&self, fence: Arc<crate::DutyFence>) -> Arc<dyn RegistryStore> {
        let store = self.open.lock().unwrap().clone().expect("a store is open");
        Arc::new(store.fenced(fence))
    }
}

fn postgres() -> Box<dyn Backend> {
    Box::new(PgBackend {
        url: tokio::sync::OnceCell::new(),
        open: Mutex::new(None),
    })
}

mod conformance {
    crate::conformance_suite!(super::postgres);
}

fn admin() -> Actor {
    Actor::new("root", Role::Admin)
}

fn model(name: &str) -> NewModel {
    NewModel {
        name: name.into(),
        ..Default::default()
    }
}

/// A store on a fresh database, and that database's URL.
async fn store() -> (String, PgStore) {
    let url = PostgresServer::shared().fresh_database().await;
    let store = PgStore::connect(&url, LIMITS, Arc::new(SystemClock))
        .await
        .unwrap();
    (url, store)
}

/// Three stores on one database stand for three daemons: 96 registrations
/// spread over them get the numbers 1 to 96, and the chain they wrote
/// together is one chain.
#[tokio::test]
async fn concurrent_registration_on_several_daemons_is_gapless_and_one_chain() {
    let (url, first) = store().await;
    first.create_model(&admin(), model("m")).await.unwrap();
    let mut daemons = vec![first];
    for _ in 0..2 {
        daemons.push(
            PgStore::connect(&url, LIMITS, Arc::new(SystemClock))
                .await
                .unwrap(),
        );
    }
    let tasks: Vec<_> = (0..96)
        .map(|i| {
            let daemon = daemons[i % daemons.len()].clone();
            tokio::spawn(async move {
                daemon
                    .create_version(&admin(), "m", NewVersion::default())
                    .await
                    .unwrap()
                    .version
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=96).collect::<Vec<i64>>());
    let check = daemons[2].verify_audit().await.unwrap();
    assert!(check.ok, "{check:?}");
    assert_eq!(check.entries_checked, 97, "one model and 96 versions");
    for d in &daemons {
        d.close().await;
    }
}

/// Waits until `n` other sessions of the database are blocked on a lock.
async fn until_sessions_wait_for_a_lock(conn: &mut PgConnection, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {waiting} of {n} sessions reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two daemons rolling back one alias at once, both having read it at
/// version 3: one moves it to 2, the other is a conflict — not two moves.
/// The test holds the alias row locked until both rollbacks wait on it, so
/// they are truly concurrent on every run.
#[tokio::test]
async fn two_concurrent_rollbacks_give_one_move_and_one_conflict() {
    let (url, a) = store().await;
    let b = PgStore::connect(&url, LIMITS, Arc::new(SystemClock))
        .await
        .unwrap();
    a.create_model(&admin(), model("m")).await.unwrap();
    for v in 1..=3 {
        a.create_version(&admin(), "m", NewVersion::default())
            .await
            .unwrap();
        a.set_alias(&admin(), "m", "production", v, "ship")
            .await
            .unwrap();
    }

    let mut holder = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM aliases WHERE name = 'production' FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let rollbacks: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|daemon| {
            tokio::spawn(async move {
                daemon
                    .rollback_alias(&admin(), "m", "production", "bad canary")
                    .await
            })
        })
        .collect();
    let mut watcher = PgConnection::connect(&url).await.unwrap();
    until_sessions_wait_for_a_lock(&mut watcher, 2).await;
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();

    let mut moved = Vec::new();
    let mut conflicts = 0;
    for r in rollbacks {
        match r.await.unwrap() {
            Ok(alias) => moved.push(alias.version),
            Err(Error::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((moved, conflicts), (vec![2], 1));
    let alias = a.get_alias("m", "production").await.unwrap();
    assert_eq!(alias.version, 2);
    assert_eq!(alias.history.len(), 4, "three sets and one rollback");
    assert!(a.verify_audit().await.unwrap().ok);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_database_of_a_newer_schema_is_refused_with_a_clear_error() {
    let (url, s) = store().await;
    s.close().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from a newer modelwatch', TRUE, '\\x00'::bytea, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let e = PgStore::connect(&url, LIMITS, Arc::new(SystemClock))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    assert!(
        text.contains("schema is version 9999") && text.contains("newer modelwatch"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let port = free_port().unwrap();
    let limits = PoolLimits {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
    };
    let url = format!("postgres://someone:secret@127.0.0.1:{port}/registry");
    let e = PgStore::connect(&url, limits, Arc::new(SystemClock))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(
        !text.contains("secret"),
        "the password is never shown: {text}"
    );
    let e = PgStore::connect("mysql://nope", limits, Arc::new(SystemClock))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a PostgreSQL URL"), "{e}");
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let server = PostgresServer::shared();
    let url = server.fresh_database().await;
    let wrong = url.replace(crate::postgres_server::PASSWORD, "not-the-password");
    let e = PgStore::connect(&wrong, LIMITS, Arc::new(SystemClock))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.port())),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test]
async fn tls_is_used_and_verified_as_the_url_asks() {
    let server = PostgresServer::dedicated_with_tls().unwrap();
    let url = server.fresh_database().await;
    let root = server.tls_root();
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", root.display());
    for url in [verified.clone(), format!("{url}?sslmode=require")] {
        let store = PgStore::connect(&url, LIMITS, Arc::new(SystemClock))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        store
            .create_model(&admin(), model(&format!("m{}", url.len())))
            .await
            .unwrap();
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(encrypted, "{url}");
        store.close().await;
    }

    // A server whose certificate is not signed by the given root is refused.
    let other = tempfile::tempdir().unwrap();
    crate::postgres_server::make_certificates(other.path()).unwrap();
    let wrong_root = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        other.path().join("ca.crt").display()
    );
    let e = PgStore::connect(&wrong_root, LIMITS, Arc::new(SystemClock))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot connect to PostgreSQL"), "{e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}

#[tokio::test]
async fn a_closed_store_refuses_changes_instead_of_hanging() {
    let (_url, s) = store().await;
    s.create_model(&admin(), model("before")).await.unwrap();
    s.close().await;
    assert!(matches!(
        s.create_model(&admin(), model("after")).await,
        Err(Error::WriterStopped)
    ));
}

/// A SQLite registry with something in every kind of record.
async fn filled_sqlite(path: &std::path::Path) -> SqliteStore {
    let lite = SqliteStore::open(path).await.unwrap();
    let a = admin();
    for m in ["fraud", "churn"] {
        lite.create_model(&a, model(m)).await.unwrap();
    }
    // More versions than one insert batch.
    for _ in 0..520 {
        lite.create_version(&a, "fraud", NewVersion::default())
            .await
            .unwrap();
    }
    lite.create_version(&a, "churn", NewVersion::default())
        .await
        .unwrap();
    lite.set_alias(&a, "fraud", "production", 1, "ship")
        .await
        .unwrap();
    lite.set_alias(&a, "fraud", "production", 2, "better")
        .await
        .unwrap();
    lite.rollback_alias(&a, "fraud", "production", "regression")
        .await
        .unwrap();
    lite.raise_recommendation(
        &a,
        "fraud",
        2,
        NewRecommendation {
            kind: RecommendationKind::Retrain,
            severity: Severity::Warning,
            reason: "drift".into(),
            evidence: serde_json::json!({ "psi": 0.3 }),
        },
    )
    .await
    .unwrap();
    lite.create_token(&a, "ci", Role::Editor, &"ab".repeat(32), None)
        .await
        .unwrap();
    lite.create_webhook(
        &a,
        webhooks::NewWebhook {
            name: "hook".into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: vec!["*".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    lite.dispatch_webhook_outbox().await.unwrap();
    let experiment = lite
        .create_experiment(
            &a,
            NewExperiment {
                name: "exp".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    lite.create_run(
        &a,
        NewRun {
            experiment_id: experiment.id,
            name: "run".into(),
            start_time: None,
            tags: Default::default(),
        },
    )
    .await
    .unwrap();
    lite
}

/// Every view's rows, the tokens and the webhooks: what an import must
/// carry over unchanged.
async fn everything(s: &dyn RegistryStore) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for view in RegistryView::ALL {
        out.push(serde_json::Value::Array(s.export_view(view).await.unwrap()));
    }
    out.push(serde_json::to_value(s.list_tokens().await.unwrap()).unwrap());
    out.push(serde_json::to_value(s.list_webhooks().await.unwrap()).unwrap());
    out
}

/// `modelwatch migrate`: a SQLite registry arrives whole, its audit chain
/// verifies on PostgreSQL and goes on there, ids and version numbers
/// continue after the copied ones, and a non-empty target is refused.
#[tokio::test]
async fn a_sqlite_registry_imports_whole_and_its_chain_verifies_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let lite = filled_sqlite(&path).await;
    let before = everything(&lite).await;
    let source_chain = lite.verify_audit().await.unwrap();
    lite.close().await;

    let (_url, pg) = store().await;
    let mut seen = Vec::new();
    let report = pg
        .import_sqlite(&path, &mut |p| seen.push(p.clone()))
        .await
        .unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.copied_all, last.total_all);
    assert!(seen.windows(2).all(|w| w[0].copied_all <= w[1].copied_all));
    let versions = report.tables.iter().find(|(t, _)| t == "versions").unwrap();
    assert_eq!(versions.1, 521);
    assert_eq!(report.audit_entries, source_chain.entries_checked);

    assert_eq!(everything(&pg).await, before);
    let chain = pg.verify_audit().await.unwrap();
    assert!(chain.ok, "{chain:?}");
    assert_eq!(chain.head_hash, source_chain.head_hash);

    // Work goes on where SQLite stopped.
    let next = pg
        .create_version(&admin(), "fraud", NewVersion::default())
        .await
        .unwrap();
    assert_eq!(next.version, 521);
    let recommendation = pg
        .raise_recommendation(
            &admin(),
            "churn",
            1,
            NewRecommendation {
                kind: RecommendationKind::Retrain,
                severity: Severity::Info,
                reason: "new".into(),
                evidence: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    assert_eq!(recommendation.id, 2);
    assert!(pg.verify_audit().await.unwrap().ok);

    // A second import into the now non-empty database changes nothing.
    let entries = pg.verify_audit().await.unwrap().entries_checked;
    let e = pg.import_sqlite(&path, &mut |_| {}).await.unwrap_err();
    assert!(
        matches!(&e, Error::Conflict(m) if m.contains("already holds registry data")),
        "{e}"
    );
    assert_eq!(pg.verify_audit().await.unwrap().entries_checked, entries);
    pg.close().await;
}
