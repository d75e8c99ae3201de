use super::*;

/// RFC 8410 §10.3's example private key, as `openssl genpkey -algorithm
/// ed25519` writes keys (PKCS#8 v1).
const RFC8410_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
";
/// RFC 8410 §10.1's example public key, the one of the key above.
const RFC8410_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PUBLIC KEY-----
";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn hash(n: i64) -> String {
    format!("{n:064x}")
}

/// Hashes of a chain of `n` entries.
fn chain(n: i64) -> HashMap<i64, String> {
    (1..=n).map(|s| (s, hash(s))).collect()
}

fn key() -> SigningKey {
    SigningKey::generate().unwrap().0
}

fn named(anchors: &[Anchor]) -> Vec<ReadAnchor> {
    anchors
        .iter()
        .map(|a| (dir::file_name(a.seq), Ok(a.clone())))
        .collect()
}

#[test]
fn openssl_keys_load_and_their_public_key_matches() {
    let private = SigningKey::from_bytes(RFC8410_PRIVATE.as_bytes(), "k").unwrap();
    let public = PublicKey::from_bytes(RFC8410_PUBLIC.as_bytes(), "p").unwrap();
    assert_eq!(private.public(), public);
    assert_eq!(public.to_pem(), RFC8410_PUBLIC);
    // A private key stands for its public key too.
    assert_eq!(
        PublicKey::from_bytes(RFC8410_PRIVATE.as_bytes(), "p").unwrap(),
        public
    );
}

#[test]
fn generated_keys_round_trip_through_pem_and_der() {
    let (key, pem_text) = SigningKey::generate().unwrap();
    let again = SigningKey::from_bytes(pem_text.as_bytes(), "k").unwrap();
    assert_eq!(again.public(), key.public());
    let der = pem_block(pem_text.as_bytes(), "PRIVATE KEY").unwrap();
    assert_eq!(
        SigningKey::from_bytes(&der, "k").unwrap().public(),
        key.public()
    );
    let public = key.public();
    assert_eq!(
        PublicKey::from_bytes(public.to_pem().as_bytes(), "p").unwrap(),
        public
    );
    assert!(public.key_id().starts_with("ed25519:") && public.key_id().len() == 24);
    assert_ne!(key.public(), self::key().public());
}

#[test]
fn garbage_truncated_and_oversized_keys_are_refused_by_name() {
    let truncated = &RFC8410_PRIVATE[..40];
    let oversized = "A".repeat(1 << 20);
    for bad in [
        b"not a key".as_slice(),
        truncated.as_bytes(),
        oversized.as_bytes(),
        b"",
        RFC8410_PUBLIC.as_bytes(),
    ] {
        let e = SigningKey::from_bytes(bad, "/etc/k.pem").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/k.pem is not an Ed25519 private key"),
            "{e}"
        );
    }
    let e = PublicKey::from_bytes(
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "p.pem",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("p.pem is not an Ed25519 public key"),
        "{e}"
    );
}

#[test]
fn an_anchor_verifies_and_any_change_to_it_does_not() {
    let k = key();
    let a = k.anchor(7, &hash(7), at("2026-12-07T10:00:00.123456789Z"));
    // Kept to the microsecond, like every registry time.
    assert_eq!(a.anchored_at, at("2026-12-07T10:00:00.123456Z"));
    assert_eq!(a.signer().unwrap(), k.public());
    let json = serde_json::to_string(&a).unwrap();
    let back: Anchor = serde_json::from_str(&json).unwrap();
    assert_eq!(back.signer().unwrap(), k.public());

    let mut seq = a.clone();
    seq.seq = 8;
    let mut h = a.clone();
    h.hash = hash(9);
    let mut time = a.clone();
    time.anchored_at = at("2026-12-07T10:00:01Z");
    let mut other_key = a.clone();
    other_key.public_key = STANDARD.encode(key().public().0);
    let mut sig = a.clone();
    sig.signature = STANDARD.encode([0u8; 64]);
    let mut format = a.clone();
    format.format = 2;
    for (what, bad) in [
        ("seq", seq),
        ("hash", h),
        ("time", time),
        ("key", other_key),
        ("signature", sig),
        ("format", format),
    ] {
        assert!(bad.signer().is_err(), "a changed {what} still verifies");
    }
}

