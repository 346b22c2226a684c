//! Retries, timeouts, proxies, key hygiene, hostile input and signals (README "Reliability").

use std::io::Read;
use std::time::{Duration, Instant};

use mockito::Matcher;
use predicates::prelude::*;

use crate::common::*;
use crate::server::{Response, Server};

/// Sends `head` of an event stream, then falls silent for `silence` (a stall).
fn stalling_stream(head: String, silence: Duration) -> Response {
    Response::sse(head).pause(silence)
}

// ---- Retries ----

#[test]
fn transient_statuses_are_retried() {
    for status in [408, 409, 500, 503, 529] {
        let mut server = mock_server();
        let failing = error_mock(&mut server, status, "api_error", "try again")
            .expect(1)
            .create();
        let ok = sse_mock(&mut server, text_stream(&["ok"]))
            .expect(1)
            .create();
        let mut c = api(&server);
        c.arg("q");
        run(c).success().stdout("ok\n").stderr("");
        failing.assert();
        ok.assert();
    }
}

#[test]
fn permanent_statuses_are_not_retried() {
    for (status, code) in [(400, 1), (401, 3), (403, 3), (404, 1), (413, 1), (422, 1)] {
        let mut server = mock_server();
        let mock = error_mock(&mut server, status, "some_error", "no")
            .expect(1)
            .create();
        let mut c = api(&server);
        c.arg("q");
        run(c).code(code);
        mock.assert();
    }
}

#[test]
fn x_should_retry_overrides_the_status_rule() {
    let mut server = mock_server();
    let mock = error_mock(&mut server, 400, "invalid_request_error", "flaky")
        .with_header("x-should-retry", "true")
        .expect(3)
        .create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .code(1)
        .stderr(predicate::str::ends_with("(after 2 retries)\n"));
    mock.assert();

    let mut server = mock_server();
    let mock = error_mock(&mut server, 529, "overloaded_error", "Overloaded")
        .with_header("x-should-retry", "false")
        .expect(1)
        .create();
    let mut c = api(&server);
    c.arg("q");
    run(c).code(4);
    mock.assert();
}

#[test]
fn max_retries_flag_and_env() {
    let mut server = mock_server();
    let mock = error_mock(&mut server, 500, "api_error", "boom")
        .expect(5)
        .create();
    let mut c = api(&server);
    c.args(["--max-retries", "4", "q"]);
    run(c).code(1);
    mock.assert();

    let mut server = mock_server();
    let mock = error_mock(&mut server, 500, "api_error", "boom")
        .expect(1)
        .create();
    let mut c = api(&server);
    c.env("CS_MSG_MAX_RETRIES", "0").arg("q");
    run(c).code(1);
    mock.assert();
}

/// Each delay form is honoured: the run takes at least as long as the server asked.
#[test]
fn retry_after_forms_are_honoured() {
    // HTTP dates have whole seconds: 3 s ahead is at least 2 s ahead once truncated.
    let in_three_seconds =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    for (header, value, at_least) in [
        // The date first: the later cases would eat into its lead.
        ("retry-after", in_three_seconds, Duration::from_millis(1500)),
        (
            "retry-after-ms",
            "300".to_owned(),
            Duration::from_millis(300),
        ),
        ("retry-after", "1".to_owned(), Duration::from_secs(1)),
    ] {
        let mut server = mock_server();
        let limited = error_mock(&mut server, 429, "rate_limit_error", "slow down")
            .with_header(header, &value)
            .expect(1)
            .create();
        let ok = sse_mock(&mut server, text_stream(&["ok"]))
            .expect(1)
            .create();
        let mut c = api(&server);
        c.arg("q");
        let started = Instant::now();
        run(c).success().stdout("ok\n");
        assert!(started.elapsed() >= at_least, "{header}: {value}");
        limited.assert();
        ok.assert();
    }
}

