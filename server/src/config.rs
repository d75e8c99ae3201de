//! `modelwatch serve` configuration.
//!
//! Precedence, highest first: command-line flag, `MODELWATCH_*` environment
//! variable, the TOML file given by `--config`, the built-in default. Clap
//! resolves flag over environment; [`ServeArgs::resolve`] fills what is still
//! unset from the file and then from the defaults, so every value's origin
//! follows one rule.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./modelwatch-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9400";
pub use modelwatch_registry::DEFAULT_PROTECTED_ALIASES;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_WRITE_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_MAX_BUFFER_BYTES: u64 = 1 << 30;
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = crate::upload::DEFAULT_MAX_UPLOAD_BYTES;
pub const DEFAULT_MODEL_LABEL: &str = "model";
pub const DEFAULT_VERSION_LABEL: &str = "model_version";
pub const DEFAULT_OTLP_GRPC_LISTEN: &str = "127.0.0.1:4317";
pub const DEFAULT_OTLP_HTTP_LISTEN: &str = "127.0.0.1:4318";
pub const DEFAULT_PG_LISTEN: &str = "127.0.0.1:5433";
/// Most seconds a SQL query may run, over HTTP and PostgreSQL alike.
pub const DEFAULT_SQL_TIMEOUT_SECONDS: u64 = 30;
pub const MAX_SQL_TIMEOUT_SECONDS: u64 = 3600;
pub const DEFAULT_OTLP_MODEL_ATTRIBUTE: &str = "model.name";
pub const DEFAULT_OTLP_VERSION_ATTRIBUTE: &str = "model.version";
pub const DEFAULT_OTLP_FEATURE_PREFIX: &str = "feature.";
pub const DEFAULT_WEBHOOK_RETRY_BASE_MS: u64 = 1000;
pub const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u32 = crate::webhooks::DEFAULT_MAX_ATTEMPTS;
/// Seconds between two artifact garbage-collection sweeps.
pub const DEFAULT_ARTIFACT_GC_INTERVAL_SECONDS: u64 = 3600;
pub const MAX_ARTIFACT_GC_INTERVAL_SECONDS: u64 = 7 * 86_400;
/// Seconds an artifact object stays unreferenced (and unmodified) before
/// it is deleted.
pub const DEFAULT_ARTIFACT_GC_GRACE_SECONDS: u64 = 86_400;
pub const MAX_ARTIFACT_GC_GRACE_SECONDS: u64 = 3650 * 86_400;
/// New audit entries after which the chain head is anchored.
pub const DEFAULT_AUDIT_ANCHOR_EVERY_ENTRIES: u64 = 1000;
/// Seconds after which a chain head with new entries is anchored.
pub const DEFAULT_AUDIT_ANCHOR_INTERVAL_SECONDS: u64 = 300;
pub const MAX_AUDIT_ANCHOR_INTERVAL_SECONDS: u64 = 86_400;

/// An amount of memory: plain bytes (`1073741824`) or a number with a unit
/// (`512MiB`, `2GiB`, `1GB`; `K`/`M`/`G` without `B` mean KiB/MiB/GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ByteSizeInput")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSizeInput {
    Number(u64),
    Text(String),
}

impl TryFrom<ByteSizeInput> for ByteSize {
    type Error = String;
    fn try_from(v: ByteSizeInput) -> Result<Self, Self::Error> {
        match v {
            ByteSizeInput::Number(n) => Ok(ByteSize(n)),
            ByteSizeInput::Text(s) => s.parse(),
        }
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().map_err(|_| {
            format!("{s:?} is not a size; write bytes (1073741824) or e.g. 512MiB, 2GiB")
        })?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            other => {
                return Err(format!(
                    "{s:?} has unknown unit {other:?}; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
                ));
            }
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

/// Memory this machine (or its cgroup) has, if it can be read.
pub fn memory_available_to_process() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    match (cgroup, total) {
        (Some(c), Some(t)) => Some(c.min(t)),
        (c, t) => c.or(t),
    }
}

/// `--sql-memory-limit` when not given: a quarter of the memory available
/// (see [`memory_available_to_process`]), at least 256 MiB; 1 GiB when the
/// memory cannot be read.
pub fn default_sql_memory_limit() -> usize {
    let bytes = memory_available_to_process().map_or(1 << 30, |m| (m / 4).max(256 << 20));
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Smallest accepted `--sql-memory-limit`.
pub const MIN_SQL_MEMORY_LIMIT: u64 = 16 << 20;

/// A listener that can be switched off: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Listen {
    Off,
    On(SocketAddr),
}

impl Listen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(a) => Some(a),
        }
    }
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.trim()
            .parse()
            .map(Listen::On)
            .map_err(|_| format!("{s:?} is neither an address like 127.0.0.1:4317 nor `off`"))
    }
}

impl TryFrom<String> for Listen {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Flags of `modelwatch serve`. Unset options fall back to the TOML file,
/// then to the defaults shown in `--help`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, env = "MODELWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where the registry database and telemetry live [default: ./modelwatch-data]
    #[arg(long, env = "MODELWATCH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// HTTP listen address [default: 127.0.0.1:9400]
    #[arg(long, env = "MODELWATCH_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Token to install as the first admin token when no admin token exists
    /// (otherwise one is generated and printed once).
    #[arg(
        long,
        env = "MODELWATCH_BOOTSTRAP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub bootstrap_token: Option<String>,

    /// Serve without authentication (everyone is admin). Refused unless
    /// the listen address is loopback.
    #[arg(long, env = "MODELWATCH_NO_AUTH")]
    pub no_auth: bool,

