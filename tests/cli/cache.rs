//! Prompt caching (`--cache`): where the breakpoints go in every kind of request, the
//! tool loop moving them, the batch warm-up, the token sums and the hint for an
//! endpoint that refuses them. Placement is read from `--dry-run` where it can be, and
//! from the bodies a server received where a request is only made while running.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::server::{Request, Response, Server};

const CC: &str = r#"{"type":"ephemeral"}"#;

fn cc() -> Value {
    serde_json::from_str(CC).unwrap()
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

fn marked(mut v: Value) -> Value {
    v["cache_control"] = cc();
    v
}

/// Every breakpoint of a body, as (where, block): where is `tools[i]`, `system[i]` or
/// `messages[i][j]`.
fn marks(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let each = |v: &Value| v.as_array().cloned().unwrap_or_default();
    for (i, t) in each(&body["tools"]).iter().enumerate() {
        if t.get("cache_control").is_some() {
            out.push(format!("tools[{i}]"));
        }
    }
    for (i, b) in each(&body["system"]).iter().enumerate() {
        if b.get("cache_control").is_some() {
            out.push(format!("system[{i}]"));
        }
    }
    for (i, m) in each(&body["messages"]).iter().enumerate() {
        for (j, b) in each(&m["content"]).iter().enumerate() {
            if b.get("cache_control").is_some() {
                out.push(format!("messages[{i}][{j}]"));
            }
        }
    }
    out
}

/// The body `--dry-run` prints for `args` (run in `dir`, with `stdin` piped when given).
fn dry_run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Value {
    let mut c = cmd();
    c.current_dir(dir).arg("--dry-run").args(args);
    match stdin {
        Some(s) => c.write_stdin(s),
        None => c.arg("--no-stdin"),
    };
    let out = stdout_of(&run(c).success());
    serde_json::from_str(&out).unwrap()
}

const TOOLS: &str = r#"[{"name":"first","input_schema":{"type":"object"}},{"name":"get","description":"echoes","input_schema":{"type":"object"}}]"#;

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "FILE A\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), "FILE B\n").unwrap();
    std::fs::write(dir.path().join("tools.json"), TOOLS).unwrap();
    dir
}

// ---- Placement ----

#[test]
fn a_prompt_alone_gets_no_breakpoint() {
    let dir = workspace();
    let body = dry_run(dir.path(), &["--cache", "just", "a", "prompt"], None);
    assert_eq!(
        body,
        json!({"model":"claude-sonnet-4.6","max_tokens":4096,
               "messages":[{"role":"user","content":[text("just a prompt")]}],"stream":true})
    );
}

#[test]
fn tools_system_files_and_stdin_each_end_with_one_the_prompt_with_none() {
    let dir = workspace();
    let args = [
        "--cache",
        "-s",
        "Be brief.",
        "--tools",
        "tools.json",
        "-f",
        "a.txt",
        "-f",
        "b.txt",
        "Compare",
    ];
    let body = dry_run(dir.path(), &args, Some("piped text"));
    let tools: Value = serde_json::from_str(TOOLS).unwrap();
    assert_eq!(
        body,
        json!({"model":"claude-sonnet-4.6","max_tokens":4096,
               "system":[marked(text("Be brief."))],
               "messages":[{"role":"user","content":[
                   text("<file path=\"a.txt\">\nFILE A\n</file>"),
                   text("<file path=\"b.txt\">\nFILE B\n</file>"),
                   marked(text("piped text")),
                   text("Compare")]}],
               "tools":[tools[0], marked(tools[1].clone())],
               "stream":true})
    );
    // Without stdin, the last file; without a prompt too.
    let body = dry_run(
        dir.path(),
        &["--cache", "-f", "a.txt", "-f", "b.txt", "Q"],
        None,
    );
    assert_eq!(marks(&body), ["messages[0][1]"]);
    let body = dry_run(dir.path(), &["--cache", "-f", "a.txt", "-f", "b.txt"], None);
    assert_eq!(marks(&body), ["messages[0][1]"]);
    // `-f -` is an attachment like any file.
    let body = dry_run(dir.path(), &["--cache", "-f", "-", "Q"], Some("from stdin"));
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            marked(text("<file path=\"stdin\">\nfrom stdin\n</file>")),
            text("Q")
        ])
    );
    // Stdin alone, no prompt: stdin is the stable part.
    let body = dry_run(dir.path(), &["--cache"], Some("only stdin"));
    assert_eq!(marks(&body), ["messages[0][0]"]);
    // Without --cache, none of it.
    let body = dry_run(dir.path(), &args[1..], Some("piped text"));
    assert!(!body.to_string().contains("cache_control"), "{body}");
}

