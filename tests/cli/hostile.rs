//! Relays and hostile servers (issue 11): what a misbehaving gateway sends, byte for
//! byte, and the exact line and exit code cs-msg answers with.

use std::time::Duration;

use crate::common::*;
use crate::server::{Response, Server};

const START_1: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}"#;

/// `text_stream(&["hi"])` up to, not including, its `message_delta`.
fn begin() -> String {
    cut_before(&text_stream(&["hi"]), "event: message_delta")
}

fn stop_reason_delta() -> String {
    event(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}"#,
    )
}

/// Longer than any test: a hold this long lasts until the server is dropped.
const FOREVER: Duration = Duration::from_secs(600);

/// The one response of a server on 127.0.0.1 for what mockito cannot do (endless
/// bodies, sockets held open, writes spread over time): an event-stream head, then a
/// body that ends when the connection closes.
fn raw_stream() -> Response {
    Response::new(200)
        .header("content-type", "text/event-stream")
        .header("request-id", "req_raw")
        .close_delimited()
}

// ---------------------------------------------------------------------------------
// Item 11: memory is bounded

#[test]
fn endless_short_data_lines_are_refused_in_one_line_with_memory_bounded() {
    // An endless run of "data: x" lines with no blank line: the event cap counts every
    // line, so cs-msg gives up after 32 MiB (exit 1: malformed, not a network fault)
    // and hangs up; the server writes until the socket closes.
    let server = Server::script([raw_stream()
        .chunk(begin())
        .endless("data: x\n".repeat(8192))]);
    let child = spawn(server.url(), &["--no-stdin", "q"], &[]);
    let peak = peak_rss_while_running(child.id());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cs-msg: malformed response: an event-stream event larger than 32 MiB (data lines without a blank line) (request-id req_raw)\n"
    );
    // A loose bound: the cap plus the program, never gigabytes (Linux only).
    if let Some(peak) = peak {
        assert!(peak < 300 * 1024, "peak RSS {peak} KiB");
    }
    assert_eq!(server.connections(), 1);
    // The endless writer ended with the connection: the drop joins it.
    drop(server);
}

/// The highest VmRSS (KiB) of a running process, sampled until it exits; `None`
/// where /proc is not available.
fn peak_rss_while_running(pid: u32) -> Option<u64> {
    let path = format!("/proc/{pid}/status");
    let mut peak = None;
    while let Ok(status) = std::fs::read_to_string(&path) {
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        match rss {
            Some(rss) => peak = Some(peak.map_or(rss, |p: u64| p.max(rss))),
            None => break, // a zombie: it has exited
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    peak
}

// ---------------------------------------------------------------------------------
// Item 4: a repeated message_start

#[test]
fn a_repeated_identical_message_start_is_ignored() {
    let mut server = mock_server();
    let body = text_stream(&["hi"]).replacen(
        "event: content_block_start",
        &format!(
            "{}event: content_block_start",
            event("message_start", START_1)
        ),
        1,
    );
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c).success().stdout("hi\n").stderr("");
}

#[test]
fn a_message_start_of_another_answer_is_malformed() {
    let mut server = mock_server();
    let other = START_1.replace("msg_1", "msg_2");
    let body = begin() + &event("message_start", &other) + &stream_end("end_turn");
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c).code(1).stdout("hi\n").stderr(
        "cs-msg: malformed response: a second message_start (msg_2) in the stream of msg_1 (request-id req_stream_1)\n",
    );
}

// ---------------------------------------------------------------------------------
// Item 5: [DONE] / event: done

#[test]
fn done_after_a_stop_reason_is_a_complete_answer() {
    for done in ["data: [DONE]\n\n", "event: done\ndata: [DONE]\n\n"] {
        let mut server = mock_server();
        sse_mock(&mut server, begin() + &stop_reason_delta() + done).create();
        let mut c = api(&server);
        c.args(["--json", "q"]);
        let assert = run(c).success().stderr("");
        let message: serde_json::Value = serde_json::from_str(&stdout_of(&assert)).unwrap();
        assert_eq!(message["content"][0]["text"], "hi", "{done}");
        assert_eq!(message["stop_reason"], "end_turn");
    }
}