    /// Aliases only role `approver` may move [default: production,champion]
    #[arg(
        long,
        env = "MODELWATCH_PROTECTED_ALIASES",
        value_delimiter = ',',
        value_name = "ALIAS,..."
    )]
    pub protected_aliases: Option<Vec<String>>,

    /// Largest accepted JSON request body in bytes [default: 1048576]
    #[arg(long, env = "MODELWATCH_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Largest accepted remote-write body in bytes, compressed [default: 33554432]
    #[arg(long, env = "MODELWATCH_MAX_WRITE_BYTES", value_name = "BYTES")]
    pub max_write_bytes: Option<usize>,

    /// Memory bound for acknowledged telemetry not yet persisted to Parquet;
    /// beyond it writes get 503 + Retry-After [default: 1073741824]
    #[arg(long, env = "MODELWATCH_MAX_BUFFER_BYTES", value_name = "BYTES")]
    pub max_buffer_bytes: Option<u64>,

    /// Buffered telemetry that starts a persist to Parquet; at most
    /// --max-buffer-bytes [default: a quarter of --max-buffer-bytes]
    #[arg(long, env = "MODELWATCH_PERSIST_BUFFER_BYTES", value_name = "BYTES")]
    pub persist_buffer_bytes: Option<u64>,
    /// Largest accepted batch upload (inferences, reference) in bytes, as
    /// sent and, for gzip bodies, inflated [default: 1073741824]
    #[arg(long, env = "MODELWATCH_MAX_UPLOAD_BYTES", value_name = "BYTES")]
    pub max_upload_bytes: Option<u64>,

    /// Where model version files (artifacts) are stored: a local directory
    /// or `file:///dir` [default: <data-dir>/artifacts]
    #[arg(long, env = "MODELWATCH_ARTIFACTS_URL", value_name = "URL")]
    pub artifacts_url: Option<String>,

    /// Largest artifact file accepted in one upload [default: 68719476736 (64 GiB)]
    #[arg(long, env = "MODELWATCH_MAX_ARTIFACT_FILE_BYTES", value_name = "BYTES")]
    pub max_artifact_file_bytes: Option<u64>,

    /// Seconds between two sweeps of the artifact garbage collection, run
    /// by the daemon holding its lease (the first right after it takes
    /// it) [default: 3600]
    #[arg(
        long,
        env = "MODELWATCH_ARTIFACT_GC_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub artifact_gc_interval_seconds: Option<u64>,

    /// Seconds an artifact file, manifest or version tree must have been
    /// unreferenced, on every sweep, and unmodified before it is deleted
    /// [default: 86400]
    #[arg(
        long,
        env = "MODELWATCH_ARTIFACT_GC_GRACE_SECONDS",
        value_name = "SECONDS"
    )]
    pub artifact_gc_grace_seconds: Option<u64>,

    /// OIDC: the issuer (`iss`) whose JWTs are accepted as bearer tokens,
    /// beside modelwatch's own tokens. Needs --oidc-audience,
    /// --oidc-jwks-file or --oidc-jwks-url, and --oidc-role-map
    /// [default: OIDC off]
    #[arg(long, env = "MODELWATCH_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,

    /// OIDC: the audience (`aud`) the JWTs must be issued for
    #[arg(long, env = "MODELWATCH_OIDC_AUDIENCE", value_name = "AUDIENCE")]
    pub oidc_audience: Option<String>,

    /// OIDC: the identity provider's key set (JWKS JSON), read again when
    /// the file changes
    #[arg(long, env = "MODELWATCH_OIDC_JWKS_FILE", value_name = "FILE")]
    pub oidc_jwks_file: Option<PathBuf>,

    /// OIDC: the identity provider's key set URL (its `jwks_uri`,
    /// https://), fetched at start, every 5 minutes and soon after a token
    /// names a key it does not hold; trusts the system's roots and
    /// --ca-file. Instead of --oidc-jwks-file
    #[arg(long, env = "MODELWATCH_OIDC_JWKS_URL", value_name = "URL")]
    pub oidc_jwks_url: Option<String>,

    /// OIDC: claim value → role, e.g. `ml-admins=admin,ml-engineers=editor`;
    /// the highest role any value maps to wins, none → 401
    #[arg(
        long,
        env = "MODELWATCH_OIDC_ROLE_MAP",
        value_delimiter = ',',
        value_name = "VALUE=ROLE"
    )]
    pub oidc_role_map: Option<Vec<String>>,

    /// OIDC: the claim holding the groups or roles (a dotted path reaches
    /// into objects, e.g. `realm_access.roles`) [default: groups]
    #[arg(long, env = "MODELWATCH_OIDC_ROLE_CLAIM", value_name = "CLAIM")]
    pub oidc_role_claim: Option<String>,

    /// OIDC: the claim naming the caller in the audit chain, as
    /// `oidc:<name>`; `sub` when absent [default: preferred_username]
    #[arg(long, env = "MODELWATCH_OIDC_NAME_CLAIM", value_name = "CLAIM")]
    pub oidc_name_claim: Option<String>,

    /// Directory signed anchors of the audit chain are written to (one
    /// file per anchor, never overwritten); make it one this daemon can add
    /// to but not rewrite. Needs --audit-signing-key [default: no anchors]
    #[arg(long, env = "MODELWATCH_AUDIT_ANCHOR_DIR", value_name = "DIR")]
    pub audit_anchor_dir: Option<PathBuf>,

    /// Ed25519 private key (PKCS#8 PEM or DER; `modelwatch audit keygen`
    /// or `openssl genpkey -algorithm ed25519`) that signs the anchors
    #[arg(long, env = "MODELWATCH_AUDIT_SIGNING_KEY", value_name = "FILE")]
    pub audit_signing_key: Option<PathBuf>,

    /// Also POST every anchor (its JSON) to this URL, e.g. a SIEM's or
    /// another host's collector: a copy off this machine. Needs
    /// --audit-anchor-dir [default: none]
    #[arg(long, env = "MODELWATCH_AUDIT_ANCHOR_WEBHOOK", value_name = "URL")]
    pub audit_anchor_webhook: Option<String>,

    /// Anchor the chain head once this many entries were added since the
    /// last anchor [default: 1000]
    #[arg(long, env = "MODELWATCH_AUDIT_ANCHOR_EVERY_ENTRIES", value_name = "N")]
    pub audit_anchor_every_entries: Option<u64>,

    /// Anchor the chain head at least this often while it has new entries
    /// [default: 300]
    #[arg(
        long,
        env = "MODELWATCH_AUDIT_ANCHOR_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub audit_anchor_interval_seconds: Option<u64>,

    /// Directory a version's `reference_uri` may name files in (repeat the
    /// flag, or separate with commas); `<data-dir>/imports` always counts
    /// [default: none besides <data-dir>/imports]
    #[arg(
        long,
        env = "MODELWATCH_REFERENCE_DIR",
        value_delimiter = ',',
        value_name = "DIR"
    )]
    pub reference_dir: Option<Vec<PathBuf>>,

    /// Prometheus label naming the model [default: model]
    #[arg(long, env = "MODELWATCH_MODEL_LABEL", value_name = "LABEL")]
    pub model_label: Option<String>,

    /// Prometheus label naming the model version [default: model_version]
    #[arg(long, env = "MODELWATCH_VERSION_LABEL", value_name = "LABEL")]
    pub version_label: Option<String>,

    /// OTLP/gRPC listen address, or `off` [default: 127.0.0.1:4317]
    #[arg(long, env = "MODELWATCH_OTLP_GRPC_LISTEN", value_name = "ADDR|off")]
    pub otlp_grpc_listen: Option<Listen>,

    /// OTLP/HTTP listen address (`/v1/metrics|logs|traces`; the main
    /// listener serves them too), or `off` [default: 127.0.0.1:4318]
    #[arg(long, env = "MODELWATCH_OTLP_HTTP_LISTEN", value_name = "ADDR|off")]
    pub otlp_http_listen: Option<Listen>,

    /// Where the registry lives: `postgres://user:password@host:port/db`
    /// (libpq parameters such as `?sslmode=verify-full&sslrootcert=ca.pem`)
    /// to share one registry among several daemons [default: the embedded
    /// SQLite file <data-dir>/registry.sqlite]
    #[arg(long, env = "MODELWATCH_REGISTRY_URL", value_name = "URL")]
    pub registry_url: Option<String>,

    /// Connections this daemon may hold to a PostgreSQL registry [default: 16]
    #[arg(long, env = "MODELWATCH_REGISTRY_MAX_CONNECTIONS", value_name = "N")]
    pub registry_max_connections: Option<u32>,

    /// Seconds a request waits for a free PostgreSQL registry connection
    /// before it is answered 503 with Retry-After [default: 5]
    #[arg(
        long,
        env = "MODELWATCH_REGISTRY_ACQUIRE_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub registry_acquire_timeout_seconds: Option<u64>,

    /// Longest a background duty (evaluator, webhook dispatcher, webhook
    /// sender, artifact garbage collection) stays without a daemon after
    /// the daemon holding it died; leases last 2/3 of it and are claimed
    /// every 1/6 [default: 15]
    #[arg(long, env = "MODELWATCH_DUTY_TAKEOVER_SECONDS", value_name = "SECONDS")]
    pub duty_takeover_seconds: Option<u64>,

    /// PostgreSQL wire protocol listen address (psql, Grafana's PostgreSQL
    /// data source; password = a modelwatch token), or `off`
    /// [default: 127.0.0.1:5433]
    #[arg(long, env = "MODELWATCH_PG_LISTEN", value_name = "ADDR|off")]
    pub pg_listen: Option<Listen>,

    /// PostgreSQL connections served at once; more are refused with SQLSTATE
    /// 53300 [default: 100]
    #[arg(long, env = "MODELWATCH_PG_MAX_CONNECTIONS", value_name = "N")]
    pub pg_max_connections: Option<usize>,

    /// PEM certificate (chain) for TLS on every listener: the HTTP API and
    /// UI, OTLP/HTTP, OTLP/gRPC, and PostgreSQL unless --pg-tls-cert is
    /// given; with --tls-key. Read again on SIGHUP and when the file
    /// changes [default: none: plain text]
    #[arg(long, env = "MODELWATCH_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert
    #[arg(long, env = "MODELWATCH_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s) that sign client certificates (mTLS): a
    /// client presenting one authenticates as role ingest, named
    /// `cert:<common name>`; a bearer token still works and wins when
    /// both are sent. Needs --tls-cert [default: none: no client
    /// certificate is asked for]
    #[arg(long, env = "MODELWATCH_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,

    /// PEM CA certificate(s) trusted, besides the system's, by the
    /// daemon's outbound HTTPS: webhooks, --audit-anchor-webhook and
    /// --oidc-jwks-url [default: the system's only]
    #[arg(long, env = "MODELWATCH_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// PEM certificate (chain) for TLS on the PostgreSQL listener alone,
    /// instead of --tls-cert; with --pg-tls-key. Without either pair, the
    /// listener refuses TLS [default: --tls-cert]
    #[arg(long, env = "MODELWATCH_PG_TLS_CERT", value_name = "FILE")]
    pub pg_tls_cert: Option<PathBuf>,

    /// PEM private key for --pg-tls-cert
    #[arg(long, env = "MODELWATCH_PG_TLS_KEY", value_name = "FILE")]
    pub pg_tls_key: Option<PathBuf>,

    /// Longest a SQL query may run, in seconds, over HTTP
    /// (`timeout_seconds` may only lower it) and PostgreSQL
    /// (`SET statement_timeout` may only lower it) [default: 30]
    #[arg(long, env = "MODELWATCH_SQL_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub sql_timeout_seconds: Option<u64>,

    /// Memory all SQL queries together may use (sorts, aggregations, joins
    /// and the rows being returned), HTTP and PostgreSQL alike; a query
    /// needing more fails, the daemon does not grow. Bytes or e.g. 2GiB
    /// [default: a quarter of the machine's memory]
    #[arg(long, env = "MODELWATCH_SQL_MEMORY_LIMIT", value_name = "SIZE")]
    pub sql_memory_limit: Option<ByteSize>,

    /// OTLP attribute naming the model [default: model.name]
    #[arg(long, env = "MODELWATCH_OTLP_MODEL_ATTRIBUTE", value_name = "KEY")]
    pub otlp_model_attribute: Option<String>,

    /// OTLP attribute naming the model version [default: model.version]
    #[arg(long, env = "MODELWATCH_OTLP_VERSION_ATTRIBUTE", value_name = "KEY")]
    pub otlp_version_attribute: Option<String>,

    /// Prefix of OTLP log attributes that are model features [default: feature.]
    #[arg(long, env = "MODELWATCH_OTLP_FEATURE_PREFIX", value_name = "PREFIX")]
    pub otlp_feature_prefix: Option<String>,

    /// Export the daemon's own tracing spans (requests, background work)
    /// over OTLP/HTTP protobuf to this URL, e.g.
    /// http://collector:4318/v1/traces; headers (authorization) come from
    /// OTEL_EXPORTER_OTLP_TRACES_HEADERS; https:// trusts the system's
    /// roots and SSL_CERT_FILE [default: off]
    #[arg(long, env = "MODELWATCH_OTLP_TRACES_ENDPOINT", value_name = "URL")]
    pub otlp_traces_endpoint: Option<String>,

    /// Log format [default: human]
    #[arg(long, env = "MODELWATCH_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter in `RUST_LOG` syntax [default: info]
    #[arg(long, env = "MODELWATCH_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    /// Monitoring policies to apply at start: a TOML file with one
    /// `[models.<name>]` table per model (same fields as the policy API).
    #[arg(long, env = "MODELWATCH_POLICY_FILE", value_name = "FILE")]
    pub policy_file: Option<PathBuf>,

    /// Do not run the evaluator in this daemon (ingest and registry only).
    #[arg(long, env = "MODELWATCH_NO_EVALUATOR")]
    pub no_evaluator: bool,
    /// Delay before a failed webhook delivery's second attempt, in
    /// milliseconds; doubled for each further attempt (at most 10 min, plus
    /// up to 20 % jitter) [default: 1000]
    #[arg(long, env = "MODELWATCH_WEBHOOK_RETRY_BASE_MS", value_name = "MS")]
    pub webhook_retry_base_ms: Option<u64>,

    /// Attempts before a webhook delivery is marked failed [default: 8]
    #[arg(long, env = "MODELWATCH_WEBHOOK_MAX_ATTEMPTS", value_name = "N")]
    pub webhook_max_attempts: Option<u32>,
}

