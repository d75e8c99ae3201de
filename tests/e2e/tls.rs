//! TLS on every listener (`--tls-cert`, `--tls-key`, `--tls-client-ca`)
//! with a private CA made for the test, through real clients: the CLI
//! with `--ca-file`, the OpenTelemetry exporter over gRPC and HTTP (with a
//! client certificate instead of a token too), Prometheus remote write and
//! scrape with `tls_config`, the `mlflow` client, Alertmanager's webhook
//! with `http_config.tls_config`, `psql` with `sslmode=verify-full`; the
//! daemon's own webhooks to an HTTPS receiver (`serve --ca-file`); and the
//! certificate reloaded on SIGHUP and on a file change.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};

use crate::prometheus::Prometheus;
use crate::support::*;

/// A certificate authority made for one test, and what it issued, as PEM
/// files in a temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate: what clients trust.
    pub(crate) ca: PathBuf,
}

/// A certificate and its key, as files.
pub(crate) struct Issued {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Issued {
    pub(crate) fn arg(&self) -> (String, String) {
        (
            self.cert.display().to_string(),
            self.key.display().to_string(),
        )
    }
}

impl Pki {
    pub(crate) fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.path().join(format!("{name}.pem"));
        std::fs::write(&ca, cert.pem()).unwrap();
        Pki {
            issuer: Issuer::new(params, key),
            dir,
            ca,
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub(crate) fn server(&self, file: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, file)
    }

    /// A client certificate with common name `name`.
    fn client(&self, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, name)
    }

    fn issue(&self, mut params: CertificateParams, file: &str) -> Issued {
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let issued = Issued {
            cert: self.dir.path().join(format!("{file}.crt")),
            key: self.dir.path().join(format!("{file}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }

    pub(crate) fn ca_arg(&self) -> String {
        self.ca.display().to_string()
    }
}

/// A daemon serving `server` on every listener, asking for client
/// certificates of `clients`' CA.
fn tls_daemon(server: &Issued, clients: Option<&Pki>, extra: &[&str]) -> Daemon {
    let (cert, key) = server.arg();
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    let client_ca = clients.map(Pki::ca_arg);
    if let Some(ca) = &client_ca {
        args.extend(["--tls-client-ca", ca]);
    }
    args.extend(extra);
    let d = Daemon::start_with(Start::args(&args));
    assert!(d.url.starts_with("https://"), "{}", d.url);
    d
}

/// A rustls client configuration trusting `ca`, presenting `identity`.
fn client_tls(ca: &Path, identity: Option<&Issued>) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&id.cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&id.key).unwrap(),
            )
            .unwrap(),
    }
}

/// The test's HTTP helper over HTTPS, trusting `ca`.
fn https(d: &Daemon, ca: &Path, identity: Option<&Issued>) -> Http {
    Http {
        client: http_client_builder()
            .tls_backend_preconfigured(client_tls(ca, identity))
            .build()
            .unwrap(),
        ..d.http()
    }
}

/// Spans of model `model` exported by the real OpenTelemetry exporter.
fn export_spans(exporter: SpanExporter, model: &str) {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_attributes([
                    opentelemetry::KeyValue::new("model.name", model.to_string()),
                    opentelemetry::KeyValue::new("model.version", "1"),
                ])
                .build(),
        )
        .build();
    let tracer = provider.tracer("modelwatch-e2e");
    for _ in 0..3 {
        let mut span = tracer.start("predict");
        opentelemetry::trace::Span::end(&mut span);
    }
    provider.shutdown().expect("spans exported over TLS");
}

fn grpc_tls(ca: &Path, identity: Option<&Issued>) -> tonic::transport::ClientTlsConfig {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(ca).unwrap(),
        ))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            std::fs::read(&id.cert).unwrap(),
            std::fs::read(&id.key).unwrap(),
        ));
    }
    tls
}

