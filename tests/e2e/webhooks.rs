//! Outbound webhooks against a real HTTP receiver started by the test:
//! signed registry events, retries with backoff, failures after the last
//! attempt, delivery across a restart and a `kill -9`, and refused input.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use modelwatch_client::{AuditQuery, DeliveryQuery, RecommendationStatus};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::watch;

use crate::support::{Daemon, Http, Start, stdout};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) event: String,
    delivery: String,
    signature: String,
    body: Vec<u8>,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON payload")
    }
}

#[derive(Clone)]
struct ReceiverState {
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; 200 once they are used up.
    script: Arc<Mutex<VecDeque<u16>>>,
    /// Answer this to everything (after the script) when set.
    always: Arc<Mutex<Option<u16>>>,
    count: Arc<watch::Sender<usize>>,
}

/// A real HTTP server on 127.0.0.1 that records every POST. It runs on the
/// test's runtime, which is multi-threaded so that it keeps answering while
/// the test waits for a CLI process.
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: ReceiverState,
    task: tokio::task::JoinHandle<()>,
}

async fn record(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let status = {
        let scripted = s.script.lock().unwrap().pop_front();
        scripted.or(*s.always.lock().unwrap()).unwrap_or(200)
    };
    s.got.lock().unwrap().push(Received {
        event: header("x-modelwatch-event"),
        delivery: header("x-modelwatch-delivery"),
        signature: header("x-modelwatch-signature"),
        body: body.to_vec(),
    });
    s.count.send_modify(|n| *n += 1);
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub(crate) async fn start(script: &[u16]) -> Receiver {
        let state = ReceiverState {
            got: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            always: Arc::default(),
            count: Arc::new(watch::channel(0).0),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, state, task }
    }

    /// Waits until at least `n` requests arrived, then returns them all.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut rx = self.state.count.subscribe();
        let arrived = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|c| *c >= n))
            .await
            .is_ok();
        assert!(
            arrived,
            "the receiver got {} requests within 30 s, expected {n}",
            self.got().len()
        );
        self.got()
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    fn answer_always(&self, status: Option<u16>) {
        *self.state.always.lock().unwrap() = status;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The signature header must be `sha256=<hex hmac-sha256(secret, body)>`.
fn assert_signed(r: &Received, secret: &str) {
    assert_eq!(
        r.signature,
        format!("sha256={}", hmac_hex(secret, &r.body)),
        "bad signature on {r:?}"
    );
    assert_ne!(
        r.signature,
        format!("sha256={}", hmac_hex("some-other-secret", &r.body))
    );
}

async fn deliveries(http: &Http, name: &str) -> Vec<Value> {
    let body = http
        .get_expect(
            &format!("/api/v1/webhooks/{name}/deliveries?limit=1000"),
            200,
        )
        .await;
    body["items"].as_array().unwrap().clone()
}

/// Polls the deliveries listing until `done` holds for it (an observable
/// condition, with a deadline), and returns it.
async fn wait_deliveries(http: &Http, name: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = deliveries(http, name).await;
        if done(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries of {name} did not reach the expected state within 30 s: {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fast_retries(max_attempts: u32) -> Start {
    Start {
        args: vec![
            "--webhook-retry-base-ms".into(),
            "50".into(),
            "--webhook-max-attempts".into(),
            max_attempts.to_string(),
        ],
        ..Default::default()
    }
}

async fn create_hook(http: &Http, name: &str, url: &str, events: &[&str]) -> String {
    let body = http
        .post_expect(
            "/api/v1/webhooks",
            json!({ "name": name, "url": url, "events": events }),
            201,
        )
        .await;
    body["secret"].as_str().unwrap().to_string()
}

async fn model_with_version(http: &Http, model: &str) {
    http.post_expect("/api/v1/models", json!({ "name": model }), 201)
        .await;
    http.post_expect(&format!("/api/v1/models/{model}/versions"), json!({}), 201)
        .await;
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_changes_reach_a_receiver_signed_with_stable_delivery_ids() {
    let receiver = Receiver::start(&[]).await;
    let d = Daemon::start_with(fast_retries(3));
    let http = d.http();

    // Subscribe through the CLI; the secret is printed once.
    let out = d.cli(&[
        "webhook",
        "create",
        "ci",
        &receiver.url,
        "--event",
        "version.created,alias.moved",
        "--json",
    ]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["events"], json!(["alias.moved", "version.created"]));

    model_with_version(&http, "fraud").await;
    http.put_expect(
        "/api/v1/models/fraud/aliases/staging",
        json!({ "version": 1, "reason": "first" }),
        200,
    )
    .await;
    // Not subscribed: a recommendation.
    http.post_expect(
        "/api/v1/models/fraud/versions/1/recommendations",
        json!({ "kind": "retrain", "severity": "warning", "reason": "drift" }),
        200,
    )
    .await;

    let got = receiver.wait_for(2).await;
    let types: BTreeSet<String> = got.iter().map(|r| r.event.clone()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["alias.moved".to_string(), "version.created".to_string()])
    );
    for r in &got {
        assert_signed(r, &secret);
        let payload = r.json();
        assert_eq!(payload["type"], r.event.as_str());
        assert_eq!(payload["model"], "fraud");
        assert_eq!(payload["version"], 1);
        assert!(payload["id"].as_str().unwrap().starts_with("audit-"));
        assert!(payload["occurred_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(payload["data"]["actor"], "bootstrap-admin");
    }
    let moved = got
        .iter()
        .find(|r| r.event == "alias.moved")
        .unwrap()
        .json();
    assert_eq!(
        (
            &moved["data"]["kind"],
            &moved["data"]["alias"],
            &moved["data"]["after"]["reason"]
        ),
        (&json!("set"), &json!("staging"), &json!("first"))
    );

    // Each delivery is recorded as delivered, under the id the receiver saw.
    let items = wait_deliveries(&http, "ci", |items| {
        items.len() == 2 && items.iter().all(|i| i["status"] == "delivered")
    })
    .await;
    let listed: BTreeSet<String> = items.iter().map(|i| i["id"].to_string()).collect();
    let seen: BTreeSet<String> = got.iter().map(|r| r.delivery.clone()).collect();
    assert_eq!(listed, seen);
    for i in &items {
        assert_eq!(
            (&i["attempts"], &i["last_status_code"]),
            (&json!(1), &json!(200)),
            "{i}"
        );
        assert!(i["delivered_at"].is_string());
    }

    // A test event goes to this one subscription.
    let out = d.cli(&["webhook", "test", "ci"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let got = receiver.wait_for(3).await;
    let ping = &got[2];
    assert_eq!(ping.event, "ping");
    assert_signed(ping, &secret);
    assert!(stdout(&out).contains(ping.json()["id"].as_str().unwrap()));
    wait_deliveries(&http, "ci", |items| {
        items.len() == 3 && items.iter().all(|i| i["status"] == "delivered")
    })
    .await;

    // The secret is in no listing and not in the audit log; creation is audited.
    let out = d.cli(&["webhook", "list"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("ci") && !stdout(&out).contains(&secret));
    let out = d.cli(&["webhook", "deliveries", "ci"]);
    assert!(stdout(&out).contains("delivered"), "{}", stdout(&out));
    for path in [
        "/api/v1/webhooks",
        "/api/v1/webhooks/ci",
        "/api/v1/webhooks/ci/deliveries",
        "/api/v1/audit?limit=1000",
    ] {
        let (status, body) = http.get(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !body.to_string().contains(&secret),
            "{path} shows the secret"
        );
    }
    let creations = AuditQuery {
        action: Some("webhook.create".into()),
        ..AuditQuery::default()
    };
    let audit = http.api().audit().list(&creations).await.unwrap();
    assert_eq!(audit.items[0].target, "webhook/ci");

    let (_, text) = http.get("/metrics").await;
    let text = text.as_str().unwrap();
    assert_eq!(
        metric(
            text,
            "modelwatch_webhook_deliveries_total{outcome=\"delivered\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            text,
            "modelwatch_webhook_deliveries_total{outcome=\"failed\"}"
        ),
        0.0
    );

    // Deleting the subscription takes its deliveries with it.
    let out = d.cli(&["webhook", "delete", "ci"]);
    assert!(out.status.success());
    assert_eq!(http.get("/api/v1/webhooks/ci/deliveries").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_and_a_dead_one_fails_after_the_last_attempt() {
    let flaky = Receiver::start(&[500]).await;
    // A port nobody listens on.
    let dead_url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let d = Daemon::start_with(fast_retries(3));
    let http = d.http();
    let secret = create_hook(&http, "flaky", &flaky.url, &["version.created"]).await;
    create_hook(&http, "dead", &dead_url, &["*"]).await;
    model_with_version(&http, "fraud").await;

    // 500, then 200: the same delivery, body and signature, twice.
    let got = flaky.wait_for(2).await;
    assert_eq!(got[0].delivery, got[1].delivery);
    assert_eq!(got[0].body, got[1].body);
    assert_signed(&got[1], &secret);
    let items = wait_deliveries(&http, "flaky", |items| {
        items.len() == 1 && items[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(items[0]["attempts"], 2, "{items:?}");
    assert_eq!(items[0]["id"].to_string(), got[0].delivery);
    assert_eq!(items[0]["last_status_code"], 200);

    let items = wait_deliveries(&http, "dead", |items| {
        items.len() == 1 && items[0]["status"] == "failed"
    })
    .await;
    assert_eq!(items[0]["attempts"], 3, "{items:?}");
    assert!(items[0]["last_status_code"].is_null());
    let error = items[0]["last_error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert!(items[0]["next_attempt_at"].is_null());

    let out = d.cli(&["webhook", "deliveries", "dead", "--status", "failed"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("failed") && stdout(&out).contains("refused"));
    let pending_only = DeliveryQuery {
        status: Some("pending".into()),
        ..DeliveryQuery::default()
    };
    let pending = http
        .api()
        .webhooks()
        .deliveries("dead", &pending_only)
        .await
        .unwrap();
    assert_eq!(pending.items, []);

    let (_, text) = http.get("/metrics").await;
    let text = text.as_str().unwrap();
    // flaky: 1 retry + 1 delivered; dead: 2 retries + 1 failure.
    assert_eq!(
        metric(
            text,
            "modelwatch_webhook_deliveries_total{outcome=\"retry\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            text,
            "modelwatch_webhook_deliveries_total{outcome=\"failed\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            text,
            "modelwatch_webhook_deliveries_total{outcome=\"delivered\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_a_restart_and_events_survive_a_kill() {
    let receiver = Receiver::start(&[]).await;
    receiver.answer_always(Some(503));
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let d = Daemon::start_in(data.clone(), None, fast_retries(100));
    let http = d.http();
    let secret = create_hook(&http, "ci", &receiver.url, &["version.created"]).await;
    model_with_version(&http, "fraud").await;
    // At least one attempt was refused: the delivery is pending.
    receiver.wait_for(1).await;
    let (exit, _) = d.terminate();
    assert!(exit.success());

    receiver.answer_always(None);
    let d = Daemon::start_in(data.clone(), None, fast_retries(100));
    let http = d.http();
    let items = wait_deliveries(&http, "ci", |items| {
        items.len() == 1 && items[0]["status"] == "delivered"
    })
    .await;
    assert!(items[0]["attempts"].as_i64().unwrap() >= 2, "{items:?}");

    // An acknowledged change is delivered even if the daemon dies right
    // after answering (before or after dispatching it): exactly once.
    let (status, _) = http.post("/api/v1/models/fraud/versions", json!({})).await;
    assert_eq!(status, 201);
    d.kill9();
    let d = Daemon::start_in(data, None, fast_retries(100));
    let http = d.http();
    let items = wait_deliveries(&http, "ci", |items| {
        items.len() == 2 && items.iter().all(|i| i["status"] == "delivered")
    })
    .await;
    assert_eq!(items[1]["payload"]["version"], 2);
    let got = receiver.got();
    let v2: BTreeSet<&str> = got
        .iter()
        .filter(|r| r.json()["version"] == 2)
        .map(|r| r.delivery.as_str())
        .collect();
    assert_eq!(v2.len(), 1, "one delivery id for the event: {got:?}");
    for r in &got {
        assert_signed(r, &secret);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_requests_get_a_4xx_and_write_nothing() {
    let d = Daemon::start();
    let http = d.http();
    let url = "http://127.0.0.1:9/hook";
    create_hook(&http, "taken", url, &["*"]).await;
    let editor = http.with_token(Some(&http.token("ed", "editor").await));
    let audit_len = http.audit_len().await;

    let hook = |name: &str, url: &str, events: Value| json!({ "name": name, "url": url, "events": events });
    // (client, method, path, body, status, error code)
    type Case<'a> = (&'a Http, &'a str, &'a str, Option<Value>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(hook("a", "ftp://x/y", json!(["*"]))),
            400,
            "invalid_argument",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(hook("a", "not a url", json!(["*"]))),
            400,
            "invalid_argument",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(hook("a", "ftp://example.invalid/x", json!(["*"]))),
            400,
            "invalid_argument",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(hook("a", url, json!(["version.deleted"]))),
            400,
            "invalid_argument",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(hook("a", url, json!([]))),
            400,
            "invalid_argument",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(hook("bad name", url, json!(["*"]))),
            400,
            "invalid_argument",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "a", "url": url, "events": ["*"], "colour": 1})),
            400,
            "invalid_argument",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "a", "url": url, "events": ["*"], "secret": "short"})),
            400,
            "invalid_argument",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks",
            Some(hook("taken", url, json!(["*"]))),
            409,
            "already_exists",
        ),
        (
            &editor,
            "POST",
            "/api/v1/webhooks",
            Some(hook("a", url, json!(["*"]))),
            403,
            "permission_denied",
        ),
        (
            &editor,
            "GET",
            "/api/v1/webhooks",
            None,
            403,
            "permission_denied",
        ),
        (
            &editor,
            "DELETE",
            "/api/v1/webhooks/taken",
            None,
            403,
            "permission_denied",
        ),
        (
            &editor,
            "POST",
            "/api/v1/webhooks/taken/test",
            None,
            403,
            "permission_denied",
        ),
        (
            &http,
            "GET",
            "/api/v1/webhooks/nope",
            None,
            404,
            "not_found",
        ),
        (
            &http,
            "DELETE",
            "/api/v1/webhooks/nope",
            None,
            404,
            "not_found",
        ),
        (
            &http,
            "POST",
            "/api/v1/webhooks/nope/test",
            None,
            404,
            "not_found",
        ),
        (
            &http,
            "GET",
            "/api/v1/webhooks/nope/deliveries",
            None,
            404,
            "not_found",
        ),
        (
            &http,
            "GET",
            "/api/v1/webhooks/taken/deliveries?status=lost",
            None,
            400,
            "invalid_argument",
        ),
        (
            &http,
            "GET",
            "/api/v1/webhooks/taken/deliveries?colour=red",
            None,
            400,
            "invalid_argument",
        ),
    ];
    for (client, method, path, body, status, code) in cases {
        let (got, reply) = client.send(method, path, body.clone()).await;
        assert_eq!(got, status, "{method} {path} {body:?}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{method} {path}: {reply}");
    }
    let anonymous = http.with_token(None);
    let (status, reply) = anonymous
        .post("/api/v1/webhooks", hook("a", url, json!(["*"])))
        .await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (401, &json!("unauthenticated"))
    );

    // The CLI reports a refusal and exits 1.
    let out = d.cli(&["webhook", "create", "b", "ftp://x", "--event", "*"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(crate::support::stderr(&out).contains("http://"));

    assert_eq!(http.audit_len().await, audit_len);
    let hooks = http.api().webhooks().list().await.unwrap();
    let names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["taken"]);
    assert_eq!(deliveries(&http, "taken").await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendation_events_follow_the_lifecycle_and_the_model_filter() {
    let receiver = Receiver::start(&[]).await;
    let d = Daemon::start_with(fast_retries(3));
    let http = d.http();
    http.post_expect(
        "/api/v1/webhooks",
        json!({ "name": "fraud-only", "url": receiver.url, "events": ["*"], "model": "fraud" }),
        201,
    )
    .await;
    model_with_version(&http, "other").await;
    model_with_version(&http, "fraud").await;
    let raise = json!({ "kind": "retrain", "severity": "warning", "reason": "drift" });
    for model in ["other", "fraud", "fraud"] {
        // The second raise on fraud refreshes the open recommendation.
        http.post_expect(
            &format!("/api/v1/models/{model}/versions/1/recommendations"),
            raise.clone(),
            200,
        )
        .await;
    }
    let open = http
        .recommendations_of("fraud", None, Some(RecommendationStatus::Open))
        .await;
    let id = open[0].id;
    let (status, _) = http
        .post(
            &format!("/api/v1/recommendations/{id}/dismiss"),
            json!({ "note": "known seasonal shift" }),
        )
        .await;
    assert_eq!(status, 200);

    // Deliveries are queued in audit order: only fraud's, no refresh.
    let items = wait_deliveries(&http, "fraud-only", |items| {
        items.len() == 3 && items.iter().all(|i| i["status"] == "delivered")
    })
    .await;
    let types: Vec<&str> = items
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "version.created",
            "recommendation.raised",
            "recommendation.dismissed"
        ]
    );
    let dismissed = &items[2]["payload"];
    assert_eq!(
        (
            &dismissed["model"],
            &dismissed["version"],
            &dismissed["data"]["recommendation_id"]
        ),
        (&json!("fraud"), &json!(1), &json!(id))
    );
    assert_eq!(
        dismissed["data"]["after"]["resolution_note"],
        "known seasonal shift"
    );
    assert_eq!(receiver.got().len(), 3);
}

#[tokio::test]
async fn the_evaluator_announces_drift_and_its_retrain_recommendation() {
    let receiver = Receiver::start(&[]).await;
    let d = Daemon::start();
    let admin = d.http();
    let secret = create_hook(
        &admin,
        "drift-watch",
        &receiver.url,
        &["drift.detected", "recommendation.raised"],
    )
    .await;
    crate::monitoring::drifting_fraud_model(&admin, json!({})).await;
    admin.post_expect("/api/v1/evaluate", json!({}), 200).await;

    // Both events arrive, signed. The background loop may have evaluated
    // first (a new policy is due at once), so a second drift event may come
    // before or after the raise; wait until both kinds are in.
    let mut n = 2;
    let got = loop {
        let got = receiver.wait_for(n).await;
        let has = |kind: &str| got.iter().any(|r| r.event == kind);
        if has("drift.detected") && has("recommendation.raised") {
            break got;
        }
        n = got.len() + 1;
    };
    let drift: Vec<&Received> = got.iter().filter(|r| r.event == "drift.detected").collect();
    let raised: Vec<&Received> = got
        .iter()
        .filter(|r| r.event == "recommendation.raised")
        .collect();
    assert!(!drift.is_empty() && raised.len() == 1, "{got:?}");
    for r in drift.iter().chain(&raised) {
        assert_signed(r, &secret);
    }
    let event = drift[0].json();
    assert_eq!(event["type"], "drift.detected");
    assert_eq!(
        (event["model"].as_str(), event["version"].as_i64()),
        (Some("fraud"), Some(1))
    );
    assert_eq!(event["data"]["drifted_features"], json!(["amount"]));
    assert!(
        event["data"]["evaluation_id"]
            .as_str()
            .unwrap()
            .starts_with("fraud/1/")
    );
    let raised = raised[0].json();
    assert_eq!(raised["data"]["after"]["kind"], "retrain", "{raised}");
}
