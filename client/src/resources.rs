//! One handle per resource of the API, each method one route.

use std::future::Future;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use modelwatch_types::{MonitoringPolicy, Role, Tags};

use crate::error::Result;
use crate::routes::{self, query_string};
use crate::transport::Client;
use crate::types::*;

/// Nothing to send (`Option::<&NoBody>::None`).
type NoBody = Value;
const NONE: Option<&NoBody> = None;

impl Client {
    /// Registered models.
    pub fn models(&self) -> Models<'_> {
        Models { c: self }
    }

    /// The versions of `model`.
    pub fn versions<'a>(&'a self, model: &'a str) -> Versions<'a> {
        Versions { c: self, model }
    }

    /// The aliases of `model`.
    pub fn aliases<'a>(&'a self, model: &'a str) -> Aliases<'a> {
        Aliases { c: self, model }
    }

    /// Recommendations across models.
    pub fn recommendations(&self) -> Recommendations<'_> {
        Recommendations { c: self }
    }

    /// The hash-chained audit log.
    pub fn audit(&self) -> Audit<'_> {
        Audit { c: self }
    }

    /// API tokens (admin).
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { c: self }
    }

    /// Monitoring policies.
    pub fn policies(&self) -> Policies<'_> {
        Policies { c: self }
    }

    /// Promotion gate policies (Rego).
    pub fn gate_policies(&self) -> GatePolicies<'_> {
        GatePolicies { c: self }
    }

    /// Webhook subscriptions (admin).
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { c: self }
    }

    /// The Alertmanager receiver and its record.
    pub fn alerts(&self) -> Alerts<'_> {
        Alerts { c: self }
    }

    /// MLflow REST (`/api/2.0/mlflow`), untyped: MLflow's protocol, not ours.
    pub fn mlflow(&self) -> Mlflow<'_> {
        Mlflow { c: self }
    }

    /// `POST /evaluate`: runs the evaluator now, on every watched model or
    /// on `model`.
    pub async fn evaluate(&self, model: Option<&str>) -> Result<CycleReport> {
        let body = EvaluateRequest {
            model: model.map(str::to_string),
        };
        self.json(Method::POST, routes::EVALUATE, Some(&body)).await
    }

    /// `POST /sql` with a JSON result.
    pub async fn sql(&self, request: &SqlRequest) -> Result<SqlResponse> {
        self.json(Method::POST, routes::SQL, Some(request)).await
    }

    /// `POST /sql` with the result in another format (`text/csv`,
    /// `application/vnd.apache.arrow.stream` is binary: not for this).
    pub async fn sql_text(&self, request: &SqlRequest, accept: &str) -> Result<String> {
        self.text(Method::POST, routes::SQL, request, accept).await
    }

    /// `GET /api/v1/openapi.json`.
    pub async fn openapi(&self) -> Result<Value> {
        self.json(Method::GET, routes::OPENAPI, NONE).await
    }

    /// `GET /readyz`: `Ok` once the daemon serves.
    pub async fn ready(&self) -> Result<()> {
        self.no_reply(Method::GET, routes::READYZ, NONE).await
    }
}

pub struct Models<'a> {
    c: &'a Client,
}

impl Models<'_> {
    pub async fn list(&self, query: &ModelQuery) -> Result<Page<Model>> {
        let path = format!("{}{}", routes::MODELS, query_string(&query.pairs()));
        self.c.json(Method::GET, &path, NONE).await
    }

    pub async fn get(&self, name: &str) -> Result<Model> {
        self.c.json(Method::GET, &routes::model(name), NONE).await
    }

    pub async fn create(&self, new: &NewModel) -> Result<Model> {
        self.c.json(Method::POST, routes::MODELS, Some(new)).await
    }

    pub async fn update(&self, name: &str, update: &ModelUpdate) -> Result<Model> {
        self.c
            .json(Method::PATCH, &routes::model(name), Some(update))
            .await
    }

    /// Deletes the model with all its versions, aliases and recommendations.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.c
            .no_reply(Method::DELETE, &routes::model(name), NONE)
            .await
    }

    /// Sets a model tag; returns the model's tags after the change.
    pub async fn set_tag(&self, name: &str, key: &str, value: &str) -> Result<Tags> {
        let body = TagValue {
            value: value.to_string(),
        };
        self.c
            .json(Method::PUT, &routes::model_tag(name, key), Some(&body))
            .await
    }

    /// Removes a model tag; returns the model's tags after the change.
    pub async fn delete_tag(&self, name: &str, key: &str) -> Result<Tags> {
        self.c
            .json(Method::DELETE, &routes::model_tag(name, key), NONE)
            .await
    }
}

