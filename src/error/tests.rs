use super::*;

#[test]
fn parses_the_api_envelope() {
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
    let e = ApiError::from_body(Some(529), body, None);
    assert_eq!(
        e.to_string(),
        "HTTP 529 overloaded_error: Overloaded (request-id req_1)"
    );
    assert_eq!(e.exit_kind(), ExitKind::RateLimited);
}

#[test]
fn header_request_id_wins_and_html_is_reduced_to_its_title() {
    let body = b"<html>\n<body>\t<h1>502 Bad Gateway</h1></body>\n</html>";
    let e = ApiError::from_body(Some(502), body, Some("req_h".into()));
    assert_eq!(
        e.to_string(),
        "HTTP 502: 502 Bad Gateway (request-id req_h)"
    );
    assert_eq!(e.exit_kind(), ExitKind::Api);
}

#[test]
fn html_pages_of_proxies_become_their_title_and_signature() {
    let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n";
    let e = ApiError::from_body(Some(502), nginx.as_bytes(), None);
    assert_eq!(e.to_string(), "HTTP 502: 502 Bad Gateway (cloudflare)");
    let apache = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>503 Service Unavailable</title>\n</head><body>\n<h1>Service Unavailable</h1>\n<p>The server is temporarily unable to service your\nrequest.</p>\n<hr>\n<address>Apache/2.4.41 (Ubuntu) Server at example.com Port 443</address>\n</body></html>\n";
    assert_eq!(
        ApiError::from_body(Some(503), apache.as_bytes(), None).message,
        "503 Service Unavailable (Apache/2.4.41 (Ubuntu) Server at example.com Port 443)"
    );
    // Cloudflare's branded page: a long document, a title with entities, scripts.
    let branded = "<!DOCTYPE html>\n<html lang=\"en-US\"><head><title>api.example.com | 524: A timeout occurred</title><script>var x = \"<b>\";</script><style>b{}</style></head><body><h1><span>A timeout occurred</span> <span>Error code 524</span></h1></body></html>";
    assert_eq!(
        ApiError::from_body(Some(524), branded.as_bytes(), None).message,
        "api.example.com | 524: A timeout occurred"
    );
    // No title: the first heading, as text, entities decoded, escapes defused.
    let heading = "<html><body><h2 class=\"x\">Too &amp; <i>many</i> &#60;requests&#x3E; \u{1b}[31m</h2></body></html>";
    assert_eq!(
        ApiError::from_body(Some(429), heading.as_bytes(), None).to_string(),
        "HTTP 429: Too & many <requests> [31m"
    );
    // Neither: the page's text.
    let bare = "<html><body><p>upstream connect error</p><script>alert(1)</script></body></html>";
    assert_eq!(
        snippet(bare.as_bytes()),
        "HTML page: upstream connect error"
    );
    // Not HTML: a snippet, as before.
    assert_eq!(
        ApiError::from_body(Some(502), b"Bad gateway\n", None).to_string(),
        "HTTP 502: unexpected response body: Bad gateway"
    );
    // Cut multi-byte text safely wherever the limits fall.
    let wide = format!(
        "<html><title>{}</title><hr>{}",
        "é".repeat(300),
        "😀".repeat(300)
    );
    let e = ApiError::from_body(Some(500), wide.as_bytes(), None);
    assert_eq!(e.message.chars().count(), 201);
}

