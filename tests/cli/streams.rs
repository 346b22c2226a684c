//! Streams as real servers send them: pings, CRLF, missing `event:` lines, characters
//! split across network chunks, `error` events, streams cut short.

use std::time::Duration;

use crate::common::*;

#[test]
fn crlf_line_endings_and_pings() {
    let mut server = mock_server();
    let body = text_stream(&["a", "b"]).replace('\n', "\r\n");
    let body = body.replacen("event: content_block_start", "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n: keep-alive comment\r\n\r\nevent: content_block_start", 1);
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c).success().stdout("ab\n").stderr("");
}

#[test]
fn missing_event_lines_fall_back_to_data_type() {
    let mut server = mock_server();
    let body: String = text_stream(&["no ", "names"])
        .lines()
        .filter(|l| !l.starts_with("event:"))
        .map(|l| format!("{l}\n"))
        .collect();
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c).success().stdout("no names\n");
}

#[test]
fn done_sentinel_and_unknown_events_are_ignored() {
    let mut server = mock_server();
    let body = text_stream(&["x"]).replacen(
        "event: content_block_start",
        "event: future_thing\ndata: {\"type\":\"future_thing\"}\n\ndata: [DONE]\n\nevent: content_block_start",
        1,
    );
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c).success().stdout("x\n");
}

#[test]
fn multibyte_characters_split_across_chunks_and_deltas_flushed_as_they_arrive() {
    let mut server = mock_server();
    let body = text_stream(&["héllo ", "wörld 😀"]);
    let bytes = body.into_bytes();
    sse_mock(&mut server, String::new())
        .with_chunked_body(move |w| {
            // 3-byte chunks: every multi-byte character is split somewhere.
            for chunk in bytes.chunks(3) {
                w.write_all(chunk)?;
            }
            Ok(())
        })
        .create();
    let mut c = api(&server);
    c.arg("q");
    run(c).success().stdout("héllo wörld 😀\n");
}

#[test]
fn first_token_reaches_stdout_before_the_stream_ends() {
    use std::io::Read;
    let mut server = mock_server();
    let body = text_stream(&["first", " second"]);
    let split = body.find("event: content_block_delta").unwrap()
        + body[body.find("event: content_block_delta").unwrap()..]
            .find("\n\n")
            .unwrap()
        + 2;
    let (head, tail) = (body[..split].to_owned(), body[split..].to_owned());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    sse_mock(&mut server, String::new())
        .with_chunked_body(move |w| {
            w.write_all(head.as_bytes())?;
            // Hold the rest until the test has seen the first token on stdout.
            let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
            w.write_all(tail.as_bytes())
        })
        .create();
    let mut child = spawn(&server.url(), &["--no-stdin", "q"], &[]);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 5];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first");
    tx.send(()).unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, " second\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn error_event_mid_stream_keeps_printed_text() {
    let mut server = mock_server();
    let body = format!(
        "{}{}",
        cut_before(
            &text_stream(&["partial answer"]),
            "event: content_block_stop"
        ),
        event(
            "error",
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#
        )
    );
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .code(1)
        .stdout("partial answer\n")
        .stderr("cs-msg: error event in stream api_error: Internal server error (request-id req_stream_1)\n");
}

#[test]
fn overloaded_event_after_output_exits_4_without_retry() {
    let mut server = mock_server();
    let body = format!(
        "{}{}",
        cut_before(&text_stream(&["some text"]), "event: content_block_stop"),
        event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
        )
    );
    let mock = sse_mock(&mut server, body).expect(1).create();
    let mut c = api(&server);
    c.arg("q");
    run(c).code(4).stdout("some text\n").stderr(
        "cs-msg: error event in stream overloaded_error: Overloaded (request-id req_stream_1)\n",
    );
    mock.assert();
}

