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
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
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
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
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
