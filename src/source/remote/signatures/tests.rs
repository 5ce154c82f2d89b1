use ssh_key::private::Ed25519Keypair;
use ssh_key::{LineEnding, PrivateKey};

use super::*;

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().expect("encode public key")
}

fn signers(text: &str) -> AllowedSigners {
    AllowedSigners::parse(text, Path::new("allowed_signers")).expect("parse allowed_signers")
}

fn sign(key: &PrivateKey, namespace: &str, msg: &[u8]) -> Vec<u8> {
    key.sign(namespace, HashAlg::Sha512, msg)
        .expect("sign")
        .to_pem(LineEnding::LF)
        .expect("armor")
        .into_bytes()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

const BODY: &[u8] =
    b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor t <t@example.com> 0 +0000\n\nmsg\n";

#[test]
fn a_signature_by_an_allowed_key_verifies_and_names_the_principal() {
    let alice = key(1);
    let list = signers(&format!(
        "# team\n\nalice@example.com {}\n",
        public_line(&alice)
    ));
    let ok = list
        .verify("abc", &sign(&alice, "git", BODY), BODY, now())
        .expect("verifies");
    assert_eq!(ok.principal, "alice@example.com");
    assert!(ok.fingerprint.starts_with("SHA256:"), "{}", ok.fingerprint);
}

#[test]
fn a_signature_by_another_key_is_rejected_with_its_fingerprint() {
    let (alice, mallory) = (key(1), key(2));
    let list = signers(&format!("alice@example.com {}\n", public_line(&alice)));
    let err = list
        .verify("abc123", &sign(&mallory, "git", BODY), BODY, now())
        .unwrap_err();
    let fp = mallory
        .public_key()
        .fingerprint(HashAlg::Sha256)
        .to_string();
    assert!(matches!(&err, Rejection::NotAllowed { fingerprint, .. } if *fingerprint == fp));
    let msg = err.to_string();
    assert!(msg.contains("abc123") && msg.contains(&fp), "{msg}");
}

#[test]
fn a_signature_over_other_content_does_not_verify() {
    let alice = key(1);
    let list = signers(&format!("alice@example.com {}\n", public_line(&alice)));
    let sig = sign(&alice, "git", BODY);
    let err = list.verify("abc", &sig, b"tampered", now()).unwrap_err();
    assert!(matches!(err, Rejection::BadSignature { .. }), "{err}");
}

#[test]
fn a_signature_in_another_namespace_does_not_verify() {
    let alice = key(1);
    let list = signers(&format!("alice@example.com {}\n", public_line(&alice)));
    let err = list
        .verify("abc", &sign(&alice, "file", BODY), BODY, now())
        .unwrap_err();
    assert!(matches!(err, Rejection::BadSignature { .. }), "{err}");
}

#[test]
fn a_line_whose_namespaces_exclude_git_does_not_allow_commits() {
    let alice = key(1);
    let list = signers(&format!(
        "alice@example.com namespaces=\"file,email\" {}\n",
        public_line(&alice)
    ));
    let err = list
        .verify("abc", &sign(&alice, "git", BODY), BODY, now())
        .unwrap_err();
    assert!(matches!(err, Rejection::NotAllowed { .. }), "{err}");

    let list = signers(&format!(
        "alice@example.com namespaces=\"g*\" {}\n",
        public_line(&alice)
    ));
    assert!(
        list.verify("abc", &sign(&alice, "git", BODY), BODY, now())
            .is_ok()
    );
}

#[test]
fn validity_bounds_are_checked_against_the_commit_time() {
    let alice = key(1);
    let list = signers(&format!(
        "alice@example.com valid-after=20240101,valid-before=\"20250101Z\" {}\n",
        public_line(&alice)
    ));
    let sig = sign(&alice, "git", BODY);
    let inside = time::macros::datetime!(2024-06-01 12:00 UTC);
    let after = time::macros::datetime!(2025-06-01 12:00 UTC);
    assert!(list.verify("abc", &sig, BODY, inside).is_ok());
    assert!(matches!(
        list.verify("abc", &sig, BODY, after),
        Err(Rejection::NotAllowed { .. })
    ));
}

#[test]
fn unsigned_and_openpgp_signatures_are_named_as_such() {
    let list = signers(&format!("a {}\n", public_line(&key(1))));
    let pgp = b"-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";
    let err = list.verify("abc", pgp, BODY, now()).unwrap_err();
    assert!(err.to_string().contains("OpenPGP"), "{err}");
    let bad = b"-----BEGIN SSH SIGNATURE-----\nnot base64!\n-----END SSH SIGNATURE-----\n";
    assert!(matches!(
        list.verify("abc", bad, BODY, now()),
        Err(Rejection::Malformed { .. })
    ));
}

#[test]
fn parsing_accepts_several_principals_options_and_comments() {
    let (a, b) = (key(1), key(2));
    let text = format!(
        "alice@example.com,\"bob@example.com\" {} alice laptop\n  # indented comment\nci@example.com namespaces=\"git\" {}\n",
        public_line(&a),
        public_line(&b)
    );
    let list = signers(&text);
    assert_eq!(list.len(), 2);
    let ok = list
        .verify("c", &sign(&b, "git", BODY), BODY, now())
        .unwrap();
    assert_eq!(ok.principal, "ci@example.com");
}

#[test]
fn parsing_errors_name_the_file_and_line() {
    let cases = [
        ("alice@example.com\n", "missing key type"),
        ("alice@example.com ssh-ed25519\n", "missing base64"),
        (
            "alice@example.com ssh-ed25519 AAAAnotakey\n",
            "cannot parse",
        ),
        (
            "alice@example.com bogus=1 ssh-ed25519 AAAA\n",
            "unknown option",
        ),
        ("alice@example.com notakeytype AAAA\n", "unknown option"),
        (
            "alice@example.com cert-authority ssh-ed25519 AAAA\n",
            "not supported",
        ),
        (
            "alice@example.com valid-after=2024 ssh-ed25519 AAAA\n",
            "invalid time",
        ),
    ];
    for (text, want) in cases {
        let text = format!("# ok\n{text}");
        let err = AllowedSigners::parse(&text, Path::new("signers")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("signers:2: "), "{msg}");
        assert!(msg.contains(want), "{text:?}: {msg}");
    }
}

#[test]
fn a_file_without_keys_is_refused() {
    let err = AllowedSigners::parse("# nothing\n\n", Path::new("signers")).unwrap_err();
    assert!(matches!(err, SignersError::Empty { .. }), "{err}");
}

#[test]
fn pattern_lists_follow_ssh_config_rules() {
    assert!(pattern_list_matches("git", "git"));
    assert!(pattern_list_matches("file,git", "git"));
    assert!(pattern_list_matches("*", "git"));
    assert!(!pattern_list_matches("*,!git", "git"));
    assert!(!pattern_list_matches("file", "git"));
}

/// A commit built with git2 and signed in-process, as `git commit -S` with gpg.format=ssh
/// would store it.
fn signed_commit(repo: &git2::Repository, signer: Option<&PrivateKey>) -> git2::Oid {
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let tree_id = repo.treebuilder(None).unwrap().write().unwrap();
    let tree = repo.find_tree(tree_id).unwrap();
    let buf = repo
        .commit_create_buffer(&sig, &sig, "signed", &tree, &[])
        .unwrap();
    let content = buf.as_str().unwrap().to_owned();
    match signer {
        Some(k) => {
            let armored = String::from_utf8(sign(k, "git", content.as_bytes())).unwrap();
            repo.commit_signed(&content, &armored, None).unwrap()
        }
        None => repo
            .commit(None, &sig, &sig, "unsigned", &tree, &[])
            .unwrap(),
    }
}

#[test]
fn commits_are_verified_over_the_object_without_the_signature_header() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init_bare(dir.path()).unwrap();
    let alice = key(1);
    let list = signers(&format!("alice@example.com {}\n", public_line(&alice)));

    let good = signed_commit(&repo, Some(&alice));
    assert_eq!(
        list.verify_commit(&repo, good).unwrap().principal,
        "alice@example.com"
    );
    let other = signed_commit(&repo, Some(&key(3)));
    assert!(matches!(
        list.verify_commit(&repo, other),
        Err(Rejection::NotAllowed { .. })
    ));
    let unsigned = signed_commit(&repo, None);
    let err = list.verify_commit(&repo, unsigned).unwrap_err();
    assert!(matches!(err, Rejection::Unsigned { .. }), "{err}");
    assert!(err.to_string().contains(&unsigned.to_string()), "{err}");
}
