//! Error kinds and the exit code each one maps to (README "Exit codes"; docs/PROTOCOL.md, Errors).
//!
//! Everything below `main` returns `anyhow::Result`; a [`Failure`] anywhere in the
//! chain decides the exit code. Anything else is exit 1.

use std::fmt;

/// Declares [`ExitKind`] with [`ExitKind::ALL`] and [`ExitKind::describe`] from one
/// table, so that a new exit code is one line below. The exit-code tables of `-h`,
/// `--help`, the man page and the README are all rendered from it (src/help.rs).
macro_rules! exit_kinds {
    ($($name:ident = $code:literal: $text:literal,)+) => {
        /// The documented exit codes. The numbers are a public contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ExitKind {
            $(#[doc = $text] $name = $code,)+
        }

        impl ExitKind {
            /// Every kind, in the order the exit-code tables list them.
            pub const ALL: &'static [ExitKind] = &[$(ExitKind::$name),+];

            /// What the code means, as a table row says it: lower case, no final
            /// period, `code` in backticks.
            pub fn describe(self) -> &'static str {
                match self {
                    $(ExitKind::$name => $text,)+
                }
            }
        }
    };
}

// Success (0) and death by SIGTERM or SIGHUP are rows of the tables too, but no error
// produces them; src/help.rs adds them around these.
exit_kinds! {
    Api = 1: "the API returned an error not listed below (also inside a 2xx body, or as an `error` event mid-stream), or the response was malformed",
    Usage = 2: "usage or input error: bad flag, unreadable or invalid file, invalid JSON input, nothing to send, insecure URL",
    Auth = 3: "authentication: no key, HTTP 401 or 403",
    RateLimited = 4: "rate limited or overloaded, still after retries (429, 529, `overloaded_error` or `rate_limit_error`, also as a mid-stream `error` event)",
    Network = 5: "network: connect/DNS/TLS failure, timeout, dropped connection, a body that could not be read, or a stream that ended without `message_stop`",
    Unusable = 6: "unusable answer: `--strict` and an incomplete stop reason, or `--schema` output that does not validate",
    ToolsPending = 7: "the tool loop stopped with tool calls pending: `--max-turns` reached, or the model called a tool that has no executor while executors were given (the pending calls are printed as `tool_use` lines)",
    Interrupted = 130: "interrupted by SIGINT (Ctrl-C): what reached stdout stays, temporary files are removed, and the signal is re-raised so that a calling shell loop stops too",
}

impl ExitKind {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error whose exit code is known. The message is already one line.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ExitKind,
    pub message: String,
    /// The API's own account of the error, when it came from the API (batch mode
    /// reports its fields separately).
    pub api: Option<Box<ApiError>>,
    /// One more line, printed after the message: what to do about it.
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: one_line(&message.into()),
            api: None,
            hint: None,
        }
    }

    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        Failure {
            hint: Some(one_line(&hint.into())),
            ..self
        }
    }

    /// Names the response's request-id, when known and not named already.
    pub fn with_request_id(self, request_id: Option<&str>) -> Self {
        match request_id {
            Some(id) if !self.message.contains("(request-id ") => {
                self.with_suffix(&format!(" (request-id {})", sanitize(id)))
            }
            _ => self,
        }
    }

    /// The same failure with more said at the end of its message.
    pub fn with_suffix(self, suffix: &str) -> Self {
        Failure {
            message: one_line(&format!("{}{suffix}", self.message)),
            ..self
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// A response that is not what the API sends (exit 1).
    pub fn malformed(what: impl fmt::Display) -> Failure {
        Failure::new(ExitKind::Api, format!("malformed response: {what}"))
    }

    /// The failure that decides the exit code of `e`, whatever wraps it; anything
    /// unclassified is exit 1.
    pub fn of(e: &anyhow::Error) -> Failure {
        match e.chain().find_map(|c| c.downcast_ref::<Failure>()) {
            Some(f) => f.clone(),
            None => Failure::new(ExitKind::Api, format!("{e:#}")),
        }
    }
}

/// What the handler of one 2xx response says when it could not finish it.
#[derive(Debug)]
pub enum AttemptError {
    /// Transient, and nothing reached stdout yet: another attempt is safe.
    Retry(Failure),
    Fatal(anyhow::Error),
}

impl From<Failure> for AttemptError {
    fn from(f: Failure) -> Self {
        AttemptError::Fatal(f.into())
    }
}

impl From<anyhow::Error> for AttemptError {
    fn from(e: anyhow::Error) -> Self {
        AttemptError::Fatal(e)
    }
}

/// Writing the answer failed (stdout closed, a full disk): nothing to retry. A failed
/// read of the response is never converted this way; it is a network failure
/// (`client::read_capped`, `stream::consume`).
impl From<std::io::Error> for AttemptError {
    fn from(e: std::io::Error) -> Self {
        AttemptError::Fatal(e.into())
    }
}

/// A usage or input error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure::new(ExitKind::Usage, message).into()
}