#[test]
fn a_system_array_from_a_request_body_marks_its_last_text() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("req.json"),
        r#"{"model":"m","max_tokens":10,"system":[{"type":"text","text":"one"},{"type":"text","text":"two"}],"messages":[]}"#,
    )
    .unwrap();
    let body = dry_run(dir.path(), &["--cache", "--request", "req.json", "Q"], None);
    assert_eq!(
        body,
        json!({"model":"m","max_tokens":10,"system":[text("one"), marked(text("two"))],
               "messages":[{"role":"user","content":[text("Q")]}]})
    );
}

#[test]
fn a_conversation_marks_the_end_of_its_history() {
    let dir = workspace();
    let history = json!([
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "text", "text": "first answer"},
            {"type": "redacted_thinking", "data": "opaque"}]}
    ]);
    std::fs::write(dir.path().join("chat.json"), history.to_string()).unwrap();
    let body = dry_run(
        dir.path(),
        &[
            "--cache",
            "-c",
            "chat.json",
            "-s",
            "sys",
            "-f",
            "a.txt",
            "Next",
        ],
        None,
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                marked(text("first answer")),
                {"type": "redacted_thinking", "data": "opaque"}]},
            {"role": "user", "content": [
                marked(text("<file path=\"a.txt\">\nFILE A\n</file>")), text("Next")]}
        ])
    );
    assert_eq!(
        marks(&body),
        ["system[0]", "messages[1][1]", "messages[2][0]"]
    );
    // --messages alone, with no new turn: the end of the history is the prefix.
    let body = dry_run(dir.path(), &["--cache", "--messages", "chat.json"], None);
    assert_eq!(marks(&body), ["messages[1][1]"]);
    // A string reply becomes one text block to carry it.
    std::fs::write(
        dir.path().join("plain.json"),
        r#"[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]"#,
    )
    .unwrap();
    let body = dry_run(dir.path(), &["--cache", "-c", "plain.json", "Next"], None);
    assert_eq!(body["messages"][1]["content"], json!([marked(text("a"))]));
    assert_eq!(body["messages"][2]["content"], json!([text("Next")]));
}

#[test]
fn all_four_at_most_and_never_on_thinking() {
    let dir = workspace();
    let history = json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]}
    ]);
    std::fs::write(dir.path().join("h.json"), history.to_string()).unwrap();
    // The history's last turn is all thinking: it carries none (and none moves to
    // an earlier turn).
    let body = dry_run(
        dir.path(),
        &[
            "--cache",
            "--messages",
            "h.json",
            "--tools",
            "tools.json",
            "-s",
            "s",
            "Q",
        ],
        None,
    );
    assert_eq!(marks(&body), ["tools[1]", "system[0]"]);
    std::fs::write(
        dir.path().join("h.json"),
        r#"[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]"#,
    )
    .unwrap();
    let body = dry_run(
        dir.path(),
        &[
            "--cache",
            "--messages",
            "h.json",
            "--tools",
            "tools.json",
            "-s",
            "s",
            "-f",
            "a.txt",
            "Q",
        ],
        None,
    );
    assert_eq!(
        marks(&body),
        ["tools[1]", "system[0]", "messages[1][0]", "messages[2][0]"]
    );
}

