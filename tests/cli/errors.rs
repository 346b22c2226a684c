//! Exit codes and one-line error messages (README "Exit codes"), each from a realistic cause.

use predicates::prelude::*;

use crate::common::*;

#[test]
fn invalid_request_exits_1_with_status_type_message_and_request_id() {
    let mut server = mock_server();
    error_mock(
        &mut server,
        400,
        "invalid_request_error",
        "max_tokens: must be at most 64000",
    )
    .create();
    let mut c = api(&server);
    c.arg("q");
    run(c).code(1).stdout("").stderr(
        "cs-msg: HTTP 400 invalid_request_error: max_tokens: must be at most 64000 (request-id req_err_1)\n",
    );
}

#[test]
fn authentication_failures_exit_3() {
    for (status, kind) in [(401, "authentication_error"), (403, "permission_error")] {
        let mut server = mock_server();
        let mock = error_mock(&mut server, status, kind, "invalid x-api-key")
            .expect(1)
            .create();
        let mut c = api(&server);
        c.arg("q");
        run(c).code(3).stderr(format!(
            "cs-msg: HTTP {status} {kind}: invalid x-api-key (request-id req_err_1)\n"
        ));
        mock.assert();
    }
}

#[test]
fn missing_key_exits_3_with_a_hint() {
    let mut c = cmd();
    c.args(["--base-url", "http://127.0.0.1:9", "q"]);
    run(c)
        .code(3)
        .stdout("")
        .stderr(predicate::str::contains("CS_MSG_API_KEY"));
}

#[test]
fn other_providers_key_is_not_read() {
    let mut c = cmd();
    c.env("ANTHROPIC_API_KEY", KEY)
        .args(["--base-url", "http://127.0.0.1:9", "q"]);
    run(c).code(3);
}

#[test]
fn rate_limit_after_retries_exits_4() {
    let mut server = mock_server();
    let mock = error_mock(
        &mut server,
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit",
    )
    .with_header("retry-after-ms", "1")
    .expect(3)
    .create();
    let mut c = api(&server);
    c.arg("q");
    run(c).code(4).stderr(
        "cs-msg: HTTP 429 rate_limit_error: Number of requests has exceeded your rate limit (request-id req_err_1) (after 2 retries)\n",
    );
    mock.assert();
}

#[test]
fn overloaded_529_exits_4() {
    let mut server = mock_server();
    let mock = error_mock(&mut server, 529, "overloaded_error", "Overloaded")
        .expect(1)
        .create();
    let mut c = api(&server);
    c.args(["--max-retries", "0", "q"]);
    run(c)
        .code(4)
        .stderr("cs-msg: HTTP 529 overloaded_error: Overloaded (request-id req_err_1)\n");
    mock.assert();
}

#[test]
fn html_error_page_gives_a_clear_line() {
    let mut server = mock_server();
    server
        .mock("POST", "/v1/messages")
        .with_status(502)
        .with_header("content-type", "text/html")
        .with_body("<html>\r\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n</body>\n</html>\n")
        .expect(1)
        .create();
    let mut c = api(&server);
    c.args(["--max-retries", "0", "q"]);
    run(c).code(1).stderr("cs-msg: HTTP 502: 502 Bad Gateway\n");
}

#[test]
fn empty_error_body_gives_a_clear_line() {
    let mut server = mock_server();
    server
        .mock("POST", "/v1/messages")
        .with_status(404)
        .create();
    let mut c = api(&server);
    c.arg("q");
    run(c)
        .code(1)
        .stderr("cs-msg: HTTP 404: empty response body\n");
}

#[test]
fn malformed_success_body_exits_1() {
    let mut server = mock_server();
    json_mock(&mut server, r#"{"unexpected": true}"#).create();
    let mut c = api(&server);
    c.args(["--no-stream", "q"]);
    run(c)
        .code(1)
        .stderr("cs-msg: malformed response: expected a message object: {\"unexpected\": true} (request-id req_json_1)\n");
}

#[test]
fn connection_refused_exits_5() {
    // Bind then drop a listener: the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY).args([
        "--base-url",
        &format!("http://127.0.0.1:{port}"),
        "--max-retries",
        "1",
        "q",
    ]);
    run(c).code(5).stderr(predicate::str::starts_with(format!(
        "cs-msg: network error talking to http://127.0.0.1:{port}"
    )));
}

