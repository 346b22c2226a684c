//! The tool-use round trip: the executed loop (`--exec`) and the client-driven one
//! (`--tool-result`), against a local server that plays the model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mockito::{Server, ServerGuard};
use serde_json::{Value, json};

use crate::common::*;

/// A model played by `reply`: it sees the request number (0-based) and the body.
pub struct Model {
    pub server: ServerGuard,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Model {
    pub fn json(reply: impl Fn(usize, &Value) -> Value + Send + Sync + 'static) -> Model {
        let mut server = Server::new();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        server
            .mock("POST", "/v1/messages")
            .with_header("content-type", "application/json")
            .with_body_from_request(move |req| {
                let body: Value = serde_json::from_slice(req.body().unwrap()).unwrap();
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(body.clone());
                    seen.len() - 1
                };
                reply(n, &body).to_string().into_bytes()
            })
            .expect_at_least(0)
            .create();
        Model { server, bodies }
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// The first request that carried tool results (a retried request may come twice).
    pub fn results_request(&self) -> Value {
        self.bodies()
            .into_iter()
            .find(answered)
            .expect("no request carried tool results")
    }
}

/// Whether the request's last turn holds tool results.
pub fn answered(body: &Value) -> bool {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|t| t["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
}

pub fn message(content: Value, stop: &str) -> Value {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
           "content": content, "stop_reason": stop, "stop_sequence": null,
           "usage": {"input_tokens": 10, "output_tokens": 3}})
}

pub fn call(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

pub fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

pub fn tools_file(dir: &Path, names: &[&str]) -> PathBuf {
    let tools: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "description": "d", "input_schema": {"type": "object"}}))
        .collect();
    let path = dir.join("tools.json");
    std::fs::write(&path, serde_json::to_string(&tools).unwrap()).unwrap();
    path
}

/// A tool: a shell script file (run directly, not through a shell by cs-msg).
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn loop_cmd(model: &Model, dir: &Path, tools: &[&str], execs: &[String]) -> assert_cmd::Command {
    let mut c = api(&model.server);
    c.args([
        "--no-stream",
        "--no-stdin",
        "-m",
        "m",
        "--max-tokens",
        "100",
    ])
    .arg("--tools")
    .arg(tools_file(dir, tools));
    for e in execs {
        c.arg("--exec").arg(e);
    }
    c
}

#[test]
fn a_full_loop_sends_the_tool_output_back_and_prints_the_final_text() {
    let dir = tempfile::tempdir().unwrap();
    let weather = script(
        dir.path(),
        "weather.sh",
        r#"read input; echo "tool got $input as $CS_MSG_TOOL_NAME/$CS_MSG_TOOL_USE_ID""#,
    );
    let model = Model::json(|n, _| match n {
        0 => message(
            json!([
                text("Let me check."),
                call("toolu_1", "get_weather", json!({"city": "Paris"}))
            ]),
            "tool_use",
        ),
        _ => message(json!([text("Sunny in Paris.")]), "end_turn"),
    });
    let mut c = loop_cmd(
        &model,
        dir.path(),
        &["get_weather"],
        &[format!("get_weather={weather}")],
    );
    c.args(["-v", "Weather in Paris?"]);
    let out = run(c).code(0);
    assert_eq!(stdout_of(&out), "Let me check.\nSunny in Paris.\n");
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("cs-msg: tool get_weather (toolu_1): exit 0, "),
        "{err}"
    );
    let bodies = model.bodies();
    assert_eq!(bodies.len(), 2);
    // The second request: the history, the assistant's call, the result, byte for byte.
    assert_eq!(
        bodies[1]["messages"],
        json!([
            {"role": "user", "content": [text("Weather in Paris?")]},
            {"role": "assistant", "content": [text("Let me check."), call("toolu_1", "get_weather", json!({"city": "Paris"}))]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                "content": [text("tool got {\"city\":\"Paris\"} as get_weather/toolu_1\n")]}]}
        ])
    );
    assert_eq!(bodies[1]["tools"], bodies[0]["tools"]);
}

