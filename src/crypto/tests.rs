//! Unit tests for the crypto layer: round trips, armor handling, the search chain and its
//! error messages. ssh keys are made with the real `ssh-keygen`; a test that needs it skips
//! with one line when it is missing (and fails with `CI` set), through the integration tests'
//! shared helper.

use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::{ExposeSecret, SecretString};
use tempfile::TempDir;

use super::*;

#[path = "../../tests/support/tools.rs"]
mod tools;

const CANARY: &str = "canary-7f3a91-do-not-print";

/// A fresh age identity: (file text, recipient).
fn age_key() -> (String, Recipient) {
    let (text, recipient) = generate_identity();
    (
        text.expose_secret().to_owned(),
        parse_recipient(&recipient).unwrap(),
    )
}

fn write_key(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    set_mode(&path, 0o600);
    path
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Makes an OpenSSH key pair with ssh-keygen; returns (private key path, public line), or None
/// (after a skip line) when ssh-keygen is not installed.
fn ssh_key(dir: &Path, kind: &str, passphrase: &str) -> Option<(PathBuf, String)> {
    let ssh_keygen = tools::tool("ssh-keygen")?;
    let path = dir.join(format!("id_{kind}"));
    let mut cmd = Command::new(ssh_keygen);
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", "alice@test", "-f"])
        .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd
        .output()
        .expect("ssh-keygen must be installed (openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    Some((path, public.trim().to_owned()))
}

/// An environment with nothing set and a home directory that holds no identity.
fn empty_env(home: &Path) -> Env {
    Env {
        home: Some(home.to_owned()),
        ..Env::default()
    }
}

fn env_with_key(home: &Path, key_text: &str) -> Env {
    Env {
        age_key: Some(SecretString::from(key_text.to_owned())),
        ..empty_env(home)
    }
}

fn decrypt_ok(ids: &Identities, ciphertext: &[u8]) -> Vec<u8> {
    ids.decrypt(ciphertext, Path::new("agents/a/secrets.yaml.age"))
        .expect("decrypts")
        .to_vec()
}

/// A failed decryption's message, then its hint on a line of its own (as the printers show
/// them).
fn decrypt_err(ids: &Identities, ciphertext: &[u8]) -> String {
    shown(
        &ids.decrypt(ciphertext, Path::new("agents/a/secrets.yaml.age"))
            .expect_err("must fail"),
    )
}

/// An error's message and, on the next line, `hint: …`.
fn shown(e: &CryptoError) -> String {
    use crate::hint::Hinted as _;
    match e.hint() {
        Some(hint) => format!("{e}\nhint: {hint}"),
        None => e.to_string(),
    }
}

/// The manifest encrypted to `recipient` without armor.
fn binary(recipient: &Recipient) -> Vec<u8> {
    use std::io::Write;
    let encryptor = age::Encryptor::with_recipients(std::iter::once(
        recipient.as_age().ok().expect("a native recipient"),
    ))
    .unwrap();
    let mut out = Vec::new();
    let mut writer = encryptor.wrap_output(&mut out).unwrap();
    writer.write_all(&manifest()).unwrap();
    writer.finish().unwrap();
    out
}

fn manifest() -> Vec<u8> {
    format!("agent: a\nsecrets:\n  TOKEN: {CANARY}\n").into_bytes()
}

#[test]
fn round_trip_with_an_x25519_identity_and_armored_output() {
    let home = TempDir::new().unwrap();
    let (text, recipient) = age_key();
    let ciphertext = encrypt(&manifest(), &[recipient]).unwrap();
    let armored = String::from_utf8(ciphertext.clone()).expect("armor is text");
    assert!(
        armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
        "{armored}"
    );
    assert!(
        armored.ends_with("-----END AGE ENCRYPTED FILE-----\n"),
        "{armored}"
    );
    assert!(!armored.contains(CANARY));

    let ids = Identities::discover_with(&[], &env_with_key(home.path(), &text)).unwrap();
    assert_eq!(decrypt_ok(&ids, &ciphertext), manifest());
}

#[test]
fn round_trip_with_an_ssh_ed25519_key() {
    let dir = TempDir::new().unwrap();
    let Some((private, public)) = ssh_key(dir.path(), "ed25519", "") else {
        return;
    };
    let recipient = parse_recipient(&public).unwrap();
    assert_eq!(recipient.kind(), RecipientKind::SshEd25519);
    assert_eq!(recipient.comment(), Some("alice@test"));
    let ciphertext = encrypt(&manifest(), std::slice::from_ref(&recipient)).unwrap();

    let ids = Identities::discover_with(&[private], &empty_env(dir.path())).unwrap();
    assert_eq!(ids.recipients(), vec![recipient.as_str().to_owned()]);
    assert_eq!(decrypt_ok(&ids, &ciphertext), manifest());
}

#[test]
fn round_trip_with_an_ssh_rsa_key() {
    let dir = TempDir::new().unwrap();
    let Some((private, public)) = ssh_key(dir.path(), "rsa", "") else {
        return;
    };
    let recipient = parse_recipient(&public).unwrap();
    assert_eq!(recipient.kind(), RecipientKind::SshRsa);
    let ciphertext = encrypt(&manifest(), &[recipient]).unwrap();

    let ids = Identities::discover_with(&[private], &empty_env(dir.path())).unwrap();
    assert_eq!(decrypt_ok(&ids, &ciphertext), manifest());
}

#[test]
fn a_file_for_several_recipients_opens_with_any_of_them() {
    let home = TempDir::new().unwrap();
    let (alice_text, alice) = age_key();
    let (bob_text, bob) = age_key();
    let ciphertext = encrypt(&manifest(), &[alice.clone(), bob, alice]).unwrap();
    for text in [alice_text, bob_text] {
        let ids = Identities::discover_with(&[], &env_with_key(home.path(), &text)).unwrap();
        assert_eq!(decrypt_ok(&ids, &ciphertext), manifest());
    }
}

#[test]
fn files_of_one_repository_open_with_one_unwrap_attempt_each() {
    let home = TempDir::new().unwrap();
    let others: Vec<Recipient> = (0..4).map(|_| age_key().1).collect();
    let (text, mine) = age_key();
    // Two identities, the one that opens the files second, and our stanza last of five (age
    // appends a sixth, "grease" stanza): the first file costs the full search, 6 attempts
    // for the other key and 5 for ours.
    let (other_text, _) = age_key();
    let env = env_with_key(home.path(), &format!("{other_text}\n{text}"));
    let ids = Identities::discover_with(&[], &env).unwrap();
    assert_eq!(ids.len(), 2);
    let mut recipients = others.clone();
    recipients.push(mine.clone());
    for _ in 0..10 {
        let ciphertext = encrypt(&manifest(), &recipients).unwrap();
        assert_eq!(decrypt_ok(&ids, &ciphertext), manifest());
    }
    assert_eq!(
        ids.unwrap_attempts(),
        11 + 9,
        "full search once, then one per file"
    );

    // A file with another recipient order still opens (the full search runs again) …
    let mut shuffled = vec![mine.clone()];
    shuffled.extend(others.iter().cloned());
    let ciphertext = encrypt(&manifest(), &shuffled).unwrap();
    assert_eq!(decrypt_ok(&ids, &ciphertext), manifest());
    // … and a file not for us fails as it always did.
    let ciphertext = encrypt(&manifest(), &others).unwrap();
    let err = decrypt_err(&ids, &ciphertext);
    assert!(err.contains("none of your identities"), "{err}");
}

#[test]
fn binary_input_is_decrypted() {
    let home = TempDir::new().unwrap();
    let identity = age::x25519::Identity::generate();
    let binary = age::encrypt(&identity.to_public(), &manifest()).unwrap();
    assert!(binary.starts_with(b"age-encryption.org/v1\n"));
    let text = identity.to_string().expose_secret().to_owned();
    let ids = Identities::discover_with(&[], &env_with_key(home.path(), &text)).unwrap();
    assert_eq!(decrypt_ok(&ids, &binary), manifest());
}

#[test]
fn armored_input_after_blank_lines_and_indentation_is_decrypted() {
    let home = TempDir::new().unwrap();
    let (text, recipient) = age_key();
    let armored = encrypt(&manifest(), &[recipient]).unwrap();
    let ids = Identities::discover_with(&[], &env_with_key(home.path(), &text)).unwrap();
    for prefix in ["\n\n", "  \t", "\r\n \n", "\u{feff}", "\u{feff}\n  "] {
        let mut input = prefix.as_bytes().to_vec();
        input.extend_from_slice(&armored);
        assert_eq!(decrypt_ok(&ids, &input), manifest(), "prefix {prefix:?}");
    }
}

#[test]
fn armored_input_with_crlf_line_endings_is_decrypted() {
    let home = TempDir::new().unwrap();
    let (text, recipient) = age_key();
    let armored = String::from_utf8(encrypt(&manifest(), &[recipient]).unwrap()).unwrap();
    let crlf = armored.replace('\n', "\r\n");
    let ids = Identities::discover_with(&[], &env_with_key(home.path(), &text)).unwrap();
    assert_eq!(decrypt_ok(&ids, crlf.as_bytes()), manifest());
}

#[test]
fn a_file_for_someone_else_lists_every_location_tried_and_asks_for_a_rekey() {
    let home = TempDir::new().unwrap();
    let (_, alice) = age_key();
    let (bob_text, bob) = age_key();
    let bob_file = write_key(home.path(), "bob.txt", &bob_text);
    let ciphertext = encrypt(&manifest(), &[alice]).unwrap();

    let env = Env {
        age_key_file: Some(bob_file.clone()),
        ..empty_env(home.path())
    };
    let ids = Identities::discover_with(&[], &env).unwrap();
    let msg = decrypt_err(&ids, &ciphertext);
    assert!(
        msg.starts_with("cannot decrypt agents/a/secrets.yaml.age: none of your identities"),
        "{msg}"
    );
    assert!(msg.contains("CASTSYNC_AGE_KEY: not set"), "{msg}");
    assert!(
        msg.contains(&format!(
            "CASTSYNC_AGE_KEY_FILE={}: loaded 1 identity",
            bob_file.display()
        )),
        "{msg}"
    );
    let default = home.path().join(".config/castsync/keys.txt");
    assert!(
        msg.contains(&format!("{}: not found", default.display())),
        "{msg}"
    );
    assert!(msg.contains(&format!("your public keys: {bob}")), "{msg}");
    assert!(
        msg.ends_with("\nhint: ask a recipient of this file to add your public key to castsync.yaml and run `castsync rekey`"),
        "{msg}"
    );
    assert!(
        !msg.contains("AGE-SECRET-KEY") && !msg.contains(CANARY),
        "{msg}"
    );
}

#[test]
fn the_error_names_the_recipients_the_file_needs_when_they_are_known() {
    let home = TempDir::new().unwrap();
    let (_, alice) = age_key();
    let (bob_text, _) = age_key();
    let ciphertext = encrypt(&manifest(), std::slice::from_ref(&alice)).unwrap();
    let ids = Identities::discover_with(&[], &env_with_key(home.path(), &bob_text)).unwrap();
    let needs = vec![alice.to_string()];
    let msg = shown(
        &ids.decrypt_hinted(&ciphertext, Path::new("x.age"), Some(&needs))
            .unwrap_err(),
    );
    assert!(
        msg.contains(&format!("this file is encrypted to: {alice}\nhint: ")),
        "{msg}"
    );
    assert!(
        msg.ends_with(
            "\nhint: ask one of them to add your public key to castsync.yaml and run `castsync rekey`"
        ),
        "{msg}"
    );
}

#[test]
fn with_no_identity_anywhere_the_error_says_none_was_found_and_where_it_looked() {
    let home = TempDir::new().unwrap();
    let (_, alice) = age_key();
    let ciphertext = encrypt(&manifest(), &[alice]).unwrap();
    let ids = Identities::discover_with(&[], &empty_env(home.path())).unwrap();
    assert!(ids.is_empty());
    let msg = decrypt_err(&ids, &ciphertext);
    assert!(
        msg.starts_with("cannot decrypt agents/a/secrets.yaml.age: no identity found"),
        "{msg}"
    );
    for line in [
        "CASTSYNC_AGE_KEY: not set".to_owned(),
        "CASTSYNC_AGE_KEY_FILE: not set".to_owned(),
        format!(
            "{}: not found",
            home.path().join(".config/castsync/keys.txt").display()
        ),
    ] {
        assert!(msg.contains(&line), "missing {line:?} in:\n{msg}");
    }
    // A newcomer's way comes first (tests/first_hour.rs checks its order through the binary).
    assert!(msg.contains("\nhint: new here? `castsync keygen`"), "{msg}");
    assert!(
        msg.contains("`castsync rekey`. Your key is elsewhere?"),
        "{msg}"
    );
}

#[test]
fn a_truncated_file_is_not_a_valid_age_file_and_is_named() {
    let home = TempDir::new().unwrap();
    let (text, recipient) = age_key();
    let ids = Identities::discover_with(&[], &env_with_key(home.path(), &text)).unwrap();
    let armored = encrypt(&manifest(), std::slice::from_ref(&recipient)).unwrap();
    let binary = binary(&recipient);

    let cut_armor = &armored[..armored.len() / 2];
    let cut_binary = &binary[..binary.len() - 10];
    let cut_header = &binary[..30];
    for (what, input) in [
        ("armor", cut_armor),
        ("binary", cut_binary),
        ("header", cut_header),
        ("empty", &b""[..]),
    ] {
        let msg = decrypt_err(&ids, input);
        assert!(
            msg.starts_with("agents/a/secrets.yaml.age is not a valid age file or is truncated"),
            "{what}: {msg}"
        );
    }
}

#[test]
fn a_garbled_file_is_not_a_valid_age_file() {
    let home = TempDir::new().unwrap();
    let (text, recipient) = age_key();
    let ids = Identities::discover_with(&[], &env_with_key(home.path(), &text)).unwrap();
    let mut binary = binary(&recipient);
    let last = binary.len() - 1;
    binary[last] ^= 0x55;
    let flipped = decrypt_err(&ids, &binary);
    assert!(flipped.contains("not a valid age file"), "{flipped}");
    assert!(flipped.contains("does not authenticate"), "{flipped}");

    let noise = decrypt_err(
        &ids,
        b"this is just some text that someone saved by mistake\n",
    );
    assert!(noise.contains("not a valid age file"), "{noise}");

    let mut armored = encrypt(&manifest(), &[recipient]).unwrap();
    armored[40] = b'*';
    let bad_armor = decrypt_err(&ids, &armored);
    assert!(bad_armor.contains("not a valid age file"), "{bad_armor}");
    for msg in [flipped, noise, bad_armor] {
        assert!(!msg.contains(CANARY), "{msg}");
    }
}

#[test]
fn a_passphrase_encrypted_file_is_refused_with_its_own_message() {
    let home = TempDir::new().unwrap();
    let (text, _) = age_key();
    let ids = Identities::discover_with(&[], &env_with_key(home.path(), &text)).unwrap();
    let mut scrypt = age::scrypt::Recipient::new(SecretString::from("pw".to_owned()));
    scrypt.set_work_factor(2);
    let ciphertext = age::encrypt(&scrypt, &manifest()).unwrap();
    assert!(decrypt_err(&ids, &ciphertext).contains("is encrypted with a passphrase"));
}

#[test]
fn every_source_of_the_chain_is_loaded_in_order() {
    let home = TempDir::new().unwrap();
    let (flag_text, flag_recipient) = age_key();
    let (env_text, env_recipient) = age_key();
    let (file_text, file_recipient) = age_key();
    let (cmd_text, cmd_recipient) = age_key();
    let (default_text, default_recipient) = age_key();
    let flag = write_key(home.path(), "flag.txt", &flag_text);
    let key_file = write_key(home.path(), "file.txt", &file_text);
    let cmd_file = write_key(home.path(), "vault.txt", &cmd_text);
    std::fs::create_dir_all(home.path().join(".config/castsync")).unwrap();
    write_key(home.path(), ".config/castsync/keys.txt", &default_text);

    let env = Env {
        age_key_file: Some(key_file),
        age_key_cmd: Some(format!("cat '{}'", cmd_file.display())),
        ..env_with_key(home.path(), &env_text)
    };
    let ids = Identities::discover_with(&[flag], &env).unwrap();
    assert_eq!(
        ids.recipients(),
        vec![
            flag_recipient.to_string(),
            env_recipient.to_string(),
            file_recipient.to_string(),
            cmd_recipient.to_string(),
            default_recipient.to_string()
        ]
    );
    let outcomes: Vec<_> = ids.attempts().iter().map(|a| a.outcome.clone()).collect();
    assert_eq!(outcomes, vec![Outcome::Loaded(1); 5]);
    assert_eq!(ids.attempts()[3].source, Source::EnvKeyCmd);
    // A file encrypted to any one of them opens.
    for r in [file_recipient, default_recipient] {
        let ct = encrypt(&manifest(), &[r]).unwrap();
        assert!(ids.decrypt(&ct, Path::new("x.age")).is_ok());
    }
}

#[test]
fn the_key_file_is_tried_before_the_default_file_and_xdg_config_home_is_honoured() {
    let home = TempDir::new().unwrap();
    let xdg = home.path().join("xdg");
    std::fs::create_dir_all(xdg.join("castsync")).unwrap();
    let (default_text, default_recipient) = age_key();
    write_key(&xdg, "castsync/keys.txt", &default_text);
    let env = Env {
        xdg_config_home: Some(xdg.clone()),
        ..empty_env(home.path())
    };
    assert_eq!(
        env.default_identity_path(),
        Some(xdg.join("castsync/keys.txt"))
    );
    let ids = Identities::discover_with(&[], &env).unwrap();
    assert_eq!(ids.recipients(), vec![default_recipient.to_string()]);

    let (file_text, file_recipient) = age_key();
    let env = Env {
        age_key_file: Some(write_key(home.path(), "k.txt", &file_text)),
        ..env
    };
    let ids = Identities::discover_with(&[], &env).unwrap();
    assert_eq!(
        ids.recipients(),
        vec![file_recipient.to_string(), default_recipient.to_string()]
    );
}

#[test]
fn a_relative_xdg_config_home_is_ignored() {
    let env = Env {
        home: Some(PathBuf::from("/home/u")),
        xdg_config_home: Some(PathBuf::from("relative")),
        ..Env::default()
    };
    assert_eq!(
        env.default_identity_path(),
        Some(PathBuf::from("/home/u/.config/castsync/keys.txt"))
    );
}

#[test]
fn an_empty_castsync_age_key_counts_as_unset() {
    let home = TempDir::new().unwrap();
    let (default_text, default_recipient) = age_key();
    std::fs::create_dir_all(home.path().join(".config/castsync")).unwrap();
    write_key(home.path(), ".config/castsync/keys.txt", &default_text);
    let ids = Identities::discover_with(&[], &env_with_key(home.path(), "  \n")).unwrap();
    assert_eq!(ids.attempts()[0].outcome, Outcome::Empty);
    assert_eq!(ids.recipients(), vec![default_recipient.to_string()]);
}

#[test]
fn an_identity_file_with_a_byte_order_mark_and_crlf_lines_loads() {
    let home = TempDir::new().unwrap();
    let (text, recipient) = age_key();
    let windows = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    let path = write_key(home.path(), "keys.txt", &windows);
    let ids = Identities::discover_with(&[path], &empty_env(home.path())).unwrap();
    assert_eq!(ids.recipients(), vec![recipient.to_string()]);
}

#[test]
fn an_unreadable_default_file_is_recorded_but_an_unreadable_i_file_is_an_error() {
    let home = TempDir::new().unwrap();
    let default = home.path().join(".config/castsync/keys.txt");
    std::fs::create_dir_all(&default).unwrap();
    let ids = Identities::discover_with(&[], &empty_env(home.path())).unwrap();
    let last = ids.attempts().last().unwrap();
    assert_eq!(
        last.outcome,
        Outcome::Unreadable("is a directory".to_owned())
    );
    assert_eq!(ids.warnings().len(), 1, "{:?}", ids.warnings());

    let msg = Identities::discover_with(std::slice::from_ref(&default), &empty_env(home.path()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!(
            "cannot read identity file {} (from -i)",
            default.display()
        )),
        "{msg}"
    );
}

#[test]
fn a_missing_identity_file_named_with_i_is_an_error() {
    let home = TempDir::new().unwrap();
    let missing = home.path().join("nope.txt");
    let err = Identities::discover_with(std::slice::from_ref(&missing), &empty_env(home.path()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "identity file {} (from -i) does not exist",
            missing.display()
        )),
        "{msg}"
    );
}

#[test]
fn a_group_readable_identity_file_gets_a_chmod_600_warning() {
    let home = TempDir::new().unwrap();
    let (text, _) = age_key();
    let path = write_key(home.path(), "shared.txt", &text);
    set_mode(&path, 0o640);
    let ids =
        Identities::discover_with(std::slice::from_ref(&path), &empty_env(home.path())).unwrap();
    assert_eq!(ids.warnings().len(), 1, "{:?}", ids.warnings());
    let warning = &ids.warnings()[0];
    assert!(warning.contains(&path.display().to_string()), "{warning}");
    assert!(warning.contains("chmod 600"), "{warning}");

    set_mode(&path, 0o600);
    let ids = Identities::discover_with(&[path], &empty_env(home.path())).unwrap();
    assert!(ids.warnings().is_empty(), "{:?}", ids.warnings());
}

#[test]
fn a_passphrase_protected_ssh_key_is_refused_with_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let Some((private, _)) = ssh_key(dir.path(), "ed25519", "correct horse") else {
        return;
    };
    let msg = shown(
        &Identities::discover_with(std::slice::from_ref(&private), &empty_env(dir.path()))
            .unwrap_err(),
    );
    assert!(msg.contains(&private.display().to_string()), "{msg}");
    assert!(
        msg.contains("passphrase-protected keys are not supported"),
        "{msg}"
    );
    assert!(
        msg.contains("\nhint: use an age identity (`castsync keygen`)"),
        "{msg}"
    );
}

