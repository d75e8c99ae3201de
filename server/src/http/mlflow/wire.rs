//! MLflow's JSON ↔ the registry's types: request fields read the same way
//! from a GET query string (lists as repeated keys) or a JSON body, records
//! shaped as MLflow's protobuf JSON (versions as strings, times in epoch
//! milliseconds, tags as `[{key, value}]`), and page tokens.
//!
//! It must not call the registry: handlers do, with what this module reads.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use modelwatch_registry::{
    Experiment, LoggedModel, LoggedModelStatus, MetricPoint, Model, Run, RunStatus, Tags, Version,
    tracking::RunUpdate,
};

use crate::http::error::MlflowError;

type Result<T> = std::result::Result<T, MlflowError>;

/// The fields of one request, from the query string (GET) or the JSON body.
#[derive(Debug, Default)]
pub struct Fields(Map<String, Value>);

impl Fields {
    /// Query string pairs; a repeated key becomes a list.
    pub fn from_query(query: &str) -> Self {
        let mut map = Map::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = Value::String(v.into_owned());
            match map.get_mut(k.as_ref()) {
                Some(Value::Array(list)) => list.push(v),
                Some(first) => *first = Value::Array(vec![first.take(), v]),
                None => {
                    map.insert(k.into_owned(), v);
                }
            }
        }
        Fields(map)
    }

    /// A JSON object body (empty body: no fields).
    pub fn from_body(body: &[u8]) -> Result<Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Fields(map)),
            Ok(_) => Err(MlflowError::invalid(
                "the request body must be a JSON object",
            )),
            Err(e) => Err(MlflowError::invalid(format!("invalid JSON body: {e}"))),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // MLflow's server parses requests as protobuf JSON, which
            // refuses a number or boolean for a string field; so do we
            // (`{"name": 5}` must not create a model named "5").
            Some(other) => Err(MlflowError::invalid(format!(
                "{key} must be a string, got {}",
                json_kind(other)
            ))),
        }
    }

    pub fn str(&self, key: &str) -> Result<String> {
        self.opt_str(key)?.filter(|s| !s.is_empty()).ok_or_else(|| {
            MlflowError::invalid(format!("missing value for required parameter '{key}'"))
        })
    }

    /// An int64 field: a JSON number or decimal text (proto JSON writes
    /// int64 either way).
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| MlflowError::invalid(format!("{key} must be an integer"))),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| {
                    MlflowError::invalid(format!("{key} must be an integer, got {s:?}"))
                })
            }
            Some(_) => Err(MlflowError::invalid(format!("{key} must be an integer"))),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| MlflowError::invalid(format!("{key} must be a number, got {s:?}"))),
            Some(_) => Err(MlflowError::invalid(format!("{key} must be a number"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(MlflowError::invalid(format!("{key} must be true or false"))),
        }
    }

    /// A repeated string field (one value or a list).
    pub fn list(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(MlflowError::invalid(format!(
                        "{key} must be a list of strings"
                    ))),
                })
                .collect(),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(_) => Err(MlflowError::invalid(format!(
                "{key} must be a list of strings"
            ))),
        }
    }

    /// A list of objects (tags, metrics, `runs/outputs`' `models`).
    pub fn objects(&self, key: &str) -> Result<Vec<Fields>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(Fields(m.clone())),
                    _ => Err(MlflowError::invalid(format!(
                        "{key} must be a list of objects"
                    ))),
                })
                .collect(),
            Some(_) => Err(MlflowError::invalid(format!(
                "{key} must be a list of objects"
            ))),
        }
    }

    /// `[{key, value}]` pairs (tags, params) as a map.
    pub fn pairs(&self, key: &str) -> Result<Tags> {
        self.objects(key)?
            .into_iter()
            .map(|o| Ok((o.str("key")?, o.opt_str("value")?.unwrap_or_default())))
            .collect()
    }

    /// A version number sent as text (`"3"`) or a number.
    /// A version number: MLflow sends it as text, but it is a number, so a
    /// JSON number is taken too.
    pub fn version(&self) -> Result<i64> {
        let v = self.opt_i64("version")?.ok_or_else(|| {
            MlflowError::invalid("missing value for required parameter 'version'")
        })?;
        if v < 1 {
            return Err(MlflowError::invalid(format!(
                "version must be a positive integer, got {v}"
            )));
        }
        Ok(v)
    }

    /// `run_id`, or the older `run_uuid`.
    pub fn run_id(&self) -> Result<String> {
        match self.opt_str("run_id")?.filter(|s| !s.is_empty()) {
            Some(id) => Ok(id),
            None => self
                .str("run_uuid")
                .map_err(|_| MlflowError::invalid("missing value for required parameter 'run_id'")),
        }
    }

    pub fn metric(&self) -> Result<MetricPoint> {
        Ok(MetricPoint {
            key: self.str("key")?,
            value: self.opt_f64("value")?.ok_or_else(|| {
                MlflowError::invalid("missing value for required parameter 'value'")
            })?,
            timestamp: self
                .opt_i64("timestamp")?
                .unwrap_or_else(|| Utc::now().timestamp_millis()),
            step: self.opt_i64("step")?.unwrap_or(0),
        })
    }

    pub fn metrics(&self, key: &str) -> Result<Vec<MetricPoint>> {
        self.objects(key)?.iter().map(Fields::metric).collect()
    }

    pub fn run_update(&self) -> Result<RunUpdate> {
        Ok(RunUpdate {
            status: self
                .opt_str("status")?
                .map(|s| RunStatus::parse(&s))
                .transpose()?,
            end_time: self.opt_i64("end_time")?,
            name: self.opt_str("run_name")?,
        })
    }

    /// `experiment_id` as MLflow sends it (decimal text).
    pub fn experiment_id(&self, key: &str) -> Result<Option<i64>> {
        self.opt_i64(key)
    }
}

