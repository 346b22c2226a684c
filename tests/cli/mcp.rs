//! `--mcp`: the reference MCP servers from the npm registry (pinned in
//! tests/mcp/package.json, installed by `npm ci --prefix tests/mcp`), driven through
//! the tool loop against a local server that plays the model.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::tools::{Model, call, message, text, tools_file};

fn server_js(package: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp/node_modules/@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci --prefix tests/mcp`",
        path.display()
    );
    path.display().to_string()
}

fn everything() -> String {
    format!("node {}", server_js("server-everything"))
}

fn mcp_cmd(model: &Model, servers: &[String]) -> assert_cmd::Command {
    let mut c = api(&model.server);
    c.args([
        "--no-stream",
        "--no-stdin",
        "-m",
        "m",
        "--connect-timeout",
        "20",
    ]);
    for s in servers {
        c.arg("--mcp").arg(s);
    }
    c
}

#[test]
fn a_loop_calls_the_reference_server_and_sends_its_result_back() {
    let model = Model::json(|n, _| match n {
        0 => message(
            json!([call("toolu_1", "echo", json!({"message": "hi there"}))]),
            "tool_use",
        ),
        _ => message(json!([text("It said hi.")]), "end_turn"),
    });
    let mut c = mcp_cmd(&model, &[everything()]);
    c.args(["--mcp-tools", "echo", "-v", "Echo something"]);
    let out = run(c).code(0);
    assert_eq!(stdout_of(&out), "It said hi.\n");
    let bodies = model.bodies();
    let names: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo"]);
    assert_eq!(
        bodies[0]["tools"][0]["input_schema"]["required"],
        json!(["message"])
    );
    assert_eq!(
        bodies[1]["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
               "content": [text("Echo: hi there")]}]})
    );
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("cs-msg: tool echo (toolu_1): MCP server-everything ok"),
        "{err}"
    );
}

#[test]
fn the_filesystem_server_reads_a_file_through_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.md");
    std::fs::write(&notes, "SSE is server-sent events.\n").unwrap();
    let root = dir.path().canonicalize().unwrap();
    let wanted = root.join("notes.md").display().to_string();
    let model = Model::json(move |n, _| match n {
        0 => message(
            json!([call("toolu_1", "read_text_file", json!({"path": wanted}))]),
            "tool_use",
        ),
        _ => message(json!([text("done")]), "end_turn"),
    });
    let fs = format!("node {} {}", server_js("server-filesystem"), root.display());
    let mut c = mcp_cmd(&model, &[fs]);
    c.args([
        "--mcp-tools",
        "read_text_file,list_directory",
        "Which files mention SSE?",
    ]);
    run(c).code(0);
    let bodies = model.bodies();
    assert_eq!(bodies[0]["tools"].as_array().unwrap().len(), 2);
    let result = &bodies[1]["messages"][2]["content"][0];
    assert_eq!(
        result["content"],
        json!([text("SSE is server-sent events.\n")])
    );
    assert_eq!(result.get("is_error"), None);
}

#[test]
fn an_mcp_error_becomes_an_error_result() {
    // echo without its required argument: the server refuses the call.
    let model = Model::json(|n, _| match n {
        0 => message(json!([call("toolu_1", "echo", json!({}))]), "tool_use"),
        _ => message(json!([text("ok")]), "end_turn"),
    });
    let mut c = mcp_cmd(&model, &[everything()]);
    c.args(["--mcp-tools", "echo", "q"]);
    run(c).code(0);
    let result = &model.bodies()[1]["messages"][2]["content"][0];
    assert_eq!(result["is_error"], true, "{result}");
}

#[test]
fn dry_run_lists_the_servers_tools_and_sends_nothing() {
    let model = Model::json(|_, _| message(json!([text("x")]), "end_turn"));
    let mut c = mcp_cmd(&model, &[everything()]);
    c.args(["--dry-run", "q"]);
    let body: Value = serde_json::from_str(&stdout_of(&run(c).code(0))).unwrap();
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"echo") && names.len() > 5, "{names:?}");
    assert!(model.bodies().is_empty());
}

#[test]
fn unknown_names_collisions_and_dead_servers_exit_2_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::json(|_, _| message(json!([text("x")]), "end_turn"));
    let mut c = mcp_cmd(&model, &[everything()]);
    c.args(["--mcp-tools", "echo,nope", "q"]);
    let out = run(c).code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("nope"), "{err}");
    assert_eq!(err.lines().count(), 1);

    let mut c = mcp_cmd(&model, &[everything()]);
    c.arg("--tools")
        .arg(tools_file(dir.path(), &["echo"]))
        .arg("q");
    run(c).code(2).stderr(
        "cs-msg: two tools are named 'echo': one from --tools, one from MCP server 'server-everything'\n",
    );

    let mut c = mcp_cmd(&model, &["/no/such/server --stdio".to_owned()]);
    c.arg("q");
    let out = run(c).code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("/no/such/server"), "{err}");
    assert!(model.bodies().is_empty());
}

/// The server records its pid (`exec` keeps it), so the test can look for it after.
fn recorded_server(dir: &Path) -> (String, PathBuf) {
    let pid_file = dir.join("server.pid");
    let command = format!(
        "sh -c 'echo $$ > {}; exec node {}'",
        pid_file.display(),
        server_js("server-everything")
    );
    (command, pid_file)
}

#[test]
fn no_server_outlives_cs_msg_on_any_exit() {
    let dir = tempfile::tempdir().unwrap();
    // A normal exit.
    let (command, pid_file) = recorded_server(dir.path());
    let model = Model::json(|_, _| message(json!([text("x")]), "end_turn"));
    let mut c = mcp_cmd(&model, &[command]);
    c.arg("q");
    run(c).code(0);
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(process_gone(&pid), "server {pid} survived a normal exit");

    // SIGTERM while the model is thinking: the server's group is stopped too.
    let (command, pid_file) = recorded_server(dir.path());
    let mut server = mockito::Server::new();
    server
        .mock("POST", "/v1/messages")
        .with_chunked_body(|_| {
            std::thread::sleep(Duration::from_secs(10));
            Ok(())
        })
        .create();
    let args = ["--no-stream", "--no-stdin", "--mcp", &command, "q"];
    let mut child = spawn(&server.url(), &args, &[]);
    let pid = wait_for_pid(&pid_file, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500)); // past the handshake, into the request
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    use std::os::unix::process::ExitStatusExt;
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.signal(), Some(15), "{status:?}: {err}");
    assert!(process_gone(&pid), "server {pid} survived SIGTERM");
}

#[test]
fn tool_choice_may_name_an_mcp_tool() {
    let model = Model::json(|_, _| message(json!([text("x")]), "end_turn"));
    let mut c = mcp_cmd(&model, &[everything()]);
    c.args([
        "--mcp-tools",
        "echo",
        "--tool-choice",
        "echo",
        "--dry-run",
        "q",
    ]);
    let body: Value = serde_json::from_str(&stdout_of(&run(c).code(0))).unwrap();
    assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "echo"}));
    let mut c = mcp_cmd(&model, &[everything()]);
    c.args([
        "--mcp-tools",
        "echo",
        "--tool-choice",
        "nope",
        "--dry-run",
        "q",
    ]);
    run(c).code(2).stderr(
        "cs-msg: --tool-choice nope: no tool of that name in --tools or the --mcp servers\n",
    );
}

#[test]
fn a_batch_shares_one_server_across_its_workers() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let command = format!(
        "sh -c 'echo $$ >> {}; exec node {}'",
        pids.display(),
        server_js("server-everything")
    );
    let model = Model::json(|_, body| {
        if crate::tools::answered(body) {
            message(json!([text("echoed")]), "end_turn")
        } else {
            let prompt = body["messages"][0]["content"][0]["text"].clone();
            message(
                json!([call("toolu_1", "echo", json!({"message": prompt}))]),
                "tool_use",
            )
        }
    });
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "\"one\"\n\"two\"\n\"three\"\n").unwrap();
    let mut c = api(&model.server);
    c.args([
        "--no-stream",
        "-j",
        "3",
        "--connect-timeout",
        "20",
        "--mcp-tools",
        "echo",
    ])
    .arg("--mcp")
    .arg(&command)
    .arg("--batch")
    .arg(&input);
    let out = stdout_of(&run(c).code(0));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["turns"], 2, "{line}");
    }
    // Every line's call reached the one server, which echoed that line's prompt.
    let mut echoed: Vec<String> = model
        .bodies()
        .iter()
        .filter(|b| crate::tools::answered(b))
        .map(|b| {
            b["messages"][2]["content"][0]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    echoed.sort();
    assert_eq!(echoed, ["Echo: one", "Echo: three", "Echo: two"]);
    assert_eq!(
        std::fs::read_to_string(&pids).unwrap().lines().count(),
        1,
        "one server per process"
    );
}

#[test]
fn count_tokens_counts_with_the_mcp_tools() {
    let mut server = mock_server();
    let mock = server
        .mock("POST", "/v1/messages/count_tokens")
        .match_body(mockito::Matcher::PartialJson(
            json!({"tools": [{"name": "echo"}]}),
        ))
        .with_header("content-type", "application/json")
        .with_body(r#"{"input_tokens": 321}"#)
        .create();
    let mut c = api(&server);
    c.args([
        "--no-stdin",
        "--connect-timeout",
        "20",
        "--count-tokens",
        "--mcp-tools",
        "echo",
    ])
    .arg("--mcp")
    .arg(everything())
    .arg("q");
    run(c).code(0).stdout("321\n");
    mock.assert();
}
