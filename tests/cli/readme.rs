//! Every example command in README.md, and every example of -h, --help and the man
//! page, runs in order against a mock server that answers like the API. An example
//! that stops working fails this test.

use std::path::Path;

use mockito::{Matcher, ServerGuard};
use serde_json::{Value, json};

use crate::common::*;

/// The command lines of README.md's code blocks that call cs-msg. Skipped: the set-up
/// line (it installs and needs the network), file copies, and the synopsis.
fn examples(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut previous_blank = true;
    let mut in_indented = false;
    for line in readme.lines() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(lang.trim().to_owned()),
            };
            continue;
        }
        let code = match &fence {
            Some(lang) if lang == "yaml" => line.trim().strip_prefix("run: ").map(str::to_owned),
            Some(_) => Some(line.to_owned()),
            None => {
                in_indented = line.starts_with("    ") && (previous_blank || in_indented);
                previous_blank = line.trim().is_empty();
                in_indented.then(|| line[4..].to_owned())
            }
        };
        let Some(code) = code else { continue };
        // A trailing comment: two spaces then `#`.
        let code = match code.find("  #") {
            Some(i) => code[..i].trim_end().to_owned(),
            None => code.trim().to_owned(),
        };
        let runs_cs_msg = code
            .split_whitespace()
            .any(|w| w == "cs-msg" || w.ends_with("'cs-msg"));
        let skipped = code.starts_with("cargo ")
            || code.starts_with("cp ")
            || code.starts_with('#')
            || code.contains("[OPTIONS]");
        if runs_cs_msg && !skipped {
            out.push(code);
        }
    }
    out
}

/// A minimal instance of a JSON Schema, for the mock's structured answers.
fn instance(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut obj = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    obj.insert(k.clone(), instance(v));
                }
            }
            Value::Object(obj)
        }
        Some("array") => json!([instance(schema.get("items").unwrap_or(&json!({})))]),
        Some("string") => json!("text"),
        Some("integer") => json!(1815),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        _ => Value::Null,
    }
}

/// The assistant's content for a request: a call to the first tool when tools are
/// given (so --schema and --tools examples get what they expect), else text.
fn answer(request: &Value) -> Vec<Value> {
    // After a tool result (a tool loop's second turn), the model answers in words.
    let last_turn = request["messages"].as_array().and_then(|m| m.last());
    let answered = last_turn
        .and_then(|t| t["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    if answered {
        return vec![json!({"type": "text", "text": "An answer from the mock."})];
    }
    match request.get("tools").and_then(|t| t.get(0)) {
        Some(tool) => vec![json!({
            "type": "tool_use", "id": "toolu_readme", "name": tool["name"],
            "input": instance(&tool["input_schema"]),
        })],
        None => vec![json!({"type": "text", "text": "An answer from the mock."})],
    }
}

fn message(content: Vec<Value>) -> Value {
    let stop = if content[0]["type"] == "tool_use" {
        "tool_use"
    } else {
        "end_turn"
    };
    json!({"id": "msg_readme", "type": "message", "role": "assistant", "model": "mock",
           "content": content, "stop_reason": stop, "stop_sequence": null,
           "usage": {"input_tokens": 10, "output_tokens": 5}})
}

fn sse(message: &Value) -> String {
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    let mut s = event(
        "message_start",
        &json!({"type": "message_start", "message": start}).to_string(),
    );
    for (i, block) in message["content"].as_array().unwrap().iter().enumerate() {
        let mut empty = block.clone();
        if block["type"] == "text" {
            empty["text"] = json!("");
        } else {
            empty["input"] = json!({});
        }
        s += &event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": i, "content_block": empty}).to_string(),
        );
        let delta = if block["type"] == "text" {
            json!({"type": "text_delta", "text": block["text"]})
        } else {
            json!({"type": "input_json_delta", "partial_json": block["input"].to_string()})
        };
        s += &event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": i, "delta": delta}).to_string(),
        );
        s += &event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": i}).to_string(),
        );
    }
    s + &stream_end(message["stop_reason"].as_str().unwrap())
}

fn is_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["stream"] == json!(true))
}

