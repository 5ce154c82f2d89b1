//! `castsync keygen` through the real binary: a private file, exactly the recipient on
//! stdout, never an overwrite, never the secret in any output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::TempDir;

use crate::support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The `AGE-SECRET-KEY-1…` line of an identity file.
fn secret_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("identity file has a secret key line")
        .to_owned()
}

#[test]
fn keygen_writes_a_private_identity_to_the_default_path_and_prints_only_its_recipient() {
    let home = TempDir::new().unwrap();
    let out = castsync(home.path())
        .args(["keygen", "-vvv"])
        .assert()
        .success();
    let (stdout, stderr) = (
        String::from_utf8(out.get_output().stdout.clone()).unwrap(),
        String::from_utf8(out.get_output().stderr.clone()).unwrap(),
    );

    let path = home.path().join(".config/castsync/keys.txt");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&home.path().join(".config/castsync")), 0o700);
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout is exactly one line: {stdout:?}"
    );
    let recipient = stdout.trim_end_matches('\n');
    assert!(recipient.starts_with("age1"), "{stdout:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines()
            .any(|l| l == format!("# public key: {recipient}")),
        "the printed recipient matches the file's `# public key:` line:\n{stdout}"
    );
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    let secret = secret_line(&path);
    assert_no_canary("stdout", &stdout, &[&secret, "AGE-SECRET-KEY"]);
    assert_no_canary("stderr", &stderr, &[&secret, "AGE-SECRET-KEY"]);
}

#[test]
fn keygen_with_output_writes_to_that_file_creating_its_directory() {
    let home = TempDir::new().unwrap();
    let path = home.path().join("keys/ci/identity.txt");
    let out = castsync(home.path())
        .args(["keygen", "-o"])
        .arg(&path)
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&home.path().join("keys/ci")), 0o700);
    assert!(!home.path().join(".config/castsync/keys.txt").exists());

    // The printed recipient really is the file's: what is encrypted to it decrypts with it.
    let recipient = castsync::crypto::parse_recipient(stdout.trim()).unwrap();
    let ciphertext = castsync::crypto::encrypt(b"agent: a\n", &[recipient]).unwrap();
    let env = castsync::crypto::Env {
        home: Some(home.path().to_owned()),
        ..Default::default()
    };
    let ids =
        castsync::crypto::Identities::discover_with(std::slice::from_ref(&path), &env).unwrap();
    let plaintext = ids.decrypt(&ciphertext, Path::new("x.age")).unwrap();
    assert_eq!(plaintext.as_slice(), b"agent: a\n");
}

#[test]
fn keygen_refuses_to_overwrite_an_existing_file() {
    let home = TempDir::new().unwrap();
    let path = home.path().join("keys.txt");
    castsync(home.path())
        .args(["keygen", "-o"])
        .arg(&path)
        .assert()
        .success();
    let before = std::fs::read(&path).unwrap();

    let out = castsync(home.path())
        .args(["keygen", "-o"])
        .arg(&path)
        .assert()
        .code(1);
    let output = out.get_output();
    assert!(output.stdout.is_empty(), "nothing on stdout when refusing");
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert!(
        stderr.contains(&format!("{} already exists", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("castsync keygen -o FILE"), "{stderr}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the existing identity is unchanged"
    );
    assert_eq!(
        std::fs::read_dir(home.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
    assert_no_canary("stderr", &stderr, &[&secret_line(&path)]);
}

#[test]
fn keygen_refuses_to_overwrite_the_default_identity() {
    let home = TempDir::new().unwrap();
    castsync(home.path()).arg("keygen").assert().success();
    let path = home.path().join(".config/castsync/keys.txt");
    let before = std::fs::read(&path).unwrap();
    castsync(home.path()).arg("keygen").assert().code(1);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn keygen_never_writes_the_secret_to_stdout() {
    let home = TempDir::new().unwrap();
    castsync(home.path())
        .args(["keygen", "-o", "-"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicates::str::contains("`-o -` is not supported"));
}

#[test]
fn keygen_quiet_prints_the_recipient_and_no_note() {
    let home = TempDir::new().unwrap();
    let out = castsync(home.path())
        .args(["-q", "keygen"])
        .assert()
        .success();
    let output = out.get_output();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("age1"));
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
