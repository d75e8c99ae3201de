//! Every native-API path, spelled once. Each function percent-encodes the
//! segments it is given, so callers pass names as users typed them.
//!
//! Public for the few callers that must send raw bodies at full speed
//! (the remote-write load generator) or deliberately malformed requests
//! (tests); everything else goes through [`crate::Client`].

/// The API's prefix.
pub const API: &str = "/api/v1";
/// Prometheus remote write 1.0 (`POST`, snappy protobuf).
pub const REMOTE_WRITE: &str = "/api/v1/write";
/// Read-only SQL (`POST`).
pub const SQL: &str = "/api/v1/sql";
/// The OpenAPI document (`GET`).
pub const OPENAPI: &str = "/api/v1/openapi.json";
/// Every model (`GET` list, `POST` register).
pub const MODELS: &str = "/api/v1/models";
/// Every monitoring policy (`GET`).
pub const POLICIES: &str = "/api/v1/policies";
/// Run the evaluator now (`POST`).
pub const EVALUATE: &str = "/api/v1/evaluate";
/// Recommendations (`GET` list).
pub const RECOMMENDATIONS: &str = "/api/v1/recommendations";
/// The audit log (`GET` list).
pub const AUDIT: &str = "/api/v1/audit";
/// The audit chain check (`GET`).
pub const AUDIT_VERIFY: &str = "/api/v1/audit/verify";
/// Tokens (`GET` list, `POST` create).
pub const TOKENS: &str = "/api/v1/tokens";
/// Webhook subscriptions (`GET` list, `POST` create).
pub const WEBHOOKS: &str = "/api/v1/webhooks";
/// Alert states received (`GET`).
pub const ALERTS: &str = "/api/v1/alerts";
/// The Alertmanager receiver (`POST`).
pub const ALERTMANAGER: &str = "/api/v1/alerts/alertmanager";
/// MLflow REST's prefix (outside `/api/v1`: MLflow's protocol).
pub const MLFLOW: &str = "/api/2.0/mlflow";
/// Liveness and readiness (no token).
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";

/// Percent-encodes one path segment or query value (RFC 3986 unreserved
/// characters stay as they are).
pub fn encode(s: &str) -> String {
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

/// `?k=v&…` with keys and values encoded; empty when there are none.
pub fn query_string(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

pub fn model(model: &str) -> String {
    format!("{MODELS}/{}", encode(model))
}

pub fn model_tag(model: &str, key: &str) -> String {
    format!("{}/tags/{}", self::model(model), encode(key))
}

pub fn versions(model: &str) -> String {
    format!("{}/versions", self::model(model))
}

pub fn version(model: &str, version: i64) -> String {
    format!("{}/{version}", versions(model))
}

/// A version's files (`GET` list, `POST` seal).
pub fn version_artifacts(model: &str, version: i64) -> String {
    format!("{}/artifacts", self::version(model, version))
}

/// One file of a version (`PUT` upload, `GET` download); each segment of
/// the `/`-separated path is encoded on its own.
pub fn version_artifact(model: &str, version: i64, path: &str) -> String {
    let encoded: Vec<String> = path.split('/').map(encode).collect();
    format!(
        "{}/{}",
        version_artifacts(model, version),
        encoded.join("/")
    )
}

/// A version's resumable uploads (`POST` begins one).
pub fn version_artifact_uploads(model: &str, version: i64) -> String {
    format!("{}/artifact-uploads", self::version(model, version))
}

/// One resumable upload (`GET` status, `PATCH` a chunk, `DELETE` abort).
pub fn version_artifact_upload(model: &str, version: i64, id: &str) -> String {
    format!(
        "{}/{}",
        version_artifact_uploads(model, version),
        encode(id)
    )
}

pub fn version_tag(model: &str, version: i64, key: &str) -> String {
    format!("{}/tags/{}", self::version(model, version), encode(key))
}

/// A version's recommendations (`POST` raises one).
pub fn version_recommendations(model: &str, version: i64) -> String {
    format!("{}/recommendations", self::version(model, version))
}

/// A version's batch uploads: `table` is `inferences` or `reference`.
pub fn version_upload(model: &str, version: i64, table: &str) -> String {
    format!("{}/{}", self::version(model, version), encode(table))
}

pub fn version_gate(model: &str, version: i64) -> String {
    format!("{}/gate", self::version(model, version))
}

pub fn version_promote(model: &str, version: i64) -> String {
    format!("{}/promote", self::version(model, version))
}

pub fn aliases(model: &str) -> String {
    format!("{}/aliases", self::model(model))
}

pub fn alias(model: &str, alias: &str) -> String {
    format!("{}/{}", aliases(model), encode(alias))
}

pub fn alias_rollback(model: &str, alias: &str) -> String {
    format!("{}/rollback", self::alias(model, alias))
}

pub fn policy(model: &str) -> String {
    format!("{}/policy", self::model(model))
}

pub fn gate_policy(model: &str) -> String {
    format!("{}/gate-policy", self::model(model))
}

pub fn recommendation(id: i64) -> String {
    format!("{RECOMMENDATIONS}/{id}")
}

pub fn recommendation_acknowledge(id: i64) -> String {
    format!("{}/acknowledge", recommendation(id))
}

pub fn recommendation_dismiss(id: i64) -> String {
    format!("{}/dismiss", recommendation(id))
}

pub fn token(name: &str) -> String {
    format!("{TOKENS}/{}", encode(name))
}

pub fn webhook(name: &str) -> String {
    format!("{WEBHOOKS}/{}", encode(name))
}

pub fn webhook_deliveries(name: &str) -> String {
    format!("{}/deliveries", webhook(name))
}

pub fn webhook_test(name: &str) -> String {
    format!("{}/test", webhook(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_once() {
        assert_eq!(model("a b/c"), "/api/v1/models/a%20b%2Fc");
        assert_eq!(
            alias_rollback("m%", "prod"),
            "/api/v1/models/m%25/aliases/prod/rollback"
        );
        assert_eq!(
            version_tag("m", 3, "k=v"),
            "/api/v1/models/m/versions/3/tags/k%3Dv"
        );
    }

    #[test]
    fn query_strings() {
        assert_eq!(query_string(&[]), "");
        assert_eq!(
            query_string(&[
                ("tag.team".into(), "a&b".into()),
                ("limit".into(), "5".into())
            ]),
            "?tag.team=a%26b&limit=5"
        );
    }
}