pub struct Versions<'a> {
    c: &'a Client,
    model: &'a str,
}

impl Versions<'_> {
    pub async fn list(&self, query: &VersionQuery) -> Result<Page<Version>> {
        let path = format!(
            "{}{}",
            routes::versions(self.model),
            query_string(&query.pairs())
        );
        self.c.json(Method::GET, &path, NONE).await
    }

    pub async fn get(&self, version: i64) -> Result<Version> {
        self.c
            .json(Method::GET, &routes::version(self.model, version), NONE)
            .await
    }

    /// Registers the next version (numbered 1, 2, … per model).
    pub async fn create(&self, new: &NewVersion) -> Result<Version> {
        self.c
            .json(Method::POST, &routes::versions(self.model), Some(new))
            .await
    }

    pub async fn update(&self, version: i64, update: &VersionUpdate) -> Result<Version> {
        self.c
            .json(
                Method::PATCH,
                &routes::version(self.model, version),
                Some(update),
            )
            .await
    }

    /// Deletes a version (refused while an alias points at it).
    pub async fn delete(&self, version: i64) -> Result<()> {
        self.c
            .no_reply(Method::DELETE, &routes::version(self.model, version), NONE)
            .await
    }

    /// Sets a version tag; returns the version's tags after the change.
    pub async fn set_tag(&self, version: i64, key: &str, value: &str) -> Result<Tags> {
        let body = TagValue {
            value: value.to_string(),
        };
        let path = routes::version_tag(self.model, version, key);
        self.c.json(Method::PUT, &path, Some(&body)).await
    }

    /// Removes a version tag; returns the version's tags after the change.
    pub async fn delete_tag(&self, version: i64, key: &str) -> Result<Tags> {
        let path = routes::version_tag(self.model, version, key);
        self.c.json(Method::DELETE, &path, NONE).await
    }

    /// Raises a recommendation (or refreshes the open one of its kind).
    pub async fn recommend(&self, version: i64, new: &NewRecommendation) -> Result<Recommendation> {
        let path = routes::version_recommendations(self.model, version);
        self.c.json(Method::POST, &path, Some(new)).await
    }

    /// Evaluates the model's promotion gate on `version` (as if it took
    /// `alias`).
    pub async fn gate(&self, version: i64, alias: Option<&str>) -> Result<GateReport> {
        let body = GateRequest {
            alias: alias.map(str::to_string),
        };
        let path = routes::version_gate(self.model, version);
        self.c.json(Method::POST, &path, Some(&body)).await
    }

    /// Moves `alias` to `version` if the gate allows it.
    pub async fn promote(&self, version: i64, request: &PromoteRequest) -> Result<Promotion> {
        let path = routes::version_promote(self.model, version);
        self.c.json(Method::POST, &path, Some(request)).await
    }

    /// One batch upload attempt of `body` into `table`.
    /// The version's files and whether they are sealed.
    pub async fn artifacts(&self, version: i64) -> Result<ArtifactListing> {
        self.c
            .json(
                Method::GET,
                &routes::version_artifacts(self.model, version),
                NONE,
            )
            .await
    }

    /// Uploads one file (streamed). With `sha256` (`sha256:<hex>`), the
    /// daemon keeps it only if the content hashes to it.
    pub async fn put_artifact(
        &self,
        version: i64,
        path: &str,
        sha256: Option<&str>,
        body: reqwest::Body,
    ) -> Result<ArtifactFile> {
        let headers: Vec<(&str, &str)> = sha256
            .map(|d| ("x-content-sha256", d))
            .into_iter()
            .collect();
        self.c
            .body(
                Method::PUT,
                &routes::version_artifact(self.model, version, path),
                "application/octet-stream",
                &headers,
                body,
            )
            .await
    }

    /// Begins a resumable upload of one file (see `append_artifact_upload`).
    pub async fn begin_artifact_upload(
        &self,
        version: i64,
        new: &NewUpload,
    ) -> Result<UploadStatus> {
        self.c
            .json(
                Method::POST,
                &routes::version_artifact_uploads(self.model, version),
                Some(new),
            )
            .await
    }

    /// Where a resumable upload stands (its offset is where to resume).
    pub async fn artifact_upload(&self, version: i64, id: &str) -> Result<UploadStatus> {
        self.c
            .json(
                Method::GET,
                &routes::version_artifact_upload(self.model, version, id),
                NONE,
            )
            .await
    }

    /// Appends a chunk at `offset`; the chunk reaching the announced size
    /// commits the file (`complete`, with the stored `file`).
    pub async fn append_artifact_upload(
        &self,
        version: i64,
        id: &str,
        offset: u64,
        chunk: reqwest::Body,
    ) -> Result<UploadStatus> {
        let offset = offset.to_string();
        self.c
            .body(
                Method::PATCH,
                &routes::version_artifact_upload(self.model, version, id),
                "application/octet-stream",
                &[("upload-offset", offset.as_str())],
                chunk,
            )
            .await
    }

    /// Aborts a resumable upload, discarding what arrived.
    pub async fn abort_artifact_upload(&self, version: i64, id: &str) -> Result<()> {
        self.c
            .no_reply(
                Method::DELETE,
                &routes::version_artifact_upload(self.model, version, id),
                NONE,
            )
            .await
    }

    /// One file's reply, unread: stream its body.
    pub async fn get_artifact(&self, version: i64, path: &str) -> Result<reqwest::Response> {
        self.c
            .stream(&routes::version_artifact(self.model, version, path))
            .await
    }

    /// Seals the files uploaded so far (optionally checking the manifest
    /// digest the caller computed).
    pub async fn seal_artifacts(
        &self,
        version: i64,
        artifact_digest: Option<&str>,
    ) -> Result<ArtifactListing> {
        let body = SealArtifacts {
            artifact_digest: artifact_digest.map(str::to_string),
        };
        self.c
            .json(
                Method::POST,
                &routes::version_artifacts(self.model, version),
                Some(&body),
            )
            .await
    }

    pub async fn upload(
        &self,
        version: i64,
        table: UploadTable,
        options: &UploadOptions,
        body: reqwest::Body,
    ) -> Result<UploadResponse> {
        let mut headers = Vec::new();
        if let Some(key) = &options.idempotency_key {
            headers.push(("idempotency-key", key.as_str()));
        }
        if options.gzip {
            headers.push(("content-encoding", "gzip"));
        }
        let path = routes::version_upload(self.model, version, table.as_str());
        self.c
            .body(Method::POST, &path, &options.content_type, &headers, body)
            .await
    }

    /// A batch upload that survives lost connections: up to `attempts`
    /// tries, each with a fresh body from `make_body` and the same
    /// idempotency key, so the upload is stored at most once. `on_retry`
    /// hears of each retry (the failure, the attempt about to start)
    /// before a pause of one second per attempt made.
    ///
    /// Without an idempotency key in `options` a retry could store the
    /// rows twice, so none is made.
    pub async fn upload_with_retries<B, F>(
        &self,
        version: i64,
        table: UploadTable,
        options: &UploadOptions,
        attempts: u32,
        mut make_body: impl FnMut() -> F,
        mut on_retry: impl FnMut(&crate::Error, u32),
    ) -> std::result::Result<UploadResponse, B>
    where
        F: Future<Output = std::result::Result<reqwest::Body, B>>,
        B: From<crate::Error>,
    {
        let attempts = if options.idempotency_key.is_some() {
            attempts.max(1)
        } else {
            1
        };
        let mut attempt = 1;
        loop {
            let body = make_body().await?;
            match self.upload(version, table, options, body).await {
                // A lost connection may have lost only the reply: the
                // retry carries the same key, so the daemon stores the
                // upload at most once.
                Err(e) if e.is_connection_lost() && attempt < attempts => {
                    on_retry(&e, attempt + 1);
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    attempt += 1;
                }
                other => return other.map_err(B::from),
            }
        }
    }
}