#[test]
fn an_identity_file_with_a_bad_line_names_the_line_and_never_its_content() {
    let home = TempDir::new().unwrap();
    let (text, _) = age_key();
    let bad = format!("{text}# a comment\n\n{CANARY}\n");
    let path = write_key(home.path(), "bad.txt", &bad);
    let msg = Identities::discover_with(&[path], &empty_env(home.path()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 6 is not an identity"), "{msg}");
    assert!(
        !msg.contains(CANARY) && !msg.contains("AGE-SECRET-KEY-1Q"),
        "{msg}"
    );

    let public_only = write_key(
        home.path(),
        "pub.txt",
        "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n",
    );
    let msg = Identities::discover_with(&[public_only], &empty_env(home.path()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 1 is a public recipient"), "{msg}");

    let comments = write_key(home.path(), "empty.txt", "# nothing here\n");
    let msg = Identities::discover_with(&[comments], &empty_env(home.path()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("contains no identity"), "{msg}");
}

#[test]
fn a_malformed_castsync_age_key_is_an_error_naming_the_variable_only() {
    let home = TempDir::new().unwrap();
    let msg = Identities::discover_with(&[], &env_with_key(home.path(), "AGE-SECRET-KEY-1CANARY"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("CASTSYNC_AGE_KEY is not a usable identity: line 1 is a malformed"),
        "{msg}"
    );
    assert!(!msg.contains("CANARY"), "{msg}");
}

#[test]
fn castsync_age_key_may_hold_an_openssh_private_key() {
    let dir = TempDir::new().unwrap();
    let Some((private, public)) = ssh_key(dir.path(), "ed25519", "") else {
        return;
    };
    let text = std::fs::read_to_string(private).unwrap();
    let ids = Identities::discover_with(&[], &env_with_key(dir.path(), &text)).unwrap();
    let recipient = parse_recipient(&public).unwrap();
    assert_eq!(ids.recipients(), vec![recipient.to_string()]);
    let ciphertext = encrypt(&manifest(), &[recipient]).unwrap();
    assert_eq!(decrypt_ok(&ids, &ciphertext), manifest());
}

#[test]
fn encrypting_with_no_recipients_points_at_castsync_yaml() {
    let msg = shown(&encrypt(&manifest(), &[]).unwrap_err());
    assert!(
        msg.starts_with("no recipients to encrypt to\nhint: "),
        "{msg}"
    );
    assert!(msg.contains("add `recipients:`"), "{msg}");
    assert!(msg.contains("castsync.yaml"), "{msg}");
}

#[test]
fn debug_output_of_identities_and_env_shows_no_key_material() {
    let home = TempDir::new().unwrap();
    let (text, _) = age_key();
    let env = env_with_key(home.path(), &text);
    let ids = Identities::discover_with(&[], &env).unwrap();
    for debug in [format!("{env:?}"), format!("{ids:?}")] {
        assert!(!debug.contains("AGE-SECRET-KEY"), "{debug}");
    }
}

#[test]
fn identities_can_be_shared_between_threads() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Identities>();
    is_send_sync::<CryptoError>();
}

#[test]
fn a_generated_identity_is_in_age_keygen_format() {
    let (text, recipient) = generate_identity();
    let lines: Vec<&str> = text.expose_secret().lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("# created: "));
    assert_eq!(lines[1], format!("# public key: {recipient}"));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
    assert!(recipient.starts_with("age1"));
    assert_eq!(parse_recipient(&recipient).unwrap().as_str(), recipient);
}

#[test]
fn write_new_identity_creates_a_private_file_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let home = TempDir::new().unwrap();
    let path = home.path().join("deep/er/keys.txt");
    let recipient = write_new_identity(&path).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&home.path().join("deep")), 0o700);
    let before = std::fs::read(&path).unwrap();

    let msg = write_new_identity(&path).unwrap_err().to_string();
    assert!(msg.contains("already exists"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");

    let ids = Identities::discover_with(&[path], &empty_env(home.path())).unwrap();
    assert_eq!(ids.recipients(), vec![recipient]);
}
