//! `castsync keygen [-o FILE]`: a new X25519 identity, mode 0600, never overwriting.
//!
//! stdout carries exactly one line, the public recipient, so that
//! `castsync keygen >> recipients.txt` or `$(castsync keygen)` work; the note about where the
//! secret went goes to stderr. The secret key itself is never printed.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::Exit;
use crate::cli::{GlobalArgs, KeygenArgs};
use crate::crypto::{self, CryptoError, Env};

pub(super) fn run(args: &KeygenArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let path: PathBuf = match &args.output {
        Some(path) if path == Path::new("-") => bail!(
            "`-o -` is not supported: castsync writes identities only to files (mode 0600); \
             give a file name"
        ),
        Some(path) => path.clone(),
        None => Env::from_process()
            .default_identity_path()
            .ok_or(CryptoError::NoHome)?,
    };
    let recipient = crypto::write_new_identity(&path)?;
    super::print_out(format_args!("{recipient}\n"))?;
    if global.quiet == 0 {
        crate::say!(
            "wrote a new age identity to {} (mode 0600): keep it secret and back it up; \
             its public key is printed above",
            path.display()
        );
    }
    Ok(Exit::Success)
}
