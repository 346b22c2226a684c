//! `--exec NAME=COMMAND`: tools that cs-msg runs itself.
//!
//! COMMAND is split into words by shell quoting rules and run directly, never by a
//! shell, so nothing the model writes can become an argument or a command: the model's
//! `input` reaches the tool only as one line of JSON on its stdin. Each call runs in its
//! own process group, bounded in time (the whole group is killed) and in output.

use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::error::usage;
use crate::files::io_reason;
use crate::tool_result::{ToolCall, result_block, text_content};

/// The most of a tool's stdout that becomes its result; the rest is read and dropped,
/// and the result says where it was cut.
pub const MAX_OUTPUT_BYTES: usize = 100 * 1024;
/// How much of the end of a tool's stderr an error result quotes.
pub const STDERR_TAIL_BYTES: usize = 2 * 1024;
/// `--tool-timeout` when not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// After a timeout the group gets SIGTERM, so a tool can clean up, and this long to
/// exit before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long the output is still read once the command has exited and its group was
/// killed. Only a process that left the group (setsid) can still hold the pipes open;
/// it is not waited for.
pub const PIPE_DRAIN: Duration = Duration::from_secs(1);
/// The environment variable that holds the API key: a tool never needs it.
const KEY_VARIABLE: &str = "CS_MSG_API_KEY";

/// The bounds of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub kill_grace: Duration,
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            kill_grace: KILL_GRACE,
            drain: PIPE_DRAIN,
        }
    }
}

impl Limits {
    /// `--tool-timeout SECS`.
    pub fn with_timeout(timeout: Duration) -> Limits {
        Limits {
            timeout,
            ..Limits::default()
        }
    }
}

/// One `--exec NAME=COMMAND`: the tool NAME and the program that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executor {
    pub name: String,
    /// COMMAND as given, for messages.
    pub command: String,
    program: PathBuf,
    args: Vec<String>,
}

impl Executor {
    /// Parses `NAME=COMMAND` and finds the program (a word with a `/` as a path, else
    /// in `PATH`).
    pub fn parse(arg: &str) -> Result<Executor> {
        parse_with_path(arg, std::env::var_os("PATH").as_deref())
    }

    /// Runs one call: `input` as one line of JSON on stdin, then stdin closed.
    pub fn run(&self, tool_use_id: &str, input: &Value, limits: &Limits) -> ToolRun {
        let started = Instant::now();
        let ended = self.execute(tool_use_id, input, limits);
        self.outcome(tool_use_id, ended, limits, started.elapsed())
    }

    fn command(&self, tool_use_id: &str) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env("CS_MSG_TOOL_NAME", &self.name)
            .env("CS_MSG_TOOL_USE_ID", tool_use_id)
            .env_remove(KEY_VARIABLE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a timeout or Ctrl-C kills everything the tool started,
            // and the terminal's Ctrl-C reaches cs-msg, not the tool.
            .process_group(0);
        command
    }

