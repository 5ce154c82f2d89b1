//! Interoperability with the reference age CLI (Debian's `age` 1.1.1 in CI): files castsync
//! writes open with `age -d`, and files `age` writes (armored or binary, to X25519 or
//! ssh-ed25519 keys) are read by castsync. These tests need `age`, `age-keygen` and
//! `ssh-keygen` on PATH: without them a test prints one `skipped:` line naming what to install,
//! and with `CI` set it fails (`support::tools`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use castsync::crypto::{Env, Identities, encrypt, parse_recipient, write_new_identity};
use tempfile::TempDir;

use crate::support::tools;

const PLAINTEXT: &str =
    "agent: support-bot\nsecrets:\n  OPENAI_API_KEY: canary-7f3a91-do-not-print\n";

/// Runs a tool, feeding `stdin`; fails the test with install advice when it is missing.
fn run(program: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// An identity made by `age-keygen`: (key file, recipient).
fn age_keygen(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("age-key.txt");
    run("age-keygen", &["-o", path_str(&key)], b"");
    let public = run("age-keygen", &["-y", path_str(&key)], b"");
    (key, String::from_utf8(public).unwrap().trim().to_owned())
}

/// An unencrypted ssh-ed25519 key made by `ssh-keygen`: (private key, public key file).
fn ssh_keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("id_ed25519");
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "ci@example",
            "-f",
            path_str(&key),
        ],
        b"",
    );
    let public = key.with_extension("pub");
    (key, public)
}

/// Identities from `-i` files only, with an empty home (no ambient keys).
fn identities(home: &Path, files: &[PathBuf]) -> Identities {
    let env = Env {
        home: Some(home.to_owned()),
        ..Env::default()
    };
    Identities::discover_with(files, &env).expect("identities load")
}

fn castsync_decrypt(home: &Path, key: &Path, ciphertext: &[u8]) -> String {
    let ids = identities(home, &[key.to_owned()]);
    let plaintext = ids
        .decrypt(ciphertext, Path::new("secrets.yaml.age"))
        .expect("castsync decrypts the file age wrote");
    String::from_utf8(plaintext.to_vec()).unwrap()
}

fn age_decrypt(dir: &Path, key: &Path, ciphertext: &[u8]) -> String {
    let file = dir.join("secrets.yaml.age");
    std::fs::write(&file, ciphertext).unwrap();
    let out = run("age", &["-d", "-i", path_str(key), path_str(&file)], b"");
    String::from_utf8(out).unwrap()
}

#[test]
fn the_reference_age_cli_is_installed() {
    let Some(_) = tools(&["age"]) else {
        return;
    };
    let version = run("age", &["--version"], b"");
    assert!(!version.is_empty(), "age --version printed nothing");
}

