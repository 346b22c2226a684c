//! Drives one response body through the SSE parser, the accumulator and the writer.

use std::io::{Read, Write};

use serde_json::Value;

use crate::error::{ApiError, AttemptError};
use crate::error::{ExitKind, Failure, snippet};
use crate::message::{Accumulator, Update};
use crate::output::OutputMode;
use crate::output::Writer;
use crate::sse::{MAX_EVENT_BYTES, SseEvent, SseParser, TooLarge};
use crate::unanswered::{compressed, compression_magic, empty_body, envelope_error, is_blank};

/// Reads a streamed response to its `message_stop` and returns the final message.
/// Output is written as events arrive and flushed whenever every byte received so far
/// has been handled, just before the next (possibly blocking) read.
///
/// `status` is the response's (2xx) status, for the failures that name it.
/// `read_error` describes a failed read (a timeout, a reset connection).
/// `first_bytes` runs once, when the first bytes of the body arrive. Every failure
/// names the response's `request_id`, and text already printed ends its line first,
/// so the error line that follows starts a line of its own.
/// Without `keep_text`, the returned message's text and thinking blocks stay empty:
/// for a caller that printed them as they came, memory then stays flat however long
/// the answer (see [`Accumulator::without_text`]).
pub fn consume<R: Read, W: Write>(
    body: R,
    writer: &mut Writer<W>,
    status: u16,
    request_id: Option<&str>,
    read_error: impl Fn(std::io::Error) -> Failure,
    first_bytes: impl FnMut(),
    keep_text: bool,
) -> Result<Value, AttemptError> {
    let result = consume_body(body, writer, status, read_error, first_bytes, keep_text);
    if result.is_err() {
        // Whichever way the stream failed (a read error, a truncation, an error
        // event, malformed data), partial text ends with a newline before the error
        // line; thinking on stderr too. Idempotent: nothing is added at a line start.
        let _ = writer.finish();
    }
    result.map_err(|e| match e {
        AttemptError::Retry(f) => AttemptError::Retry(f.with_request_id(request_id)),
        AttemptError::Fatal(e) => match e.downcast::<Failure>() {
            Ok(f) => AttemptError::Fatal(f.with_request_id(request_id).into()),
            Err(other) => AttemptError::Fatal(other),
        },
    })
}

fn consume_body<R: Read, W: Write>(
    mut body: R,
    writer: &mut Writer<W>,
    status: u16,
    read_error: impl Fn(std::io::Error) -> Failure,
    mut first_bytes: impl FnMut(),
    keep_text: bool,
) -> Result<Value, AttemptError> {
    let mut parser = SseParser::new();
    let mut acc = if keep_text {
        Accumulator::new()
    } else {
        Accumulator::without_text()
    };
    let mut events = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // The first bytes, kept while no event has come: to describe a body that turns
    // out not to be a stream, or to read the error envelope a relay sent instead.
    let mut head = Vec::new();
    let mut received = 0usize;
    let mut seen_event = false;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                writer.flush()?;
                return Err(failed_read(read_error(e), writer));
            }
        };
        if received == 0 {
            first_bytes();
            // Compressed though no encoding was asked for: say so, instead of a line
            // of replacement characters.
            if let Some(magic) = compression_magic(&buf[..n]) {
                return Err(Failure::malformed(compressed(magic, Some(magic))).into());
            }
        }
        received += n;
        if !seen_event && head.len() < MAX_HEAD {
            head.extend_from_slice(&buf[..n.min(MAX_HEAD - head.len())]);
        }
        // Exit 1, not 5: the server sent something no API stream is (the bytes
        // arrived; nothing was cut), and a retry would get the same.
        parser.feed(&buf[..n], &mut events).map_err(|e| {
            let _ = writer.finish();
            let mib = MAX_EVENT_BYTES >> 20;
            Failure::new(
                ExitKind::Api,
                match e {
                    TooLarge::Line => {
                        format!("malformed response: an event-stream line longer than {mib} MiB")
                    }
                    TooLarge::Event => format!(
                        "malformed response: an event-stream event larger than {mib} MiB (data lines without a blank line)"
                    ),
                },
            )
        })?;
        for event in events.drain(..) {
            seen_event = true;
            // After message_stop nothing counts, in the same read or later: not an
            // error event a relay appends, not even for --events.
            if acc.is_complete() {
                break;
            }
            handle(event, &mut acc, writer, status)?;
        }
        writer.flush()?;
        if acc.is_complete() {
            return finish(acc, writer);
        }
    }
    if let Some(event) = parser.finish() {
        seen_event = true;
        // The last event had no terminating blank line. Data that does not parse means
        // the connection was cut mid-event: report the truncation, not the JSON. A
        // complete event (an `error`, say) is handled like any other.
        let is_json = serde_json::from_str::<serde::de::IgnoredAny>(&event.data).is_ok();
        if !is_json && event.data.trim() != "[DONE]" {
            return Err(truncated(&acc, writer).into());
        }
        handle(event, &mut acc, writer, status)?;
    }
    writer.flush()?;
    if acc.is_complete() {
        return finish(acc, writer);
    }
    if !seen_event && is_blank(&head) && received <= MAX_HEAD {
        return Err(empty_body(status).into());
    }
    // A relay answered the stream with a bare error envelope (JSON, not an event).
    if !seen_event && let Some(api) = ApiError::from_success_body(status, &head, None) {
        return Err(envelope_error(api, None, writer));
    }
    if !seen_event && !head.is_empty() {
        return Err(Failure::new(
            ExitKind::Api,
            format!(
                "malformed response: not an event stream: {}",
                snippet(&head[..head.len().min(256)])
            ),
        )
        .into());
    }
    Err(truncated(&acc, writer).into())
}