/// The `--config` TOML file. Unknown keys are an error so typos surface.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub bootstrap_token: Option<String>,
    pub no_auth: Option<bool>,
    pub protected_aliases: Option<Vec<String>>,
    pub max_body_bytes: Option<usize>,
    pub max_write_bytes: Option<usize>,
    pub max_buffer_bytes: Option<u64>,
    pub persist_buffer_bytes: Option<u64>,
    pub max_upload_bytes: Option<u64>,
    pub artifacts_url: Option<String>,
    pub max_artifact_file_bytes: Option<u64>,
    pub artifact_gc_interval_seconds: Option<u64>,
    pub artifact_gc_grace_seconds: Option<u64>,
    pub audit_anchor_dir: Option<PathBuf>,
    pub audit_signing_key: Option<PathBuf>,
    pub audit_anchor_webhook: Option<String>,
    pub audit_anchor_every_entries: Option<u64>,
    pub audit_anchor_interval_seconds: Option<u64>,
    pub oidc_issuer: Option<String>,
    pub oidc_audience: Option<String>,
    pub oidc_jwks_file: Option<PathBuf>,
    pub oidc_jwks_url: Option<String>,
    pub oidc_role_map: Option<Vec<String>>,
    pub oidc_role_claim: Option<String>,
    pub oidc_name_claim: Option<String>,
    pub reference_dir: Option<Vec<PathBuf>>,
    pub model_label: Option<String>,
    pub version_label: Option<String>,
    pub otlp_grpc_listen: Option<Listen>,
    pub otlp_http_listen: Option<Listen>,
    pub registry_url: Option<String>,
    pub registry_max_connections: Option<u32>,
    pub registry_acquire_timeout_seconds: Option<u64>,
    pub duty_takeover_seconds: Option<u64>,
    pub pg_listen: Option<Listen>,
    pub pg_max_connections: Option<usize>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub pg_tls_cert: Option<PathBuf>,
    pub pg_tls_key: Option<PathBuf>,
    pub sql_timeout_seconds: Option<u64>,
    pub sql_memory_limit: Option<ByteSize>,
    pub otlp_model_attribute: Option<String>,
    pub otlp_version_attribute: Option<String>,
    pub otlp_feature_prefix: Option<String>,
    pub otlp_traces_endpoint: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log: Option<String>,
    pub policy_file: Option<PathBuf>,
    pub no_evaluator: Option<bool>,
    pub webhook_retry_base_ms: Option<u64>,
    pub webhook_max_attempts: Option<u32>,
}

