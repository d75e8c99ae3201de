//! Starting the real `modelwatch` binary and talking to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// The `modelwatch` binary built next to this test (`cargo build --bins`).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join(format!("modelwatch{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --bins` (.ci/run does)",
        bin.display()
    );
    bin
}

/// The python with the packages of `tests/python/requirements.txt`
/// (`MODELWATCH_TEST_PYTHON`; `.ci/run` creates it). Missing is a failure,
/// never a skip.
pub fn test_python() -> String {
    std::env::var("MODELWATCH_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "MODELWATCH_TEST_PYTHON is not set: it names a python with the packages of \
             tests/python/requirements.txt (.ci/run creates it in $HOME/.cache/modelwatch/venv)"
        )
    })
}

/// Runs a script of `tests/python/` with [`test_python`], arguments and
/// environment variables, off the async runtime; fails the test unless the
/// script succeeds, and returns its standard output.
pub async fn run_python_script(script: &str, args: &[String], env: &[(&str, &str)]) -> String {
    let python = test_python();
    let path = format!("{}/python/{script}", manifest_dir());
    let args = args.to_vec();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&path)
            .args(&args)
            .envs(env)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This crate's folder in the checkout being tested. Read when the test
/// runs (cargo sets it then too), not when it was compiled: a test binary
/// reused from a build in another clone must not read that clone's files.
/// A reqwest client builder for the tests' HTTP calls. reqwest's TLS runs
/// on rustls without a compiled-in provider, so the process's one is
/// installed first (the OpenTelemetry exporters' clients need it too).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    modelwatch_client::tls::install_crypto_provider();
    reqwest::Client::builder()
}

pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("an HTTP client")
}

pub fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string())
}

pub const TOKEN: &str = "mw_e2e_bootstrap_admin_token_0001";

/// A running daemon with its own temporary data directory; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub url: String,
    /// `http://ADDR` of the dedicated OTLP/HTTP listener, unless switched off.
    pub otlp_http_url: Option<String>,
    /// `http://ADDR` of the OTLP/gRPC listener (the daemon logs
    /// `grpc://ADDR`), unless switched off.
    pub otlp_grpc_url: Option<String>,
    /// `ADDR` of the PostgreSQL listener (the daemon logs `postgres://ADDR`),
    /// unless switched off.
    pub pg_addr: Option<String>,
    pub data_dir: PathBuf,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    stderr_thread: Option<std::thread::JoinHandle<()>>,
    stdout_thread: Option<std::thread::JoinHandle<()>>,
    stdout_lines: mpsc::Receiver<String>,
    _temp: Option<tempfile::TempDir>,
}

pub struct Start {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub bootstrap: bool,
    pub data_dir_flag: bool,
}

impl Start {
    /// The default start with these extra `serve` flags.
    pub fn args(args: &[&str]) -> Start {
        Start {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Start::default()
        }
    }
}

impl Default for Start {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            env: Vec::new(),
            bootstrap: true,
            data_dir_flag: true,
        }
    }
}

/// Which listener a `listening on` line announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Api,
    OtlpHttp,
    OtlpGrpc,
    Pg,
}

