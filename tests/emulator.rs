//! `castsync emulator` over raw HTTP: the API of docs/platform.md in both wire profiles (`sdk`, the
//! default, and `docs`), its limits, its faults and its admin routes.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::support::*;

const SECRETS: &str = "/api/v1/agents/support-bot/secrets";
const TOKEN: &str = "cast_test";

fn set(emu: &Emulator, key: &str, value: &str) -> ApiReply {
    emu.request(
        "POST",
        SECRETS,
        Some(TOKEN),
        Some(json!({ "key": key, "value": value })),
    )
}

fn keys(reply: &ApiReply) -> Vec<String> {
    reply.json()["secrets"]
        .as_array()
        .expect("{\"secrets\": [...]}")
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_first_line_names_the_address_and_sigterm_exits_zero() {
    let emu = Emulator::start(&["--agents", "support-bot"]);
    assert!(emu.url.starts_with("http://127.0.0.1:"), "{}", emu.url);
    assert_eq!(emu.request("GET", SECRETS, Some(TOKEN), None).status, 200);
    assert_eq!(emu.terminate("TERM").code(), Some(0));
}

#[test]
fn sigint_exits_zero() {
    let emu = Emulator::start(&[]);
    assert_eq!(emu.terminate("INT").code(), Some(0));
}

#[test]
fn a_missing_or_wrong_bearer_is_401_with_a_json_detail() {
    let emu = Emulator::start(&["--agents", "support-bot", "--token", "cast_right"]);
    let none = emu.request("GET", SECRETS, None, None);
    assert_eq!(none.status, 401);
    assert_eq!(none.json(), json!({ "detail": "Not authenticated" }));
    let wrong = emu.request("GET", SECRETS, Some("cast_wrong"), None);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json(), json!({ "detail": "Invalid API key" }));
    assert!(
        wrong.header("x-ratelimit-remaining").is_some(),
        "401s carry the rate headers too"
    );
    assert_eq!(
        emu.request("GET", SECRETS, Some("cast_right"), None).status,
        200
    );

    // Without --token any non-empty bearer is accepted.
    let open = Emulator::start(&["--agents", "support-bot"]);
    assert_eq!(
        open.request("GET", SECRETS, Some("anything"), None).status,
        200
    );
    assert_eq!(open.request("GET", SECRETS, None, None).status, 401);
}

#[test]
fn unknown_agents_are_404_unless_auto_created() {
    let emu = Emulator::start(&[]);
    for (method, path) in [
        ("GET", SECRETS.to_owned()),
        ("DELETE", format!("{SECRETS}/KEY")),
    ] {
        let reply = emu.request(method, &path, Some(TOKEN), None);
        assert_eq!(reply.status, 404, "{method} {path}");
        assert_eq!(reply.json(), json!({ "detail": "Agent not found" }));
    }
    assert_eq!(set(&emu, "KEY", "v").status, 404);

    let auto = Emulator::start(&["--auto-create-agents"]);
    assert_eq!(set(&auto, "KEY", "v").status, 201);
    assert_eq!(
        keys(&auto.request("GET", SECRETS, Some(TOKEN), None)),
        ["KEY"]
    );
}

#[test]
fn the_sdk_profile_answers_exactly_the_sdk_shapes() {
    let emu = Emulator::start(&["--agents", "support-bot", "--rate-limit", "1000/60"]);
    let created = set(&emu, "OPENAI_API_KEY", "v");
    assert_eq!(created.status, 201);
    for i in 0..149 {
        assert_eq!(set(&emu, &format!("K{i:03}"), "v").status, 201);
    }
    // Unpaged: limit and offset are ignored, every key comes back with its name only.
    for query in ["", "?limit=100&offset=0", "?limit=100&offset=100"] {
        let reply = emu.request("GET", &format!("{SECRETS}{query}"), Some(TOKEN), None);
        assert_eq!(reply.status, 200);
        let body = reply.json();
        assert_eq!(body.as_object().unwrap().len(), 1, "only `secrets`: {body}");
        let items = body["secrets"].as_array().unwrap();
        assert_eq!(items.len(), 150, "{query}");
        assert_eq!(items[0], json!({ "key": "K000" }), "names only");
    }
    let gone = emu.request(
        "DELETE",
        &format!("{SECRETS}/OPENAI_API_KEY"),
        Some(TOKEN),
        None,
    );
    assert_eq!(gone.status, 204);
    assert!(gone.text.is_empty());
    let unknown = emu.request("GET", "/api/v1/agents/nobody/secrets", Some(TOKEN), None);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json(), json!({ "detail": "Agent not found" }));
}