/// `--duty-takeover-seconds` when unset.
pub const DEFAULT_DUTY_TAKEOVER_SECONDS: u64 = 15;

/// A PostgreSQL registry URL. It may carry a password, so it is never
/// printed whole: `Debug` and [`RegistryUrl::redacted`] hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryUrl(pub String);

impl RegistryUrl {
    pub fn is_postgres(&self) -> bool {
        modelwatch_registry::PgStore::accepts_url(&self.0)
    }

    /// The URL with its password (between `user:` and `@`) replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return "<not a URL>".into();
        };
        let authority_end = url[scheme_end..]
            .find(['/', '?'])
            .map_or(url.len(), |i| scheme_end + i);
        let authority = &url[scheme_end..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &authority[..colon],
                &url[scheme_end + at..]
            ),
            _ => url.clone(),
        }
    }
}

impl std::fmt::Debug for RegistryUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Fully resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub bootstrap_token: Option<String>,
    pub no_auth: bool,
    pub protected_aliases: Vec<String>,
    pub policy_file: Option<PathBuf>,
    pub no_evaluator: bool,
    pub max_body_bytes: usize,
    pub max_write_bytes: usize,
    pub max_buffer_bytes: u64,
    pub persist_buffer_bytes: u64,
    pub max_upload_bytes: u64,
    /// Where artifacts are stored (resolved to a directory).
    pub artifacts_dir: PathBuf,
    pub max_artifact_file_bytes: u64,
    /// When artifact garbage collection runs and what it waits for.
    pub artifact_gc: crate::artifact_gc::GcConfig,
    /// Where and when the audit chain is anchored; `None`: not anchored.
    pub audit_anchor: Option<crate::audit_anchor::AnchorConfig>,
    /// OIDC bearer JWTs; `None`: off.
    pub oidc: Option<crate::oidc::OidcConfig>,
    /// Directories `reference_uri` may read from, besides `<data-dir>/imports`.
    pub reference_dirs: Vec<PathBuf>,
    pub model_label: String,
    pub version_label: String,
    /// `None` when switched off.
    pub otlp_grpc_listen: Option<SocketAddr>,
    /// `None` when switched off.
    pub otlp_http_listen: Option<SocketAddr>,
    /// The PostgreSQL registry; `None`: the embedded SQLite file.
    pub registry_url: Option<RegistryUrl>,
    /// Pool limits for a PostgreSQL registry.
    pub registry_pool: modelwatch_registry::PoolLimits,
    /// How fast duties move between daemons.
    pub cluster: crate::cluster::ClusterConfig,
    /// `None` when switched off.
    pub pg_listen: Option<SocketAddr>,
    /// Most PostgreSQL connections at once.
    pub pg_max_connections: usize,
    /// TLS on the HTTP and OTLP listeners; `None`: plain text.
    pub tls: Option<crate::tls::TlsFiles>,
    /// TLS on the PostgreSQL listener: `--pg-tls-*`, else `--tls-*`
    /// (client certificates are not asked for there: a token is the
    /// password).
    pub pg_tls: Option<crate::tls::TlsFiles>,
    /// Extra CA certificates for outbound HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Longest a SQL query may run (HTTP and PostgreSQL).
    pub sql_timeout: std::time::Duration,
    /// Memory pool of the SQL engine, in bytes.
    pub sql_memory_limit: usize,
    pub otlp_model_attribute: String,
    pub otlp_version_attribute: String,
    pub otlp_feature_prefix: String,
    /// Where the daemon's own spans go (OTLP/HTTP); `None`: not exported.
    pub otlp_traces_endpoint: Option<String>,
    pub log_format: LogFormat,
    pub log: String,
    pub webhook_retry_base_ms: u64,
    pub webhook_max_attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error(
        "--no-auth is only allowed on a loopback listen address, not {0}; create tokens instead (see `modelwatch token create`)"
    )]
    NoAuthOnPublicAddress(SocketAddr),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// The OIDC settings: issuer, audience, key set and role map together, or
/// none of them.
fn oidc_config(
    issuer: Option<String>,
    audience: Option<String>,
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
    role_map: Option<Vec<String>>,
    role_claim: Option<String>,
    name_claim: Option<String>,
) -> Result<Option<crate::oidc::OidcConfig>, ConfigError> {
    let any = issuer.is_some()
        || audience.is_some()
        || jwks_file.is_some()
        || jwks_url.is_some()
        || role_map.is_some();
    if !any {
        return Ok(None);
    }
    let missing = |field, flag: &str| ConfigError::Invalid {
        field,
        message: format!(
            "OIDC needs --oidc-issuer, --oidc-audience, --oidc-jwks-file or --oidc-jwks-url, and --oidc-role-map together; {flag} is missing"
        ),
    };
    let issuer = issuer.ok_or_else(|| missing("oidc_issuer", "--oidc-issuer"))?;
    let audience = audience.ok_or_else(|| missing("oidc_audience", "--oidc-audience"))?;
    let jwks = match (jwks_file, jwks_url) {
        (Some(file), None) => crate::oidc::JwksSource::File(file),
        (None, Some(url)) => {
            let lower = url.to_ascii_lowercase();
            if !lower.starts_with("https://") || url.parse::<http::Uri>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "oidc_jwks_url",
                    message: format!(
                        "{url:?} must be an https:// URL (the keys that vouch for every token must not travel in clear)"
                    ),
                });
            }
            crate::oidc::JwksSource::Url(url)
        }
        (None, None) => {
            return Err(missing(
                "oidc_jwks_file",
                "--oidc-jwks-file (or --oidc-jwks-url)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                field: "oidc_jwks_url",
                message: "give --oidc-jwks-file or --oidc-jwks-url, not both".into(),
            });
        }
    };
    let pairs = role_map.ok_or_else(|| missing("oidc_role_map", "--oidc-role-map"))?;
    let mut map = Vec::new();
    for pair in pairs.iter().filter(|p| !p.trim().is_empty()) {
        let parsed = pair
            .split_once('=')
            .and_then(|(value, role)| {
                Some((
                    value.trim(),
                    role.trim().parse::<modelwatch_registry::Role>().ok()?,
                ))
            })
            .filter(|(value, _)| !value.is_empty());
        match parsed {
            Some((value, role)) => map.push((value.to_string(), role)),
            None => {
                return Err(ConfigError::Invalid {
                    field: "oidc_role_map",
                    message: format!(
                        "{pair:?} is not VALUE=ROLE with a role of reader, ingest, editor, approver or admin"
                    ),
                });
            }
        }
    }
    if map.is_empty() {
        return Err(missing(
            "oidc_role_map",
            "a VALUE=ROLE pair in --oidc-role-map",
        ));
    }
    Ok(Some(crate::oidc::OidcConfig {
        issuer,
        audience,
        jwks,
        role_claim: role_claim.unwrap_or_else(|| "groups".into()),
        role_map: map,
        name_claim: name_claim.unwrap_or_else(|| "preferred_username".into()),
    }))
}

