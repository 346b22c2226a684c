//! Batch mode (README "Batch"): order, resume, the shared rate-limit pause, error lines
//! and exit codes. These tests use the scripted server (`server.rs`): they need
//! per-request delays, arrival times and connection drops.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use predicates::prelude::*;
use serde_json::{Value, json};

use crate::common::*;
use crate::server::{Request, Response, Server};

// ---------------------------------------------------------------------------------
// Answers by prompt: the handler sees the last text of each request.

/// A server whose `answer(prompt, n)` answers the `n`th request (from 0), whose last
/// text is `prompt`.
fn start(answer: impl Fn(&str, usize) -> Response + Send + Sync + 'static) -> Server {
    Server::new(move |req| answer(&prompt_of(req), req.index))
}

/// The message answering `prompt`.
fn reply(prompt: &str) -> Response {
    Response::json(200, message_for(prompt).to_string())
}

/// An error response in the API's envelope.
fn reply_error(status: u16, kind: &str, text: &str) -> Response {
    Response::json(status, json!({"type":"error","error":{"type":kind,"message":text},"request_id":format!("req_{status}")}).to_string())
        .header("request-id", format!("req_{status}"))
}

fn prompt_of(req: &Request) -> String {
    last_text(&req.json())
}

/// The prompts the server saw, sorted.
fn prompts(server: &Server) -> Vec<String> {
    let mut p: Vec<String> = server.requests().iter().map(prompt_of).collect();
    p.sort();
    p
}

fn last_text(body: &Value) -> String {
    let content = &body["messages"].as_array().unwrap().last().unwrap()["content"];
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.last().unwrap()["text"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        _ => panic!("bad content"),
    }
}

/// The message the server answers `prompt` with.
fn message_for(prompt: &str) -> Value {
    json!({"id":format!("msg_{}", prompt.len()),"type":"message","role":"assistant","model":"m",
           "content":[{"type":"text","text":format!("echo: {prompt}")}],
           "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":2}})
}

fn ok_line(id: Value, index: u64, prompt: &str) -> String {
    json!({"id": id, "index": index, "message": message_for(prompt)}).to_string()
}

fn err_line(id: Value, index: u64, kind: &str, message: &str) -> String {
    json!({"id":id,"index":index,"error":{"type":kind,"message":message,"status":null,"request_id":null}})
        .to_string()
}

fn batch_cmd(server: &Server, input: &Path) -> assert_cmd::Command {
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .arg("--base-url")
        .arg(server.url())
        .arg("--batch")
        .arg(input);
    c
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------

#[test]
fn results_keep_input_order_under_random_delays() {
    let server = start(|prompt, _| {
        // A pseudo-random 0–39 ms per prompt, so later lines often finish first.
        let hash = prompt
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        reply(prompt).delay(Duration::from_millis(hash % 40))
    });
    let dir = tempfile::tempdir().unwrap();
    let prompts: Vec<String> = (0..40).map(|i| format!("prompt number {i}")).collect();
    let mut input = String::new();
    for (i, p) in prompts.iter().enumerate() {
        if i % 7 == 3 {
            input += "\n  \n"; // blank lines do not count
        }
        input += &format!("{}\n", json!({"id": format!("p{i}"), "prompt": p}));
    }
    let path = write(dir.path(), "in.jsonl", &input);
    let mut c = batch_cmd(&server, &path);
    c.args(["-j", "8"]);
    let assert = run(c)
        .code(0)
        .stderr("cs-msg: 40 ok, 0 failed; tokens: input 40, output 80\n");
    let expected: String = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| ok_line(json!(format!("p{i}")), i as u64, p) + "\n")
        .collect();
    assert_eq!(stdout_of(&assert), expected);
    assert_eq!(server.requests().len(), 40);
}

