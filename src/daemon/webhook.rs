//! GitHub-style webhook authentication: `X-Hub-Signature-256: sha256=<hex>` where the hex
//! is HMAC-SHA256 of the raw request body under a shared secret.
//!
//! The comparison is constant-time (`hmac`'s `verify_slice`), the secret never appears in
//! logs or errors, and an unauthenticated delivery never triggers anything.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use thiserror::Error;

/// The header GitHub (and Gitea, Forgejo) sign deliveries with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The `--webhook-secret-file` cannot be used.
#[derive(Debug, Error)]
pub enum SecretFileError {
    #[error("cannot read the webhook secret file {path}")]
    /// The file cannot be read.
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is empty (after trimming a trailing newline).
    #[error(
        "the webhook secret file {path} is empty\n  hint: write the secret you entered in the repository's webhook settings into it"
    )]
    Empty { path: PathBuf },
}

/// Why a delivery is refused (answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refused {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("malformed X-Hub-Signature-256 header (expected sha256=<64 hex digits>)")]
    Malformed,
    /// Well-formed, but not the HMAC of this body under our secret.
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// The shared secret (zeroized on drop, never printed).
#[derive(Clone)]
pub struct WebhookSecret(SecretSlice<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    pub fn new(bytes: Vec<u8>) -> WebhookSecret {
        WebhookSecret(SecretSlice::from(bytes))
    }

    /// Reads the secret from a file; one trailing newline (or CRLF) is not part of it.
    pub fn load(path: &Path) -> Result<WebhookSecret, SecretFileError> {
        let read = crate::fsread::read_secret_file(path, crate::fsread::MAX_KEY_FILE);
        let mut bytes = read
            .map_err(|e| SecretFileError::Io {
                path: path.to_owned(),
                source: match e {
                    crate::fsread::ReadError::Io { source, .. } => source,
                    refused => std::io::Error::other(refused.to_string()),
                },
            })?
            .to_vec();
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(SecretFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(WebhookSecret::new(bytes))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    /// Checks a delivery's signature header against its raw body.
    pub fn check(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), Refused> {
        let mut verifier = self.verifier(header)?;
        verifier.update(body);
        verifier.finish()
    }

    /// Starts checking a delivery whose body arrives in pieces: the header is judged at once
    /// (a missing or malformed one is refused before any of the body is read), then the HMAC
    /// is computed as the body streams in, so the body never has to be held to be checked.
    pub fn verifier(&self, header: Option<&[u8]>) -> Result<Verifier, Refused> {
        let header = header.ok_or(Refused::Missing)?;
        let hex_digest = header.strip_prefix(b"sha256=").ok_or(Refused::Malformed)?;
        let expected: [u8; 32] = hex::decode(hex_digest)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(Refused::Malformed)?;
        Ok(Verifier {
            mac: self.mac(),
            expected,
        })
    }

    /// The header value a sender would compute for `body` (for tests and tools).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// An HMAC check in progress (see [`WebhookSecret::verifier`]).
pub struct Verifier {
    mac: Hmac<Sha256>,
    expected: [u8; 32],
}

impl Verifier {
    pub fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Constant-time comparison with the header's digest.
    pub fn finish(self) -> Result<(), Refused> {
        self.mac
            .verify_slice(&self.expected)
            .map_err(|_| Refused::Mismatch)
    }
}

/// What a delivery's JSON says about the push, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// GitHub's `ping` when the hook is created: answered, nothing fetched.
    Ping,
    /// A push to another branch than the one followed.
    OtherBranch(String),
    /// Anything else: worth a fetch.
    Fetch,
}

/// Classifies an authenticated delivery. Unknown or unparsable bodies are worth a fetch:
/// a fetch is cheap and never wrong.
pub fn classify(event: Option<&str>, body: &[u8], branch: &str) -> Delivery {
    if event == Some("ping") {
        return Delivery::Ping;
    }
    #[derive(serde::Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        git_ref: Option<String>,
    }
    match serde_json::from_slice::<Push>(body) {
        Ok(Push { git_ref: Some(r) })
            if r.starts_with("refs/heads/") && r != format!("refs/heads/{branch}") =>
        {
            Delivery::OtherBranch(r)
        }
        _ => Delivery::Fetch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::new(b"It's a Secret to Everybody".to_vec())
    }

    #[test]
    fn githubs_documented_example_signature_is_accepted() {
        // The example from GitHub's "Validating webhook deliveries" documentation.
        let header = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(secret().check(Some(header), b"Hello, World!"), Ok(()));
    }

    #[test]
    fn a_signature_we_compute_round_trips() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let header = secret().sign(body);
        assert_eq!(secret().check(Some(header.as_bytes()), body), Ok(()));
    }

    #[test]
    fn a_signature_for_another_body_or_secret_is_a_mismatch() {
        let header = secret().sign(b"body");
        assert_eq!(
            secret().check(Some(header.as_bytes()), b"other body"),
            Err(Refused::Mismatch)
        );
        let other = WebhookSecret::new(b"another secret".to_vec()).sign(b"body");
        assert_eq!(
            secret().check(Some(other.as_bytes()), b"body"),
            Err(Refused::Mismatch)
        );
    }

    #[test]
    fn a_missing_header_is_refused() {
        assert_eq!(secret().check(None, b"body"), Err(Refused::Missing));
    }

    #[test]
    fn a_wrong_prefix_or_bad_hex_is_malformed() {
        let good = secret().sign(b"body");
        let hex_part = good.trim_start_matches("sha256=");
        for header in [
            format!("sha1={hex_part}"),
            hex_part.to_owned(),
            format!("SHA256={hex_part}"),
            "sha256=zz".to_owned(),
            format!("sha256={}", &hex_part[..62]),
            String::new(),
        ] {
            assert_eq!(
                secret().check(Some(header.as_bytes()), b"body"),
                Err(Refused::Malformed),
                "{header:?}"
            );
        }
    }

    #[test]
    fn the_secret_is_never_printed() {
        assert_eq!(format!("{:?}", secret()), "WebhookSecret(<redacted>)");
    }

    #[test]
    fn the_secret_file_drops_one_trailing_newline_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "It's a Secret to Everybody\n").unwrap();
        let s = WebhookSecret::load(&path).unwrap();
        let header = secret().sign(b"x");
        assert_eq!(s.check(Some(header.as_bytes()), b"x"), Ok(()));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            WebhookSecret::load(&path),
            Err(SecretFileError::Empty { .. })
        ));
    }

    #[test]
    fn pings_and_pushes_to_other_branches_do_not_fetch() {
        assert_eq!(classify(Some("ping"), b"{}", "main"), Delivery::Ping);
        assert_eq!(
            classify(Some("push"), br#"{"ref":"refs/heads/dev"}"#, "main"),
            Delivery::OtherBranch("refs/heads/dev".into())
        );
        assert_eq!(
            classify(Some("push"), br#"{"ref":"refs/heads/main"}"#, "main"),
            Delivery::Fetch
        );
        assert_eq!(classify(None, b"not json", "main"), Delivery::Fetch);
        assert_eq!(
            classify(Some("push"), br#"{"ref":"refs/tags/v1"}"#, "main"),
            Delivery::Fetch
        );
    }
}
