//! The `Models` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;

/// Models: create, read, list, update, rename, delete.
#[async_trait]
pub trait Models: Send + Sync {
    async fn create_model(&self, actor: &Actor, new: NewModel) -> Result<Model>;

    async fn get_model(&self, name: &str) -> Result<Model>;

    async fn list_models(&self, filter: &ModelFilter, page: &PageRequest) -> Result<Page<Model>>;

    async fn update_model(&self, actor: &Actor, name: &str, update: ModelUpdate) -> Result<Model>;

    /// Deletes the model with its versions, aliases and recommendations.
    async fn delete_model(&self, actor: &Actor, name: &str) -> Result<()>;

    /// Renames a model; its versions, aliases and policy follow. Audited as
    /// `model.rename` on the old name's target.
    async fn rename_model(&self, actor: &Actor, name: &str, new_name: &str) -> Result<Model>;
}