#[test]
fn bad_lines_become_error_lines_and_the_batch_goes_on() {
    let server = start(|prompt, _| reply(prompt));
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "in.jsonl",
        concat!(
            "\"first\"\n",
            "{not json\n",
            "{\"id\":7,\"prompt\":\"  \"}\n",
            "42\n",
            "{\"id\":\"u\",\"promt\":\"typo\"}\n",
            "{\"id\":\"m\",\"model\":\"\",\"prompt\":\"x\"}\n",
            "{\"id\":[1],\"prompt\":\"x\"}\n",
            "{\"id\":\"n\"}\n",
            "\"last\"\n",
        ),
    );
    let assert = run(batch_cmd(&server, &path))
        .code(2)
        .stderr("cs-msg: 2 ok, 7 failed; tokens: input 2, output 4\n");
    let allowed = "`id`, `prompt`, `messages`, `system`, `model`, `max_tokens`, `temperature`, `top_p`, `top_k`, `stop_sequences`, `metadata`, `tools`, `tool_choice`, `thinking`";
    let expected = [
        ok_line(Value::Null, 0, "first"),
        err_line(
            Value::Null,
            1,
            "invalid_input",
            "line 2: invalid JSON: key must be a string at column 2",
        ),
        err_line(json!(7), 2, "invalid_input", "line 3: empty prompt"),
        err_line(
            Value::Null,
            3,
            "invalid_input",
            "line 4: expected a JSON string (the prompt) or an object, found a number",
        ),
        err_line(
            json!("u"),
            4,
            "invalid_input",
            &format!("line 5: unknown field `promt`, expected one of {allowed}"),
        ),
        err_line(
            json!("m"),
            5,
            "invalid_input",
            "line 6: \"model\": must be a non-empty model id",
        ),
        err_line(
            Value::Null,
            6,
            "invalid_input",
            "line 7: \"id\" must be a string or a number, not an array",
        ),
        err_line(
            json!("n"),
            7,
            "invalid_input",
            "line 8: nothing to send: the line has no \"prompt\" and no \"messages\"",
        ),
        ok_line(Value::Null, 8, "last"),
    ]
    .join("\n")
        + "\n";
    assert_eq!(stdout_of(&assert), expected);
    assert_eq!(prompts(&server), ["first", "last"]);
}

#[test]
fn lines_may_set_tools_tool_choice_and_thinking() {
    let server = start(|prompt, _| reply(prompt));
    let dir = tempfile::tempdir().unwrap();
    let tool = json!({"name": "lookup", "input_schema": {"type": "object"}});
    let line = json!({"id": "t", "prompt": "with tools", "tools": [tool],
                      "tool_choice": {"type": "auto"}, "thinking": {"type": "adaptive"}});
    let bad = json!({"id": "b", "prompt": "bad", "tools": [{"name": "no spaces allowed"}]});
    let path = write(dir.path(), "in.jsonl", &format!("{line}\n{bad}\n"));
    let mut c = batch_cmd(&server, &path);
    c.arg("--no-stream");
    let out = stdout_of(&run(c).code(2));
    let body = server
        .requests()
        .iter()
        .find(|h| prompt_of(h) == "with tools")
        .unwrap()
        .json();
    assert_eq!(body["tools"], json!([tool]));
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    assert_eq!(body["thinking"], json!({"type": "adaptive"}));
    let second: Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        second["error"]["message"],
        "line 2: \"tools\": $[0].name: must be 1 to 128 characters of letters, digits, '_' or '-'"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn lines_override_flags_and_files_are_prepended() {
    let server = start(|prompt, _| reply(prompt));
    let dir = tempfile::tempdir().unwrap();
    let notes = write(dir.path(), "notes.md", "shared context\n");
    let path = write(
        dir.path(),
        "in.jsonl",
        concat!(
            "\"plain\"\n",
            "{\"prompt\":\"custom\",\"model\":\"m2\",\"max_tokens\":9,\"system\":null,",
            "\"temperature\":0.2,\"stop_sequences\":[\"END\"],\"metadata\":{\"user_id\":\"u\"}}\n",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}],\"prompt\":\"more\"}\n",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"only history\"}]}\n",
        ),
    );
    let mut c = batch_cmd(&server, &path);
    c.args(["-s", "be brief", "-m", "m1", "--no-stream", "-f"])
        .arg(&notes);
    run(c).code(0);
    let file_block = json!({"type":"text","text":format!("<file path=\"{}\">\nshared context\n</file>", notes.display())});
    let mut bodies: Vec<(String, Value)> = server
        .requests()
        .iter()
        .map(|h| (prompt_of(h), h.json()))
        .collect();
    bodies.sort_by(|a, b| a.0.cmp(&b.0));
    let body = |p: &str| bodies.iter().find(|(q, _)| q == p).unwrap().1.clone();
    assert_eq!(
        body("plain"),
        json!({"model":"m1","max_tokens":4096,"system":"be brief","messages":[{"role":"user","content":[
            file_block, {"type":"text","text":"plain"}]}]})
    );
    assert_eq!(
        body("custom"),
        json!({"model":"m2","max_tokens":9,"messages":[{"role":"user","content":[
            file_block, {"type":"text","text":"custom"}]}],
            "temperature":0.2,"stop_sequences":["END"],"metadata":{"user_id":"u"}})
    );
    assert_eq!(
        body("more")["messages"],
        json!([{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},
               {"role":"user","content":[file_block, {"type":"text","text":"more"}]}])
    );
    // A line with only history is sent as given: the files go with a prompt.
    assert_eq!(
        body("only history")["messages"],
        json!([{"role":"user","content":"only history"}])
    );
}

