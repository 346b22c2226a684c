//! What the server receives: the exact body and headers for each way of giving input.

use mockito::Matcher;
use serde_json::json;

use crate::common::*;

fn text(t: &str) -> serde_json::Value {
    json!({"type": "text", "text": t})
}

fn body(content: serde_json::Value) -> serde_json::Value {
    json!({
        "model": "claude-sonnet-4.6",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": content}],
        "stream": true
    })
}

#[test]
fn prompt_words_are_joined_and_headers_sent() {
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_header("x-api-key", KEY)
        .match_header("anthropic-version", "2023-06-01")
        .match_header("content-type", "application/json")
        .match_header("authorization", Matcher::Missing)
        .match_header("anthropic-beta", Matcher::Missing)
        .match_body(Matcher::Json(body(json!([text(
            "Explain  SSE in one line"
        )]))))
        .create();
    let mut c = api(&server);
    c.args(["Explain ", "SSE in one line"]);
    run(c).success().stdout("ok\n");
    mock.assert();
}

#[test]
fn stdin_then_prompt() {
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::Json(body(json!([
            text("notes line\n"),
            text("Summarize")
        ]))))
        .create();
    let mut c = api(&server);
    c.arg("Summarize").write_stdin("notes line\n");
    run(c).success();
    mock.assert();
}

#[test]
fn files_then_stdin_then_prompt_with_file_labels() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.md");
    std::fs::write(&a, "alpha\n").unwrap();
    std::fs::write(&b, "beta").unwrap();
    let mut server = mock_server();
    let expected = body(json!([
        text(&format!("<file path=\"{}\">\nalpha\n</file>", a.display())),
        text(&format!("<file path=\"{}\">\nbeta\n</file>", b.display())),
        text("piped"),
        text("compare")
    ]));
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::Json(expected))
        .create();
    let mut c = api(&server);
    c.arg("-f")
        .arg(&a)
        .arg("--file")
        .arg(&b)
        .arg("compare")
        .write_stdin("piped");
    run(c).success();
    mock.assert();
}

#[test]
fn file_dash_reads_stdin_in_its_place() {
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::Json(body(json!([
            text("<file path=\"stdin\">\nfrom stdin\n</file>"),
            text("go")
        ]))))
        .create();
    let mut c = api(&server);
    c.args(["-f", "-", "go"]).write_stdin("from stdin");
    run(c).success();
    mock.assert();
}

#[test]
fn no_stdin_ignores_piped_input() {
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::Json(body(json!([text("only this")]))))
        .create();
    let mut c = api(&server);
    c.args(["--no-stdin", "only this"]).write_stdin("ignored");
    run(c).success();
    mock.assert();
}

#[test]
fn every_generation_flag_maps_to_its_field() {
    let mut server = mock_server();
    let expected = json!({
        "model": "claude-haiku-4.5",
        "max_tokens": 200,
        "system": "be terse",
        "messages": [{"role": "user", "content": [text("q")]}],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END", "STOP"],
        "metadata": {"user_id": "user-42"},
        "stream": true
    });
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_header(
            "anthropic-beta",
            "context-1m-2025-08-07,interleaved-thinking-2025-05-14",
        )
        .match_body(Matcher::Json(expected))
        .create();
    let mut c = api(&server);
    c.args([
        "-m",
        "claude-haiku-4.5",
        "--max-tokens",
        "200",
        "-s",
        "be terse",
        "-t",
        "0.2",
        "--top-p",
        "0.9",
        "--top-k",
        "40",
        "--stop",
        "END",
        "--stop",
        "STOP",
        "--metadata-user-id",
        "user-42",
        "--beta",
        "context-1m-2025-08-07",
        "--beta",
        "interleaved-thinking-2025-05-14",
        "q",
    ]);
    run(c).success();
    mock.assert();
}

