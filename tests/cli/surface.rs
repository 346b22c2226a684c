//! The whole request surface: attachments, tools, structured output, thinking,
//! conversations, replay, token counts and models.

use base64::Engine;
use mockito::Matcher;
use predicates::prelude::*;
use serde_json::{Value, json};

use crate::common::*;

fn received_body(mock_body: &str) -> Value {
    serde_json::from_str(mock_body).unwrap()
}

/// Runs `cs-msg` with `args` against a mock that records the body it received.
fn capture(args: &[&str], stdin: Option<&[u8]>) -> (Value, String) {
    let mut server = mock_server();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let store = std::sync::Arc::clone(&seen);
    server
        .mock("POST", "/v1/messages")
        .with_header("content-type", "text/event-stream")
        .with_body_from_request(move |req| {
            *store.lock().unwrap() = String::from_utf8(req.body().unwrap().clone()).unwrap();
            text_stream(&["ok"]).into_bytes()
        })
        .create();
    let mut c = api(&server);
    c.args(args);
    if let Some(bytes) = stdin {
        c.write_stdin(bytes.to_vec());
    }
    let assert = run(c).success();
    let body = seen.lock().unwrap().clone();
    (received_body(&body), stdout_of(&assert))
}

fn b64(path: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(fixture_path(path)).unwrap())
}

// ---- Attachments ----

#[test]
fn images_and_pdfs_are_typed_by_content() {
    let png = fixture_path("pixel.png");
    let jpg = fixture_path("pixel.jpg");
    let pdf = fixture_path("hello.pdf");
    // Names that lie: the content decides.
    let dir = tempfile::tempdir().unwrap();
    let disguised = dir.path().join("photo.txt");
    std::fs::copy(&jpg, &disguised).unwrap();
    let (body, _) = capture(
        &[
            "-f",
            png.to_str().unwrap(),
            "-f",
            disguised.to_str().unwrap(),
            "-f",
            pdf.to_str().unwrap(),
            "compare",
        ],
        None,
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64("pixel.png")}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64("pixel.jpg")}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64("hello.pdf")}},
            {"type": "text", "text": "compare"}
        ])
    );
    // The base64 round-trips to the exact bytes of the file.
    let data = body["messages"][0]["content"][1]["source"]["data"]
        .as_str()
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    assert_eq!(decoded, std::fs::read(&jpg).unwrap());
}

#[test]
fn piped_images_are_sniffed_too() {
    let png = std::fs::read(fixture_path("pixel.png")).unwrap();
    let (body, _) = capture(&["describe"], Some(&png));
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64("pixel.png")}},
            {"type": "text", "text": "describe"}
        ])
    );
}

#[test]
fn oversized_image_is_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.png");
    let mut bytes = std::fs::read(fixture_path("pixel.png")).unwrap();
    bytes.resize(4 * 1024 * 1024, 0);
    std::fs::write(&big, bytes).unwrap();
    let mut server = mock_server();
    let mock = server.mock("POST", "/v1/messages").expect(0).create();
    let mut c = api(&server);
    c.arg("-f").arg(&big).arg("q");
    run(c).code(2).stderr(format!(
        "cs-msg: file {}: image is 5.3 MiB encoded; the API accepts at most 5 MiB per image\n",
        big.display()
    ));
    mock.assert();
}

// ---- Tools ----

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const WEATHER_TOOL: &str = r#"[{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}]"#;

#[test]
fn tools_and_tool_choice_reach_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let tools = write(&dir, "tools.json", WEATHER_TOOL);
    for (choice, expected) in [
        ("auto", json!({"type": "auto"})),
        ("any", json!({"type": "any"})),
        ("none", json!({"type": "none"})),
        (
            "get_weather",
            json!({"type": "tool", "name": "get_weather"}),
        ),
    ] {
        let (body, _) = capture(&["--tools", &tools, "--tool-choice", choice, "q"], None);
        assert_eq!(
            body["tools"],
            serde_json::from_str::<Value>(WEATHER_TOOL).unwrap()
        );
        assert_eq!(body["tool_choice"], expected);
    }
}

