//! A 2xx response to `POST /v1/messages` turned into the message: an event stream
//! driven through the parser, the accumulator and the writer (`stream.rs`), or a
//! whole JSON message (also when a gateway answers a streaming request with JSON).

use std::io::Write;

use serde_json::Value;
use ureq::Body;
use ureq::http::Response;

use crate::client::{self, CallInfo};
use crate::error::{ApiError, AttemptError, Failure, snippet};
use crate::output::{OutputMode, Writer};
use crate::stream;
use crate::unanswered::{compressed, compression_magic, empty_body, envelope_error, is_blank};

/// Non-streamed answers are read whole; this bounds a runaway body.
pub const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads one response into the message, printing it through `writer` as its mode
/// says. `keep_text`: the returned message must hold its text (to save it with `-c`,
/// or because it is printed whole at the end); otherwise a streamed answer's text is
/// printed and dropped, so memory stays flat however long it is.
pub fn receive<W: Write>(
    response: Response<Body>,
    info: &CallInfo,
    streaming: bool,
    keep_text: bool,
    writer: &mut Writer<W>,
    first_bytes: &mut dyn FnMut(),
) -> Result<Value, AttemptError> {
    let status = response.status().as_u16();
    let request_id = info.request_id.as_deref();
    // ureq decodes nothing here (its gzip and brotli features are off) and cs-msg asks
    // for no encoding: a compressed body would reach the parser as binary noise.
    if let Some(encoding) = client::header(response.headers(), "content-encoding")
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
    {
        return Err(Failure::malformed(compressed(&encoding, None))
            .with_request_id(request_id)
            .into());
    }
    let should_retry = client::header(response.headers(), "x-should-retry");
    let is_json = client::header(response.headers(), "content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    if streaming && !is_json {
        let mut body = response.into_body().into_reader();
        let message = stream::consume(
            &mut body,
            writer,
            status,
            request_id,
            // Without the request-id: `consume` names it last, after "the answer is
            // incomplete".
            |e| client::transport_failure(ureq::Error::from(e), &info.net.base_url, &info.net),
            first_bytes,
            keep_text || writer.mode().needs_whole_message(),
        )?;
        client::finish_body(&mut body, info.net.drain_bound);
        return Ok(message);
    }
    let bytes = client::read_capped(response, MAX_RESPONSE_BYTES, info)?;
    first_bytes();
    if is_blank(&bytes) {
        return Err(empty_body(status).with_request_id(request_id).into());
    }
    if let Some(magic) = compression_magic(&bytes) {
        return Err(Failure::malformed(compressed(magic, Some(magic)))
            .with_request_id(request_id)
            .into());
    }
    // A relay's error inside a 2xx: handled as the matching status would be.
    if let Some(api) = ApiError::from_success_body(status, &bytes, info.request_id.clone()) {
        return Err(envelope_error(api, should_retry.as_deref(), writer));
    }
    let message: Value = serde_json::from_slice(&bytes)
        .ok()
        .filter(|m: &Value| m.get("content").is_some_and(Value::is_array))
        .ok_or_else(|| {
            Failure::malformed(format!("expected a message object: {}", snippet(&bytes)))
                .with_request_id(request_id)
        })?;
    match writer.mode() {
        // Text mode prints thinking in its place among the blocks.
        OutputMode::Json | OutputMode::Schema => writer.thinking_of(&message),
        // Not a stream after all: the message is the only event there is.
        OutputMode::Events => writer.event_line(&message.to_string())?,
        OutputMode::Text | OutputMode::Collect => {}
    }
    if writer.mode() != OutputMode::Events {
        writer.message(&message)?;
    }
    writer.finish()?;
    Ok(message)
}
