//! The MCP client against real servers: the reference servers from npm (pinned in
//! tests/mcp/package-lock.json, installed by `npm ci --prefix tests/mcp`, which .ci/run
//! does) and tests/mcp/mock-server.js for what they cannot show. They need `node` on
//! PATH and fail, saying so, without it or without tests/mcp/node_modules.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::error::{ExitKind, Failure};

const CONNECT: Duration = Duration::from_secs(10);
const CALL: Duration = Duration::from_secs(10);

/// `kill_all` stops every server of the process: its test takes this for writing, every
/// other test that starts servers for reading.
static SERVERS: RwLock<()> = RwLock::new(());

fn servers() -> RwLockReadGuard<'static, ()> {
    SERVERS.read().unwrap_or_else(|e| e.into_inner())
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp")
}

/// `node SCRIPT ARGS...` as a `--mcp` command, quoted for the split.
fn node(script: &Path, args: &[&str]) -> String {
    assert!(
        script.exists(),
        "{} is missing: run `npm ci --prefix tests/mcp` (.ci/run does)",
        script.display()
    );
    let mut words = vec!["node".to_owned(), script.display().to_string()];
    words.extend(args.iter().map(|a| (*a).to_owned()));
    shell_words::join(words)
}

fn package(name: &str) -> PathBuf {
    dir()
        .join("node_modules/@modelcontextprotocol")
        .join(name)
        .join("dist/index.js")
}

fn everything() -> String {
    node(&package("server-everything"), &[])
}

fn mock(mode: &str) -> String {
    node(&dir().join("mock-server.js"), &[mode])
}

fn start(command: &str) -> McpServer {
    match McpServer::start(command, false, CONNECT) {
        Ok(server) => server,
        Err(e) => panic!("{command}: {e}"),
    }
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

fn names(tools: &[Value]) -> Vec<&str> {
    tools.iter().filter_map(|t| t["name"].as_str()).collect()
}

/// The message of a usage error (exit 2); anything else fails the test.
fn usage_message<T>(result: anyhow::Result<T>) -> String {
    let Err(e) = result else {
        panic!("expected a usage error");
    };
    match e.downcast_ref::<Failure>() {
        Some(f) if f.kind == ExitKind::Usage => f.message.clone(),
        _ => panic!("not a usage error: {e:#}"),
    }
}

/// The live (not zombie) processes of a process group, from /proc.
fn live_in_group(pgid: i32) -> Vec<i32> {
    let mut live = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return live;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            live.push(pid);
        }
    }
    live
}

/// The group's live processes once SIGKILL has had time to land (a generous bound).
fn survivors(pgid: i32) -> Vec<i32> {
    for _ in 0..500 {
        if live_in_group(pgid).is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    live_in_group(pgid)
}

fn pgid(server: &McpServer) -> i32 {
    server.pgid()
}

#[test]
fn server_everything_lists_its_tools_as_api_definitions() {
    let _servers = servers();
    let server = start(&everything());
    assert_eq!(server.name(), "server-everything");
    let tools = server.tools().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        names(&tools),
        [
            "echo",
            "get-annotated-message",
            "get-env",
            "get-resource-links",
            "get-resource-reference",
            "get-structured-content",
            "get-sum",
            "get-tiny-image",
            "gzip-file-as-resource",
            "toggle-simulated-logging",
            "toggle-subscriber-updates",
            "trigger-long-running-operation",
            "simulate-research-query",
        ]
    );
    assert_eq!(
        tools[0],
        json!({
            "name": "echo",
            "description": "Echoes back the input string",
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"message": {"type": "string", "description": "Message to echo"}},
                "required": ["message"],
            },
        })
    );
}