#[test]
fn one_hour_from_the_flag_or_the_environment() {
    let dir = workspace();
    let one_hour = json!({"type": "ephemeral", "ttl": "1h"});
    let body = dry_run(dir.path(), &["--cache-ttl", "1h", "-s", "sys", "Q"], None);
    assert_eq!(body["system"][0]["cache_control"], one_hour);
    let mut c = cmd();
    c.current_dir(dir.path()).env("CS_MSG_CACHE", "1h").args([
        "--dry-run",
        "--no-stdin",
        "-s",
        "sys",
        "Q",
    ]);
    let body: Value = serde_json::from_str(&stdout_of(&run(c).success())).unwrap();
    assert_eq!(body["system"][0]["cache_control"], one_hour);
    // --cache is a switch: the word after it is the prompt.
    let body = dry_run(dir.path(), &["-s", "sys", "--cache", "1h"], None);
    assert_eq!(body["system"][0]["cache_control"], cc());
    assert_eq!(body["messages"][0]["content"], json!([text("1h")]));
    let mut c = cmd();
    c.env("CS_MSG_CACHE", "yes").args(["--dry-run", "Q"]);
    run(c)
        .code(2)
        .stdout("")
        .stderr("cs-msg: CS_MSG_CACHE is 'yes'; expected 5m or 1h (or unset it)\n");
    let mut c = cmd();
    c.args(["--dry-run", "--cache-ttl", "10m", "Q"]);
    let err = stderr_of(&run(c).code(2));
    assert!(err.contains("expected 5m or 1h, not '10m'"), "{err}");
}

#[test]
fn a_request_body_with_its_own_breakpoints_is_sent_as_it_is() {
    let dir = workspace();
    let own = r#"{"model":"m","max_tokens":10,"system":"s","messages":[{"role":"user","content":[{"type":"text","text":"doc","cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"text","text":"q"}]}],"tools":[{"name":"t","input_schema":{"type":"object"}}]}"#;
    std::fs::write(dir.path().join("req.json"), own).unwrap();
    let mut c = cmd();
    c.current_dir(dir.path()).args([
        "--dry-run",
        "--no-stdin",
        "--cache",
        "--request",
        "req.json",
    ]);
    assert_eq!(stdout_of(&run(c).success()), format!("{own}\n"));
}

#[test]
fn count_tokens_counts_with_the_breakpoints() {
    let dir = workspace();
    let body = dry_run(
        dir.path(),
        &["--count-tokens", "--cache", "-s", "sys", "-f", "a.txt", "Q"],
        None,
    );
    assert_eq!(marks(&body), ["system[0]", "messages[0][0]"]);
    assert_eq!(body.get("max_tokens"), None);
}

// ---- Calls: what a conversation saves, the tool loop, the hint, --usage ----

/// A mockito server answering every message with `answer(body, n)` (n from 0), and
/// the bodies it received.
fn recording(
    answer: impl Fn(&Value, usize) -> String + Send + Sync + 'static,
) -> (mockito::ServerGuard, Arc<Mutex<Vec<Value>>>) {
    let mut server = mock_server();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    server
        .mock("POST", "/v1/messages")
        .with_header("content-type", "text/event-stream")
        .with_body_from_request(move |req| {
            let body: Value = serde_json::from_slice(req.body().unwrap()).unwrap();
            let mut seen = seen.lock().unwrap();
            let reply = answer(&body, seen.len());
            seen.push(body);
            reply.into_bytes()
        })
        .create();
    (server, bodies)
}

#[test]
fn a_saved_conversation_carries_no_breakpoints() {
    let dir = workspace();
    let chat = dir.path().join("chat.json");
    std::fs::write(
        &chat,
        r#"[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]"#,
    )
    .unwrap();
    let (server, bodies) = recording(|_, _| text_stream(&["ok"]));
    let mut c = api(&server);
    c.current_dir(dir.path()).args([
        "--cache",
        "--no-stdin",
        "-c",
        "chat.json",
        "-f",
        "a.txt",
        "Next",
    ]);
    run(c).success().stdout("ok\n");
    assert_eq!(
        marks(&bodies.lock().unwrap()[0]),
        ["messages[1][0]", "messages[2][0]"]
    );
    let saved = std::fs::read_to_string(&chat).unwrap();
    assert!(!saved.contains("cache_control"), "{saved}");
}

