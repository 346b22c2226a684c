//! The one call path: a request body sent to `POST /v1/messages`, retried as the
//! client decides, received into the message. A single call, every batch line and
//! every tool-loop turn go through [`send`]; what is checked afterwards is
//! `answer.rs`.

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use crate::client::Client;
use crate::error::{ExitKind, Failure, sanitize};
use crate::output::{self, Writer};
use crate::{request, response};

/// Sends `body` and returns the answer, printed through `writer` as it arrives.
/// `keep_text`: the message returned must hold its text (see `response::receive`).
/// `first_bytes` runs when the answer begins (a spinner stops, a waiting batch goes on).
///
/// With `--fallback-model`, a call that still fails after its retries because the
/// model is overloaded or rate limited, or not found, is sent once more with the
/// fallback model, provided nothing reached stdout: one line on stderr says so. The
/// second call has the usual retries; there is no fallback from the fallback.
pub fn send<W: Write>(
    client: &Client,
    body: &Value,
    writer: &mut Writer<W>,
    keep_text: bool,
    first_bytes: &mut dyn FnMut(),
) -> Result<Value> {
    let error = match attempt(client, body, writer, keep_text, first_bytes) {
        Ok(message) => return Ok(message),
        Err(e) => e,
    };
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let fallback = match client.fallback_model() {
        Some(f) if f != model && !writer.wrote_anything() => f,
        _ => return Err(error),
    };
    let Some(why) = fallback_reason(&Failure::of(&error)) else {
        return Err(error);
    };
    output::note(&format!(
        "{} {why}; answering with {}",
        sanitize(model),
        sanitize(fallback)
    ));
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        object.insert("model".into(), fallback.into());
    }
    attempt(client, &body, writer, keep_text, first_bytes)
}

fn attempt<W: Write>(
    client: &Client,
    body: &Value,
    writer: &mut Writer<W>,
    keep_text: bool,
    first_bytes: &mut dyn FnMut(),
) -> Result<Value> {
    let bytes = request::to_bytes(body)?;
    let streaming = request::is_streaming(body);
    client.post("/v1/messages", &bytes, streaming, |resp, info| {
        response::receive(resp, info, streaming, keep_text, writer, first_bytes)
    })
}

/// Why another model should answer instead, as the stderr line says it: an
/// overload or a rate limit that outlasted the retries (exit 4), or a model the
/// gateway does not know (a `not_found_error`, with 404 or inside a 2xx body). A 404
/// without that type (a wrong base URL's page) is no reason: any model would get it.
fn fallback_reason(failure: &Failure) -> Option<&'static str> {
    let api = failure.api.as_deref();
    let error_type = api.and_then(|a| a.error_type.as_deref());
    if failure.kind == ExitKind::RateLimited {
        let overloaded =
            error_type == Some("overloaded_error") || api.and_then(|a| a.status) == Some(529);
        return Some(if overloaded {
            "overloaded"
        } else {
            "rate limited"
        });
    }
    (error_type == Some("not_found_error")).then_some("not found")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    #[test]
    fn fallback_reasons() {
        let reason = |status: Option<u16>, body: &str| {
            fallback_reason(&ApiError::from_body(status, body.as_bytes(), None).into_failure())
        };
        let envelope =
            |t: &str| format!(r#"{{"type":"error","error":{{"type":"{t}","message":"m"}}}}"#);
        assert_eq!(
            reason(Some(529), &envelope("overloaded_error")),
            Some("overloaded")
        );
        assert_eq!(reason(Some(529), ""), Some("overloaded"));
        assert_eq!(
            reason(None, &envelope("overloaded_error")),
            Some("overloaded")
        );
        assert_eq!(
            reason(Some(429), &envelope("rate_limit_error")),
            Some("rate limited")
        );
        assert_eq!(
            reason(Some(200), &envelope("rate_limit_error")),
            Some("rate limited")
        );
        assert_eq!(
            reason(Some(404), &envelope("not_found_error")),
            Some("not found")
        );
        assert_eq!(
            reason(Some(200), &envelope("not_found_error")),
            Some("not found")
        );
        assert_eq!(
            reason(Some(404), "<html><title>404 Not Found</title></html>"),
            None
        );
        assert_eq!(reason(Some(500), &envelope("api_error")), None);
        assert_eq!(reason(Some(401), &envelope("authentication_error")), None);
        // A network failure has no API error at all.
        assert_eq!(fallback_reason(&Failure::new(ExitKind::Network, "x")), None);
    }
}