#[test]
fn parallel_calls_of_one_turn_come_back_in_block_order() {
    let dir = tempfile::tempdir().unwrap();
    // The first call is slower: its result must still come first.
    let slow = script(dir.path(), "slow.sh", "sleep 0.3; echo slow");
    let fast = script(dir.path(), "fast.sh", "echo fast");
    let model = Model::json(|n, _| match n {
        0 => message(
            json!([
                call("toolu_a", "slow", json!({})),
                call("toolu_b", "fast", json!({}))
            ]),
            "tool_use",
        ),
        _ => message(json!([text("done")]), "end_turn"),
    });
    let mut c = loop_cmd(
        &model,
        dir.path(),
        &["slow", "fast"],
        &[format!("slow={slow}"), format!("fast={fast}")],
    );
    c.arg("go");
    run(c).code(0);
    let results = &model.bodies()[1]["messages"][2]["content"];
    assert_eq!(results[0]["tool_use_id"], "toolu_a");
    assert_eq!(results[0]["content"][0]["text"], "slow\n");
    assert_eq!(results[1]["tool_use_id"], "toolu_b");
}

#[test]
fn the_turn_limit_exits_7_with_the_pending_call_printed() {
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "t.sh", "echo again");
    let model = Model::json(|n, _| {
        message(
            json!([call(&format!("toolu_{n}"), "t", json!({"n": n}))]),
            "tool_use",
        )
    });
    let chat = dir.path().join("chat.json");
    let mut c = loop_cmd(&model, dir.path(), &["t"], &[format!("t={tool}")]);
    c.args(["--max-turns", "2", "--usage", "-c"])
        .arg(&chat)
        .arg("loop");
    let out = run(c).code(7);
    assert_eq!(
        stdout_of(&out),
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"t\",\"input\":{\"n\":1}}\n"
    );
    assert_eq!(
        String::from_utf8(out.get_output().stderr.clone()).unwrap(),
        "cs-msg: tokens: input 20, output 6\ncs-msg: the tool loop reached --max-turns 2 with tool calls pending\n"
    );
    assert_eq!(model.bodies().len(), 2);
    // The file ends with the pending call, ready for --tool-result.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&chat).unwrap()).unwrap();
    let turns = saved.as_array().unwrap();
    assert_eq!(turns.len(), 4);
    assert_eq!(turns[3]["role"], "assistant");
    assert_eq!(turns[3]["content"][0]["id"], "toolu_1");
}

#[test]
fn a_call_to_an_unbound_tool_exits_7_and_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "a.sh", "echo a");
    let model = Model::json(|_, _| message(json!([call("toolu_9", "b", json!({}))]), "tool_use"));
    let mut c = loop_cmd(&model, dir.path(), &["a", "b"], &[format!("a={tool}")]);
    c.arg("q");
    let out = run(c)
        .code(7)
        .stderr("cs-msg: the model called b with no executor (--exec); the calls are pending\n");
    assert_eq!(
        stdout_of(&out),
        "{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"b\",\"input\":{}}\n"
    );
}

#[test]
fn without_executors_a_tool_use_stop_is_a_normal_answer() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::json(|_, _| message(json!([call("toolu_1", "a", json!({}))]), "tool_use"));
    let mut c = loop_cmd(&model, dir.path(), &["a"], &[]);
    c.arg("q");
    let out = run(c).code(0);
    assert_eq!(
        stdout_of(&out),
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"a\",\"input\":{}}\n"
    );
}