#[test]
fn backoff_applies_without_retry_headers() {
    let mut server = mock_server();
    error_mock(&mut server, 503, "api_error", "busy")
        .expect(1)
        .create();
    sse_mock(&mut server, text_stream(&["ok"]))
        .expect(1)
        .create();
    let mut c = api(&server);
    c.env("CS_MSG_BACKOFF_MS", "400").arg("q");
    let started = Instant::now();
    run(c).success();
    // 400 ms less at most 25 % jitter.
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn verbose_logs_each_attempt() {
    let mut server = mock_server();
    error_mock(&mut server, 529, "overloaded_error", "Overloaded")
        .with_header("retry-after-ms", "5")
        .expect(1)
        .create();
    sse_mock(&mut server, text_stream(&["ok"]))
        .expect(1)
        .create();
    let mut c = api(&server);
    c.args(["-v", "q"]);
    let assert = run(c).success().stdout("ok\n");
    let err = stderr_of(&assert);
    let url = server.url();
    assert!(
        err.contains(&format!("cs-msg: POST {url}/v1/messages (attempt 1)")),
        "{err}"
    );
    assert!(
        err.contains("cs-msg: HTTP 529, request-id req_err_1"),
        "{err}"
    );
    assert!(
        err.contains("cs-msg: retry 1/2 in 0.01 s after: HTTP 529 overloaded_error: Overloaded (request-id req_err_1)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("cs-msg: POST {url}/v1/messages (attempt 2)")),
        "{err}"
    );
    assert!(
        err.contains("cs-msg: HTTP 200, request-id req_stream_1"),
        "{err}"
    );
}

#[test]
fn dropped_connections_are_retried_then_exit_5() {
    // Close without answering.
    let server = Server::new(|_| Response::hang_up());
    let url = server.url();
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY).args(["--base-url", url, "q"]);
    run(c)
        .code(5)
        .stderr(predicate::str::starts_with(format!(
            "cs-msg: network error talking to {url}"
        )))
        .stderr(predicate::str::ends_with("(after 2 retries)\n"));
    assert_eq!(server.connections(), 3);
}

// ---- Timeouts ----

#[test]
fn timeout_limits_a_stalled_non_streaming_call() {
    let server = Server::new(|_| Response::hang_up().delay(Duration::from_secs(5)));
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY).args([
        "--base-url",
        server.url(),
        "--no-stream",
        "--timeout",
        "0.5",
        "q",
    ]);
    let started = Instant::now();
    run(c)
        .code(5)
        .stderr("cs-msg: timed out: the call took longer than --timeout 0.5 s\n");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn idle_timeout_before_headers() {
    let server = Server::new(|_| Response::hang_up().delay(Duration::from_secs(3)));
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY).args([
        "--base-url",
        server.url(),
        "--idle-timeout",
        "0.3",
        "--max-retries",
        "1",
        "q",
    ]);
    run(c).code(5).stderr(
        "cs-msg: timed out: no data from the server for 0.3 s (--idle-timeout) (after 1 retries)\n",
    );
    assert_eq!(server.connections(), 2);
}

#[test]
fn idle_timeout_mid_stream_keeps_the_text_and_does_not_retry() {
    let head = cut_before(
        &text_stream(&["half an answer"]),
        "event: content_block_stop",
    );
    let server = Server::new(move |_| stalling_stream(head.clone(), Duration::from_secs(3)));
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .args(["--base-url", server.url(), "--idle-timeout", "0.3", "q"]);
    run(c).code(5).stdout("half an answer\n").stderr(
        "cs-msg: timed out: no data from the server for 0.3 s (--idle-timeout); the answer is incomplete\n",
    );
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_slow_healthy_stream_is_never_cut() {
    // 8 pauses of 150 ms: 1.2 s in all, far over the 0.5 s idle limit, never silent for it.
    let body = text_stream(&["a", "b", "c", "d", "e", "f", "g", "h"]);
    let mut slow = Response::sse("");
    for part in body.split_inclusive("\n\n") {
        slow = slow.chunk(part);
        if part.contains("content_block_delta") {
            slow = slow.pause(Duration::from_millis(150));
        }
    }
    let server = Server::script([slow]);
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .args(["--base-url", server.url(), "--idle-timeout", "0.5", "q"]);
    run(c).success().stdout("abcdefgh\n");
}

// ---- Proxies ----

#[test]
fn proxy_from_environment_tunnels_https() {
    // The client asks for a tunnel; refusing it ends the call (exit 5).
    let proxy = Server::script([Response::new(403)]);
    let mut c = cmd();
    c.env_remove("NO_PROXY")
        .env("HTTPS_PROXY", proxy.url())
        .env("CS_MSG_API_KEY", KEY)
        .args([
            "--base-url",
            "https://api.example.com",
            "--max-retries",
            "0",
            "q",
        ]);
    run(c).code(5);
    assert_eq!(
        proxy.requests()[0].request_line(),
        "CONNECT api.example.com:443 HTTP/1.1"
    );
}

#[test]
fn loopback_and_no_proxy_hosts_bypass_the_proxy() {
    // A local server is reached directly, proxy or not: over plain http a proxy
    // would see the key.
    let mut server = mock_server();
    sse_mock(&mut server, text_stream(&["direct"]))
        .expect(2)
        .create();
    let mut c = api(&server);
    c.env_remove("NO_PROXY")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .arg("q");
    run(c).success().stdout("direct\n");
    let mut c = api(&server);
    c.env("ALL_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1")
        .arg("q");
    run(c).success().stdout("direct\n");
}

// ---- Key hygiene ----

#[test]
fn shared_key_file_warns_and_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = mock_server();
    sse_mock(&mut server, text_stream(&["ok"]))
        .expect(2)
        .create();
    let (key_file, mut c) = key_file_cmd(dir.path(), KEY, 0o644, &server);
    c.arg("q");
    run(c).success().stdout("ok\n").stderr(format!(
        "cs-msg: warning: {0} is readable by others (mode 644); run: chmod 600 {0}\n",
        key_file.display()
    ));
    let (_, mut c) = key_file_cmd(dir.path(), KEY, 0o644, &server);
    c.args(["-q", "q"]);
    run(c).success().stderr("");
}