pub struct Aliases<'a> {
    c: &'a Client,
    model: &'a str,
}

impl Aliases<'_> {
    /// Every alias of the model with its move history.
    pub async fn list(&self) -> Result<Vec<Alias>> {
        self.c
            .json(Method::GET, &routes::aliases(self.model), NONE)
            .await
    }

    pub async fn get(&self, alias: &str) -> Result<Alias> {
        self.c
            .json(Method::GET, &routes::alias(self.model, alias), NONE)
            .await
    }

    /// Points `alias` at `version`.
    pub async fn set(&self, alias: &str, version: i64, reason: &str) -> Result<Alias> {
        let body = SetAlias {
            version,
            reason: reason.to_string(),
        };
        self.c
            .json(Method::PUT, &routes::alias(self.model, alias), Some(&body))
            .await
    }

    pub async fn delete(&self, alias: &str, reason: &str) -> Result<()> {
        let path = format!(
            "{}{}",
            routes::alias(self.model, alias),
            query_string(&[("reason".into(), reason.to_string())])
        );
        self.c.no_reply(Method::DELETE, &path, NONE).await
    }

    /// Moves `alias` back to the version it served before.
    pub async fn rollback(&self, alias: &str, reason: &str) -> Result<Alias> {
        let body = Reason {
            reason: reason.to_string(),
        };
        let path = routes::alias_rollback(self.model, alias);
        self.c.json(Method::POST, &path, Some(&body)).await
    }
}