/// `max_results` within MLflow's bounds for the call.
pub fn max_results(fields: &Fields, default: u32, max: u32) -> Result<u32> {
    match fields.opt_i64("max_results")? {
        None => Ok(default),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(n as u32),
        Some(n) => Err(MlflowError::invalid(format!(
            "max_results must be between 1 and {max}, got {n}"
        ))),
    }
}

/// Page tokens are opaque to clients: the offset of the next page.
pub fn encode_page_token(offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

pub fn decode_page_token(token: Option<&str>) -> Result<u64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            MlflowError::invalid(
                "page_token is not a token this server handed out; search again without it",
            )
        })
}

fn millis(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn tag_list(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect(),
    )
}

pub fn model_version(v: &Version) -> Value {
    json!({
        "name": v.model,
        "version": v.version.to_string(),
        "creation_timestamp": millis(&v.created_at),
        "last_updated_timestamp": millis(&v.updated_at),
        "user_id": v.created_by,
        "current_stage": v.stage.as_str(),
        "description": v.description,
        "source": v.source_uri.as_deref().unwrap_or(""),
        "run_id": v.run_id.as_deref().unwrap_or(""),
        // Registration is synchronous here: a version exists only when
        // committed, and a missing status makes the client poll for minutes.
        "status": "READY",
        "tags": tag_list(&v.tags),
        "aliases": v.aliases,
    })
}

pub fn registered_model(m: &Model, latest: &[Version]) -> Value {
    json!({
        "name": m.name,
        "creation_timestamp": millis(&m.created_at),
        "last_updated_timestamp": millis(&m.updated_at),
        "description": m.description,
        "latest_versions": latest.iter().map(model_version).collect::<Vec<_>>(),
        "tags": tag_list(&m.tags),
        "aliases": m.aliases.iter()
            .map(|(a, v)| json!({ "alias": a, "version": v.to_string() }))
            .collect::<Vec<_>>(),
    })
}

pub fn experiment(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.id.to_string(),
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": millis(&e.created_at),
        "last_update_time": millis(&e.updated_at),
        "tags": tag_list(&e.tags),
    })
}

pub fn run_info(r: &Run) -> Value {
    let mut info = json!({
        "run_id": r.id,
        "run_uuid": r.id,
        "run_name": r.name,
        "experiment_id": r.experiment_id.to_string(),
        "user_id": r.created_by,
        "status": r.status.as_str(),
        "artifact_uri": run_artifact_uri(r.experiment_id, &r.id),
        "lifecycle_stage": r.lifecycle_stage,
    });
    if let Some(t) = r.start_time {
        info["start_time"] = json!(t);
    }
    if let Some(t) = r.end_time {
        info["end_time"] = json!(t);
    }
    info
}

/// Where MLflow clients upload a run's files: the artifact proxy
/// (`/api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/artifacts/…`).
pub fn run_artifact_uri(experiment_id: i64, run_id: &str) -> String {
    format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts")
}

/// Where MLflow clients upload a logged model's files.
pub fn logged_model_artifact_uri(experiment_id: i64, model_id: &str) -> String {
    format!("mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts")
}