    fn execute(&self, tool_use_id: &str, input: &Value, limits: &Limits) -> Ended {
        let mut command = self.command(tool_use_id);
        // Spawned and registered under one lock, so kill_running never misses a child.
        let mut child = {
            let mut running = running();
            if STOPPED.load(Ordering::SeqCst) {
                return Ended::NotStarted("cs-msg was interrupted".into());
            }
            match command.spawn() {
                Ok(child) => {
                    running.push(child.id() as libc::pid_t);
                    child
                }
                Err(e) => return Ended::NotStarted(io_reason(&e)),
            }
        };
        let pgid = child.id() as libc::pid_t;
        if let Some(mut stdin) = child.stdin.take() {
            let mut line = serde_json::to_vec(input).unwrap_or_default();
            line.push(b'\n');
            // A thread of its own: a tool that never reads stdin must not block us. A
            // tool that exits without reading it makes the write fail; that is its choice.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&line);
            });
        }
        let stdout = child
            .stdout
            .take()
            .map(|p| Reader::spawn(p, Keep::Head(MAX_OUTPUT_BYTES)));
        let stderr = child
            .stderr
            .take()
            .map(|p| Reader::spawn(p, Keep::Tail(STDERR_TAIL_BYTES)));

        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            wait_exited(pgid);
            let _ = tx.send(());
        });
        let timed_out = match exited.recv_timeout(limits.timeout) {
            Err(RecvTimeoutError::Timeout) => {
                signal_group(pgid, libc::SIGTERM);
                if exited.recv_timeout(limits.kill_grace).is_err() {
                    signal_group(pgid, libc::SIGKILL);
                    let _ = exited.recv();
                }
                true
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => false,
        };
        // The command has exited but is not reaped yet, so its pid cannot name another
        // group: kill whatever it left running in its group, then reap it. A call is
        // over when its command exits.
        signal_group(pgid, libc::SIGKILL);
        let status = {
            running().retain(|&p| p != pgid);
            child.wait()
        };
        let deadline = Instant::now() + limits.drain;
        let stdout = stdout.map(|r| r.finish(deadline)).unwrap_or_default();
        let stderr = stderr.map(|r| r.finish(deadline)).unwrap_or_default();
        match status {
            Err(e) => Ended::NotStarted(io_reason(&e)),
            Ok(status) => Ended::Ran {
                status,
                timed_out,
                stdout,
                stderr,
            },
        }
    }

    fn outcome(&self, id: &str, ended: Ended, limits: &Limits, duration: Duration) -> ToolRun {
        let name = &self.name;
        let (text, is_error, status, bytes) = match ended {
            Ended::NotStarted(reason) => (
                format!("could not start {name}: {reason}"),
                true,
                "not started".to_owned(),
                0,
            ),
            Ended::Ran {
                status,
                timed_out,
                stdout,
                stderr,
            } => {
                let bytes = stdout.total;
                let failed =
                    |what: String, status: String| (with_tail(what, &stderr), true, status, bytes);
                if timed_out {
                    let after = format!("timed out after {} s", seconds(limits.timeout));
                    failed(format!("{name} {after}; its processes were killed"), after)
                } else if let Some(signal) = status.signal() {
                    let signal = signal_name(signal);
                    failed(
                        format!("{name} was killed by signal {signal}"),
                        format!("signal {signal}"),
                    )
                } else if status.code() != Some(0) {
                    let code = status.code().unwrap_or(-1);
                    failed(
                        format!("{name} exited with status {code}"),
                        format!("exit {code}"),
                    )
                } else {
                    match stdout_text(&stdout) {
                        Ok(text) => (text, false, "exit 0".to_owned(), bytes),
                        Err(byte) => (
                            format!("{name} wrote output that is not valid UTF-8 (byte {byte})"),
                            true,
                            "exit 0, output not UTF-8".to_owned(),
                            bytes,
                        ),
                    }
                }
            }
        };
        ToolRun {
            tool_use_id: id.to_owned(),
            name: name.clone(),
            content: text_content(&text),
            is_error,
            duration,
            status,
            bytes,
        }
    }
}

fn parse_with_path(arg: &str, path_var: Option<&OsStr>) -> Result<Executor> {
    let what = format!("--exec {arg}");
    let Some((name, command)) = arg.split_once('=') else {
        return Err(usage(format!("{what}: expected NAME=COMMAND")));
    };
    if name.is_empty() {
        return Err(usage(format!("{what}: empty NAME; expected NAME=COMMAND")));
    }
    let words = shell_words::split(command)
        .map_err(|e| usage(format!("{what}: COMMAND has unbalanced quotes ({e})")))?;
    let Some((program, args)) = words.split_first() else {
        return Err(usage(format!(
            "{what}: empty COMMAND; expected NAME=COMMAND"
        )));
    };
    let program =
        resolve(program, path_var).map_err(|reason| usage(format!("{what}: {reason}")))?;
    Ok(Executor {
        name: name.to_owned(),
        command: command.to_owned(),
        program,
        args: args.to_vec(),
    })
}

/// Finds a program as `execvp` would, less the current directory for empty `PATH`
/// entries (a tool runs only what was meant). A word with a `/` is a path.
fn resolve(program: &str, path_var: Option<&OsStr>) -> std::result::Result<PathBuf, String> {
    if program.contains('/') {
        let path = Path::new(program);
        let meta = std::fs::metadata(path).map_err(|e| format!("{program}: {}", io_reason(&e)))?;
        if meta.is_dir() {
            return Err(format!("{program}: is a directory, not a program"));
        }
        if !executable(path) {
            return Err(format!("{program}: not executable"));
        }
        return Ok(path.to_owned());
    }
    let found = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file() && executable(candidate));
    found.ok_or_else(|| format!("command not found: {program}"))
}

