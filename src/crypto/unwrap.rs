//! Finding a file's key in as few unwrap attempts as possible.
//!
//! An age header holds one stanza per recipient, and an X25519 stanza does not say whom it
//! is for (by design), so a decryptor tries its identities on the stanzas until one opens —
//! each try an X25519 key agreement, the most expensive step of opening a small file. The
//! files of one repository are encrypted to the same recipients in the same order, so the
//! (identity, stanza) pair that opened the last file almost always opens the next one. Trying
//! it first makes opening a repository one attempt per file; when it does not open, the full
//! search runs (every identity on every stanza, in age's order), so every file that age
//! itself would open still opens.
//!
//! The memory is a position, never key material, and is shared by the threads that decrypt
//! a repository in parallel.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use age::{DecryptError, Identity};
use age_core::format::{FileKey, Stanza};

/// The (identity, stanza) pair that opened the last file, and a count of attempts.
#[derive(Debug, Default)]
pub(super) struct UnwrapMemory {
    /// `identity << 16 | stanza`, plus one; 0 = nothing remembered yet.
    last: AtomicUsize,
    attempts: AtomicU64,
}

impl UnwrapMemory {
    /// Unwrap attempts made so far (each one key agreement for an X25519 stanza).
    pub(super) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    fn remembered(&self) -> Option<(usize, usize)> {
        let packed = self.last.load(Ordering::Relaxed).checked_sub(1)?;
        Some((packed >> 16, packed & 0xffff))
    }

    fn remember(&self, identity: usize, stanza: usize) {
        if identity < (usize::MAX >> 17) && stanza <= 0xffff {
            self.last
                .store((identity << 16 | stanza) + 1, Ordering::Relaxed);
        }
    }
}

/// All of a user's identities as one age identity that tries the remembered pair first.
pub(super) struct Remembering<'a> {
    pub identities: Vec<&'a dyn Identity>,
    pub memory: &'a UnwrapMemory,
}

impl Remembering<'_> {
    fn attempt(&self, identity: usize, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        self.memory.attempts.fetch_add(1, Ordering::Relaxed);
        self.identities[identity].unwrap_stanza(stanza)
    }
}

impl Identity for Remembering<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        let hint = self
            .memory
            .remembered()
            .filter(|&(i, s)| i < self.identities.len() && s < stanzas.len());
        let mut hinted = None;
        if let Some((i, s)) = hint {
            match self.attempt(i, &stanzas[s]) {
                Some(Ok(key)) => return Some(Ok(key)),
                other => hinted = Some(other),
            }
        }
        // age's own order: each identity over every stanza; the first answer wins (the
        // remembered pair's answer is reused, not asked again).
        for i in 0..self.identities.len() {
            for (s, stanza) in stanzas.iter().enumerate() {
                let answer = match hint {
                    Some(pair) if pair == (i, s) => hinted.take().flatten(),
                    _ => self.attempt(i, stanza),
                };
                if let Some(answer) = answer {
                    if answer.is_ok() {
                        self.memory.remember(i, s);
                    }
                    return Some(answer);
                }
            }
        }
        None
    }
}