#[test]
fn redeploys_answer_the_agent_and_are_counted_per_agent() {
    for wire in ["sdk", "docs"] {
        let emu = Emulator::start(&["--wire", wire, "--agents", "support-bot"]);
        let reply = emu.request(
            "POST",
            "/api/v1/agents/support-bot/redeploy",
            Some(TOKEN),
            None,
        );
        assert_eq!(reply.status, 200, "{wire}");
        assert_eq!(reply.json()["slug"], "support-bot");
        let unknown = emu.request("POST", "/api/v1/agents/nobody/redeploy", Some(TOKEN), None);
        assert_eq!(unknown.status, 404);
        assert_eq!(unknown.json(), json!({ "detail": "Agent not found" }));
        let stats = emu.stats();
        assert_eq!(stats["redeploys"], json!({ "support-bot": 1 }), "{wire}");
        assert_eq!(stats["requests"]["POST"], 2);
    }
}

#[test]
fn lists_page_20_by_default_and_refuse_limits_outside_1_to_100_in_the_docs_profile() {
    let emu = Emulator::start(&[
        "--wire",
        "docs",
        "--agents",
        "support-bot",
        "--rate-limit",
        "1000/60",
    ]);
    for i in 0..25 {
        assert_eq!(set(&emu, &format!("K{i:02}"), "v").status, 200);
    }
    let get = |query: &str| emu.request("GET", &format!("{SECRETS}{query}"), Some(TOKEN), None);
    assert_eq!(keys(&get("")).len(), 20);
    assert_eq!(
        get("").json()["meta"],
        json!({ "total": 25, "limit": 20, "offset": 0, "has_more": true })
    );
    assert_eq!(keys(&get("?limit=100")).len(), 25);
    let rest = get("?offset=20");
    assert_eq!(keys(&rest), ["K20", "K21", "K22", "K23", "K24"]);
    assert_eq!(rest.json()["meta"]["has_more"], false);
    let item = &get("?limit=1").json()["secrets"][0];
    assert!(item["created_at"].is_string() && item["updated_at"].is_string());
    assert!(item.get("value").is_none(), "lists never return values");

    for (query, kind) in [
        ("?limit=0", "greater_than_equal"),
        ("?limit=101", "less_than_equal"),
        ("?limit=ten", "int_parsing"),
        ("?offset=-1", "greater_than_equal"),
    ] {
        let reply = get(query);
        assert_eq!(reply.status, 422, "{query}");
        let detail = &reply.json()["detail"][0];
        assert_eq!(detail["type"], kind, "{query}");
        assert_eq!(detail["loc"][0], "query");
        assert!(detail["msg"].is_string());
    }
}

#[test]
fn post_bodies_are_validated_with_fastapi_style_details() {
    let emu = Emulator::start(&["--agents", "support-bot"]);
    let missing = emu.request("POST", SECRETS, Some(TOKEN), Some(json!({ "key": "A" })));
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.json(),
        json!({ "detail": [{ "loc": ["body", "value"], "msg": "Field required", "type": "missing" }] })
    );
    let bad_key = emu.request(
        "POST",
        SECRETS,
        Some(TOKEN),
        Some(json!({ "key": "not-a-key", "value": "canary-7f3a91-do-not-print" })),
    );
    assert_eq!(bad_key.status, 422);
    assert_eq!(bad_key.json()["detail"][0]["loc"], json!(["body", "key"]));
    assert_no_canary("a 422 body", &bad_key.text, &["canary-7f3a91"]);
    let not_json = emu.request("POST", SECRETS, Some(TOKEN), Some(json!("just a string")));
    assert_eq!(not_json.status, 422);
    assert_eq!(emu.value("support-bot", "A"), None, "nothing was stored");
}