async fn spans_of(http: &Http, model: &str) -> i64 {
    count_where(http, "spans", &format!("model = '{model}'")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_listener_speaks_tls_to_real_clients_and_a_client_certificate_may_only_ingest() {
    let pki = Pki::new("test-ca");
    let clients = Pki::new("client-ca");
    let stranger = Pki::new("stranger-ca");
    let d = tls_daemon(&pki.server("server"), Some(&clients), &[]);
    let admin = https(&d, &pki.ca, None);
    admin.get_expect("/api/v1/models", 200).await;
    admin
        .post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;

    // Plain HTTP to a TLS port, and a client that does not trust the CA,
    // get nowhere.
    let plain = d.url.replacen("https://", "http://", 1);
    let refused = http_client().get(format!("{plain}/healthz")).send().await;
    assert!(
        refused.is_err(),
        "plain HTTP must not be served: {refused:?}"
    );
    let untrusted = http_client().get(format!("{}/healthz", d.url)).send().await;
    assert!(untrusted.is_err(), "an unknown CA must fail the handshake");

    // The CLI: --ca-file works; without it the error says what to do.
    let out = d.cli(&["models", "list", "--ca-file", &pki.ca_arg()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("fraud"), "{}", stdout(&out));
    let out = d.cli(&["models", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot verify modelwatch's TLS certificate") && err.contains("--ca-file"),
        "{err}"
    );
    let out = Command::new(binary())
        .args(["models", "list"])
        .env("MODELWATCH_URL", &d.url)
        .env("MODELWATCH_TOKEN", TOKEN)
        .env("MODELWATCH_CA_FILE", &pki.ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "MODELWATCH_CA_FILE: {}", stderr(&out));

    // The OpenTelemetry exporter, over gRPC and over HTTP, with a token.
    let grpc_url = d.otlp_grpc_url.clone().unwrap();
    let otlp_http = d.otlp_http_url.clone().unwrap();
    assert!(grpc_url.starts_with("https://") && otlp_http.starts_with("https://"));
    let (ca, url) = (pki.ca.clone(), grpc_url.clone());
    tokio::task::spawn_blocking(move || {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url)
            .with_tls_config(grpc_tls(&ca, None))
            .with_metadata(metadata)
            .build()
            .unwrap();
        export_spans(exporter, "over-grpc");
    })
    .await
    .unwrap();
    let (ca, url) = (pki.ca.clone(), format!("{otlp_http}/v1/traces"));
    tokio::task::spawn_blocking(move || {
        let client = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(client_tls(&ca, None))
            .build()
            .unwrap();
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(url)
            .with_headers([("authorization".to_string(), format!("Bearer {TOKEN}"))].into())
            .build()
            .unwrap();
        export_spans(exporter, "over-http");
    })
    .await
    .unwrap();
    assert_eq!(spans_of(&admin, "over-grpc").await, 3);
    assert_eq!(spans_of(&admin, "over-http").await, 3);

    // A client certificate of the client CA, and no token: it may ingest,
    // over gRPC and HTTP, and nothing more.
    let scorer = clients.client("scorer-1");
    let (ca, url, id) = (pki.ca.clone(), grpc_url.clone(), scorer.arg());
    tokio::task::spawn_blocking(move || {
        let identity = Issued {
            cert: id.0.into(),
            key: id.1.into(),
        };
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url)
            .with_tls_config(grpc_tls(&ca, Some(&identity)))
            .build()
            .unwrap();
        export_spans(exporter, "by-certificate");
    })
    .await
    .unwrap();
    assert_eq!(spans_of(&admin, "by-certificate").await, 3);
    let by_cert = https(&d, &pki.ca, Some(&scorer)).with_token(None);
    let body = json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "model.name", "value": {"stringValue": "by-certificate-http"}},
        {"key": "model.version", "value": {"stringValue": "1"}}]},
        "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174", "name": "predict",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"}]}]}]});
    let (status, reply) = by_cert.post("/v1/traces", body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(spans_of(&admin, "by-certificate-http").await, 1);
    let (status, reply) = by_cert
        .post("/api/v1/models", json!({"name": "by-certificate"}))
        .await;
    assert_eq!(status, 403, "{reply}");
    assert!(error_message(&reply).contains("cert:scorer-1"), "{reply}");
    // A token sent with the certificate wins.
    by_cert
        .with_token(Some(TOKEN))
        .post_expect("/api/v1/models", json!({"name": "by-token"}), 201)
        .await;
    // A certificate of another CA fails the handshake.
    let intruder = https(&d, &pki.ca, Some(&stranger.client("intruder"))).with_token(None);
    let refused = intruder
        .client
        .get(format!("{}/healthz", d.url))
        .send()
        .await;
    assert!(refused.is_err(), "a stranger's certificate must be refused");

    // psql checks the certificate against the CA and the host name.
    let (host, port) = d.pg_addr();
    let out = Command::new("psql")
        .arg(format!(
            "host={host} port={port} user=ci dbname=modelwatch sslmode=verify-full sslrootcert={}",
            pki.ca.display()
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT count(*) FROM spans"])
        .env("PGPASSWORD", TOKEN)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "10");

    // The UI's cookies are Secure over TLS, and HTTPS is to be kept.
    let page = admin
        .client
        .get(format!("{}/ui/login", d.url))
        .send()
        .await
        .unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert!(
        page.headers().contains_key("strict-transport-security"),
        "{:?}",
        page.headers()
    );

    // The expiry of the served certificate is exported.
    let metrics = admin.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("modelwatch_tls_certificate_expiry_timestamp_seconds{")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_and_remote_writes_over_tls_with_a_client_certificate() {
    let pki = Pki::new("test-ca");
    let d = tls_daemon(&pki.server("server"), Some(&pki), &[]);
    let admin = https(&d, &pki.ca, None);
    let reader = admin.token("prometheus-scrape", "reader").await;
    let prometheus_id = pki.client("prometheus");
    let target = d.url.trim_start_matches("https://").to_string();
    let _prometheus = Prometheus::start(|port| {
        format!(
            r#"
global:
  scrape_interval: 1s
  external_labels:
    model: prom-tls
    model_version: "3"
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
  - job_name: modelwatch
    scheme: https
    tls_config:
      ca_file: {ca}
    authorization:
      credentials: {reader}
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: {url}/api/v1/write
    tls_config:
      ca_file: {ca}
      cert_file: {cert}
      key_file: {key}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
            ca = pki.ca.display(),
            cert = prometheus_id.cert.display(),
            key = prometheus_id.key.display(),
            url = d.url,
        )
    });
    // modelwatch's own metrics, scraped over HTTPS, come back through the
    // remote write authenticated by the client certificate alone.
    wait_for(Duration::from_secs(120), "Prometheus's samples over TLS", || {
        let admin = admin.clone();
        async move {
            let n = count_where(
                &admin,
                "samples",
                "model = 'prom-tls' AND metric = 'up' AND labels['job'] = 'modelwatch' AND value = 1",
            )
            .await;
            if n > 0 { Ok(()) } else { Err("no sample yet".to_string()) }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mlflow_client_and_alertmanager_speak_https_to_modelwatch() {
    let pki = Pki::new("test-ca");
    let d = tls_daemon(&pki.server("server"), None, &[]);
    let admin = https(&d, &pki.ca, None);
    let token = admin.token("mlflow-ci", "approver").await;
    let stdout = run_python_script(
        "mlflow_client.py",
        &[],
        &[
            ("MLFLOW_TRACKING_URI", &d.url),
            ("MLFLOW_TRACKING_TOKEN", &token),
            ("MLFLOW_TRACKING_SERVER_CERT_PATH", &pki.ca_arg()),
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
        ],
    )
    .await;
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["created"]["status"], "READY", "{seen}");
    let fraud = admin
        .get_expect("/api/v1/models/fraud/versions/1", 200)
        .await;
    assert_eq!(fraud["version"], 1, "{fraud}");

    // Alertmanager notifies modelwatch's receiver over HTTPS, trusting
    // the CA through http_config.tls_config.
    let am_token = admin.token("alertmanager", "approver").await;
    let dir = tempfile::tempdir().unwrap();
    let am_port = free_port();
    let config = format!(
        r#"
route:
  receiver: modelwatch
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: modelwatch
    webhook_configs:
      - url: {url}/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: {am_token}
          tls_config:
            ca_file: {ca}
"#,
        url = d.url,
        ca = pki.ca.display()
    );
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config).unwrap();
    let _alertmanager = crate::alerts::start_alertmanager(&config_path, am_port);
    let alert =
        json!([{"labels": {"alertname": "TlsProbe", "model": "fraud", "severity": "info"}}]);
    let am = http_client();
    wait_for(
        Duration::from_secs(60),
        "Alertmanager to accept the alert",
        || {
            let (am, alert) = (am.clone(), alert.clone());
            async move {
                let sent = am
                    .post(format!("http://127.0.0.1:{am_port}/api/v2/alerts"))
                    .json(&alert)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    let received = wait_for(
        Duration::from_secs(60),
        "the notification over HTTPS",
        || {
            let admin = admin.clone();
            async move {
                let page = admin.get_expect("/api/v1/alerts", 200).await;
                page["items"]
                    .as_array()
                    .and_then(|items| {
                        items
                            .iter()
                            .find(|a| a["alert_name"] == "TlsProbe")
                            .cloned()
                    })
                    .ok_or_else(|| page.to_string())
            }
        },
    )
    .await;
    assert_eq!(received["model"], "fraud", "{received}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_reach_an_https_receiver_trusted_through_ca_file() {
    let pki = Pki::new("receiver-ca");
    let receiver_cert = pki.server("receiver");
    let receiver = TlsReceiver::start(&receiver_cert).await;
    // A subscription to the receiver, then a version to announce.
    let subscribe_and_register = |admin: Http| {
        let url = receiver.url.clone();
        async move {
            admin
                .post_expect(
                    "/api/v1/webhooks",
                    json!({"name": "secure", "url": url, "events": ["version.created"]}),
                    201,
                )
                .await;
            admin.model_with_versions("fraud", 1).await;
        }
    };
    let d = Daemon::start_with(Start::args(&["--ca-file", &pki.ca_arg()]));
    subscribe_and_register(d.http()).await;
    let event = receiver.next().await;
    assert_eq!(event, "version.created");

    // The same receiver is not trusted without --ca-file: the delivery
    // fails and says why.
    let d = Daemon::start_with(Start::args(&["--webhook-max-attempts", "1"]));
    let admin = d.http();
    subscribe_and_register(admin.clone()).await;
    let failed = wait_for(Duration::from_secs(30), "the delivery to fail", || {
        let admin = admin.clone();
        async move {
            let page = admin
                .get_expect("/api/v1/webhooks/secure/deliveries", 200)
                .await;
            page["items"]
                .as_array()
                .and_then(|items| items.iter().find(|x| x["status"] == "failed").cloned())
                .ok_or_else(|| page.to_string())
        }
    })
    .await;
    assert!(
        failed.to_string().to_lowercase().contains("certificate"),
        "{failed}"
    );
}

/// An HTTPS server on loopback with `cert`, answering every request 200
/// with what `answer` says; stopped when dropped.
pub(crate) struct HttpsServer {
    /// `https://localhost:PORT`
    pub(crate) base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpsServer {
    pub(crate) async fn start<F>(cert: &Issued, answer: F) -> HttpsServer
    where
        F: Fn(&hyper::Request<hyper::body::Incoming>) -> String + Clone + Send + Sync + 'static,
    {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            CertificateDer::pem_file_iter(&cert.cert)
                .unwrap()
                .map(Result::unwrap)
                .collect(),
            PrivateKeyDer::from_pem_file(&cert.key).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, answer) = (acceptor.clone(), answer.clone());
                tokio::spawn(async move {
                    // Refused handshakes (an untrusting client) end here.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let body = answer(&req);
                            async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(body)) }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        HttpsServer { base, task }
    }
}

/// An HTTPS webhook receiver: answers 200 and reports each event name.
struct TlsReceiver {
    url: String,
    events: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
    _server: HttpsServer,
}

impl TlsReceiver {
    async fn start(cert: &Issued) -> TlsReceiver {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let server = HttpsServer::start(cert, move |req| {
            let event = req
                .headers()
                .get("x-modelwatch-event")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let _ = tx.send(event);
            String::new()
        })
        .await;
        TlsReceiver {
            url: format!("{}/hook", server.base),
            events: tokio::sync::Mutex::new(rx),
            _server: server,
        }
    }

    async fn next(&self) -> String {
        tokio::time::timeout(Duration::from_secs(30), self.events.lock().await.recv())
            .await
            .expect("a delivery within 30 s")
            .expect("the receiver runs")
    }
}

/// `modelwatch_tls_reloads_total{outcome}` as the daemon reports it now.
async fn reloads(h: &Http, outcome: &str) -> u64 {
    let metrics = h.get_text("/metrics").await;
    let series = format!("modelwatch_tls_reloads_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {metrics}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_reload_on_sighup_and_when_the_files_change() {
    let first = Pki::new("first-ca");
    let second = Pki::new("second-ca");
    let served = first.server("served");
    let d = tls_daemon(&served, None, &[]);
    // A fresh client for each handshake check (`healthz`): a pooled
    // connection keeps the certificate of its own handshake.
    let trusts_first = https(&d, &first.ca, None);
    let trusts_second = https(&d, &second.ca, None);
    trusts_first.get_expect("/healthz", 200).await;
    let url = format!("{}/healthz", d.url);
    let healthz = |ca: &Path| {
        let (url, ca) = (url.clone(), ca.to_path_buf());
        async move {
            let client = http_client_builder()
                .tls_backend_preconfigured(client_tls(&ca, None))
                .build()
                .unwrap();
            client.get(url).send().await.is_ok()
        }
    };
    assert!(!healthz(&second.ca).await);

    // A half-written rotation (the new certificate, the old key) is
    // refused, whether the change or the SIGHUP finds it first; the old
    // certificate keeps serving.
    let next = second.server("next");
    std::fs::copy(&next.cert, &served.cert).unwrap();
    d.signal("HUP");
    // Both must have happened before the next step: the signal handled
    // (so it cannot count a later reload) and the failure counted.
    let hangups = || {
        d.stderr
            .lock()
            .unwrap()
            .matches("SIGHUP: reloading the TLS certificates")
            .count()
    };
    wait_for(
        Duration::from_secs(30),
        "the failed reload to be counted",
        || {
            let (h, seen) = (trusts_first.clone(), hangups());
            async move {
                match reloads(&h, "failed").await {
                    n if n > 0 && seen == 1 => Ok(()),
                    n => Err(format!("{n} failed reloads, {seen} SIGHUPs handled")),
                }
            }
        },
    )
    .await;
    assert!(
        healthz(&first.ca).await,
        "the previous certificate still serves"
    );
    assert_eq!(reloads(&trusts_first, "ok").await, 0);

    // The key lands: the change alone (no signal) brings the new pair in.
    std::fs::copy(&next.key, &served.key).unwrap();
    wait_for(
        Duration::from_secs(30),
        "the new certificate to serve",
        || {
            let check = healthz(&second.ca);
            async move {
                if check.await {
                    Ok(())
                } else {
                    Err("still the old certificate".to_string())
                }
            }
        },
    )
    .await;
    assert!(
        !healthz(&first.ca).await,
        "new connections get the new certificate"
    );
    let ok = reloads(&trusts_second, "ok").await;
    assert_eq!(ok, 1, "one reload for the change");

    // SIGHUP reads the files again even when they are unchanged.
    d.signal("HUP");
    wait_for(Duration::from_secs(30), "the forced reload", || {
        let (h, seen) = (trusts_second.clone(), hangups());
        async move {
            match reloads(&h, "ok").await {
                2 if seen == 2 => Ok(()),
                n => Err(format!("{n} reloads, {seen} SIGHUPs handled")),
            }
        }
    })
    .await;
}

#[test]
fn bad_tls_settings_stop_the_start_with_the_file_named() {
    let pki = Pki::new("test-ca");
    let server = pki.server("server");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server.arg();
    let missing = dir.path().join("missing.pem").display().to_string();
    serve_refuses(
        dir.path(),
        &["--tls-cert", &missing, "--tls-key", &key],
        "missing.pem",
    );
    let other = pki.server("other");
    serve_refuses(
        dir.path(),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &other.key.display().to_string(),
        ],
        "do not make a usable pair",
    );
    serve_refuses(
        dir.path(),
        &["--tls-cert", &cert],
        "give both --tls-cert and --tls-key",
    );
    serve_refuses(
        dir.path(),
        &["--tls-client-ca", &pki.ca_arg()],
        "--tls-client-ca needs --tls-cert",
    );
    serve_refuses(
        dir.path(),
        &["--ca-file", &missing],
        "cannot read the CA file",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemons_own_traces_reach_an_https_collector_trusted_through_ssl_cert_file() {
    let pki = Pki::new("collector-ca");
    let collector = tls_daemon(
        &pki.server("collector"),
        None,
        &["--otlp-model-attribute", "service.name"],
    );
    let collector_api = https(&collector, &pki.ca, None);
    let ingest = collector_api.token("traces-in", "ingest").await;
    let endpoint = format!("{}/v1/traces", collector.otlp_http_url.clone().unwrap());
    let sender = Daemon::start_with(Start {
        args: vec!["--otlp-traces-endpoint".into(), endpoint],
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS".into(),
                format!("authorization=Bearer%20{ingest}"),
            ),
            ("SSL_CERT_FILE".into(), pki.ca_arg()),
        ],
        ..Default::default()
    });
    sender
        .http()
        .post_expect("/api/v1/models", json!({"name": "traced"}), 201)
        .await;
    let (exit, log) = sender.terminate();
    assert!(exit.success(), "{log}");
    let n = count_where(
        &collector_api,
        "spans",
        "model = 'modelwatch' AND name = 'request'",
    )
    .await;
    assert!(n > 0, "no span of the sender arrived over HTTPS: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handshake_never_finished_is_cut_off_and_holds_nobody_up() {
    let pki = Pki::new("test-ca");
    let d = tls_daemon(&pki.server("server"), None, &[]);
    let admin = https(&d, &pki.ca, None);
    let addresses = [
        d.url.trim_start_matches("https://").to_string(),
        d.otlp_grpc_url
            .clone()
            .unwrap()
            .trim_start_matches("https://")
            .to_string(),
    ];
    // One connection per listener that opens TCP and never says hello,
    // one that sends half a ClientHello.
    let mut stalled = Vec::new();
    for addr in &addresses {
        stalled.push(std::net::TcpStream::connect(addr).unwrap());
        let mut half = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
        stalled.push(half);
    }
    // Meanwhile everyone else is served.
    admin.get_expect("/healthz", 200).await;
    let closed = tokio::task::spawn_blocking(move || {
        stalled
            .into_iter()
            .map(|s| crate::hardening::read_until_closed(s, Duration::from_secs(60)).1)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for after in closed {
        assert!(
            after < Duration::from_secs(20),
            "an unfinished handshake held its connection for {after:?}"
        );
    }
    admin.get_expect("/healthz", 200).await;
}