#[test]
fn failing_slow_and_huge_tools_become_error_results_and_the_loop_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let failing = script(dir.path(), "fail.sh", "echo 'no such city' >&2; exit 3");
    let slow = script(dir.path(), "slow.sh", "sleep 30");
    let huge = script(
        dir.path(),
        "huge.sh",
        "head -c 300000 /dev/zero | tr '\\0' x",
    );
    let binary = script(dir.path(), "bin.sh", "printf '\\377\\376'");
    let model = Model::json(|_, body| match answered(body) {
        false => message(
            json!([
                call("t1", "fail", json!({})),
                call("t2", "slow", json!({})),
                call("t3", "huge", json!({})),
                call("t4", "bin", json!({}))
            ]),
            "tool_use",
        ),
        true => message(json!([text("adapted")]), "end_turn"),
    });
    let mut c = loop_cmd(
        &model,
        dir.path(),
        &["fail", "slow", "huge", "bin"],
        &[
            format!("fail={failing}"),
            format!("slow={slow}"),
            format!("huge={huge}"),
            format!("bin={binary}"),
        ],
    );
    c.args(["--tool-timeout", "0.3", "q"]);
    let started = std::time::Instant::now();
    let out = run(c).code(0);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(stdout_of(&out), "adapted\n");
    let results = model.results_request()["messages"][2]["content"].clone();
    assert_eq!(results[0]["is_error"], true);
    assert_eq!(
        results[0]["content"][0]["text"],
        "fail exited with status 3: no such city"
    );
    assert_eq!(results[1]["is_error"], true);
    let timed_out = results[1]["content"][0]["text"].as_str().unwrap();
    assert!(timed_out.contains("timed out after 0.3 s"), "{timed_out}");
    let cut = results[2]["content"][0]["text"].as_str().unwrap();
    assert!(
        cut.ends_with("[cs-msg: output cut at 102400 of 300000 bytes]"),
        "{}",
        &cut[cut.len() - 60..]
    );
    assert_eq!(results[3]["is_error"], true);
    let binary = results[3]["content"][0]["text"].as_str().unwrap();
    assert!(binary.contains("not valid UTF-8"), "{binary}");
}

#[test]
fn shell_metacharacters_in_the_input_stay_inert() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen.txt");
    let tool = script(
        dir.path(),
        "t.sh",
        &format!("cat > '{}'; echo ok", seen.display()),
    );
    let marker = dir.path().join("pwned");
    let evil = format!(
        "$(touch {m}); `touch {m}`; rm -rf {m} && touch {m} | x",
        m = marker.display()
    );
    let input = json!({"q": evil});
    let sent = input.clone();
    let model = Model::json(move |n, _| match n {
        0 => message(json!([call("t1", "t", sent.clone())]), "tool_use"),
        _ => message(json!([text("fine")]), "end_turn"),
    });
    // The command itself is split into words, quotes and all, but never run by a shell.
    let mut c = loop_cmd(&model, dir.path(), &["t"], &[format!("t='{tool}'")]);
    c.arg("q");
    run(c).code(0);
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("{input}\n")
    );
    assert!(!marker.exists());
}

#[test]
fn conversation_is_unchanged_when_turn_2_fails() {
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "t.sh", "echo r");
    let chat = dir.path().join("chat.json");
    std::fs::write(&chat, "[]\n").unwrap();
    let mut server = Server::new();
    server
        .mock("POST", "/v1/messages")
        .match_body(mockito::Matcher::Regex("tool_result".into()))
        .with_status(500)
        .with_body(r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#)
        .create();
    server
        .mock("POST", "/v1/messages")
        .with_header("content-type", "application/json")
        .with_body(message(json!([call("t1", "t", json!({}))]), "tool_use").to_string())
        .create();
    let mut c = api(&server);
    c.args(["--no-stream", "--no-stdin", "--max-retries", "0", "--tools"])
        .arg(tools_file(dir.path(), &["t"]))
        .arg("--exec")
        .arg(format!("t={tool}"))
        .arg("-c")
        .arg(&chat)
        .arg("q");
    run(c).code(1).stderr("cs-msg: HTTP 500 api_error: boom\n");
    assert_eq!(std::fs::read_to_string(&chat).unwrap(), "[]\n");
}