/// `message_for(prompt)` as an event stream, its text in two deltas.
fn stream_for(prompt: &str) -> String {
    let text = format!("echo: {prompt}");
    let (a, b) = text.split_at(text.len() / 2);
    let start = json!({"type":"message_start","message":{"id":format!("msg_{}", prompt.len()),
        "type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,
        "stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}});
    let delta = |t: &str| json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}});
    let events = [
        ("message_start", start),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        ("content_block_delta", delta(a)),
        ("content_block_delta", delta(b)),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}),
        ),
        ("message_stop", json!({"type":"message_stop"})),
    ];
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

#[test]
fn streamed_answers_are_collected_whole() {
    // In the default text mode a single call prints text as it streams and keeps none of
    // it; a batch line's message must still carry its text.
    let server = start(|prompt, _| Response::sse(stream_for(prompt)));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "in.jsonl", "\"first\"\n\"second\"\n");
    let assert = run(batch_cmd(&server, &path)).code(0);
    assert_eq!(
        lines(&stdout_of(&assert)),
        lines(&format!(
            "{}\n{}\n",
            ok_line(Value::Null, 0, "first"),
            ok_line(Value::Null, 1, "second")
        ))
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|h| h.json()["stream"] == json!(true))
    );
}

#[test]
fn input_from_stdin_and_api_errors_in_lines() {
    let server = start(|prompt, _| match prompt {
        "too long" => reply_error(400, "invalid_request_error", "prompt is too long"),
        _ => reply(prompt),
    });
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .args(["--base-url", server.url(), "--batch", "-"])
        .write_stdin("\"a\"\n{\"id\":\"x\",\"prompt\":\"too long\"}\n\"b\"");
    let assert = run(c)
        .code(1)
        .stderr("cs-msg: 2 ok, 1 failed; tokens: input 2, output 4\n");
    let expected = [
        ok_line(Value::Null, 0, "a"),
        json!({"id":"x","index":1,"error":{"type":"invalid_request_error","message":"prompt is too long","status":400,"request_id":"req_400"}}).to_string(),
        ok_line(Value::Null, 2, "b"),
    ]
    .join("\n")
        + "\n";
    assert_eq!(stdout_of(&assert), expected);
}

