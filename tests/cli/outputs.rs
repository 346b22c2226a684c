//! What reaches stdout in each output mode, byte for byte.

use mockito::Matcher;
use serde_json::{Value, json};

use crate::common::*;

/// The compact one-line form of a fixture message, as `--json` prints it.
fn one_line(fixture_name: &str) -> String {
    let v: Value = serde_json::from_str(&fixture(fixture_name)).unwrap();
    serde_json::to_string(&v).unwrap() + "\n"
}

#[test]
fn text_mode_streams_the_answer() {
    let mut server = mock_server();
    let mock = sse_mock(&mut server, fixture("text.sse"))
        .match_body(Matcher::PartialJson(json!({"stream": true})))
        .create();
    let mut c = api(&server);
    c.arg("hi");
    run(c)
        .success()
        .stdout("Hello there! SSE is a one-way stream of events over HTTP.\n")
        .stderr("");
    mock.assert();
}

#[test]
fn text_mode_adds_a_final_newline_only_when_missing() {
    let mut server = mock_server();
    sse_mock(&mut server, text_stream(&["Hel", "lo"])).create();
    let mut c = api(&server);
    c.arg("hi");
    run(c).success().stdout("Hello\n");
}

#[test]
fn text_mode_prints_tool_calls_as_json_lines() {
    let mut server = mock_server();
    sse_mock(&mut server, fixture("tool.sse")).create();
    let mut c = api(&server);
    c.arg("weather?");
    run(c).success().stdout(
        "I'll check the weather.\n{\"type\":\"tool_use\",\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":{\"location\":\"Paris\",\"unit\":\"celsius\"}}\n",
    );
}

#[test]
fn thinking_is_hidden_unless_asked_for() {
    let mut server = mock_server();
    sse_mock(&mut server, fixture("thinking.sse"))
        .expect(2)
        .create();
    let mut c = api(&server);
    c.arg("gcd?");
    run(c).success().stdout("The GCD is **21**.\n").stderr("");
    let mut c = api(&server);
    c.args(["--show-thinking", "gcd?"]);
    run(c)
        .success()
        .stdout("The GCD is **21**.\n")
        .stderr("GCD of 1071 and 462: 1071 = 2*462 + 147 ...\n");
}

#[test]
fn no_stream_text_matches_streamed_text() {
    for name in ["text", "tool", "thinking"] {
        let mut server = mock_server();
        sse_mock(&mut server, fixture(&format!("{name}.sse"))).create();
        let mut c = api(&server);
        c.arg("q");
        let streamed = stdout_of(&run(c).success());

        let mut server = mockito::Server::new();
        json_mock(&mut server, fixture(&format!("{name}.json")))
            .match_body(Matcher::Json(json!({
                "model": "claude-sonnet-4.6", "max_tokens": 4096,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
            })))
            .create();
        let mut c = api(&server);
        c.args(["--no-stream", "q"]);
        run(c).success().stdout(streamed);
    }
}

#[test]
fn json_is_identical_streamed_or_not() {
    for name in ["text", "tool", "thinking"] {
        let mut server = mock_server();
        sse_mock(&mut server, fixture(&format!("{name}.sse"))).create();
        json_mock(&mut server, fixture(&format!("{name}.json")))
            .match_body(Matcher::Json(json!({
                "model": "claude-sonnet-4.6", "max_tokens": 4096,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
            })))
            .create();
        let mut c = api(&server);
        c.args(["--json", "q"]);
        run(c).success().stdout(one_line(&format!("{name}.json")));
        let mut c = api(&server);
        c.args(["--json", "--no-stream", "q"]);
        run(c).success().stdout(one_line(&format!("{name}.json")));
    }
}

#[test]
fn json_keeps_unknown_fields_and_blocks() {
    let mut server = mock_server();
    let start = r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1},"container":null,"future_field":{"a":[1,2]}}}"#;
    let body = event("message_start", start)
        + &event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"fallback","data":{"z":1}}}"#,
        )
        + &event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        )
        + &event(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4,"cache_read_input_tokens":2}}"#,
        )
        + &event("message_stop", r#"{"type":"message_stop"}"#);
    sse_mock(&mut server, body).create();
    let mut c = api(&server);
    c.args(["--json", "q"]);
    run(c).success().stdout(
        "{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x\",\"content\":[{\"type\":\"fallback\",\"data\":{\"z\":1}}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":4,\"cache_read_input_tokens\":2},\"container\":null,\"future_field\":{\"a\":[1,2]}}\n",
    );
}

#[test]
fn events_prints_every_event_data_line() {
    let mut server = mock_server();
    sse_mock(&mut server, fixture("tool_use.sse")).create();
    let mut c = api(&server);
    c.args(["--events", "q"]);
    let expected: String = fixture("tool_use.sse")
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| format!("{d}\n"))
        .collect();
    run(c).success().stdout(expected);
}

#[test]
fn json_and_events_conflict() {
    let mut c = cmd();
    c.args(["--json", "--events", "q"]);
    run(c).code(2);
}

