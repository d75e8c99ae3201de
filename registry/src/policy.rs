//! Monitoring policies as the registry stores them. The policy itself is
//! defined (and validated) in `modelwatch-types`, which every component
//! reading it shares.

pub use modelwatch_types::policy::*;
pub use modelwatch_types::records::PolicyRecord;
