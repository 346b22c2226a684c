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
mod tests;
