//! [`Remembered`]: what the daemon's last run found in each agent directory, kept packed.
//!
//! It lives as long as the daemon and is rebuilt by every run, in the middle of that run's
//! own allocations. Kept as a few small allocations per agent, its pieces would be spread
//! over pages the run's temporaries used, pages that then could not go back to the system
//! when the run ends. Packed into two buffers, it holds about its own size: some 130 bytes
//! an agent.

/// What the previous run found in each agent's directory, with the directory's id
/// ([`super::Tree::dir_ids`]), for one environment: the daemon's next run reads only the
/// directories whose id changed (a one-key commit to one agent of ten thousand reads one).
/// The id is of the directory's content, so the same id means the same files, except
/// through a symbolic link, whose target may change while the directory does not: a
/// directory with a link in it is not remembered.
#[derive(Debug, Default)]
pub struct Remembered {
    /// The environment's overlay file the digests cover.
    overlay: Option<String>,
    /// Each agent's slug, directory id, manifest digest and schema digest, one after another.
    text: Vec<u8>,
    /// One per agent, sorted by slug: where its parts are in `text`.
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    slug: u16,
    dir: u16,
    manifest: u16,
    schema: u16,
}

/// One agent's remembered directory id and digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    pub dir: &'a [u8],
    pub manifest: &'a str,
    pub schema: &'a str,
}

impl Entry {
    fn parts<'a>(&self, text: &'a [u8]) -> (&'a [u8], Found<'a>) {
        let mut at = self.start as usize;
        let mut next = |len: u16| {
            let part = &text[at..at + usize::from(len)];
            at += usize::from(len);
            part
        };
        let slug = next(self.slug);
        let dir = next(self.dir);
        // Only `&str`s are written as text (`Remembered::keep`): valid UTF-8.
        let as_str = |bytes: &'a [u8]| std::str::from_utf8(bytes).unwrap_or_default();
        let manifest = as_str(next(self.manifest));
        let schema = as_str(next(self.schema));
        (
            slug,
            Found {
                dir,
                manifest,
                schema,
            },
        )
    }
}

impl Remembered {
    /// Forgets everything when the digests were of another environment's overlay.
    pub fn for_overlay(&mut self, overlay: Option<String>) {
        if self.overlay != overlay {
            *self = Remembered {
                overlay,
                ..Remembered::default()
            };
        }
    }

    pub fn get(&self, slug: &str) -> Option<Found<'_>> {
        let i = self
            .entries
            .binary_search_by(|e| e.parts(&self.text).0.cmp(slug.as_bytes()))
            .ok()?;
        Some(self.entries[i].parts(&self.text).1)
    }

    /// How many agents are remembered (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Replaces what is remembered with `agents` (slug, and what was found), in any order.
    pub fn keep<'a>(&mut self, mut agents: Vec<(&'a str, Found<'a>)>) {
        agents.sort_unstable_by(|a, b| a.0.cmp(b.0));
        agents.dedup_by(|a, b| a.0 == b.0);
        let fits = |s: &[u8]| u16::try_from(s.len()).ok();
        let size: usize = agents
            .iter()
            .map(|(slug, f)| slug.len() + f.dir.len() + f.manifest.len() + f.schema.len())
            .sum();
        let mut text = Vec::with_capacity(size);
        let mut entries = Vec::with_capacity(agents.len());
        for (slug, found) in agents {
            let parts = [
                slug.as_bytes(),
                found.dir,
                found.manifest.as_bytes(),
                found.schema.as_bytes(),
            ];
            let (Some(start), Some(lens)) = (
                u32::try_from(text.len()).ok(),
                parts.iter().map(|p| fits(p)).collect::<Option<Vec<u16>>>(),
            ) else {
                continue; // too long to pack: read every time
            };
            for part in parts {
                text.extend_from_slice(part);
            }
            entries.push(Entry {
                start,
                slug: lens[0],
                dir: lens[1],
                manifest: lens[2],
                schema: lens[3],
            });
        }
        self.text = text;
        self.entries = entries;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_kept_is_found_by_slug_and_nothing_else_is() {
        let found = |dir: &'static [u8], m: &'static str| Found {
            dir,
            manifest: m,
            schema: "absent",
        };
        let mut r = Remembered::default();
        r.keep(vec![
            ("b", found(b"\x02\x03", "git-blob:bb")),
            ("a", found(b"\x01", "git-blob:aa")),
            ("a-long-slug", found(b"", "sha256:cc")),
        ]);
        assert_eq!(r.len(), 3);
        assert_eq!(r.get("a"), Some(found(b"\x01", "git-blob:aa")));
        assert_eq!(r.get("b"), Some(found(b"\x02\x03", "git-blob:bb")));
        assert_eq!(r.get("a-long-slug"), Some(found(b"", "sha256:cc")));
        assert_eq!(r.get("c"), None);
        assert_eq!(r.get("a-long"), None);

        // Kept again: only the new set; another overlay forgets everything.
        r.keep(vec![("c", found(b"\x09", "git-blob:dd"))]);
        assert_eq!((r.get("a"), r.len()), (None, 1));
        r.for_overlay(None);
        assert_eq!(r.len(), 1);
        r.for_overlay(Some("secrets.staging.yaml.age".to_owned()));
        assert_eq!(r.len(), 0);
    }
}
