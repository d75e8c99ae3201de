//! Extractors whose rejections use the API's JSON error shape.

use axum::extract::{FromRequest, FromRequestParts};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON **object** body with the API's errors (400 malformed or not an
/// object, 413 too large, 415 not JSON). Every request body of the native
/// API is an object; serde would otherwise fill a struct from an array
/// (`["name"]` created a model named `name`).
///
/// The body is read when the request is extracted, but its error waits
/// for [`ApiJson::parse`]: a handler checks the caller's role first, so a
/// caller without it gets 403 whatever it sent, and learns nothing of the
/// body's rules.
#[derive(Debug)]
pub struct ApiJson<T>(Result<T, ApiError>);

impl<T> ApiJson<T> {
    /// The body, or why it is refused; call it after the role check.
    pub fn parse(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiJson(json_object(req, state).await))
    }
}

async fn json_object<T: DeserializeOwned, S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime_type::Essence>().ok())
        .is_some_and(|m| m.is_json());
    if !is_json {
        return Err(ApiError::unsupported_media_type(
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let bytes = axum::body::Bytes::from_request(req, state).await?;
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => {
            return Err(ApiError::malformed_json(
                "the body is empty; send a JSON object",
            ));
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "the body must be a JSON object ({\"field\": value, …})",
            ));
        }
    }
    let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
    Ok(value)
}

/// The essence (`type/subtype`, parameters dropped) of a media type.
mod mime_type {
    pub struct Essence(String);

    impl std::str::FromStr for Essence {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let essence = s
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if essence.contains('/') {
                Ok(Essence(essence))
            } else {
                Err(())
            }
        }
    }

    impl Essence {
        /// `application/json` or any `…+json` type, as axum's `Json` accepts.
        pub fn is_json(&self) -> bool {
            self.0 == "application/json" || self.0.ends_with("+json")
        }
    }
}

/// `axum::extract::Path` with JSON errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` with JSON errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The raw body with JSON errors (413 past the route's limit).
#[derive(Debug)]
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiBytes(axum::body::Bytes::from_request(req, state).await?))
    }
}
