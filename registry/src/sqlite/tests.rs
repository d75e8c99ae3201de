//! The conformance suite on SQLite, and what only SQLite has: a database
//! file that can be tampered with, and the group-commit writer that stops.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::conformance::Backend;
use crate::prelude::*;
use crate::*;

/// One SQLite database file in a temporary directory.
struct SqliteBackend {
    dir: tempfile::TempDir,
    open: Mutex<Option<SqliteStore>>,
}

#[async_trait(?Send)]
impl Backend for SqliteBackend {
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn RegistryStore> {
        let store = SqliteStore::open_with_clock(&self.dir.path().join("registry.sqlite"), clock)
            .await
            .unwrap();
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

fn sqlite() -> Box<dyn Backend> {
    Box::new(SqliteBackend {
        dir: tempfile::tempdir().unwrap(),
        open: Mutex::new(None),
    })
}

mod conformance {
    crate::conformance_suite!(super::sqlite);
}

async fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("registry.sqlite"))
        .await
        .unwrap();
    (dir, Arc::new(store))
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

/// SQLite-only: an entry edited in the file breaks the chain. That every
/// change is audited is the conformance suite's `every_change_is_audited`.
#[tokio::test]
async fn tampering_with_the_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let s = SqliteStore::open(&path).await.unwrap();
    s.create_model(&admin(), model("m")).await.unwrap();
    s.create_version(&admin(), "m", NewVersion::default())
        .await
        .unwrap();
    assert!(s.verify_audit().await.unwrap().ok);
    s.close().await;

    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let s = SqliteStore::open(&path).await.unwrap();
    let v = s.verify_audit().await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_broken_seq, Some(2));
}

#[tokio::test]
async fn a_closed_store_refuses_changes_instead_of_hanging() {
    let (_d, s) = store().await;
    s.create_model(&admin(), model("before")).await.unwrap();
    s.close().await;
    assert!(matches!(
        s.create_model(&admin(), model("after")).await,
        Err(Error::WriterStopped)
    ));
}