#[test]
fn a_finished_loop_saves_the_whole_exchange_and_json_prints_the_final_message() {
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "t.sh", "echo 42");
    let model = Model::json(|n, _| match n {
        0 => message(json!([call("t1", "t", json!({}))]), "tool_use"),
        _ => message(json!([text("It is 42.")]), "end_turn"),
    });
    let chat = dir.path().join("chat.json");
    let mut c = loop_cmd(&model, dir.path(), &["t"], &[format!("t={tool}")]);
    c.args(["--json", "-c"]).arg(&chat).arg("q");
    let out = run(c).code(0);
    let printed: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(printed["content"], json!([text("It is 42.")]));
    assert_eq!(stdout_of(&out).lines().count(), 1);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&chat).unwrap()).unwrap();
    assert_eq!(
        saved,
        json!([
            {"role": "user", "content": [text("q")]},
            {"role": "assistant", "content": [call("t1", "t", json!({}))]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [text("42\n")]}]},
            {"role": "assistant", "content": [text("It is 42.")]}
        ])
    );
}

fn sse(message: &Value) -> String {
    // A minimal stream of a whole message: start, one block per content item, stop.
    let mut start = message.clone();
    start["content"] = json!([]);
    let mut s = format!(
        "event: message_start\ndata: {}\n\n",
        json!({"type": "message_start", "message": start})
    );
    for (i, block) in message["content"].as_array().unwrap().iter().enumerate() {
        let mut empty = block.clone();
        if block["type"] == "text" {
            empty["text"] = json!("");
        } else {
            empty["input"] = json!({});
        }
        s += &format!(
            "event: content_block_start\ndata: {}\n\n",
            json!({"type": "content_block_start", "index": i, "content_block": empty})
        );
        let delta = if block["type"] == "text" {
            json!({"type": "text_delta", "text": block["text"]})
        } else {
            json!({"type": "input_json_delta", "partial_json": block["input"].to_string()})
        };
        s += &format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type": "content_block_delta", "index": i, "delta": delta})
        );
        s += &format!(
            "event: content_block_stop\ndata: {}\n\n",
            json!({"type": "content_block_stop", "index": i})
        );
    }
    s += &format!(
        "event: message_delta\ndata: {}\n\n",
        json!({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": null}, "usage": {"output_tokens": 3}})
    );
    s + "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
}

#[test]
fn events_let_a_script_rebuild_the_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "t.sh", "echo 42");
    let mut server = Server::new();
    server
        .mock("POST", "/v1/messages")
        .match_body(mockito::Matcher::Regex("tool_result".into()))
        .with_header("content-type", "text/event-stream")
        .with_body(sse(&message(json!([text("It is 42.")]), "end_turn")))
        .create();
    server
        .mock("POST", "/v1/messages")
        .with_header("content-type", "text/event-stream")
        .with_body(sse(&message(
            json!([call("t1", "t", json!({"a": 1}))]),
            "tool_use",
        )))
        .create();
    let mut c = api(&server);
    c.args(["--events", "--no-stdin", "--tools"])
        .arg(tools_file(dir.path(), &["t"]))
        .arg("--exec")
        .arg(format!("t={tool}"))
        .arg("q");
    let out = stdout_of(&run(c).code(0));
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "cs_msg_tool_result",
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(
        events[6],
        json!({"type": "cs_msg_tool_result", "tool_use_id": "t1", "name": "t", "is_error": false, "content": [text("42\n")]})
    );
}

#[test]
fn text_mode_streams_every_turn_separated_by_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "t.sh", "echo 42");
    let mut server = Server::new();
    server
        .mock("POST", "/v1/messages")
        .match_body(mockito::Matcher::Regex("tool_result".into()))
        .with_header("content-type", "text/event-stream")
        .with_body(sse(&message(json!([text("It is 42.")]), "end_turn")))
        .create();
    server
        .mock("POST", "/v1/messages")
        .with_header("content-type", "text/event-stream")
        .with_body(sse(&message(
            json!([text("Checking"), call("t1", "t", json!({}))]),
            "tool_use",
        )))
        .create();
    let mut c = api(&server);
    c.args(["--no-stdin", "--tools"])
        .arg(tools_file(dir.path(), &["t"]))
        .arg("--exec")
        .arg(format!("t={tool}"))
        .arg("q");
    assert_eq!(stdout_of(&run(c).code(0)), "Checking\nIt is 42.\n");
}