/// The anchoring settings: both the directory and the key, or neither.
fn anchor_config(
    dir: Option<PathBuf>,
    key: Option<PathBuf>,
    webhook: Option<String>,
    every_entries: u64,
    interval_seconds: u64,
) -> Result<Option<crate::audit_anchor::AnchorConfig>, ConfigError> {
    let invalid = |field, message: &str| ConfigError::Invalid {
        field,
        message: message.to_string(),
    };
    if let Some(url) = &webhook {
        if dir.is_none() {
            return Err(invalid(
                "audit_anchor_webhook",
                "needs --audit-anchor-dir and --audit-signing-key: anchors are written there first",
            ));
        }
        modelwatch_registry::webhooks::validate_url(url).map_err(|e| ConfigError::Invalid {
            field: "audit_anchor_webhook",
            message: e.to_string(),
        })?;
    }
    let (dir, key_file) = match (dir, key) {
        (None, None) => return Ok(None),
        (Some(dir), Some(key)) => (dir, key),
        (Some(_), None) => {
            return Err(invalid(
                "audit_anchor_dir",
                "needs --audit-signing-key FILE to sign the anchors (create one with `modelwatch audit keygen --out FILE`)",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "audit_signing_key",
                "needs --audit-anchor-dir DIR to write the anchors to",
            ));
        }
    };
    if every_entries == 0 {
        return Err(invalid("audit_anchor_every_entries", "must be at least 1"));
    }
    if !(1..=MAX_AUDIT_ANCHOR_INTERVAL_SECONDS).contains(&interval_seconds) {
        return Err(invalid(
            "audit_anchor_interval_seconds",
            "must be between 1 and 86400 (a day)",
        ));
    }
    Ok(Some(crate::audit_anchor::AnchorConfig {
        dir,
        key_file,
        webhook,
        // Set with the rest of the outbound trust, below.
        ca_file: None,
        every_entries,
        interval: std::time::Duration::from_secs(interval_seconds),
    }))
}

fn default_addr(text: &str) -> Result<Option<SocketAddr>, ConfigError> {
    text.parse().map(Some).map_err(|_| ConfigError::Invalid {
        field: "listen",
        message: format!("built-in default {text} does not parse"),
    })
}

/// A certificate and its key: both or neither.
fn pair(
    field: &'static str,
    flags: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        _ => Err(ConfigError::Invalid {
            field,
            message: format!("give both {flags}, or neither"),
        }),
    }
}

/// `--otlp-traces-endpoint` must be an `http://` or `https://` URL with a
/// host: the exporter speaks OTLP/HTTP.
/// The artifact store's directory: `--artifacts-url` as a path or a
/// `file://` URL, by default `<data-dir>/artifacts`.
fn artifacts_dir(url: Option<&str>, data_dir: &std::path::Path) -> Result<PathBuf, ConfigError> {
    let Some(url) = url else {
        return Ok(data_dir.join("artifacts"));
    };
    let invalid = |message: String| ConfigError::Invalid {
        field: "artifacts_url",
        message,
    };
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(invalid(format!(
                "{url} is not an absolute file URL: write file:///absolute/dir or a plain path"
            )));
        }
        return Ok(PathBuf::from(path));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(invalid(format!(
            "{scheme}:// artifact stores are not supported by this release; give a local directory (or file:///dir)"
        )));
    }
    if url.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    Ok(PathBuf::from(url))
}