#[test]
fn every_api_response_carries_rate_headers_and_the_budget_ends_in_429() {
    // A day-long window: the test cannot straddle its boundary.
    let emu = Emulator::start(&["--agents", "support-bot", "--rate-limit", "3/86400"]);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let reply = emu.request("GET", SECRETS, Some(TOKEN), None);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-ratelimit-limit"), Some("3"));
        let reset: u64 = reply.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert_eq!(reset % 86400, 0, "windows end on whole periods");
        remaining.push(reply.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = emu.request("DELETE", &format!("{SECRETS}/KEY"), Some(TOKEN), None);
    assert_eq!(refused.status, 429);
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("Rate limit")
    );
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86400).contains(&retry_after));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    // Admin routes are neither limited nor counted.
    for _ in 0..5 {
        assert_eq!(emu.stats()["requests"]["GET"], 3);
    }
    assert_eq!(emu.stats()["responses"], json!({ "200": 3, "429": 1 }));
}

#[test]
fn stats_count_api_calls_by_method_and_status_until_reset() {
    let emu = Emulator::start(&["--agents", "support-bot"]);
    set(&emu, "A", "1");
    emu.request("GET", SECRETS, Some(TOKEN), None);
    emu.request("DELETE", &format!("{SECRETS}/A"), Some(TOKEN), None);
    emu.request("DELETE", &format!("{SECRETS}/A"), Some(TOKEN), None);
    let stats = emu.stats();
    assert_eq!(
        stats["requests"],
        json!({ "GET": 1, "POST": 1, "DELETE": 2 })
    );
    assert_eq!(
        stats["responses"],
        json!({ "200": 1, "201": 1, "204": 1, "404": 1 })
    );
    // reqwest sends no Accept header unless asked: these raw calls are counted as such.
    assert_eq!(stats["missing_accept"], 4);
    emu.reset_stats();
    assert_eq!(
        emu.stats(),
        json!({
            "requests": { "GET": 0, "POST": 0, "DELETE": 0 },
            "responses": {},
            "redeploys": {},
            "missing_accept": 0,
            "user_agents": {},
        })
    );
}

