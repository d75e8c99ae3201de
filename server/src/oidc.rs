//! OIDC bearer tokens: JWTs from an identity provider, checked against its
//! key set (JWKS) and mapped to a modelwatch role by a claim.
//!
//! [`verify`] decides, without I/O: the signature (RS256, ES256 or EdDSA
//! only — never `none`, never a shared-secret `HS*` algorithm, and the key
//! must be of the algorithm's type), the issuer, the audience, the expiry
//! (required) and not-before, each with [`LEEWAY`] for clock skew; then the
//! caller's name and role from the configured claims. [`OidcVerifier`] is
//! the thin part that holds the key set: read from a file, again when it
//! changes, or fetched from the provider's `jwks_uri` at start, every
//! [`JWKS_URL_REFRESH`] and soon after a token names a key it does not hold
//! (a key rotation at the provider needs no restart either way).
//!
//! What it must not do: fetch anything while a request waits, or accept a
//! token whose signature it did not check.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use serde_json::Value;

use modelwatch_registry::Role;

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// The JWKS file is looked at for changes at most this often.
const JWKS_RECHECK: Duration = Duration::from_secs(1);
/// A key set fetched from a URL is fetched again this often.
pub const JWKS_URL_REFRESH: Duration = Duration::from_secs(300);
/// ...and at most this often when tokens name keys it does not hold
/// (a rotation), so bogus tokens cannot make it hammer the provider.
pub const JWKS_URL_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Largest key set document read from a URL.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Longest token looked at: a JWT is a few KiB at most.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// What a caller authenticated by OIDC is named in the audit chain:
/// `oidc:` and the name claim (token names cannot hold a `:`).
pub const ACTOR_PREFIX: &str = "oidc:";

/// The `--oidc-*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// `iss` must equal this.
    pub issuer: String,
    /// `aud` must be or contain this.
    pub audience: String,
    /// Where the provider's key set is read from.
    pub jwks: JwksSource,
    /// The claim holding the caller's groups or roles: a string or an
    /// array of strings; a dotted path reaches into objects
    /// (`realm_access.roles`).
    pub role_claim: String,
    /// Claim value → role; the highest role any value maps to wins.
    pub role_map: Vec<(String, Role)>,
    /// The claim naming the caller (falls back to `sub`).
    pub name_claim: String,
}

/// Where the key set comes from: `--oidc-jwks-file` or `--oidc-jwks-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// An `https://` URL (the provider's `jwks_uri`).
    Url(String),
}

/// Why a JWT was refused. The message is the caller's: it names what is
/// wrong, never a key or a claim's secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("JWT algorithm {0:?} is not accepted: use RS256, ES256 or EdDSA")]
    Algorithm(String),
    #[error("no key in the identity provider's key set matches the JWT ({0})")]
    UnknownKey(String),
    #[error("the JWT's signature does not verify")]
    Signature,
    #[error("JWT issuer {found:?} is not the configured {expected:?}")]
    Issuer { found: String, expected: String },
    #[error("the JWT's audience does not include {0:?}")]
    Audience(String),
    #[error("the JWT has no `exp`: modelwatch accepts only tokens that expire")]
    NoExpiry,
    #[error("the JWT expired at {0}")]
    Expired(String),
    #[error("the JWT is not valid before {0}")]
    NotYetValid(String),
    #[error("the JWT has no {0:?} or `sub` claim to name the caller")]
    NoName(String),
    #[error("no value of the JWT's {claim:?} claim maps to a role (mapped: {mapped})")]
    NoRole { claim: String, mapped: String },
}

impl JwtError {
    /// A short fixed reason for the audit entry and the log.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Malformed(_) => "malformed JWT",
            JwtError::Algorithm(_) => "JWT algorithm not accepted",
            JwtError::UnknownKey(_) => "JWT signed by an unknown key",
            JwtError::Signature => "JWT signature does not verify",
            JwtError::Issuer { .. } => "JWT from another issuer",
            JwtError::Audience(_) => "JWT for another audience",
            JwtError::NoExpiry => "JWT without expiry",
            JwtError::Expired(_) => "expired JWT",
            JwtError::NotYetValid(_) => "JWT not yet valid",
            JwtError::NoName(_) => "JWT without a name",
            JwtError::NoRole { .. } => "JWT maps to no role",
        }
    }
}