#[test]
fn server_everything_results_map_to_api_content() {
    let _servers = servers();
    let server = start(&everything());
    let echo = server.call("echo", &json!({"message": "hé \"there\"\n"}), CALL);
    assert_eq!(
        echo,
        ToolCallResult {
            content: vec![text("Echo: hé \"there\"\n")],
            is_error: false
        }
    );

    let sum = server.call("get-sum", &json!({"a": 2, "b": 40}), CALL);
    assert_eq!(sum.content, [text("The sum of 2 and 40 is 42.")]);

    let image = server.call("get-tiny-image", &json!({}), CALL);
    assert!(!image.is_error);
    assert_eq!(image.content.len(), 3, "{:?}", image.content);
    assert_eq!(image.content[0], text("Here's the image you requested:"));
    assert_eq!(image.content[1]["type"], "image");
    assert_eq!(image.content[1]["source"]["type"], "base64");
    assert_eq!(image.content[1]["source"]["media_type"], "image/png");
    let data = image.content[1]["source"]["data"].as_str().unwrap_or("");
    assert!(data.starts_with("iVBORw0KGgo"), "not a PNG: {data:.20}");
    assert_eq!(image.content[2], text("The image above is the MCP logo."));

    let links = server.call("get-resource-links", &json!({"count": 2}), CALL);
    assert_eq!(
        links.content,
        [
            text("Here are 2 resource links to resources available in this server:"),
            text(
                "[resource link: demo://resource/dynamic/blob/1 (Blob Resource 1): Resource 1: plaintext resource]"
            ),
            text(
                "[resource link: demo://resource/dynamic/text/2 (Text Resource 2): Resource 2: plaintext resource]"
            ),
        ]
    );

    let reference = server.call(
        "get-resource-reference",
        &json!({"resourceType": "Text", "resourceId": 1}),
        CALL,
    );
    assert_eq!(reference.content.len(), 3, "{:?}", reference.content);
    assert_eq!(
        reference.content[0],
        text("Returning resource reference for Resource 1:")
    );
    let body = reference.content[1]["text"].as_str().unwrap_or("");
    assert!(
        body.starts_with("Resource 1: This is a plaintext resource created at "),
        "{body}"
    );
}

#[test]
fn server_everything_errors_are_error_results() {
    let _servers = servers();
    let server = start(&everything());
    assert_eq!(
        server.call("no-such-tool", &json!({}), CALL),
        ToolCallResult {
            content: vec![text("MCP error -32602: Tool no-such-tool not found")],
            is_error: true
        }
    );
    let invalid = server.call("get-sum", &json!({"a": "two"}), CALL);
    assert!(invalid.is_error);
    let message = invalid.content[0]["text"].as_str().unwrap_or("");
    assert!(
        message.starts_with("MCP error -32602: Input validation error"),
        "{message}"
    );
    // The server is still fine afterwards.
    assert_eq!(
        server.call("echo", &json!({"message": "ok"}), CALL).content,
        [text("Echo: ok")]
    );
}

#[test]
fn a_slow_call_times_out_and_the_server_goes_on() {
    let _servers = servers();
    let server = start(&everything());
    let slow = server.call(
        "trigger-long-running-operation",
        &json!({"duration": 30, "steps": 1}),
        Duration::from_millis(200),
    );
    assert_eq!(
        slow,
        ToolCallResult::error(
            "tool 'trigger-long-running-operation' of MCP server server-everything timed out after 0.2 s"
        )
    );
    assert_eq!(
        server
            .call("echo", &json!({"message": "next"}), CALL)
            .content,
        [text("Echo: next")]
    );
}

#[test]
fn a_timed_out_call_is_cancelled() {
    let _servers = servers();
    let server = start(&mock("basic"));
    let never = server.call("never", &json!({}), Duration::from_millis(100));
    assert!(never.is_error);
    // The first request was initialize, the second tools/call "never".
    assert_eq!(
        server.call("cancelled", &json!({}), CALL).content,
        [text("[2]")]
    );
}

