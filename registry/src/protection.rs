//! Protected aliases: the names (default `production`, `champion`) whose
//! moves need role `approver`.
//!
//! The rule is enforced by the store inside the transaction that makes the
//! change, for every path that can move, remove or rename a protected
//! alias: setting, deleting, promoting to it, a stage transition into or
//! out of the stage of the same name, deleting a version that stage holds,
//! deleting or renaming a model that has one. Handlers may check the same
//! rule earlier for a clearer answer, but they are not what guards it: a
//! new route cannot forget it. Names compare case-insensitively, so
//! `Production` and `PRODUCTION` are `production`.

use crate::error::{Error, Result};
use crate::types::{Actor, Role};

/// The aliases protected unless configured otherwise.
pub const DEFAULT_PROTECTED_ALIASES: &[&str] = &["production", "champion"];

/// Which aliases need `approver` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasProtection {
    /// Lowercased.
    names: Vec<String>,
}

impl Default for AliasProtection {
    fn default() -> Self {
        Self::new(DEFAULT_PROTECTED_ALIASES.iter().copied())
    }
}

impl AliasProtection {
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            names: names
                .into_iter()
                .map(|n| n.as_ref().trim().to_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Nothing protected.
    pub fn none() -> Self {
        Self { names: Vec::new() }
    }

    pub fn is_protected(&self, alias: &str) -> bool {
        let alias = alias.to_lowercase();
        self.names.contains(&alias)
    }

    /// The role needed to move `alias`.
    pub fn role_to_move(&self, alias: &str) -> Role {
        if self.is_protected(alias) {
            Role::Approver
        } else {
            Role::Editor
        }
    }

    /// Refuses `actor` moving `alias` (or the stage of that name) without
    /// the role it needs; `what` says what was attempted.
    pub fn check(&self, actor: &Actor, alias: &str, what: &str) -> Result<()> {
        let needed = self.role_to_move(alias);
        if actor.role.allows(needed) {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "{what} touches the protected alias {alias:?}; token {:?} has role {}, this needs role {needed} or higher",
            actor.name, actor.role
        )))
    }

    /// Refuses `actor` removing or renaming a model that has any protected
    /// alias among `aliases`.
    pub fn check_all<S: AsRef<str>>(
        &self,
        actor: &Actor,
        aliases: impl IntoIterator<Item = S>,
        what: &str,
    ) -> Result<()> {
        for alias in aliases {
            self.check(actor, alias.as_ref(), what)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_ignores_case_and_needs_approver() {
        let p = AliasProtection::default();
        for name in ["production", "Production", "PRODUCTION", "champion"] {
            assert!(p.is_protected(name), "{name}");
            assert_eq!(p.role_to_move(name), Role::Approver);
        }
        assert!(!p.is_protected("staging"));
        let editor = Actor::new("e", Role::Editor);
        let approver = Actor::new("a", Role::Approver);
        let e = p
            .check(&editor, "Production", "setting the alias")
            .unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
        assert!(e.to_string().contains("approver"), "{e}");
        p.check(&approver, "Production", "setting the alias")
            .unwrap();
        p.check(&editor, "staging", "setting the alias").unwrap();
        assert!(
            p.check_all(&editor, ["staging", "production"], "deleting the model")
                .is_err()
        );
        p.check_all(&editor, ["staging", "canary"], "deleting the model")
            .unwrap();
        assert!(!AliasProtection::none().is_protected("production"));
        assert!(AliasProtection::new([" Gold "]).is_protected("gold"));
    }
}