#[test]
fn bad_exec_bindings_exit_2_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::json(|_, _| message(json!([text("x")]), "end_turn"));
    for (exec, message) in [
        (
            "nope=true",
            "--exec nope: not defined in --tools (it defines t)",
        ),
        ("=true", "--exec =true"),
        ("t=", "--exec t="),
        ("t=/no/such/program", "--exec t=/no/such/program"),
    ] {
        let mut c = loop_cmd(&model, dir.path(), &["t"], &[exec.to_owned()]);
        c.arg("q");
        let out = run(c).code(2);
        let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        assert!(
            err.starts_with(&format!("cs-msg: {message}")),
            "{exec}: {err}"
        );
        assert_eq!(err.lines().count(), 1);
    }
    assert!(model.bodies().is_empty());
}

#[test]
fn batch_lines_run_their_own_loops() {
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "t.sh", "read x; echo \"seen $x\"");
    let model = Model::json(|_, body| {
        let messages = body["messages"].as_array().unwrap();
        match messages.len() {
            1 => message(
                json!([call(
                    "t1",
                    "t",
                    json!({"p": messages[0]["content"][0]["text"]})
                )]),
                "tool_use",
            ),
            _ => message(json!([text("final")]), "end_turn"),
        }
    });
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "\"a\"\n\"b\"\n").unwrap();
    let mut c = api(&model.server);
    c.args(["--no-stream", "-j", "2", "--tools"])
        .arg(tools_file(dir.path(), &["t"]))
        .arg("--exec")
        .arg(format!("t={tool}"))
        .arg("--batch")
        .arg(&input);
    let out = stdout_of(&run(c).code(0));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
        assert_eq!(line["turns"], 2);
        assert_eq!(line["message"]["content"], json!([text("final")]));
    }
    assert_eq!(model.bodies().len(), 4);
}

// ---- The client-driven round trip ----

fn history_with_calls(dir: &Path) -> PathBuf {
    let chat = dir.join("chat.json");
    let turns = json!([
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": [call("toolu_01", "get_weather", json!({})), call("toolu_02", "get_time", json!({}))]}
    ]);
    std::fs::write(&chat, turns.to_string()).unwrap();
    chat
}

#[test]
fn tool_results_come_first_in_the_new_turn() {
    let dir = tempfile::tempdir().unwrap();
    let chat = history_with_calls(dir.path());
    let weather = dir.path().join("weather.json");
    std::fs::write(&weather, "{\"sky\":\"clear\"}").unwrap();
    let model = Model::json(|_, _| message(json!([text("Clear, and noon.")]), "end_turn"));
    let mut c = api(&model.server);
    c.args(["--no-stream", "--no-stdin", "-c"])
        .arg(&chat)
        .arg("--tools")
        .arg(tools_file(dir.path(), &["get_weather", "get_time"]))
        .arg("--tool-result")
        .arg(format!("toolu_01=@{}", weather.display()))
        .args(["--tool-error", "toolu_02=clock broken", "and briefly"]);
    assert_eq!(stdout_of(&run(c).code(0)), "Clear, and noon.\n");
    let body = &model.bodies()[0];
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": [text("{\"sky\":\"clear\"}")]},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": [text("clock broken")], "is_error": true},
            text("and briefly")
        ]})
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&chat).unwrap()).unwrap();
    assert_eq!(saved.as_array().unwrap().len(), 4);
}

