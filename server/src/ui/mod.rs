//! The web UI under `/ui/`, served by the daemon on its main listener.
//!
//! Server-rendered HTML ([`maud`] templates are Rust functions in
//! `pages/`), charts as inline SVG ([`charts`]), one stylesheet compiled in
//! (`assets/`), **no JavaScript**: every action is a plain form POST that
//! carries a CSRF token, so the Content-Security-Policy can forbid scripts
//! altogether. Handlers stay thin like the API's: they authorize with the
//! same roles ([`crate::auth::Caller::require`]), call the same registry,
//! gate and SQL services as the routes under `/api/v1`, and shape a page.
//!
//! Must not: keep state of its own (sessions live in the browser's cookie,
//! see [`session`]), write anything the API could not write with the same
//! token, or echo a value without escaping (maud escapes every `(value)`;
//! nothing here uses `PreEscaped` on user data).

mod charts;
mod layout;
mod pages;
mod query;
mod session;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use crate::http::AppState;
use crate::http::error::ApiError;
use layout::Nav;

/// Where the stylesheet is served (its content is compiled in).
pub const STYLESHEET_PATH: &str = "/ui/assets/modelwatch.css";
const STYLESHEET: &str = include_str!("assets/modelwatch.css");

/// The policy of every UI response: nothing but this origin's stylesheet,
/// images and forms; no script at all, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The UI's routes, merged into the main application by [`crate::http::app`].
pub fn routes(max_body_bytes: usize) -> Router<AppState> {
    pages::daemon::STARTED.get_or_init(std::time::Instant::now);
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/models") }))
        .route("/ui", get(|| async { Redirect::to("/ui/models") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/models") }))
        .route(STYLESHEET_PATH, get(stylesheet))
        .route(
            "/ui/login",
            get(pages::login::form).post(pages::login::submit),
        )
        .route("/ui/logout", post(pages::login::logout))
        .route("/ui/models", get(pages::models::list))
        .route("/ui/models/{model}", get(pages::model::show))
        .route("/ui/models/{model}/policy", post(pages::model::set_policy))
        .route(
            "/ui/models/{model}/promote/check",
            post(pages::model::check_promotion),
        )
        .route("/ui/models/{model}/promote", post(pages::model::promote))
        .route(
            "/ui/models/{model}/aliases/{alias}/rollback",
            post(pages::model::rollback),
        )
        .route(
            "/ui/models/{model}/versions/{version}",
            get(pages::version::show),
        )
        .route("/ui/recommendations", get(pages::inbox::list))
        .route(
            "/ui/recommendations/{id}/{transition}",
            post(pages::inbox::transition),
        )
        .route("/ui/audit", get(pages::audit::list))
        .route("/ui/sql", get(pages::sql::console))
        .route("/ui/sql/csv", get(pages::sql::csv))
        .route("/ui/daemon", get(pages::daemon::show))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(secure_headers))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// Security headers on every UI response; pages are never cached (they
/// show one person's view of live data). Over TLS, cookies are `Secure`
/// (a browser never sends the session over plain HTTP) and browsers are
/// told to keep to HTTPS.
async fn secure_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_asset = req.uri().path().starts_with("/ui/assets/");
    let over_tls = req.extensions().get::<crate::tls::OverTls>().is_some();
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    if over_tls {
        let cookies: Vec<HeaderValue> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|c| HeaderValue::from_str(&format!("{}; Secure", c.to_str().ok()?)).ok())
            .collect();
        h.remove(header::SET_COOKIE);
        for cookie in cookies {
            h.append(header::SET_COOKIE, cookie);
        }
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A failure shown as a page: the API's status and message, or a
/// redirect to the login page when there is no valid session.
#[derive(Debug)]
pub struct UiError {
    status: StatusCode,
    message: String,
    /// Redirect to `/ui/login`, coming back to this path afterwards.
    login_then: Option<String>,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            login_then: None,
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    fn login(path: &str) -> Self {
        Self {
            status: StatusCode::SEE_OTHER,
            message: String::new(),
            login_then: Some(path.to_string()),
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self::new(e.status, e.message)
    }
}

/// Errors of the services the pages call, through the API's one mapping.
macro_rules! via_api_error {
    ($($t:ty),+) => {$(
        impl From<$t> for UiError {
            fn from(e: $t) -> Self {
                ApiError::from(e).into()
            }
        }
    )+};
}
via_api_error!(
    modelwatch_registry::Error,
    crate::sql::SqlError,
    crate::gate::GateError
);

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        if let Some(then) = self.login_then {
            let target = format!(
                "/ui/login?next={}",
                form_urlencoded::byte_serialize(then.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = layout::page(
            title,
            None,
            Nav::None,
            html! {
                h1 { (self.status.as_u16()) " " (title) }
                p.error role="alert" #error-message { (self.message) }
                p { a href="/ui/models" { "Back to the models" } }
            },
        );
        (self.status, body).into_response()
    }
}

pub type UiResult<T> = Result<T, UiError>;

/// A path parameter whose rejection is a page, not plain text.
pub struct UiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for UiPath<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| UiPath(p.0))
            .map_err(|e| UiError::bad_request(e.body_text()))
    }
}

/// The query string's fields.
pub struct UiQuery(pub session::Form);

impl<S: Send + Sync> FromRequestParts<S> for UiQuery {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(UiQuery(session::Form::parse(
            parts.uri.query().unwrap_or_default().as_bytes(),
        )))
    }
}

/// The text of a fixed notice code (`?done=…`); unknown codes show
/// nothing, so a link cannot make a page say something it did not do.
fn done_notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "promoted" => "The alias was moved: the gate allowed the promotion.",
        "rolled_back" => "The alias was rolled back.",
        "policy_saved" => "The monitoring policy was saved.",
        "acknowledged" => "The recommendation was acknowledged.",
        "dismissed" => "The recommendation was dismissed.",
        _ => return None,
    })
}

/// A 404 page for paths under `/ui` no route serves.
pub fn not_found_page() -> Response {
    UiError::not_found("no such page").into_response()
}

/// 303 to `path` with a fixed notice code (`?done=…`), after a POST.
fn see_other(path: &str, done: &str) -> Response {
    Redirect::to(&format!("{path}?done={done}")).into_response()
}