#[test]
fn created_at_is_kept_and_updated_at_moves_on_every_write() {
    let emu = Emulator::start(&["--wire", "docs", "--agents", "support-bot"]);
    set(&emu, "A", "1");
    let first = emu.get_json("/_emulator/agents/support-bot/secrets/A");
    set(&emu, "A", "2");
    let second = emu.get_json("/_emulator/agents/support-bot/secrets/A");
    assert_eq!(second["value"], "2");
    assert_eq!(first["created_at"], second["created_at"]);
    assert!(second["updated_at"].as_str() > first["updated_at"].as_str());
    assert!(second["updated_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn admin_routes_create_agents_and_read_values_back() {
    let emu = Emulator::start(&[]);
    assert_eq!(
        emu.post_json("/_emulator/agents", json!({ "slug": "support-bot" })),
        201
    );
    assert_eq!(
        emu.post_json("/_emulator/agents", json!({ "slug": "support-bot" })),
        200
    );
    assert_eq!(
        emu.post_json("/_emulator/agents", json!({ "slug": "Not Valid" })),
        422
    );
    assert_eq!(emu.value("support-bot", "A"), None);
    let absent = emu.request("GET", "/_emulator/agents/support-bot/secrets/A", None, None);
    assert_eq!(absent.status, 404);
    set(&emu, "A", "hello");
    let read = emu.get_json("/_emulator/agents/support-bot/secrets/A");
    assert_eq!(read["key"], "A");
    assert_eq!(read["value"], "hello");
    assert!(read["created_at"].is_string() && read["updated_at"].is_string());
    let all = emu.get_json("/_emulator/agents/support-bot/secrets");
    assert_eq!(all[0]["value"], "hello");
    assert_eq!(
        emu.stats()["requests"]["POST"],
        1,
        "admin calls are not counted"
    );
}

#[test]
fn the_data_file_survives_a_restart_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("emulator.db");
    let data_arg = data.to_str().unwrap();
    let emu = Emulator::start(&["--agents", "support-bot", "--data", data_arg]);
    assert_eq!(set(&emu, "A", "kept").status, 201);
    assert_eq!(emu.terminate("TERM").code(), Some(0));
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let again = Emulator::start(&["--data", data_arg]);
    assert_eq!(again.value("support-bot", "A").as_deref(), Some("kept"));
}

#[test]
fn reset_mode_drops_the_connection_without_a_response() {
    let emu = Emulator::start(&[
        "--agents",
        "support-bot",
        "--fail-rate",
        "1",
        "--fail-mode",
        "reset",
    ]);
    let result = block_on(async {
        reqwest::Client::new()
            .post(format!("{}{SECRETS}", emu.url))
            .bearer_auth(TOKEN)
            .json(&json!({ "key": "A", "value": "v" }))
            .send()
            .await
    });
    let err = result.expect_err("no response");
    assert!(!err.is_status() && !err.is_decode(), "{err}");
    assert_eq!(emu.stats()["responses"], json!({ "reset": 1 }));
    assert_eq!(
        emu.value("support-bot", "A"),
        None,
        "a reset happens before the store is touched"
    );
}

#[test]
fn malformed_mode_answers_200_with_an_unparseable_body_after_applying() {
    let emu = Emulator::start(&[
        "--agents",
        "support-bot",
        "--fail-rate",
        "1",
        "--fail-mode",
        "malformed",
    ]);
    let reply = set(&emu, "A", "v");
    assert_eq!(reply.status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&reply.text).is_err(),
        "{}",
        reply.text
    );
    assert_eq!(emu.value("support-bot", "A").as_deref(), Some("v"));
    // Errors are left alone: only a successful reply is garbled.
    let missing = emu.request("GET", "/api/v1/agents/nobody/secrets", Some(TOKEN), None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["detail"], "Agent not found");
}

#[test]
fn server_error_and_429_faults_leave_the_store_untouched() {
    for mode in ["500", "429"] {
        let emu = Emulator::start(&[
            "--agents",
            "support-bot",
            "--fail-rate",
            "1",
            "--fail-mode",
            mode,
        ]);
        let reply = set(&emu, "A", "v");
        assert_eq!(reply.status.to_string(), mode);
        assert!(reply.json()["detail"].is_string());
        assert_eq!(emu.value("support-bot", "A"), None, "mode {mode}");
    }
}

#[test]
fn the_emulator_never_logs_values_or_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("emulator.log");
    let emu = Emulator::start_logging(
        &[
            "-vvv",
            "--agents",
            "support-bot",
            "--token",
            "cast_canary-token-51c2",
        ],
        &log,
    );
    let value = "canary-7f3a91-do-not-print";
    let reply = emu.request(
        "POST",
        SECRETS,
        Some("cast_canary-token-51c2"),
        Some(json!({ "key": "A", "value": value })),
    );
    assert_eq!(reply.status, 201);
    emu.request(
        "POST",
        SECRETS,
        Some("cast_canary-token-51c2"),
        Some(json!({ "key": 7, "value": value })),
    );
    emu.request("GET", SECRETS, Some("cast_canary-token-51c2"), None);
    assert_eq!(emu.terminate("TERM").code(), Some(0));
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("api request"),
        "debug logs were captured: {logs}"
    );
    assert_no_canary(
        "the emulator's logs",
        &logs,
        &["canary-7f3a91", "canary-token-51c2"],
    );
}

#[test]
fn bad_flags_fail_with_a_message_naming_the_flag() {
    for (flag, value) in [
        ("--rate-limit", "0/60"),
        ("--rate-limit", "ten"),
        ("--fail-rate", "1.5"),
    ] {
        Test::new()
            .args(["emulator", "--listen", "127.0.0.1:0", flag, value])
            .run()
            .failure()
            .stderr_has(flag)
            // Nothing announced.
            .stdout_is("");
    }
}
