//! Who is looking at a page: the session cookie, its role, and the CSRF
//! token every form carries.
//!
//! The session cookie holds the token the person pasted at `/ui/login`
//! (`HttpOnly`, `SameSite=Strict`, path `/ui`): it never appears in a page
//! or in script-readable storage, each request authenticates it exactly
//! like a bearer token (so a revoked token ends its sessions within
//! [`crate::auth::TOKEN_CACHE_TTL`] on every daemon), and nothing is kept
//! on the server, so any daemon behind a load balancer serves the session.
//!
//! Every form carries a CSRF token derived from the session
//! (HMAC-SHA256 keyed by the cookie's value): a page of another site can
//! neither read it nor compute it. Forms are also refused when the
//! browser says they came from another origin. The login form, before
//! there is a session, uses a random cookie and the same value in the form
//! (double submit).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use modelwatch_registry::Role;

use super::UiError;
use crate::auth::Caller;
use crate::http::AppState;

/// The cookie that holds the session's token.
pub const SESSION_COOKIE: &str = "modelwatch_session";
/// The login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "modelwatch_login";
/// The form field every POST must carry.
pub const CSRF_FIELD: &str = "csrf";
/// How long a browser keeps the session (the token itself may live longer).
pub const SESSION_SECONDS: u64 = 8 * 3600;

/// The person behind a page request: their role and their form token.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    csrf: String,
    /// The request came from another origin (`Origin` names another host).
    cross_origin: bool,
}

impl Viewer {
    pub fn name(&self) -> &str {
        &self.caller.0.name
    }

    pub fn role(&self) -> Role {
        self.caller.0.role
    }

    /// Whether the viewer's role allows `role` (to show a button or not;
    /// the handler behind it checks again).
    pub fn can(&self, role: Role) -> bool {
        self.role().allows(role)
    }

    /// The token a form of this session carries in [`CSRF_FIELD`].
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The fields of a posted form, refused (403) without this session's
    /// CSRF token or from another origin; nothing has been done yet when
    /// this fails.
    pub fn form(&self, body: &[u8]) -> Result<Form, UiError> {
        let form = Form::parse(body);
        self.check_form(&form)?;
        Ok(form)
    }

    fn check_form(&self, form: &Form) -> Result<(), UiError> {
        if self.cross_origin {
            return Err(UiError::forbidden(
                "this form was sent from another site; open modelwatch and use its own form",
            ));
        }
        match form.get(CSRF_FIELD) {
            Some(token) if constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(UiError::forbidden(
                "the form's CSRF token is missing or does not belong to this session; reload the page and send the form again",
            )),
        }
    }
}

/// A form body (`application/x-www-form-urlencoded`), field by field.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field's trimmed text, empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_string()
    }
}

/// HMAC-SHA256 of `purpose` keyed by `key`, hex.
pub fn derive(key: &str, purpose: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(purpose.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Whether `Origin` (when the browser sent one) names a host other than
/// the one the request was sent to.
fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

/// Longest cookie value kept: a session cookie holds the token, and an
/// identity provider's JWT takes a few KiB (browsers keep 4 KiB a cookie).
const MAX_COOKIE_VALUE: usize = 4000;

/// Only characters a token and a cookie value may both hold.
pub fn cookie_safe(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_COOKIE_VALUE
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'))
}

/// `Set-Cookie` for a cookie of the UI (`HttpOnly`, `SameSite=Strict`,
/// path `/ui`); `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: u64) -> String {
    format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(session) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(UiError::login(parts.uri.path()));
        };
        let actor = state
            .auth
            .authenticate(Some(session), crate::auth::Via::Ui)
            .await
            .map_err(|e| match e.status.as_u16() {
                401 => UiError::login(parts.uri.path()),
                _ => UiError::from(e),
            })?;
        tracing::Span::current().record("actor", actor.name.as_str());
        Ok(Viewer {
            caller: Caller(actor),
            csrf: derive(session, "modelwatch-ui-csrf"),
            cross_origin: cross_origin(&parts.headers),
        })
    }
}

/// The login form's origin check (there is no session yet).
pub fn login_cross_origin(headers: &HeaderMap) -> bool {
    cross_origin(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn cookies_are_found_among_several_headers_and_pairs() {
        let h = headers(&[("cookie", "a=1; modelwatch_session=tok"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "modelwatch"), None);
        assert_eq!(
            cookie(
                &headers(&[("cookie", "modelwatch_session=")]),
                SESSION_COOKIE
            ),
            None
        );
    }

    #[test]
    fn another_origin_is_recognised_and_a_missing_one_is_not() {
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(!cross_origin(&same));
        let other = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert!(cross_origin(&other));
        assert!(cross_origin(&headers(&[("host", "h"), ("origin", "null")])));
        assert!(!cross_origin(&headers(&[("host", "h")])));
    }

    #[test]
    fn the_csrf_token_depends_on_the_session_and_is_compared_whole() {
        assert_ne!(derive("a", "p"), derive("b", "p"));
        assert_eq!(derive("a", "p"), derive("a", "p"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn only_cookie_safe_tokens_are_accepted() {
        assert!(cookie_safe("mw_abc-DEF_123"));
        // An identity provider's JWT fits; more than a browser keeps does not.
        assert!(cookie_safe(&"x".repeat(MAX_COOKIE_VALUE)));
        let too_long = "x".repeat(MAX_COOKIE_VALUE + 1);
        for bad in ["", "a b", "a;b", "a,b", "a\"b", "é", &too_long] {
            assert!(!cookie_safe(bad), "{bad:?}");
        }
    }
}