#[test]
fn a_chain_holding_every_anchored_entry_passes() {
    let k = key();
    let anchors = [
        k.anchor(3, &hash(3), at("2026-12-07T10:00:00Z")),
        k.anchor(6, &hash(6), at("2026-12-07T10:05:00Z")),
    ];
    let r = check(&named(&anchors), Some(&k.public()), 8, &chain(8));
    assert!(r.ok, "{r:?}");
    assert_eq!(r.anchors_checked, 2);
    assert_eq!(r.newest_anchored_seq, Some(6));
    assert_eq!(r.newest_anchored_at, Some(at("2026-12-07T10:05:00Z")));
    assert_eq!(r.unanchored_entries, 2);
    assert_eq!(r.key_ids, vec![k.public().key_id()]);
    // Unpinned: checked against the key each anchor names.
    assert!(check(&named(&anchors), None, 8, &chain(8)).ok);
}

#[test]
fn deleting_the_newest_entries_is_caught() {
    let k = key();
    let anchors = [
        k.anchor(3, &hash(3), at("2026-12-07T10:00:00Z")),
        k.anchor(6, &hash(6), at("2026-12-07T10:05:00Z")),
    ];
    let r = check(&named(&anchors), None, 5, &chain(5));
    assert!(!r.ok);
    assert_eq!(r.first_broken_seq, Some(6));
    let problem = r.problem.unwrap();
    assert!(
        problem.contains("the chain ends at entry 5") && problem.contains("were deleted"),
        "{problem}"
    );
}

#[test]
fn a_consistent_rewrite_is_caught_and_placed_between_two_anchors() {
    let k = key();
    let anchors = [
        k.anchor(3, &hash(3), at("2026-12-07T10:00:00Z")),
        k.anchor(6, &hash(6), at("2026-12-07T10:05:00Z")),
        k.anchor(9, &hash(9), at("2026-12-07T10:10:00Z")),
    ];
    // Entry 5 was edited and every hash after it recomputed.
    let mut rewritten = chain(10);
    for seq in 5..=10 {
        rewritten.insert(seq, hash(1000 + seq));
    }
    let r = check(&named(&anchors), None, 10, &rewritten);
    assert!(!r.ok);
    assert_eq!(r.first_broken_seq, Some(6));
    assert_eq!(r.anchors_checked, 1);
    let problem = r.problem.unwrap();
    assert!(
        problem.contains("rewritten from an entry between 4 and 6"),
        "{problem}"
    );
}

#[test]
fn forged_unreadable_and_foreign_anchors_fail() {
    let k = key();
    let good = k.anchor(3, &hash(3), at("2026-12-07T10:00:00Z"));
    let mut forged = good.clone();
    forged.seq = 2;
    forged.hash = hash(2);
    let r = check(&named(&[forged]), None, 8, &chain(8));
    assert!(r.problem.unwrap().contains("forged or altered"));

    let unreadable = vec![("anchor-x.json".to_string(), Err("not JSON".to_string()))];
    let r = check(&unreadable, None, 8, &chain(8));
    assert!(r.problem.unwrap().contains("anchor-x.json cannot be read"));

    let stranger = key().public();
    let r = check(&named(&[good]), Some(&stranger), 8, &chain(8));
    let problem = r.problem.unwrap();
    assert!(problem.contains("not by the given public key"), "{problem}");
}

#[test]
fn no_anchors_is_a_failure_unless_the_chain_is_empty() {
    let r = check(&[], None, 4, &chain(4));
    assert!(!r.ok && r.problem.unwrap().contains("no anchors"));
    assert!(check(&[], None, 0, &chain(0)).ok);
}

#[test]
fn anchor_files_are_written_once_and_read_back_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("anchors");
    let k = key();
    let a10 = k.anchor(10, &hash(10), at("2026-12-07T10:00:00Z"));
    let a2 = k.anchor(2, &hash(2), at("2026-12-07T09:00:00Z"));
    let path = dir::write(&d, &a10).unwrap();
    assert_eq!(path, d.join("anchor-00000000000000000010.json"));
    dir::write(&d, &a2).unwrap();
    // The same anchor again (a second daemon) is fine; a different one for
    // the same entry is refused and the file is left as it was.
    dir::write(&d, &a10).unwrap();
    let other = k.anchor(10, &hash(11), at("2026-12-07T10:00:00Z"));
    assert!(matches!(
        dir::write(&d, &other),
        Err(AnchorError::Conflict { seq: 10, .. })
    ));
    std::fs::write(d.join("notes.txt"), "not an anchor").unwrap();
    let all = dir::read_all(&d).unwrap();
    let seqs: Vec<i64> = all.iter().map(|(_, a)| a.as_ref().unwrap().seq).collect();
    assert_eq!(seqs, vec![2, 10]);
    assert_eq!(dir::newest(&d).unwrap().unwrap().1.unwrap(), a10);
    // No temporary file is left behind.
    let files = std::fs::read_dir(&d).unwrap().count();
    assert_eq!(files, 3);
    assert!(
        dir::read_all(&tmp.path().join("missing"))
            .unwrap()
            .is_empty()
    );
}
