//! Walking the list route's pages without knowing whether it pages.
//!
//! The SDK sends no `limit`/`offset` on `GET /api/v1/agents/{slug}/secrets` and reads one
//! `{"secrets": [...]}` (SDK-confirmed); other list routes page with `limit`, `offset` and
//! `meta: {total, limit, offset, has_more}` (SDK-confirmed for `GET /api/v1/agents`). Whether
//! this route honours paging is an assumption either way, so castsync asks for pages and
//! watches what comes back:
//! - `meta` present: follow `has_more` (or `total`);
//! - a page longer than `limit`: the server ignores paging; that page is the whole list;
//! - exactly `limit` keys and no `meta`: ask for the next offset once; if it repeats the first
//!   page, the server ignores `offset` and the first page was the whole list;
//! - fewer than `limit` keys: the last page.
//!
//! So a server that ignores paging costs at most one extra request per agent, and is never
//! an error. Pure: no I/O, driven by the client one page at a time.

use std::collections::HashSet;

use super::wire::Page;
use crate::platform::{ListShape, Listing, Paging, PlatformError, RemoteKey, Timestamps};

/// A list longer than this is refused (a server that keeps answering with new keys).
pub const MAX_KEYS: usize = 100_000;

/// What to do after a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Ask for the page at this offset.
    Fetch { offset: usize },
    /// The list is complete.
    Done,
}

/// The pages seen so far of one agent's list.
#[derive(Debug)]
pub struct Pager {
    limit: usize,
    keys: Vec<RemoteKey>,
    seen: HashSet<String>,
    /// The key names of the first page, to recognise a server that ignores `offset`.
    first: Vec<String>,
    requests: u32,
    paging: Paging,
}

impl Pager {
    pub fn new(limit: usize) -> Pager {
        Pager {
            limit: limit.max(1),
            keys: Vec::new(),
            seen: HashSet::new(),
            first: Vec::new(),
            requests: 0,
            paging: Paging::Unknown,
        }
    }

    /// Takes the page that answered the last [`Next::Fetch`] (offset 0 first). An error is
    /// an inconsistent list (a later page repeating part of an earlier one, or no end): a
    /// protocol error, which is transient (the agent may have changed during the walk).
    pub fn accept(&mut self, page: Page) -> Result<Next, PlatformError> {
        let inconsistent = |detail: String| PlatformError::Protocol { detail };
        self.requests += 1;
        let offset = self.keys.len();
        let names: Vec<String> = page.keys.iter().map(|k| k.key.clone()).collect();
        if self.requests == 1 {
            self.first = names;
            if page.keys.len() > self.limit {
                // More than we asked for: the server does not page. Everything is here.
                self.paging = Paging::Unpaged;
                self.keys = page.keys;
                return Ok(Next::Done);
            }
        } else if !names.is_empty() && names == self.first {
            // The next offset answered the first page again: `offset` is ignored, and the
            // first page was the whole list.
            self.paging = Paging::Unpaged;
            return Ok(Next::Done);
        } else if page.keys.len() > self.limit {
            return Err(inconsistent(format!(
                "the page at offset {offset} holds {} keys, more than the {} asked for",
                page.keys.len(),
                self.limit
            )));
        }
        let count = page.keys.len();
        for key in page.keys {
            if !self.seen.insert(key.key.clone()) {
                return Err(inconsistent(format!(
                    "the page at offset {offset} repeats key {:?} from an earlier page; the list is inconsistent (was the agent changed during the run?)",
                    key.key
                )));
            }
            self.keys.push(key);
        }
        if self.requests > 1 && count > 0 {
            // A later offset brought new keys: the route pages.
            self.paging = Paging::Paged;
        }
        if self.keys.len() > MAX_KEYS {
            return Err(inconsistent(format!(
                "more than {MAX_KEYS} keys listed; is the platform ignoring offset?"
            )));
        }
        let more = match page.meta {
            Some(meta) => {
                self.paging = Paging::Paged;
                match (meta.has_more, meta.total) {
                    (Some(more), _) => more,
                    (None, Some(total)) => (self.keys.len() as u64) < total,
                    (None, None) => count == self.limit,
                }
            }
            None => count == self.limit,
        };
        Ok(if more && count > 0 {
            Next::Fetch {
                offset: self.keys.len(),
            }
        } else {
            Next::Done
        })
    }

