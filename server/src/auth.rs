//! Bearer tokens and roles for every request.
//!
//! The secret's sha256 is looked up in the registry; known tokens are cached
//! in memory for [`TOKEN_CACHE_TTL`] (and the whole cache is cleared when
//! this daemon revokes a token), so an alias lookup does not cost a
//! database read for authentication, and a token revoked through another
//! daemon sharing the registry stops working here within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use modelwatch_registry::audit::AuditEvent;
use modelwatch_registry::{Actor, AliasProtection, RegistryStore, Role, TokenInfo, tokens};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::tls::ClientIdentity;

/// How long a looked-up token is trusted without reading the registry
/// again: the most a revocation on another daemon takes to apply here
/// (one lookup per token per half second is nothing to the database).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_millis(500);

/// Where a credential was presented: the `via` of `auth.failed` entries
/// and of `modelwatch_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// REST, MLflow, OTLP and remote write, over HTTP or gRPC.
    Api,
    /// The web UI: its sign-in form and its session cookie.
    Ui,
    /// The PostgreSQL wire.
    Sql,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Ui => "ui",
            Via::Sql => "sql",
        }
    }
}

/// Every [`Via`], as metric label values.
pub const FAILURE_SOURCES: [&str; 3] = ["api", "ui", "sql"];

/// At most this many refused credentials are audited in a burst…
const AUDITED_FAILURE_BURST: u32 = 10;
/// …and one more each this long after: a client hammering bad tokens
/// cannot flood the chain (every entry is a write transaction), while a
/// human's failed sign-ins are all on the record.
const AUDITED_FAILURE_REFILL: Duration = Duration::from_secs(6);

/// Which refused credentials get an `auth.failed` entry (decided without
/// I/O): a token bucket, and the count of the ones left out since the
/// last entry, which that entry carries.
#[derive(Debug)]
pub struct FailureBudget {
    available: u32,
    refilled_at: Instant,
    suppressed: u64,
}

impl FailureBudget {
    pub fn new(now: Instant) -> Self {
        Self {
            available: AUDITED_FAILURE_BURST,
            refilled_at: now,
            suppressed: 0,
        }
    }

