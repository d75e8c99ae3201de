//! Duty leases, decided without a database: whether a daemon asking for a
//! duty gets it, keeps it, or must wait, and with which fencing token.
//!
//! The backend locks the duty's lease row, reads it, asks [`decide`], and
//! writes what it decided, in one transaction; the row lock makes two
//! daemons asking at once decide one after the other.

use chrono::{DateTime, Utc};

/// A duty's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub token: i64,
    pub expires_at: DateTime<Utc>,
}

/// What a claim of a duty does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// The claimant holds it: extend the expiry, keep the token (no other
    /// daemon took it meanwhile, so nothing it wrote is stale).
    Renew { token: i64 },
    /// Nobody holds it (never held, released, or expired): the claimant
    /// takes it with a token one past the last, which fences the previous
    /// holder's writes.
    TakeOver { token: i64 },
    /// Another daemon holds it until `expires_at`.
    HeldElsewhere,
}

/// Decides a claim by `claimant` at `now` on a duty whose lease is
/// `current` (`None`: never held).
pub fn decide(current: Option<&LeaseRow>, claimant: &str, now: DateTime<Utc>) -> LeaseDecision {
    match current {
        None => LeaseDecision::TakeOver { token: 1 },
        Some(lease) if lease.holder == claimant && lease.expires_at > now => {
            LeaseDecision::Renew { token: lease.token }
        }
        Some(lease) if lease.expires_at <= now => LeaseDecision::TakeOver {
            token: lease.token + 1,
        },
        Some(_) => LeaseDecision::HeldElsewhere,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn lease(holder: &str, token: i64, expires: i64) -> LeaseRow {
        LeaseRow {
            holder: holder.into(),
            token,
            expires_at: at(expires),
        }
    }

    #[test]
    fn a_duty_never_held_is_taken_with_token_one() {
        assert_eq!(
            decide(None, "a", at(0)),
            LeaseDecision::TakeOver { token: 1 }
        );
    }

    #[test]
    fn the_holder_renews_with_its_token_until_expiry() {
        let l = lease("a", 7, 10);
        assert_eq!(
            decide(Some(&l), "a", at(9)),
            LeaseDecision::Renew { token: 7 }
        );
        assert_eq!(decide(Some(&l), "b", at(9)), LeaseDecision::HeldElsewhere);
    }

    #[test]
    fn an_expired_lease_is_taken_over_with_the_next_token_by_anyone() {
        let l = lease("a", 7, 10);
        assert_eq!(
            decide(Some(&l), "b", at(10)),
            LeaseDecision::TakeOver { token: 8 }
        );
        // Its own expired lease too: something else may have run meanwhile
        // (a release, a takeover that expired), so the old token is stale.
        assert_eq!(
            decide(Some(&l), "a", at(11)),
            LeaseDecision::TakeOver { token: 8 }
        );
    }
}