#[test]
fn done_and_a_socket_held_open_do_not_hold_up_the_answer() {
    // After [DONE] the relay keeps the connection open: cs-msg must not wait for it
    // to close (it would end in the idle timeout, exit 5).
    let server = Server::script([raw_stream()
        .chunk(begin() + &stop_reason_delta() + "data: [DONE]\n\n")
        .hold(FOREVER)]);
    let out = spawn(
        server.url(),
        &["--no-stdin", "--idle-timeout", "20", "q"],
        &[],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(server.connections(), 1);
}

#[test]
fn done_without_a_stop_reason_is_a_truncated_answer() {
    let mut server = mock_server();
    sse_mock(&mut server, begin() + "data: [DONE]\n\n").create();
    let mut c = api(&server);
    c.arg("q");
    run(c).code(5).stdout("hi\n").stderr(
        "cs-msg: the stream ended before message_stop; the answer is incomplete (request-id req_stream_1)\n",
    );
}

// ---------------------------------------------------------------------------------
// Item 7: an error event after message_stop

#[test]
fn an_error_event_after_message_stop_in_the_same_read_is_ignored() {
    let mut server = mock_server();
    let late = event(
        "error",
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    sse_mock(&mut server, text_stream(&["hi"]) + &late).create();
    for mode in [&["q"][..], &["--json", "q"], &["--events", "q"]] {
        let mut c = api(&server);
        c.args(mode);
        let assert = run(c).success().stderr("");
        assert!(!stdout_of(&assert).contains("Overloaded"), "{mode:?}");
    }
}

#[test]
fn an_error_event_after_message_stop_in_a_later_read_is_ignored() {
    let server = Server::script([raw_stream()
        .chunk(text_stream(&["hi"]))
        .pause(Duration::from_millis(300))
        .chunk(event(
            "error",
            r#"{"type":"error","error":{"type":"api_error","message":"late"}}"#,
        ))]);
    let out = spawn(server.url(), &["--no-stdin", "q"], &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(server.connections(), 1);
}

// ---------------------------------------------------------------------------------
// Items 2 and 3: error bodies of every shape, HTML pages

fn error_body_line(status: usize, content_type: &str, body: &str) -> (i32, String) {
    let mut server = mock_server();
    server
        .mock("POST", "/v1/messages")
        .with_status(status)
        .with_header("content-type", content_type)
        .with_body(body)
        .expect(1)
        .create();
    let mut c = api(&server);
    c.args(["--max-retries", "0", "q"]);
    let assert = run(c).stdout("");
    let code = assert.get_output().status.code().unwrap_or(-1);
    (code, stderr_of(&assert))
}

#[test]
fn openai_shaped_and_ad_hoc_error_bodies_show_message_type_and_code() {
    for (status, body, code, line) in [
        (
            404,
            r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
            1,
            "cs-msg: HTTP 404 invalid_request_error: The model `x` does not exist (code model_not_found)\n",
        ),
        (
            500,
            r#"{"error":{"message":"upstream error: do request failed","type":"None","code":null}}"#,
            1,
            "cs-msg: HTTP 500: upstream error: do request failed\n",
        ),
        (
            400,
            r#"{"error":{"message":"bad","type":null,"code":"invalid_model"}}"#,
            1,
            "cs-msg: HTTP 400: bad (code invalid_model)\n",
        ),
        (
            503,
            r#"{"error":true,"status":503,"message":"no healthy upstream"}"#,
            1,
            "cs-msg: HTTP 503: no healthy upstream\n",
        ),
        (
            401,
            r#"{"error":"Invalid token"}"#,
            3,
            "cs-msg: HTTP 401: Invalid token\n",
        ),
        (
            429,
            r#"{"error":{"message":"Rate limit reached","type":"","code":"rate_limit_exceeded"}}"#,
            4,
            "cs-msg: HTTP 429: Rate limit reached (code rate_limit_exceeded)\n",
        ),
    ] {
        assert_eq!(
            error_body_line(status, "application/json", body),
            (code, line.to_owned()),
            "{body}"
        );
    }
}

#[test]
fn html_error_pages_show_their_title_never_markup() {
    let cloudflare = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n";
    assert_eq!(
        error_body_line(502, "text/html", cloudflare),
        (
            1,
            "cs-msg: HTTP 502: 502 Bad Gateway (cloudflare)\n".to_owned()
        )
    );
    let nginx = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n";
    assert_eq!(
        error_body_line(504, "text/html", nginx),
        (
            1,
            "cs-msg: HTTP 504: 504 Gateway Time-out (nginx/1.24.0)\n".to_owned()
        )
    );
    let untitled =
        "<!DOCTYPE html><html><body><h1>Access denied</h1><p>Error 1020</p></body></html>";
    assert_eq!(
        error_body_line(403, "text/html", untitled),
        (3, "cs-msg: HTTP 403: Access denied\n".to_owned())
    );
}

// ---------------------------------------------------------------------------------
// Item 14: terminal safety

#[test]
fn server_text_on_stderr_is_defused_and_cut() {
    // Escape sequences, a bidi override and a line separator in an error event, and
    // a 10 MB message: one line, no control characters, 1000 characters of message.
    let message = format!(
        "\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}evil\u{2028}{}",
        "m".repeat(10_000_000)
    );
    let data = serde_json::json!({
        "type": "error",
        "error": {"type": "api_error\u{1b}[31m", "message": message},
    });
    let mut server = mock_server();
    sse_mock(&mut server, begin() + &event("error", &data.to_string())).create();
    let mut c = api(&server);
    c.arg("q");
    let expected_message: String = "\u{fffd}[2J\u{fffd}]0;owned\u{fffd}\u{fffd}evil "
        .chars()
        .chain(std::iter::repeat_n('m', 1000 - 20))
        .chain(['…'])
        .collect();
    run(c).code(1).stdout("hi\n").stderr(format!(
        "cs-msg: error event in stream api_error\u{fffd}[31m: {expected_message} (request-id req_stream_1)\n"
    ));
}

#[test]
fn events_mode_writes_only_json_lines() {
    let mut server = mock_server();
    let body = text_stream(&["hi"]).replacen(
        "event: content_block_start",
        "event: relay_status\ndata: OK \u{1b}[2J\n\nevent: content_block_start",
        1,
    );
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.args(["--events", "q"]);
    let assert = run(c).success();
    let out = stdout_of(&assert);
    for line in out.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    assert_eq!(out.lines().nth(1), Some("\"OK \\u001b[2J\""));
    assert!(!out.contains('\u{1b}'));
}

#[test]
fn assistant_text_stays_byte_exact() {
    // What the model wrote is data: control characters and bidi marks in it reach
    // stdout untouched.
    let text = "a\u{1b}[1mb\u{202e}c\u{2028}d\te";
    let mut server = mock_server();
    sse_mock(&mut server, text_stream(&[text])).create();
    let mut c = api(&server);
    c.arg("q");
    run(c).success().stdout(format!("{text}\n"));
}

// ---------------------------------------------------------------------------------
// Item 13: no secrets in a URL; ports, queries and fragments

#[test]
fn base_urls_with_user_info_bad_ports_queries_or_fragments_exit_2() {
    for (url, line) in [
        (
            "https://user:s3cret@api.example.com",
            "cs-msg: --base-url contains user info (user:password@host), which is not shown here; a URL is no place for a secret: put the key in CS_MSG_API_KEY\n",
        ),
        (
            "https://api.example.com:99999",
            "cs-msg: --base-url 'https://api.example.com:99999' has port '99999'; a port is a number from 1 to 65535\n",
        ),
        (
            "https://api.example.com/#v1",
            "cs-msg: --base-url 'https://api.example.com/#v1' must not have a #fragment\n",
        ),
        (
            "https://api.example.com/?x=1",
            "cs-msg: --base-url 'https://api.example.com/?x=1' must not have a ?query\n",
        ),
    ] {
        let mut c = cmd();
        c.env("CS_MSG_API_KEY", KEY).args(["--base-url", url, "q"]);
        run(c).code(2).stdout("").stderr(line);
        // The same from the environment.
        let mut c = cmd();
        c.env("CS_MSG_API_KEY", KEY)
            .env("CS_MSG_BASE_URL", url)
            .arg("q");
        run(c).code(2).stderr(line);
    }
}

// ---------------------------------------------------------------------------------
// Item 19: keys with invisible or non-ASCII characters

#[test]
fn keys_with_a_bom_or_invisible_characters_exit_2_before_sending() {
    for (key, line) in [
        (
            format!("\u{feff}{KEY}"),
            "cs-msg: CS_MSG_API_KEY contains a byte-order mark (U+FEFF); save the key as plain text without a BOM\n".to_owned(),
        ),
        (
            format!("{KEY}\u{200b}"),
            format!(
                "cs-msg: CS_MSG_API_KEY contains an invisible or non-ASCII character (U+200B at character {}); keys are plain ASCII: type or copy the key again\n",
                KEY.len() + 1
            ),
        ),
        (
            format!("sk-\u{430}{KEY}"),
            "cs-msg: CS_MSG_API_KEY contains an invisible or non-ASCII character (U+0430 at character 4); keys are plain ASCII: type or copy the key again\n".to_owned(),
        ),
    ] {
        let mut server = mock_server();
        let mock = server.mock("POST", "/v1/messages").expect(0).create();
        let mut c = cmd();
        c.arg("--base-url")
            .arg(server.url())
            .env("CS_MSG_API_KEY", &key)
            .arg("q");
        run(c).code(2).stdout("").stderr(line);
        mock.assert();
    }
    // A key file saved "with BOM".
    let dir = tempfile::tempdir().unwrap();
    let server = mock_server();
    let (path, mut c) = key_file_cmd(dir.path(), &format!("\u{feff}{KEY}\n"), 0o600, &server);
    c.arg("q");
    run(c).code(2).stderr(format!(
        "cs-msg: --api-key-file {} contains a byte-order mark (U+FEFF); save the key as plain text without a BOM\n",
        path.display()
    ));
}