    /// `Some(failures left out since the last entry)` when this failure is
    /// to be audited, `None` when it is only counted.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let periods = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64()
            / AUDITED_FAILURE_REFILL.as_secs_f64();
        let whole = periods.floor().min(f64::from(AUDITED_FAILURE_BURST)) as u32;
        if whole > 0 {
            self.available = (self.available + whole).min(AUDITED_FAILURE_BURST);
            self.refilled_at = if self.available == AUDITED_FAILURE_BURST {
                now
            } else {
                self.refilled_at + AUDITED_FAILURE_REFILL * whole
            };
        }
        if self.available == 0 {
            self.suppressed += 1;
            return None;
        }
        self.available -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Authentication state shared by all requests.
pub struct Auth {
    store: Arc<dyn RegistryStore>,
    /// Token by secret hash, with when it was read.
    cache: RwLock<HashMap<String, (TokenInfo, Instant)>>,
    /// Only possible on a loopback listener (checked at start).
    disabled: bool,
    /// Aliases that only `approver` or `admin` may move (the store enforces
    /// it; handlers ask first for a clearer answer).
    protection: AliasProtection,
    failures: Mutex<FailureBudget>,
    /// Bearer JWTs from an identity provider (`--oidc-*`), beside tokens.
    oidc: Option<Arc<crate::oidc::OidcVerifier>>,
}

impl Auth {
    pub fn new(store: Arc<dyn RegistryStore>, disabled: bool, protection: AliasProtection) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
            disabled,
            protection,
            failures: Mutex::new(FailureBudget::new(Instant::now())),
            oidc: None,
        }
    }

    /// Also accepts the identity provider's JWTs as bearer tokens.
    pub fn with_oidc(mut self, oidc: Option<Arc<crate::oidc::OidcVerifier>>) -> Self {
        self.oidc = oidc;
        self
    }

    /// Counts a refused credential and, within the budget, audits it as
    /// `auth.failed` (in the background: the refusal does not wait for
    /// the write, and a failing registry does not turn 401 into 503).
    pub fn refused(&self, via: Via, reason: &str, token: Option<&str>) {
        crate::metrics::metrics()
            .auth_failures
            .with_label_values(&[via.as_str()])
            .inc();
        tracing::info!(via = via.as_str(), reason, token, "credential refused");
        let Some(suppressed) = self
            .failures
            .lock()
            .ok()
            .and_then(|mut b| b.admit(Instant::now()))
        else {
            return;
        };
        let event = AuditEvent::AuthFailed {
            reason: reason.to_string(),
            token: token.map(str::to_string),
            via: via.as_str(),
            suppressed,
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            let actor = Actor::new(UNAUTHENTICATED, Role::Reader);
            if let Err(e) = store.record_audit(&actor, &event).await {
                tracing::warn!(error = %e, "cannot audit a refused credential");
            }
        });
    }

    /// True with `--no-auth`: every caller is admin.
    pub fn disabled(&self) -> bool {
        self.disabled
    }

    /// Forgets cached tokens, e.g. after a revocation.
    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }

    /// The caller `bearer` stands for. A token that is presented and
    /// refused is counted and audited ([`Auth::refused`]); a missing one
    /// (health probes, a client not yet configured) is only refused.
    pub async fn authenticate(&self, bearer: Option<&str>, via: Via) -> Result<Actor, ApiError> {
        match self.check(bearer).await {
            Ok(actor) => Ok(actor),
            Err(Refusal::Unaudited(e)) => Err(e),
            Err(Refusal::Presented {
                error,
                reason,
                token,
            }) => {
                self.refused(via, reason, token.as_deref());
                Err(error)
            }
        }
    }

    /// The caller of a request that may also carry a verified client
    /// certificate (`--tls-client-ca`): a bearer token wins; without one,
    /// the certificate authenticates as role `ingest`.
    pub async fn authenticate_request(
        &self,
        bearer: Option<&str>,
        client: Option<&ClientIdentity>,
        via: Via,
    ) -> Result<Actor, ApiError> {
        match (bearer, client) {
            (None, Some(client)) if !self.disabled => Ok(client.actor()),
            _ => self.authenticate(bearer, via).await,
        }
    }

    async fn check(&self, bearer: Option<&str>) -> Result<Actor, Refusal> {
        if self.disabled {
            return Ok(Actor::new("anonymous", Role::Admin));
        }
        let secret = bearer.ok_or_else(|| {
            Refusal::Unaudited(ApiError::unauthenticated(
                "missing bearer token: send `Authorization: Bearer <token>`",
            ))
        })?;
        if let Some(oidc) = &self.oidc
            && crate::oidc::looks_like_jwt(secret)
        {
            // Checked on every request: a JWT carries its own expiry and a
            // verification needs no registry read.
            return match oidc.verify(secret) {
                Ok(identity) => Ok(Actor::new(identity.name, identity.role)),
                Err(e) => Err(Refusal::Presented {
                    error: ApiError::unauthenticated(e.to_string()),
                    reason: e.reason(),
                    token: None,
                }),
            };
        }
        let hash = tokens::hash_secret(secret);
        let fresh = self.cache.read().ok().and_then(|c| {
            c.get(&hash)
                .filter(|(_, read)| read.elapsed() < TOKEN_CACHE_TTL)
                .map(|(info, _)| info.clone())
        });
        if let Some(info) = fresh {
            return unexpired(info);
        }
        match self
            .store
            .token_by_hash(&hash)
            .await
            .map_err(|e| Refusal::Unaudited(e.into()))?
        {
            Some(info) => {
                if let Ok(mut cache) = self.cache.write() {
                    cache.insert(hash, (info.clone(), Instant::now()));
                }
                unexpired(info)
            }
            None => {
                if let Ok(mut cache) = self.cache.write() {
                    cache.remove(&hash);
                }
                Err(Refusal::Presented {
                    error: ApiError::unauthenticated("unknown or revoked token"),
                    reason: "unknown or revoked token",
                    token: None,
                })
            }
        }
    }

    /// The role needed to move `alias` (case-insensitive).
    pub fn role_for_alias(&self, alias: &str) -> Role {
        self.protection.role_to_move(alias)
    }
}