#[test]
fn invalid_tools_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            "{",
            "invalid JSON at line 1, column 1: EOF while parsing an object",
        ),
        (
            r#"{"name":"x"}"#,
            "$: expected an array of tool definitions",
        ),
        (
            r#"[{"name":"a b","input_schema":{"type":"object"}}]"#,
            "$[0].name: must be 1 to 128 characters of letters, digits, '_' or '-'",
        ),
        (
            r#"[{"name":"f","input_schema":{"type":"string"}}]"#,
            "$[0].input_schema.type: must be \"object\"",
        ),
    ] {
        let path = write(&dir, "tools.json", text);
        let mut c = cmd();
        c.args(["--tools", &path, "q"]);
        run(c)
            .code(2)
            .stderr(format!("cs-msg: --tools {path}: {expected}\n"));
    }
    let path = write(&dir, "tools.json", WEATHER_TOOL);
    let mut c = cmd();
    c.args(["--tools", &path, "--tool-choice", "nope", "q"]);
    run(c)
        .code(2)
        .stderr("cs-msg: --tool-choice nope: no tool of that name in --tools\n");
}

#[test]
fn json_mode_keeps_tool_calls_in_the_message() {
    let mut server = mock_server();
    sse_mock(&mut server, fixture("tool.sse")).create();
    let mut c = api(&server);
    c.args(["--json", "q"]);
    let out = stdout_of(&run(c).success());
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["content"][1]["input"],
        json!({"location": "Paris", "unit": "celsius"})
    );
}

// ---- Structured output ----

const PERSON: &str = r#"{"type":"object","properties":{"name":{"type":"string"},"born":{"type":"integer"}},"required":["name","born"]}"#;

fn tool_stream(input: &str) -> String {
    let start = r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#;
    let partial = json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":input}});
    event("message_start", start)
        + &event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"structured_output","input":{}}}"#,
        )
        + &event("content_block_delta", &partial.to_string())
        + &event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        )
        + &stream_end("tool_use")
}

