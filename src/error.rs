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
}

impl Failure {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: one_line(&message.into()),
            api: None,
        }
    }

    /// Names the response's request-id, when known and not named already.
    pub fn with_request_id(self, request_id: Option<&str>) -> Self {
        match request_id {
            Some(id) if !self.message.contains("(request-id ") => {
                self.with_suffix(&format!(" (request-id {id})"))
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    /// HTTP status, when the error came as a status (not for mid-stream events).
    pub status: Option<u16>,
    /// `error.type` from the body, e.g. `overloaded_error`.
    pub error_type: Option<String>,
    /// `error.message`, or a sanitized snippet of a body that was not the API's JSON.
    pub message: String,
    pub request_id: Option<String>,
}

impl ApiError {
    /// Parses an error body. Anything that is not the API's JSON envelope (an HTML page
    /// from a proxy, an empty body) still yields a readable message.
    pub fn from_body(status: Option<u16>, body: &[u8], request_id: Option<String>) -> ApiError {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let error_type = error
            .and_then(|e| e.get("type"))
            .and_then(|t| t.as_str())
            .map(str::to_owned);
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned);
        let request_id = request_id.or_else(|| {
            parsed
                .as_ref()
                .and_then(|v| v.get("request_id"))
                .and_then(|r| r.as_str())
                .map(str::to_owned)
        });
        let message = match message {
            Some(m) => m,
            None if body.iter().all(|b| b.is_ascii_whitespace()) => "empty response body".into(),
            None => format!("unexpected response body: {}", snippet(body)),
        };
        ApiError {
            status,
            error_type,
            message,
            request_id,
        }
    }

    /// The exit code: by status first, then by the API's error type.
    pub fn exit_kind(&self) -> ExitKind {
        match self.status {
            Some(401 | 403) => return ExitKind::Auth,
            Some(429 | 529) => return ExitKind::RateLimited,
            _ => {}
        }
        match self.error_type.as_deref() {
            Some("authentication_error" | "permission_error") => ExitKind::Auth,
            Some("rate_limit_error" | "overloaded_error") => ExitKind::RateLimited,
            _ => ExitKind::Api,
        }
    }

    pub fn into_failure(self) -> Failure {
        Failure {
            api: Some(Box::new(self.clone())),
            ..Failure::new(self.exit_kind(), self.to_string())
        }
    }
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
        if let Some(id) = &self.request_id {
            write!(f, " (request-id {id})")?;
        }
        Ok(())
    }
}

/// At most 200 characters of a body, control characters and runs of white space
/// folded to single spaces, so an HTML page cannot flood or garble the terminal.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
        if out.chars().count() >= 200 {
            out.push('…');
            break;
        }
    }
    out.trim_end().to_owned()
}

/// Error messages are one line: newlines and control characters become spaces.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

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
    fn header_request_id_wins_and_html_is_sanitized() {
        let body = b"<html>\n<body>\t<h1>502 Bad Gateway</h1></body>\n</html>";
        let e = ApiError::from_body(Some(502), body, Some("req_h".into()));
        assert_eq!(
            e.to_string(),
            "HTTP 502: unexpected response body: <html> <body> <h1>502 Bad Gateway</h1></body> </html> (request-id req_h)"
        );
        assert_eq!(e.exit_kind(), ExitKind::Api);
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
}