/// A stream whose answer calls tool `get` with input `{"n": n}`.
fn tool_call_stream(n: usize) -> String {
    let start = json!({"type":"message_start","message":{"id":"msg_t","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}});
    let block = json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":format!("toolu_{n}"),"name":"get","input":{}}});
    let delta = json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":format!("{{\"n\":{n}}}")}});
    event("message_start", &start.to_string())
        + &event("content_block_start", &block.to_string())
        + &event("content_block_delta", &delta.to_string())
        + &event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        )
        + &stream_end("tool_use")
}

#[test]
fn each_tool_loop_turn_moves_the_breakpoint_to_the_end_of_the_history() {
    let dir = workspace();
    // Two tool turns, then an answer.
    let (server, bodies) = recording(|_, n| match n {
        0 | 1 => tool_call_stream(n),
        _ => text_stream(&["done"]),
    });
    let mut c = api(&server);
    c.current_dir(dir.path()).args([
        "--cache",
        "--no-stdin",
        "-s",
        "sys",
        "--tools",
        "tools.json",
        "--exec",
        "get=cat",
        "-f",
        "a.txt",
        "Go",
    ]);
    run(c).success().stdout("done\n");
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        marks(&bodies[0]),
        ["tools[1]", "system[0]", "messages[0][0]"]
    );
    // Turn 2 reads what turn 1 wrote and writes through the first results.
    assert_eq!(
        marks(&bodies[1]),
        ["tools[1]", "system[0]", "messages[2][0]"]
    );
    assert_eq!(
        bodies[1]["messages"][2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "toolu_0", "content": [text("{\"n\":0}\n")],
                "cache_control": cc()}])
    );
    assert_eq!(
        marks(&bodies[2]),
        ["tools[1]", "system[0]", "messages[4][0]"]
    );
    // The prompt never carries one, and the earlier results lost theirs.
    assert_eq!(bodies[2]["messages"][0]["content"][1], text("Go"));
    assert_eq!(
        bodies[2]["messages"][2]["content"][0].get("cache_control"),
        None
    );
    // A prompt-only loop: nothing on turn 1, the results' turn on turn 2.
    let (server, bodies) = recording(|_, n| match n {
        0 => tool_call_stream(0),
        _ => text_stream(&["done"]),
    });
    let mut c = api(&server);
    c.current_dir(dir.path()).args([
        "--cache",
        "--no-stdin",
        "--tools",
        "tools.json",
        "--exec",
        "get=cat",
        "Go",
    ]);
    run(c).success();
    let bodies = bodies.lock().unwrap();
    assert_eq!(marks(&bodies[0]), ["tools[1]"]);
    assert_eq!(marks(&bodies[1]), ["tools[1]", "messages[2][0]"]);
}

#[test]
fn an_endpoint_that_refuses_cache_control_gets_a_hint_to_drop_it() {
    let message = "tools.0.cache_control: Extra inputs are not permitted";
    let expected_error =
        format!("cs-msg: HTTP 400 invalid_request_error: {message} (request-id req_err_1)\n");
    let hint = "cs-msg: hint: this endpoint does not accept prompt caching (cache_control); run again without --cache\n";
    let mut server = mock_server();
    error_mock(&mut server, 400, "invalid_request_error", message).create();
    let mut c = api(&server);
    c.args(["--cache", "--no-stdin", "Q"]);
    run(c)
        .code(1)
        .stdout("")
        .stderr(format!("{expected_error}{hint}"));
    // Without --cache, the error alone.
    let mut c = api(&server);
    c.args(["--no-stdin", "Q"]);
    run(c).code(1).stderr(expected_error.clone());
    // Another 400 with --cache: no hint.
    let mut other = mock_server();
    error_mock(
        &mut other,
        400,
        "invalid_request_error",
        "max_tokens: too big",
    )
    .create();
    let mut c = api(&other);
    c.args(["--cache", "--no-stdin", "Q"]);
    let err = stderr_of(&run(c).code(1));
    assert!(!err.contains("hint"), "{err}");
    // A batch: the lines' errors, then the summary and the hint once.
    let dir = workspace();
    std::fs::write(dir.path().join("in.jsonl"), "\"a\"\n\"b\"\n").unwrap();
    let mut c = api(&server);
    c.current_dir(dir.path())
        .args(["--cache", "--batch", "in.jsonl"]);
    run(c)
        .code(1)
        .stderr(format!("cs-msg: 0 ok, 2 failed\n{hint}"));
}