#[test]
fn exit_code_is_the_first_of_3_5_4_1_2_that_occurred() {
    let server = start(|prompt, _| match prompt {
        "400" => reply_error(400, "invalid_request_error", "bad"),
        "429" => reply_error(429, "rate_limit_error", "slow down"),
        "drop" => Response::hang_up(),
        _ => reply(prompt),
    });
    let dir = tempfile::tempdir().unwrap();
    for (input, code) in [
        ("\"ok\"\n", 0),
        ("\"ok\"\n\"\"\n", 2),
        ("\"\"\n\"400\"\n", 1),
        ("\"400\"\n\"429\"\n\"\"\n", 4),
        ("\"429\"\n\"drop\"\n\"400\"\n", 5),
    ] {
        let path = write(dir.path(), "in.jsonl", input);
        let mut c = batch_cmd(&server, &path);
        c.args(["--max-retries", "0"]);
        run(c).code(code);
    }
}

#[test]
fn an_authentication_failure_stops_sending_and_exits_3() {
    let server = start(|prompt, _| match prompt {
        "a" => reply_error(401, "authentication_error", "invalid x-api-key"),
        _ => reply(prompt),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "in.jsonl", "\"a\"\n\"b\"\n\"\"\n\"c\"\n");
    let mut c = batch_cmd(&server, &path);
    c.args(["-j", "1"]);
    let assert = run(c).code(3).stderr("cs-msg: 0 ok, 4 failed\n");
    let not_sent = "not sent: an earlier request failed authentication (HTTP 401 authentication_error: invalid x-api-key (request-id req_401))";
    let expected = [
        json!({"id":null,"index":0,"error":{"type":"authentication_error","message":"invalid x-api-key","status":401,"request_id":"req_401"}}).to_string(),
        err_line(Value::Null, 1, "authentication_error", not_sent),
        err_line(Value::Null, 2, "invalid_input", "line 3: empty prompt"),
        err_line(Value::Null, 3, "authentication_error", not_sent),
    ]
    .join("\n")
        + "\n";
    assert_eq!(stdout_of(&assert), expected);
    assert_eq!(prompts(&server), ["a"]);
}

#[test]
fn a_rate_limit_pauses_every_worker() {
    const PAUSE: Duration = Duration::from_millis(600);
    let server = start(|prompt, n| {
        if n == 0 {
            reply_error(429, "rate_limit_error", "slow down")
                .header("retry-after-ms", PAUSE.as_millis().to_string())
        } else {
            reply(prompt).delay(Duration::from_millis(30))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..12).map(|i| format!("\"p{i}\"\n")).collect();
    let path = write(dir.path(), "in.jsonl", &input);
    let mut c = batch_cmd(&server, &path);
    c.args(["-j", "4"]);
    run(c)
        .code(0)
        .stderr("cs-msg: 12 ok, 0 failed; tokens: input 12, output 24\n");
    let hits = server.requests();
    assert_eq!(hits.len(), 13, "12 lines and one retry");
    let limited = hits[0].at;
    // Requests already on their way when the 429 came may land just after it; after
    // that, nothing until the pause is over: the other workers waited too.
    let during: Vec<u128> = hits
        .iter()
        .map(|h| h.at.saturating_duration_since(limited).as_millis())
        .filter(|&ms| ms > 150 && ms < PAUSE.as_millis() - 50)
        .collect();
    assert!(
        during.is_empty(),
        "requests during the pause at {during:?} ms"
    );
    let after = hits
        .iter()
        .filter(|h| h.at.saturating_duration_since(limited) >= PAUSE - Duration::from_millis(50))
        .count();
    assert!(after >= 8, "only {after} requests after the pause");
}

#[test]
fn resume_skips_answered_lines_and_repairs_the_file() {
    let server = start(|prompt, _| reply(prompt));
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.jsonl",
        concat!(
            "{\"id\":\"a\",\"prompt\":\"pa\"}\n",
            "{\"id\":\"b\",\"prompt\":\"pb\"}\n",
            "\"pc\"\n",
            "\n",
            "{\"id\":\"d\",\"prompt\":\"pd\"}\n",
            "{\"id\":\"e\",\"prompt\":\"pe\"}\n",
        ),
    );
    // An earlier run that was killed: a, c answered; b failed; d torn mid-line.
    let kept = [ok_line(json!("a"), 0, "pa"), ok_line(Value::Null, 2, "pc")];
    let earlier = format!(
        "{}\n{}\n{}\n{}",
        kept[0],
        err_line(json!("b"), 1, "network_error", "could not connect"),
        kept[1],
        &ok_line(json!("d"), 3, "pd")[..30],
    );
    let out = write(dir.path(), "out.jsonl", &earlier);
    let mut c = batch_cmd(&server, &input);
    c.arg("--output").arg(&out);
    run(c).code(0).stdout("").stderr(format!(
        "cs-msg: 5 ok, 0 failed (2 answered by an earlier run in {}); tokens: input 3, output 6\n",
        out.display()
    ));
    assert_eq!(prompts(&server), ["pb", "pd", "pe"]);
    let expected = [
        kept[0].clone(),
        kept[1].clone(),
        ok_line(json!("b"), 1, "pb"),
        ok_line(json!("d"), 3, "pd"),
        ok_line(json!("e"), 4, "pe"),
    ]
    .join("\n")
        + "\n";
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);

    // Everything answered: a third run sends nothing and changes nothing.
    let mut c = batch_cmd(&server, &input);
    c.arg("--output").arg(&out);
    run(c).code(0);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
}

#[test]
fn resume_refuses_an_output_from_another_input() {
    let server = start(|prompt, _| reply(prompt));
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", "{\"id\":\"x\",\"prompt\":\"p\"}\n");
    let out = write(
        dir.path(),
        "out.jsonl",
        &(ok_line(json!("y"), 0, "p") + "\n"),
    );
    let mut c = batch_cmd(&server, &input);
    c.arg("--output").arg(&out);
    run(c).code(2).stdout("").stderr(predicate::str::contains(
        "--output already has a result for index 0 with id \"y\", but line 1 of",
    ));

    let notes = write(dir.path(), "notes.txt", "hello\n");
    let mut c = batch_cmd(&server, &input);
    c.arg("--output").arg(&notes);
    run(c).code(2).stderr(format!(
        "cs-msg: --output {}: line 1 is not a cs-msg batch result; refusing to append to this file\n",
        notes.display()
    ));
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "hello\n");

    let mut c = batch_cmd(&server, &input);
    c.arg("--output").arg(&input);
    run(c)
        .code(2)
        .stderr(predicate::str::contains("is the --batch input"));
    assert!(server.requests().is_empty());
}