#[test]
fn nothing_to_send_exits_2() {
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY);
    run(c).code(2).stderr(
        "cs-msg: nothing to send: give a PROMPT, pipe text to stdin, or attach a file with -f\n",
    );
    let mut c = cmd();
    c.write_stdin("  \n\n");
    run(c).code(2);
}

#[test]
fn bad_input_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("blob.bin");
    std::fs::write(&bin, [0u8, 159, 146, 150, 0, 1]).unwrap();
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9\n").unwrap();
    let missing = dir.path().join("missing.txt");
    let cases = [
        (
            bin.clone(),
            format!(
                "cs-msg: file {}: binary, not an image or PDF\n",
                bin.display()
            ),
        ),
        (
            latin1.clone(),
            format!(
                "cs-msg: file {}: not valid UTF-8 (byte 3); convert it to UTF-8 first\n",
                latin1.display()
            ),
        ),
        (
            missing.clone(),
            format!("cs-msg: file {}: no such file\n", missing.display()),
        ),
        (
            dir.path().to_path_buf(),
            format!(
                "cs-msg: file {}: is a directory, not a file\n",
                dir.path().display()
            ),
        ),
    ];
    for (path, expected) in cases {
        let mut c = cmd();
        c.env("CS_MSG_API_KEY", KEY).arg("-f").arg(&path).arg("q");
        run(c).code(2).stdout("").stderr(expected);
    }
}

#[test]
fn invalid_utf8_on_stdin_exits_2() {
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .write_stdin(&b"ok \xff\xfe"[..]);
    run(c)
        .code(2)
        .stderr("cs-msg: stdin: not valid UTF-8 (byte 3); convert it to UTF-8 first\n");
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    for (args, expected) in [
        (
            vec!["--temperature", "1.5", "q"],
            "cs-msg: invalid value '1.5' for '--temperature <T>': 1.5 is not between 0.0 and 1.0; see cs-msg --help\n",
        ),
        (
            vec!["--max-tokens", "0", "q"],
            "cs-msg: invalid value '0' for '--max-tokens <N>': must be a whole number from 1 to 4294967295; see cs-msg --help\n",
        ),
        (
            vec!["--no-such-flag"],
            "cs-msg: unexpected argument '--no-such-flag' found (to pass '--no-such-flag' as a value, use '-- --no-such-flag'); see cs-msg --help\n",
        ),
        (
            vec!["-s", "a", "--system-file", "b", "q"],
            "cs-msg: the argument '--system <TEXT>' cannot be used with '--system-file <PATH>'; see cs-msg --help\n",
        ),
        (
            vec!["--events", "--no-stream", "q"],
            "cs-msg: the argument '--events' cannot be used with '--no-stream'; see cs-msg --help\n",
        ),
        (
            vec!["--effort", "extreme", "q"],
            "cs-msg: invalid value 'extreme' for '--effort <LEVEL>' (possible values: low, medium, high, max); see cs-msg --help\n",
        ),
    ] {
        let mut c = cmd();
        c.args(&args);
        run(c).code(2).stdout("").stderr(expected);
    }
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let mut c = cmd();
    c.env("CS_MSG_API_KEY", KEY)
        .args(["--base-url", "http://api.example.com", "q"]);
    run(c)
        .code(2)
        .stderr(predicate::str::contains("clear text"));
}

#[test]
fn help_never_shows_environment_values() {
    let mut c = cmd();
    c.env("CS_MSG_API_KEY_FILE", "/secret/path/key")
        .env("CS_MSG_API_KEY", KEY)
        .arg("--help");
    let out = stdout_of(&run(c).success());
    assert!(!out.contains("/secret/path/key"));
    assert!(out.contains("Exit codes:"));
}
