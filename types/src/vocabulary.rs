//! The registry's vocabulary as every crate speaks it: roles, feature kinds,
//! stages, alias moves, recommendation kinds and states. Their text forms
//! are public names (API JSON, SQL columns, audit entries, metric labels):
//! change one only with a deprecation path.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A value that is not one of the names a field accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct InvalidValue {
    /// The field (as the API names it).
    pub field: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl InvalidValue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Free-form string tags on models and versions.
pub type Tags = BTreeMap<String, String>;

/// An enum whose variants have fixed lowercase text forms: `as_str`,
/// `FromStr` (error [`InvalidValue`] naming `$field` and the accepted
/// words), `Display`, serde and OpenAPI, all from one list. Exported for the
/// other crates' public words (e.g. the evaluator's outcomes).
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident as $field:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The public text form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::InvalidValue;
            fn from_str(s: &str) -> ::std::result::Result<Self, $crate::InvalidValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::InvalidValue::new(
                        $field,
                        format!(
                            "unknown value {other:?}; expected one of {}",
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// Token roles. `reader` ⊂ `editor` ⊂ `approver` ⊂ `admin`; `ingest`
    /// only writes telemetry and is included in `admin`.
    Role as "role" {
        Reader => "reader",
        Ingest => "ingest",
        Editor => "editor",
        Approver => "approver",
        Admin => "admin",
    }
);

impl Role {
    /// Whether a token of this role may do what `required` allows.
    pub fn allows(self, required: Role) -> bool {
        use Role::*;
        match (self, required) {
            (Admin, _) => true,
            (Ingest, Ingest) => true,
            (Ingest, _) | (_, Ingest) => false,
            (have, need) => have.rank() >= need.rank(),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Ingest => 0,
            Role::Reader => 1,
            Role::Editor => 2,
            Role::Approver => 3,
            Role::Admin => 4,
        }
    }
}

named_enum!(
    /// How a feature's values are read: `numeric` values go to
    /// `features_num` in the telemetry tables, `categorical` ones (text,
    /// booleans) to `features_str`.
    FeatureKind as "feature kind" {
        Numeric => "numeric",
        Categorical => "categorical",
    }
);

/// A version's known features: name → kind. Empty means none declared yet
/// (the first reference upload then declares them).
pub type Features = BTreeMap<String, FeatureKind>;

named_enum!(
    /// Whether a version is in use.
    VersionStatus as "status" {
        Ready => "ready",
        Archived => "archived",
    }
);

named_enum!(
    /// How an alias moved: `set` pushes a version on its deployment stack,
    /// `rollback` pops back to the one below, `delete` clears it.
    MoveKind as "alias move kind" {
        Set => "set",
        Rollback => "rollback",
        Delete => "delete",
    }
);

named_enum!(
    /// What a recommendation asks for.
    RecommendationKind as "kind" {
        Retrain => "retrain",
        Rollback => "rollback",
        Promote => "promote",
    }
);

named_enum!(
    /// How urgent a recommendation is.
    Severity as "severity" {
        Info => "info",
        Warning => "warning",
        Critical => "critical",
    }
);

named_enum!(
    /// A recommendation's lifecycle: `open` → `applied` | `dismissed` |
    /// `superseded`.
    RecommendationStatus as "status" {
        Open => "open",
        Applied => "applied",
        Dismissed => "dismissed",
        Superseded => "superseded",
    }
);

named_enum!(
    /// A step in a recommendation's lifecycle.
    Transition as "transition" {
        /// Seen by a person; stays open.
        Acknowledge => "acknowledge",
        Apply => "apply",
        Dismiss => "dismiss",
        Supersede => "supersede",
    }
);

/// MLflow's model-version stages. A stage is a column of its own, not an
/// alias: MLflow clients read and set it independently of aliases (and of
/// [`VersionStatus`]), so tying it to an alias would move deployments behind
/// the back of people who only use one of the two. Spelled as MLflow does
/// (`Production`), parsed case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::None,
        Stage::Staging,
        Stage::Production,
        Stage::Archived,
    ];

    /// MLflow's spelling, also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }
}

impl FromStr for Stage {
    type Err = InvalidValue;
    /// Case-insensitive, as MLflow accepts `production` for `Production`.
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                InvalidValue::new(
                    "stage",
                    format!(
                        "unknown stage {s:?}; expected one of None, Staging, Production, Archived"
                    ),
                )
            })
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Alias names: a letter, then letters, digits, `_` or `-`, at most 64.
/// `latest` and `v<digits>` are reserved, as in MLflow, because clients use
/// them as version selectors.
pub fn check_alias_name(name: &str) -> Result<(), InvalidValue> {
    let shape_ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if !shape_ok {
        return Err(InvalidValue::new(
            "alias",
            format!(
                "{name:?} is not a valid alias: use 1-64 letters, digits, '_' or '-', starting with a letter"
            ),
        ));
    }
    let lower = name.to_ascii_lowercase();
    let reserved = lower == "latest"
        || (lower.len() > 1
            && lower.starts_with('v')
            && lower[1..].chars().all(|c| c.is_ascii_digit()));
    if reserved {
        return Err(InvalidValue::new(
            "alias",
            format!(
                "{name:?} is reserved ('latest' and 'v<number>' select versions); choose another alias"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.as_str())
            );
        }
        for k in RecommendationStatus::ALL {
            assert_eq!(k.to_string().parse::<RecommendationStatus>().unwrap(), *k);
        }
        assert_eq!("production".parse::<Stage>().unwrap(), Stage::Production);
        assert_eq!(
            serde_json::to_value(Stage::Production).unwrap(),
            "Production"
        );
        let e = "owner".parse::<Role>().unwrap_err();
        assert_eq!(e.field, "role");
        assert!(e.message.contains("reader, ingest"), "{e}");
    }

    #[test]
    fn roles_nest_and_ingest_stands_apart() {
        assert!(Role::Admin.allows(Role::Ingest));
        assert!(Role::Approver.allows(Role::Editor));
        assert!(!Role::Editor.allows(Role::Approver));
        assert!(!Role::Ingest.allows(Role::Reader));
        assert!(!Role::Reader.allows(Role::Ingest));
    }

    #[test]
    fn alias_names() {
        for ok in ["production", "champion", "canary-2", "a_b"] {
            check_alias_name(ok).unwrap();
        }
        for bad in [
            "",
            "2x",
            "latest",
            "v12",
            "V3",
            "with space",
            &"a".repeat(65),
        ] {
            assert!(check_alias_name(bad).is_err(), "{bad:?}");
        }
    }
}