/// An error reported by the API, over HTTP or as an `error` event inside a stream.
/// Every field that came from the server is already [`sanitize`]d.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    /// HTTP status, when the error came as a status (not for mid-stream events).
    pub status: Option<u16>,
    /// `error.type` from the body, e.g. `overloaded_error`; never a placeholder such
    /// as `"None"` or an empty string.
    pub error_type: Option<String>,
    /// `error.message`, or a sanitized snippet of a body that was not the API's JSON.
    pub message: String,
    pub request_id: Option<String>,
    /// `error.code` of an OpenAI-shaped body (`"model_not_found"`, `429`), when it says
    /// more than the status and the type.
    pub code: Option<String>,
}

impl ApiError {
    /// Parses an error body. Besides the API's envelope it reads the shapes relays
    /// send: OpenAI's `{"error":{"message","type","code"}}`, `{"error":"text"}`,
    /// `{"error":true,"status":N,"message":"…"}`, `{"detail":"…"}`. An HTML page
    /// from a proxy is reduced to its title; anything else (an empty body, plain
    /// text) still yields a readable message.
    pub fn from_body(status: Option<u16>, body: &[u8], request_id: Option<String>) -> ApiError {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let fields = parsed.as_ref().map(body_fields).unwrap_or_default();
        let request_id = request_id
            .or(fields.request_id)
            .map(|r| sanitize(&r))
            .filter(|r| !r.trim().is_empty());
        let error_type = fields.error_type.map(|t| sanitize(&t));
        let code = fields.code.map(|c| sanitize(&c)).filter(|c| {
            Some(c) != error_type.as_ref() && Some(c.as_str()) != status_text(status).as_deref()
        });
        let message = match fields.message {
            Some(m) => sanitize(&m),
            None if error_type.is_some() || code.is_some() => "no message".into(),
            None if body.iter().all(|b| b.is_ascii_whitespace()) => "empty response body".into(),
            None if looks_like_html(body) => snippet(body),
            None => format!("unexpected response body: {}", snippet(body)),
        };
        ApiError {
            status,
            error_type,
            message,
            request_id,
            code,
        }
    }

    /// An error envelope inside a 2xx JSON body, as some relays send instead of an
    /// error status: Anthropic's `{"type":"error","error":{…}}` or OpenAI's
    /// `{"error":{"message":…}}`. `None` for anything else (a message, a body that
    /// is not JSON). The error keeps the 2xx `status` (the line then says what was
    /// received); its exit code and retryability come from its type, as the
    /// matching status would give them ([`ApiError::exit_kind`], [`ApiError::retryable`]).
    pub fn from_success_body(
        status: u16,
        body: &[u8],
        request_id: Option<String>,
    ) -> Option<ApiError> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let object = value.as_object()?;
        let error = object.get("error").and_then(serde_json::Value::as_object);
        let anthropic = object.get("type").and_then(serde_json::Value::as_str) == Some("error")
            && error.is_some();
        // OpenAI-shaped: an error object with a message, and nothing of a message.
        let openai = error.is_some_and(|e| e.get("message").is_some_and(|m| m.is_string()))
            && !object.contains_key("content");
        (anthropic || openai).then(|| ApiError::from_body(Some(status), body, request_id))
    }

    /// The exit code: by status first, then by the API's error type (or code).
    pub fn exit_kind(&self) -> ExitKind {
        match self.status {
            Some(401 | 403) => return ExitKind::Auth,
            Some(429 | 529) => return ExitKind::RateLimited,
            _ => {}
        }
        if let Some(t) = &self.error_type
            && status_for_type(t).is_some()
        {
            return type_policy(t).0;
        }
        match self.code.as_deref() {
            Some("invalid_api_key") => ExitKind::Auth,
            Some("rate_limit_exceeded") => ExitKind::RateLimited,
            _ => ExitKind::Api,
        }
    }

    /// Whether another attempt may help: by an error status (408, 409, 429, 5xx), else
    /// (an error inside a 2xx, an `error` event) by the type, as its status would.
    /// A caller still honours `x-should-retry` first.
    pub fn retryable(&self) -> bool {
        match self.status {
            Some(status) if status >= 400 => status_is_retryable(status),
            _ => self.error_type.as_deref().is_some_and(|t| type_policy(t).1),
        }
    }

    pub fn into_failure(self) -> Failure {
        Failure {
            api: Some(Box::new(self.clone())),
            ..Failure::new(self.exit_kind(), self.to_string())
        }
    }
}

