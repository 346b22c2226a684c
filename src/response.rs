//! A 2xx response to `POST /v1/messages` turned into the message: an event stream
//! driven through the parser, the accumulator and the writer (`stream.rs`), or a
//! whole JSON message (also when a gateway answers a streaming request with JSON).

use std::io::Write;

use serde_json::Value;
use ureq::Body;
use ureq::http::Response;

use crate::client::{self, CallInfo};
use crate::error::{AttemptError, Failure, snippet};
use crate::output::{OutputMode, Writer};
use crate::stream;

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
    let is_json = client::header(response.headers(), "content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    let request_id = info.request_id.as_deref();
    if streaming && !is_json {
        return stream::consume(
            response.into_body().into_reader(),
            writer,
            request_id,
            |e| info.read_failure(e),
            first_bytes,
            keep_text || writer.mode().needs_whole_message(),
        );
    }
    let bytes = client::read_capped(response, MAX_RESPONSE_BYTES, info)?;
    first_bytes();
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
