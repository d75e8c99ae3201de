//! OIDC (issue 21, item 3): bearer JWTs signed by an identity provider's
//! keys, checked against its JWKS (a file, or its HTTPS URL), their groups
//! mapped to roles — on
//! the REST API, the UI's sign-in and the PostgreSQL wire alike. The
//! provider here is an RSA key made by Debian's `openssl` (what most
//! providers sign with) and a P-256 key; the tokens are signed with `ring`.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use serde_json::{Value, json};

use modelwatch_client::{AuditQuery, PageQuery};

use crate::support::*;

const ISSUER: &str = "https://idp.example.com/realms/ml";
const AUDIENCE: &str = "modelwatch";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) struct Provider {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
}

impl Provider {
    /// An RSA key from `openssl genpkey` and a P-256 key.
    pub(crate) fn new(dir: &Path) -> Self {
        let pem = dir.join("rsa.pem");
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem)
            .output()
            .expect("run openssl (Debian package openssl; .ci/run installs it)");
        assert!(out.status.success(), "{}", stderr(&out));
        let der = Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&pem)
            .output()
            .unwrap();
        assert!(der.status.success());
        let rsa = RsaKeyPair::from_pkcs8(&der.stdout).unwrap();
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        Self { rsa, ec }
    }

    fn jwks(&self) -> Value {
        let rsa = RsaPublicKeyComponents::<Vec<u8>>::from(self.rsa.public());
        let point = self.ec.public_key().as_ref();
        json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": b64(&rsa.n), "e": b64(&rsa.e)},
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": b64(&point[1..33]), "y": b64(&point[33..65])},
        ]})
    }

    pub(crate) fn token(&self, header: Value, claims: Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let signature = if header["alg"] == "ES256" {
            self.ec
                .sign(&rng, signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec()
        } else {
            let mut sig = vec![0; self.rsa.public().modulus_len()];
            self.rsa
                .sign(&RSA_PKCS1_SHA256, &rng, signed.as_bytes(), &mut sig)
                .unwrap();
            sig
        };
        format!("{signed}.{}", b64(&signature))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn token_claims(user: &str, groups: &[&str]) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now(),
        "sub": format!("id-{user}"), "preferred_username": user, "groups": groups,
    })
}

pub(crate) fn rs256() -> Value {
    json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"})
}

/// Waits until `token` is accepted (a rotated key set was taken in).
async fn accepted_within(http: &Http, token: &str, seconds: u64, what: &str) {
    wait_for(std::time::Duration::from_secs(seconds), what, || {
        let caller = http.with_token(Some(token));
        async move {
            match caller.get("/api/v1/models").await {
                (200, _) => Ok(()),
                (status, body) => Err(format!("{status} {body}")),
            }
        }
    })
    .await;
}

/// The `serve` flags trusting `idp`, its key set written into `dir`.
pub(crate) fn idp_args(idp: &Provider, dir: &Path) -> Start {
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, idp.jwks().to_string()).unwrap();
    Start::args(&[
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks-file",
        jwks.to_str().unwrap(),
        "--oidc-role-map",
        "ml-readers=reader,ml-engineers=editor",
    ])
}