#[test]
fn usage_shows_a_cache_hit() {
    let mut server = mock_server();
    let start = json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":12,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048}}});
    let stream = event("message_start", &start.to_string())
        + &event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        )
        + &event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
        )
        + &event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        )
        + &stream_end("end_turn");
    sse_mock(&mut server, stream).create();
    let dir = workspace();
    let mut c = api(&server);
    c.current_dir(dir.path())
        .args(["--cache", "--usage", "--no-stdin", "-f", "a.txt", "Q"]);
    run(c)
        .success()
        .stdout("hi\n")
        .stderr("cs-msg: tokens: input 12, output 7, cache read 2048, cache write 0\n");
}

// ---- Batch: lines, warm-up, sums ----

/// A loopback server that simulates the cache: the first request to carry a prefix
/// writes it (`cache_creation_input_tokens`), requests that arrive once that answer
/// has begun read it (`cache_read_input_tokens`); earlier ones write it again, as the
/// API does for concurrent requests. The prefix is everything before the last
/// breakpoint of the messages, here the `-f` file. The first answer is held for
/// `first_delay`.
struct CacheServer {
    server: Server,
    log: Arc<Mutex<Log>>,
}

#[derive(Default)]
struct Log {
    /// (arrival, prompt, body) in arrival order.
    arrivals: Vec<(Instant, String, Value)>,
    /// When the first request's answer was sent.
    first_answered: Option<Instant>,
    written: bool,
}

const PREFIX_TOKENS: u64 = 1000;

impl CacheServer {
    fn start(first_delay: Duration) -> CacheServer {
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = Arc::clone(&log);
        let server = Server::new(move |req| answer(req, &shared, first_delay));
        CacheServer { server, log }
    }

    fn url(&self) -> &str {
        self.server.url()
    }
}

fn answer(req: &Request, log: &Mutex<Log>, first_delay: Duration) -> Response {
    let body = req.json();
    let prompt = body["messages"][0]["content"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|b| b["text"].as_str())
        .unwrap_or_default()
        .to_owned();
    let cached = body.to_string().contains("cache_control");
    let (first, usage) = {
        let mut log = log.lock().unwrap();
        let first = log.arrivals.is_empty();
        log.arrivals.push((Instant::now(), prompt.clone(), body));
        let usage = if !cached {
            json!({"input_tokens": PREFIX_TOKENS + 10, "output_tokens": 5})
        } else if log.first_answered.is_some() && log.written {
            json!({"input_tokens": 10, "output_tokens": 5,
                   "cache_creation_input_tokens": 0, "cache_read_input_tokens": PREFIX_TOKENS})
        } else {
            log.written = true;
            json!({"input_tokens": 10, "output_tokens": 5,
                   "cache_creation_input_tokens": PREFIX_TOKENS, "cache_read_input_tokens": 0})
        };
        (first, usage)
    };
    if first {
        // A zero delay holds the first answer until another request arrives (at
        // most 10 s): a batch that does not wait for it shows at once.
        let started = Instant::now();
        if first_delay.is_zero() {
            while log.lock().unwrap().arrivals.len() < 2
                && started.elapsed() < Duration::from_secs(10)
                && req.sleep(Duration::from_millis(5))
            {}
        }
        req.sleep(first_delay);
    }
    let message = json!({"id":"msg_c","type":"message","role":"assistant","model":"m",
        "content":[{"type":"text","text":format!("echo: {prompt}")}],
        "stop_reason":"end_turn","stop_sequence":null,"usage":usage});
    if first {
        log.lock().unwrap().first_answered = Some(Instant::now());
    }
    Response::json(200, message.to_string())
}