/// Why a credential was refused.
enum Refusal {
    /// No credential, or the registry could not be read: not audited.
    Unaudited(ApiError),
    /// A presented token was refused: counted and audited.
    Presented {
        error: ApiError,
        reason: &'static str,
        /// The token's name, when its secret matched a known token.
        token: Option<String>,
    },
}

/// The caller a token stands for, unless it has expired (checked on every
/// request, cached or not: expiry needs no registry read).
fn unexpired(info: TokenInfo) -> Result<Actor, Refusal> {
    if info.expired(chrono::Utc::now()) {
        return Err(Refusal::Presented {
            error: ApiError::unauthenticated(format!(
                "token {:?} expired at {}; ask an admin for a new one (modelwatch token create)",
                info.name,
                info.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            )),
            reason: "expired token",
            token: Some(info.name),
        });
    }
    Ok(Actor::new(info.name, info.role))
}

/// The actor of `auth.failed` entries.
pub const UNAUTHENTICATED: &str = "unauthenticated";

/// The authenticated caller of a request. Handlers state the role they need
/// with [`Caller::require`].
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl Caller {
    pub fn require(&self, role: Role) -> Result<&Actor, ApiError> {
        if self.0.role.allows(role) {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(format!(
                "token {:?} has role {}; this needs role {role} or higher",
                self.0.name, self.0.role
            )))
        }
    }
}

/// Extracts the token from `Authorization: Bearer …`.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    bearer_value(
        parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    )
}

/// The token of an `Authorization` header (HTTP) or `authorization`
/// metadata (gRPC) value: `Bearer <token>`.
pub fn bearer_value(value: Option<&[u8]>) -> Result<Option<&str>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = std::str::from_utf8(value)
        .map_err(|_| ApiError::unauthenticated("Authorization header is not valid text"))?;
    let (scheme, token) = text.split_once(' ').ok_or_else(|| {
        ApiError::unauthenticated("Authorization header must be `Bearer <token>`")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthenticated(
            "Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(Some(token.trim()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let client = parts.extensions.get::<ClientIdentity>();
        let actor = state
            .auth
            .authenticate_request(token, client, Via::Api)
            .await?;
        tracing::Span::current().record("actor", actor.name.as_str());
        Ok(Caller(actor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_are_audited_in_a_burst_then_a_few_a_minute_with_the_rest_counted() {
        let start = Instant::now();
        let mut budget = FailureBudget::new(start);
        // The burst: every one audited, none left out before it.
        for _ in 0..AUDITED_FAILURE_BURST {
            assert_eq!(budget.admit(start), Some(0));
        }
        // Then only counted…
        for _ in 0..5 {
            assert_eq!(budget.admit(start + Duration::from_secs(1)), None);
        }
        // …until one refill period has passed: that entry carries the five.
        let later = start + AUDITED_FAILURE_REFILL;
        assert_eq!(budget.admit(later), Some(5));
        assert_eq!(budget.admit(later), None);
        // A long quiet spell refills the whole burst, no more.
        let quiet = later + AUDITED_FAILURE_REFILL * 100;
        for _ in 0..AUDITED_FAILURE_BURST {
            assert!(budget.admit(quiet).is_some());
        }
        assert_eq!(budget.admit(quiet), None);
    }
}
