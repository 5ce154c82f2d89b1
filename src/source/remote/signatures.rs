//! `--verify-signatures FILE`: apply only commits whose SSH signature verifies against a key
//! in an ssh `allowed_signers` file (the format `git config gpg.ssh.allowedSignersFile` and
//! `ssh-keygen -Y verify` use).
//!
//! The file is parsed here; the signature check itself is the `ssh-key` crate's sshsig
//! verification, over the commit object without its `gpgsig` header (git2's
//! `extract_signature`), in the `git` namespace — exactly what `git verify-commit` checks.
//! A rejected commit is never partly applied: the daemon keeps the last verified one.

use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey, SshSig};
use thiserror::Error;
use time::OffsetDateTime;

/// The sshsig namespace git signs commits in.
pub const GIT_NAMESPACE: &str = "git";

/// The allowed_signers file cannot be used.
#[derive(Debug, Error)]
pub enum SignersError {
    /// The file cannot be read.
    #[error("cannot read the allowed signers file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line is not `principals [options] keytype base64 [comment]`.
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The file lists no key, so no commit could ever be applied.
    #[error("the allowed signers file {path} lists no key")]
    Empty { path: PathBuf },
}

impl crate::hint::Hinted for SignersError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            SignersError::Io { .. } => None,
            SignersError::Syntax { .. } => Some(
                "each line is `PRINCIPALS [OPTIONS] KEYTYPE BASE64-KEY [COMMENT]`, as in ssh-keygen(1) ALLOWED SIGNERS".into(),
            ),
            SignersError::Empty { .. } => {
                Some("add a line such as `alice@example.com ssh-ed25519 AAAA…`".into())
            }
        }
    }
}

/// Why a commit is not applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// The commit has no signature at all.
    #[error("commit {commit} is not signed; only commits signed by a key in {file} are applied")]
    Unsigned { commit: String, file: String },
    /// The commit is signed, but not with an SSH signature (OpenPGP or X.509).
    #[error(
        "commit {commit} carries a non-SSH ({kind}) signature; only SSH signatures are verified (git config gpg.format ssh)"
    )]
    NotSsh { commit: String, kind: String },
    /// The signature cannot be decoded.
    #[error("commit {commit} has a malformed SSH signature: {detail}")]
    Malformed { commit: String, detail: String },
    /// The signing key is not listed (or not for the `git` namespace, or not at that time).
    #[error("commit {commit} is signed by {fingerprint}, which is not allowed by {file}{why}")]
    NotAllowed {
        commit: String,
        fingerprint: String,
        file: String,
        why: String,
    },
    /// The commit is signed, but the branch went back: it does not descend from the last
    /// commit applied (a force-push to an older commit). Refused like an unsigned commit.
    #[error(
        "commit {commit} does not descend from {last}, the last signed commit applied: the branch moved back or was rewritten; push a signed commit on top of it, or restart with --allow-rollback to accept this one"
    )]
    NotForward { commit: String, last: String },
    /// The key is listed but the signature does not match the commit.
    #[error(
        "commit {commit}: the signature by {fingerprint} ({principal}) does not verify: {detail}"
    )]
    BadSignature {
        commit: String,
        fingerprint: String,
        principal: String,
        detail: String,
    },
}

/// A commit whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The allowed_signers principals of the key.
    pub principal: String,
    /// `SHA256:…` of the signing key.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
struct Signer {
    principals: String,
    key: PublicKey,
    /// `namespaces="…"`: a pattern list the signature's namespace must match.
    namespaces: Option<String>,
    valid_after: Option<OffsetDateTime>,
    valid_before: Option<OffsetDateTime>,
}

/// A parsed allowed_signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    path: PathBuf,
    signers: Vec<Signer>,
}