/// How much of a body is kept while no event has come (see `head` above): enough for
/// any error envelope.
const MAX_HEAD: usize = 64 * 1024;

fn handle<W: Write>(
    event: SseEvent,
    acc: &mut Accumulator,
    writer: &mut Writer<W>,
    status: u16,
) -> Result<(), AttemptError> {
    let update = acc
        .apply(event.name.as_deref(), &event.data)
        .map_err(|m| Failure::new(ExitKind::Api, format!("malformed response: {}", m.0)))?;
    // Before the answer began, an unnamed event whose data is an error envelope the
    // accumulator does not know (OpenAI's `{"error":{…}}`) is that error, as if the
    // relay had sent it with its status. (`{"type":"error",…}` is an error event.)
    if matches!(update, Update::Nothing)
        && acc.message().is_none()
        && event.name.is_none()
        && let Some(api) = ApiError::from_success_body(status, event.data.as_bytes(), None)
    {
        return Err(envelope_error(api, None, writer));
    }
    // --events: every event the accumulator took (an event it refused is reported
    // as malformed instead), except the OpenAI-style end markers.
    let end_marker = event.data.trim() == "[DONE]" || event.name.as_deref() == Some("done");
    if writer.mode() == OutputMode::Events && !end_marker {
        writer.event_line(&event.data)?;
    }
    match update {
        Update::Error(api) => {
            // An overload before any output is safe to retry; after output, a retry
            // would duplicate text.
            let overloaded = api.error_type.as_deref() == Some("overloaded_error");
            writer.flush()?;
            let failure = api.into_failure();
            if overloaded && !writer.wrote_anything() {
                return Err(AttemptError::Retry(failure));
            }
            writer.finish()?;
            return Err(AttemptError::Fatal(failure.into()));
        }
        // Thinking goes to stderr (with --show-thinking) whatever stdout carries.
        Update::ThinkingDelta(_, text) => writer.thinking(&text),
        Update::BlockStop(index)
            if acc.block(index).and_then(|b| b.get("type")) == Some(&Value::from("thinking")) =>
        {
            writer.close_thinking()
        }
        _ if writer.mode() != OutputMode::Text => {}
        Update::TextDelta(_, text) => writer.text(&text)?,
        Update::BlockStop(index) => {
            if let Some(block) = acc.block(index)
                && block.get("type").and_then(Value::as_str) == Some("tool_use")
            {
                writer.tool_use(block)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn finish<W: Write>(acc: Accumulator, writer: &mut Writer<W>) -> Result<Value, AttemptError> {
    let message = acc
        .into_message()
        .ok_or_else(|| Failure::new(ExitKind::Api, "malformed response: no message_start"))?;
    if writer.mode() == OutputMode::Json {
        writer.message(&message)?;
    }
    writer.finish()?;
    Ok(message)
}

fn truncated<W: Write>(acc: &Accumulator, writer: &mut Writer<W>) -> Failure {
    let _ = writer.finish();
    let what = if acc.message().is_some() {
        "the stream ended before message_stop; the answer is incomplete"
    } else {
        "the stream ended before it started (no message_start)"
    };
    Failure::new(ExitKind::Network, what)
}

/// A read failed mid-stream. Before any output it may be retried like any network error.
fn failed_read<W: Write>(failure: Failure, writer: &mut Writer<W>) -> AttemptError {
    if writer.wrote_anything() {
        let _ = writer.finish();
        AttemptError::Fatal(
            Failure::new(failure.kind, format!("{failure}; the answer is incomplete")).into(),
        )
    } else {
        AttemptError::Retry(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &[u8], mode: OutputMode) -> (Result<Value, AttemptError>, String) {
        run_keeping(body, mode, true)
    }

    fn run_keeping(
        body: &[u8],
        mode: OutputMode,
        keep_text: bool,
    ) -> (Result<Value, AttemptError>, String) {
        let mut writer = Writer::new(Vec::new(), mode, false);
        let result = consume(
            body,
            &mut writer,
            200,
            Some("req_t"),
            |e| Failure::new(ExitKind::Network, e.to_string()),
            || {},
            keep_text,
        );
        (result, String::from_utf8(writer.into_inner()).unwrap())
    }

    #[test]
    fn dropping_text_changes_no_output_and_keeps_stop_and_usage() {
        for body in [
            &include_bytes!("../tests/fixtures/text.sse")[..],
            include_bytes!("../tests/fixtures/thinking.sse"),
            include_bytes!("../tests/fixtures/tool_use.sse"),
        ] {
            for mode in [OutputMode::Text, OutputMode::Events] {
                let (kept, kept_out) = run_keeping(body, mode, true);
                let (lean, lean_out) = run_keeping(body, mode, false);
                assert_eq!(kept_out, lean_out);
                let (Ok(kept), Ok(lean)) = (kept, lean) else {
                    panic!("both streams are complete");
                };
                for key in ["stop_reason", "stop_sequence", "usage", "id", "model"] {
                    assert_eq!(kept.get(key), lean.get(key), "{key}");
                }
            }
        }
    }

    #[test]
    fn text_mode_prints_text_and_tool_calls() {
        let (result, out) = run(
            include_bytes!("../tests/fixtures/tool_use.sse"),
            OutputMode::Text,
        );
        assert!(result.is_ok());
        assert_eq!(
            out,
            "I'll check the current weather in Paris for you.\n{\"type\":\"tool_use\",\"id\":\"toolu_01NRLabsLyVHZPKxbKvkfSMn\",\"name\":\"get_weather\",\"input\":{\"location\":\"Paris\"}}\n"
        );
    }

    #[test]
    fn truncated_stream_is_a_network_failure() {
        let full = include_str!("../tests/fixtures/text.sse");
        let cut = &full[..full.find("event: message_delta").unwrap()];
        let (result, out) = run(cut.as_bytes(), OutputMode::Text);
        match result {
            Err(AttemptError::Fatal(e)) => {
                let f = e.downcast_ref::<Failure>().unwrap();
                assert_eq!(f.kind, ExitKind::Network);
            }
            _ => panic!("expected a failure"),
        }
        assert_eq!(
            out,
            "Hello there! SSE is a one-way stream of events over HTTP.\n"
        );
    }

    /// A body that yields `chunks` one read at a time, then fails as a stalled
    /// connection would: a stream that is not done by then fails.
    struct Reads(Vec<Vec<u8>>);

    impl Read for Reads {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("stalled"));
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    fn run_reads(chunks: &[&str], mode: OutputMode) -> (Result<Value, AttemptError>, String) {
        let mut writer = Writer::new(Vec::new(), mode, false);
        let body = Reads(chunks.iter().map(|c| c.as_bytes().to_vec()).collect());
        let result = consume(
            body,
            &mut writer,
            200,
            Some("req_t"),
            |e| Failure::new(ExitKind::Network, e.to_string()),
            || {},
            true,
        );
        (result, String::from_utf8(writer.into_inner()).unwrap())
    }

    fn failure_of(result: Result<Value, AttemptError>) -> (ExitKind, String) {
        match result {
            Err(AttemptError::Fatal(e)) => {
                let f = e.downcast_ref::<Failure>().unwrap();
                (f.kind, f.message.clone())
            }
            Err(AttemptError::Retry(f)) => (f.kind, f.message),
            Ok(_) => panic!("expected a failure"),
        }
    }

    const BEGIN: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[]}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    const STOP_REASON: &str = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n";
    const STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    const LATE_ERROR: &str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"late\"}}\n\n";

    #[test]
    fn done_after_a_stop_reason_is_a_complete_answer() {
        for done in [
            "data: [DONE]\n\n",
            "event: done\ndata: [DONE]\n\n",
            "event: done\ndata: {}\n\n",
        ] {
            // The socket stays open after [DONE]: the answer is not held up by it.
            let (result, out) = run_reads(&[BEGIN, STOP_REASON, done], OutputMode::Json);
            let message = result.unwrap_or_else(|_| panic!("{done}"));
            assert_eq!(message["stop_reason"], "end_turn");
            assert_eq!(
                out,
                "{\"id\":\"m\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],\"stop_reason\":\"end_turn\"}\n"
            );
            let (result, out) = run_reads(&[BEGIN, STOP_REASON, done], OutputMode::Text);
            assert!(result.is_ok());
            assert_eq!(out, "hi\n");
        }
        // Without a stop reason, [DONE] and then the end is a truncated answer (exit 5).
        let (result, out) = run(
            format!("{BEGIN}data: [DONE]\n\n").as_bytes(),
            OutputMode::Text,
        );
        assert_eq!(
            failure_of(result),
            (
                ExitKind::Network,
                "the stream ended before message_stop; the answer is incomplete (request-id req_t)"
                    .into()
            )
        );
        assert_eq!(out, "hi\n");
    }

    #[test]
    fn an_error_after_message_stop_does_not_fail_the_answer() {
        // In the same read as message_stop, and in a later one (never read).
        let whole = format!("{BEGIN}{STOP_REASON}{STOP}{LATE_ERROR}");
        for chunks in [
            vec![whole.as_str()],
            vec![BEGIN, STOP_REASON, STOP, LATE_ERROR],
        ] {
            for mode in [OutputMode::Text, OutputMode::Json, OutputMode::Events] {
                let (result, out) = run_reads(&chunks, mode);
                assert!(result.is_ok(), "{mode:?}");
                assert!(!out.contains("late"), "{out}");
            }
        }
        // The same error before message_stop still fails.
        let (result, _) = run(
            format!("{BEGIN}{LATE_ERROR}{STOP}").as_bytes(),
            OutputMode::Text,
        );
        assert_eq!(failure_of(result).0, ExitKind::RateLimited);
    }

    #[test]
    fn events_mode_writes_only_json_lines() {
        let body = format!(
            "{BEGIN}event: relay_note\ndata: OK \u{1b}[2J\n\n{STOP_REASON}data: [DONE]\n\n"
        );
        let (result, out) = run(body.as_bytes(), OutputMode::Events);
        assert!(result.is_ok());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6);
        for line in &lines {
            serde_json::from_str::<Value>(line).unwrap();
        }
        assert_eq!(lines[4], "\"OK \\u001b[2J\"");
        // A known event that is not JSON is not printed: it is malformed.
        let body = format!("{BEGIN}event: message_delta\ndata: oops\n\n");
        let (result, out) = run(body.as_bytes(), OutputMode::Events);
        assert_eq!(failure_of(result).0, ExitKind::Api);
        assert!(!out.contains("oops"));
    }

    #[test]
    fn endless_data_lines_are_refused_in_one_line() {
        // Short data lines without a blank line, more than the cap: refused when the
        // event's lines add up, long before memory could run out.
        struct Endless(usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                assert!(self.0 < 2 * MAX_EVENT_BYTES, "read on past the cap");
                for chunk in buf.chunks_mut(8) {
                    chunk.copy_from_slice(&b"data: x\n"[..chunk.len()]);
                }
                Ok(buf.len() - buf.len() % 8)
            }
        }
        let mut writer = Writer::new(Vec::new(), OutputMode::Text, false);
        let result = consume(
            Endless(0),
            &mut writer,
            200,
            None,
            |e| Failure::new(ExitKind::Network, e.to_string()),
            || {},
            false,
        );
        assert_eq!(
            failure_of(result),
            (
                ExitKind::Api,
                "malformed response: an event-stream event larger than 32 MiB (data lines without a blank line)".into()
            )
        );
    }

    #[test]
    fn html_body_is_malformed() {
        let (result, _) = run(b"<html>oops</html>", OutputMode::Text);
        match result {
            Err(AttemptError::Fatal(e)) => assert_eq!(
                e.to_string(),
                "malformed response: not an event stream: HTML page: oops (request-id req_t)"
            ),
            _ => panic!("expected a failure"),
        }
    }
}
