//! The `Searches` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::search::{Search, SearchPage};
use crate::types::*;

/// Searches across models and versions (MLflow), and the latest version per stage.
#[async_trait]
pub trait Searches: Send + Sync {
    async fn search_models(&self, search: &Search) -> Result<SearchPage<Model>>;

    /// Versions of every model matching the search.
    async fn search_versions(&self, search: &Search) -> Result<SearchPage<Version>>;

    /// The highest version in each stage (only `stages` when not empty).
    async fn latest_versions(&self, model: &str, stages: &[Stage]) -> Result<Vec<Version>>;
}
