//! The backend seam, cut into roles: everything the daemon asks of the
//! registry's storage, one small trait per kind of record.
//!
//! A caller that needs one thing takes only that role (the webhook sender
//! needs [`Outbox`], the token cache needs [`Tokens`]); a caller that needs
//! everything holds [`RegistryStore`], which every type implementing all
//! roles is, by the blanket impl below. Both backends implement every role
//! with the same code (`sql/`): [`crate::SqliteStore`] and
//! [`crate::PgStore`], and both run the same
//! [`conformance`](crate::conformance) suite.
//!
//! Every mutating call takes the [`Actor`](crate::Actor) and writes its
//! audit entry in the same transaction as the change.
//!
//! Methods of a role are callable on `dyn RegistryStore` (and on a generic
//! `S: RegistryStore`) without importing the role: Rust resolves a trait
//! object's methods through its supertraits. On a concrete store
//! (`SqliteStore`) the role traits must be in scope, as for any trait
//! method: `use modelwatch_registry::prelude::*`.

mod alert_notices;
mod aliases;
mod audit;
mod cluster;
mod gates;
mod models;
mod outbox;
mod policies;
mod recommendations;
mod search;
mod tokens;
mod tracking;
mod versions;
mod views;
mod webhooks;

pub use alert_notices::AlertNotices;
pub use aliases::Aliases;
pub use audit::Audit;
pub use cluster::Cluster;
pub use gates::Gates;
pub use models::Models;
pub use outbox::Outbox;
pub use policies::Policies;
pub use recommendations::Recommendations;
pub use search::Searches;
pub use tokens::Tokens;
pub use tracking::Tracking;
pub use versions::Versions;
pub use views::{RegistryStats, Views};
pub use webhooks::Webhooks;

/// Declares [`RegistryStore`] as the union of the listed roles and
/// implements it for every type that has them all (one list, so the trait
/// and its blanket impl cannot drift apart).
macro_rules! union_of_roles {
    ($($role:ident),+ $(,)?) => {
        /// Every role at once: what `serve` wires into the daemon as
        /// `Arc<dyn RegistryStore>`. Implemented for every type that
        /// implements all roles; never implement it by hand.
        pub trait RegistryStore: $($role +)+ Send + Sync + 'static {}

        impl<T> RegistryStore for T where T: $($role +)+ Send + Sync + 'static {}
    };
}

union_of_roles!(
    Views,
    Models,
    Versions,
    Aliases,
    Recommendations,
    Audit,
    Tokens,
    Policies,
    Webhooks,
    Outbox,
    AlertNotices,
    Tracking,
    Gates,
    Searches,
    Cluster,
);

#[cfg(test)]
mod tests {
    //! Role methods on `dyn RegistryStore` without any role trait in scope:
    //! the daemon holds `Arc<dyn RegistryStore>` and imports only that name.
    //! (Deliberately no `use super::*` and no prelude here.)

    use std::sync::Arc;

    #[tokio::test]
    async fn role_methods_resolve_on_dyn_registry_store_without_importing_roles() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = crate::SqliteStore::open(&dir.path().join("registry.sqlite"))
            .await
            .unwrap();
        let store: Arc<dyn crate::RegistryStore> = Arc::new(sqlite.clone());
        let admin = crate::Actor::new("root", crate::Role::Admin);
        let new = crate::NewModel {
            name: "m".into(),
            ..Default::default()
        };
        // One method of several roles, through the Arc and through a reference.
        store.ping().await.unwrap();
        store.create_model(&admin, new).await.unwrap();
        let by_ref: &dyn crate::RegistryStore = store.as_ref();
        assert_eq!(by_ref.get_model("m").await.unwrap().name, "m");
        assert!(by_ref.verify_audit().await.unwrap().ok);
        assert!(store.list_tokens().await.unwrap().is_empty());
        assert!(store.list_webhooks().await.unwrap().is_empty());
        assert_eq!(store.stats().changes_committed, 1);
        // And through a generic bound, as the evaluator holds it.
        async fn generic<S: crate::RegistryStore + ?Sized>(s: &S) -> i64 {
            s.get_model("m").await.unwrap().latest_version
        }
        assert_eq!(generic(by_ref).await, 0);
        sqlite.close().await;
    }
}
