//! TLS on the daemon's listeners: the certificate and key (`--tls-cert`,
//! `--tls-key`; `--pg-tls-*` for the PostgreSQL listener alone), the
//! client CA that turns on client certificates (`--tls-client-ca`), and
//! their reload on SIGHUP or when the files change.
//!
//! A listener asks [`ServerTls::acceptor`] once per connection, so a reload
//! applies to the next handshake and never cuts a connection in progress.
//! A reload that fails (a half-written file, a key that does not match)
//! keeps the previous configuration and says why; the daemon never stops
//! serving over a bad file.
//!
//! A client certificate that chains to the client CA is an identity of its
//! own ([`ClientIdentity`]): it authenticates as role `ingest` (see
//! `auth.rs`). Without `--tls-client-ca` no certificate is asked for.
//!
//! Must not: decide who may do what (that is `auth.rs`), or read the files
//! anywhere but here.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the files are looked at for changes (besides SIGHUP).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What a TLS listener serves, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM certificates of the CA(s) that sign client certificates.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {path}: {source}")]
    ReadPem {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no {what}; give a PEM file with one")]
    EmptyPem { what: &'static str, path: PathBuf },
    #[error("the TLS certificate and key do not make a usable pair: {0}")]
    Pair(#[source] rustls::Error),
    #[error("the client CA {path} cannot verify client certificates: {message}")]
    ClientCa { path: PathBuf, message: String },
}

/// Which protocol the listener speaks, for ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/2 (gRPC needs it) and HTTP/1.1.
    Http,
    /// The PostgreSQL wire: no ALPN, as libpq's `sslnegotiation=postgres`
    /// expects.
    Postgres,
}

/// A listener's TLS configuration, reloadable while it serves.
pub struct ServerTls {
    files: TlsFiles,
    protocol: Protocol,
    current: RwLock<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    stamp: Vec<Option<[u8; 32]>>,
    not_after: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl ServerTls {
    /// Reads the files; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles, protocol: Protocol) -> Result<Self, TlsError> {
        let loaded = load(&files, protocol)?;
        Ok(Self {
            files,
            protocol,
            current: RwLock::new(loaded),
        })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        match self.current.read() {
            Ok(c) => c.acceptor.clone(),
            Err(poisoned) => poisoned.into_inner().acceptor.clone(),
        }
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// True when client certificates are asked for (`--tls-client-ca`).
    pub fn asks_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// When the served certificate expires.
    pub fn not_after(&self) -> Option<DateTime<Utc>> {
        self.current.read().ok().and_then(|c| c.not_after)
    }

    /// Reads the files again when `force` or when one of them changed. `Ok(true)`: a new configuration is in
    /// use. On an error the previous one stays.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let contents = Contents::read(&self.files);
        let stamp = contents.stamp();
        let unchanged = self
            .current
            .read()
            .map(|c| c.stamp == stamp)
            .unwrap_or(false);
        if unchanged && !force {
            return Ok(false);
        }
        let loaded = build(&self.files, self.protocol, &contents);
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        match loaded {
            Ok(loaded) => {
                *current = loaded;
                Ok(true)
            }
            Err(e) => {
                // Not tried again until the files change once more.
                current.stamp = stamp;
                Err(e)
            }
        }
    }
}

/// The files' bytes, each read once: what is parsed is what is stamped,
/// so a file rewritten while it is read is simply seen changed next time.
struct Contents {
    cert: std::io::Result<Vec<u8>>,
    key: std::io::Result<Vec<u8>>,
    client_ca: Option<std::io::Result<Vec<u8>>>,
}

type Stamp = Vec<Option<[u8; 32]>>;

impl Contents {
    fn read(files: &TlsFiles) -> Self {
        Self {
            cert: std::fs::read(&files.cert),
            key: std::fs::read(&files.key),
            client_ca: files.client_ca.as_ref().map(std::fs::read),
        }
    }

    /// What the files hold, hashed: a change of content is seen even when
    /// the size and the (coarse) modification time stay the same, as when
    /// a key of the same length is written within a few milliseconds of
    /// the certificate. The files are a few kilobytes; reading them every
    /// [`WATCH_INTERVAL`] costs nothing.
    fn stamp(&self) -> Stamp {
        use sha2::Digest;
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|r| r.as_ref().ok().map(|b| sha2::Sha256::digest(b).into()))
            .collect()
    }
}

fn load(files: &TlsFiles, protocol: Protocol) -> Result<Loaded, TlsError> {
    build(files, protocol, &Contents::read(files))
}

