//! The Castari API's JSON and headers, as far as castsync reads them: list bodies, error
//! `detail`s (FastAPI style), `Retry-After`. Shared with the emulator, which writes them.
//!
//! Nothing here ever echoes a request body: pydantic-style validation errors may carry the
//! offending `input` (a value), so only `loc`, `msg` and `type` are ever rendered.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::platform::{PlatformError, RemoteKey};

/// Fields of a list body that may hold the array of keys. `secrets` is what the SDK reads
/// (`@castari/sdk` `agents.ts`: `response.secrets`, SDK-confirmed); `items` and `data` are
/// tolerated in case the route ever follows another convention (assumption).
pub const LIST_FIELDS: [&str; 3] = ["secrets", "items", "data"];

/// Longest `detail` text kept in an error message.
const MAX_DETAIL: usize = 600;

/// One FastAPI validation error (`422`): where, what, and its machine-readable kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationIssue {
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl ValidationIssue {
    pub fn new(loc: &[&str], msg: impl Into<String>, kind: &str) -> ValidationIssue {
        ValidationIssue {
            loc: loc.iter().map(|s| Value::from(*s)).collect(),
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

/// The paging block other list routes send (`GET /api/v1/agents` returns `{agents, meta:
/// {total, limit, offset, has_more}}`, SDK-confirmed for that route); whether the secrets
/// route sends it is an assumption, so every field is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
}

/// One list response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub keys: Vec<RemoteKey>,
    pub meta: Option<Meta>,
}

/// One list response. The body is `{"secrets": [...]}` (the SDK's shape), or the array under
/// `items`/`data`, or a bare array; `meta` is read when present. Each item needs a `key`
/// string; `created_at`/`updated_at` are used when they are strings and ignored otherwise,
/// as is every other field. The error says what is wrong in words (never quoting the body).
pub fn parse_list(body: &[u8]) -> Result<Page, PlatformError> {
    let malformed = |detail: String| PlatformError::Protocol { detail };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "the list response is not JSON (line {} column {}, {} bytes)",
            e.line(),
            e.column(),
            body.len()
        ))
    })?;
    let (items, meta) = match &value {
        Value::Array(items) => (items, None),
        Value::Object(map) => {
            let items = LIST_FIELDS
                .iter()
                .find_map(|f| map.get(*f).and_then(Value::as_array))
                .ok_or_else(|| {
                    malformed("the list response is an object without an array under \"secrets\", \"items\" or \"data\"".to_owned())
                })?;
            // A `meta` that is not the expected object is ignored, not an error: paging then
            // falls back to page lengths.
            let meta = map
                .get("meta")
                .and_then(|m| serde_json::from_value::<Meta>(m.clone()).ok());
            (items, meta)
        }
        _ => {
            return Err(malformed(
                "the list response is neither an array nor an object".to_owned(),
            ));
        }
    };
    let mut keys = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let text = |field: &str| item.get(field).and_then(Value::as_str).map(str::to_owned);
        let key = text("key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| malformed(format!("list item {i} has no \"key\" string")))?;
        if !seen.insert(key.clone()) {
            return Err(malformed(format!(
                "the list response names key {key:?} twice"
            )));
        }
        keys.push(RemoteKey {
            key,
            created_at: text("created_at"),
            updated_at: text("updated_at"),
        });
    }
    Ok(Page { keys, meta })
}

/// The `detail` of an error body, rendered for a person; None when the body is not JSON with
/// a `detail`.
pub fn error_detail(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let detail = value.get("detail")?;
    let text = match detail {
        Value::String(s) => s.clone(),
        Value::Array(items) => render_issues(items),
        // Any other shape may hold anything, values included: say only that it was there.
        _ => "(unrecognized error detail)".to_owned(),
    };
    Some(truncate(text))
}