/// MLflow's protobuf enum names for a logged model's status.
pub fn logged_model_status(s: LoggedModelStatus) -> &'static str {
    match s {
        LoggedModelStatus::Pending => "LOGGED_MODEL_PENDING",
        LoggedModelStatus::Ready => "LOGGED_MODEL_READY",
        LoggedModelStatus::Failed => "LOGGED_MODEL_UPLOAD_FAILED",
    }
}

pub fn parse_logged_model_status(s: &str) -> Result<LoggedModelStatus> {
    match s {
        "LOGGED_MODEL_PENDING" => Ok(LoggedModelStatus::Pending),
        "LOGGED_MODEL_READY" => Ok(LoggedModelStatus::Ready),
        "LOGGED_MODEL_UPLOAD_FAILED" => Ok(LoggedModelStatus::Failed),
        other => Err(MlflowError::invalid(format!(
            "status {other:?} is not a logged model status: LOGGED_MODEL_PENDING, LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED"
        ))),
    }
}

pub fn logged_model(m: &LoggedModel) -> Value {
    json!({
        "info": {
            "model_id": m.id,
            "experiment_id": m.experiment_id.to_string(),
            "name": m.name,
            "creation_timestamp_ms": millis(&m.created_at),
            "last_updated_timestamp_ms": millis(&m.updated_at),
            "artifact_uri": logged_model_artifact_uri(m.experiment_id, &m.id),
            "status": logged_model_status(m.status),
            "model_type": m.model_type,
            "source_run_id": m.source_run_id.as_deref().unwrap_or(""),
            "tags": tag_list(&m.tags),
        },
        "data": {
            "params": tag_list(&m.params),
            "metrics": [],
        },
    })
}

pub fn run(r: &Run) -> Value {
    json!({
        "info": run_info(r),
        "data": {
            "metrics": r.metrics.iter()
                .map(|m| json!({ "key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step }))
                .collect::<Vec<_>>(),
            "params": tag_list(&r.params),
            "tags": tag_list(&r.tags),
        },
        "inputs": {},
    })
}

/// What kind of JSON value `v` is, for error messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_with_repeated_keys_become_lists() {
        let f = Fields::from_query("name=m&stages=Staging&stages=Production&max_results=5&x=%20a");
        assert_eq!(f.str("name").unwrap(), "m");
        assert_eq!(f.list("stages").unwrap(), ["Staging", "Production"]);
        assert_eq!(f.opt_i64("max_results").unwrap(), Some(5));
        assert_eq!(f.str("x").unwrap(), " a");
        assert_eq!(
            Fields::from_query("stages=One").list("stages").unwrap(),
            ["One"]
        );
        assert!(
            Fields::from_query("max_results=ten")
                .opt_i64("max_results")
                .is_err()
        );
        assert!(Fields::from_query("").str("name").is_err());
        assert!(Fields::from_query("%ZZ=&&=&a").str("name").is_err());
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(
            Fields::from_body(b"")
                .unwrap()
                .opt_str("name")
                .unwrap()
                .is_none()
        );
        for bad in [&b"[1]"[..], b"{\"name\":", b"\xff\xfe", b"null", b"\"s\""] {
            assert!(Fields::from_body(bad).is_err(), "{bad:?}");
        }
        let f = Fields::from_body(
            br#"{"version": 3, "tags": [{"key": "a", "value": "b"}], "bad": 1.5}"#,
        )
        .unwrap();
        assert_eq!(f.version().unwrap(), 3);
        assert_eq!(f.pairs("tags").unwrap()["a"], "b");
        assert!(f.opt_i64("bad").is_err());
        let f = Fields::from_body(br#"{"version": "0", "tags": [1]}"#).unwrap();
        assert!(f.version().is_err());
        assert!(f.pairs("tags").is_err());
        // Protobuf JSON: a string field takes only a string.
        let f = Fields::from_body(br#"{"name": 5, "owner": true, "d": ["x"]}"#).unwrap();
        for key in ["name", "owner", "d"] {
            let e = f.str(key).unwrap_err();
            assert!(
                e.0.message.contains("must be a string"),
                "{key}: {}",
                e.0.message
            );
        }
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_page_token(Some(&encode_page_token(40))).unwrap(), 40);
        assert_eq!(decode_page_token(None).unwrap(), 0);
        for bad in ["!!", "b2Zmc2V0Oi0x", "eA", &"A".repeat(10_000)] {
            assert!(decode_page_token(Some(bad)).is_err(), "{bad}");
        }
    }
}