    /// The listing, once [`Pager::accept`] said [`Next::Done`].
    pub fn finish(self) -> Listing {
        let shape = ListShape {
            requests: self.requests,
            paging: self.paging,
            timestamps: Timestamps::of(&self.keys),
        };
        Listing {
            keys: self.keys,
            shape,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::Meta;
    use super::*;

    fn keys(range: std::ops::Range<usize>) -> Vec<RemoteKey> {
        range.map(|i| RemoteKey::bare(format!("K{i:03}"))).collect()
    }

    fn page(range: std::ops::Range<usize>) -> Page {
        Page {
            keys: keys(range),
            meta: None,
        }
    }

    fn with_meta(range: std::ops::Range<usize>, total: u64, has_more: Option<bool>) -> Page {
        Page {
            keys: keys(range),
            meta: Some(Meta {
                total: Some(total),
                has_more,
                ..Meta::default()
            }),
        }
    }

    /// Serves `pages` in order and returns the listing and the offsets asked for.
    /// Serves `pages` in order: the listing and the offsets asked for, or the error text.
    fn walk(limit: usize, pages: Vec<Page>) -> Result<(Listing, Vec<usize>), String> {
        let mut pager = Pager::new(limit);
        let mut offsets = vec![0];
        for p in pages {
            match pager.accept(p).map_err(|e| e.to_string())? {
                Next::Fetch { offset } => offsets.push(offset),
                Next::Done => return Ok((pager.finish(), offsets)),
            }
        }
        panic!("the pager wanted more pages: {offsets:?}")
    }

    #[test]
    fn a_server_that_ignores_paging_and_sends_more_than_the_limit_costs_one_request() {
        let (listing, offsets) = walk(100, vec![page(0..150)]).unwrap();
        assert_eq!(listing.keys.len(), 150);
        assert_eq!(offsets, [0]);
        assert_eq!(listing.shape.paging, Paging::Unpaged);
        assert_eq!(listing.shape.requests, 1);
        assert_eq!(listing.shape.timestamps, Timestamps::None);
    }

    #[test]
    fn a_server_that_ignores_offset_is_found_out_with_one_extra_request() {
        let (listing, offsets) = walk(100, vec![page(0..100), page(0..100)]).unwrap();
        assert_eq!(listing.keys.len(), 100);
        assert_eq!(offsets, [0, 100]);
        assert_eq!(listing.shape.paging, Paging::Unpaged);
        assert_eq!(listing.shape.requests, 2);
    }

    #[test]
    fn a_short_first_page_is_the_whole_list() {
        let (listing, offsets) = walk(100, vec![page(0..3)]).unwrap();
        assert_eq!(listing.keys.len(), 3);
        assert_eq!(offsets, [0]);
        assert_eq!(listing.shape.paging, Paging::Unknown);
        let (listing, _) = walk(100, vec![page(0..0)]).unwrap();
        assert!(listing.keys.is_empty());
        assert_eq!(listing.shape.timestamps, Timestamps::NoKeys);
    }

    #[test]
    fn a_paging_server_without_meta_is_walked_by_page_length() {
        let (listing, offsets) =
            walk(100, vec![page(0..100), page(100..200), page(200..250)]).unwrap();
        assert_eq!(listing.keys, keys(0..250));
        assert_eq!(offsets, [0, 100, 200]);
        assert_eq!(listing.shape.paging, Paging::Paged);
        // Exactly a multiple of the limit: one empty page ends it.
        let (listing, offsets) = walk(100, vec![page(0..100), page(100..100)]).unwrap();
        assert_eq!(listing.keys.len(), 100);
        assert_eq!(offsets, [0, 100]);
    }

    #[test]
    fn meta_has_more_and_total_are_followed() {
        let (listing, offsets) = walk(
            100,
            vec![
                with_meta(0..100, 150, Some(true)),
                with_meta(100..150, 150, Some(false)),
            ],
        )
        .unwrap();
        assert_eq!(listing.keys.len(), 150);
        assert_eq!(offsets, [0, 100]);
        assert_eq!(listing.shape.paging, Paging::Paged);
        // `total` alone: stop once it is reached, even on a full page.
        let (listing, offsets) = walk(100, vec![with_meta(0..100, 100, None)]).unwrap();
        assert_eq!(listing.keys.len(), 100);
        assert_eq!(offsets, [0]);
        // has_more false on a full page ends it without the probe.
        let (_, offsets) = walk(100, vec![with_meta(0..100, 0, Some(false))]).unwrap();
        assert_eq!(offsets, [0]);
    }

    #[test]
    fn meta_that_claims_more_while_repeating_the_first_page_ends_the_walk() {
        let (listing, offsets) = walk(
            100,
            vec![
                with_meta(0..100, 300, Some(true)),
                with_meta(0..100, 300, Some(true)),
            ],
        )
        .unwrap();
        assert_eq!(listing.keys.len(), 100);
        assert_eq!(offsets, [0, 100]);
        assert_eq!(listing.shape.paging, Paging::Unpaged);
    }

    #[test]
    fn a_later_page_that_overlaps_an_earlier_one_is_an_error() {
        let err = walk(100, vec![page(0..100), page(50..150)]).unwrap_err();
        assert!(err.contains("repeats key"), "{err}");
        let err = walk(100, vec![page(0..100), page(100..250)]).unwrap_err();
        assert!(err.contains("more than the 100"), "{err}");
    }
}
