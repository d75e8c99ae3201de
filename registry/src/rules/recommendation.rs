//! The recommendation lifecycle, decided without a database.
//!
//! At most one recommendation per (model, version, kind) is `open`:
//! raising another of the same kind refreshes the open one (new severity,
//! reason and evidence; audited as `recommendation.update`, which is not a
//! webhook event) instead of adding a second. Only an open recommendation
//! moves: `acknowledge` keeps it open and records who saw it; `apply`,
//! `dismiss` and `supersede` resolve it for good. Deleting a version
//! supersedes its open recommendations ([`VERSION_DELETED_NOTE`]).

use crate::error::{Error, Result};
use crate::types::{RecommendationStatus, Transition};

/// What raising a recommendation does, given the id of the open one of the
/// same kind on the same version, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raise {
    /// Insert a new open recommendation.
    New,
    /// Refresh this open recommendation's severity, reason and evidence.
    Refresh(i64),
}

impl Raise {
    pub fn decide(open: Option<i64>) -> Self {
        match open {
            Some(id) => Raise::Refresh(id),
            None => Raise::New,
        }
    }

    /// The audit action recording it.
    pub fn audit_action(self) -> &'static str {
        match self {
            Raise::New => "recommendation.raise",
            Raise::Refresh(_) => "recommendation.update",
        }
    }
}

/// What a transition changes on an open recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Record who acknowledged it and when; it stays open.
    Acknowledge,
    /// Resolve it with this status, who and when, and the note.
    Resolve(RecommendationStatus),
}

/// Whether recommendation `id`, now `status`, may take `transition`, and
/// what it does then. Only open recommendations move.
pub fn transition(id: i64, status: RecommendationStatus, transition: Transition) -> Result<Effect> {
    if status != RecommendationStatus::Open {
        return Err(Error::Conflict(format!(
            "recommendation {id} is {status}; only open recommendations can be {}",
            match transition {
                Transition::Acknowledge => "acknowledged",
                Transition::Apply => "applied",
                Transition::Dismiss => "dismissed",
                Transition::Supersede => "superseded",
            }
        )));
    }
    Ok(match transition {
        Transition::Acknowledge => Effect::Acknowledge,
        Transition::Apply => Effect::Resolve(RecommendationStatus::Applied),
        Transition::Dismiss => Effect::Resolve(RecommendationStatus::Dismissed),
        Transition::Supersede => Effect::Resolve(RecommendationStatus::Superseded),
    })
}

/// The audit action of a transition (`recommendation.apply`, …).
pub fn transition_action(transition: Transition) -> String {
    format!("recommendation.{}", transition.as_str())
}

/// The resolution note of the open recommendations a version deletion
/// supersedes (status `superseded`, resolved by the deleting actor).
pub const VERSION_DELETED_NOTE: &str = "version deleted";

/// The audit target of a recommendation.
pub fn target(id: i64) -> String {
    format!("recommendation/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_refreshes_the_open_one_instead_of_adding_another() {
        assert_eq!(Raise::decide(None), Raise::New);
        assert_eq!(Raise::decide(Some(7)), Raise::Refresh(7));
        assert_eq!(Raise::New.audit_action(), "recommendation.raise");
        assert_eq!(Raise::Refresh(7).audit_action(), "recommendation.update");
    }

    #[test]
    fn only_open_recommendations_move() {
        use RecommendationStatus::*;
        let table = [
            (Transition::Acknowledge, Effect::Acknowledge),
            (Transition::Apply, Effect::Resolve(Applied)),
            (Transition::Dismiss, Effect::Resolve(Dismissed)),
            (Transition::Supersede, Effect::Resolve(Superseded)),
        ];
        for (t, effect) in table {
            assert_eq!(transition(1, Open, t).unwrap(), effect, "{t:?}");
            for closed in [Applied, Dismissed, Superseded] {
                match transition(3, closed, t) {
                    Err(Error::Conflict(m)) => {
                        assert!(
                            m.starts_with(&format!("recommendation 3 is {closed}")),
                            "{m}"
                        )
                    }
                    other => panic!("{t:?} from {closed}: {other:?}"),
                }
            }
        }
        let Err(Error::Conflict(m)) = transition(3, Applied, Transition::Supersede) else {
            panic!()
        };
        assert!(m.ends_with("can be superseded"), "{m}");
        let Err(Error::Conflict(m)) = transition(3, Applied, Transition::Dismiss) else {
            panic!()
        };
        assert!(m.ends_with("can be dismissed"), "{m}");
        assert_eq!(transition_action(Transition::Apply), "recommendation.apply");
        assert_eq!(target(4), "recommendation/4");
    }
}