#[test]
fn schema_forces_a_tool_and_prints_exactly_the_object() {
    let mut server = mock_server();
    let mock = sse_mock(&mut server, tool_stream(r#"{"name": "Ada Lovelace", "born": 1815}"#))
        .match_body(Matcher::PartialJson(json!({
            "tools": [{"name": "structured_output", "input_schema": serde_json::from_str::<Value>(PERSON).unwrap()}],
            "tool_choice": {"type": "tool", "name": "structured_output"}
        })))
        .create();
    let mut c = api(&server);
    c.args(["--schema", PERSON, "Ada Lovelace, born 1815 in London"]);
    run(c)
        .success()
        .stdout("{\"name\":\"Ada Lovelace\",\"born\":1815}\n")
        .stderr("");
    mock.assert();
}

#[test]
fn schema_from_a_file_and_non_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let schema = write(&dir, "person.json", PERSON);
    let mut server = mock_server();
    json_mock(
        &mut server,
        r#"{"id":"m","type":"message","role":"assistant","content":[{"type":"tool_use","id":"t","name":"structured_output","input":{"name":"Ada","born":1815}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#,
    )
    .create();
    let mut c = api(&server);
    c.args(["--no-stream", "--schema", &schema, "q"]);
    run(c)
        .success()
        .stdout("{\"name\":\"Ada\",\"born\":1815}\n");
}

#[test]
fn schema_mismatch_exits_6_with_the_first_error() {
    let mut server = mock_server();
    sse_mock(
        &mut server,
        tool_stream(r#"{"name": "Ada", "born": "1815"}"#),
    )
    .create();
    let mut c = api(&server);
    c.args(["--schema", PERSON, "q"]);
    run(c).code(6).stdout("").stderr(
        "cs-msg: structured output does not match --schema at /born: \"1815\" is not of type \"integer\"\n",
    );
}

#[test]
fn schema_without_a_tool_call_exits_6() {
    let mut server = mock_server();
    sse_mock(&mut server, text_stream(&["I refuse."])).create();
    let mut c = api(&server);
    c.args(["--schema", PERSON, "q"]);
    run(c)
        .code(6)
        .stdout("")
        .stderr("cs-msg: the model returned no structured output (stop_reason end_turn)\n");
}

// ---- Thinking ----

#[test]
fn thinking_and_effort_reach_the_request() {
    let (body, _) = capture(&["--thinking", "adaptive", "--effort", "low", "q"], None);
    assert_eq!(body["thinking"], json!({"type": "adaptive"}));
    assert_eq!(body["output_config"], json!({"effort": "low"}));
    let (body, _) = capture(&["-m", "claude-haiku-4.5", "--thinking", "2048", "q"], None);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
}

#[test]
fn forbidden_thinking_combinations_exit_2_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let tools = write(&dir, "tools.json", WEATHER_TOOL);
    for args in [
        vec![
            "--thinking",
            "adaptive",
            "--tools",
            &tools,
            "--tool-choice",
            "any",
            "q",
        ],
        vec!["--thinking", "adaptive", "-t", "0.2", "q"],
        vec!["--thinking", "adaptive", "--top-k", "5", "q"],
        vec!["--thinking", "8000", "q", "--max-tokens", "4000"],
    ] {
        let mut server = mock_server();
        let mock = server.mock("POST", "/v1/messages").expect(0).create();
        let mut c = api(&server);
        c.args(&args);
        run(c)
            .code(2)
            .stderr(predicate::str::starts_with("cs-msg: --thinking"));
        mock.assert();
    }
}

// ---- Conversations ----

#[test]
fn messages_file_prior_turns_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let prior = r#"[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"text","text":"Hello!"}]}]"#;
    let path = write(&dir, "m.json", prior);
    let (body, _) = capture(&["--messages", &path, "And in French?"], None);
    let mut expected: Vec<Value> = serde_json::from_str(prior).unwrap();
    expected.push(json!({"role": "user", "content": [{"type": "text", "text": "And in French?"}]}));
    assert_eq!(body["messages"], json!(expected));
    // Alone, the file is the whole conversation.
    let path = write(&dir, "m2.json", r#"[{"role":"user","content":"Hi"}]"#);
    let (body, _) = capture(&["--messages", &path], None);
    assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
}

#[test]
fn invalid_messages_exit_2_with_position_or_path() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            "[\n  {\"role\": \"user\" \"content\": \"x\"}\n]",
            "invalid JSON at line 2, column 19: expected `,` or `}`",
        ),
        (
            r#"[{"role":"user","content":"a"},{"role":"bot","content":"b"}]"#,
            "$[1].role: expected \"user\" or \"assistant\"",
        ),
    ] {
        let path = write(&dir, "m.json", text);
        let mut c = cmd();
        c.args(["--messages", &path, "q"]);
        run(c)
            .code(2)
            .stderr(format!("cs-msg: --messages {path}: {expected}\n"));
    }
}

#[test]
fn conversation_appends_exactly_two_turns_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    let chat_s = chat.to_str().unwrap();

    let mut server = mock_server();
    sse_mock(&mut server, fixture("thinking.sse"))
        .match_body(Matcher::PartialJson(json!({
            "messages": [{"role": "user", "content": [{"type": "text", "text": "gcd?"}]}]
        })))
        .expect(1)
        .create();
    let mut c = api(&server);
    c.args(["-c", chat_s, "gcd?"]);
    run(c).success().stdout("The GCD is **21**.\n");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&chat).unwrap()).unwrap();
    let reply: Value = serde_json::from_str(&fixture("thinking.json")).unwrap();
    let first_two = json!([
        {"role": "user", "content": [{"type": "text", "text": "gcd?"}]},
        // Thinking blocks are kept verbatim, signature included, as the API requires.
        {"role": "assistant", "content": reply["content"]}
    ]);
    assert_eq!(saved, first_two);

    // The next call sends the history plus the new turn, and saves two more turns.
    let mut expected_messages = first_two.as_array().unwrap().clone();
    expected_messages
        .push(json!({"role": "user", "content": [{"type": "text", "text": "And in French?"}]}));
    let mut server = mock_server();
    sse_mock(&mut server, text_stream(&["Le PGCD est 21."]))
        .match_body(Matcher::PartialJson(json!({"messages": expected_messages})))
        .expect(1)
        .create();
    let mut c = api(&server);
    c.args(["--conversation", chat_s, "And in French?"]);
    run(c).success().stdout("Le PGCD est 21.\n");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&chat).unwrap()).unwrap();
    assert_eq!(saved.as_array().unwrap().len(), 4);
    assert_eq!(
        saved[3],
        json!({"role": "assistant", "content": [{"type": "text", "text": "Le PGCD est 21."}]})
    );
    // Nothing but the file in the directory: no temp files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn failed_calls_leave_the_conversation_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    let original = "[\n {\"role\":\"user\",\"content\":\"Hi\"},   {\"role\":\"assistant\",\"content\":\"Hello\"}\n]\n";
    std::fs::write(&chat, original).unwrap();
    let truncated = cut_before(&text_stream(&["partial"]), "event: message_delta");
    type Setup = Box<dyn Fn(&mut mockito::ServerGuard)>;
    let cases: Vec<(Setup, i32)> = vec![
        (
            Box::new(|s| {
                error_mock(s, 400, "invalid_request_error", "bad").create();
            }),
            1,
        ),
        (
            Box::new(move |s| {
                sse_mock(s, truncated.clone()).create();
            }),
            5,
        ),
        (
            Box::new(|s| {
                sse_mock(s, text_stream(&["x"]).replace("end_turn", "max_tokens")).create();
            }),
            6,
        ),
    ];
    for (setup, code) in cases {
        let mut server = mock_server();
        setup(&mut server);
        let mut c = api(&server);
        c.args([
            "--strict",
            "--max-retries",
            "0",
            "-c",
            chat.to_str().unwrap(),
            "next",
        ]);
        run(c).code(code);
        assert_eq!(std::fs::read_to_string(&chat).unwrap(), original);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn conversation_needs_a_new_turn() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "chat.json",
        r#"[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]"#,
    );
    let mut c = cmd();
    c.args(["-c", &path]);
    run(c)
        .code(2)
        .stderr(predicate::str::starts_with("cs-msg: nothing to send"));
}

