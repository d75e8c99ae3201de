//! Signed anchors of the audit chain.
//!
//! The chain alone is tamper-evident only from the inside: whoever can
//! write the database can delete its newest entries, or edit one entry and
//! re-hash every entry after it, and the chain still verifies. An anchor
//! closes that gap: a checkpoint of the chain head — an entry's `seq` and
//! `hash` — signed with an Ed25519 key and written where the daemon can
//! add files but not rewrite them. A chain that no longer holds an
//! anchored entry with its anchored hash was truncated or rewritten.
//!
//! This module is the format, the keys and the check (pure: no I/O);
//! [`dir`] reads and writes anchor files. Which entry to anchor, and when,
//! is the daemon's duty (`server/src/audit_anchor.rs`).
//!
//! ## Format (anchor format 1)
//! One JSON object per anchor: `format` (1), `seq`, `hash` (the entry's
//! chain hash, 64 lowercase hex digits), `anchored_at` (RFC 3339 UTC with
//! microseconds), `key_id` (`ed25519:` and the first 16 hex digits of
//! sha256 of the raw public key), `public_key` (the raw 32-byte key,
//! standard base64) and `signature` (64 bytes, standard base64) over the
//! UTF-8 bytes
//! `"modelwatch audit anchor v1\n" seq "\n" hash "\n" anchored_at`.
//!
//! Keys are PKCS#8 (PEM `PRIVATE KEY` or DER), as `openssl genpkey
//! -algorithm ed25519` or `modelwatch audit keygen` write them; public keys
//! are PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `openssl pkey -pubout`
//! writes them.

pub mod dir;

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SubsecRound, Utc};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rules::audit::format_time;
use crate::types::AnchorCheck;

/// The anchor format this code writes and reads.
pub const FORMAT: u32 = 1;
const SIGNED_PREFIX: &str = "modelwatch audit anchor v1\n";
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32-byte
/// key follows.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(
        "{what} is not an Ed25519 private key in PKCS#8 (PEM `PRIVATE KEY` or DER); create one with `modelwatch audit keygen --out FILE` or `openssl genpkey -algorithm ed25519 -out FILE`"
    )]
    NotAPrivateKey { what: String },
    #[error(
        "{what} is not an Ed25519 public key; give the PEM `PUBLIC KEY` file `modelwatch audit keygen` wrote beside the key (FILE.pub), or make one with `openssl pkey -in KEY -pubout`"
    )]
    NotAPublicKey { what: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} exists and holds a different anchor for entry {seq}; anchors are never overwritten: move it aside if it is not yours", path.display())]
    Conflict { path: PathBuf, seq: i64 },
    #[error("the system's random source failed; cannot generate a key")]
    Random,
}

/// The private key anchors are signed with.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public().key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key and its PKCS#8 document as PEM (what `audit keygen` writes).
    pub fn generate() -> Result<(Self, String), AnchorError> {
        let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| AnchorError::Random)?;
        let key = Self::from_bytes(document.as_ref(), "the generated key")?;
        Ok((key, pem("PRIVATE KEY", document.as_ref())))
    }

    /// Reads a PKCS#8 key, PEM or DER; `what` names it in the error.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, AnchorError> {
        let der = pem_block(bytes, "PRIVATE KEY").unwrap_or_else(|| bytes.to_vec());
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map(|pair| Self { pair })
            .map_err(|_| AnchorError::NotAPrivateKey {
                what: what.to_string(),
            })
    }

    pub fn public(&self) -> PublicKey {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(raw)
    }

    /// The signed anchor of entry `seq` with chain hash `hash`, made at
    /// `at` (kept to the microsecond, like every registry time).
    pub fn anchor(&self, seq: i64, hash: &str, at: DateTime<Utc>) -> Anchor {
        let anchored_at = at.trunc_subsecs(6);
        let public = self.public();
        let signature = self.pair.sign(&signed_bytes(seq, hash, anchored_at));
        Anchor {
            format: FORMAT,
            seq,
            hash: hash.to_string(),
            anchored_at,
            key_id: public.key_id(),
            public_key: STANDARD.encode(public.0),
            signature: STANDARD.encode(signature.as_ref()),
        }
    }
}

/// An Ed25519 public key that anchors are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY`, or derives the key from a private key
    /// (PEM or DER PKCS#8); `what` names it in the error.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, AnchorError> {
        if let Some(der) = pem_block(bytes, "PUBLIC KEY") {
            return der
                .strip_prefix(&SPKI_PREFIX[..])
                .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
                .map(Self)
                .ok_or_else(|| AnchorError::NotAPublicKey {
                    what: what.to_string(),
                });
        }
        SigningKey::from_bytes(bytes, what)
            .map(|k| k.public())
            .map_err(|_| AnchorError::NotAPublicKey {
                what: what.to_string(),
            })
    }

    /// As PEM `PUBLIC KEY` (what `openssl pkey -pubout` writes).
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem("PUBLIC KEY", &der)
    }

    /// `ed25519:` and the first 16 hex digits of sha256 of the raw key.
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", &hex::encode(Sha256::digest(self.0))[..16])
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// One signed checkpoint of the chain (see the module doc for the format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    pub format: u32,
    pub seq: i64,
    pub hash: String,
    pub anchored_at: DateTime<Utc>,
    pub key_id: String,
    pub public_key: String,
    pub signature: String,
}

