//! The HTTP client behind the CLI's subcommands.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A failed client call, worded for a person at a terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach modelwatch at {url}: {reason}\n  Is `modelwatch serve` running? Point the CLI at it with --url or MODELWATCH_URL."
    )]
    Unreachable { url: String, reason: String },
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A command that works on local files (a data directory) failed.
    #[error("{0}")]
    Local(String),
    /// The command cannot be run as given (missing file, unknown format).
    #[error("{0}")]
    Usage(String),
    #[error("unexpected reply from {url} (HTTP {status}): {body}")]
    Unexpected {
        url: String,
        status: u16,
        body: String,
    },
}

impl ClientError {
    /// Exit status: 1 for a refusal by the server, 2 when it could not be asked.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Api { .. } => 1,
            ClientError::Unreachable { .. }
            | ClientError::Unexpected { .. }
            | ClientError::Local(_)
            | ClientError::Usage(_) => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// Sends a request and returns the JSON reply (`Null` for 204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(body);
        }
        let (status, text) = self.exchange(req, &url).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        json_reply(url, status, text)
    }

    /// Sends JSON and returns the body as text in the `accept`ed format.
    pub async fn call_text(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        accept: &str,
    ) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let req = self
            .http
            .request(method, &url)
            .header("accept", accept)
            .json(body);
        Ok(self.exchange(req, &url).await?.1)
    }

    /// Sends a raw (streamed) body with extra headers and returns the JSON
    /// reply.
    pub async fn send_body(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: reqwest::Body,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let (status, text) = self.exchange(req, &url).await?;
        json_reply(url, status, text)
    }

    /// Sends `req` with the token and returns the status and body text of a
    /// 2xx reply; anything else becomes the matching [`ClientError`].
    async fn exchange(
        &self,
        mut req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(StatusCode, String), ClientError> {
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        };
        let res = req.send().await.map_err(unreachable)?;
        let status = res.status();
        let text = res.text().await.map_err(unreachable)?;
        if status.is_success() {
            Ok((status, text))
        } else {
            Err(failure(url.to_string(), status.as_u16(), text))
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }
}

/// A 2xx reply's JSON body.
fn json_reply(url: String, status: StatusCode, text: String) -> Result<Value, ClientError> {
    serde_json::from_str(&text).map_err(|_| ClientError::Unexpected {
        url,
        status: status.as_u16(),
        body: text,
    })
}

/// A non-2xx reply: the API's JSON error when there is one.
fn failure(url: String, status: u16, text: String) -> ClientError {
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(err) => ClientError::Api {
            status,
            code: err["code"].as_str().unwrap_or("unknown").to_string(),
            message: err["message"].as_str().unwrap_or("").to_string(),
        },
        None => ClientError::Unexpected {
            url,
            status,
            body: text,
        },
    }
}

/// The innermost error message, e.g. "Connection refused (os error 111)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