#[test]
fn usage_and_stop_reason_warnings_go_to_stderr() {
    let mut server = mock_server();
    let mut body = text_stream(&["partial"]);
    body = body.replace("end_turn", "max_tokens");
    sse_mock(&mut server, body).expect(3).create();
    let mut c = api(&server);
    c.args(["--usage", "--max-tokens", "7", "q"]);
    run(c).success().stdout("partial\n").stderr(
        "cs-msg: tokens: input 3, output 7\ncs-msg: warning: the answer was cut off at the max_tokens limit (7); raise --max-tokens\n",
    );
    let mut c = api(&server);
    c.args(["-q", "q"]);
    run(c).success().stdout("partial\n").stderr("");
    let mut c = api(&server);
    c.args(["--strict", "q"]);
    run(c).code(6).stdout("partial\n").stderr(
        "cs-msg: the answer was cut off at the max_tokens limit (4096); raise --max-tokens (--strict)\n",
    );
}

#[test]
fn closed_stdout_ends_quietly() {
    use std::io::Read;
    let mut server = mock_server();
    // A long answer that keeps coming after the reader has gone.
    sse_mock(&mut server, String::new())
        .with_chunked_body(|w| {
            let head = text_stream(&[]);
            let (start, end) = head.split_at(head.find("event: content_block_stop").unwrap());
            w.write_all(start.as_bytes())?;
            for i in 0..200 {
                let delta = json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":format!("line {i}\n")}});
                w.write_all(event("content_block_delta", &delta.to_string()).as_bytes())?;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            w.write_all(end.as_bytes())
        })
        .create();
    let mut child = spawn(&server.url(), &["--no-stdin", "q"], &[]);
    let mut first = [0u8; 5];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"line ");
    drop(child.stdout.take()); // like `| head -c 5`
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(stderr, "");
}

#[test]
fn colour_only_when_forced_or_on_a_terminal() {
    let mut server = mock_server();
    sse_mock(
        &mut server,
        fixture("thinking.sse").replace("end_turn", "max_tokens"),
    )
    .expect(3)
    .create();
    // stderr is a pipe here: no colour by default.
    let mut c = api(&server);
    c.args(["--show-thinking", "q"]);
    let plain = stderr_of(&run(c).success());
    assert!(!plain.contains('\x1b'), "{plain:?}");
    // FORCE_COLOR turns it on: thinking dim, the warning label yellow.
    let mut c = api(&server);
    c.env_remove("NO_COLOR")
        .env("FORCE_COLOR", "1")
        .args(["--show-thinking", "q"]);
    run(c).success().stdout("The GCD is **21**.\n").stderr(
        "\x1b[2;3mGCD of 1071 and 462: 1071 = 2*462 + 147 ...\x1b[0m\ncs-msg: \x1b[33mwarning:\x1b[0m the answer was cut off at the max_tokens limit (4096); raise --max-tokens\n",
    );
    // NO_COLOR wins over FORCE_COLOR.
    let mut c = api(&server);
    c.env("NO_COLOR", "1")
        .env("FORCE_COLOR", "1")
        .args(["--show-thinking", "q"]);
    assert_eq!(stderr_of(&run(c).success()), plain);
}

#[test]
fn errors_are_red_when_colour_is_forced() {
    let mut c = cmd();
    c.env_remove("NO_COLOR").env("FORCE_COLOR", "1");
    run(c).code(2).stderr(
        "\x1b[1;31mcs-msg:\x1b[0m nothing to send: give a PROMPT, pipe text to stdin, or attach a file with -f\n",
    );
}

/// A body that starts `delay` after the headers, like a slow first token.
fn slow_first_byte(server: &mut mockito::ServerGuard, delay_ms: u64) -> mockito::Mock {
    sse_mock(server, String::new()).with_chunked_body(move |w| {
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        w.write_all(text_stream(&["answer"]).as_bytes())
    })
}

#[test]
fn spinner_on_a_terminal_stderr_while_waiting() {
    let mut server = mock_server();
    slow_first_byte(&mut server, 600).create();
    let mut c = api(&server);
    c.env("CS_MSG_TEST_TERMINAL", "stderr").arg("q");
    let assert = run(c).success().stdout("answer\n");
    let err = stderr_of(&assert);
    assert!(
        err.starts_with("\r⠋ waiting for claude-sonnet-4.6…"),
        "{err:?}"
    );
    // Erased before the answer is done: the terminal line is left clean.
    assert!(err.ends_with("\r\x1b[2K"), "{err:?}");
}

#[test]
fn no_spinner_in_pipes_ci_or_fast_answers() {
    let mut server = mock_server();
    slow_first_byte(&mut server, 400).expect(2).create();
    // stderr is a pipe.
    let mut c = api(&server);
    c.arg("q");
    run(c).success().stderr("");
    // CI, even on a terminal.
    let mut c = api(&server);
    c.env("CS_MSG_TEST_TERMINAL", "stderr")
        .env("CI", "true")
        .arg("q");
    run(c).success().stderr("");
    // A fast answer never draws one.
    let mut server = mock_server();
    sse_mock(&mut server, text_stream(&["quick"])).create();
    let mut c = api(&server);
    c.env("CS_MSG_TEST_TERMINAL", "stderr").arg("q");
    run(c).success().stderr("");
}