#[test]
fn overloaded_event_before_output_is_retried() {
    let mut server = mock_server();
    let overloaded = event(
        "message_start",
        r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}"#,
    ) + &event(
        "error",
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    let first = sse_mock(&mut server, overloaded).expect(1).create();
    let second = sse_mock(&mut server, text_stream(&["fine"]))
        .expect(1)
        .create();
    let mut c = api(&server);
    c.arg("q");
    run(c).success().stdout("fine\n").stderr("");
    first.assert();
    second.assert();
}

#[test]
fn json_mode_retries_a_mid_stream_overload() {
    let mut server = mock_server();
    let overloaded = format!(
        "{}{}",
        cut_before(&text_stream(&["half"]), "event: content_block_stop"),
        event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
        )
    );
    let first = sse_mock(&mut server, overloaded).expect(1).create();
    let second = sse_mock(&mut server, text_stream(&["whole"]))
        .expect(1)
        .create();
    let mut c = api(&server);
    c.args(["--json", "q"]);
    let out = stdout_of(&run(c).success());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["content"][0]["text"], "whole");
    first.assert();
    second.assert();
}

#[test]
fn stream_without_message_stop_exits_5() {
    let mut server = mock_server();
    let body = cut_before(&text_stream(&["cut ", "short"]), "event: message_delta");
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .code(5)
        .stdout("cut short\n")
        .stderr("cs-msg: the stream ended before message_stop; the answer is incomplete (request-id req_stream_1)\n");
}

#[test]
fn stream_cut_mid_event_exits_5() {
    let mut server = mock_server();
    let body = text_stream(&["abc"]);
    let body = body[..body.find("\"text_delta\"").unwrap()].to_owned();
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.args(["--json", "q"]);
    run(c)
        .code(5)
        .stdout("")
        .stderr("cs-msg: the stream ended before message_stop; the answer is incomplete (request-id req_stream_1)\n");
}

#[test]
fn empty_stream_exits_5() {
    let mut server = mock_server();
    sse_mock(&mut server, "").create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .code(5)
        .stderr("cs-msg: empty response body (HTTP 200) (request-id req_stream_1)\n");
}

#[test]
fn events_out_of_order_are_malformed() {
    let mut server = mock_server();
    sse_mock(
        &mut server,
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
    )
    .create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .code(1)
        .stderr("cs-msg: malformed response: content_block_start before message_start (request-id req_stream_1)\n");
}

#[test]
fn gateway_answering_json_to_a_stream_request_still_works() {
    let mut server = mock_server();
    json_mock(&mut server, fixture("text.json")).create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .success()
        .stdout("Hello there! SSE is a one-way stream of events over HTTP.\n");
}

#[test]
fn error_event_at_the_very_end_keeps_its_exit_code() {
    // No blank line after the last event: it is complete all the same.
    let mut server = mock_server();
    let body = cut_before(&text_stream(&["x"]), "event: content_block_stop")
        + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}";
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.arg("q");
    run(c).code(4).stdout("x\n").stderr(
        "cs-msg: error event in stream rate_limit_error: slow down (request-id req_stream_1)\n",
    );
}

#[test]
fn show_thinking_works_with_json_too() {
    let mut server = mock_server();
    sse_mock(&mut server, fixture("thinking.sse")).create();
    json_mock(&mut server, fixture("thinking.json"))
        .match_body(mockito::Matcher::PartialJson(
            serde_json::json!({"max_tokens": 4096}),
        ))
        .match_request(|r| !String::from_utf8_lossy(r.body().unwrap()).contains("\"stream\""))
        .create();
    for extra in [None, Some("--no-stream")] {
        let mut c = api(&server);
        c.args(["--json", "--show-thinking", "q"]);
        if let Some(flag) = extra {
            c.arg(flag);
        }
        let assert = run(c)
            .success()
            .stderr("GCD of 1071 and 462: 1071 = 2*462 + 147 ...\n");
        assert!(stdout_of(&assert).starts_with("{\"id\":\"msg_01Think\""));
    }
}