// ---- Replay ----

#[test]
fn dry_run_output_replays_to_the_identical_body() {
    let dir = tempfile::tempdir().unwrap();
    let tools = write(&dir, "tools.json", WEATHER_TOOL);
    let args = [
        "-m",
        "claude-haiku-4.5",
        "-s",
        "terse",
        "--tools",
        &tools,
        "--stop",
        "END",
        "--thinking",
        "2048",
        "--effort",
        "high",
        "hello",
    ];
    let mut c = cmd();
    c.arg("--dry-run").args(args);
    let dry = stdout_of(&run(c).success());
    let saved = write(&dir, "req.json", &dry);

    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::Exact(dry.trim_end().to_owned()))
        .create();
    let mut c = api(&server);
    c.env("CS_MSG_MODEL", "claude-opus-4.6")
        .args(["--request", &saved]);
    run(c).success().stdout("ok\n");
    mock.assert();

    // And from stdin.
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::Exact(dry.trim_end().to_owned()))
        .create();
    let mut c = api(&server);
    c.args(["--request", "-"]).write_stdin(dry.clone());
    run(c).success();
    mock.assert();
}

#[test]
fn explicit_flags_override_request_fields_environment_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let req = write(
        &dir,
        "req.json",
        r#"{"model":"claude-haiku-4.5","max_tokens":50,"messages":[{"role":"user","content":"hi"}],"temperature":0.1,"custom_field":{"kept":true}}"#,
    );
    let mut server = mock_server();
    let mock = json_mock(&mut server, fixture("text.json"))
        .match_body(Matcher::Json(json!({
            "model": "claude-haiku-4.5", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": [{"type": "text", "text": "more"}]}],
            "temperature": 0.7, "custom_field": {"kept": true}
        })))
        .create();
    let mut c = api(&server);
    c.env("CS_MSG_MODEL", "claude-opus-4.6")
        .env("CS_MSG_MAX_TOKENS", "9")
        .args(["--request", &req, "-t", "0.7", "more"]);
    run(c).success();
    mock.assert();
}

// ---- Token counts and models ----

#[test]
fn count_tokens_posts_the_assembled_request() {
    let mut server = mock_server();
    let mock = server
        .mock("POST", "/v1/messages/count_tokens")
        .match_header("x-api-key", KEY)
        .match_body(Matcher::Json(json!({
            "model": "claude-sonnet-4.6", "system": "s",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "count me"}]}]
        })))
        .with_header("content-type", "application/json")
        .with_body(r#"{"input_tokens": 42}"#)
        .expect(2)
        .create();
    let mut c = api(&server);
    c.args(["--count-tokens", "-s", "s", "count me"]);
    run(c).success().stdout("42\n");
    let mut c = api(&server);
    c.args(["--count-tokens", "--json", "-s", "s", "count me"]);
    run(c).success().stdout("{\"input_tokens\":42}\n");
    mock.assert();
}

