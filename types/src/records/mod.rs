//! The native API's records as it sends and receives them: the registry's
//! models, versions, aliases and the rest, and the server's replies that
//! the client reads (gate decisions).
//!
//! One definition serves the registry (which returns them), the server
//! (which serializes them and derives its OpenAPI document from them) and
//! the typed client (which decodes them); the server cannot depend on the
//! client, so a shape both need lives here. Field names here are the public
//! JSON names; storage columns are mapped to them by hand in each backend,
//! so renaming a column never renames a field. Change a field only with a
//! deprecation path.
//!
//! Requests (`New…`, `…Update`) reject unknown fields, so a typo is a 400
//! rather than a silently ignored setting; replies accept unknown fields,
//! so an older client reads a newer daemon.

mod alerts;
mod artifacts;
mod cluster;
mod gates;
mod metadata;
mod registry;
mod webhooks;

pub use alerts::{AlertHandled, AlertOutcome, AlertRecord};
pub use artifacts::{
    ArtifactFile, ArtifactListing, ArtifactsState, NewUpload, SealArtifacts, UploadStatus,
};
pub use cluster::{ClusterMember, ClusterView, DutyLease};
pub use gates::{GateReport, Promotion};
pub use metadata::{
    DataType, Environment, MAX_INPUT_EXAMPLE_BYTES, MetadataUpdate, ModelCard, ModelMetadata,
    Signature, SignatureField,
};
pub use registry::*;
pub use webhooks::{CreatedWebhook, DeliveryStatus, NewWebhook, Webhook, WebhookDelivery};