fn api_mock(server: &mut ServerGuard) {
    server
        .mock("POST", "/v1/messages")
        .match_request(|r| is_stream(r.body().unwrap()))
        .with_header("content-type", "text/event-stream")
        .with_body_from_request(|r| {
            let req: Value = serde_json::from_slice(r.body().unwrap()).unwrap();
            sse(&message(answer(&req))).into_bytes()
        })
        .create();
    server
        .mock("POST", "/v1/messages")
        .match_request(|r| !is_stream(r.body().unwrap()))
        .with_header("content-type", "application/json")
        .with_body_from_request(|r| {
            let req: Value = serde_json::from_slice(r.body().unwrap()).unwrap();
            message(answer(&req)).to_string().into_bytes()
        })
        .create();
    server
        .mock("POST", "/v1/messages/count_tokens")
        .with_header("content-type", "application/json")
        .with_body(r#"{"input_tokens": 1234}"#)
        .create();
    server
        .mock("GET", "/v1/models")
        .match_query(Matcher::Any)
        .with_header("content-type", "application/json")
        .with_body(r#"{"data":[{"type":"model","id":"claude-sonnet-4.6"}],"has_more":false,"first_id":"claude-sonnet-4.6","last_id":"claude-sonnet-4.6"}"#)
        .create();
}

/// The files the examples mention, and a git repository with a diff to describe.
fn workspace(dir: &Path) {
    let copy = |from: &str, to: &str| {
        std::fs::copy(fixture_path(from), dir.join(to)).unwrap();
    };
    copy("pixel.png", "diagram.png");
    copy("pixel.jpg", "photo.jpg");
    copy("hello.pdf", "spec.pdf");
    copy("hello.pdf", "report.pdf");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write("notes.md", "# Notes\nSSE is a one-way stream.\n");
    write("todo.txt", "- write tests\n");
    write(
        "person.json",
        r#"{"type":"object","properties":{"name":{"type":"string"},"born":{"type":"integer"}},"required":["name","born"]}"#,
    );
    write(
        "tools.json",
        r#"[{"name":"get_weather","description":"Current weather","input_schema":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}]"#,
    );
    write(
        "weather.py",
        "import json, sys\nprint('sunny in', json.load(sys.stdin).get('location', 'Paris'))\n",
    );
    write("weather.json", "{\"sky\": \"clear\", \"celsius\": 21}\n");
    // A history whose last turn is a tool call, for --tool-result.
    write(
        "calls.json",
        r#"[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"location":"Paris"}}]}]"#,
    );
    std::fs::create_dir(dir.join("docs")).unwrap();
    write("docs/notes.md", "SSE: server-sent events.\n");
    write(
        "history.json",
        r#"[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]"#,
    );
    write(
        "prompts.jsonl",
        "\"Say hi\"\n{\"id\":\"b\",\"prompt\":\"Say bye\"}\n",
    );
    let git = |args: &[&str]| {
        let ok = scrubbed("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["add", "notes.md"]);
    git(&["commit", "-qm", "one"]);
    write("notes.md", "# Notes\nSSE is a one-way stream of events.\n");
    git(&["commit", "-qam", "two"]);
    write("notes.md", "# Notes\nSSE: one-way events over HTTP.\n");
}

#[test]
fn every_readme_example_runs() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let examples = examples(&readme);
    assert!(
        examples.len() >= 20,
        "only {} examples found",
        examples.len()
    );
    run_all("README", &examples);
}

/// The man page's EXAMPLES, which hold every example of -h and --help too (all come
/// from one list in src/help.rs), as shell lines.
fn man_examples(man: &str) -> Vec<String> {
    let section = man.split(".SH EXAMPLES\n.nf\n").nth(1).expect("EXAMPLES");
    let block = section.split("\n.fi\n").next().unwrap();
    block
        .lines()
        .map(|l| {
            l.replace("\\-", "-")
                .replace("\\(aq", "'")
                .replace("\\e", "\\")
        })
        .collect()
}

#[test]
fn every_help_and_man_page_example_runs() {
    let mut c = cmd();
    c.args(["--generate", "man"]);
    let examples = man_examples(&stdout_of(&run(c).success()));
    assert!(
        examples.len() >= 8,
        "only {} examples found",
        examples.len()
    );
    assert!(examples.contains(&r#"cs-msg --json "hi" | jq -r '.content[0].text'"#.to_owned()));
    run_all("man page", &examples);
}

/// Runs each line with bash in one workspace, in order, against one mock server; each
/// must succeed without showing the key.
fn run_all(source: &str, examples: &[String]) {
    let mut server = mock_server();
    api_mock(&mut server);
    let dir = tempfile::tempdir().unwrap();
    workspace(dir.path());
    let bin = assert_cmd::cargo::cargo_bin!("cs-msg");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for example in examples {
        // Real endpoints in examples point at the mock instead.
        // MCP servers come from tests/mcp (npm ci), not from the network.
        let mut line = example
            .replace("https://api.anthropic.com", &server.url())
            .replace("https://api2.claudestore.store", &server.url());
        for package in ["server-everything", "server-filesystem"] {
            let js = format!(
                "{}/tests/mcp/node_modules/@modelcontextprotocol/{package}/dist/index.js",
                env!("CARGO_MANIFEST_DIR")
            );
            line = line.replace(
                &format!("npx -y @modelcontextprotocol/{package}"),
                &format!("node {js}"),
            );
        }
        let out = scrubbed("bash")
            .args(["-o", "pipefail", "-c", &line])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env("NO_PROXY", "*")
            .env("CS_MSG_BASE_URL", server.url())
            .env("CS_MSG_API_KEY", KEY)
            .env("ANTHROPIC_API_KEY", KEY)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{source} example failed ({}):\n  {example}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        assert!(
            !stdout.contains(KEY) && !stderr.contains(KEY),
            "key leaked: {example}"
        );
    }
}

#[test]
fn examples_are_found_in_every_kind_of_block() {
    let text = "Intro\n\n    cs-msg \"a\"  # note\n    echo x | cs-msg\n\n```sh\ncargo install --path . && cs-msg x\ncs-msg -q y\n```\n\n```yaml\n  run: git diff | cs-msg -q\n```\n    not code\n";
    assert_eq!(
        examples(text),
        vec![
            "cs-msg \"a\"",
            "echo x | cs-msg",
            "cs-msg -q y",
            "git diff | cs-msg -q"
        ]
    );
}

/// CI runs the very test command the README gives a newcomer.
#[test]
fn ci_runs_the_readme_test_command() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let setup = readme.split("## Set-up").nth(1).unwrap();
    let block = setup
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let commands: Vec<&str> = block.lines().collect();
    assert_eq!(
        commands.len(),
        2,
        "the README keeps exactly two set-up commands"
    );
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        ".ci/run does not run the README's test command `{}`",
        commands[1]
    );
}