#[test]
fn calls_from_several_threads_overlap() {
    let _servers = servers();
    let server = start(&mock("basic"));
    let finished = Arc::new(Mutex::new(Vec::new()));
    thread::scope(|scope| {
        let held = scope.spawn(|| {
            let result = server.call("hold", &json!({"n": 1}), CALL);
            finished
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push("hold");
            result
        });
        // "release" answers itself, then the held call: the held call must have been
        // sent first for its answer to come at all.
        while server.pending() == 0 {
            thread::sleep(Duration::from_millis(5));
        }
        let released = server.call("release", &json!({"n": 2}), CALL);
        finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push("release");
        assert_eq!(released.content, [text("released")]);
        let held = held
            .join()
            .unwrap_or_else(|_| panic!("the held call panicked"));
        assert_eq!(held.content, [text("held: {\"n\":2}")]);
    });
    // Overlapping calls in 8 threads all get their own answers.
    thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|i| {
                let server = &server;
                scope.spawn(move || server.call(&format!("tool{i}"), &json!({}), CALL))
            })
            .collect();
        for (i, worker) in workers.into_iter().enumerate() {
            let result = worker.join().unwrap_or_else(|_| panic!("worker panicked"));
            assert_eq!(result.content, [text(&format!("called tool{i}"))]);
        }
    });
}

#[test]
fn tools_list_follows_every_page() {
    let _servers = servers();
    let server = start(&mock("paged"));
    assert_eq!(server.name(), "mock-server.js");
    let tools = server.tools().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&tools), ["a", "b", "c", "d"]);
    assert_eq!(
        tools[3],
        json!({"name": "d", "description": "the d tool", "input_schema": {"type": "object"}})
    );
}

#[test]
fn requests_from_the_server_are_answered() {
    let _servers = servers();
    let server = start(&mock("basic"));
    let result = server.call("ask", &json!({}), CALL);
    let replies: Value = serde_json::from_str(result.content[0]["text"].as_str().unwrap_or(""))
        .unwrap_or(Value::Null);
    assert_eq!(
        replies,
        json!([
            {"jsonrpc": "2.0", "id": "p1", "result": {}},
            {"jsonrpc": "2.0", "id": 99, "error": {"code": -32601, "message": "cs-msg does not offer sampling/createMessage"}},
        ])
    );
    assert_eq!(
        server.call("rpc-error", &json!({}), CALL),
        ToolCallResult::error("MCP error -32000: the mock refuses")
    );
}

#[test]
fn a_server_that_dies_turns_pending_and_later_calls_into_errors() {
    let _servers = servers();
    let server = start(&mock("basic"));
    let exited = ToolCallResult::error("MCP server mock-server.js exited");
    assert_eq!(server.call("die", &json!({}), CALL), exited);
    assert_eq!(server.call("echo", &json!({}), CALL), exited);
    assert_eq!(
        usage_message(server.tools()),
        format!(
            "MCP server '{}' exited before answering tools/list",
            mock("basic")
        )
    );
}

#[test]
fn a_server_that_floods_its_output_is_stopped() {
    let _servers = servers();
    let server = start(&mock("basic"));
    let group = pgid(&server);
    let stopped = ToolCallResult::error(
        "MCP server mock-server.js sent a message over 32 MiB and was stopped",
    );
    assert_eq!(server.call("flood", &json!({}), CALL), stopped);
    assert_eq!(server.call("echo", &json!({}), CALL), stopped);
    assert_eq!(survivors(group), Vec::<i32>::new());
}

#[test]
fn start_up_failures_are_usage_errors_naming_the_command() {
    let _servers = servers();
    let silent = mock("silent");
    assert_eq!(
        usage_message(McpServer::start(&silent, false, Duration::from_millis(300))),
        format!("MCP server '{silent}' did not answer initialize within 0.3 s")
    );
    let old = mock("old-version");
    assert_eq!(
        usage_message(McpServer::start(&old, false, CONNECT)),
        format!(
            "MCP server '{old}' answered initialize with protocol version '1999-01-01'; cs-msg speaks 2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25"
        )
    );
    assert_eq!(
        usage_message(McpServer::start(
            "cs-msg-no-such-server --x",
            false,
            CONNECT
        )),
        "MCP server 'cs-msg-no-such-server --x' could not start: cs-msg-no-such-server: No such file or directory (os error 2)"
    );
    assert_eq!(
        usage_message(McpServer::start(
            "node -e 'process.exit(1)'",
            false,
            CONNECT
        )),
        "MCP server 'node -e 'process.exit(1)'' exited before answering initialize"
    );
    assert_eq!(
        usage_message(McpServer::start("  ", false, CONNECT)),
        "--mcp: the command is empty"
    );
    assert_eq!(
        usage_message(McpServer::start("node 'open", false, CONNECT)),
        "MCP server 'node 'open': cannot split the command: missing closing quote"
    );
}

