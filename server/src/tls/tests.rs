use super::*;

/// A self-signed certificate for `localhost` and its key, as PEM.
fn self_signed(common_name: Option<&str>) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = common_name {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn files_in(dir: &Path, cert: &str, key: &str) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        client_ca: None,
    };
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
    files
}

#[test]
fn bad_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsFiles {
        cert: dir.path().join("missing.pem"),
        key: dir.path().join("missing.key"),
        client_ca: None,
    };
    let e = ServerTls::load(missing, Protocol::Http).unwrap_err();
    assert!(
        e.to_string().contains("cannot read the certificate")
            && e.to_string().contains("missing.pem"),
        "{e}"
    );

    let garbage = files_in(dir.path(), "not a pem", "not a pem either");
    let e = ServerTls::load(garbage, Protocol::Http).unwrap_err();
    assert!(e.to_string().contains("holds no certificate"), "{e}");

    let (cert, _) = self_signed(Some("a"));
    let (_, other_key) = self_signed(Some("b"));
    let mismatched = files_in(dir.path(), &cert, &other_key);
    let e = ServerTls::load(mismatched, Protocol::Http).unwrap_err();
    assert!(e.to_string().contains("do not make a usable pair"), "{e}");

    let (cert, key) = self_signed(Some("a"));
    let mut with_bad_ca = files_in(dir.path(), &cert, &key);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "no certificates here").unwrap();
    with_bad_ca.client_ca = Some(ca);
    let e = ServerTls::load(with_bad_ca, Protocol::Http).unwrap_err();
    assert!(
        e.to_string().contains("holds no client CA certificate"),
        "{e}"
    );
}

#[test]
fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_previous_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(Some("first"));
    let files = files_in(dir.path(), &cert, &key);
    let tls = ServerTls::load(files.clone(), Protocol::Http).unwrap();
    let first = tls.not_after().expect("the certificate's expiry is read");
    assert!(!tls.reload(false).unwrap(), "nothing changed");

    // A half-written rotation: the new certificate without its key.
    let (cert2, key2) = self_signed(Some("second"));
    std::fs::write(&files.cert, &cert2).unwrap();
    assert!(tls.reload(false).is_err(), "a mismatched pair is refused");
    assert!(
        !tls.reload(false).unwrap(),
        "a failed file is not tried again until it changes"
    );
    assert_eq!(
        tls.not_after(),
        Some(first),
        "the previous one still serves"
    );

    std::fs::write(&files.key, &key2).unwrap();
    assert!(tls.reload(false).unwrap(), "the completed pair is taken");
    assert!(
        tls.reload(true).unwrap(),
        "a forced reload reads the files again"
    );
}

#[test]
fn the_http_listeners_offer_h2_and_the_postgres_listener_offers_no_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(Some("alpn"));
    let files = files_in(dir.path(), &cert, &key);
    let http = ServerTls::load(files.clone(), Protocol::Http).unwrap();
    let pg = ServerTls::load(files, Protocol::Postgres).unwrap();
    assert_eq!(
        http.acceptor().config().alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert!(pg.acceptor().config().alpn_protocols.is_empty());
}

#[test]
fn a_client_certificate_is_named_by_its_common_name_or_else_its_fingerprint() {
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (named, _) = self_signed(Some("scorer-7"));
    assert_eq!(
        ClientIdentity::of(Some(&[der(&named)])).unwrap().name,
        "cert:scorer-7"
    );
    let (anonymous, _) = self_signed(None);
    let name = ClientIdentity::of(Some(&[der(&anonymous)])).unwrap().name;
    assert!(
        name.starts_with("cert:sha256:") && name.len() == "cert:sha256:".len() + 16,
        "{name}"
    );
    assert_eq!(ClientIdentity::of(None), None);
    assert_eq!(ClientIdentity::of(Some(&[])), None);
}
