//! Token secrets: how they are made and hashed.
//!
//! A secret is `mw_` followed by 43 URL-safe base64 characters (32 random
//! bytes). Only its sha256 is stored, so a leaked database does not leak
//! working tokens; 256 random bits make a slow password hash unnecessary.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const SECRET_PREFIX: &str = "mw_";

pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// What a `token.create` audit entry records of the secret: enough to
/// tell whether the stored hash was swapped later, nothing that helps
/// find the secret (a keyed hash of its hash, truncated).
pub fn secret_fingerprint(secret_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"modelwatch token fingerprint v1\n");
    h.update(secret_hash.as_bytes());
    hex::encode(h.finalize())[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_and_hash_stably() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == 46);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