/// The binary as a child process, so that the test can kill it or interrupt it.
fn spawn_batch(server: &Server, input: &Path, out: &Path) -> std::process::Child {
    let (input, out) = (input.to_str().unwrap(), out.to_str().unwrap());
    let mut child = spawn(
        server.url(),
        &["-j", "4", "--batch", input, "--output", out],
        &[],
    );
    drop(child.stdin.take()); // nothing on stdin
    child
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn indices(out: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(out).unwrap();
    let mut v: Vec<u64> = lines(&text)
        .iter()
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_killed_run_resumes_without_duplicates_or_gaps() {
    let server = start(|prompt, _| reply(prompt).delay(Duration::from_millis(40)));
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..60)
        .map(|i| format!("{{\"id\":{i},\"prompt\":\"p{i}\"}}\n"))
        .collect();
    let input = write(dir.path(), "in.jsonl", &input);
    let out = dir.path().join("out.jsonl");
    let mut child = spawn_batch(&server, &input, &out);
    wait_until("a dozen results", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 12)
    });
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    // Requests sent just before the kill reach the server's log a moment later.
    std::thread::sleep(Duration::from_millis(200));
    let answered = indices(&out).len();
    assert!(answered < 60, "the run finished before it was killed");
    let sent_before = server.requests().len();

    let mut c = batch_cmd(&server, &input);
    c.arg("--output").arg(&out);
    run(c).code(0);
    assert_eq!(indices(&out), (0..60).collect::<Vec<u64>>());
    assert_eq!(server.requests().len() - sent_before, 60 - answered);
}