#[test]
fn system_file_and_environment_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("system.txt");
    std::fs::write(&sys, "You are a poet.\n").unwrap();
    let mut server = mock_server();
    let mock = json_mock(&mut server, fixture("text.json"))
        .match_body(Matcher::Json(json!({
            "model": "claude-opus-4.6",
            "max_tokens": 77,
            "system": "You are a poet.\n",
            "messages": [{"role": "user", "content": [text("hi")]}]
        })))
        .create();
    let mut c = cmd();
    c.env("CS_MSG_BASE_URL", server.url())
        .env("CS_MSG_API_KEY", KEY)
        .env("CS_MSG_MODEL", "claude-opus-4.6")
        .env("CS_MSG_MAX_TOKENS", "77")
        .arg("--system-file")
        .arg(&sys)
        .args(["--no-stream", "hi"]);
    run(c).success();
    mock.assert();
}

#[test]
fn flags_override_environment() {
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::PartialJson(
            json!({"model": "claude-haiku-4.5", "max_tokens": 9}),
        ))
        .create();
    let mut c = api(&server);
    c.env("CS_MSG_MODEL", "claude-opus-4.6")
        .env("CS_MSG_MAX_TOKENS", "77")
        .args(["-m", "claude-haiku-4.5", "--max-tokens", "9", "hi"]);
    run(c).success();
    mock.assert();
}

#[test]
fn api_key_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_header("x-api-key", KEY)
        .create();
    let (_, mut c) = key_file_cmd(dir.path(), &format!("{KEY}\n"), 0o600, &server);
    c.arg("hi");
    run(c).success().stderr("");
    mock.assert();
}

#[test]
fn dry_run_prints_the_body_and_sends_nothing() {
    let mut server = mock_server();
    let mock = server.mock("POST", "/v1/messages").expect(0).create();
    let mut c = api(&server);
    c.args(["--dry-run", "-s", "sys", "hello"]);
    run(c).success().stdout(
        "{\"model\":\"claude-sonnet-4.6\",\"max_tokens\":4096,\"system\":\"sys\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hello\"}]}],\"stream\":true}\n",
    );
    mock.assert();
}

#[test]
fn dry_run_needs_no_key() {
    let mut c = cmd();
    c.args(["--dry-run", "--no-stream", "hi"]);
    run(c).success().stdout(
        "{\"model\":\"claude-sonnet-4.6\",\"max_tokens\":4096,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]}\n",
    );
}

#[test]
fn base_url_path_prefix_is_kept() {
    let mut server = mock_server();
    let mock = server
        .mock("POST", "/gateway/v1/messages")
        .with_header("content-type", "text/event-stream")
        .with_body(text_stream(&["ok"]))
        .create();
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .arg("--base-url")
        .arg(format!("{}/gateway/", server.url()))
        .arg("hi");
    run(c).success().stdout("ok\n");
    mock.assert();
}

#[test]
fn stdin_hint_appears_when_stdin_stays_silent() {
    use std::io::Read;
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::Json(body(json!([text("late"), text("prompt")]))))
        .create();
    let mut child = spawn(
        &server.url(),
        &["prompt"],
        &[("CS_MSG_STDIN_HINT_MS", "100")],
    );
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    use std::io::Write;
    stdin.write_all(b"late").unwrap();
    drop(stdin);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        stderr,
        "cs-msg: waiting for stdin; use --no-stdin or </dev/null\n"
    );
    mock.assert();
}

#[test]
fn a_flag_reading_stdin_takes_it_from_the_user_turn() {
    let mut server = mock_server();
    let mock = sse_mock(&mut server, text_stream(&["ok"]))
        .match_body(Matcher::Json(json!({
            "model": "claude-sonnet-4.6", "max_tokens": 4096, "system": "from stdin",
            "messages": [{"role": "user", "content": [text("q")]}], "stream": true
        })))
        .create();
    let mut c = api(&server);
    c.args(["--system-file", "-", "q"])
        .write_stdin("from stdin");
    run(c).success();
    mock.assert();
    let mut c = cmd();
    c.args(["--messages", "-", "-f", "-", "q"]);
    run(c)
        .code(2)
        .stderr("cs-msg: --messages -, -f - all read stdin; it can be read only once\n");
}
