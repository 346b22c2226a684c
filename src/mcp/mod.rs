//! MCP servers as tools: a small synchronous client for the Model Context Protocol over
//! stdio (JSON-RPC 2.0, one message per line), enough to list a server's tools and call
//! them. See `server.rs` for the process and threads, `content.rs` for the mapping of
//! MCP shapes to API shapes.

mod content;
mod rpc;
mod server;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use crate::error::{one_line, usage};

pub use server::McpServer;

/// What a tool call produced: the content of the `tool_result` block and its
/// `is_error` flag. Content is never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallResult {
    pub content: Vec<Value>,
    pub is_error: bool,
}

impl ToolCallResult {
    pub fn error(message: impl Into<String>) -> Self {
        ToolCallResult {
            content: vec![json!({"type": "text", "text": one_line(&message.into())})],
            is_error: true,
        }
    }
}

/// Starts every `--mcp` COMMAND at once (each start waits mostly on a child's start-up),
/// in order. The first failure, in flag order, is the error; servers already started are
/// stopped then.
pub fn start_all(
    commands: &[String],
    verbose: bool,
    connect_timeout: Duration,
) -> Result<Vec<McpServer>> {
    std::thread::scope(|scope| {
        let starts: Vec<_> = commands
            .iter()
            .map(|command| scope.spawn(move || McpServer::start(command, verbose, connect_timeout)))
            .collect();
        let mut servers = Vec::new();
        let mut failure = None;
        for start in starts {
            match start.join() {
                Ok(Ok(server)) => servers.push(server),
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(_) => {
                    failure.get_or_insert(usage("an MCP server's start-up panicked"));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(servers),
        }
    })
}

/// One tool to offer: which server (an index into the list given to [`select`]) and
/// the API tool definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub server: usize,
    pub definition: Value,
}

/// The tools to offer, from every server's `tools()` (each with its name), in server
/// order: only those named in `mcp_tools` when given (`--mcp-tools`; a name no server
/// has is exit 2). A name offered twice, by two servers or by a server and `--tools`
/// (`defined`: the names in `--tools`), is exit 2 naming both.
pub fn select(
    servers: &[(&str, Vec<Value>)],
    defined: &[&str],
    mcp_tools: Option<&[String]>,
) -> Result<Vec<Offered>> {
    let tool_name = |tool: &Value| tool.get("name").and_then(Value::as_str).map(str::to_owned);
    if let Some(wanted) = mcp_tools {
        for name in wanted {
            let known = servers
                .iter()
                .any(|(_, tools)| tools.iter().any(|t| tool_name(t).as_ref() == Some(name)));
            if !known {
                return Err(usage(format!(
                    "--mcp-tools: no MCP server offers a tool named '{}'",
                    one_line(name)
                )));
            }
        }
    }
    let labels = labels(servers);
    let mut origin: HashMap<String, String> = defined
        .iter()
        .map(|name| ((*name).to_owned(), "--tools".to_owned()))
        .collect();
    let mut offered = Vec::new();
    for (index, (_, tools)) in servers.iter().enumerate() {
        for tool in tools {
            let Some(name) = tool_name(tool) else {
                continue;
            };
            if mcp_tools.is_some_and(|wanted| !wanted.contains(&name)) {
                continue;
            }
            if let Some(first) = origin.get(&name) {
                return Err(usage(format!(
                    "two tools are named '{}': one from {first}, one from {}",
                    one_line(&name),
                    labels[index]
                )));
            }
            origin.insert(name, labels[index].clone());
            offered.push(Offered {
                server: index,
                definition: tool.clone(),
            });
        }
    }
    Ok(offered)
}

/// How messages name each server: `MCP server 'NAME'`, with its place among the
/// `--mcp` flags when two servers share a name.
fn labels(servers: &[(&str, Vec<Value>)]) -> Vec<String> {
    servers
        .iter()
        .enumerate()
        .map(|(index, (name, _))| {
            let shared = servers.iter().filter(|(other, _)| other == name).count() > 1;
            if shared {
                format!("MCP server '{}' (--mcp #{})", one_line(name), index + 1)
            } else {
                format!("MCP server '{}'", one_line(name))
            }
        })
        .collect()
}

/// A short name for a server, for messages and its `-v` stderr lines, from its command
/// words: the npm package it runs (`@scope/NAME`, also inside a `node_modules` path,
/// without a `@version`), else the first argument of a package runner (`npx`, `bunx`,
/// `pnpx`, `uvx`), else the script an interpreter runs (`node`, `python3`, ...), else
/// the program's file name.
pub fn server_name(words: &[String]) -> String {
    let args: Vec<&str> = words
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|w| !w.starts_with('-'))
        .collect();
    for arg in &args {
        let segments: Vec<&str> = arg.split('/').collect();
        if let Some(pair) = segments
            .windows(2)
            .find(|pair| pair[0].len() > 1 && pair[0].starts_with('@') && !pair[1].is_empty())
        {
            return without_version(pair[1]).to_owned();
        }
    }
    let program = words.first().map_or("", |p| file_name(p));
    let first = args.first().map(|arg| file_name(arg));
    const RUNNERS: [&str; 4] = ["npx", "bunx", "pnpx", "uvx"];
    const INTERPRETERS: [&str; 9] = [
        "node", "deno", "bun", "python", "python3", "ruby", "perl", "sh", "bash",
    ];
    match first {
        Some(arg) if RUNNERS.contains(&program) => without_version(arg).to_owned(),
        Some(arg) if INTERPRETERS.contains(&program) => arg.to_owned(),
        _ => program.to_owned(),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `name@1.2.3` or `name==1.2.3` → `name`.
fn without_version(package: &str) -> &str {
    let end = package
        .find("==")
        .or_else(|| {
            package
                .get(1..)
                .and_then(|rest| rest.find('@'))
                .map(|i| i + 1)
        })
        .unwrap_or(package.len());
    &package[..end]
}

/// Seconds for messages: "10", "0.25".
fn seconds(duration: Duration) -> String {
    format!("{}", duration.as_secs_f64())
}

/// Stops every running server's process group (SIGTERM, a short grace, SIGKILL), for
/// the Ctrl-C and SIGTERM handler, which exits right after without running `Drop`.
pub fn kill_all() {
    let groups = registry::all();
    for &pgid in &groups {
        server::signal_group(pgid, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    while groups.iter().any(|&pgid| !server::exited(pgid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for &pgid in &groups {
        server::signal_group(pgid, libc::SIGKILL);
    }
}

/// The process groups of the servers that are running (each group's id is its
/// leader's pid, which stays reserved until `Drop` reaps the leader, after it has
/// removed the group from here).
mod registry {
    use std::sync::Mutex;

    static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

    fn groups() -> std::sync::MutexGuard<'static, Vec<i32>> {
        GROUPS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add(pgid: i32) {
        groups().push(pgid);
    }

    pub fn remove(pgid: i32) {
        groups().retain(|&g| g != pgid);
    }

    pub fn all() -> Vec<i32> {
        groups().clone()
    }
}
