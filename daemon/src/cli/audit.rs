//! `modelwatch audit list|verify|keygen`: reading the chain, verifying it
//! (through the daemon or offline on a data directory, optionally against
//! signed anchors), and making the anchors' signing key.
//!
//! The anchor check itself is `modelwatch_registry::anchor::check` (pure);
//! this module gathers what it needs — the anchor files, and the chain's
//! hash at every anchored entry, paged through the same listing either way.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use modelwatch_client::{AuditQuery, PageQuery};
use modelwatch_registry::anchor::{self, PublicKey, ReadAnchor, SigningKey};
use modelwatch_registry::prelude::*;
use modelwatch_registry::{AuditEntry, AuditFilter, Page, PageRequest, SqliteStore};

use super::output::{self, AUDIT_COLUMNS, print};
use super::{CliError, Connection, PageArgs, client, document, offline_error, open_offline};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, oldest first.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[arg(long)]
        actor: Option<String>,
        /// e.g. alias.rollback
        #[arg(long)]
        action: Option<String>,
        /// e.g. model/fraud
        #[arg(long)]
        target_prefix: Option<String>,
    },
    /// Recompute the hash chain and compare the tokens table with it; exits
    /// 1 and names the first broken entry when it was tampered with. With
    /// --anchors, also checks that the chain still holds every signed
    /// anchor's entry: that catches deleted newest entries and a chain
    /// rewritten and re-hashed, which the chain alone cannot show.
    Verify {
        /// Check the database in this data directory directly instead of
        /// asking the daemon.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// A directory of anchors the daemon wrote (--audit-anchor-dir);
        /// repeat for the directories of several daemons.
        #[arg(long, value_name = "DIR")]
        anchors: Vec<PathBuf>,
        /// The public key the anchors must be signed with (PEM, as
        /// `audit keygen` wrote it beside the key). Without it each anchor is
        /// checked against the key it names, which a forger could replace.
        #[arg(long, value_name = "FILE", requires = "anchors")]
        public_key: Option<PathBuf>,
    },
    /// Create an Ed25519 key for signing anchors: FILE (the private key,
    /// PKCS#8 PEM, mode 0600; give it to `serve --audit-signing-key`) and
    /// FILE.pub (the public key, for `audit verify --public-key`).
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub async fn audit(command: AuditCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    match command {
        AuditCommand::List {
            page,
            actor,
            action,
            target_prefix,
        } => {
            let query = AuditQuery {
                page: page.query(),
                actor,
                action,
                target_prefix,
            };
            let listed = client(conn)?.audit().list(&query).await?;
            print(conn.json, &document(&listed), |v| {
                output::page(v, AUDIT_COLUMNS)
            });
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            data_dir,
            anchors,
            public_key,
        } => verify(conn, data_dir.as_deref(), &anchors, public_key.as_deref()).await,
        AuditCommand::Keygen { out } => keygen(conn, &out),
    }
}

/// Where the chain is read from.
enum Chain<'a> {
    Offline(SqliteStore),
    Daemon(&'a Connection),
}

impl Chain<'_> {
    async fn page(&self, cursor: Option<String>) -> Result<Page<AuditEntry>, CliError> {
        match self {
            Chain::Offline(store) => store
                .list_audit(
                    &AuditFilter::default(),
                    &PageRequest {
                        limit: PageRequest::MAX_LIMIT,
                        cursor,
                    },
                )
                .await
                .map_err(offline_error),
            Chain::Daemon(conn) => Ok(client(conn)?
                .audit()
                .list(&AuditQuery {
                    page: PageQuery {
                        limit: Some(PageRequest::MAX_LIMIT),
                        cursor,
                    },
                    ..AuditQuery::default()
                })
                .await?),
        }
    }
}