#[test]
fn missing_or_unknown_ids_exit_2_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let chat = history_with_calls(dir.path());
    let before = std::fs::read_to_string(&chat).unwrap();
    let model = Model::json(|_, _| message(json!([text("x")]), "end_turn"));
    for (args, expected) in [
        (
            vec!["--tool-result", "toolu_01=sunny"],
            format!(
                "cs-msg: --tool-result: the last assistant turn of {} also called toolu_02 (get_time); give --tool-result or --tool-error for it\n",
                chat.display()
            ),
        ),
        (
            vec![
                "--tool-result",
                "toolu_01=a",
                "--tool-result",
                "toolu_02=b",
                "--tool-result",
                "toolu_9=c",
            ],
            format!(
                "cs-msg: --tool-result: no tool_use toolu_9 in the last assistant turn of {}\n",
                chat.display()
            ),
        ),
    ] {
        let mut c = api(&model.server);
        c.args(["--no-stream", "--no-stdin", "-c"])
            .arg(&chat)
            .args(&args);
        run(c).code(2).stderr(expected);
    }
    // --messages works the same way, and --dry-run shows the turn without sending.
    let mut c = api(&model.server);
    c.args(["--dry-run", "--no-stdin", "--messages"])
        .arg(&chat)
        .args(["--tool-result", "toolu_01=a", "--tool-error", "toolu_02=b"]);
    let body: Value = serde_json::from_str(&stdout_of(&run(c).code(0))).unwrap();
    assert_eq!(body["messages"][2]["content"][1]["is_error"], true);
    assert!(model.bodies().is_empty());
    assert_eq!(std::fs::read_to_string(&chat).unwrap(), before);
}

#[cfg(unix)]
#[test]
fn ctrl_c_during_a_tool_kills_it_and_leaves_the_conversation_alone() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let tool = script(
        dir.path(),
        "t.sh",
        &format!("echo $$ > '{}'; sleep 30", pid_file.display()),
    );
    let chat = dir.path().join("chat.json");
    std::fs::write(&chat, "[]\n").unwrap();
    let model = Model::json(|_, _| message(json!([call("t1", "t", json!({}))]), "tool_use"));
    let tools = tools_file(dir.path(), &["t"]);
    let exec = format!("t={tool}");
    let args = [
        "--no-stream",
        "--no-stdin",
        "--tools",
        tools.to_str().unwrap(),
        "--exec",
        &exec,
        "-c",
        chat.to_str().unwrap(),
        "q",
    ];
    let mut child = spawn(&model.server.url(), &args, &[]);
    let tool_pid = wait_for_pid(&pid_file, std::time::Duration::from_secs(10));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(2));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "cs-msg: interrupted\n");
    // The tool's process is gone (killed with its group), the file untouched.
    // (Once cs-msg is gone the dead tool is reparented and may linger as a zombie.)
    assert!(process_gone(&tool_pid), "tool process {tool_pid} survived");
    assert_eq!(std::fs::read_to_string(&chat).unwrap(), "[]\n");
}

#[test]
fn the_turns_of_a_streamed_loop_share_one_connection() {
    use crate::server::{Response, Server};
    let dir = tempfile::tempdir().unwrap();
    let tool = script(dir.path(), "t.sh", "echo r");
    // Three tool turns, then the answer; every response chunked, as the API sends them.
    let turn = |n: usize| {
        sse(&message(
            json!([call(&format!("t{n}"), "t", json!({}))]),
            "tool_use",
        ))
    };
    let server = Server::script([
        Response::sse(turn(1)).chunked(),
        Response::sse(turn(2)).chunked(),
        Response::sse(turn(3)).chunked(),
        Response::sse(sse(&message(json!([text("done")]), "end_turn"))).chunked(),
    ]);
    let mut c = cmd();
    c.args(["--base-url", server.url(), "--no-stdin", "--tools"])
        .env("CS_MSG_API_KEY", KEY)
        .arg(tools_file(dir.path(), &["t"]))
        .arg("--exec")
        .arg(format!("t={tool}"))
        .arg("q");
    assert_eq!(stdout_of(&run(c).code(0)), "done\n");
    assert_eq!(server.request_count(), 4);
    assert_eq!(
        server.connections(),
        1,
        "every turn opened its own connection"
    );
}

#[test]
fn dry_run_with_exec_prints_the_first_request_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let tool = script(dir.path(), "t.sh", &format!("touch '{}'", marker.display()));
    let model = Model::json(|_, _| message(json!([text("x")]), "end_turn"));
    let mut c = loop_cmd(&model, dir.path(), &["t"], &[format!("t={tool}")]);
    c.args(["--dry-run", "q"]);
    let body: Value = serde_json::from_str(&stdout_of(&run(c).code(0))).unwrap();
    assert_eq!(body["tools"][0]["name"], "t");
    assert!(model.bodies().is_empty());
    assert!(!marker.exists());
}