#[cfg(unix)]
#[test]
fn ctrl_c_keeps_finished_results_that_wait_behind_a_slow_line() {
    let slow = Arc::new(AtomicBool::new(true));
    let s = Arc::clone(&slow);
    let server = start(move |prompt, _| {
        let delay = if prompt == "slow" && s.load(Ordering::SeqCst) {
            10_000
        } else {
            0
        };
        reply(prompt).delay(Duration::from_millis(delay))
    });
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", "\"slow\"\n\"a\"\n\"b\"\n\"c\"\n");
    let out = dir.path().join("out.jsonl");
    let mut child = spawn_batch(&server, &input, &out);
    wait_until("four requests", || server.request_count() == 4);
    std::thread::sleep(Duration::from_millis(300)); // a, b and c are answered by now
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "",
        "nothing in order yet"
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Died of the signal, as a shell loop must see it (README "Exit codes").
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(2));
    assert_eq!(indices(&out), [1, 2, 3]);

    slow.store(false, Ordering::SeqCst);
    let mut c = batch_cmd(&server, &input);
    c.arg("--output").arg(&out);
    run(c).code(0);
    assert_eq!(indices(&out), [0, 1, 2, 3]);
    assert_eq!(prompts(&server), ["a", "b", "c", "slow", "slow"]);
}

#[test]
fn usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", "\"a\"\n");
    let missing = dir.path().join("missing.jsonl");
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY).arg("--batch").arg(&missing);
    run(c).code(2).stderr(format!(
        "cs-msg: --batch {}: no such file\n",
        missing.display()
    ));

    for other in [["-f", "-"], ["--tools", "-"], ["--messages", "-"]] {
        let mut c = cmd();
        c.args(["--batch", "-"])
            .args(other)
            .env("CS_MSG_API_KEY", KEY)
            .write_stdin("[]\n");
        run(c).code(2).stderr(format!(
            "cs-msg: --batch -, {} - all read stdin; it can be read only once\n",
            other[0]
        ));
    }

    for args in [
        vec!["-j", "2", "q"],
        vec!["--output", "o.jsonl", "q"],
        vec!["--batch", "in.jsonl", "q"],
        vec!["--batch", "in.jsonl", "--events"],
        vec!["--batch", "in.jsonl", "-j", "0"],
    ] {
        let mut c = cmd();
        c.args(&args);
        run(c).code(2).stdout("");
    }

    // No key: exit 3 before anything is read.
    let mut c = cmd();
    c.arg("--batch").arg(&input);
    run(c)
        .code(3)
        .stdout("")
        .stderr(predicate::str::contains("no API key"));
}

