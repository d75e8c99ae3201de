//! The registry's rules that do not depend on a backend: pure functions,
//! no SQL, no async, unit-tested without a database. Every backend reads
//! the records a rule needs, calls the rule, and writes what it decided,
//! so SQLite and PostgreSQL cannot disagree about them.
//!
//! - [`alias`]: the deployment stack (where a rollback goes, given the
//!   alias's moves) and how a move is audited.
//! - [`recommendation`]: the lifecycle (raise = new or refresh the open
//!   one; which transitions an open recommendation may take).
//! - [`audit`]: the chain (canonical form, hash, next link, verification).
//! - [`outbox`]: audit entry → webhook event → deliveries for the
//!   subscriptions that want it.
//! - [`lineage`]: a version's lineage from its tracking run.
//! - [`lease`]: who gets a background duty's lease, with which fencing
//!   token.
//! - [`metadata`]: which metadata changes a version's fixed files allow;
//!   the features a signature declares.

pub mod alias;
pub mod audit;
pub mod lease;
pub mod lineage;
pub mod metadata;
pub mod outbox;
pub mod recommendation;
