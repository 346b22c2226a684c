//! Signals end cs-msg by the signal itself, after cleanup (so a calling shell loop
//! stops), and every input is read through a limit while it is read.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A server whose answer never comes (within the test).
fn silent_server() -> mockito::ServerGuard {
    let mut server = mock_server();
    server
        .mock("POST", "/v1/messages")
        .with_chunked_body(|_| {
            std::thread::sleep(Duration::from_secs(10));
            Ok(())
        })
        .create();
    server
}

fn bin() -> String {
    assert_cmd::cargo::cargo_bin!("cs-msg")
        .display()
        .to_string()
}

#[test]
fn a_shell_loop_stops_at_the_first_ctrl_c() {
    let server = silent_server();
    // Ctrl-C at a terminal signals the whole foreground group: the shell and cs-msg.
    let script = format!(
        "for i in 1 2 3; do '{}' --base-url '{}' --no-stdin q; echo \"after $i\"; done; echo loop-done",
        bin(),
        server.url()
    );
    let mut shell = Command::new("bash")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CS_MSG_API_KEY", KEY)
        .env("NO_PROXY", "*")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700)); // cs-msg is waiting for the answer
    let group = format!("-{}", shell.id());
    assert!(
        Command::new("kill")
            .args(["-INT", "--", &group])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = shell.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut out = String::new();
    shell
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "", "the loop went on after Ctrl-C");
    assert!(!status.success());
}

#[test]
fn sigterm_and_sighup_end_cs_msg_by_the_signal_with_one_line() {
    let server = silent_server();
    for (signal, number, line) in [
        ("-TERM", 15, "cs-msg: terminated (SIGTERM)\n"),
        ("-HUP", 1, "cs-msg: hung up (SIGHUP)\n"),
    ] {
        let mut child = spawn(&server.url(), &["--no-stdin", "q"], &[]);
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(child.wait().unwrap().signal(), Some(number));
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(err, line);
    }
}

/// cs-msg under an address-space limit (400 MB; a batch's threads reserve more address
/// space, 1.5 GB): reading a runaway input whole would abort; reading it through the
/// limit is one line and exit 2.
fn bounded(args: &str, stdin_redirect: &str) -> (i32, String, Duration) {
    let server = mock_server();
    let limit_kb = if args.starts_with("--batch") {
        1_500_000
    } else {
        400_000
    };
    let script = format!(
        "ulimit -v {limit_kb}; exec '{}' --base-url '{}' {args} {stdin_redirect}",
        bin(),
        server.url()
    );
    let started = Instant::now();
    let out = Command::new("bash")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CS_MSG_API_KEY", KEY)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn endless_inputs_are_refused_while_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo = fifo.display().to_string();
    let mut feeder = Command::new("bash")
        .args(["-c", &format!("yes > '{fifo}'")])
        .spawn()
        .unwrap();
    for (args, redirect, line) in [
        (
            "-f /dev/zero q".to_owned(),
            "",
            "cs-msg: file /dev/zero: larger than 32.0 MiB (the most one input may hold)\n",
        ),
        (
            "hi".to_owned(),
            "</dev/zero",
            "cs-msg: stdin: larger than 32.0 MiB (the most one input may hold)\n",
        ),
        (
            format!("-f {fifo} q"),
            "",
            &*format!("cs-msg: file {fifo}: larger than 32.0 MiB (the most one input may hold)\n"),
        ),
        (
            "--messages /dev/zero q".to_owned(),
            "",
            "cs-msg: --messages /dev/zero: larger than 32.0 MiB (the most one input may hold)\n",
        ),
        (
            "--system-file /dev/zero q".to_owned(),
            "",
            "cs-msg: --system-file /dev/zero: larger than 32.0 MiB (the most one input may hold)\n",
        ),
        (
            "--api-key-file /dev/zero q".to_owned(),
            "",
            "cs-msg: --api-key-file /dev/zero: too large to be a key file\n",
        ),
    ] {
        let (code, err, took) = bounded(&args, redirect);
        assert_eq!((code, err.as_str()), (2, line), "{args} {redirect}");
        assert!(took < Duration::from_secs(5), "{args}: {took:?}");
    }
    let (code, err, _) = bounded("--batch /dev/zero", "");
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "cs-msg: --batch /dev/zero: line 1 is longer than 32.0 MiB (the most one input may hold)\n"
        )
    );
    let _ = feeder.kill();
    let _ = feeder.wait();
}

#[test]
fn a_conversation_changed_meanwhile_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    std::fs::write(&chat, "[]\n").unwrap();
    let mut server = mock_server();
    let path = chat.clone();
    server
        .mock("POST", "/v1/messages")
        .with_header("content-type", "application/json")
        .with_body_from_request(move |_| {
            // Another run saves its turn while this answer is on its way.
            std::fs::write(&path, "[{\"role\":\"user\",\"content\":\"other\"}]\n").unwrap();
            br#"{"id":"m","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#.to_vec()
        })
        .create();
    let mut c = api(&server);
    c.args(["--no-stream", "--no-stdin", "-c"])
        .arg(&chat)
        .arg("q");
    run(c).code(2).stderr(format!(
        "cs-msg: --conversation {}: the file changed while this answer was coming (another cs-msg on the same file?); this turn was not saved\n",
        chat.display()
    ));
    assert_eq!(
        std::fs::read_to_string(&chat).unwrap(),
        "[{\"role\":\"user\",\"content\":\"other\"}]\n"
    );
}

#[test]
fn an_unwritable_conversation_path_fails_before_sending() {
    let mut server = mock_server();
    let mock = server.mock("POST", "/v1/messages").expect(0).create();
    let mut c = api(&server);
    c.args(["--no-stdin", "-c", "/nonexistent-dir/chat.json", "q"]);
    run(c).code(2).stderr(predicates::str::starts_with(
        "cs-msg: --conversation /nonexistent-dir/chat.json: cannot write in /nonexistent-dir: ",
    ));
    mock.assert();
}

#[test]
fn a_symlinked_conversation_replaces_its_target_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.json");
    std::fs::write(&real, "[]\n").unwrap();
    let link = dir.path().join("chat.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut server = mock_server();
    server
        .mock("POST", "/v1/messages")
        .with_header("content-type", "application/json")
        .with_body(r#"{"id":"m","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#)
        .create();
    let mut c = api(&server);
    c.args(["--no-stream", "--no-stdin", "-c"])
        .arg(&link)
        .arg("q");
    run(c).code(0);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(saved.as_array().unwrap().len(), 2);
}