#[test]
fn list_models_follows_every_page() {
    let mut server = mock_server();
    let page1 = server
        .mock("GET", "/v1/models")
        .match_query(Matcher::Regex("^limit=1000$".into()))
        .match_header("x-api-key", KEY)
        .with_header("content-type", "application/json")
        .with_body(r#"{"data":[{"type":"model","id":"claude-opus-4.6"},{"type":"model","id":"claude-sonnet-4.6"}],"has_more":true,"first_id":"claude-opus-4.6","last_id":"claude-sonnet-4.6"}"#)
        .expect(2)
        .create();
    let page2 = server
        .mock("GET", "/v1/models")
        .match_query(Matcher::AllOf(vec![
            Matcher::UrlEncoded("limit".into(), "1000".into()),
            Matcher::UrlEncoded("after_id".into(), "claude-sonnet-4.6".into()),
        ]))
        .with_header("content-type", "application/json")
        .with_body(r#"{"data":[{"type":"model","id":"claude-haiku-4.5"}],"has_more":false,"first_id":"claude-haiku-4.5","last_id":"claude-haiku-4.5"}"#)
        .expect(2)
        .create();
    let mut c = api(&server);
    c.arg("--list-models");
    run(c)
        .success()
        .stdout("claude-opus-4.6\nclaude-sonnet-4.6\nclaude-haiku-4.5\n");
    let mut c = api(&server);
    c.args(["--list-models", "--json"]);
    run(c).success().stdout(
        "[{\"type\":\"model\",\"id\":\"claude-opus-4.6\"},{\"type\":\"model\",\"id\":\"claude-sonnet-4.6\"},{\"type\":\"model\",\"id\":\"claude-haiku-4.5\"}]\n",
    );
    page1.assert();
    page2.assert();
}

#[test]
fn an_empty_reply_leaves_the_conversation_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    let mut server = mock_server();
    let refusal = text_stream(&[]).replace("end_turn", "refusal");
    sse_mock(&mut server, refusal).create();
    let mut c = api(&server);
    c.args(["-c", chat.to_str().unwrap(), "q"]);
    run(c).success().stdout("").stderr(format!(
        "cs-msg: warning: the model refused to answer (stop_reason refusal)\ncs-msg: warning: the reply was empty; {} was left unchanged\n",
        chat.display()
    ));
    assert!(!chat.exists());
}

#[test]
fn empty_attached_files_are_named_in_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(&dir, "empty.txt", "");
    let (body, _) = capture(&["-f", &empty, "q"], None);
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"type": "text", "text": "q"}])
    );
    let mut c = cmd();
    c.args(["--dry-run", "-f", &empty, "q"]);
    run(c).success().stderr(format!(
        "cs-msg: warning: file {empty} is empty; not sent\n"
    ));
}

#[test]
fn model_ids_are_printed_terminal_safe() {
    let mut server = mock_server();
    server
        .mock("GET", "/v1/models")
        .match_query(Matcher::Any)
        .with_header("content-type", "application/json")
        .with_body(r#"{"data":[{"id":"evil\u001b[2J\nsecond-line\u202e"}],"has_more":false}"#)
        .create();
    let mut c = api(&server);
    c.arg("--list-models");
    run(c)
        .success()
        .stdout("evil\u{fffd}[2J second-line\u{fffd}\n");
}

#[test]
fn a_dropped_models_page_is_a_network_failure_and_retried() {
    use crate::server::{Response, Server};
    let page = r#"{"data":[{"id":"claude-haiku-4.5"}],"has_more":false}"#;
    let server = Server::script([
        Response::json(200, page).cut_after(5),
        Response::json(200, page),
    ]);
    let mut c = cmd();
    c.args(["--base-url", server.url(), "--list-models"])
        .env("CS_MSG_API_KEY", KEY);
    run(c).success().stdout("claude-haiku-4.5\n");
    assert_eq!(server.request_count(), 2);
}