impl AllowedSigners {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<AllowedSigners, SignersError> {
        let io = |source| SignersError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = crate::fsread::read_file(path, crate::fsread::MAX_SIGNERS_FILE).map_err(
            |e| match e {
                crate::fsread::ReadError::Io { source, .. } => io(source),
                crate::fsread::ReadError::NotFound { .. } => {
                    io(std::io::Error::from(std::io::ErrorKind::NotFound))
                }
                refused => io(std::io::Error::other(refused.to_string())),
            },
        )?;
        let text = crate::fsread::text(bytes).map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8 text",
            ))
        })?;
        AllowedSigners::parse(&text, path)
    }

    /// Parses the text of an allowed_signers file; `path` names it in messages.
    pub fn parse(text: &str, path: &Path) -> Result<AllowedSigners, SignersError> {
        let mut signers = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |message: String| SignersError::Syntax {
                path: path.to_owned(),
                line: i + 1,
                message,
            };
            signers.push(parse_line(line).map_err(syntax)?);
        }
        if signers.is_empty() {
            return Err(SignersError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(AllowedSigners {
            path: path.to_owned(),
            signers,
        })
    }

    pub fn len(&self) -> usize {
        self.signers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// Verifies the signature of `commit` in `repo`.
    pub fn verify_commit(
        &self,
        repo: &git2::Repository,
        commit: git2::Oid,
    ) -> Result<Verified, Rejection> {
        let id = commit.to_string();
        let (signature, signed) = match repo.extract_signature(&commit, None) {
            Ok(pair) => pair,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(Rejection::Unsigned {
                    commit: id,
                    file: self.path.display().to_string(),
                });
            }
            Err(e) => {
                return Err(Rejection::Malformed {
                    commit: id,
                    detail: e.message().to_owned(),
                });
            }
        };
        let time = repo
            .find_commit(commit)
            .ok()
            .and_then(|c| OffsetDateTime::from_unix_timestamp(c.committer().when().seconds()).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        self.verify(&id, &signature, &signed, time)
    }

    /// Verifies an armored signature over `signed` (a commit without its signature header),
    /// made at `time`; `commit` names it in messages.
    pub fn verify(
        &self,
        commit: &str,
        signature: &[u8],
        signed: &[u8],
        time: OffsetDateTime,
    ) -> Result<Verified, Rejection> {
        let text = String::from_utf8_lossy(signature);
        if !text
            .trim_start()
            .starts_with("-----BEGIN SSH SIGNATURE-----")
        {
            let kind = if text.contains("BEGIN PGP SIGNATURE") {
                "OpenPGP"
            } else if text.contains("BEGIN SIGNED MESSAGE") {
                "X.509"
            } else {
                "unknown"
            };
            return Err(Rejection::NotSsh {
                commit: commit.to_owned(),
                kind: kind.to_owned(),
            });
        }
        let sig = SshSig::from_pem(text.trim().as_bytes()).map_err(|e| Rejection::Malformed {
            commit: commit.to_owned(),
            detail: e.to_string(),
        })?;
        let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
        let not_allowed = |why: &str| Rejection::NotAllowed {
            commit: commit.to_owned(),
            fingerprint: fingerprint.clone(),
            file: self.path.display().to_string(),
            why: why.to_owned(),
        };
        let listed: Vec<&Signer> = self
            .signers
            .iter()
            .filter(|s| s.key.key_data() == sig.public_key())
            .collect();
        if listed.is_empty() {
            return Err(not_allowed(""));
        }
        let usable = listed.iter().find(|s| {
            s.namespaces
                .as_deref()
                .is_none_or(|p| pattern_list_matches(p, GIT_NAMESPACE))
                && s.valid_after.is_none_or(|t| time >= t)
                && s.valid_before.is_none_or(|t| time <= t)
        });
        let Some(signer) = usable else {
            return Err(not_allowed(
                " (its line excludes the git namespace or the commit time)",
            ));
        };
        signer
            .key
            .verify(GIT_NAMESPACE, signed, &sig)
            .map_err(|e| Rejection::BadSignature {
                commit: commit.to_owned(),
                fingerprint: fingerprint.clone(),
                principal: signer.principals.clone(),
                detail: e.to_string(),
            })?;
        Ok(Verified {
            principal: signer.principals.clone(),
            fingerprint,
        })
    }
}

/// Splits on whitespace, keeping double-quoted runs (which may hold spaces) together.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_key_type(token: &str) -> bool {
    token.starts_with("ssh-")
        || token.starts_with("ecdsa-sha2-")
        || token.starts_with("sk-ssh-")
        || token.starts_with("sk-ecdsa-")
}