#[test]
fn start_all_starts_every_server_in_order_or_fails_naming_the_first_culprit() {
    let _servers = servers();
    let commands = [everything(), mock("paged")];
    let started = start_all(&commands, false, CONNECT).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = started.iter().map(McpServer::name).collect();
    assert_eq!(names, ["server-everything", "mock-server.js"]);
    assert_eq!(started[1].command(), commands[1]);

    let commands = [
        mock("basic"),
        "cs-msg-no-such-server".to_owned(),
        "cs-msg-no-such-other".to_owned(),
    ];
    assert_eq!(
        usage_message(start_all(&commands, false, CONNECT)),
        "MCP server 'cs-msg-no-such-server' could not start: cs-msg-no-such-server: No such file or directory (os error 2)"
    );
}

#[test]
fn the_filesystem_server_reads_only_its_directory() {
    let _servers = servers();
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.path().join("notes.txt"), "SSE is mentioned here\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let root_path = root.path().display().to_string();
    let server = start(&node(&package("server-filesystem"), &[&root_path]));
    assert_eq!(server.name(), "server-filesystem");
    let tools = server.tools().unwrap_or_else(|e| panic!("{e}"));
    assert!(names(&tools).contains(&"write_file"), "{:?}", names(&tools));

    // A read-only subset, in the server's order.
    let wanted = ["list_directory".to_owned(), "read_text_file".to_owned()];
    let offered = select(&[(server.name(), tools.clone())], &[], Some(&wanted))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        offered
            .iter()
            .map(|o| (o.server, o.definition["name"].as_str()))
            .collect::<Vec<_>>(),
        [(0, Some("read_text_file")), (0, Some("list_directory"))]
    );

    let file = root.path().join("notes.txt").display().to_string();
    assert_eq!(
        server.call("read_text_file", &json!({"path": file}), CALL),
        ToolCallResult {
            content: vec![text("SSE is mentioned here\n")],
            is_error: false
        }
    );
    assert_eq!(
        server
            .call("list_directory", &json!({"path": root_path}), CALL)
            .content,
        [text("[FILE] notes.txt")]
    );
    let outside = server.call("read_text_file", &json!({"path": "/etc/hostname"}), CALL);
    assert!(outside.is_error);
    let message = outside.content[0]["text"].as_str().unwrap_or("");
    assert!(message.contains("Access denied"), "{message}");

    let missing = ["read_text_file".to_owned(), "rm_rf".to_owned()];
    assert_eq!(
        usage_message(select(&[(server.name(), tools)], &[], Some(&missing))),
        "--mcp-tools: no MCP server offers a tool named 'rm_rf'"
    );
}

#[test]
fn dropping_a_server_stops_its_whole_process_group() {
    let _servers = servers();
    // It ignores the end of its input and SIGTERM, and so does its child.
    let server = start(&mock("stubborn"));
    let group = pgid(&server);
    while live_in_group(group).len() < 2 {
        thread::sleep(Duration::from_millis(10));
    }
    drop(server);
    assert_eq!(survivors(group), Vec::<i32>::new());

    let server = start(&everything());
    let group = pgid(&server);
    assert!(!live_in_group(group).is_empty());
    drop(server);
    assert_eq!(survivors(group), Vec::<i32>::new());
}

#[test]
fn kill_all_stops_every_server() {
    let _all = SERVERS.write().unwrap_or_else(|e| e.into_inner());
    let servers = [start(&mock("stubborn")), start(&mock("basic"))];
    let groups: Vec<i32> = servers.iter().map(pgid).collect();
    while live_in_group(groups[0]).len() < 2 {
        thread::sleep(Duration::from_millis(10));
    }
    kill_all();
    for &group in &groups {
        assert_eq!(survivors(group), Vec::<i32>::new());
    }
    // The servers' calls now fail instead of hanging.
    assert_eq!(
        servers[1].call("echo", &json!({}), CALL),
        ToolCallResult::error("MCP server mock-server.js exited")
    );
}

mod selection;
