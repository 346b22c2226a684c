//! One MCP server: a child process spoken to over its stdin and stdout.
//!
//! Three threads per server besides the callers: a writer owns stdin (so no caller ever
//! blocks on a server that stops reading), a reader owns stdout and hands each response
//! to the caller waiting for its id, and with `-v` one copies stderr. Callers wait on a
//! channel of their own, with a timeout, so calls from several threads overlap.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use super::rpc::{self, Incoming, RpcError};
use super::{ToolCallResult, content, registry, seconds};
use crate::error::{one_line, usage};
use crate::output;

/// The protocol version cs-msg asks for. The reference servers (TypeScript SDK 1.32)
/// accept it and answer with it.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// Versions a server may answer with: their `initialize`, `tools/list` and `tools/call`
/// are the same as far as cs-msg uses them.
const KNOWN_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The longest message read from a server. The API takes requests of 32 MB at most, so
/// a longer tool result could never be sent on; a server that writes an endless line
/// must not exhaust memory.
const MAX_MESSAGE: usize = 32 << 20;

/// After stdin is closed, how long a server has to exit on its own, then after SIGTERM
/// before SIGKILL.
const EXIT_GRACE: Duration = Duration::from_millis(500);
const TERM_GRACE: Duration = Duration::from_secs(1);

/// `tools/list` pages followed at most (a server that never stops paging is an error).
const MAX_PAGES: usize = 1000;

/// A running MCP server after a successful handshake. `&McpServer` is shared by the
/// threads of a batch; dropping it stops the server's whole process group.
pub struct McpServer {
    shared: Arc<Shared>,
    command: String,
    child: Child,
    has_tools: bool,
    /// Bounds the start-up requests (`initialize`, `tools/list`).
    connect_timeout: Duration,
}

/// What the reader thread and the callers share.
struct Shared {
    name: String,
    pgid: i32,
    /// The writer thread's queue; `None` once stdin is closed.
    out: Mutex<Option<Sender<Vec<u8>>>>,
    state: Mutex<State>,
}

struct State {
    next_id: u64,
    /// Callers waiting for a response, by request id.
    pending: HashMap<u64, Sender<Result<Value, RpcError>>>,
    /// Why no more responses will come (the server exited, or sent too much), once known.
    ended: Option<String>,
}

enum Failed {
    TimedOut(u64),
    Ended(String),
}