fn drain(
    reader: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    ready: Option<mpsc::Sender<(Listener, String)>>,
    lines: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            // Record the line before signalling, so whoever is woken sees it.
            if let Ok(mut s) = sink.lock() {
                s.push_str(&line);
                s.push('\n');
            }
            if let Some(tx) = &lines {
                let _ = tx.send(line.clone());
            }
            if let Some(tx) = &ready
                && let Some(pos) = line.find("listening on ")
            {
                let url = line[pos + "listening on ".len()..]
                    .split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let kind = if url.starts_with("postgres://") {
                    Listener::Pg
                } else if line.contains("otlp-grpc") {
                    Listener::OtlpGrpc
                } else if line.contains("otlp-http") {
                    Listener::OtlpHttp
                } else {
                    Listener::Api
                };
                let _ = tx.send((kind, url));
            }
        }
    })
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with(Start::default())
    }

    pub fn start_with(opts: Start) -> Daemon {
        let temp = tempfile::tempdir().expect("temp dir");
        Self::start_in(temp.path().to_path_buf(), Some(temp), opts)
    }

    /// Starts on an existing data directory (e.g. a restart).
    pub fn start_in(data_dir: PathBuf, temp: Option<tempfile::TempDir>, opts: Start) -> Daemon {
        // The tests' exporters build HTTPS-capable clients from the process
        // default provider.
        modelwatch_client::tls::install_crypto_provider();
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--log")
            .arg("info,modelwatch=debug");
        if opts.data_dir_flag {
            cmd.arg("--data-dir").arg(&data_dir);
        }
        if opts.bootstrap {
            cmd.arg("--bootstrap-token").arg(TOKEN);
        }
        // The OTLP listeners default to fixed ports; tests run in parallel.
        for flag in ["--otlp-http-listen", "--otlp-grpc-listen", "--pg-listen"] {
            if !opts.args.iter().any(|a| a == flag) {
                cmd.arg(flag).arg("127.0.0.1:0");
            }
        }
        cmd.args(&opts.args);
        cmd.env_remove("MODELWATCH_TOKEN")
            .env_remove("MODELWATCH_URL")
            .env_remove("MODELWATCH_DATA_DIR");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn modelwatch");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let (line_tx, stdout_lines) = mpsc::channel();
        let stdout_thread = drain(
            child.stdout.take().expect("stdout"),
            stdout.clone(),
            None,
            Some(line_tx),
        );
        let stderr_thread = drain(
            child.stderr.take().expect("stderr"),
            stderr.clone(),
            Some(tx),
            None,
        );
        // The API listener is announced last, once everything is ready.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let (mut addr, mut otlp_http_url, mut otlp_grpc_url, mut pg_addr) =
            (None, None, None, None);
        while addr.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok((Listener::Api, url)) => addr = Some(url),
                Ok((Listener::OtlpHttp, url)) => otlp_http_url = Some(url),
                Ok((Listener::OtlpGrpc, url)) => {
                    otlp_grpc_url = Some(url.replacen("grpc://", "http://", 1))
                }
                Ok((Listener::Pg, url)) => {
                    pg_addr = Some(url.trim_start_matches("postgres://").to_string())
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "modelwatch did not log `listening on` within 60s; stderr:\n{}",
                        stderr.lock().map(|s| s.clone()).unwrap_or_default()
                    );
                }
            }
        }
        let addr = addr.unwrap_or_default();
        Daemon {
            child,
            url: addr,
            otlp_http_url,
            otlp_grpc_url,
            pg_addr,
            data_dir,
            stdout,
            stderr,
            stderr_thread: Some(stderr_thread),
            stdout_thread: Some(stdout_thread),
            stdout_lines,
            _temp: temp,
        }
    }

    /// `(host, port)` of the PostgreSQL listener.
    pub fn pg_addr(&self) -> (String, u16) {
        let addr: std::net::SocketAddr = self
            .pg_addr
            .as_deref()
            .expect("the PostgreSQL listener is on")
            .parse()
            .expect("postgres://ADDR");
        (addr.ip().to_string(), addr.port())
    }

    pub fn http(&self) -> Http {
        Http {
            url: self.url.clone(),
            token: Some(TOKEN.to_string()),
            client: crate::support::http_client(),
        }
    }

    /// Runs a CLI subcommand against this daemon with the admin token.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(TOKEN, args)
    }

    /// [`Daemon::cli_as`] with the arguments written as one line, split at
    /// spaces (so for arguments without any).
    pub fn cli_line_as(&self, token: &str, line: &str) -> Output {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.cli_as(token, &args)
    }

    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .env("MODELWATCH_URL", &self.url)
            .env("MODELWATCH_TOKEN", token)
            .output()
            .expect("run modelwatch CLI")
    }

    /// The next line the daemon prints on stdout.
    pub fn next_stdout_line(&self) -> Option<String> {
        self.stdout_lines.recv_timeout(Duration::from_secs(30)).ok()
    }

    /// Sends the daemon a signal (`KILL`, `TERM`, …) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}");
    }

    /// SIGKILL: no shutdown, no flush; what was acknowledged must survive.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, waits for the exit status and returns it with the log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        self.signal("TERM");
        let exit = self.child.wait().expect("wait for modelwatch");
        // The pipe closes when the process exits: the thread has read every line.
        for t in [self.stderr_thread.take(), self.stdout_thread.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
        let log = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        (exit, log)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small JSON-over-HTTP client, for requests whose exact status codes,
/// headers or malformed bodies a test checks; [`Http::client`] is the
/// typed client for everything else.
#[derive(Clone)]
pub struct Http {
    pub url: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Http {
    /// The typed native-API client for the same daemon and token.
    pub fn api(&self) -> modelwatch_client::Client {
        modelwatch_client::Client::with_http(self.client.clone(), &self.url, self.token.clone())
    }

    pub fn with_token(&self, token: Option<&str>) -> Http {
        Http {
            token: token.map(str::to_string),
            ..self.clone()
        }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PUT", path, Some(body)).await
    }
    /// GET that must answer `status`; the reply's body.
    pub async fn get_expect(&self, path: &str, status: u16) -> Value {
        let (got, reply) = self.get(path).await;
        assert_eq!(got, status, "GET {path}: {reply}");
        reply
    }
    /// POST that must answer `status`; the reply's body.
    pub async fn post_expect(&self, path: &str, body: Value, status: u16) -> Value {
        self.expect("POST", path, body, status).await
    }
    /// PUT that must answer `status`; the reply's body.
    pub async fn put_expect(&self, path: &str, body: Value, status: u16) -> Value {
        self.expect("PUT", path, body, status).await
    }
    async fn expect(&self, method: &str, path: &str, body: Value, status: u16) -> Value {
        let (got, reply) = self.send(method, path, Some(body)).await;
        assert_eq!(got, status, "{method} {path}: {reply}");
        reply
    }

    /// POST of a JSON value sent as raw bytes (`Http::raw`), for routes
    /// outside the native API whose exact reply a test checks (OTLP/JSON).
    pub async fn post_json_bytes(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("JSON body");
        self.raw("POST", path, "application/json", bytes).await
    }

    /// Sets `model`'s gate policy to the example `policies/gates/{file}`.
    pub async fn put_example_gate(&self, model: &str, file: &str) {
        let path = format!("{}/../policies/gates/{file}", manifest_dir());
        let rego = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (status, reply) = self
            .raw(
                "PUT",
                &format!("/api/v1/models/{model}/gate-policy"),
                "text/plain",
                rego,
            )
            .await;
        assert_eq!(status, 200, "{file}: {reply}");
    }

    /// How many entries of the audit log record something done: a refused
    /// request must not change it. Refused credentials (`auth.failed`) are
    /// left out: they are records of refusals, written in the background,
    /// so one from an earlier step may land at any time.
    pub async fn audit_len(&self) -> usize {
        let whole_log = modelwatch_client::AuditQuery {
            page: modelwatch_client::PageQuery::limit(1000),
            ..modelwatch_client::AuditQuery::default()
        };
        let log = self.api().audit().list(&whole_log).await.unwrap();
        log.items
            .iter()
            .filter(|e| e.action != "auth.failed")
            .count()
    }

    /// The recommendations of `model` (first page), of one kind and in one
    /// status when given, through the typed client.
    pub async fn recommendations_of(
        &self,
        model: &str,
        kind: Option<modelwatch_client::RecommendationKind>,
        status: Option<modelwatch_client::RecommendationStatus>,
    ) -> Vec<modelwatch_client::Recommendation> {
        let query = modelwatch_client::RecommendationQuery {
            model: Some(model.to_string()),
            kind,
            status,
            ..modelwatch_client::RecommendationQuery::default()
        };
        let api = self.api();
        api.recommendations().list(&query).await.unwrap().items
    }

    /// The text of `GET path` (e.g. `/metrics`); the answer must be 200.
    pub async fn get_text(&self, path: &str) -> String {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status(), 200, "GET {path}");
        res.text().await.expect("body")
    }

    /// Creates model `name` with `versions` versions (1, 2, …), as this
    /// client.
    pub async fn model_with_versions(&self, name: &str, versions: usize) {
        let (status, body) = self
            .post("/api/v1/models", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(status, 201, "{body}");
        for _ in 0..versions {
            let (status, body) = self
                .post(
                    &format!("/api/v1/models/{name}/versions"),
                    serde_json::json!({}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    }

    /// Moves `alias` of `model` to `version`; the answer must be `status`.
    pub async fn put_alias(&self, model: &str, alias: &str, version: i64, status: u16) -> Value {
        let path = format!("/api/v1/models/{model}/aliases/{alias}");
        self.put_expect(&path, serde_json::json!({ "version": version }), status)
            .await
    }

    /// Creates a token with a role and returns its secret.
    pub async fn token(&self, name: &str, role: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/tokens",
                serde_json::json!({ "name": name, "role": role }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("token secret").to_string()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `error.message` of an error reply.
pub fn error_message(reply: &Value) -> &str {
    reply["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error reply: {reply}"))
}

/// Polls `check` every 250 ms until it returns `Ok`, for at most `limit`;
/// fails naming `what` and the last state `check` described. Tests wait for
/// an observable condition this way, never for a fixed time.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(state) if std::time::Instant::now() > deadline => {
                panic!("{what} did not happen within {limit:?}; last state: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Runs a SQL query through `POST /api/v1/sql`; the answer must be 200.
pub async fn sql(http: &Http, query: &str) -> Value {
    let (status, body) = http
        .post("/api/v1/sql", serde_json::json!({ "sql": query }))
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// Rows in a table.
pub async fn count(http: &Http, table: &str) -> i64 {
    sql(http, &format!("SELECT count(*) AS n FROM {table}")).await["rows"][0]["n"]
        .as_i64()
        .expect("a count")
}

/// Rows in a table that meet a SQL condition.
pub async fn count_where(http: &Http, table: &str, condition: &str) -> i64 {
    count(http, &format!("{table} WHERE {condition}")).await
}

/// A child process (Prometheus, Alertmanager) killed when the test ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Every operation (method, path template) the daemon's OpenAPI document
/// lists.
pub async fn openapi_operations(http: &Http) -> Vec<(String, String)> {
    let (status, doc) = http.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

/// A path template with every parameter filled in.
pub fn concrete_path(template: &str) -> String {
    template
        .replace("{model}", "m")
        .replace("{version}", "1")
        .replace("{alias}", "production")
        .replace("{key}", "k")
        .replace("{id}", "1")
        .replace("{name}", "t")
        .replace("{path}", "model/MLmodel")
}

/// An (empty) JSON body for the methods that take one.
pub fn body_for(method: &str) -> Option<Value> {
    matches!(method, "POST" | "PUT" | "PATCH").then(|| serde_json::json!({}))
}

/// Runs `modelwatch serve` with `args` on a new data directory in `dir`;
/// it must refuse to start, saying `reason`.
pub fn serve_refuses(dir: &Path, args: &[&str], reason: &str) {
    let out = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .output()
        .expect("run modelwatch serve");
    assert!(!out.status.success(), "serve {args:?} started");
    assert!(
        stderr(&out).contains(reason),
        "serve {args:?}: {}",
        stderr(&out)
    );
}