#[test]
fn strict_turns_incomplete_answers_into_error_lines() {
    let server = start(|prompt, _| {
        let mut message = message_for(prompt);
        if prompt == "cut" {
            message["stop_reason"] = json!("max_tokens");
        }
        Response::json(200, message.to_string())
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "in.jsonl", "\"ok\"\n\"cut\"\n");
    // Without --strict the message says how it stopped; no warning per line.
    let assert = run(batch_cmd(&server, &path))
        .code(0)
        .stderr("cs-msg: 2 ok, 0 failed; tokens: input 2, output 4\n");
    assert_eq!(
        lines(&stdout_of(&assert))[1]["message"]["stop_reason"],
        "max_tokens"
    );
    let mut c = batch_cmd(&server, &path);
    c.arg("--strict");
    let assert = run(c)
        .code(6)
        .stderr("cs-msg: 1 ok, 1 failed; tokens: input 2, output 4\n");
    assert_eq!(
        stdout_of(&assert),
        ok_line(Value::Null, 0, "ok")
            + "\n"
            + &err_line(
                Value::Null,
                1,
                "unusable_answer",
                "the answer was cut off at the max_tokens limit (4096); raise --max-tokens (--strict)"
            )
            + "\n"
    );
}

#[test]
fn with_a_schema_lines_carry_the_validated_object() {
    let server = start(|prompt, _| {
        let name = if prompt == "bad" {
            json!(5)
        } else {
            json!(prompt)
        };
        let message = json!({"id":"msg","type":"message","role":"assistant","model":"m",
            "content":[{"type":"tool_use","id":"toolu_1","name":"structured_output","input":{"name":name}}],
            "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":2}});
        Response::json(200, message.to_string())
    });
    let dir = tempfile::tempdir().unwrap();
    let history = write(
        dir.path(),
        "history.json",
        r#"[{"role":"user","content":"Names only."},{"role":"assistant","content":"OK."}]"#,
    );
    let path = write(
        dir.path(),
        "in.jsonl",
        "{\"id\":1,\"prompt\":\"Ada\",\"messages\":[{\"role\":\"user\",\"content\":\"Next.\"}]}\n\"bad\"\n",
    );
    let mut c = batch_cmd(&server, &path);
    c.args([
        "--schema",
        r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#,
        "--messages",
    ])
    .arg(&history);
    let assert = run(c)
        .code(6)
        .stderr("cs-msg: 1 ok, 1 failed; tokens: input 2, output 4\n");
    let out = lines(&stdout_of(&assert));
    assert_eq!(out[0], json!({"id":1,"index":0,"object":{"name":"Ada"}}));
    assert_eq!(out[1]["error"]["type"], "unusable_answer");
    assert!(
        out[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("structured output does not match --schema at /name"),
        "{}",
        out[1]
    );
    let ada = server
        .requests()
        .iter()
        .find(|h| prompt_of(h) == "Ada")
        .unwrap()
        .json();
    assert_eq!(ada["tool_choice"]["name"], "structured_output");
    let roles: Vec<&str> = ada["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "user"]);
    assert_eq!(ada["messages"][0]["content"], "Names only.");
    assert_eq!(ada["messages"][2]["content"], "Next.");
}

#[test]
fn large_request_bodies_and_response_heads_pass_the_batch_buffers() {
    // A batch's connections have smaller buffers than a single call's (64 KiB in, 16 KiB
    // out, src/client/mod.rs): a body larger than the output buffer goes in pieces, and
    // a response head up to ureq's 64 KiB limit still fits the input buffer.
    let big_header = "h".repeat(48 * 1024);
    let server = start(move |prompt, _| reply(prompt).header("x-large", big_header.clone()));
    let dir = tempfile::tempdir().unwrap();
    let long = "long prompt ".repeat(10_000);
    let input = format!(
        "{}\n{}\n",
        json!({"id": "a", "prompt": long}),
        json!({"id": "b", "prompt": "short"})
    );
    let path = write(dir.path(), "in.jsonl", &input);
    let mut c = batch_cmd(&server, &path);
    c.args(["-j", "2"]);
    let assert = run(c)
        .code(0)
        .stderr("cs-msg: 2 ok, 0 failed; tokens: input 2, output 4\n");
    assert_eq!(
        stdout_of(&assert),
        format!(
            "{}\n{}\n",
            ok_line(json!("a"), 0, &long),
            ok_line(json!("b"), 1, "short")
        )
    );
    let mut seen = prompts(&server);
    seen.sort_by_key(|p| p.len());
    assert_eq!(seen, vec!["short".to_owned(), long]);
}