/// A verification key of the identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point `04 ‖ x ‖ y`.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl Key {
    fn algorithm(&self) -> &'static str {
        match self {
            Key::Rsa { .. } => "RS256",
            Key::P256(_) => "ES256",
            Key::Ed25519(_) => "EdDSA",
        }
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Key::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Key::P256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            Key::Ed25519(raw) => UnparsedPublicKey::new(&ED25519, raw)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// The identity provider's keys (RFC 7517), the ones modelwatch can use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<(Option<String>, Key)>,
}

impl Jwks {
    /// Reads a JWKS document. Keys for encryption (`"use": "enc"`) and of
    /// types modelwatch does not verify are skipped; a document with no
    /// usable key is an error.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let doc: Value =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS JSON document: {e}"))?;
        let entries = doc["keys"]
            .as_array()
            .ok_or("a JWKS document is an object with a `keys` array")?;
        let b64 = |k: &Value, field: &str| {
            k[field]
                .as_str()
                .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
                .filter(|b| !b.is_empty())
        };
        let mut keys = Vec::new();
        for k in entries {
            if k["use"].as_str().is_some_and(|u| u != "sig") {
                continue;
            }
            let key = match (k["kty"].as_str(), k["crv"].as_str()) {
                (Some("RSA"), _) => match (b64(k, "n"), b64(k, "e")) {
                    (Some(n), Some(e)) => Key::Rsa { n, e },
                    _ => continue,
                },
                (Some("EC"), Some("P-256")) => match (b64(k, "x"), b64(k, "y")) {
                    (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                        let mut point = vec![4u8];
                        point.extend(x);
                        point.extend(y);
                        Key::P256(point)
                    }
                    _ => continue,
                },
                (Some("OKP"), Some("Ed25519")) => match b64(k, "x") {
                    Some(x) if x.len() == 32 => Key::Ed25519(x),
                    _ => continue,
                },
                _ => continue,
            };
            keys.push((k["kid"].as_str().map(str::to_string), key));
        }
        if keys.is_empty() {
            return Err(
                "the JWKS holds no signing key modelwatch can use (RSA, EC P-256 or OKP Ed25519)"
                    .into(),
            );
        }
        Ok(Self { keys })
    }
}

/// Who a verified JWT stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `oidc:` and the name claim.
    pub name: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// Whether a bearer value is shaped like a JWT (three base64url parts), so
