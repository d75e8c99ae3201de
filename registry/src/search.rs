//! Searches across models and versions with a small, backend-neutral
//! condition language (a conjunction of field/operator/value conditions),
//! plus the registry changes MLflow clients make that the native API had no
//! call for: renaming a model and moving a version between stages.
//!
//! The daemon parses MLflow's filter grammar into [`Condition`]s; the one
//! filter compiler ([`crate::filter`]) turns them, like the native listing
//! filters, into predicates that a backend renders with bound values only
//! (no input is ever spliced into a statement). It must not know MLflow's
//! wire format. The renames and stage moves are in the [`Models`] and
//! [`Versions`] roles, the searches in [`Searches`].
//!
//! [`Models`]: crate::roles::Models
//! [`Versions`]: crate::roles::Versions
//! [`Searches`]: crate::roles::Searches

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The model's name.
    Name,
    /// A tag of the record searched (model tags for models, version tags
    /// for versions).
    Tag(String),
    RunId,
    /// The version number.
    Version,
    /// The version's source URI.
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    /// A missing value (e.g. an absent tag) counts as different.
    Ne,
    /// SQL `LIKE` pattern (`%`, `_`), case-sensitive.
    Like,
    /// SQL `LIKE` pattern, case-insensitive.
    ILike,
    In,
    /// A missing value counts as not in the list.
    NotIn,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub op: Op,
    /// One value, or the list of `IN` / `NOT IN`. Version numbers are given
    /// as decimal text.
    pub values: Vec<String>,
}

impl Condition {
    pub fn new(field: Field, op: Op, values: &[&str]) -> Self {
        Condition {
            field,
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    Name,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBy {
    pub key: OrderKey,
    pub descending: bool,
}

/// One search: every condition must hold; results ordered by `order_by`
/// (then by record id), `limit` of them from `offset`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    pub conditions: Vec<Condition>,
    pub order_by: Vec<OrderBy>,
    pub offset: u64,
    pub limit: u32,
}

/// A page of search results; `next_offset` is set when more may follow.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage<T> {
    pub items: Vec<T>,
    pub next_offset: Option<u64>,
}