#[test]
fn a_file_castsync_writes_opens_with_age_d_and_an_age_keygen_key() {
    let Some(_) = tools(&["age", "age-keygen"]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (key, recipient) = age_keygen(dir.path());
    let ciphertext = encrypt(
        PLAINTEXT.as_bytes(),
        &[parse_recipient(&recipient).unwrap()],
    )
    .unwrap();
    assert!(ciphertext.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    assert_eq!(age_decrypt(dir.path(), &key, &ciphertext), PLAINTEXT);
}

#[test]
fn an_identity_castsync_keygen_writes_is_accepted_by_age() {
    let Some(_) = tools(&["age", "age-keygen"]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let key = dir.path().join("keys.txt");
    let recipient = write_new_identity(&key).unwrap();
    let public = run("age-keygen", &["-y", path_str(&key)], b"");
    assert_eq!(String::from_utf8(public).unwrap().trim(), recipient);
    let ciphertext = encrypt(
        PLAINTEXT.as_bytes(),
        &[parse_recipient(&recipient).unwrap()],
    )
    .unwrap();
    assert_eq!(age_decrypt(dir.path(), &key, &ciphertext), PLAINTEXT);
}

#[test]
fn an_armored_file_age_writes_to_an_x25519_recipient_is_read_by_castsync() {
    let Some(_) = tools(&["age", "age-keygen"]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (key, recipient) = age_keygen(dir.path());
    let ciphertext = run("age", &["-a", "-r", &recipient], PLAINTEXT.as_bytes());
    assert!(ciphertext.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    assert_eq!(castsync_decrypt(dir.path(), &key, &ciphertext), PLAINTEXT);
}

#[test]
fn a_binary_file_age_writes_to_an_x25519_recipient_is_read_by_castsync() {
    let Some(_) = tools(&["age", "age-keygen"]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (key, recipient) = age_keygen(dir.path());
    let ciphertext = run("age", &["-r", &recipient], PLAINTEXT.as_bytes());
    assert!(ciphertext.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(castsync_decrypt(dir.path(), &key, &ciphertext), PLAINTEXT);
}

#[test]
fn a_file_castsync_writes_to_an_ssh_ed25519_key_opens_with_age_d() {
    let Some(_) = tools(&["age", "ssh-keygen"]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (key, public) = ssh_keygen(dir.path());
    let line = std::fs::read_to_string(&public).unwrap();
    let ciphertext = encrypt(PLAINTEXT.as_bytes(), &[parse_recipient(&line).unwrap()]).unwrap();
    assert_eq!(age_decrypt(dir.path(), &key, &ciphertext), PLAINTEXT);
}

#[test]
fn files_age_writes_to_an_ssh_ed25519_key_are_read_by_castsync() {
    let Some(_) = tools(&["age", "ssh-keygen"]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (key, public) = ssh_keygen(dir.path());
    let armored = run(
        "age",
        &["-a", "-R", path_str(&public)],
        PLAINTEXT.as_bytes(),
    );
    assert_eq!(castsync_decrypt(dir.path(), &key, &armored), PLAINTEXT);
    let binary = run("age", &["-R", path_str(&public)], PLAINTEXT.as_bytes());
    assert_eq!(castsync_decrypt(dir.path(), &key, &binary), PLAINTEXT);
}

#[test]
fn a_file_castsync_writes_to_an_age_and_an_ssh_recipient_opens_with_either_key() {
    let Some(_) = tools(&["age", "age-keygen", "ssh-keygen"]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (age_key, recipient) = age_keygen(dir.path());
    let (ssh_key, public) = ssh_keygen(dir.path());
    let recipients = [
        parse_recipient(&recipient).unwrap(),
        parse_recipient(&std::fs::read_to_string(&public).unwrap()).unwrap(),
    ];
    let ciphertext = encrypt(PLAINTEXT.as_bytes(), &recipients).unwrap();
    assert_eq!(age_decrypt(dir.path(), &age_key, &ciphertext), PLAINTEXT);
    assert_eq!(age_decrypt(dir.path(), &ssh_key, &ciphertext), PLAINTEXT);
}

#[test]
fn a_file_age_writes_for_someone_else_gets_the_no_matching_identity_error() {
    let Some(_) = tools(&["age", "age-keygen"]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (_, stranger) = age_keygen(dir.path());
    let mine = dir.path().join("mine.txt");
    write_new_identity(&mine).unwrap();
    let ciphertext = run("age", &["-a", "-r", &stranger], PLAINTEXT.as_bytes());
    let err = identities(dir.path(), std::slice::from_ref(&mine))
        .decrypt(
            &ciphertext,
            Path::new("agents/support-bot/secrets.yaml.age"),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("agents/support-bot/secrets.yaml.age"), "{err}");
    assert!(
        err.contains(&format!("-i {}: loaded 1 identity", mine.display())),
        "{err}"
    );
    assert!(err.contains("castsync rekey"), "{err}");
    assert!(!err.contains("canary-7f3a91"), "{err}");
}
