//! `castsync keygen` through the real binary: a private file, exactly the recipient on
//! stdout, never an overwrite, never the secret in any output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    let run = Test::new().args(["keygen", "-vvv"]).run().success();
    let path = run.home().join(".config/castsync/keys.txt");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&run.home().join(".config/castsync")), 0o700);
    let stdout = run.stdout();
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
    run.stderr_has(path.display().to_string())
        .no_canary(&[&secret_line(&path), "AGE-SECRET-KEY"]);
}

#[test]
fn keygen_with_output_writes_to_that_file_creating_its_directory() {
    let test = Test::new();
    let path = test.home().join("keys/ci/identity.txt");
    let run = test.args(["keygen", "-o"]).arg(&path).run().success();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&run.home().join("keys/ci")), 0o700);
    assert!(!run.home().join(".config/castsync/keys.txt").exists());

    // The printed recipient really is the file's: what is encrypted to it decrypts with it.
    let recipient = castsync::crypto::parse_recipient(run.stdout().trim()).unwrap();
    let ciphertext = castsync::crypto::encrypt(b"agent: a\n", &[recipient]).unwrap();
    let env = castsync::crypto::Env {
        home: Some(run.home().to_owned()),
        ..Default::default()
    };
    let ids =
        castsync::crypto::Identities::discover_with(std::slice::from_ref(&path), &env).unwrap();
    let plaintext = ids.decrypt(&ciphertext, Path::new("x.age")).unwrap();
    assert_eq!(plaintext.as_slice(), b"agent: a\n");
}

#[test]
fn keygen_refuses_to_overwrite_an_existing_file() {
    let home = tempfile::TempDir::new().unwrap();
    let path = home.path().join("keys.txt");
    Test::at_home(home.path())
        .args(["keygen", "-o"])
        .arg(&path)
        .run()
        .success();
    let before = std::fs::read(&path).unwrap();

    Test::at_home(home.path())
        .args(["keygen", "-o"])
        .arg(&path)
        .run()
        .failure()
        .stdout_is("")
        .stderr_has(format!("{} already exists", path.display()))
        .stderr_has("castsync keygen -o FILE")
        .no_canary(&[&secret_line(&path)]);
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
}

#[test]
fn keygen_refuses_to_overwrite_the_default_identity() {
    let home = tempfile::TempDir::new().unwrap();
    Test::at_home(home.path()).arg("keygen").run().success();
    let path = home.path().join(".config/castsync/keys.txt");
    let before = std::fs::read(&path).unwrap();
    Test::at_home(home.path()).arg("keygen").run().failure();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn keygen_never_writes_the_secret_to_stdout() {
    Test::new()
        .args(["keygen", "-o", "-"])
        .run()
        .failure()
        .stdout_is("")
        .stderr_has("`-o -` is not supported");
}

#[test]
fn keygen_quiet_prints_the_recipient_and_no_note() {
    let run = Test::new()
        .args(["-q", "keygen"])
        .run()
        .success()
        .stderr_is("");
    assert!(run.stdout().starts_with("age1"), "{}", run.stdout());
}