fn batch_input(dir: &std::path::Path, lines: usize) {
    let text: String = (0..lines).map(|i| format!("\"p{i}\"\n")).collect();
    std::fs::write(dir.join("in.jsonl"), text).unwrap();
}

#[test]
fn batch_lines_mark_the_files_and_the_first_line_warms_the_cache_alone() {
    let dir = workspace();
    batch_input(dir.path(), 8);
    let server = CacheServer::start(Duration::from_millis(300));
    let mut c = cmd();
    c.current_dir(dir.path())
        .env("CS_MSG_API_KEY", KEY)
        .args(["--base-url", server.url(), "--cache", "-s", "sys"])
        .args(["-f", "a.txt", "--batch", "in.jsonl", "-j", "4"]);
    let assert = run(c).success();
    // One write of the prefix, seven reads: 7000 / (7000 + 1000 + 80) = 86.6%.
    assert_eq!(
        stderr_of(&assert),
        "cs-msg: 8 ok, 0 failed; tokens: input 80, output 40, cache read 7000, cache write 1000 (hit ratio 86%)\n"
    );
    let log = server.log.lock().unwrap();
    assert_eq!(log.arrivals.len(), 8);
    let (_, first_prompt, _) = &log.arrivals[0];
    assert_eq!(first_prompt, "p0");
    let answered = log.first_answered.unwrap();
    for (at, prompt, _) in &log.arrivals[1..] {
        assert!(
            *at >= answered,
            "{prompt} was sent before the first line's answer began"
        );
    }
    for (_, prompt, body) in log.arrivals.iter() {
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                marked(text("<file path=\"a.txt\">\nFILE A\n</file>")),
                text(prompt)
            ]),
        );
        assert_eq!(marks(body), ["system[0]", "messages[0][0]"]);
    }
}

#[test]
fn without_the_warm_up_every_worker_writes_the_prefix() {
    let dir = workspace();
    batch_input(dir.path(), 4);
    let server = CacheServer::start(Duration::ZERO);
    let mut c = cmd();
    c.current_dir(dir.path())
        .env("CS_MSG_API_KEY", KEY)
        .env("CS_MSG_NO_WARMUP", "1")
        .args(["--base-url", server.url(), "--cache", "-f", "a.txt"])
        .args(["--batch", "in.jsonl", "-j", "4"]);
    let stderr = stderr_of(&run(c).success());
    let log = server.log.lock().unwrap();
    let answered = log.first_answered.unwrap();
    assert!(
        log.arrivals[1].0 < answered,
        "the second line waited for the first"
    );
    // At least the first two wrote the prefix.
    let written: u64 = stderr
        .split("cache write ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(written >= 2 * PREFIX_TOKENS, "{stderr}");
}

#[test]
fn without_cache_a_batch_neither_waits_nor_marks() {
    let dir = workspace();
    batch_input(dir.path(), 3);
    let server = CacheServer::start(Duration::ZERO);
    let mut c = cmd();
    c.current_dir(dir.path()).env("CS_MSG_API_KEY", KEY).args([
        "--base-url",
        server.url(),
        "-f",
        "a.txt",
        "--batch",
        "in.jsonl",
    ]);
    run(c)
        .success()
        .stderr("cs-msg: 3 ok, 0 failed; tokens: input 3030, output 15\n");
    let log = server.log.lock().unwrap();
    assert!(
        log.arrivals
            .iter()
            .all(|(_, _, b)| !b.to_string().contains("cache_control"))
    );
}

#[test]
fn mcp_tools_come_last_and_the_last_of_them_carries_the_breakpoint() {
    let server = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        server.exists(),
        "{} is missing: run `npm ci --prefix tests/mcp`",
        server.display()
    );
    let dir = workspace();
    let mcp = format!("node {}", server.display());
    let body = dry_run(
        dir.path(),
        &[
            "--cache",
            "--connect-timeout",
            "20",
            "--tools",
            "tools.json",
            "--mcp",
            &mcp,
            "--mcp-tools",
            "echo",
            "Q",
        ],
        None,
    );
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "get", "echo"]);
    assert_eq!(marks(&body), ["tools[2]"]);
}
