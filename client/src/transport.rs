//! The HTTP exchange under every typed call: base URL, bearer token, JSON
//! in and out, and the mapping of failures to [`Error`].

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A connection to one modelwatch daemon. Cheap to clone (the connection
/// pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for the daemon at `base_url` (e.g. `http://127.0.0.1:9400`),
    /// sending `token` as `Authorization: Bearer` when given.
    ///
    /// HTTPS trusts the system's roots; [`Client::with_ca_file`] adds a
    /// private CA.
    pub fn new(base_url: &str, token: Option<String>) -> Self {
        let http = crate::tls::http_client_builder(None)
            .and_then(|b| {
                b.build()
                    .map_err(|e| crate::tls::TlsError::Setup(e.to_string()))
            })
            .expect("an HTTP client over the system's roots builds");
        Self::with_http(http, base_url, token)
    }

    /// Like [`Client::new`], trusting the PEM certificates of `ca_file`
    /// too (`--ca-file`).
    pub fn with_ca_file(
        base_url: &str,
        token: Option<String>,
        ca_file: &std::path::Path,
    ) -> Result<Self, crate::tls::TlsError> {
        let http = crate::tls::http_client_builder(Some(ca_file))?
            .build()
            .map_err(|e| crate::tls::TlsError::Setup(e.to_string()))?;
        Ok(Self::with_http(http, base_url, token))
    }

    /// Like [`Client::new`] over a configured `reqwest` client (timeouts,
    /// pool size).
    pub fn with_http(http: reqwest::Client, base_url: &str, token: Option<String>) -> Self {
        Self {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// The same daemon with another token (or none).
    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// The daemon's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The error of a request that got no reply.
    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let url = self.base.clone();
        let reason = crate::error::root_cause(e);
        if crate::tls::is_tls_failure(e) {
            Error::Untrusted { url, reason }
        } else {
            Error::Unreachable { url, reason }
        }
    }

    /// The full URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends an optional JSON body and decodes the JSON reply.
    pub(crate) async fn json<B, T>(&self, method: Method, path: &str, body: Option<&B>) -> Result<T>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let url = self.url(path);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(body);
        }
        let (status, text) = self.exchange(req, &url).await?;
        decode(url, status, text)
    }

    /// Sends an optional JSON body to a route that answers without one
    /// (204, or a body the caller has no use for).
    pub(crate) async fn no_reply<B>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<()>
    where
        B: Serialize + ?Sized,
    {
        let url = self.url(path);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(body);
        }
        self.exchange(req, &url).await.map(drop)
    }

    /// Sends JSON and returns the reply's text in the `accept`ed format.
    pub(crate) async fn text<B>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        accept: &str,
    ) -> Result<String>
    where
        B: Serialize + ?Sized,
    {
        let url = self.url(path);
        let req = self
            .http
            .request(method, &url)
            .header("accept", accept)
            .json(body);
        Ok(self.exchange(req, &url).await?.1)
    }

    /// Sends a raw (possibly streamed) body with extra headers and decodes
    /// the JSON reply.
    pub(crate) async fn body<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: reqwest::Body,
    ) -> Result<T> {
        let url = self.url(path);
        let mut req = self
            .http
            .request(method, &url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let (status, text) = self.exchange(req, &url).await?;
        decode(url, status, text)
    }

    /// A `GET` whose 2xx reply is returned unread, to be streamed.
    pub(crate) async fn stream(&self, path: &str) -> Result<reqwest::Response> {
        let url = self.url(path);
        let mut req = self.http.get(&url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.map_err(|e| self.unreachable(&e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        Err(failure(url, status, text))
    }

    /// Sends `req` with the token and returns the status and body text of a
    /// 2xx reply; anything else becomes the matching [`Error`].
    async fn exchange(
        &self,
        mut req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(StatusCode, String)> {
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| self.unreachable(&e);
        let res = req.send().await.map_err(unreachable)?;
        let status = res.status();
        let text = res.text().await.map_err(unreachable)?;
        if status.is_success() {
            Ok((status, text))
        } else {
            Err(failure(url.to_string(), status.as_u16(), text))
        }
    }
}

/// A 2xx reply's JSON body as `T`.
fn decode<T: DeserializeOwned>(url: String, status: StatusCode, text: String) -> Result<T> {
    // A 204 has no body; only a caller expecting nothing (`()`, `Value`)
    // can take it.
    let text = if status == StatusCode::NO_CONTENT && text.is_empty() {
        "null".to_string()
    } else {
        text
    };
    serde_json::from_str(&text).map_err(|_| Error::Unexpected {
        url,
        status: status.as_u16(),
        body: text,
    })
}

/// A non-2xx reply: the API's JSON error when there is one.
fn failure(url: String, status: u16, text: String) -> Error {
    let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(err) => Error::Api {
            status,
            code: err["code"].as_str().unwrap_or("unknown").to_string(),
            message: err["message"].as_str().unwrap_or("").to_string(),
        },
        None => Error::Unexpected {
            url,
            status,
            body: text,
        },
    }
}