/// it goes to OIDC rather than the token table.
pub fn looks_like_jwt(bearer: &str) -> bool {
    bearer.len() <= MAX_TOKEN_BYTES
        && bearer.split('.').count() == 3
        && bearer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks `token` against `jwks` and `config` at `now`.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    config: &OidcConfig,
    now: DateTime<Utc>,
) -> Result<Identity, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed(format!(
            "longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "a JWT has three dot-separated parts".into(),
        ));
    };
    let part = |b64: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| JwtError::Malformed(format!("its {what} is not base64url")))
    };
    let json = |bytes: Vec<u8>, what: &str| {
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| JwtError::Malformed(format!("its {what} is not a JSON object")))
    };
    let header = json(part(header_b64, "header")?, "header")?;
    let signature = part(signature_b64, "signature")?;
    let alg = header["alg"].as_str().unwrap_or("").to_string();
    if !matches!(alg.as_str(), "RS256" | "ES256" | "EdDSA") {
        return Err(JwtError::Algorithm(alg));
    }
    let kid = header["kid"].as_str();
    let candidates: Vec<&Key> = jwks
        .keys
        .iter()
        .filter(|(id, key)| key.algorithm() == alg && (kid.is_none() || id.as_deref() == kid))
        .map(|(_, key)| key)
        .collect();
    if candidates.is_empty() {
        return Err(JwtError::UnknownKey(match kid {
            Some(kid) => format!("kid {kid:?}, {alg}"),
            None => format!("no kid, {alg}"),
        }));
    }
    let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
    if !candidates
        .iter()
        .any(|key| key.verifies(signed.as_bytes(), &signature))
    {
        return Err(JwtError::Signature);
    }
    // Only now, with the signature checked, are the claims believed.
    let claims = json(part(claims_b64, "claims")?, "claims")?;
    let issuer = claims["iss"].as_str().unwrap_or("");
    if issuer != config.issuer {
        return Err(JwtError::Issuer {
            found: issuer.to_string(),
            expected: config.issuer.clone(),
        });
    }
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => *aud == config.audience,
        Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(&config.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(JwtError::Audience(config.audience.clone()));
    }
    let leeway = chrono::Duration::from_std(LEEWAY).unwrap_or_default();
    let time = |claim: &str| {
        claims[claim]
            .as_f64()
            .and_then(|s| Utc.timestamp_opt(s.floor() as i64, 0).single())
    };
    let expires_at = time("exp").ok_or(JwtError::NoExpiry)?;
    if now >= expires_at + leeway {
        return Err(JwtError::Expired(expires_at.to_rfc3339()));
    }
    if let Some(not_before) = time("nbf")
        && now + leeway < not_before
    {
        return Err(JwtError::NotYetValid(not_before.to_rfc3339()));
    }
    let name = claims[config.name_claim.as_str()]
        .as_str()
        .or_else(|| claims["sub"].as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| JwtError::NoName(config.name_claim.clone()))?;
    let role = role_from(&claims, config).ok_or_else(|| JwtError::NoRole {
        claim: config.role_claim.clone(),
        mapped: config
            .role_map
            .iter()
            .map(|(value, role)| format!("{value}={role}"))
            .collect::<Vec<_>>()
            .join(","),
    })?;
    Ok(Identity {
        name: format!("{ACTOR_PREFIX}{name}"),
        role,
        expires_at,
    })
}