pub struct Recommendations<'a> {
    c: &'a Client,
}

impl Recommendations<'_> {
    pub async fn list(&self, query: &RecommendationQuery) -> Result<Page<Recommendation>> {
        let path = format!(
            "{}{}",
            routes::RECOMMENDATIONS,
            query_string(&query.pairs())
        );
        self.c.json(Method::GET, &path, NONE).await
    }

    pub async fn get(&self, id: i64) -> Result<Recommendation> {
        self.c
            .json(Method::GET, &routes::recommendation(id), NONE)
            .await
    }

    /// Marks as seen; it stays open.
    pub async fn acknowledge(&self, id: i64, note: &str) -> Result<Recommendation> {
        let body = Note {
            note: note.to_string(),
        };
        let path = routes::recommendation_acknowledge(id);
        self.c.json(Method::POST, &path, Some(&body)).await
    }

    /// Closes without acting.
    pub async fn dismiss(&self, id: i64, note: &str) -> Result<Recommendation> {
        let body = Note {
            note: note.to_string(),
        };
        let path = routes::recommendation_dismiss(id);
        self.c.json(Method::POST, &path, Some(&body)).await
    }
}

pub struct Audit<'a> {
    c: &'a Client,
}

impl Audit<'_> {
    /// Entries, oldest first.
    pub async fn list(&self, query: &AuditQuery) -> Result<Page<AuditEntry>> {
        let path = format!("{}{}", routes::AUDIT, query_string(&query.pairs()));
        self.c.json(Method::GET, &path, NONE).await
    }

    /// Recomputes the hash chain.
    pub async fn verify(&self) -> Result<AuditVerification> {
        self.c.json(Method::GET, routes::AUDIT_VERIFY, NONE).await
    }
}

pub struct Tokens<'a> {
    c: &'a Client,
}

impl Tokens<'_> {
    pub async fn list(&self) -> Result<Vec<TokenInfo>> {
        self.c.json(Method::GET, routes::TOKENS, NONE).await
    }

    /// Creates a token (expiring at `expires_at`, if given); the reply
    /// carries its secret, this once.
    pub async fn create(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<CreatedToken> {
        let body = NewToken {
            name: name.to_string(),
            role,
            expires_at,
        };
        self.c.json(Method::POST, routes::TOKENS, Some(&body)).await
    }

    pub async fn revoke(&self, name: &str) -> Result<TokenInfo> {
        self.c
            .json(Method::DELETE, &routes::token(name), NONE)
            .await
    }
}

pub struct Policies<'a> {
    c: &'a Client,
}