fn executable(path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) only reads the NUL-terminated path, which outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
}

/// Checks the executors against the tool definitions: each NAME bound once, and to a
/// tool defined in `--tools` that runs on this side (not a server tool).
pub fn check_bound(executors: &[Executor], tool_defs: &[Value]) -> Result<()> {
    for (i, e) in executors.iter().enumerate() {
        if executors[..i].iter().any(|earlier| earlier.name == e.name) {
            return Err(usage(format!("--exec {}: bound twice", e.name)));
        }
    }
    let def_of = |name: &str| {
        tool_defs
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
    };
    let unknown: Vec<&str> = executors
        .iter()
        .map(|e| e.name.as_str())
        .filter(|name| def_of(name).is_none())
        .collect();
    if !unknown.is_empty() {
        let defined: Vec<&str> = tool_defs
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .collect();
        let defines = if defined.is_empty() {
            "no tool is defined".to_owned()
        } else {
            format!("it defines {}", defined.join(", "))
        };
        return Err(usage(format!(
            "--exec {}: not defined in --tools ({defines})",
            unknown.join(", ")
        )));
    }
    for e in executors {
        if let Some(kind) = def_of(&e.name)
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            .filter(|&kind| kind != "custom")
        {
            return Err(usage(format!(
                "--exec {}: {} is a server tool ({kind}); the API runs it",
                e.name, e.name
            )));
        }
    }
    Ok(())
}

pub fn find<'a>(executors: &'a [Executor], name: &str) -> Option<&'a Executor> {
    executors.iter().find(|e| e.name == name)
}

/// Runs the calls of one turn in parallel; the results are in the order of the calls.
/// A call with no executor gets an error result (the loop stops before that, see
/// [`unbound`]).
pub fn run_turn(calls: &[ToolCall<'_>], executors: &[Executor], limits: &Limits) -> Vec<ToolRun> {
    let run_one = |call: &ToolCall<'_>| match find(executors, call.name) {
        Some(executor) => executor.run(call.id, call.input, limits),
        None => ToolRun::error(call, format!("no --exec is bound to tool {}", call.name)),
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = calls
            .iter()
            .map(|call| scope.spawn(move || run_one(call)))
            .collect();
        handles
            .into_iter()
            .zip(calls)
            .map(|(handle, call)| {
                handle
                    .join()
                    .unwrap_or_else(|_| ToolRun::error(call, "cs-msg failed running it".into()))
            })
            .collect()
    })
}

/// What one call gave: the result for the model, and for `-v` how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRun {
    pub tool_use_id: String,
    pub name: String,
    /// Content blocks for the `tool_result`: one text block, never empty.
    pub content: Vec<Value>,
    pub is_error: bool,
    pub duration: Duration,
    /// How the command ended: "exit 0", "exit 3", "signal 9 (SIGKILL)",
    /// "timed out after 120 s", "not started".
    pub status: String,
    /// Bytes the command wrote to stdout, all of them (also past the cut).
    pub bytes: usize,
}

impl ToolRun {
    fn error(call: &ToolCall<'_>, text: String) -> ToolRun {
        ToolRun {
            tool_use_id: call.id.to_owned(),
            name: call.name.to_owned(),
            content: text_content(&text),
            is_error: true,
            duration: Duration::ZERO,
            status: "not started".into(),
            bytes: 0,
        }
    }

    /// The `tool_result` block answering the call.
    pub fn block(&self) -> Value {
        result_block(&self.tool_use_id, self.content.clone(), self.is_error)
    }

    /// The result's text (the single text block).
    #[cfg(test)]
    pub fn text(&self) -> &str {
        self.content
            .first()
            .and_then(|b| b.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// For `-v`: "get_weather (toolu_01): exit 0, 0.21 s, 345 bytes".
    pub fn summary(&self) -> String {
        format!(
            "{} ({}): {}, {:.2} s, {} bytes{}",
            self.name,
            self.tool_use_id,
            self.status,
            self.duration.as_secs_f64(),
            self.bytes,
            if self.is_error { ", error result" } else { "" }
        )
    }
}

mod process;
pub use process::kill_running;
use process::*;

#[cfg(test)]
mod tests;
