//! Relays on the wire (issue 11 items 1, 6, 8, 9, 10; issue 12 item 1): errors inside
//! a 2xx, compressed and empty bodies, partial text before a failure, the fallback
//! model, and connection reuse, against the tests' scripted server (`server.rs`),
//! which records the requests and counts the connections it accepted.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::server::{Request, Response, Server};

// ---------------------------------------------------------------------------------
// The server

/// Longer than any test: a pause this long lasts until the server is dropped.
const FOREVER: Duration = Duration::from_secs(600);

struct Relay {
    server: Server,
}

impl Relay {
    /// `handler(body, n)` answers the `n`th request (from 0).
    fn start(handler: impl Fn(&Value, usize) -> Response + Send + Sync + 'static) -> Relay {
        let server = Server::new(move |req: &Request| handler(&req.json(), req.index));
        Relay { server }
    }

    fn url(&self) -> &str {
        self.server.url()
    }

    fn connections(&self) -> usize {
        self.server.connections()
    }

    /// The `model` of every request, in arrival order.
    fn models(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .map(|r| r.json()["model"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    fn count(&self) -> usize {
        self.server.request_count()
    }

    /// cs-msg pointed at this server, with the test key and no retry waits.
    fn cmd(&self) -> assert_cmd::Command {
        let mut c = cmd();
        c.env("CS_MSG_API_KEY", KEY)
            .arg("--base-url")
            .arg(self.url());
        c
    }

    /// `cs-msg ARGS; echo END` through sh: stdout shows whether the output cs-msg
    /// left ends its line before whatever the shell prints next.
    fn then_echo(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$@"; echo END"#)
            .arg(assert_cmd::cargo::cargo_bin!("cs-msg"))
            .arg("--base-url")
            .arg(self.url())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CS_MSG_API_KEY", KEY)
            .env("CS_MSG_BACKOFF_MS", "1")
            .env("NO_PROXY", "*")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }
}

/// `status` with this relay's request id.
fn reply(status: u16) -> Response {
    Response::new(status).header("request-id", "req_relay")
}

/// A whole response with a content-length.
fn http(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut r = reply(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(body)
}

fn json_reply(status: u16, body: &str) -> Response {
    http(
        status,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

/// A chunked event stream with `body` as one chunk; the terminator follows.
fn sse(body: &str) -> Response {
    reply(200)
        .header("content-type", "text/event-stream")
        .chunked()
        .chunk(body)
}

/// [`sse`] whose terminator never comes: the socket stays open, silent, until the
/// server is dropped.
fn unterminated_sse(body: &str) -> Response {
    sse(body).pause(FOREVER)
}

/// A stream whose body ends when the connection closes.
fn sse_close(body: &str) -> Response {
    reply(200)
        .header("content-type", "text/event-stream")
        .close_delimited()
        .chunk(body)
}

/// A complete stream answering `text` as model `model`.
fn answer(model: &str, text: &str) -> String {
    text_stream(&[text]).replace(r#""model":"m""#, &format!(r#""model":"{model}""#))
}

/// "hi" as the model the request asked for: streamed if the request asked for a
/// stream, else a whole message.
fn echo_model(body: &Value) -> Response {
    let model = body["model"].as_str().unwrap_or("m");
    if body["stream"] == json!(true) {
        return sse(&answer(model, "hi"));
    }
    let message = json!({"id":"msg_1","type":"message","role":"assistant","model":model,
        "content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":3,"output_tokens":1}});
    json_reply(200, &message.to_string())
}

fn envelope(kind: &str, message: &str) -> String {
    json!({"type":"error","error":{"type":kind,"message":message}}).to_string()
}

/// The stream of "hi" up to, not including, its `message_delta`.
fn begin() -> String {
    cut_before(&text_stream(&["hi"]), "event: message_delta")
}

/// A request's head as sent: its request line and headers.
fn head(r: &Request) -> String {
    let mut head = r.request_line() + "\r\n";
    for (k, v) in &r.headers {
        head += &format!("{k}: {v}\r\n");
    }
    head
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------
// Issue 11 item 1: an error envelope inside a 2xx

#[test]
fn an_error_envelope_in_a_2xx_json_body_is_handled_like_its_status() {
    let openai_rate_limit = r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#;
    let openai_invalid = r#"{"error":{"message":"model is required","type":"invalid_request_error","param":null,"code":null}}"#;
    let cases: [(String, &[&str], i32, usize, &str); 6] = [
        // Overloaded: retried, then exit 4.
        (
            envelope("overloaded_error", "Overloaded"),
            &["--no-stream"],
            4,
            2,
            "cs-msg: HTTP 200 overloaded_error: Overloaded (request-id req_relay) (after 1 retries)\n",
        ),
        // The same JSON answering a streaming request.
        (
            envelope("overloaded_error", "Overloaded"),
            &[],
            4,
            2,
            "cs-msg: HTTP 200 overloaded_error: Overloaded (request-id req_relay) (after 1 retries)\n",
        ),
        // OpenAI-shaped, a rate limit: retried, then exit 4.
        (
            openai_rate_limit.into(),
            &["--no-stream"],
            4,
            2,
            "cs-msg: HTTP 200 rate_limit_error: Rate limit reached (code rate_limit_exceeded) (request-id req_relay) (after 1 retries)\n",
        ),
        // Authentication: exit 3, not retried.
        (
            envelope("authentication_error", "invalid x-api-key"),
            &["--no-stream"],
            3,
            1,
            "cs-msg: HTTP 200 authentication_error: invalid x-api-key (request-id req_relay)\n",
        ),
        // Anything else: exit 1, not retried.
        (
            openai_invalid.into(),
            &[],
            1,
            1,
            "cs-msg: HTTP 200 invalid_request_error: model is required (request-id req_relay)\n",
        ),
        // api_error goes with 500: retried, then exit 1.
        (
            envelope("api_error", "Internal server error"),
            &["--no-stream"],
            1,
            2,
            "cs-msg: HTTP 200 api_error: Internal server error (request-id req_relay) (after 1 retries)\n",
        ),
    ];
    for (body, args, code, requests, stderr) in cases {
        let relay = Relay::start(move |_, _| json_reply(200, &body));
        let mut c = relay.cmd();
        c.args(["--max-retries", "1"]).args(args).arg("q");
        run(c).code(code).stdout("").stderr(stderr.to_owned());
        assert_eq!(relay.count(), requests, "{stderr}");
    }
}

#[test]
fn a_retried_error_envelope_in_a_2xx_can_still_succeed() {
    let relay = Relay::start(|body, n| match n {
        0 => json_reply(200, &envelope("overloaded_error", "Overloaded")),
        _ => echo_model(body),
    });
    let mut c = relay.cmd();
    c.arg("q");
    run(c).success().stdout("hi\n").stderr("");
    assert_eq!(relay.count(), 2);
}

#[test]
fn a_stream_whose_only_data_is_an_error_envelope_is_that_error() {
    let openai =
        r#"{"error":{"message":"upstream overloaded","type":"overloaded_error","code":null}}"#;
    let cases = [
        // OpenAI-shaped, as the data of an unnamed event: retried, then exit 4.
        (
            format!("data: {openai}\n\n"),
            4,
            2,
            "cs-msg: HTTP 200 overloaded_error: upstream overloaded (request-id req_relay) (after 1 retries)\n",
        ),
        // Bare JSON under text/event-stream, no `data:` at all.
        (
            envelope("rate_limit_error", "slow down"),
            4,
            2,
            "cs-msg: HTTP 200 rate_limit_error: slow down (request-id req_relay) (after 1 retries)\n",
        ),
        (
            envelope("permission_error", "no access to this model"),
            3,
            1,
            "cs-msg: HTTP 200 permission_error: no access to this model (request-id req_relay)\n",
        ),
    ];
    for (body, code, requests, stderr) in cases {
        let relay = Relay::start(move |_, _| sse(&body));
        let mut c = relay.cmd();
        c.args(["--max-retries", "1", "q"]);
        run(c).code(code).stdout("").stderr(stderr);
        assert_eq!(relay.count(), requests, "{stderr}");
    }
}

// ---------------------------------------------------------------------------------
// Issue 11 item 6: Content-Encoding

/// The first bytes of a gzip stream (`echo hi | gzip`).
const GZIP: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0xc8, 0xe4, 0x02, 0x00, 0x7a,
    0x7a, 0x6f, 0xed, 0x03, 0x00, 0x00, 0x00,
];

#[test]
fn a_compressed_body_is_reported_in_one_line_naming_the_encoding() {
    let tail =
        "though none was asked for; a proxy in between may be misconfigured (request-id req_relay)";
    let cases: [(&str, Option<&str>, &str, &[&str]); 6] = [
        (
            "application/json",
            Some("gzip"),
            "gzip-compressed (Content-Encoding: gzip)",
            &["--no-stream"],
        ),
        (
            "text/event-stream",
            Some("gzip"),
            "gzip-compressed (Content-Encoding: gzip)",
            &[],
        ),
        (
            "text/event-stream",
            Some("br"),
            "brotli-compressed (Content-Encoding: br)",
            &[],
        ),
        (
            "application/json",
            Some("zstd"),
            "zstd-compressed (Content-Encoding: zstd)",
            &["--no-stream"],
        ),
        // No header: the magic bytes give it away.
        (
            "application/json",
            None,
            "gzip-compressed (it starts with gzip's magic bytes)",
            &["--no-stream"],
        ),
        (
            "text/event-stream",
            None,
            "gzip-compressed (it starts with gzip's magic bytes)",
            &[],
        ),
    ];
    for (content_type, encoding, what, args) in cases {
        let relay = Relay::start(move |_, _| {
            let mut headers = vec![("content-type", content_type)];
            if let Some(e) = encoding {
                headers.push(("content-encoding", e));
            }
            http(200, &headers, GZIP)
        });
        let mut c = relay.cmd();
        c.args(args).arg("q");
        run(c).code(1).stdout("").stderr(format!(
            "cs-msg: malformed response: the body is {what} {tail}\n"
        ));
        // Asked for none: no Accept-Encoding was sent.
        let requests = relay.server.requests();
        let head = head(&requests[0]);
        assert!(
            !head.to_ascii_lowercase().contains("accept-encoding"),
            "{head}"
        );
    }
}

#[test]
fn binary_bodies_without_a_magic_number_are_shown_in_hex() {
    // Brotli has no magic number: with no header, the body is still never printed as
    // replacement characters.
    let brotli: &[u8] = &[0x8b, 0x05, 0x80, 0xff, 0xfe, 0x01, 0x02, 0x9c, 0x00, 0xc3];
    for (content_type, args, what) in [
        (
            "application/json",
            &["--no-stream"][..],
            "expected a message object",
        ),
        ("text/event-stream", &[][..], "not an event stream"),
    ] {
        let relay = Relay::start(move |_, _| http(200, &[("content-type", content_type)], brotli));
        let mut c = relay.cmd();
        c.args(args).arg("q");
        run(c).code(1).stdout("").stderr(format!(
            "cs-msg: malformed response: {what}: binary data, not text (starting 8b 05 80 ff fe 01 02 9c …) (request-id req_relay)\n"
        ));
    }
}

#[test]
fn help_never_shows_the_base_url_from_the_environment() {
    let mut c = cmd();
    c.env("CS_MSG_BASE_URL", "https://gw.example/t0ken-in-path")
        .arg("--help");
    let assert = run(c).success();
    let help = stdout_of(&assert);
    assert!(help.contains("[env: CS_MSG_BASE_URL]"), "{help}");
    assert!(!help.contains("t0ken"), "{help}");
}

// ---------------------------------------------------------------------------------
// Issue 11 item 8: an empty 2xx body

#[test]
fn an_empty_2xx_body_says_so_streamed_or_not() {
    let cases: [(Response, &[&str]); 4] = [
        (json_reply(200, ""), &["--no-stream"]),
        (json_reply(200, "\r\n"), &["--no-stream"]),
        (sse(""), &[]),
        // Headers, then the connection closes without a byte of body.
        (sse_close(""), &[]),
    ];
    for (reply, args) in cases {
        let relay = Relay::start(move |_, _| reply.clone());
        let mut c = relay.cmd();
        c.args(args).arg("q");
        // Exit 5, as a dropped connection, and not retried (see response::empty_body).
        run(c)
            .code(5)
            .stdout("")
            .stderr("cs-msg: empty response body (HTTP 200) (request-id req_relay)\n");
        assert_eq!(relay.count(), 1);
    }
}

// ---------------------------------------------------------------------------------
// Issue 11 item 9: partial text ends its line before the error line

#[test]
fn partial_text_ends_its_line_before_the_error_line_on_every_failure() {
    let cases: [(Response, &[&str], i32, &str); 4] = [
        // Truncated: the connection closes before message_stop.
        (
            sse_close(&begin()),
            &[],
            5,
            "cs-msg: the stream ended before message_stop; the answer is incomplete (request-id req_relay)\n",
        ),
        // A read that fails: the server falls silent past --idle-timeout.
        (
            unterminated_sse(&begin()),
            &["--idle-timeout", "0.3"],
            5,
            "cs-msg: timed out: no data from the server for 0.3 s (--idle-timeout); the answer is incomplete (request-id req_relay)\n",
        ),
        // An error event mid-stream.
        (
            sse(&(begin()
                + &event(
                    "error",
                    r#"{"type":"error","error":{"type":"api_error","message":"upstream died"}}"#,
                ))),
            &[],
            1,
            "cs-msg: error event in stream api_error: upstream died (request-id req_relay)\n",
        ),
        // Malformed data mid-stream.
        (
            sse(&(begin() + "event: message_delta\ndata: {oops\n\n")),
            &[],
            1,
            "cs-msg: malformed response: message_delta event is not JSON: key must be a string at line 1 column 2 (request-id req_relay)\n",
        ),
    ];
    for (reply, args, code, stderr) in cases {
        let relay = Relay::start(move |_, _| reply.clone());
        let mut all = args.to_vec();
        all.extend(["--no-stdin", "q"]);
        let out = relay.then_echo(&all);
        assert_eq!(text(&out.stdout), "hi\nEND\n", "{stderr}");
        assert_eq!(text(&out.stderr), stderr);
        // sh exits with echo's status: the code is checked through cs-msg itself.
        let mut c = relay.cmd();
        c.args(args).arg("q");
        run(c).code(code).stdout("hi\n").stderr(stderr);
    }
}

// ---------------------------------------------------------------------------------
// Issue 11 item 10: the fallback model

/// A gateway on which `claude-opus-4.6` fails with `failure` and every other model
/// answers "hi" (naming itself in the message).
fn gateway(failure: impl Fn() -> Response + Send + Sync + 'static) -> Relay {
    Relay::start(move |body, _| match body["model"].as_str() {
        Some("claude-opus-4.6") => failure(),
        _ => echo_model(body),
    })
}

#[test]
fn an_overloaded_model_falls_back_after_its_retries() {
    let relay = gateway(|| json_reply(529, &envelope("overloaded_error", "Overloaded")));
    let mut c = relay.cmd();
    c.args([
        "-m",
        "claude-opus-4.6",
        "--fallback-model",
        "claude-haiku-4.5",
        "--max-retries",
        "1",
        "q",
    ]);
    run(c)
        .success()
        .stdout("hi\n")
        .stderr("cs-msg: claude-opus-4.6 overloaded; answering with claude-haiku-4.5\n");
    assert_eq!(
        relay.models(),
        ["claude-opus-4.6", "claude-opus-4.6", "claude-haiku-4.5"]
    );
    // The retry and the fallback reuse the first connection.
    assert_eq!(relay.connections(), 1);
}

#[test]
fn a_model_not_found_falls_back_and_json_shows_the_model_that_answered() {
    let relay = gateway(|| json_reply(404, &envelope("not_found_error", "model: claude-opus-4.6")));
    let mut c = relay.cmd();
    c.env("CS_MSG_FALLBACK_MODEL", "claude-haiku-4.5").args([
        "-m",
        "claude-opus-4.6",
        "--json",
        "q",
    ]);
    let assert = run(c)
        .success()
        .stderr("cs-msg: claude-opus-4.6 not found; answering with claude-haiku-4.5\n");
    let message: Value = serde_json::from_str(&stdout_of(&assert)).unwrap();
    assert_eq!(message["model"], "claude-haiku-4.5");
    assert_eq!(message["content"][0]["text"], "hi");
    assert_eq!(relay.models(), ["claude-opus-4.6", "claude-haiku-4.5"]);
}

#[test]
fn a_rate_limit_in_a_2xx_falls_back_too() {
    let relay = gateway(|| json_reply(200, &envelope("rate_limit_error", "slow down")));
    let mut c = relay.cmd();
    c.args([
        "-m",
        "claude-opus-4.6",
        "--fallback-model",
        "claude-haiku-4.5",
        "--max-retries",
        "0",
        "--no-stream",
        "q",
    ]);
    run(c)
        .success()
        .stdout("hi\n")
        .stderr("cs-msg: claude-opus-4.6 rate limited; answering with claude-haiku-4.5\n");
}

#[test]
fn no_fallback_once_text_was_printed_or_for_other_errors() {
    // An overload mid-stream, after "hi" reached stdout: a second answer would
    // duplicate text.
    let relay = gateway(|| {
        sse(&(begin()
            + &event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            )))
    });
    let mut c = relay.cmd();
    c.args([
        "-m",
        "claude-opus-4.6",
        "--fallback-model",
        "claude-haiku-4.5",
        "q",
    ]);
    run(c).code(4).stdout("hi\n").stderr(
        "cs-msg: error event in stream overloaded_error: Overloaded (request-id req_relay)\n",
    );
    assert_eq!(relay.models(), ["claude-opus-4.6"]);
    // A server error is no reason to change models.
    let relay = gateway(|| json_reply(500, &envelope("api_error", "boom")));
    let mut c = relay.cmd();
    c.args([
        "-m",
        "claude-opus-4.6",
        "--fallback-model",
        "claude-haiku-4.5",
        "--max-retries",
        "0",
        "q",
    ]);
    run(c)
        .code(1)
        .stdout("")
        .stderr("cs-msg: HTTP 500 api_error: boom (request-id req_relay)\n");
    assert_eq!(relay.models(), ["claude-opus-4.6"]);
}

#[test]
fn the_fallback_applies_per_line_in_a_batch() {
    let relay = gateway(|| json_reply(529, &envelope("overloaded_error", "Overloaded")));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"prompt\":\"one\",\"model\":\"claude-opus-4.6\"}\n{\"id\":\"b\",\"prompt\":\"two\",\"model\":\"claude-sonnet-4.6\"}\n",
    )
    .unwrap();
    let mut c = relay.cmd();
    c.args([
        "--fallback-model",
        "claude-haiku-4.5",
        "--max-retries",
        "0",
        "-j",
        "1",
        "--batch",
    ])
    .arg(&input);
    let assert = run(c).success().stderr(
        "cs-msg: claude-opus-4.6 overloaded; answering with claude-haiku-4.5\ncs-msg: 2 ok, 0 failed; tokens: input 6, output 14\n",
    );
    let models: Vec<Value> = stdout_of(&assert)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["message"]["model"].clone())
        .collect();
    assert_eq!(
        models,
        [json!("claude-haiku-4.5"), json!("claude-sonnet-4.6")]
    );
}

// ---------------------------------------------------------------------------------
// Issue 12 item 1: streamed answers give their connection back

#[test]
fn a_streamed_batch_opens_at_most_one_connection_per_job() {
    let relay = Relay::start(|body, _| echo_model(body));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines: String = (0..20).map(|i| format!("\"prompt {i}\"\n")).collect();
    std::fs::write(&input, lines).unwrap();
    let mut c = relay.cmd();
    c.args(["-j", "2", "--batch"]).arg(&input);
    let assert = run(c)
        .success()
        .stderr("cs-msg: 20 ok, 0 failed; tokens: input 60, output 140\n");
    assert_eq!(stdout_of(&assert).lines().count(), 20);
    assert_eq!(relay.count(), 20);
    assert!(
        relay.connections() <= 2,
        "{} connections for 20 streamed lines at -j 2",
        relay.connections()
    );
}

#[test]
fn a_socket_held_open_after_message_stop_is_dropped_not_waited_for() {
    // No chunked terminator after message_stop, the socket held open: each answer is
    // complete at once (the idle timeout is far beyond the test's limit), and the next
    // line gets a connection of its own.
    let relay = Relay::start(|body, _| {
        let model = body["model"].as_str().unwrap_or("m").to_owned();
        unterminated_sse(&answer(&model, "hi"))
    });
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "\"a\"\n\"b\"\n\"c\"\n").unwrap();
    let mut c = relay.cmd();
    c.args(["--idle-timeout", "600", "-j", "1", "--batch"])
        .arg(&input);
    run(c)
        .success()
        .stderr("cs-msg: 3 ok, 0 failed; tokens: input 9, output 21\n");
    assert_eq!(relay.connections(), 3);
    let mut c = relay.cmd();
    c.args(["--idle-timeout", "600", "q"]);
    run(c).success().stdout("hi\n").stderr("");
}
