//! The conformance suite: the registry's behaviour, written once against
//! the role traits, run on every backend.
//!
//! A backend provides a [`Backend`] (open a store on its data, close it)
//! and invokes [`conformance_suite!`](crate::conformance_suite) once with a
//! function making a fresh, empty backend; the macro expands to one
//! `#[tokio::test]` per behaviour. SQLite runs it in `sqlite/tests.rs`;
//! the PostgreSQL backend runs it a second time. Behaviours that only one
//! backend has (tampering with the SQLite file, the group-commit writer
//! stopping) stay with that backend's own tests.
//!
//! Available in this crate's tests and, for backends elsewhere, with the
//! `conformance` feature. Every store in a fixture runs on one
//! [`ManualClock`], so time moves only when a test moves it.

use std::sync::Arc;

use async_trait::async_trait;
use modelwatch_types::{Clock, ManualClock};

use crate::RegistryStore;

pub mod cluster;
pub mod gates;
pub mod registry;
pub mod search;
pub mod webhooks;

/// A backend under test: one database, opened and closed on demand.
/// (`?Send`: tests await these on their own task, and opening may hold
/// values that are not `Send`, such as the SQLite migration futures.)
#[async_trait(?Send)]
pub trait Backend: Send + Sync {
    /// Opens a store on this backend's data (empty on the first open),
    /// with `clock` as its clock. Panics when it cannot: it is a test.
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn RegistryStore>;
    /// Closes the store opened last, after its queued changes committed.
    async fn close(&self);
    /// The store opened last, fenced by `fence` (`SqliteStore::fenced`).
    fn fenced(&self, fence: Arc<crate::DutyFence>) -> Arc<dyn RegistryStore>;
}

/// What a conformance test gets: the store, its clock, and the backend to
/// reopen it with.
pub struct Fixture {
    backend: Box<dyn Backend>,
    store: Arc<dyn RegistryStore>,
    clock: Arc<ManualClock>,
}

impl Fixture {
    /// The clock every fixture starts at.
    pub const START: &'static str = "2026-11-27T10:00:00Z";

    /// Opens a fresh store on `backend`.
    pub async fn new(backend: Box<dyn Backend>) -> Self {
        let clock = Arc::new(ManualClock::new(
            Self::START.parse().expect("a valid start time"),
        ));
        let store = backend.open(clock.clone()).await;
        Self {
            backend,
            store,
            clock,
        }
    }

    pub fn store(&self) -> Arc<dyn RegistryStore> {
        self.store.clone()
    }

    pub fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    /// Closes the store and opens the same data again: what survives is
    /// what was durable.
    pub async fn reopen(&mut self) -> Arc<dyn RegistryStore> {
        self.backend.close().await;
        self.store = self.backend.open(self.clock.clone()).await;
        self.store.clone()
    }

    /// The store, fenced by `fence`: its every change checks the duty's
    /// lease first.
    pub fn fenced(&self, fence: Arc<crate::DutyFence>) -> Arc<dyn RegistryStore> {
        self.backend.fenced(fence)
    }

    /// Closes the store at the end of a test.
    pub async fn finish(self) {
        self.backend.close().await;
    }
}

/// Expands to the whole conformance suite, one `#[tokio::test]` per
/// behaviour, each on a fresh backend made by `$new_backend` (an
/// expression callable as `fn() -> Box<dyn Backend>`). Invoke it once per
/// backend, inside a test module.
#[macro_export]
macro_rules! conformance_suite {
    ($new_backend:expr) => {
        $crate::conformance_suite!(@tests $new_backend;
            registry::model_lifecycle_and_errors,
            registry::fifty_concurrent_creations_get_numbers_one_to_fifty,
            registry::version_numbers_are_not_reused_and_lineage_is_checked,
            registry::aliases_move_roll_back_and_protect_their_versions,
            registry::concurrent_sets_of_one_alias_all_succeed_in_turn,
            registry::recommendations_have_one_open_per_kind_and_a_lifecycle,
            registry::listings_paginate_and_filter,
            registry::every_change_is_audited,
            registry::tokens_store_only_hashes_and_revoke,
            registry::refusals_are_chained_and_tokens_are_checked_against_the_chain,
            registry::tokens_expire_and_stop_counting_as_admins,
            registry::failed_changes_in_a_group_commit_leave_the_others_and_the_chain_intact,
            registry::views_export_flat_rows_with_sql_column_names,
            registry::version_features_are_declared_updated_audited_and_validated,
            registry::policies_are_stored_audited_and_removed_with_their_model,
            registry::an_alert_rolls_back_once_applies_the_recommendation_and_is_audited,
            registry::an_alert_about_a_version_no_longer_deployed_is_refused_and_recorded,
            registry::protected_aliases_need_an_approver_on_every_path_that_moves_them,
            search::version_search_filters_and_pages,
            search::rename_keeps_versions_aliases_and_is_audited,
            search::stages_archive_existing_and_latest_per_stage,
            search::runs_log_and_become_lineage,
            search::logged_models_and_metric_history_serve_mlflow_log_model,
            search::sealing_artifacts_records_the_digest_once_and_audits_it,
            search::metadata_is_typed_declares_features_and_is_fixed_with_the_files,
            gates::gate_policies_are_stored_audited_with_before_and_after_and_removed,
            gates::a_promotion_records_its_gate_and_is_refused_when_the_policy_changed,
            webhooks::the_outbox_turns_committed_changes_into_deliveries_once,
            webhooks::due_deliveries_are_leased_retried_and_finished,
            webhooks::subscriptions_are_audited_without_their_secret,
            cluster::a_duty_is_held_by_one_daemon_until_its_lease_expires,
            cluster::concurrent_claims_of_a_free_duty_give_it_to_one_daemon,
            cluster::a_fenced_store_writes_only_while_its_lease_holds,
            cluster::the_cluster_view_lists_live_daemons_and_their_duties,
        );
    };
    (@tests $new_backend:expr; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let mut fx = $crate::conformance::Fixture::new(($new_backend)()).await;
                $crate::conformance::$module::$name(&mut fx).await;
                fx.finish().await;
            }
        )*
    };
}