/// The status that goes with an `error.type` (docs/PROTOCOL.md, Errors); `None` for a type the
/// API does not document.
pub fn status_for_type(error_type: &str) -> Option<u16> {
    Some(match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "conflict_error" => 409,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => return None,
    })
}

/// The exit code and retryability an error type has when it arrives without its
/// status (inside a 2xx body or a stream): those of the status it goes with.
/// `overloaded_error` and `rate_limit_error` are retried, then exit 4; the auth
/// types exit 3; everything else exits 1, and an unknown type is not retried.
pub fn type_policy(error_type: &str) -> (ExitKind, bool) {
    let kind = match error_type {
        "authentication_error" | "permission_error" => ExitKind::Auth,
        "rate_limit_error" | "overloaded_error" => ExitKind::RateLimited,
        _ => ExitKind::Api,
    };
    let retryable = status_for_type(error_type).is_some_and(status_is_retryable);
    (kind, retryable)
}

/// The statuses the SDKs retry (docs/PROTOCOL.md, Retries).
fn status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

fn status_text(status: Option<u16>) -> Option<String> {
    status.map(|s| s.to_string())
}

/// What an error body says, whatever its shape.
#[derive(Default)]
struct BodyFields {
    error_type: Option<String>,
    message: Option<String>,
    code: Option<String>,
    request_id: Option<String>,
}

fn body_fields(v: &serde_json::Value) -> BodyFields {
    use serde_json::Value;
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    // `"None"` (a Python relay printing a missing value), `"null"` and "" say nothing.
    let real_type = |t: String| {
        let lower = t.trim().to_ascii_lowercase();
        (!matches!(lower.as_str(), "" | "none" | "null" | "undefined")).then_some(t)
    };
    let error = v.get("error");
    let mut fields = BodyFields {
        request_id: text(v.get("request_id")),
        ..BodyFields::default()
    };
    match error {
        Some(Value::Object(e)) => {
            fields.error_type = text(e.get("type")).and_then(real_type);
            fields.message = text(e.get("message"));
            fields.code = text(e.get("code"));
        }
        Some(Value::String(s)) if !s.trim().is_empty() => fields.message = Some(s.clone()),
        _ => {}
    }
    if fields.message.is_none() {
        fields.message = text(v.get("message")).or_else(|| text(v.get("detail")));
        if fields.code.is_none() && !matches!(error, Some(Value::Object(_))) {
            fields.code = text(v.get("code"));
        }
    }
    fields
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status}")?,
            None => f.write_str("error event in stream")?,
        }
        if let Some(t) = &self.error_type {
            write!(f, " {t}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(code) = &self.code {
            write!(f, " (code {code})")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request-id {id})")?;
        }
        Ok(())
    }
}

mod text;
use text::looks_like_html;
pub use text::{MAX_LINE_CHARS, MAX_SERVER_TEXT, is_unsafe_char, one_line, sanitize, snippet};

#[cfg(test)]
mod tests {
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
        let bare =
            "<html><body><p>upstream connect error</p><script>alert(1)</script></body></html>";
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
        let auth =
            br#"{"type":"error","error":{"type":"authentication_error","message":"bad key"}}"#;
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
        let hostile =
            "a\u{1b}]0;pwned\u{7}b\r\nc\u{9b}31m\u{202e}d\u{2066}e\u{2028}f\u{200f}g\u{7f}h";
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
}