#[test]
fn openai_shaped_and_ad_hoc_bodies() {
    let openai = br#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
    let e = ApiError::from_body(Some(404), openai, Some("req_o".into()));
    assert_eq!(
        e.to_string(),
        "HTTP 404 invalid_request_error: The model `x` does not exist (code model_not_found) (request-id req_o)"
    );
    // A placeholder type is no type; a code equal to the status says nothing new.
    for placeholder in [r#""None""#, "null", r#""""#, r#""  ""#, r#""undefined""#] {
        let body = format!(
            r#"{{"error":{{"message":"upstream failed","type":{placeholder},"code":500}}}}"#
        );
        let e = ApiError::from_body(Some(500), body.as_bytes(), None);
        assert_eq!(e.to_string(), "HTTP 500: upstream failed", "{placeholder}");
        assert_eq!(e.error_type, None);
    }
    let e = ApiError::from_body(
        Some(503),
        br#"{"error":true,"status":503,"message":"no healthy upstream"}"#,
        None,
    );
    assert_eq!(e.to_string(), "HTTP 503: no healthy upstream");
    let e = ApiError::from_body(Some(401), br#"{"error":"Invalid token"}"#, None);
    assert_eq!(e.to_string(), "HTTP 401: Invalid token");
    assert_eq!(e.exit_kind(), ExitKind::Auth);
    let e = ApiError::from_body(Some(422), br#"{"detail":"Field required"}"#, None);
    assert_eq!(e.to_string(), "HTTP 422: Field required");
    let e = ApiError::from_body(
        Some(400),
        br#"{"code":"bad_model","message":"no such model"}"#,
        None,
    );
    assert_eq!(e.to_string(), "HTTP 400: no such model (code bad_model)");
    // A type without a message still says what it can.
    let e = ApiError::from_body(Some(500), br#"{"error":{"type":"api_error"}}"#, None);
    assert_eq!(e.to_string(), "HTTP 500 api_error: no message");
    // JSON that says nothing: a snippet.
    let e = ApiError::from_body(Some(500), br#"{"ok":false}"#, None);
    assert_eq!(
        e.to_string(),
        r#"HTTP 500: unexpected response body: {"ok":false}"#
    );
    // OpenAI's codes decide the exit code when the type does not.
    let e = ApiError::from_body(
        Some(400),
        br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        None,
    );
    assert_eq!(e.exit_kind(), ExitKind::Api, "a documented type wins");
    let e = ApiError::from_body(
        Some(400),
        br#"{"error":{"message":"Incorrect API key","type":"None","code":"invalid_api_key"}}"#,
        None,
    );
    assert_eq!(e.exit_kind(), ExitKind::Auth);
}

#[test]
fn error_envelopes_inside_a_2xx_body() {
    let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_b"}"#;
    let e = ApiError::from_success_body(200, anthropic, None).unwrap();
    assert_eq!(
        e.to_string(),
        "HTTP 200 overloaded_error: Overloaded (request-id req_b)"
    );
    assert_eq!(
        (e.exit_kind(), e.retryable()),
        (ExitKind::RateLimited, true)
    );
    let openai = br#"{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#;
    let e = ApiError::from_success_body(200, openai, Some("req_h".into())).unwrap();
    assert_eq!(
        (e.exit_kind(), e.retryable()),
        (ExitKind::RateLimited, true)
    );
    let auth = br#"{"type":"error","error":{"type":"authentication_error","message":"bad key"}}"#;
    let e = ApiError::from_success_body(200, auth, None).unwrap();
    assert_eq!((e.exit_kind(), e.retryable()), (ExitKind::Auth, false));
    let bad = br#"{"type":"error","error":{"type":"invalid_request_error","message":"no"}}"#;
    let e = ApiError::from_success_body(200, bad, None).unwrap();
    assert_eq!((e.exit_kind(), e.retryable()), (ExitKind::Api, false));
    let odd = br#"{"error":{"message":"quota","type":"new_api_error"}}"#;
    let e = ApiError::from_success_body(200, odd, None).unwrap();
    assert_eq!((e.exit_kind(), e.retryable()), (ExitKind::Api, false));
    // Messages, and everything that is not an envelope, are not errors.
    for body in [
        &br#"{"id":"m","type":"message","content":[],"error":{"message":"x"}}"#[..],
        br#"{"error":true,"message":"x"}"#,
        br#"{"error":{"type":"x"}}"#,
        br#"[]"#,
        b"<html></html>",
        b"",
    ] {
        assert_eq!(ApiError::from_success_body(200, body, None), None);
    }
}

#[test]
fn error_types_map_like_their_statuses() {
    for (t, kind, retry) in [
        ("overloaded_error", ExitKind::RateLimited, true),
        ("rate_limit_error", ExitKind::RateLimited, true),
        ("authentication_error", ExitKind::Auth, false),
        ("permission_error", ExitKind::Auth, false),
        ("api_error", ExitKind::Api, true),
        ("timeout_error", ExitKind::Api, true),
        ("conflict_error", ExitKind::Api, true),
        ("invalid_request_error", ExitKind::Api, false),
        ("not_found_error", ExitKind::Api, false),
        ("billing_error", ExitKind::Api, false),
        ("request_too_large", ExitKind::Api, false),
        ("something_new", ExitKind::Api, false),
    ] {
        assert_eq!(type_policy(t), (kind, retry), "{t}");
    }
    // With an error status, the status decides retrying.
    let e = ApiError::from_body(
        Some(400),
        br#"{"error":{"type":"overloaded_error","message":"x"}}"#,
        None,
    );
    assert!(!e.retryable());
    assert!(ApiError::from_body(Some(503), b"", None).retryable());
    // An error event (no status) goes by its type.
    let e = ApiError::from_body(
        None,
        br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#,
        None,
    );
    assert!(e.retryable());
}

#[test]
fn server_strings_are_made_terminal_safe_and_bounded() {
    let hostile = "a\u{1b}]0;pwned\u{7}b\r\nc\u{9b}31m\u{202e}d\u{2066}e\u{2028}f\u{200f}g\u{7f}h";
    assert_eq!(
        sanitize(hostile),
        "a\u{fffd}]0;pwned\u{fffd}b  c\u{fffd}31m\u{fffd}d\u{fffd}e f\u{fffd}g\u{fffd}h"
    );
    let long = "é".repeat(5000);
    let cut = sanitize(&long);
    assert_eq!(cut.chars().count(), MAX_SERVER_TEXT + 1);
    assert!(cut.ends_with('…'));
    assert_eq!(sanitize("plain text, ünïcode 😀"), "plain text, ünïcode 😀");
    // Every field of an error is sanitized, the request-id header too.
    let body = format!(
        r#"{{"type":"error","error":{{"type":"x\u001b[2J","message":"{}\u001b[31mred\u202e"}},"request_id":"req\u0007"}}"#,
        "m".repeat(3000)
    );
    let e = ApiError::from_body(Some(500), body.as_bytes(), Some("req_\u{1b}[0m".into()));
    assert_eq!(e.error_type.as_deref(), Some("x\u{fffd}[2J"));
    assert_eq!(e.message.chars().count(), MAX_SERVER_TEXT + 1);
    assert_eq!(e.request_id.as_deref(), Some("req_\u{fffd}[0m"));
    let line = e.into_failure().message;
    assert!(!line.chars().any(is_unsafe_char), "{line}");
    let f = Failure::new(ExitKind::Network, "cut").with_request_id(Some("id\u{1b}\u{2029}"));
    assert_eq!(f.message, "cut (request-id id\u{fffd} )");
    // one_line: any message, one bounded line.
    let line = one_line(&format!("{}\u{202a}\n", "x".repeat(10_000)));
    assert_eq!(line.chars().count(), MAX_LINE_CHARS + 1);
    assert_eq!(one_line("a\u{2066}b\u{85}c\nd"), "a b c d");
}

#[test]
fn empty_body_and_exit_kinds() {
    let e = ApiError::from_body(Some(401), b"", None);
    assert_eq!(e.to_string(), "HTTP 401: empty response body");
    assert_eq!(e.exit_kind(), ExitKind::Auth);
    let e = ApiError::from_body(
        None,
        br#"{"error":{"type":"rate_limit_error","message":"slow"}}"#,
        None,
    );
    assert_eq!(e.exit_kind(), ExitKind::RateLimited);
    assert_eq!(
        e.to_string(),
        "error event in stream rate_limit_error: slow"
    );
}

#[test]
fn snippet_is_bounded() {
    let long = vec![b'x'; 10_000];
    assert_eq!(snippet(&long).chars().count(), 201);
}

#[test]
fn binary_bodies_are_shown_in_hex_not_as_replacement_characters() {
    let brotli = [
        0x8b_u8, 0x05, 0x80, 0xff, 0xfe, 0x01, 0x02, 0x9c, 0x00, 0xc3,
    ];
    assert_eq!(
        snippet(&brotli),
        "binary data, not text (starting 8b 05 80 ff fe 01 02 9c …)"
    );
    assert_eq!(
        snippet(&[0x00, 0xff]),
        "binary data, not text (starting 00 ff)"
    );
    // Text with one stray byte stays text.
    assert_eq!(
        snippet(b"Bad gateway: caf\xe9 closed"),
        "Bad gateway: caf\u{FFFD} closed"
    );
}
