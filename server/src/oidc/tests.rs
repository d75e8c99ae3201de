use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::json;

use super::*;

const ISSUER: &str = "https://idp.example.com/realms/ml";
const AUDIENCE: &str = "modelwatch";

fn config() -> OidcConfig {
    OidcConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks: JwksSource::File("/jwks.json".into()),
        role_claim: "groups".into(),
        role_map: vec![
            ("ml-readers".into(), Role::Reader),
            ("ml-engineers".into(), Role::Editor),
            ("ml-admins".into(), Role::Admin),
        ],
        name_claim: "preferred_username".into(),
    }
}

fn now() -> DateTime<Utc> {
    "2026-12-07T12:00:00Z".parse().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A P-256 key of the provider, its JWK, and a signer.
struct Provider {
    ec: EcdsaKeyPair,
    ed: Ed25519KeyPair,
}

impl Provider {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap();
        let der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
        Self { ec, ed }
    }

    fn jwks(&self) -> Jwks {
        let point = self.ec.public_key().as_ref();
        Jwks::parse(
            json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig",
                 "x": b64(&point[1..33]), "y": b64(&point[33..65])},
                {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(self.ed.public_key().as_ref())},
                {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "AA", "y": "AA"},
                {"kty": "oct", "k": "c2VjcmV0"}
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn token(&self, header: Value, claims: Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match header["alg"].as_str() {
            Some("EdDSA") => self.ed.sign(signed.as_bytes()).as_ref().to_vec(),
            _ => self
                .ec
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{signed}.{}", b64(&signature))
    }
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": ["account", AUDIENCE],
        "exp": now().timestamp() + 300,
        "nbf": now().timestamp() - 10,
        "sub": "f3a1",
        "preferred_username": "alice",
        "groups": ["ml-readers", "ml-engineers", "unrelated"],
    })
}

fn es256() -> Value {
    json!({"alg": "ES256", "kid": "ec-1", "typ": "JWT"})
}

#[test]
fn a_valid_token_names_the_caller_with_the_highest_mapped_role() {
    let p = Provider::new();
    let token = p.token(es256(), claims());
    assert!(looks_like_jwt(&token));
    let id = verify(&token, &p.jwks(), &config(), now()).unwrap();
    assert_eq!(id.name, "oidc:alice");
    assert_eq!(id.role, Role::Editor);
    assert_eq!(id.expires_at.timestamp(), now().timestamp() + 300);
    // EdDSA, a single audience string, and `sub` when the name claim is absent.
    let mut c = claims();
    c["aud"] = json!(AUDIENCE);
    c.as_object_mut().unwrap().remove("preferred_username");
    let token = p.token(json!({"alg": "EdDSA", "kid": "ed-1"}), c);
    assert_eq!(
        verify(&token, &p.jwks(), &config(), now()).unwrap().name,
        "oidc:f3a1"
    );
    // Without a kid every key of the algorithm's type is tried.
    let token = p.token(json!({"alg": "ES256"}), claims());
    assert!(verify(&token, &p.jwks(), &config(), now()).is_ok());
}

#[test]
fn nested_role_claims_are_reached_by_a_dotted_path() {
    let p = Provider::new();
    let mut c = claims();
    c["realm_access"] = json!({"roles": ["ml-admins"]});
    let config = OidcConfig {
        role_claim: "realm_access.roles".into(),
        ..config()
    };
    let id = verify(&p.token(es256(), c), &p.jwks(), &config, now()).unwrap();
    assert_eq!(id.role, Role::Admin);
}

#[test]
fn wrong_issuer_audience_time_or_role_is_refused_by_name() {
    let p = Provider::new();
    let refused = |patch: Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        verify(&p.token(es256(), c), &p.jwks(), &config(), now()).unwrap_err()
    };
    assert!(matches!(
        refused(json!({"iss": "https://evil.example.com"})),
        JwtError::Issuer { .. }
    ));
    assert_eq!(
        refused(json!({"aud": "someone-else"})),
        JwtError::Audience(AUDIENCE.into())
    );
    assert!(matches!(
        refused(json!({"exp": now().timestamp() - 61})),
        JwtError::Expired(_)
    ));
    // Within the leeway it still passes.
    let mut c = claims();
    c["exp"] = json!(now().timestamp() - 30);
    assert!(verify(&p.token(es256(), c), &p.jwks(), &config(), now()).is_ok());
    assert!(matches!(
        refused(json!({"nbf": now().timestamp() + 120})),
        JwtError::NotYetValid(_)
    ));
    assert_eq!(refused(json!({"exp": null})), JwtError::NoExpiry);
    let e = refused(json!({"groups": ["unrelated"]}));
    assert!(matches!(e, JwtError::NoRole { .. }), "{e}");
    assert!(e.to_string().contains("ml-engineers=editor"), "{e}");
}

#[test]
fn forged_unsigned_and_confused_algorithms_are_refused() {
    let p = Provider::new();
    let jwks = p.jwks();
    let token = p.token(es256(), claims());
    // The claims changed after signing.
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut c = claims();
    c["groups"] = json!(["ml-admins"]);
    let forged_claims = b64(c.to_string().as_bytes());
    parts[1] = &forged_claims;
    assert_eq!(
        verify(&parts.join("."), &jwks, &config(), now()),
        Err(JwtError::Signature)
    );
    // Signed by another provider's key with the same kid.
    let stranger = Provider::new().token(es256(), claims());
    assert_eq!(
        verify(&stranger, &jwks, &config(), now()),
        Err(JwtError::Signature)
    );
    // alg none, with or without a signature.
    let header = b64(json!({"alg": "none"}).to_string().as_bytes());
    let body = b64(claims().to_string().as_bytes());
    for unsigned in [format!("{header}.{body}."), format!("{header}.{body}.c2ln")] {
        assert_eq!(
            verify(&unsigned, &jwks, &config(), now()),
            Err(JwtError::Algorithm("none".into()))
        );
    }
    // HS256 keyed with a public key's bytes (the classic confusion).
    let hs = p.token(json!({"alg": "HS256", "kid": "ec-1"}), claims());
    assert_eq!(
        verify(&hs, &jwks, &config(), now()),
        Err(JwtError::Algorithm("HS256".into()))
    );
    // An EdDSA header naming the EC key finds no key of that type.
    let mixed = p.token(json!({"alg": "EdDSA", "kid": "ec-1"}), claims());
    assert!(matches!(
        verify(&mixed, &jwks, &config(), now()),
        Err(JwtError::UnknownKey(_))
    ));
}

#[test]
fn truncated_oversized_and_garbage_tokens_are_malformed() {
    let p = Provider::new();
    let jwks = p.jwks();
    let token = p.token(es256(), claims());
    let truncated = &token[..token.rfind('.').unwrap()];
    let oversized = format!("{token}{}", "A".repeat(MAX_TOKEN_BYTES));
    for bad in [
        truncated,
        oversized.as_str(),
        "a.b.c",
        "....",
        "",
        "not a jwt",
    ] {
        let e = verify(bad, &jwks, &config(), now()).unwrap_err();
        assert!(
            matches!(e, JwtError::Malformed(_) | JwtError::Algorithm(_)),
            "{bad:?}: {e:?}"
        );
    }
    assert!(!looks_like_jwt("mw_abc"));
    assert!(!looks_like_jwt(&oversized));
}

#[test]
fn key_sets_without_usable_keys_or_not_json_are_refused() {
    for bad in [
        &b"not json"[..],
        br#"{"keys": []}"#,
        br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
        br#"{"no": "keys"}"#,
    ] {
        assert!(Jwks::parse(bad).is_err());
    }
}
