//! Retries, timeouts, proxies, key hygiene, hostile input and signals (DESIGN.md §2, §6).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mockito::Matcher;
use predicates::prelude::*;

use crate::common::*;

/// A raw HTTP server on 127.0.0.1 for what mockito cannot do (stalls, dropped
/// connections, proxies). Serves `connections` connections, each on its own thread,
/// then stops; joining the handle waits for every handler.
fn raw_server(
    connections: usize,
    handler: impl Fn(TcpStream) + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let handler = Arc::new(handler);
    let handle = std::thread::spawn(move || {
        let mut workers = Vec::new();
        for stream in listener.incoming().take(connections) {
            let Ok(stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let handler = Arc::clone(&handler);
            workers.push(std::thread::spawn(move || handler(stream)));
        }
        for w in workers {
            let _ = w.join();
        }
    });
    (url, count, handle)
}

/// Reads one request's head and body, returning the request line.
fn read_request(stream: &mut TcpStream) -> String {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    request_line.trim_end().to_owned()
}

/// Serves `head` of a stream on each connection, then falls silent for `silence`.
fn stalling_stream(
    connections: usize,
    head: String,
    silence: Duration,
) -> (String, Arc<AtomicUsize>, JoinHandle<()>) {
    raw_server(connections, move |mut s| {
        read_request(&mut s);
        s.write_all(SSE_HEAD.as_bytes()).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(silence);
    })
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

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
    let (url, count, handle) = raw_server(3, |mut s| {
        read_request(&mut s);
        // Close without answering.
    });
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY).args(["--base-url", &url, "q"]);
    run(c)
        .code(5)
        .stderr(predicate::str::starts_with(format!(
            "cs-msg: network error talking to {url}"
        )))
        .stderr(predicate::str::ends_with("(after 2 retries)\n"));
    handle.join().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

// ---- Timeouts ----

#[test]
fn timeout_limits_a_stalled_non_streaming_call() {
    let (url, _, _handle) = raw_server(1, |mut s| {
        read_request(&mut s);
        std::thread::sleep(Duration::from_secs(5));
    });
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .args(["--base-url", &url, "--no-stream", "--timeout", "0.5", "q"]);
    let started = Instant::now();
    run(c)
        .code(5)
        .stderr("cs-msg: timed out: the call took longer than --timeout 0.5 s\n");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn idle_timeout_before_headers() {
    let (url, count, _handle) = raw_server(2, |mut s| {
        read_request(&mut s);
        std::thread::sleep(Duration::from_secs(3));
    });
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY).args([
        "--base-url",
        &url,
        "--idle-timeout",
        "0.3",
        "--max-retries",
        "1",
        "q",
    ]);
    run(c).code(5).stderr(
        "cs-msg: timed out: no data from the server for 0.3 s (--idle-timeout) (after 1 retries)\n",
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn idle_timeout_mid_stream_keeps_the_text_and_does_not_retry() {
    let head = cut_before(
        &text_stream(&["half an answer"]),
        "event: content_block_stop",
    );
    let (url, count, _handle) = stalling_stream(2, head, Duration::from_secs(3));
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .args(["--base-url", &url, "--idle-timeout", "0.3", "q"]);
    run(c).code(5).stdout("half an answer\n").stderr(
        "cs-msg: timed out: no data from the server for 0.3 s (--idle-timeout); the answer is incomplete\n",
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn a_slow_healthy_stream_is_never_cut() {
    // 8 pauses of 150 ms: 1.2 s in all, far over the 0.5 s idle limit, never silent for it.
    let body = text_stream(&["a", "b", "c", "d", "e", "f", "g", "h"]);
    let (url, _, _handle) = raw_server(1, move |mut s| {
        read_request(&mut s);
        s.write_all(SSE_HEAD.as_bytes()).unwrap();
        for part in body.split_inclusive("\n\n") {
            s.write_all(part.as_bytes()).unwrap();
            if part.contains("content_block_delta") {
                std::thread::sleep(Duration::from_millis(150));
            }
        }
    });
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .args(["--base-url", &url, "--idle-timeout", "0.5", "q"]);
    run(c).success().stdout("abcdefgh\n");
}

// ---- Proxies ----

#[test]
fn proxy_from_environment_tunnels_https() {
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let store = Arc::clone(&seen);
    let (proxy, _, handle) = raw_server(1, move |mut s| {
        // The client asks for a tunnel; refusing it ends the call (exit 5).
        *store.lock().unwrap() = read_request(&mut s);
        s.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    });
    let mut c = cmd();
    c.env_remove("NO_PROXY")
        .env("HTTPS_PROXY", &proxy)
        .env("CS_MSG_API_KEY", KEY)
        .args([
            "--base-url",
            "https://api.example.com",
            "--max-retries",
            "0",
            "q",
        ]);
    run(c).code(5);
    handle.join().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
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
    let (url, _, _handle) = stalling_stream(1, head, Duration::from_secs(5));
    let mut child = spawn(&url, &["--no-stdin", "q"], &[]);
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