#[tokio::test]
async fn identity_provider_tokens_map_groups_to_roles_and_bad_ones_get_401() {
    let tmp = tempfile::tempdir().unwrap();
    let idp = Provider::new(tmp.path());
    let jwks = tmp.path().join("jwks.json");
    let d = Daemon::start_with(idp_args(&idp, tmp.path()));
    let admin = d.http();
    let alice = admin.with_token(Some(
        &idp.token(rs256(), token_claims("alice", &["ml-engineers"])),
    ));
    let bob = admin.with_token(Some(&idp.token(
        json!({"alg": "ES256", "kid": "ec-1"}),
        token_claims("bob", &["ml-readers"]),
    )));

    // An editor by group: changes are audited under the provider's name.
    alice
        .post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;
    let query = AuditQuery {
        page: PageQuery::limit(1000),
        action: Some("model.create".into()),
        ..AuditQuery::default()
    };
    let created = admin.api().audit().list(&query).await.unwrap().items;
    assert_eq!(created[0].actor, "oidc:alice");
    // A reader by group reads, and is refused a change with 403.
    bob.get_expect("/api/v1/models/fraud", 200).await;
    let (status, body) = bob.post("/api/v1/models", json!({"name": "churn"})).await;
    assert_eq!(status, 403, "{body}");

    // Every way a token can be wrong is a 401 that says which.
    let mut wrong_issuer = token_claims("alice", &["ml-engineers"]);
    wrong_issuer["iss"] = json!("https://evil.example.com");
    let mut wrong_audience = token_claims("alice", &["ml-engineers"]);
    wrong_audience["aud"] = json!("another-app");
    let mut expired = token_claims("alice", &["ml-engineers"]);
    expired["exp"] = json!(now() - 3600);
    let mut raised = token_claims("alice", &["ml-engineers"]);
    raised["groups"] = json!(["ml-admins", "ml-engineers"]);
    let genuine = idp.token(rs256(), token_claims("alice", &["ml-engineers"]));
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(raised.to_string().as_bytes()),
        parts[2]
    );
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none"}).to_string().as_bytes()),
        parts[1]
    );
    let other_idp =
        Provider::new(tmp.path()).token(rs256(), token_claims("alice", &["ml-engineers"]));
    let cases = [
        (idp.token(rs256(), wrong_issuer), "issuer"),
        (idp.token(rs256(), wrong_audience), "audience"),
        (idp.token(rs256(), expired), "expired"),
        (tampered, "signature"),
        (other_idp, "signature"),
        (unsigned, "algorithm \"none\""),
        (
            idp.token(rs256(), token_claims("mallory", &["visitors"])),
            "maps to a role",
        ),
    ];
    for (token, why) in cases {
        let (status, body) = admin.with_token(Some(&token)).get("/api/v1/models").await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(error_message(&body).contains(why), "{why}: {body}");
    }
    // Each refusal is on the record with its reason.
    let failed = AuditQuery {
        page: PageQuery::limit(1000),
        action: Some("auth.failed".into()),
        ..AuditQuery::default()
    };
    let entries = wait_for(
        std::time::Duration::from_secs(30),
        "seven auth.failed entries",
        || {
            let (admin, failed) = (admin.clone(), failed.clone());
            async move {
                let items = admin.api().audit().list(&failed).await.unwrap().items;
                if items.len() >= 7 {
                    Ok(items)
                } else {
                    Err(format!("{} so far", items.len()))
                }
            }
        },
    )
    .await;
    let reasons: Vec<String> = entries
        .iter()
        .map(|e| {
            e.after.as_ref().unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        reasons.contains(&"JWT signature does not verify".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"JWT algorithm not accepted".to_string()),
        "{reasons:?}"
    );

    // A key rotation at the provider: the new key set is read without a
    // restart, and tokens of the retired key stop working.
    let rotated = Provider::new(tmp.path());
    std::fs::write(&jwks, rotated.jwks().to_string()).unwrap();
    let new_token = rotated.token(rs256(), token_claims("alice", &["ml-engineers"]));
    accepted_within(&admin, &new_token, 30, "the rotated key set to be read").await;
    assert_eq!(alice.get("/api/v1/models").await.0, 401);
    // The PostgreSQL wire takes one as the password (Grafana's data source
    // with a service account's token, psql here).
    let query = ["-A", "-t", "-c", "SELECT count(*) FROM models"];
    let out = crate::pgwire::psql(&d, &new_token, &query);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");
    let stale = idp.token(rs256(), token_claims("alice", &["ml-engineers"]));
    let out = crate::pgwire::psql(&d, &stale, &query);
    assert!(
        !out.status.success(),
        "a retired key's JWT opened a SQL session"
    );
    // The UI's sign-in takes a JWT as well; the session ends with it.
    let mut ui = crate::ui::Session::new(&d.url);
    ui.login(&new_token).await;
    let (status, _, page) = ui.get("/ui/models").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("oidc:alice · editor"), "{page}");
    // The API's own tokens keep working beside OIDC.
    admin.get_expect("/api/v1/models", 200).await;
}

#[test]
fn an_incomplete_or_unreadable_oidc_setup_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    serve_refuses(tmp.path(), &["--oidc-issuer", ISSUER], "--oidc-audience");
    let keyless = tmp.path().join("jwks.json");
    std::fs::write(&keyless, "{\"keys\": []}").unwrap();
    for (role_map, reason) in [
        ("ml=reader", "no signing key"),
        ("ml=superuser", "superuser"),
    ] {
        let args = [
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-file",
            keyless.to_str().unwrap(),
            "--oidc-role-map",
            role_map,
        ];
        serve_refuses(tmp.path(), &args, reason);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_set_is_fetched_from_the_providers_https_url_and_follows_a_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let idp = Provider::new(tmp.path());
    // The provider's `jwks_uri`, over HTTPS with a private CA.
    let pki = crate::tls::Pki::new("idp-ca");
    let served = std::sync::Arc::new(std::sync::Mutex::new(idp.jwks().to_string()));
    let server = crate::tls::HttpsServer::start(&pki.server("idp"), {
        let served = served.clone();
        move |_| served.lock().unwrap().clone()
    })
    .await;
    let url = format!("{}/realms/ml/protocol/openid-connect/certs", server.base);
    let oidc = |url: &str, ca: Option<&str>| {
        let mut args = vec![
            "--oidc-issuer".to_string(),
            ISSUER.into(),
            "--oidc-audience".into(),
            AUDIENCE.into(),
            "--oidc-jwks-url".into(),
            url.into(),
            "--oidc-role-map".into(),
            "ml-engineers=editor".into(),
        ];
        if let Some(ca) = ca {
            args.extend(["--ca-file".to_string(), ca.to_string()]);
        }
        args
    };

    // Not trusted without --ca-file, not accepted over plain HTTP: the
    // start stops and says why.
    let refusals = [
        (oidc(&url, None), "cannot fetch the OIDC key set"),
        (
            oidc(&url.replacen("https://", "http://", 1), Some(&pki.ca_arg())),
            "must be an https:// URL",
        ),
    ];
    let dir = tmp.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        for (args, reason) in refusals {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            serve_refuses(&dir, &args, reason);
        }
    })
    .await
    .unwrap();

    let args = oidc(&url, Some(&pki.ca_arg()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start_with(Start::args(&args));
    let admin = d.http();
    let alice = admin.with_token(Some(
        &idp.token(rs256(), token_claims("alice", &["ml-engineers"])),
    ));
    alice
        .post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;

    // The provider rotates its key: the first token of the new key makes
    // the daemon fetch the set again (within 10 s), no restart.
    let rotated = Provider::new(tmp.path());
    *served.lock().unwrap() = rotated.jwks().to_string();
    let new_token = rotated.token(rs256(), token_claims("alice", &["ml-engineers"]));
    accepted_within(&admin, &new_token, 60, "the rotated key set to be fetched").await;
    assert_eq!(alice.get("/api/v1/models").await.0, 401, "the retired key");
}
