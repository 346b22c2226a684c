//! Helpers shared by every integration test.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use mockito::{Mock, Server, ServerGuard};

/// The test key. Every run through [`run`] checks it appears on neither stream.
pub const KEY: &str = "sk-cs2-test-SECRET-0123456789abcdef";

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}"))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(FIXTURES).join(name)
}

/// The one environment scrub, for every process a test starts: the environment is
/// emptied, then only what the tests decide is set. None of the developer's keys,
/// proxies, settings, `COLUMNS` or `CI` leak in, and retries wait milliseconds.
/// `PATH` stays (the README examples run pipelines), and so do the variables that
/// coverage tools and Windows need to run a binary at all.
pub fn scrubbed(program: impl AsRef<OsStr>) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    c.env_clear();
    for keep in ["PATH", "SYSTEMROOT", "LLVM_PROFILE_FILE"] {
        if let Some(value) = std::env::var_os(keep) {
            c.env(keep, value);
        }
    }
    c.env("NO_PROXY", "*")
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .env("HOME", std::env::temp_dir())
        // Retries in tests wait milliseconds, not seconds.
        .env("CS_MSG_BACKOFF_MS", "1");
    c
}

/// The cs-msg binary under [`scrubbed`]: the one builder every test starts it from.
pub fn bin() -> std::process::Command {
    scrubbed(assert_cmd::cargo::cargo_bin!("cs-msg"))
}

/// [`bin`] for assert_cmd, with every run bounded.
pub fn cmd() -> Command {
    let mut c = Command::from_std(bin());
    c.timeout(Duration::from_secs(30));
    c
}

/// [`cmd`] pointed at a mock server, with the test key.
pub fn api(server: &ServerGuard) -> Command {
    let mut c = cmd();
    c.arg("--base-url")
        .arg(server.url())
        .env("CS_MSG_API_KEY", KEY);
    c
}

/// [`bin`] as a live child process with the test key, talking to `base_url`, with
/// piped stdio (for tests that read its output while it runs, hold stdin open, or
/// signal it). Check what it printed with [`assert_no_key`].
pub fn spawn(base_url: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    use std::process::Stdio;
    bin()
        .env("CS_MSG_API_KEY", KEY)
        .envs(env.iter().copied())
        .arg("--base-url")
        .arg(base_url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cs-msg")
}

/// `stream` up to (not including) the first `marker`: a stream cut short there.
pub fn cut_before(stream: &str, marker: &str) -> String {
    let at = stream
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in stream"));
    stream[..at].to_owned()
}

/// A key file in `dir` holding `contents`, with Unix permissions `mode`, and a
/// command that reads the key from it (and talks to `server`).
pub fn key_file_cmd(
    dir: &std::path::Path,
    contents: &str,
    mode: u32,
    server: &ServerGuard,
) -> (PathBuf, Command) {
    let path = dir.join("key");
    std::fs::write(&path, contents).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut c = cmd();
    c.arg("--base-url")
        .arg(server.url())
        .arg("--api-key-file")
        .arg(&path);
    (path, c)
}

/// Runs the command and checks the key leaked nowhere.
pub fn run(mut c: Command) -> Assert {
    let assert = c.assert();
    let out = assert.get_output();
    assert_no_key("stdout", &out.stdout);
    assert_no_key("stderr", &out.stderr);
    assert
}

/// The key-leak scan: fails the test if the API key is in `bytes` (a stream `name`).
pub fn assert_no_key(name: &str, bytes: &[u8]) {
    assert!(
        !String::from_utf8_lossy(bytes).contains(KEY),
        "the API key appeared on {name}"
    );
}

pub fn stdout_of(assert: &Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).expect("utf-8 stdout")
}

pub fn stderr_of(assert: &Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).expect("utf-8 stderr")
}

pub fn mock_server() -> ServerGuard {
    Server::new()
}

/// A `POST /v1/messages` answered with an event stream.
pub fn sse_mock(server: &mut ServerGuard, body: impl Into<String>) -> Mock {
    server
        .mock("POST", "/v1/messages")
        .with_status(200)
        .with_header("content-type", "text/event-stream")
        .with_header("request-id", "req_stream_1")
        .with_body(body.into())
}

/// A `POST /v1/messages` answered with a whole JSON message.
pub fn json_mock(server: &mut ServerGuard, body: impl Into<String>) -> Mock {
    server
        .mock("POST", "/v1/messages")
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_header("request-id", "req_json_1")
        .with_body(body.into())
}

/// An error response in the API's envelope.
pub fn error_mock(server: &mut ServerGuard, status: usize, kind: &str, message: &str) -> Mock {
    server
        .mock("POST", "/v1/messages")
        .with_status(status)
        .with_header("content-type", "application/json")
        .with_header("request-id", "req_err_1")
        .with_body(format!(
            r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}},"request_id":"req_err_1"}}"#
        ))
}

/// One SSE event.
pub fn event(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A minimal complete stream whose answer is `text`, sent as one delta per part.
pub fn text_stream(parts: &[&str]) -> String {
    let mut s = event(
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}"#,
    );
    s += &event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    for p in parts {
        let delta = serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}});
        s += &event("content_block_delta", &delta.to_string());
    }
    s += &event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    );
    s += &stream_end("end_turn");
    s
}

/// `message_delta` with a stop reason, then `message_stop`.
pub fn stream_end(stop_reason: &str) -> String {
    event(
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{{"output_tokens":7}}}}"#
        ),
    ) + &event("message_stop", r#"{"type":"message_stop"}"#)
}

/// The pid a process under test wrote to `path`, once it is there (at most `within`).
pub fn wait_for_pid(path: &std::path::Path, within: std::time::Duration) -> String {
    let started = std::time::Instant::now();
    loop {
        let pid = std::fs::read_to_string(path).unwrap_or_default();
        if !pid.trim().is_empty() {
            return pid.trim().to_owned();
        }
        assert!(
            started.elapsed() < within,
            "{} was never written",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether process `pid` is gone within 5 s. A dead process reparented away from cs-msg
/// may linger as a zombie: that counts as gone.
pub fn process_gone(pid: &str) -> bool {
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    };
    let started = std::time::Instant::now();
    while alive() && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    !alive()
}