impl Policies<'_> {
    /// Every model's monitoring policy.
    pub async fn list(&self) -> Result<Vec<PolicyRecord>> {
        self.c.json(Method::GET, routes::POLICIES, NONE).await
    }

    pub async fn get(&self, model: &str) -> Result<PolicyRecord> {
        self.c.json(Method::GET, &routes::policy(model), NONE).await
    }

    /// Creates or replaces the model's policy.
    pub async fn set(&self, model: &str, policy: &MonitoringPolicy) -> Result<PolicyRecord> {
        self.c
            .json(Method::PUT, &routes::policy(model), Some(policy))
            .await
    }

    /// Stops watching the model.
    pub async fn delete(&self, model: &str) -> Result<()> {
        self.c
            .no_reply(Method::DELETE, &routes::policy(model), NONE)
            .await
    }
}

pub struct GatePolicies<'a> {
    c: &'a Client,
}

impl GatePolicies<'_> {
    pub async fn get(&self, model: &str) -> Result<GatePolicyRecord> {
        self.c
            .json(Method::GET, &routes::gate_policy(model), NONE)
            .await
    }

    /// Uploads the model's Rego policy; refused if it does not compile.
    pub async fn set(&self, model: &str, rego: &str) -> Result<GatePolicyRecord> {
        let body = GatePolicyUpload {
            rego: rego.to_string(),
        };
        self.c
            .json(Method::PUT, &routes::gate_policy(model), Some(&body))
            .await
    }

    pub async fn delete(&self, model: &str) -> Result<()> {
        self.c
            .no_reply(Method::DELETE, &routes::gate_policy(model), NONE)
            .await
    }
}

pub struct Webhooks<'a> {
    c: &'a Client,
}

impl Webhooks<'_> {
    pub async fn list(&self) -> Result<Vec<Webhook>> {
        self.c.json(Method::GET, routes::WEBHOOKS, NONE).await
    }

    pub async fn get(&self, name: &str) -> Result<Webhook> {
        self.c.json(Method::GET, &routes::webhook(name), NONE).await
    }

    /// Subscribes; the reply carries the signing secret, this once.
    pub async fn create(&self, new: &NewWebhook) -> Result<CreatedWebhook> {
        self.c.json(Method::POST, routes::WEBHOOKS, Some(new)).await
    }

    /// Deletes the subscription and its deliveries.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.c
            .no_reply(Method::DELETE, &routes::webhook(name), NONE)
            .await
    }

    pub async fn deliveries(
        &self,
        name: &str,
        query: &DeliveryQuery,
    ) -> Result<Page<WebhookDelivery>> {
        let path = format!(
            "{}{}",
            routes::webhook_deliveries(name),
            query_string(&query.pairs())
        );
        self.c.json(Method::GET, &path, NONE).await
    }

    /// Queues a `ping` event for the subscription.
    pub async fn test(&self, name: &str) -> Result<PingQueued> {
        self.c
            .json(Method::POST, &routes::webhook_test(name), NONE)
            .await
    }
}

pub struct Alerts<'a> {
    c: &'a Client,
}

impl Alerts<'_> {
    /// Alert states received, oldest first.
    pub async fn list(&self, page: &PageQuery) -> Result<Page<AlertRecord>> {
        let mut q = Vec::new();
        page.push(&mut q);
        let path = format!("{}{}", routes::ALERTS, query_string(&q));
        self.c.json(Method::GET, &path, NONE).await
    }

    /// Sends an Alertmanager webhook payload (version 4), as Alertmanager would.
    pub async fn notify(&self, payload: &Value) -> Result<NotificationReport> {
        self.c
            .json(Method::POST, routes::ALERTMANAGER, Some(payload))
            .await
    }
}

pub struct Mlflow<'a> {
    c: &'a Client,
}

impl Mlflow<'_> {
    /// Calls `endpoint` (e.g. `/registered-models/create`, with any query
    /// string) under `/api/2.0/mlflow` and returns its JSON reply.
    pub async fn call(
        &self,
        method: Method,
        endpoint: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let path = format!("{}{endpoint}", routes::MLFLOW);
        self.c.json(method, &path, body).await
    }
}