/// `body.key: Field required (missing); query.limit: …`.
fn render_issues(items: &[Value]) -> String {
    let rendered: Vec<String> = items
        .iter()
        .map(
            |item| match serde_json::from_value::<ValidationIssue>(item.clone()) {
                Ok(issue) => {
                    let loc: Vec<String> = issue
                        .loc
                        .iter()
                        .map(|l| match l {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    format!("{}: {} ({})", loc.join("."), issue.msg, issue.kind)
                }
                Err(_) => "(unrecognized validation error)".to_owned(),
            },
        )
        .collect();
    if rendered.is_empty() {
        "(empty validation error list)".to_owned()
    } else {
        rendered.join("; ")
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// `Retry-After` as a wait: whole seconds (the SDK reads it with `parseInt`, SDK-confirmed),
/// or an HTTP date (allowed by HTTP; tolerated as an assumption).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = OffsetDateTime::parse(raw, &Rfc2822).ok()?;
    let at = SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn the_sdk_shape_has_keys_only_and_is_accepted() {
        let page =
            parse_list(br#"{"secrets":[{"key":"OPENAI_API_KEY"},{"key":"my-key"}]}"#).unwrap();
        assert_eq!(
            page.keys,
            [RemoteKey::bare("OPENAI_API_KEY"), RemoteKey::bare("my-key")]
        );
        assert_eq!(page.meta, None);
    }

    #[test]
    fn lists_may_be_bare_arrays_or_wrapped_under_secrets_items_or_data() {
        let item = r#"{"key":"A","created_at":"t1","updated_at":"t2","extra":{"x":1}}"#;
        for body in [
            format!("[{item}]"),
            format!(r#"{{"items":[{item}],"total":1}}"#),
            format!(r#"{{"secrets":[{item}]}}"#),
            format!(r#"{{"data":[{item}]}}"#),
        ] {
            let keys = parse_list(body.as_bytes()).unwrap().keys;
            assert_eq!(keys.len(), 1, "{body}");
            assert_eq!(keys[0].key, "A");
            assert_eq!(keys[0].last_write(), Some("t2"));
        }
        let keys = parse_list(br#"[{"key":"B","created_at":"t1","updated_at":null}]"#)
            .unwrap()
            .keys;
        assert_eq!(keys[0].updated_at, None);
        assert_eq!(keys[0].last_write(), Some("t1"));
        // Timestamps of another type are ignored, not an error.
        let keys = parse_list(br#"[{"key":"C","created_at":17,"updated_at":false}]"#)
            .unwrap()
            .keys;
        assert_eq!(keys[0], RemoteKey::bare("C"));
    }

    #[test]
    fn meta_is_read_when_present_and_ignored_when_odd() {
        let page = parse_list(
            br#"{"secrets":[],"meta":{"total":150,"limit":100,"offset":100,"has_more":false}}"#,
        )
        .unwrap();
        assert_eq!(
            page.meta,
            Some(Meta {
                total: Some(150),
                limit: Some(100),
                offset: Some(100),
                has_more: Some(false)
            })
        );
        let page = parse_list(br#"{"secrets":[],"meta":"soon"}"#).unwrap();
        assert_eq!(page.meta, None);
        let page = parse_list(br#"{"secrets":[],"meta":{"has_more":true}}"#).unwrap();
        assert_eq!(page.meta.unwrap().has_more, Some(true));
    }

    #[test]
    fn unparseable_lists_are_errors_that_never_quote_the_body() {
        for body in [
            &b"canary-7f3a91-do-not-print"[..],
            br#"{"keys":["canary-7f3a91-do-not-print"]}"#,
            br#"[{"name":"canary-7f3a91-do-not-print"}]"#,
            br#"[{"key":""}]"#,
            br#"[{"key":7}]"#,
            b"42",
            br#"[{"key":"A"},{"key":"A"}]"#,
        ] {
            let err = parse_list(body).unwrap_err();
            assert!(matches!(err, PlatformError::Protocol { .. }));
            assert!(!err.to_string().contains("canary"), "{err}");
        }
    }

    #[test]
    fn validation_details_are_rendered_without_their_input() {
        let body = br#"{"detail":[{"loc":["body","value"],"msg":"Field required","type":"missing","input":"canary-7f3a91-do-not-print"},{"loc":["query","limit"],"msg":"Input should be less than or equal to 100","type":"less_than_equal"}]}"#;
        let detail = error_detail(body).unwrap();
        assert_eq!(
            detail,
            "body.value: Field required (missing); query.limit: Input should be less than or equal to 100 (less_than_equal)"
        );
        assert_eq!(
            error_detail(br#"{"detail":"Agent not found"}"#).unwrap(),
            "Agent not found"
        );
        assert_eq!(
            error_detail(br#"{"detail":{"secret":"canary-7f3a91-do-not-print"}}"#).unwrap(),
            "(unrecognized error detail)"
        );
        assert_eq!(error_detail(b"<html>bad gateway</html>"), None);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 06 Nov 1994 08:49:37
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:47 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(10)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }
}
