use super::*;

#[test]
fn plain_http_is_refused_unless_the_host_is_loopback() {
    for ok in [
        "https://api.castari.com",
        "http://127.0.0.1:8787",
        "http://localhost:1",
        "http://[::1]:8787/",
    ] {
        assert!(parse_base_url(ok, false).is_ok(), "{ok}");
    }
    let err = parse_base_url("http://example.com", false).unwrap_err();
    assert!(matches!(err, OpenError::InsecureHttp { .. }));
    let text = err.to_string();
    assert!(
        text.contains("example.com") && text.contains("--allow-insecure-http"),
        "{text}"
    );
    assert!(parse_base_url("http://example.com", true).is_ok());
    assert!(parse_base_url("http://10.0.0.1", false).is_err());
}

#[test]
fn credentials_in_the_url_are_refused_without_being_shown() {
    let err = parse_base_url("https://user:hunter2-canary@api.castari.com", false).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(parse_base_url("ftp://x", false).is_err());
    assert!(parse_base_url("https://x/?a=1", false).is_err());
    assert!(parse_base_url("not a url", false).is_err());
}

#[test]
fn path_segments_are_percent_encoded_under_the_base_prefix() {
    let client = CastariClient::new(ClientConfig::new(
        "https://h.example/prefix/",
        SecretString::from("cast_x"),
    ))
    .unwrap();
    let url = client.endpoint("a.b", Some("K_1"));
    assert_eq!(
        url.as_str(),
        "https://h.example/prefix/api/v1/agents/a.b/secrets/K_1"
    );
    let odd = client.endpoint("a/b c", Some("?#"));
    assert_eq!(odd.path(), "/prefix/api/v1/agents/a%2Fb%20c/secrets/%3F%23");
    assert_eq!(client.id(), "https://h.example/prefix");
}

#[test]
fn debug_output_never_shows_the_api_key() {
    let client = CastariClient::new(ClientConfig::new(
        "https://h.example",
        SecretString::from("cast_canary-7f3a91"),
    ))
    .unwrap();
    let dump = format!("{client:?} {:?}", client.auth);
    assert!(!dump.contains("canary"), "{dump}");
}

#[test]
fn an_api_key_that_cannot_be_a_header_is_refused_without_being_shown() {
    let err = CastariClient::new(ClientConfig::new(
        "https://h.example",
        SecretString::from("cast_canary\n-7f3a91"),
    ))
    .unwrap_err();
    assert!(matches!(err, OpenError::InvalidApiKey));
    assert!(!err.to_string().contains("canary"));
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        body: body.as_bytes().to_vec(),
        wait_hint: Some(Duration::from_secs(2)),
        location: Some("https://elsewhere.example/".into()),
    }
}

#[test]
fn statuses_map_to_typed_errors_marked_transient_or_terminal() {
    let judged = |call, status, body| judge(call, "bot", reply(status, body));
    let err = judged(Call::Set, 403, r#"{"detail":"Not your agent"}"#).unwrap_err();
    assert!(!err.retryable);
    assert_eq!(
        err.error,
        PlatformError::Forbidden {
            agent: "bot".into(),
            detail: "Not your agent".into()
        }
    );
    let err = judged(Call::List, 503, "<html>down</html>").unwrap_err();
    assert!(err.retryable);
    assert_eq!(err.wait_hint, Some(Duration::from_secs(2)));
    assert!(matches!(err.error, PlatformError::Transient { .. }));
    assert!(
        !err.error.to_string().contains("down"),
        "bodies that are not JSON are not quoted"
    );
    let err = judged(Call::Set, 429, r#"{"detail":"slow down"}"#).unwrap_err();
    assert!(err.retryable);
    assert_eq!(
        err.error,
        PlatformError::RateLimited {
            detail: "slow down".into()
        }
    );
    let err = judged(Call::Delete, 404, r#"{"detail":"Agent not found"}"#).unwrap_err();
    assert_eq!(
        err.error,
        PlatformError::AgentNotFound {
            agent: "bot".into()
        }
    );
    assert!(judged(Call::Delete, 404, r#"{"detail":"Secret not found"}"#).is_ok());
    let err = judged(Call::Delete, 404, "<html>no such page</html>").unwrap_err();
    assert!(matches!(
        err.error,
        PlatformError::InvalidRequest { status: 404, .. }
    ));
    let err = judged(Call::List, 404, r#"{"detail":"Not Found"}"#).unwrap_err();
    assert!(matches!(
        err.error,
        PlatformError::InvalidRequest { status: 404, .. }
    ));
    let err = judged(Call::List, 302, "").unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.error.to_string().contains("elsewhere.example"),
        "{}",
        err.error
    );
    assert_eq!(judged(Call::List, 200, "[]").unwrap(), b"[]");
}

#[test]
fn echoed_values_are_scrubbed_from_errors() {
    let value = SecretValue::new("canary-7f3a91");
    let err = scrub(
        PlatformError::InvalidRequest {
            status: 422,
            detail: "bad value canary-7f3a91".into(),
        },
        &value,
    );
    assert!(!err.to_string().contains("canary"), "{err}");
}