fn build(files: &TlsFiles, protocol: Protocol, contents: &Contents) -> Result<Loaded, TlsError> {
    let certs = certificates(&files.cert, "certificate", &contents.cert)?;
    let key_pem = pem(&files.key, "private key", &contents.key)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::EmptyPem {
        what: "private key",
        path: files.key.clone(),
    })?;
    let not_after = x509_certificate::X509Certificate::from_der(certs[0].as_ref())
        .ok()
        .map(|c| c.validity_not_after());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Pair)?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(read)) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(path, "client CA certificate", read)? {
                roots.add(ca).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            }
            // Optional: a client without a certificate still gets in with
            // a bearer token, as before.
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsError::ClientCa {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(TlsError::Pair)?;
    if protocol == Protocol::Http {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        stamp: contents.stamp(),
        not_after,
    })
}

fn pem<'a>(
    path: &Path,
    what: &'static str,
    read: &'a std::io::Result<Vec<u8>>,
) -> Result<&'a [u8], TlsError> {
    read.as_deref().map_err(|e| TlsError::ReadPem {
        what,
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    })
}

fn certificates(
    path: &Path,
    what: &'static str,
    read: &std::io::Result<Vec<u8>>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem(path, what, read)?)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::EmptyPem {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Marks a request that came over TLS (a request extension): the UI makes
/// its cookies `Secure` then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

/// Who a verified client certificate says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// `cert:<subject common name>`, or `cert:sha256:<fingerprint prefix>`
    /// for a certificate without one.
    pub name: String,
}

impl ClientIdentity {
    /// The identity of a handshake's peer chain (leaf first), which rustls
    /// has verified against the client CA; `None` without a certificate.
    pub fn of(chain: Option<&[CertificateDer<'_>]>) -> Option<Self> {
        let leaf = chain?.first()?;
        let common_name = x509_certificate::X509Certificate::from_der(leaf.as_ref())
            .ok()
            .and_then(|c| c.subject_common_name())
            .filter(|cn| !cn.trim().is_empty());
        let name = match common_name {
            Some(cn) => format!("cert:{cn}"),
            None => {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(leaf.as_ref());
                format!("cert:sha256:{}", &hex::encode(digest)[..16])
            }
        };
        Some(Self { name })
    }
}

impl ClientIdentity {
    /// Who the certificate's holder acts as: the role to send telemetry,
    /// nothing more.
    pub fn actor(&self) -> modelwatch_registry::Actor {
        modelwatch_registry::Actor::new(self.name.clone(), modelwatch_registry::Role::Ingest)
    }
}

/// Reloads every listener's TLS on SIGHUP and when a file changes, until
/// `stop` resolves. Outcomes are logged and counted in
/// `modelwatch_tls_reloads_total{outcome}`.
pub async fn watch(listeners: Vec<Arc<ServerTls>>, mut stop: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files are reloaded when they change");
            None
        }
    };
    for tls in &listeners {
        export_expiry(tls);
    }
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = async {
                match hangup.as_mut() {
                    Some(h) => { h.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => true,
            _ = tick.tick() => false,
        };
        if forced {
            if listeners.is_empty() {
                tracing::info!("SIGHUP: nothing to reload (no TLS configured)");
            } else {
                tracing::info!("SIGHUP: reloading the TLS certificates");
            }
        }
        // One reload of the files counts once, however many listener
        // configurations (HTTP, PostgreSQL) read them.
        let outcomes: Vec<Option<bool>> = listeners.iter().map(|t| reload_one(t, forced)).collect();
        let reloads = &crate::metrics::metrics().tls_reloads;
        if outcomes.contains(&Some(false)) {
            reloads.with_label_values(&["failed"]).inc();
        } else if outcomes.contains(&Some(true)) {
            reloads.with_label_values(&["ok"]).inc();
        }
    }
}

/// `None`: nothing changed; `Some(ok)`: read again, successfully or not.
fn reload_one(tls: &ServerTls, forced: bool) -> Option<bool> {
    let files = tls.files();
    match tls.reload(forced) {
        Ok(false) => None,
        Ok(true) => {
            export_expiry(tls);
            tracing::info!(
                cert = %files.cert.display(),
                not_after = tls.not_after().map(|t| t.to_rfc3339()).unwrap_or_default(),
                "TLS certificate reloaded"
            );
            Some(true)
        }
        Err(e) => {
            tracing::error!(
                error = %e,
                cert = %files.cert.display(),
                "cannot reload the TLS certificate; still serving the previous one"
            );
            Some(false)
        }
    }
}

fn export_expiry(tls: &ServerTls) {
    if let Some(t) = tls.not_after() {
        crate::metrics::metrics()
            .tls_certificate_expiry
            .with_label_values(&[&tls.files().cert.display().to_string()])
            .set(t.timestamp());
    }
}

#[cfg(test)]
mod tests;
