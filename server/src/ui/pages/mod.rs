//! One file per page (or family of pages): handlers that gather what the
//! page shows through the services the API uses, and the page's markup.

pub mod audit;
pub mod daemon;
pub mod inbox;
pub mod login;
pub mod model;
pub mod models;
pub mod sql;
pub mod version;
pub mod version_metadata;