impl Anchor {
    /// The key that signed this anchor, if the signature verifies with it.
    /// `Err` says what is wrong with the anchor itself.
    pub fn signer(&self) -> Result<PublicKey, String> {
        if self.format != FORMAT {
            return Err(format!(
                "anchor format {} is not {FORMAT}, the one this modelwatch reads",
                self.format
            ));
        }
        if self.seq < 1 || self.hash.len() != 64 || hex::decode(&self.hash).is_err() {
            return Err("its seq or hash is not a chain entry's".into());
        }
        let key = STANDARD
            .decode(&self.public_key)
            .ok()
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .map(PublicKey)
            .ok_or("its public_key is not 32 bytes of base64")?;
        let signature = STANDARD
            .decode(&self.signature)
            .map_err(|_| "its signature is not base64")?;
        if key.key_id() != self.key_id {
            return Err(format!(
                "its key_id {} does not name its public key ({})",
                self.key_id,
                key.key_id()
            ));
        }
        if !key.verifies(
            &signed_bytes(self.seq, &self.hash, self.anchored_at),
            &signature,
        ) {
            return Err(format!(
                "its signature does not verify with its key {}: the file was forged or altered",
                self.key_id
            ));
        }
        Ok(key)
    }
}

fn signed_bytes(seq: i64, hash: &str, at: DateTime<Utc>) -> Vec<u8> {
    format!("{SIGNED_PREFIX}{seq}\n{hash}\n{}", format_time(at)).into_bytes()
}

/// An anchor file as read: its name and the anchor, or why it could not be
/// read as one.
pub type ReadAnchor = (String, Result<Anchor, String>);

/// Checks the chain against `anchors`: each must be well formed and signed
/// (by `pinned` when given), and the chain, which ends at entry
/// `last_seq`, must hold each anchored entry with its anchored hash
/// (`hashes`: the chain's hash of every anchored `seq` it holds). Reports
/// the first failure in `seq` order.
pub fn check(
    anchors: &[ReadAnchor],
    pinned: Option<&PublicKey>,
    last_seq: i64,
    hashes: &HashMap<i64, String>,
) -> AnchorCheck {
    let mut report = AnchorCheck {
        anchors_checked: 0,
        ok: true,
        problem: None,
        first_broken_seq: None,
        newest_anchored_seq: None,
        newest_anchored_at: None,
        unanchored_entries: last_seq,
        key_ids: Vec::new(),
    };
    let fail = |report: &mut AnchorCheck, seq: Option<i64>, problem: String| {
        report.ok = false;
        report.first_broken_seq = seq;
        report.problem = Some(problem);
    };
    if anchors.is_empty() {
        if last_seq > 0 {
            fail(
                &mut report,
                None,
                format!(
                    "no anchors to check the chain's {last_seq} entries against: the anchors were deleted, or anchoring was never on (serve --audit-anchor-dir with --audit-signing-key)"
                ),
            );
        }
        return report;
    }
    let mut ordered: Vec<&ReadAnchor> = anchors.iter().collect();
    ordered.sort_by_key(|(name, a)| (a.as_ref().map(|a| a.seq).unwrap_or(0), name.clone()));
    let mut previous: Option<&Anchor> = None;
    for (name, read) in ordered {
        let anchor = match read {
            Ok(anchor) => anchor,
            Err(e) => {
                fail(
                    &mut report,
                    None,
                    format!(
                        "anchor {name} cannot be read: {e}; it was altered or is not an anchor"
                    ),
                );
                return report;
            }
        };
        let key = match anchor.signer() {
            Ok(key) => key,
            Err(e) => {
                fail(&mut report, None, format!("anchor {name}: {e}"));
                return report;
            }
        };
        if let Some(pinned) = pinned.filter(|p| **p != key) {
            fail(
                &mut report,
                None,
                format!(
                    "anchor {name} is signed by {}, not by the given public key {}: it was not written by this registry's daemon",
                    key.key_id(),
                    pinned.key_id()
                ),
            );
            return report;
        }
        if !report.key_ids.contains(&anchor.key_id) {
            report.key_ids.push(anchor.key_id.clone());
        }
        let at = format_time(anchor.anchored_at);
        if anchor.seq > last_seq {
            fail(
                &mut report,
                Some(last_seq + 1),
                format!(
                    "the chain ends at entry {last_seq}, but anchor {name} (signed {at}) covers entry {}: entries from {} on were deleted",
                    anchor.seq,
                    last_seq + 1
                ),
            );
            return report;
        }
        let held = hashes.get(&anchor.seq);
        if held != Some(&anchor.hash) {
            let since = previous.map(|p| p.seq + 1).unwrap_or(1);
            fail(
                &mut report,
                Some(anchor.seq),
                format!(
                    "entry {}'s hash is {}, not the {} anchored in {name} (signed {at}): the chain was rewritten from an entry between {since} and {}",
                    anchor.seq,
                    held.map(String::as_str).unwrap_or("missing"),
                    anchor.hash,
                    anchor.seq
                ),
            );
            return report;
        }
        report.anchors_checked += 1;
        report.newest_anchored_seq = Some(anchor.seq);
        report.newest_anchored_at = Some(anchor.anchored_at);
        report.unanchored_entries = last_seq - anchor.seq;
        previous = Some(anchor);
    }
    report
}

/// `label` PEM armour around `der`, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first `label` PEM block of `bytes`, if there is one.
fn pem_block(bytes: &[u8], label: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests;