/// The highest role any value of the role claim maps to.
fn role_from(claims: &Value, config: &OidcConfig) -> Option<Role> {
    let mut at = claims;
    for step in config.role_claim.split('.') {
        at = at.get(step)?;
    }
    let values: Vec<&str> = match at {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    config
        .role_map
        .iter()
        .filter(|(value, _)| values.contains(&value.as_str()))
        .map(|(_, role)| *role)
        .reduce(|a, b| if a.allows(b) { a } else { b })
}

/// [`verify`] with the provider's key set: read from `--oidc-jwks-file`
/// (again when it changes) or fetched from `--oidc-jwks-url`.
pub struct OidcVerifier {
    config: OidcConfig,
    jwks: RwLock<LoadedJwks>,
    /// Wakes the URL fetcher: a token named a key the set does not hold.
    unknown_key: Arc<tokio::sync::Notify>,
}

struct LoadedJwks {
    /// Shared so a request holds the set it checks with, without a copy
    /// and without the lock.
    jwks: Arc<Jwks>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// Reads the key set (the file, or the URL through `http`); a key set
    /// that cannot be had or holds no usable key stops the start. A URL
    /// is then followed by a background task for as long as the verifier
    /// lives.
    pub async fn start(config: OidcConfig, http: reqwest::Client) -> Result<Arc<Self>, String> {
        let (jwks, modified) = match &config.jwks {
            JwksSource::File(path) => read_jwks(path)?,
            JwksSource::Url(url) => (fetch_jwks(&http, url).await?, None),
        };
        let verifier = Arc::new(Self {
            jwks: RwLock::new(LoadedJwks {
                jwks: Arc::new(jwks),
                modified,
                checked: Instant::now(),
            }),
            unknown_key: Arc::new(tokio::sync::Notify::new()),
            config,
        });
        if let JwksSource::Url(url) = &verifier.config.jwks {
            tokio::spawn(follow_url(
                Arc::downgrade(&verifier),
                verifier.unknown_key.clone(),
                http,
                url.clone(),
            ));
        }
        Ok(verifier)
    }

    pub fn verify(&self, token: &str) -> Result<Identity, JwtError> {
        if let JwksSource::File(path) = &self.config.jwks {
            self.refresh_file(path);
        }
        let jwks = match self.jwks.read() {
            Ok(loaded) => loaded.jwks.clone(),
            Err(_) => Arc::new(Jwks::default()),
        };
        let verified = verify(token, &jwks, &self.config, Utc::now());
        if matches!(verified, Err(JwtError::UnknownKey(_) | JwtError::Signature)) {
            // Perhaps the provider rotated its keys: fetch soon (a URL
            // only; a file is looked at on every request anyway).
            self.unknown_key.notify_one();
        }
        verified
    }

    fn replace(&self, jwks: Jwks, modified: Option<SystemTime>) {
        if let Ok(mut loaded) = self.jwks.write() {
            loaded.jwks = Arc::new(jwks);
            loaded.modified = modified;
        }
    }

    /// Re-reads the file when its time changed. A new file that does not
    /// parse keeps the keys in use, and says why in the log.
    fn refresh_file(&self, path: &Path) {
        let due = self
            .jwks
            .read()
            .map(|l| l.checked.elapsed() >= JWKS_RECHECK)
            .unwrap_or(false);
        if !due {
            return;
        }
        let Ok(mut loaded) = self.jwks.write() else {
            return;
        };
        loaded.checked = Instant::now();
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified == loaded.modified {
            return;
        }
        match read_jwks(path) {
            Ok((jwks, modified)) => {
                tracing::info!(file = %path.display(), "OIDC key set reloaded");
                loaded.jwks = Arc::new(jwks);
                loaded.modified = modified;
            }
            Err(e) => {
                tracing::error!(error = %e, "the new OIDC key set cannot be used; keeping the previous keys");
                loaded.modified = modified;
            }
        }
    }
}

/// Fetches `url` again every [`JWKS_URL_REFRESH`], and after a token named
/// an unknown key (at most every [`JWKS_URL_MIN_INTERVAL`]), until the
/// verifier is gone. A failed fetch keeps the keys in use.
async fn follow_url(
    verifier: std::sync::Weak<OidcVerifier>,
    unknown_key: Arc<tokio::sync::Notify>,
    http: reqwest::Client,
    url: String,
) {
    let mut fetched = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(fetched + JWKS_URL_REFRESH) => {}
            _ = unknown_key.notified() => {
                tokio::time::sleep_until(fetched + JWKS_URL_MIN_INTERVAL).await;
            }
        }
        let fetch = fetch_jwks(&http, &url).await;
        fetched = tokio::time::Instant::now();
        let Some(verifier) = verifier.upgrade() else {
            return;
        };
        match fetch {
            Ok(jwks) => {
                let changed = verifier
                    .jwks
                    .read()
                    .map(|l| *l.jwks != jwks)
                    .unwrap_or(true);
                if changed {
                    tracing::info!(%url, "OIDC key set fetched anew: it changed");
                }
                verifier.replace(jwks, None);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot fetch the OIDC key set; keeping the previous keys")
            }
        }
    }
}

fn read_jwks(path: &Path) -> Result<(Jwks, Option<SystemTime>), String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read --oidc-jwks-file {}: {e}", path.display()))?;
    let jwks =
        Jwks::parse(&bytes).map_err(|e| format!("--oidc-jwks-file {}: {e}", path.display()))?;
    Ok((jwks, modified))
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<Jwks, String> {
    let failed =
        |e: String| format!("cannot fetch the OIDC key set from --oidc-jwks-url {url}: {e}");
    let reply = http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| failed(modelwatch_client::root_cause(&e)))?;
    if !reply.status().is_success() {
        return Err(failed(format!("HTTP {}", reply.status())));
    }
    if reply
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(failed(format!("larger than {MAX_JWKS_BYTES} bytes")));
    }
    let bytes = reply
        .bytes()
        .await
        .map_err(|e| failed(modelwatch_client::root_cause(&e)))?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(failed(format!("larger than {MAX_JWKS_BYTES} bytes")));
    }
    Jwks::parse(&bytes).map_err(failed)
}

#[cfg(test)]
mod tests;