fn parse_line(line: &str) -> Result<Signer, String> {
    let toks = tokens(line);
    let mut it = toks.iter();
    let principals = it
        .next()
        .ok_or("missing principals")?
        .trim_matches('"')
        .to_owned();
    let mut next = it.next().ok_or("missing key type")?;
    let mut signer_opts = Options::default();
    if !is_key_type(next) {
        signer_opts = parse_options(next)?;
        next = it.next().ok_or("missing key type after the options")?;
    }
    if !is_key_type(next) {
        return Err(format!(
            "{next:?} is not an SSH key type (e.g. ssh-ed25519)"
        ));
    }
    let blob = it.next().ok_or("missing base64 key after the key type")?;
    let key = PublicKey::from_openssh(&format!("{next} {blob}"))
        .map_err(|e| format!("cannot parse the {next} key: {e}"))?;
    Ok(Signer {
        principals,
        key,
        namespaces: signer_opts.namespaces,
        valid_after: signer_opts.valid_after,
        valid_before: signer_opts.valid_before,
    })
}

#[derive(Default)]
struct Options {
    namespaces: Option<String>,
    valid_after: Option<OffsetDateTime>,
    valid_before: Option<OffsetDateTime>,
}

/// `cert-authority,namespaces="git,file",valid-after=20240101` (commas inside quotes kept).
fn parse_options(field: &str) -> Result<Options, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in field.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    let mut opts = Options::default();
    for part in parts {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(v.to_owned())),
            None => (part.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("cert-authority", _) => {
                return Err(
                    "cert-authority lines (certificate signers) are not supported; list the signing keys themselves".to_owned(),
                );
            }
            ("namespaces", Some(v)) => opts.namespaces = Some(v),
            ("valid-after", Some(v)) => opts.valid_after = Some(parse_time(&v)?),
            ("valid-before", Some(v)) => opts.valid_before = Some(parse_time(&v)?),
            (other, _) => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(opts)
}

/// `YYYYMMDD[HHMM[SS]][Z]`, as ssh-keygen writes it. Times are taken as UTC.
fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    let digits = text.trim_end_matches(['Z', 'z']);
    let bad = || format!("invalid time {text:?}: expected YYYYMMDD[HHMM[SS]][Z]");
    if !digits.chars().all(|c| c.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<u32>().ok());
    let year = num(0..4).ok_or_else(bad)?;
    let month = num(4..6).ok_or_else(bad)?;
    let day = num(6..8).ok_or_else(bad)?;
    let hour = num(8..10).unwrap_or(0);
    let minute = num(10..12).unwrap_or(0);
    let second = num(12..14).unwrap_or(0);
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let date = time::Date::from_calendar_date(year as i32, month, day as u8).map_err(|_| bad())?;
    let clock = time::Time::from_hms(hour as u8, minute as u8, second as u8).map_err(|_| bad())?;
    Ok(date.with_time(clock).assume_utc())
}

/// ssh_config(5) PATTERNS: comma-separated globs, `!` negates; a negated match wins.
fn pattern_list_matches(list: &str, value: &str) -> bool {
    let mut matched = false;
    for pat in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        let hit = glob::Pattern::new(pat).is_ok_and(|p| p.matches(value));
        if hit && negated {
            return false;
        }
        matched |= hit;
    }
    matched
}

#[cfg(test)]
mod tests;