#[test]
fn malformed_keys_are_rejected_before_sending() {
    for (bad, code) in [
        (format!("{KEY} extra"), 2),
        (format!("{KEY}\u{7}"), 2),
        ("   ".to_owned(), 3),
    ] {
        let mut server = mock_server();
        let mock = server.mock("POST", "/v1/messages").expect(0).create();
        let mut c = cmd();
        c.arg("--base-url")
            .arg(server.url())
            .env("CS_MSG_API_KEY", &bad)
            .arg("q");
        run(c)
            .code(code)
            .stderr(predicate::str::starts_with("cs-msg: CS_MSG_API_KEY"));
        mock.assert();
    }
}

#[test]
fn key_stays_out_of_verbose_dry_run_and_errors() {
    let mut server = mock_server();
    error_mock(
        &mut server,
        401,
        "authentication_error",
        "invalid x-api-key",
    )
    .create();
    for args in [
        vec!["-v", "q"],
        vec!["-v", "--dry-run", "q"],
        vec!["--json", "-v", "q"],
    ] {
        let mut c = api(&server);
        c.args(&args);
        run(c); // run() fails the test if the key shows up
    }
}

// ---- Hostile input ----

#[test]
fn request_over_32_mib_is_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    // Two files, each within the per-input limit, together over the request limit.
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "a".repeat(17 * 1024 * 1024)).unwrap();
    let mut server = mock_server();
    let mock = server.mock("POST", "/v1/messages").expect(0).create();
    let mut c = api(&server);
    c.arg("-f").arg(&big).arg("-f").arg(&big).arg("q");
    run(c).code(2).stderr(predicate::str::starts_with(
        "cs-msg: request is 34.0 MiB; the API accepts at most 32 MiB",
    ));
    mock.assert();
}

#[test]
fn gigantic_event_line_is_malformed_not_a_hang() {
    let mut server = mock_server();
    let body = text_stream(&[]).replacen(
        "event: content_block_stop",
        &format!(
            "data: {}\n\nevent: content_block_stop",
            "x".repeat(33 * 1024 * 1024)
        ),
        1,
    );
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .code(1)
        .stderr("cs-msg: malformed response: an event-stream line longer than 32 MiB (request-id req_stream_1)\n");
}

#[test]
fn non_json_success_body_is_malformed() {
    let mut server = mock_server();
    json_mock(&mut server, "Service temporarily unavailable\n").create();
    let mut c = api(&server);
    c.args(["--no-stream", "q"]);
    run(c).code(1).stderr(
        "cs-msg: malformed response: expected a message object: Service temporarily unavailable (request-id req_json_1)\n",
    );
}

// ---- Signals ----

#[cfg(unix)]
#[test]
fn ctrl_c_dies_of_sigint_and_keeps_what_was_printed() {
    use std::process::Command;
    let head = cut_before(
        &text_stream(&["printed before Ctrl-C"]),
        "event: content_block_stop",
    );
    let server = Server::script([stalling_stream(head, Duration::from_secs(5))]);
    let mut child = spawn(server.url(), &["--no-stdin", "q"], &[]);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 21];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"printed before Ctrl-C");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    // Died of the signal, as a shell loop must see it (README "Exit codes").
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(2));
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "cs-msg: interrupted\n");
}

#[test]
fn redirects_are_not_followed_so_the_key_stays_home() {
    let mut elsewhere = mock_server();
    let stolen = elsewhere.mock("POST", Matcher::Any).expect(0).create();
    let mut server = mock_server();
    server
        .mock("POST", "/v1/messages")
        .with_status(307)
        .with_header("location", &format!("{}/v1/messages", elsewhere.url()))
        .with_header("request-id", "req_redirect")
        .expect(1)
        .create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .code(1)
        .stderr("cs-msg: HTTP 307: empty response body (request-id req_redirect)\n");
    stolen.assert();
}

#[test]
fn absurd_retry_after_is_capped_not_a_crash() {
    let mut server = mock_server();
    let mock = error_mock(&mut server, 429, "rate_limit_error", "slow")
        .with_header("retry-after", "1e30")
        .expect(1)
        .create();
    let mut c = api(&server);
    // The capped 60 s wait does not fit in --timeout: the call ends at once, exit 4.
    c.args(["--timeout", "5", "q"]);
    run(c).code(4).stderr(predicate::str::ends_with(
        "; no time left to retry within --timeout\n",
    ));
    mock.assert();
}

#[test]
fn stdin_hint_is_not_silenced_by_quiet() {
    let mut server = mock_server();
    sse_mock(&mut server, text_stream(&["ok"])).create();
    let mut child = spawn(
        &server.url(),
        &["-q", "prompt"],
        &[("CS_MSG_STDIN_HINT_MS", "100")],
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cs-msg: waiting for stdin; use --no-stdin or </dev/null\n"
    );
}
