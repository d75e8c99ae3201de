//! Bearer tokens and roles for every request.
//!
//! The secret's sha256 is looked up in the registry; known tokens are cached
//! in memory for [`TOKEN_CACHE_TTL`] (and the whole cache is cleared when
//! this daemon revokes a token), so an alias lookup does not cost a
//! database read for authentication, and a token revoked through another
//! daemon sharing the registry stops working here within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use modelwatch_registry::{Actor, AliasProtection, RegistryStore, Role, TokenInfo, tokens};

use crate::http::AppState;
use crate::http::error::ApiError;

/// How long a looked-up token is trusted without reading the registry
/// again: the most a revocation on another daemon takes to apply here
/// (one lookup per token per half second is nothing to the database).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_millis(500);

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
}

impl Auth {
    pub fn new(store: Arc<dyn RegistryStore>, disabled: bool, protection: AliasProtection) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
            disabled,
            protection,
        }
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

    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Actor, ApiError> {
        if self.disabled {
            return Ok(Actor::new("anonymous", Role::Admin));
        }
        let secret = bearer.ok_or_else(|| {
            ApiError::unauthenticated("missing bearer token: send `Authorization: Bearer <token>`")
        })?;
        let hash = tokens::hash_secret(secret);
        let fresh = self.cache.read().ok().and_then(|c| {
            c.get(&hash)
                .filter(|(_, read)| read.elapsed() < TOKEN_CACHE_TTL)
                .map(|(info, _)| info.clone())
        });
        if let Some(info) = fresh {
            return unexpired(info);
        }
        match self.store.token_by_hash(&hash).await? {
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
                Err(ApiError::unauthenticated("unknown or revoked token"))
            }
        }
    }

    /// The role needed to move `alias` (case-insensitive).
    pub fn role_for_alias(&self, alias: &str) -> Role {
        self.protection.role_to_move(alias)
    }
}

/// The caller a token stands for, unless it has expired (checked on every
/// request, cached or not: expiry needs no registry read).
fn unexpired(info: TokenInfo) -> Result<Actor, ApiError> {
    if info.expired(chrono::Utc::now()) {
        return Err(ApiError::unauthenticated(format!(
            "token {:?} expired at {}; ask an admin for a new one (modelwatch token create)",
            info.name,
            info.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        )));
    }
    Ok(Actor::new(info.name, info.role))
}

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
        let actor = state.auth.authenticate(token).await?;
        tracing::Span::current().record("actor", actor.name.as_str());
        Ok(Caller(actor))
    }
}