fn check_traces_endpoint(url: &str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        field: "otlp_traces_endpoint",
        message,
    };
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(invalid(format!(
            "{url:?} must start with http:// or https:// (OTLP/HTTP)"
        )));
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.parse::<http::Uri>().is_err() {
        return Err(invalid(format!(
            "{url:?} is not a URL like http://collector:4318/v1/traces"
        )));
    }
    Ok(())
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl ServeArgs {
    /// Applies the precedence rule: flag/env (already in `self`) > file > default.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        self.resolve_with(file)
    }

    pub fn resolve_with(self, file: FileConfig) -> Result<Settings, ConfigError> {
        let default_listen: SocketAddr =
            DEFAULT_LISTEN.parse().map_err(|_| ConfigError::Invalid {
                field: "listen",
                message: "built-in default does not parse".into(),
            })?;
        let max_buffer_bytes = self
            .max_buffer_bytes
            .or(file.max_buffer_bytes)
            .unwrap_or(DEFAULT_MAX_BUFFER_BYTES);
        let artifacts_url = self.artifacts_url.clone().or(file.artifacts_url.clone());
        let client_ca = self.tls_client_ca.or(file.tls_client_ca);
        let tls = pair(
            "tls_cert",
            "--tls-cert and --tls-key",
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        )?;
        let tls = match (tls, client_ca) {
            (Some((cert, key)), client_ca) => Some(crate::tls::TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "tls_client_ca",
                    message: "--tls-client-ca needs --tls-cert and --tls-key: client certificates are asked for in the TLS handshake".into(),
                });
            }
        };
        let mut settings = Settings {
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            listen: self.listen.or(file.listen).unwrap_or(default_listen),
            bootstrap_token: self.bootstrap_token.or(file.bootstrap_token),
            no_auth: self.no_auth || file.no_auth.unwrap_or(false),
            policy_file: self.policy_file.or(file.policy_file),
            no_evaluator: self.no_evaluator || file.no_evaluator.unwrap_or(false),
            protected_aliases: self
                .protected_aliases
                .or(file.protected_aliases)
                .unwrap_or_else(|| {
                    DEFAULT_PROTECTED_ALIASES
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                }),
            max_body_bytes: self
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_write_bytes: self
                .max_write_bytes
                .or(file.max_write_bytes)
                .unwrap_or(DEFAULT_MAX_WRITE_BYTES),
            max_buffer_bytes,
            persist_buffer_bytes: self
                .persist_buffer_bytes
                .or(file.persist_buffer_bytes)
                .unwrap_or(max_buffer_bytes / 4),
            max_upload_bytes: self
                .max_upload_bytes
                .or(file.max_upload_bytes)
                .unwrap_or(DEFAULT_MAX_UPLOAD_BYTES),
            artifacts_dir: PathBuf::new(),
            max_artifact_file_bytes: self
                .max_artifact_file_bytes
                .or(file.max_artifact_file_bytes)
                .unwrap_or(modelwatch_artifacts::DEFAULT_MAX_FILE_BYTES),
            artifact_gc: crate::artifact_gc::GcConfig {
                interval: std::time::Duration::from_secs(
                    self.artifact_gc_interval_seconds
                        .or(file.artifact_gc_interval_seconds)
                        .unwrap_or(DEFAULT_ARTIFACT_GC_INTERVAL_SECONDS),
                ),
                grace: std::time::Duration::from_secs(
                    self.artifact_gc_grace_seconds
                        .or(file.artifact_gc_grace_seconds)
                        .unwrap_or(DEFAULT_ARTIFACT_GC_GRACE_SECONDS),
                ),
            },
            oidc: oidc_config(
                self.oidc_issuer.or(file.oidc_issuer),
                self.oidc_audience.or(file.oidc_audience),
                self.oidc_jwks_file.or(file.oidc_jwks_file),
                self.oidc_jwks_url.or(file.oidc_jwks_url),
                self.oidc_role_map.or(file.oidc_role_map),
                self.oidc_role_claim.or(file.oidc_role_claim),
                self.oidc_name_claim.or(file.oidc_name_claim),
            )?,
            audit_anchor: anchor_config(
                self.audit_anchor_dir.or(file.audit_anchor_dir),
                self.audit_signing_key.or(file.audit_signing_key),
                self.audit_anchor_webhook.or(file.audit_anchor_webhook),
                self.audit_anchor_every_entries
                    .or(file.audit_anchor_every_entries)
                    .unwrap_or(DEFAULT_AUDIT_ANCHOR_EVERY_ENTRIES),
                self.audit_anchor_interval_seconds
                    .or(file.audit_anchor_interval_seconds)
                    .unwrap_or(DEFAULT_AUDIT_ANCHOR_INTERVAL_SECONDS),
            )?,
            reference_dirs: self
                .reference_dir
                .or(file.reference_dir)
                .unwrap_or_default(),
            model_label: self
                .model_label
                .or(file.model_label)
                .unwrap_or_else(|| DEFAULT_MODEL_LABEL.into()),
            version_label: self
                .version_label
                .or(file.version_label)
                .unwrap_or_else(|| DEFAULT_VERSION_LABEL.into()),
            otlp_grpc_listen: self
                .otlp_grpc_listen
                .or(file.otlp_grpc_listen)
                .map_or_else(|| default_addr(DEFAULT_OTLP_GRPC_LISTEN), |l| Ok(l.addr()))?,
            otlp_http_listen: self
                .otlp_http_listen
                .or(file.otlp_http_listen)
                .map_or_else(|| default_addr(DEFAULT_OTLP_HTTP_LISTEN), |l| Ok(l.addr()))?,
            registry_url: self.registry_url.or(file.registry_url).map(RegistryUrl),
            cluster: crate::cluster::ClusterConfig {
                takeover: std::time::Duration::from_secs(
                    self.duty_takeover_seconds
                        .or(file.duty_takeover_seconds)
                        .unwrap_or(DEFAULT_DUTY_TAKEOVER_SECONDS),
                ),
            },
            registry_pool: {
                let default = modelwatch_registry::PoolLimits::default();
                modelwatch_registry::PoolLimits {
                    max_connections: self
                        .registry_max_connections
                        .or(file.registry_max_connections)
                        .unwrap_or(default.max_connections),
                    acquire_timeout: self
                        .registry_acquire_timeout_seconds
                        .or(file.registry_acquire_timeout_seconds)
                        .map_or(default.acquire_timeout, std::time::Duration::from_secs),
                }
            },
            pg_listen: self
                .pg_listen
                .or(file.pg_listen)
                .map_or_else(|| default_addr(DEFAULT_PG_LISTEN), |l| Ok(l.addr()))?,
            pg_max_connections: self
                .pg_max_connections
                .or(file.pg_max_connections)
                .unwrap_or(crate::pgwire::DEFAULT_MAX_CONNECTIONS),
            pg_tls: match pair(
                "pg_tls_cert",
                "--pg-tls-cert and --pg-tls-key",
                self.pg_tls_cert.or(file.pg_tls_cert),
                self.pg_tls_key.or(file.pg_tls_key),
            )? {
                Some((cert, key)) => Some(crate::tls::TlsFiles {
                    cert,
                    key,
                    client_ca: None,
                }),
                None => tls.clone().map(|t| crate::tls::TlsFiles {
                    client_ca: None,
                    ..t
                }),
            },
            tls,
            ca_file: self.ca_file.or(file.ca_file),
            sql_timeout: std::time::Duration::from_secs(
                self.sql_timeout_seconds
                    .or(file.sql_timeout_seconds)
                    .unwrap_or(DEFAULT_SQL_TIMEOUT_SECONDS),
            ),
            sql_memory_limit: match self.sql_memory_limit.or(file.sql_memory_limit) {
                Some(ByteSize(b)) if b < MIN_SQL_MEMORY_LIMIT => {
                    return Err(ConfigError::Invalid {
                        field: "sql_memory_limit",
                        message: format!("must be at least {MIN_SQL_MEMORY_LIMIT} bytes (16MiB)"),
                    });
                }
                Some(ByteSize(b)) => usize::try_from(b).unwrap_or(usize::MAX),
                None => default_sql_memory_limit(),
            },
            otlp_model_attribute: self
                .otlp_model_attribute
                .or(file.otlp_model_attribute)
                .unwrap_or_else(|| DEFAULT_OTLP_MODEL_ATTRIBUTE.into()),
            otlp_version_attribute: self
                .otlp_version_attribute
                .or(file.otlp_version_attribute)
                .unwrap_or_else(|| DEFAULT_OTLP_VERSION_ATTRIBUTE.into()),
            otlp_feature_prefix: self
                .otlp_feature_prefix
                .or(file.otlp_feature_prefix)
                .unwrap_or_else(|| DEFAULT_OTLP_FEATURE_PREFIX.into()),
            otlp_traces_endpoint: self
                .otlp_traces_endpoint
                .or(file.otlp_traces_endpoint)
                .filter(|url| !url.trim().is_empty()),
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
            log: self.log.or(file.log).unwrap_or_else(|| "info".into()),
            webhook_retry_base_ms: self
                .webhook_retry_base_ms
                .or(file.webhook_retry_base_ms)
                .unwrap_or(DEFAULT_WEBHOOK_RETRY_BASE_MS),
            webhook_max_attempts: self
                .webhook_max_attempts
                .or(file.webhook_max_attempts)
                .unwrap_or(DEFAULT_WEBHOOK_MAX_ATTEMPTS),
        };
        if settings.no_auth {
            for addr in [
                Some(settings.listen),
                settings.otlp_grpc_listen,
                settings.otlp_http_listen,
                settings.pg_listen,
            ]
            .into_iter()
            .flatten()
            {
                if !addr.ip().is_loopback() {
                    return Err(ConfigError::NoAuthOnPublicAddress(addr));
                }
            }
        }
        for (field, value) in [
            ("otlp_model_attribute", &settings.otlp_model_attribute),
            ("otlp_version_attribute", &settings.otlp_version_attribute),
        ] {
            if value.is_empty() {
                return Err(ConfigError::Invalid {
                    field,
                    message: "must not be empty".into(),
                });
            }
        }
        if let Some(url) = &settings.otlp_traces_endpoint {
            check_traces_endpoint(url)?;
        }
        if let Some(token) = &settings.bootstrap_token
            && token.len() < 16
        {
            return Err(ConfigError::Invalid {
                field: "bootstrap_token",
                message: "use at least 16 characters".into(),
            });
        }
        if settings.persist_buffer_bytes == 0
            || settings.persist_buffer_bytes > settings.max_buffer_bytes
        {
            return Err(ConfigError::Invalid {
                field: "persist_buffer_bytes",
                message: format!(
                    "must be between 1 and max_buffer_bytes ({})",
                    settings.max_buffer_bytes
                ),
            });
        }
        if !(1..=MAX_SQL_TIMEOUT_SECONDS).contains(&settings.sql_timeout.as_secs()) {
            return Err(ConfigError::Invalid {
                field: "sql_timeout_seconds",
                message: format!("must be between 1 and {MAX_SQL_TIMEOUT_SECONDS}"),
            });
        }
        if let Some(url) = &settings.registry_url
            && !url.is_postgres()
        {
            return Err(ConfigError::Invalid {
                field: "registry_url",
                message: format!(
                    "{} is not a PostgreSQL URL: expected postgres://user@host:port/database \
                     (leave it unset for the embedded SQLite registry in the data directory)",
                    url.redacted()
                ),
            });
        }
        if !(3..=600).contains(&settings.cluster.takeover.as_secs()) {
            return Err(ConfigError::Invalid {
                field: "duty_takeover_seconds",
                message: "must be between 3 and 600".into(),
            });
        }
        if !(1..=1_000).contains(&settings.registry_pool.max_connections) {
            return Err(ConfigError::Invalid {
                field: "registry_max_connections",
                message: "must be between 1 and 1000".into(),
            });
        }
        if !(1..=300).contains(&settings.registry_pool.acquire_timeout.as_secs()) {
            return Err(ConfigError::Invalid {
                field: "registry_acquire_timeout_seconds",
                message: "must be between 1 and 300".into(),
            });
        }
        if !(1..=10_000).contains(&settings.pg_max_connections) {
            return Err(ConfigError::Invalid {
                field: "pg_max_connections",
                message: "must be between 1 and 10000".into(),
            });
        }
        if settings.webhook_retry_base_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "webhook_retry_base_ms",
                message: "must be at least 1".into(),
            });
        }
        if !(1..=100).contains(&settings.webhook_max_attempts) {
            return Err(ConfigError::Invalid {
                field: "webhook_max_attempts",
                message: "must be between 1 and 100".into(),
            });
        }
        if settings.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                field: "max_body_bytes",
                message: "must be at least 1024".into(),
            });
        }
        if settings.max_artifact_file_bytes == 0 {
            return Err(ConfigError::Invalid {
                field: "max_artifact_file_bytes",
                message: "must be at least 1".into(),
            });
        }
        if !(1..=MAX_ARTIFACT_GC_INTERVAL_SECONDS)
            .contains(&settings.artifact_gc.interval.as_secs())
        {
            return Err(ConfigError::Invalid {
                field: "artifact_gc_interval_seconds",
                message: format!(
                    "must be between 1 and {MAX_ARTIFACT_GC_INTERVAL_SECONDS} (a week)"
                ),
            });
        }
        if !(1..=MAX_ARTIFACT_GC_GRACE_SECONDS).contains(&settings.artifact_gc.grace.as_secs()) {
            return Err(ConfigError::Invalid {
                field: "artifact_gc_grace_seconds",
                message: format!(
                    "must be between 1 and {MAX_ARTIFACT_GC_GRACE_SECONDS} (ten years); \
                     it is how long deleted versions' files stay on disk"
                ),
            });
        }
        settings.artifacts_dir = artifacts_dir(artifacts_url.as_deref(), &settings.data_dir)?;
        if let Some(anchor) = &mut settings.audit_anchor {
            anchor.ca_file = settings.ca_file.clone();
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        Cli::try_parse_from(std::iter::once("modelwatch").chain(args.iter().copied()))
            .unwrap()
            .serve
    }

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = parse(&[]).resolve_with(FileConfig::default()).unwrap();
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.protected_aliases, ["production", "champion"]);
        assert_eq!(s.log_format, LogFormat::Human);
    }

    #[test]
    fn file_beats_default_and_flag_beats_file() {
        let f = "data_dir = \"/from/file\"\nlisten = \"127.0.0.1:7000\"\nlog_format = \"json\"";
        let s = parse(&[]).resolve_with(file(f)).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s.listen.port(), 7000);
        assert_eq!(s.log_format, LogFormat::Json);
        let s = parse(&["--data-dir", "/from/flag"])
            .resolve_with(file(f))
            .unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(s.listen.port(), 7000, "unset flag keeps the file's value");
    }

    #[test]
    fn artifacts_live_in_the_data_dir_unless_a_directory_is_given() {
        let s = ServeArgs::default()
            .resolve_with(FileConfig::default())
            .unwrap();
        assert_eq!(
            s.artifacts_dir,
            PathBuf::from(DEFAULT_DATA_DIR).join("artifacts")
        );
        assert_eq!(s.max_artifact_file_bytes, 64 << 30);
        let s = ServeArgs::default()
            .resolve_with(file(
                "artifacts_url = \"file:///srv/models\"\nmax_artifact_file_bytes = 10",
            ))
            .unwrap();
        assert_eq!(s.artifacts_dir, PathBuf::from("/srv/models"));
        assert_eq!(s.max_artifact_file_bytes, 10);
        let flag = ServeArgs {
            artifacts_url: Some("/flag/dir".into()),
            ..Default::default()
        };
        let s = flag
            .resolve_with(file("artifacts_url = \"/file/dir\""))
            .unwrap();
        assert_eq!(s.artifacts_dir, PathBuf::from("/flag/dir"));
        for bad in ["s3://bucket/models", "file://relative", ""] {
            let args = ServeArgs {
                artifacts_url: Some(bad.into()),
                ..Default::default()
            };
            let err = args.resolve_with(FileConfig::default()).unwrap_err();
            assert!(err.to_string().contains("artifacts_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn artifact_gc_has_defaults_follows_precedence_and_is_bounded() {
        let s = parse(&[]).resolve_with(FileConfig::default()).unwrap();
        assert_eq!(s.artifact_gc.interval.as_secs(), 3600);
        assert_eq!(s.artifact_gc.grace.as_secs(), 86_400);
        let f = "artifact_gc_interval_seconds = 60\nartifact_gc_grace_seconds = 600";
        let s = parse(&[]).resolve_with(file(f)).unwrap();
        assert_eq!(s.artifact_gc.interval.as_secs(), 60);
        assert_eq!(s.artifact_gc.grace.as_secs(), 600);
        let s = parse(&["--artifact-gc-grace-seconds", "1"])
            .resolve_with(file(f))
            .unwrap();
        assert_eq!(s.artifact_gc.grace.as_secs(), 1, "flag beats file");
        assert_eq!(
            s.artifact_gc.interval.as_secs(),
            60,
            "unset flag keeps the file's"
        );
        for (bad, field) in [
            (
                &["--artifact-gc-interval-seconds", "0"][..],
                "artifact_gc_interval_seconds",
            ),
            (
                &["--artifact-gc-interval-seconds", "604801"][..],
                "artifact_gc_interval_seconds",
            ),
            (
                &["--artifact-gc-grace-seconds", "0"][..],
                "artifact_gc_grace_seconds",
            ),
        ] {
            let err = parse(bad).resolve_with(FileConfig::default()).unwrap_err();
            assert!(err.to_string().contains(field), "{bad:?}: {err}");
        }
    }

    #[test]
    fn max_upload_bytes_has_a_default_and_follows_precedence() {
        let s = parse(&[]).resolve_with(FileConfig::default()).unwrap();
        assert_eq!(s.max_upload_bytes, 1 << 30);
        let s = parse(&[])
            .resolve_with(file("max_upload_bytes = 2048"))
            .unwrap();
        assert_eq!(s.max_upload_bytes, 2048);
        let s = parse(&["--max-upload-bytes", "4096"])
            .resolve_with(file("max_upload_bytes = 2048"))
            .unwrap();
        assert_eq!(s.max_upload_bytes, 4096);
    }

    #[test]
    fn sql_memory_limit_takes_units_and_has_a_floor() {
        for (text, bytes) in [
            ("1073741824", 1u64 << 30),
            ("512MiB", 512 << 20),
            ("2GiB", 2 << 30),
            ("2G", 2 << 30),
            ("1GB", 1_000_000_000),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        for bad in ["", "GiB", "1.5GiB", "12 parsecs", "99999999999999999999"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?}");
        }
        let s = parse(&["--sql-memory-limit", "64MiB"])
            .resolve_with(FileConfig::default())
            .unwrap();
        assert_eq!(s.sql_memory_limit, 64 << 20);
        let s = parse(&[])
            .resolve_with(file("sql_memory_limit = \"32MiB\""))
            .unwrap();
        assert_eq!(s.sql_memory_limit, 32 << 20);
        let s = parse(&[])
            .resolve_with(file("sql_memory_limit = 33554432"))
            .unwrap();
        assert_eq!(s.sql_memory_limit, 32 << 20);
        let e = parse(&["--sql-memory-limit", "1MiB"])
            .resolve_with(FileConfig::default())
            .unwrap_err();
        assert!(e.to_string().contains("sql_memory_limit"), "{e}");
        let s = parse(&[]).resolve_with(FileConfig::default()).unwrap();
        assert!(s.sql_memory_limit >= 256 << 20);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("data_dri = \"x\"").is_err());
    }

    #[test]
    fn no_auth_needs_loopback() {
        assert!(
            parse(&["--no-auth", "--listen", "0.0.0.0:9400"])
                .resolve_with(FileConfig::default())
                .is_err()
        );
        assert!(
            parse(&["--no-auth", "--listen", "127.0.0.1:9400"])
                .resolve_with(FileConfig::default())
                .is_ok()
        );
        assert!(
            parse(&["--no-auth", "--listen", "[::1]:9400"])
                .resolve_with(FileConfig::default())
                .is_ok()
        );
    }

    #[test]
    fn otlp_listeners_default_parse_and_switch_off() {
        let s = parse(&[]).resolve_with(FileConfig::default()).unwrap();
        assert_eq!(
            s.otlp_grpc_listen.unwrap().to_string(),
            DEFAULT_OTLP_GRPC_LISTEN
        );
        assert_eq!(
            s.otlp_http_listen.unwrap().to_string(),
            DEFAULT_OTLP_HTTP_LISTEN
        );
        let s = parse(&[
            "--otlp-grpc-listen",
            "off",
            "--otlp-http-listen",
            "127.0.0.1:0",
        ])
        .resolve_with(file(
            "otlp_grpc_listen = \"127.0.0.1:5000\"\notlp_http_listen = \"off\"",
        ))
        .unwrap();
        assert_eq!(s.otlp_grpc_listen, None, "flag beats file");
        assert_eq!(s.otlp_http_listen.unwrap().port(), 0);
        let s = parse(&[])
            .resolve_with(file("otlp_http_listen = \"OFF\""))
            .unwrap();
        assert_eq!(s.otlp_http_listen, None);
        assert!(toml::from_str::<FileConfig>("otlp_grpc_listen = \"nowhere\"").is_err());
        assert!(
            parse(&["--no-auth", "--otlp-grpc-listen", "0.0.0.0:4317"])
                .resolve_with(FileConfig::default())
                .is_err(),
            "no auth on a public OTLP listener"
        );
    }

    #[test]
    fn pg_listener_defaults_switches_off_and_follows_precedence() {
        let s = parse(&[]).resolve_with(FileConfig::default()).unwrap();
        assert_eq!(s.pg_listen.unwrap().to_string(), DEFAULT_PG_LISTEN);
        assert_eq!(s.pg_tls, None);
        assert_eq!(s.sql_timeout.as_secs(), DEFAULT_SQL_TIMEOUT_SECONDS);
        let f = "pg_listen = \"127.0.0.1:6000\"\nsql_timeout_seconds = 5\n\
                 pg_tls_cert = \"/c.pem\"\npg_tls_key = \"/k.pem\"";
        let s = parse(&[]).resolve_with(file(f)).unwrap();
        assert_eq!(s.pg_listen.unwrap().port(), 6000);
        assert_eq!(s.sql_timeout.as_secs(), 5);
        let files = |cert: &str, key: &str, client_ca: Option<&str>| crate::tls::TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: client_ca.map(PathBuf::from),
        };
        assert_eq!(s.pg_tls, Some(files("/c.pem", "/k.pem", None)));
        assert_eq!(s.tls, None, "--pg-tls-* is for PostgreSQL alone");
        let s = parse(&[
            "--tls-cert",
            "/all.pem",
            "--tls-key",
            "/all.key",
            "--tls-client-ca",
            "/ca.pem",
        ])
        .resolve_with(FileConfig::default())
        .unwrap();
        assert_eq!(s.tls, Some(files("/all.pem", "/all.key", Some("/ca.pem"))));
        assert_eq!(
            s.pg_tls,
            Some(files("/all.pem", "/all.key", None)),
            "PostgreSQL follows --tls-* and asks no client certificate"
        );
        let s = parse(&["--tls-cert", "/all.pem", "--tls-key", "/all.key"])
            .resolve_with(file(f))
            .unwrap();
        assert_eq!(
            s.pg_tls,
            Some(files("/c.pem", "/k.pem", None)),
            "--pg-tls-* overrides"
        );
        let s = parse(&["--pg-listen", "off", "--sql-timeout-seconds", "7"])
            .resolve_with(file(f))
            .unwrap();
        assert_eq!(s.pg_listen, None, "flag beats file");
        assert_eq!(s.sql_timeout.as_secs(), 7);
        for bad in [
            &["--pg-tls-cert", "/c.pem"][..],
            &["--tls-key", "/k.pem"],
            &["--tls-client-ca", "/ca.pem"],
            &["--sql-timeout-seconds", "0"],
            &["--no-auth", "--pg-listen", "0.0.0.0:5433"],
        ] {
            assert!(
                parse(bad).resolve_with(FileConfig::default()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn registry_url_defaults_to_sqlite_is_checked_and_never_printed_with_its_password() {
        let s = parse(&[]).resolve_with(FileConfig::default()).unwrap();
        assert_eq!(s.registry_url, None);
        assert_eq!(s.registry_pool, modelwatch_registry::PoolLimits::default());
        let f = "registry_url = \"postgres://file@db/registry\"\nregistry_max_connections = 4";
        let s = parse(&[
            "--registry-url",
            "postgres://me:s3cret@db:5432/reg?sslmode=require",
        ])
        .resolve_with(file(f))
        .unwrap();
        let url = s.registry_url.unwrap();
        assert_eq!(url.0, "postgres://me:s3cret@db:5432/reg?sslmode=require");
        assert_eq!(
            url.redacted(),
            "postgres://me:***@db:5432/reg?sslmode=require"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(s.registry_pool.max_connections, 4);
        let err = parse(&["--registry-url", "mysql://me:pw@db/reg"])
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("registry_url") && err.contains("postgres://"),
            "{err}"
        );
        assert!(!err.contains("pw@"), "{err}");
        for bad in [
            &["--registry-max-connections", "0"][..],
            &["--registry-acquire-timeout-seconds", "0"][..],
        ] {
            assert!(
                parse(bad).resolve_with(FileConfig::default()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn otlp_traces_endpoint_is_off_by_default_and_follows_precedence() {
        let s = parse(&[]).resolve_with(FileConfig::default()).unwrap();
        assert_eq!(s.otlp_traces_endpoint, None);
        let f = "otlp_traces_endpoint = \"http://file:4318/v1/traces\"";
        let s = parse(&[]).resolve_with(file(f)).unwrap();
        assert_eq!(
            s.otlp_traces_endpoint.as_deref(),
            Some("http://file:4318/v1/traces")
        );
        let s = parse(&["--otlp-traces-endpoint", "http://flag:4318/v1/traces"])
            .resolve_with(file(f))
            .unwrap();
        assert_eq!(
            s.otlp_traces_endpoint.as_deref(),
            Some("http://flag:4318/v1/traces")
        );
        for bad in ["grpc://c:4317", "collector:4318", "http://", "http://a b/"] {
            assert!(
                parse(&["--otlp-traces-endpoint", bad])
                    .resolve_with(FileConfig::default())
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn short_bootstrap_tokens_are_refused() {
        assert!(
            parse(&["--bootstrap-token", "short"])
                .resolve_with(FileConfig::default())
                .is_err()
        );
    }
}