async fn verify(
    conn: &Connection,
    data_dir: Option<&Path>,
    anchor_dirs: &[PathBuf],
    public_key: Option<&Path>,
) -> Result<ExitCode, CliError> {
    // Read the anchors and the key first: a typo fails before any work.
    let pinned = match public_key {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                CliError::Usage(format!("cannot read --public-key {}: {e}", path.display()))
            })?;
            Some(
                PublicKey::from_bytes(&bytes, &format!("--public-key {}", path.display()))
                    .map_err(|e| CliError::Usage(e.to_string()))?,
            )
        }
        None => None,
    };
    let mut anchors: Vec<ReadAnchor> = Vec::new();
    for dir in anchor_dirs {
        if !dir.is_dir() {
            return Err(CliError::Usage(format!(
                "--anchors {} is not a directory; give the daemon's --audit-anchor-dir",
                dir.display()
            )));
        }
        let read = anchor::dir::read_all(dir).map_err(|e| CliError::Local(e.to_string()))?;
        anchors.extend(
            read.into_iter()
                .map(|(name, a)| (dir.join(name).display().to_string(), a)),
        );
    }
    let chain = match data_dir {
        Some(dir) => Chain::Offline(open_offline(dir).await?),
        None => Chain::Daemon(conn),
    };
    let mut v = match &chain {
        Chain::Offline(store) => {
            serde_json::to_value(store.verify_audit().await.map_err(offline_error)?)
                .map_err(offline_error)?
        }
        Chain::Daemon(conn) => document(&client(conn)?.audit().verify().await?),
    };
    // The daemon checks its own anchors when it writes them.
    let mut ok = v["ok"].as_bool() == Some(true) && v["anchors"]["ok"].as_bool() != Some(false);
    if !anchor_dirs.is_empty() {
        let wanted: HashSet<i64> = anchors
            .iter()
            .filter_map(|(_, a)| a.as_ref().ok().map(|a| a.seq))
            .collect();
        let (last_seq, hashes) = hashes_at(&chain, &wanted).await?;
        let report = anchor::check(&anchors, pinned.as_ref(), last_seq, &hashes);
        ok &= report.ok;
        v["anchors"] = serde_json::to_value(&report).map_err(offline_error)?;
        if pinned.is_none() {
            v["anchors"]["warning"] = Value::from(
                "no --public-key: each anchor was checked against the key it names; pin the key to rule out forged anchors",
            );
        }
    }
    if let Chain::Offline(store) = chain {
        store.close().await;
    }
    print(conn.json, &v, report);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The chain's last `seq`, and its hash at each `wanted` entry it holds.
async fn hashes_at(
    chain: &Chain<'_>,
    wanted: &HashSet<i64>,
) -> Result<(i64, HashMap<i64, String>), CliError> {
    let mut last_seq = 0;
    let mut hashes = HashMap::new();
    let mut cursor = None;
    loop {
        let page = chain.page(cursor).await?;
        for e in page.items {
            last_seq = last_seq.max(e.seq);
            if wanted.contains(&e.seq) {
                hashes.insert(e.seq, e.hash);
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok((last_seq, hashes)),
        }
    }
}

fn report(v: &Value) -> String {
    let mut out = if v["ok"].as_bool() == Some(true) {
        format!(
            "audit chain intact: {} entries verified, head {}; {} tokens match the chain",
            v["entries_checked"],
            v["head_hash"].as_str().unwrap_or(""),
            v["tokens_checked"]
        )
    } else {
        format!(
            "audit chain BROKEN at entry {}: {}\n({} entries before it verified)",
            v["first_broken_seq"],
            v["problem"].as_str().unwrap_or(""),
            v["entries_checked"]
        )
    };
    let a = &v["anchors"];
    if a.is_object() {
        if a["ok"].as_bool() == Some(true) {
            out.push_str(&format!(
                "\nanchors: {} checked (keys {}); the newest covers entry {} (signed {}); {} entries after it are not anchored yet",
                a["anchors_checked"],
                a["key_ids"]
                    .as_array()
                    .map(|k| k.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                a["newest_anchored_seq"],
                a["newest_anchored_at"].as_str().unwrap_or("never"),
                a["unanchored_entries"]
            ));
        } else {
            out.push_str(&format!(
                "\nanchors FAIL: {}\n({} anchors before it matched)",
                a["problem"].as_str().unwrap_or(""),
                a["anchors_checked"]
            ));
        }
        if let Some(w) = a["warning"].as_str() {
            out.push_str(&format!("\nwarning: {w}"));
        }
    }
    out
}

fn keygen(conn: &Connection, out: &Path) -> Result<ExitCode, CliError> {
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    for path in [out, public_path.as_path()] {
        if path.exists() {
            return Err(CliError::Usage(format!(
                "{} exists; keys are never overwritten: choose another --out or move it aside",
                path.display()
            )));
        }
    }
    let (key, private_pem) = SigningKey::generate().map_err(|e| CliError::Local(e.to_string()))?;
    write_new(out, private_pem.as_bytes(), 0o600)?;
    write_new(&public_path, key.public().to_pem().as_bytes(), 0o644)?;
    let v = serde_json::json!({
        "private_key": out.display().to_string(),
        "public_key": public_path.display().to_string(),
        "key_id": key.public().key_id(),
    });
    print(conn.json, &v, |v| {
        format!(
            "wrote {} (keep it secret; serve --audit-signing-key) and {} (audit verify --public-key); key {}",
            v["private_key"].as_str().unwrap_or(""),
            v["public_key"].as_str().unwrap_or(""),
            v["key_id"].as_str().unwrap_or("")
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` with `mode` (never replacing a file) and fsyncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| CliError::Local(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}