impl McpServer {
    /// Starts COMMAND (split like a shell would, run without one) in a process group of
    /// its own and performs the MCP handshake. A command that cannot be split or
    /// started, or a server that does not answer `initialize` within `connect_timeout`,
    /// is a usage error (exit 2) naming the command. With `verbose`, each line the
    /// server writes to stderr is copied to stderr as `cs-msg: [NAME] line`.
    pub fn start(command: &str, verbose: bool, connect_timeout: Duration) -> Result<McpServer> {
        let culprit = format!("MCP server '{}'", one_line(command));
        let words = shell_words::split(command)
            .map_err(|e| usage(format!("{culprit}: cannot split the command: {e}")))?;
        let Some((program, args)) = words.split_first() else {
            return Err(usage("--mcp: the command is empty"));
        };
        let name = super::server_name(&words);
        let mut child = command_for(program, args, verbose)
            .spawn()
            .map_err(|e| usage(format!("{culprit} could not start: {program}: {e}")))?;
        let pgid = child.id() as i32;
        registry::add(pgid);
        let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => (stdin, stdout),
            _ => {
                stop(&mut child, pgid);
                return Err(usage(format!("{culprit} could not start: no pipes")));
            }
        };
        let (out, queue) = mpsc::channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            name,
            pgid,
            out: Mutex::new(Some(out)),
            state: Mutex::new(State {
                next_id: 1,
                pending: HashMap::new(),
                ended: None,
            }),
        });
        // From here on, dropping `server` stops the process group.
        let mut server = McpServer {
            shared: Arc::clone(&shared),
            command: command.to_owned(),
            child,
            has_tools: false,
            connect_timeout,
        };
        let spawned = thread::Builder::new()
            .name("mcp-writer".into())
            .spawn(move || write_loop(stdin, queue))
            .and_then(|_| {
                let reader = Arc::clone(&shared);
                thread::Builder::new()
                    .name("mcp-reader".into())
                    .spawn(move || read_loop(&reader, stdout))
            });
        if let Some(stderr) = server.child.stderr.take() {
            let name = shared.name.clone();
            let copier = thread::Builder::new()
                .name("mcp-stderr".into())
                .spawn(move || copy_stderr(&name, stderr, output::info));
            drop(copier);
        }
        if let Err(e) = spawned {
            return Err(usage(format!("{culprit}: cannot start a thread: {e}")));
        }
        server.handshake(verbose)?;
        Ok(server)
    }

    /// The short name messages use: see `server_name` in `src/mcp/mod.rs`.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The command as given to `--mcp`.
    #[cfg(test)]
    pub fn command(&self) -> &str {
        &self.command
    }

    #[cfg(test)]
    pub(super) fn pgid(&self) -> i32 {
        self.shared.pgid
    }

    /// Calls sent and not answered yet.
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        lock(&self.shared.state).pending.len()
    }

    fn culprit(&self) -> String {
        format!("MCP server '{}'", one_line(&self.command))
    }

    fn handshake(&mut self, verbose: bool) -> Result<()> {
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "cs-msg", "version": env!("CARGO_PKG_VERSION")},
        });
        let result = self.start_up_request("initialize", params)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !KNOWN_VERSIONS.contains(&version) {
            return Err(usage(format!(
                "{} answered initialize with protocol version '{}'; cs-msg speaks {}",
                self.culprit(),
                one_line(version),
                KNOWN_VERSIONS.join(", ")
            )));
        }
        self.has_tools = result
            .get("capabilities")
            .is_some_and(|c| c.get("tools").is_some());
        self.send(rpc::notification("notifications/initialized", None));
        if verbose {
            let info = result.get("serverInfo");
            let field = |name: &str| {
                info.and_then(|i| i.get(name))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            };
            output::info(&one_line(&format!(
                "[{}] connected: {} {}, protocol {version}",
                self.name(),
                field("name"),
                field("version")
            )));
        }
        Ok(())
    }

    /// Every tool the server offers (all `tools/list` pages), as API tool definitions
    /// (`name`, `description` when given, `input_schema`). Failures are usage errors
    /// naming the server: they happen before anything is sent to the API.
    pub fn tools(&self) -> Result<Vec<Value>> {
        let mut tools = Vec::new();
        if !self.has_tools {
            return Ok(tools);
        }
        let mut cursor: Option<String> = None;
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            let result = self.start_up_request("tools/list", params)?;
            let Some(page) = result.get("tools").and_then(Value::as_array) else {
                return Err(usage(format!(
                    "{} sent a tools/list result without a tools list",
                    self.culprit()
                )));
            };
            for tool in page {
                let definition = content::definition(tool).ok_or_else(|| {
                    usage(format!("{} listed a tool without a name", self.culprit()))
                })?;
                tools.push(definition);
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !seen.insert(next.to_owned()) => {
                    return Err(usage(format!(
                        "{} repeated the tools/list cursor '{}'",
                        self.culprit(),
                        one_line(next)
                    )));
                }
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(tools),
            }
        }
        Err(usage(format!(
            "{} sent more than {MAX_PAGES} pages of tools",
            self.culprit()
        )))
    }

    /// Calls tool NAME with ARGUMENTS. Never fails and never waits past `timeout`: a
    /// JSON-RPC error, a timeout (the request is then cancelled) or a server that has
    /// exited all become error results the model can read.
    pub fn call(&self, name: &str, arguments: &Value, timeout: Duration) -> ToolCallResult {
        let params = json!({"name": name, "arguments": arguments});
        match self.request("tools/call", params, timeout) {
            Ok(Ok(result)) => content::tool_result(&result),
            Ok(Err(e)) => ToolCallResult::error(format!("MCP error {}: {}", e.code, e.message)),
            Err(Failed::TimedOut(id)) => {
                let reason = format!("timed out after {} s", seconds(timeout));
                self.send(rpc::notification(
                    "notifications/cancelled",
                    Some(json!({"requestId": id, "reason": reason})),
                ));
                ToolCallResult::error(format!(
                    "tool '{name}' of MCP server {} {reason}",
                    self.name()
                ))
            }
            Err(Failed::Ended(why)) => ToolCallResult::error(why),
        }
    }

    /// A request during start-up: any failure is exit 2 naming the command.
    fn start_up_request(&self, method: &str, params: Value) -> Result<Value> {
        match self.request(method, params, self.connect_timeout) {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => Err(usage(format!(
                "{} refused {method}: error {}: {}",
                self.culprit(),
                e.code,
                e.message
            ))),
            Err(Failed::TimedOut(_)) => Err(usage(format!(
                "{} did not answer {method} within {} s",
                self.culprit(),
                seconds(self.connect_timeout)
            ))),
            Err(Failed::Ended(_)) => Err(usage(format!(
                "{} exited before answering {method}",
                self.culprit()
            ))),
        }
    }

    fn request(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Result<Value, RpcError>, Failed> {
        let (tx, rx) = mpsc::channel();
        let id = {
            let mut state = lock(&self.shared.state);
            if let Some(why) = &state.ended {
                return Err(Failed::Ended(why.clone()));
            }
            let id = state.next_id;
            state.next_id += 1;
            state.pending.insert(id, tx);
            id
        };
        self.send(rpc::request(id, method, params));
        self.wait(id, &rx, timeout)
    }

    fn wait(
        &self,
        id: u64,
        rx: &Receiver<Result<Value, RpcError>>,
        timeout: Duration,
    ) -> Result<Result<Value, RpcError>, Failed> {
        match rx.recv_timeout(timeout) {
            Ok(outcome) => Ok(outcome),
            Err(RecvTimeoutError::Timeout) => {
                lock(&self.shared.state).pending.remove(&id);
                // The response may have come between the timeout and the removal.
                rx.try_recv().map_err(|_| Failed::TimedOut(id))
            }
            Err(RecvTimeoutError::Disconnected) => Err(Failed::Ended(self.shared.ended_reason())),
        }
    }

    fn send(&self, line: Vec<u8>) {
        self.shared.send(line);
    }
}

