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
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{RwLock, RwLockReadGuard};

    /// Tests that start tools hold this for reading; the Ctrl-C test, which kills every
    /// running tool, holds it for writing.
    static TOOLS: RwLock<()> = RwLock::new(());

    fn tools() -> RwLockReadGuard<'static, ()> {
        TOOLS.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn fast() -> Limits {
        Limits {
            timeout: Duration::from_secs(60),
            kill_grace: Duration::from_millis(200),
            drain: Duration::from_millis(200),
        }
    }

    /// An executor running a shell script through `sh` (a script executed directly
    /// could fail with "text file busy" while another test thread forks).
    fn script(dir: &Path, name: &str, body: &str) -> Executor {
        let path = dir.join(format!("{name}.sh"));
        std::fs::write(&path, body).unwrap();
        let quoted = shell_words::quote(path.to_str().unwrap()).into_owned();
        Executor::parse(&format!("{name}=sh {quoted}")).unwrap()
    }

    fn gone(pid: &str) -> bool {
        // A killed orphan may stay a zombie until its new parent reaps it: dead all the same.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    fn wait_gone(pid: &str) -> bool {
        (0..200).any(|_| {
            let g = gone(pid);
            if !g {
                std::thread::sleep(Duration::from_millis(10));
            }
            g
        })
    }

    #[test]
    fn success_gets_stdin_env_and_args() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sh");
        std::fs::write(
            &path,
            "cat; echo \"name=$CS_MSG_TOOL_NAME id=$CS_MSG_TOOL_USE_ID key=${CS_MSG_API_KEY-unset} 1=$1 2=$2\"",
        )
        .unwrap();
        let e = Executor::parse(&format!(
            "get_weather=sh '{}' \"a b\" c\\'d",
            path.display()
        ))
        .unwrap();
        assert_eq!(e.name, "get_weather");
        let run = e.run("toolu_1", &json!({"city": "Paris\nFrance"}), &fast());
        assert_eq!(
            run.text(),
            "{\"city\":\"Paris\\nFrance\"}\nname=get_weather id=toolu_1 key=unset 1=a b 2=c'd\n"
        );
        assert!(!run.is_error);
        assert_eq!(run.status, "exit 0");
        assert_eq!(run.bytes, run.text().len());
        assert_eq!(
            run.block(),
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": run.text()}]})
        );
        assert!(run.summary().starts_with("get_weather (toolu_1): exit 0, "));
        // The API key is taken out of whatever environment cs-msg runs in.
        let command = e.command("toolu_1");
        let envs: Vec<_> = command.get_envs().collect();
        assert!(envs.contains(&(OsStr::new("CS_MSG_API_KEY"), None)));
    }

    #[test]
    fn empty_output_is_a_placeholder() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let run = script(dir.path(), "t", "exit 0").run("id", &json!({}), &fast());
        assert_eq!(run.text(), "(no output)");
        assert!(!run.is_error);
        assert_eq!(run.bytes, 0);
    }

    #[test]
    fn failure_quotes_the_end_of_stderr() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let e = script(
            dir.path(),
            "get_weather",
            "echo partial; echo 'no such city' >&2; exit 3",
        );
        let run = e.run("id", &json!({}), &fast());
        assert_eq!(run.text(), "get_weather exited with status 3: no such city");
        assert!(run.is_error);
        assert_eq!(run.status, "exit 3");
        assert_eq!(run.block()["is_error"], json!(true));

        let e = script(
            dir.path(),
            "t",
            "head -c 10000 /dev/zero | tr '\\0' x >&2; echo ' the end' >&2; exit 1",
        );
        let text = e.run("id", &json!({}), &fast()).text().to_owned();
        assert!(text.starts_with("t exited with status 1: …xxx"), "{text}");
        assert!(text.ends_with("xxx the end"), "{text}");
        assert!(text.len() < STDERR_TAIL_BYTES + 40, "{}", text.len());

        let run = script(dir.path(), "t", "exit 4").run("id", &json!({}), &fast());
        assert_eq!(run.text(), "t exited with status 4");
    }

    #[test]
    fn death_by_signal() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let run = script(dir.path(), "t", "kill -9 $$").run("id", &json!({}), &fast());
        assert_eq!(run.text(), "t was killed by signal 9 (SIGKILL)");
        assert_eq!(run.status, "signal 9 (SIGKILL)");
        assert!(run.is_error);
    }

    #[test]
    fn output_must_be_utf8() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let run = script(dir.path(), "t", "printf 'ok\\377'").run("id", &json!({}), &fast());
        assert_eq!(
            run.text(),
            "t wrote output that is not valid UTF-8 (byte 2)"
        );
        assert!(run.is_error);
        assert_eq!(run.bytes, 3);
    }

    #[test]
    fn huge_output_is_cut_with_a_marker() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let e = script(dir.path(), "t", "head -c 300000 /dev/zero | tr '\\0' x");
        let run = e.run("id", &json!({}), &fast());
        let expected = format!(
            "{}\n[cs-msg: output cut at 102400 of 300000 bytes]",
            "x".repeat(MAX_OUTPUT_BYTES)
        );
        assert!(
            run.text() == expected,
            "{}",
            &run.text()[MAX_OUTPUT_BYTES..]
        );
        assert!(!run.is_error);
        assert_eq!(run.bytes, 300_000);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let mut bytes = "a".repeat(MAX_OUTPUT_BYTES - 1).into_bytes();
        bytes.push(0xC3); // the first byte of "é"; the second was past the cut
        let out = Captured {
            bytes,
            total: MAX_OUTPUT_BYTES + 1,
        };
        let text = stdout_text(&out).unwrap();
        assert!(text.ends_with("aa\n[cs-msg: output cut at 102399 of 102401 bytes]"));
        let whole = Captured {
            bytes: b"a\xC3".to_vec(),
            total: 2,
        };
        assert_eq!(stdout_text(&whole), Err(1));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // Both ignore SIGTERM, so only the SIGKILL after the grace ends them.
        let e = script(
            dir.path(),
            "slow",
            &format!(
                "trap '' TERM; sleep 30 & echo $! > '{}'; echo working >&2; wait",
                pidfile.display()
            ),
        );
        let limits = Limits {
            timeout: Duration::from_millis(300),
            ..fast()
        };
        let run = e.run("id", &json!({}), &limits);
        assert_eq!(
            run.text(),
            "slow timed out after 0.3 s; its processes were killed: working"
        );
        assert_eq!(run.status, "timed out after 0.3 s");
        assert!(run.is_error);
        assert!(run.duration >= Duration::from_millis(300));
        let grandchild = std::fs::read_to_string(&pidfile).unwrap();
        assert!(
            wait_gone(grandchild.trim()),
            "sleep {grandchild} still runs"
        );
    }

    #[test]
    fn what_a_tool_leaves_behind_is_killed_and_not_waited_for() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The background sleep holds stdout open: without the kill, reading would wait 30 s.
        let e = script(
            dir.path(),
            "t",
            &format!("sleep 30 & echo $! > '{}'; echo done", pidfile.display()),
        );
        let run = e.run("id", &json!({}), &fast());
        assert_eq!(run.text(), "done\n");
        assert!(!run.is_error);
        let grandchild = std::fs::read_to_string(&pidfile).unwrap();
        assert!(
            wait_gone(grandchild.trim()),
            "sleep {grandchild} still runs"
        );

        // One that left the group (setsid) is not killed, and its open pipe is not
        // waited for past the drain time.
        let e = script(
            dir.path(),
            "t",
            &format!(
                "setsid sleep 30 & echo $! > '{}'; echo done",
                pidfile.display()
            ),
        );
        let run = e.run("id", &json!({}), &fast());
        assert_eq!(run.text(), "done\n");
        let escaped = std::fs::read_to_string(&pidfile).unwrap();
        // SAFETY: kill(2) with a pid we started.
        unsafe {
            libc::kill(escaped.trim().parse().unwrap(), libc::SIGKILL);
        }
    }

    #[test]
    fn shell_metacharacters_in_the_input_stay_inert() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let got = dir.path().join("got");
        let e = script(
            dir.path(),
            "t",
            &format!("cat > '{}'; echo ok", got.display()),
        );
        let input = json!({
            "q": format!("$(touch {d}/a); touch {d}/b; `touch {d}/c` | touch {d}/d && touch {d}/e '\"\\"),
            "$(touch x)": "${IFS}*"
        });
        let run = e.run("id", &input, &fast());
        assert_eq!(run.text(), "ok\n");
        let mut expected = serde_json::to_vec(&input).unwrap();
        expected.push(b'\n');
        assert_eq!(std::fs::read(&got).unwrap(), expected);
        for f in ["a", "b", "c", "d", "e"] {
            assert!(!dir.path().join(f).exists(), "{f} was created");
        }
        assert!(!Path::new("x").exists());
    }

    #[test]
    fn a_turn_runs_in_parallel_and_answers_in_block_order() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let executors = vec![
            script(dir.path(), "slow", "sleep 0.3; echo slow"),
            script(dir.path(), "fast", "echo fast"),
        ];
        let input = json!({});
        let calls = [
            ToolCall {
                id: "toolu_1",
                name: "slow",
                input: &input,
            },
            ToolCall {
                id: "toolu_2",
                name: "fast",
                input: &input,
            },
            ToolCall {
                id: "toolu_3",
                name: "none",
                input: &input,
            },
            ToolCall {
                id: "toolu_4",
                name: "fast",
                input: &input,
            },
        ];
        let unbound: Vec<_> = calls
            .iter()
            .filter(|c| find(&executors, c.name).is_none())
            .collect();
        assert_eq!(unbound, vec![&calls[2]]);
        let runs = run_turn(&calls, &executors, &fast());
        let got: Vec<(&str, &str, bool)> = runs
            .iter()
            .map(|r| (r.tool_use_id.as_str(), r.text(), r.is_error))
            .collect();
        assert_eq!(
            got,
            vec![
                ("toolu_1", "slow\n", false),
                ("toolu_2", "fast\n", false),
                ("toolu_3", "no --exec is bound to tool none", true),
                ("toolu_4", "fast\n", false),
            ]
        );
    }

    #[test]
    fn the_calls_of_a_turn_run_at_the_same_time() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        // Each waits for the other to have started: run one after the other, the
        // first would time out.
        let meet = |me: &str, other: &str| {
            format!(
                "touch '{d}/{me}'; while [ ! -e '{d}/{other}' ]; do sleep 0.01; done; echo {me}",
                d = dir.path().display()
            )
        };
        let executors = vec![
            script(dir.path(), "a", &meet("a", "b")),
            script(dir.path(), "b", &meet("b", "a")),
        ];
        let input = json!({});
        let calls = [
            ToolCall {
                id: "toolu_1",
                name: "b",
                input: &input,
            },
            ToolCall {
                id: "toolu_2",
                name: "a",
                input: &input,
            },
        ];
        let limits = Limits {
            timeout: Duration::from_secs(20),
            ..fast()
        };
        let texts: Vec<String> = run_turn(&calls, &executors, &limits)
            .iter()
            .map(|r| r.text().to_owned())
            .collect();
        assert_eq!(texts, vec!["b\n", "a\n"]);
    }

    #[test]
    fn a_program_that_vanished_is_an_error_result() {
        let _t = tools();
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("prog");
        std::fs::write(&prog, "").unwrap();
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let e = Executor::parse(&format!("t={}", prog.display())).unwrap();
        std::fs::remove_file(&prog).unwrap();
        let run = e.run("id", &json!({}), &fast());
        assert_eq!(run.text(), "could not start t: no such file");
        assert_eq!(run.status, "not started");
        assert!(run.is_error);
    }

    #[test]
    fn ctrl_c_kills_running_tools_and_starts_no_more() {
        let _all = TOOLS.write().unwrap_or_else(PoisonError::into_inner);
        /// Lets tools start again however this test ends.
        struct Restart;
        impl Drop for Restart {
            fn drop(&mut self) {
                STOPPED.store(false, Ordering::SeqCst);
            }
        }
        let _restart = Restart;
        let dir = tempfile::tempdir().unwrap();
        let e = script(dir.path(), "t", "sleep 30");
        let limits = fast();
        std::thread::scope(|s| {
            let call = s.spawn(|| e.run("id", &json!({}), &limits));
            while running().is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
            kill_running();
            let run = call.join().unwrap();
            assert_eq!(run.text(), "t was killed by signal 9 (SIGKILL)");
        });
        let run = e.run("id", &json!({}), &limits);
        assert_eq!(run.text(), "could not start t: cs-msg was interrupted");
        assert!(running().is_empty());
    }

    #[test]
    fn parse_errors_name_the_flag() {
        let cases = [
            ("get_weather", "--exec get_weather: expected NAME=COMMAND"),
            (
                "=python3 w.py",
                "--exec =python3 w.py: empty NAME; expected NAME=COMMAND",
            ),
            ("t=", "--exec t=: empty COMMAND; expected NAME=COMMAND"),
            (
                "t=  # just a comment",
                "--exec t=  # just a comment: empty COMMAND; expected NAME=COMMAND",
            ),
            (
                "t=python3 'w.py",
                "--exec t=python3 'w.py: COMMAND has unbalanced quotes (missing closing quote)",
            ),
            (
                "t=no-such-program-cs-msg x",
                "--exec t=no-such-program-cs-msg x: command not found: no-such-program-cs-msg",
            ),
            (
                "t=./no/such.py",
                "--exec t=./no/such.py: ./no/such.py: no such file",
            ),
            (
                "t=/tmp/",
                "--exec t=/tmp/: /tmp/: is a directory, not a program",
            ),
        ];
        for (arg, expected) in cases {
            assert_eq!(Executor::parse(arg).unwrap_err().to_string(), expected);
        }
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.py");
        std::fs::write(&plain, "").unwrap();
        let arg = format!("t={} x", plain.display());
        assert_eq!(
            Executor::parse(&arg).unwrap_err().to_string(),
            format!("--exec {arg}: {}: not executable", plain.display())
        );
    }

    #[test]
    fn programs_are_found_in_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("mytool");
        std::fs::write(&prog, "").unwrap();
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        let e = parse_with_path("t=mytool --flag 'two words'", Some(&path)).unwrap();
        assert_eq!(e.program, prog);
        assert_eq!(e.args, vec!["--flag", "two words"]);
        assert_eq!(e.command, "mytool --flag 'two words'");
        let e = parse_with_path("t=mytool", None).unwrap_err();
        assert_eq!(e.to_string(), "--exec t=mytool: command not found: mytool");
        // An empty PATH entry is not the current directory.
        let e = parse_with_path("t=sh", Some(OsStr::new(":"))).unwrap_err();
        assert_eq!(e.to_string(), "--exec t=sh: command not found: sh");
    }

    #[test]
    fn executors_must_be_bound_to_defined_tools() {
        let tools = [
            json!({"name": "get_weather", "input_schema": {"type": "object"}}),
            json!({"name": "get_time", "type": "custom", "input_schema": {"type": "object"}}),
            json!({"name": "web_search", "type": "web_search_20250305"}),
        ];
        let exec = |arg: &str| Executor::parse(arg).unwrap();
        check_bound(&[exec("get_weather=sh"), exec("get_time=sh")], &tools).unwrap();
        let e = check_bound(&[exec("a=sh"), exec("get_time=sh"), exec("b=sh")], &tools);
        assert_eq!(
            e.unwrap_err().to_string(),
            "--exec a, b: not defined in --tools (it defines get_weather, get_time, web_search)"
        );
        let e = check_bound(&[exec("a=sh")], &[]);
        assert_eq!(
            e.unwrap_err().to_string(),
            "--exec a: not defined in --tools (no tool is defined)"
        );
        let e = check_bound(&[exec("get_time=sh"), exec("get_time=cat")], &tools);
        assert_eq!(e.unwrap_err().to_string(), "--exec get_time: bound twice");
        let e = check_bound(&[exec("web_search=sh")], &tools);
        assert_eq!(
            e.unwrap_err().to_string(),
            "--exec web_search: web_search is a server tool (web_search_20250305); the API runs it"
        );
    }

    #[test]
    fn durations_and_signals_read_well() {
        assert_eq!(seconds(Duration::from_secs(120)), "120");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
        assert_eq!(signal_name(15), "15 (SIGTERM)");
        assert_eq!(signal_name(64), "64");
    }
}
