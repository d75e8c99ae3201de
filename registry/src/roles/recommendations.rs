//! The `Recommendations` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;

/// Recommendations raised on versions and their lifecycle (see [`crate::rules::recommendation`]).
#[async_trait]
pub trait Recommendations: Send + Sync {
    /// Raises a recommendation, or refreshes the open one of the same kind on
    /// the same version (one open recommendation per kind per version).
    async fn raise_recommendation(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        new: NewRecommendation,
    ) -> Result<Recommendation>;

    async fn get_recommendation(&self, id: i64) -> Result<Recommendation>;

    async fn list_recommendations(
        &self,
        filter: &RecommendationFilter,
        page: &PageRequest,
    ) -> Result<Page<Recommendation>>;

    async fn transition_recommendation(
        &self,
        actor: &Actor,
        id: i64,
        transition: Transition,
        note: &str,
    ) -> Result<Recommendation>;
}