impl Shared {
    /// Queues a line for the writer thread. A closed queue means the server is gone;
    /// the reader then reports that to every caller.
    fn send(&self, line: Vec<u8>) {
        if let Some(out) = lock(&self.out).as_ref() {
            let _ = out.send(line);
        }
    }

    fn ended_reason(&self) -> String {
        match &lock(&self.state).ended {
            Some(why) => why.clone(),
            None => format!("MCP server {} exited", self.name),
        }
    }

    /// No more responses will come: every waiting caller, and every later one, gets WHY.
    fn end(&self, why: String) {
        let mut state = lock(&self.state);
        state.ended.get_or_insert(why);
        // Dropping the senders wakes the callers.
        state.pending.clear();
    }

    fn dispatch(&self, message: Value) {
        match rpc::classify(message) {
            Incoming::Response { id, outcome } => {
                if let Some(caller) = lock(&self.state).pending.remove(&id) {
                    let _ = caller.send(outcome);
                }
            }
            Incoming::Request { id, method } => self.send(rpc::answer(&id, &method)),
            Incoming::Notification | Incoming::Other => {}
        }
    }
}

impl Drop for McpServer {
    /// Closes stdin (servers exit on end of input), gives the server a moment, then
    /// stops its whole process group: `npx` runs the server as a grandchild.
    fn drop(&mut self) {
        lock(&self.shared.out).take();
        let pid = self.child.id() as i32;
        let deadline = Instant::now() + EXIT_GRACE;
        while !exited(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        stop(&mut self.child, self.shared.pgid);
    }
}

/// The server's process: pipes for stdin and stdout (stderr only for `-v`), a process
/// group of its own so that it and its children can be stopped together.
fn command_for(program: &str, args: &[String], verbose: bool) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if verbose {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .process_group(0)
        // The server has no business with the API key, and some servers hand their
        // environment to the model (server-everything's get-env does).
        .env_remove("CS_MSG_API_KEY");
    command
}

/// SIGTERM to the group, a grace period for the leader, SIGKILL to what is left, then
/// the leader is reaped. The leader stays unreaped (a zombie at worst) until the group
/// is dead, so its pid, which is the group's id, cannot be reused by then.
fn stop(child: &mut Child, pgid: i32) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    while !exited(pgid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    signal_group(pgid, libc::SIGKILL);
    registry::remove(pgid);
    let _ = child.wait();
}

pub(super) fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory effects; a negative pid names the process group.
    // ESRCH (the group is gone) is fine.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether our child PID has exited, without reaping it.
pub(super) fn exited(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data; waitid fills it. WNOWAIT leaves the child waitable.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let status = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // An error (ECHILD: already reaped) counts as exited too.
        status != 0 || info.si_pid() != 0
    }
}

fn write_loop(mut stdin: impl Write, queue: Receiver<Vec<u8>>) {
    for line in queue {
        if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
            return;
        }
    }
    // The queue closed (the server is being stopped): dropping stdin ends its input.
}

fn read_loop(shared: &Shared, stdout: ChildStdout) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let why = loop {
        line.clear();
        match (&mut reader)
            .take(MAX_MESSAGE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => break format!("MCP server {} exited", shared.name),
            Ok(_) if line.len() > MAX_MESSAGE => {
                // It would block writing the rest: stop it now.
                signal_group(shared.pgid, libc::SIGKILL);
                break format!(
                    "MCP server {} sent a message over {} MiB and was stopped",
                    shared.name,
                    MAX_MESSAGE >> 20
                );
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("MCP server {}: reading its output: {e}", shared.name),
        }
        // A line that is not JSON (a stray log line on stdout) is skipped; an array is
        // a JSON-RPC batch, which protocol version 2025-03-26 allowed.
        match serde_json::from_slice::<Value>(&line) {
            Ok(Value::Array(batch)) => batch.into_iter().for_each(|m| shared.dispatch(m)),
            Ok(message) => shared.dispatch(message),
            Err(_) => {}
        }
    };
    shared.end(why);
}

/// Each non-blank line of the server's stderr as `[NAME] line` (at most 4 KiB of it).
fn copy_stderr(name: &str, stderr: impl Read, mut emit: impl FnMut(&str)) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(4096).read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    emit(&format!("[{name}] {}", one_line(text)));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps half-updated in a way that matters.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_do_not_inherit_the_api_key() {
        let command = command_for("node", &["server.js".to_owned()], false);
        let envs: Vec<_> = command.get_envs().collect();
        assert_eq!(envs, [(std::ffi::OsStr::new("CS_MSG_API_KEY"), None)]);
    }

    #[test]
    fn stderr_lines_are_prefixed_with_the_server_name() {
        let mut lines = Vec::new();
        let stderr: &[u8] = b"Starting server...\r\nbad \xff byte\tand tab\n\nlast";
        copy_stderr("server-everything", stderr, |l| lines.push(l.to_owned()));
        assert_eq!(
            lines,
            [
                "[server-everything] Starting server...",
                "[server-everything] bad \u{fffd} byte and tab",
                "[server-everything] last",
            ]
        );
    }
}
