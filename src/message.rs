//! Stream events → the final message, exactly as the SDKs accumulate it (API.md §4.4):
//! blocks addressed by index, tool input JSON joined and parsed at `content_block_stop`,
//! `message_delta` fields overwriting, never adding. Pure: no I/O here.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// What an event changed, for the writers that print as the stream goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// `ping`, unknown events, `[DONE]`: nothing to do.
    Nothing,
    MessageStart,
    BlockStart(usize),
    TextDelta(usize, String),
    ThinkingDelta(usize, String),
    BlockStop(usize),
    MessageDelta,
    MessageStop,
    /// An `error` event.
    Error(ApiError),
}

/// The stream broke the protocol; exit 1 ("malformed response").
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed(pub String);

#[derive(Debug, Default)]
pub struct Accumulator {
    message: Option<Value>,
    /// Per block: the joined `partial_json` of tool blocks, parsed at their stop.
    json_buffers: Vec<Option<String>>,
    stopped: Vec<bool>,
    complete: bool,
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The message so far (after `message_start`).
    pub fn message(&self) -> Option<&Value> {
        self.message.as_ref()
    }

    pub fn into_message(self) -> Option<Value> {
        self.message
    }

    /// `message_stop` was seen.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    pub fn block(&self, index: usize) -> Option<&Value> {
        self.message.as_ref()?.get("content")?.get(index)
    }

    /// Applies one event. `name` is the SSE `event:` field; without it, the event is
    /// dispatched on the data's `type` (some gateways omit `event:` lines).
    pub fn apply(&mut self, name: Option<&str>, data: &str) -> Result<Update, Malformed> {
        if data.trim() == "[DONE]" {
            return Ok(Update::Nothing);
        }
        let parsed: Result<Value, _> = serde_json::from_str(data);
        let name: String = match (name, &parsed) {
            (Some(n), _) => n.to_owned(),
            (None, Ok(v)) => v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            (None, Err(_)) => String::new(),
        };
        let name = name.as_str();
        if !is_known(name) {
            return Ok(Update::Nothing);
        }
        let mut event = parsed.map_err(|e| Malformed(format!("{name} event is not JSON: {e}")))?;
        if name == "error" {
            return Ok(Update::Error(ApiError::from_body(
                None,
                data.as_bytes(),
                None,
            )));
        }
        if name == "message_start" {
            if self.message.is_some() {
                return Err(Malformed("a second message_start in one stream".into()));
            }
            let message = event
                .get_mut("message")
                .map(Value::take)
                .filter(Value::is_object)
                .ok_or_else(|| Malformed("message_start without a message object".into()))?;
            self.message = Some(message);
            self.content()?; // content must be an array from the start
            return Ok(Update::MessageStart);
        }
        if self.message.is_none() {
            return Err(Malformed(format!("{name} before message_start")));
        }
        if self.complete {
            return Ok(Update::Nothing);
        }
        match name {
            "content_block_start" => self.block_start(event),
            "content_block_delta" => self.block_delta(&mut event),
            "content_block_stop" => self.block_stop(&event),
            "message_delta" => self.message_delta(&mut event),
            "message_stop" => {
                self.complete = true;
                Ok(Update::MessageStop)
            }
            _ => Ok(Update::Nothing), // ping
        }
    }

    fn content(&mut self) -> Result<&mut Vec<Value>, Malformed> {
        let message = self.message.as_mut().and_then(Value::as_object_mut);
        let message = message.ok_or_else(|| Malformed("no message".into()))?;
        message
            .entry("content")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| Malformed("message content is not an array".into()))
    }

    fn block_start(&mut self, mut event: Value) -> Result<Update, Malformed> {
        let index = index_of(&event)?;
        let block = event
            .get_mut("content_block")
            .map(Value::take)
            .filter(Value::is_object)
            .ok_or_else(|| Malformed("content_block_start without a content_block".into()))?;
        let content = self.content()?;
        if index != content.len() {
            return Err(Malformed(format!(
                "content_block_start for index {index}, expected {}",
                content.len()
            )));
        }
        content.push(block);
        self.json_buffers.push(None);
        self.stopped.push(false);
        Ok(Update::BlockStart(index))
    }

    fn block_delta(&mut self, event: &mut Value) -> Result<Update, Malformed> {
        let index = index_of(event)?;
        let delta = event
            .get_mut("delta")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Malformed("content_block_delta without a delta".into()))?;
        let delta_type = delta
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let block = self
            .content()?
            .get_mut(index)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Malformed(format!("content_block_delta for unknown index {index}")))?;
        let block_type = block.get("type").and_then(Value::as_str).unwrap_or("");
        // A delta that does not fit its block is ignored, as the SDKs do.
        let update = match (delta_type.as_str(), block_type) {
            ("text_delta", "text") => {
                let text = take_str(delta, "text");
                append(block, "text", &text);
                Update::TextDelta(index, text)
            }
            ("thinking_delta", "thinking") => {
                let text = take_str(delta, "thinking");
                append(block, "thinking", &text);
                Update::ThinkingDelta(index, text)
            }
            ("signature_delta", "thinking") => {
                let sig = take_str(delta, "signature");
                block.insert("signature".into(), Value::String(sig));
                Update::Nothing
            }
            ("citations_delta", "text") => {
                let citation = delta.get_mut("citation").map(Value::take);
                let citations = block
                    .entry("citations")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !citations.is_array() {
                    *citations = Value::Array(Vec::new());
                }
                if let (Some(list), Some(c)) = (citations.as_array_mut(), citation) {
                    list.push(c);
                }
                Update::Nothing
            }
            ("input_json_delta", _) if block.contains_key("input") => {
                let part = take_str(delta, "partial_json");
                self.json_buffers[index]
                    .get_or_insert_with(String::new)
                    .push_str(&part);
                Update::Nothing
            }
            _ => Update::Nothing,
        };
        Ok(update)
    }

    fn block_stop(&mut self, event: &Value) -> Result<Update, Malformed> {
        let index = index_of(event)?;
        if index >= self.stopped.len() {
            return Err(Malformed(format!(
                "content_block_stop for unknown index {index}"
            )));
        }
        if let Some(json) = self.json_buffers[index].take()
            && !json.trim().is_empty()
        {
            let input: Value = serde_json::from_str(&json).map_err(|e| {
                Malformed(format!(
                    "tool input of content block {index} is not valid JSON: {e}"
                ))
            })?;
            if let Some(block) = self
                .content()?
                .get_mut(index)
                .and_then(Value::as_object_mut)
            {
                block.insert("input".into(), input);
            }
        }
        self.stopped[index] = true;
        Ok(Update::BlockStop(index))
    }

    /// Whether `content_block_stop` arrived for this block. A tool call cut off by
    /// `max_tokens` has none, and its input is unusable.
    #[cfg(test)]
    pub fn block_is_complete(&self, index: usize) -> bool {
        self.stopped.get(index).copied().unwrap_or(false)
    }

    fn message_delta(&mut self, event: &mut Value) -> Result<Update, Malformed> {
        let delta = event.get_mut("delta").map(Value::take);
        let usage = event.get_mut("usage").map(Value::take);
        let message = self
            .message
            .as_mut()
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Malformed("no message".into()))?;
        if let Some(Value::Object(delta)) = delta {
            for (key, value) in delta {
                // stop_reason and stop_sequence are overwritten even with null;
                // other fields (stop_details, container) only when present.
                if key == "stop_reason" || key == "stop_sequence" || !value.is_null() {
                    message.insert(key, value);
                }
            }
        }
        if let Some(Value::Object(usage)) = usage {
            let target = message
                .entry("usage")
                .or_insert_with(|| Value::Object(Map::new()));
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Some(target) = target.as_object_mut() {
                for (key, value) in usage {
                    if !value.is_null() {
                        target.insert(key, value); // cumulative counts: overwrite, never add
                    }
                }
            }
        }
        Ok(Update::MessageDelta)
    }
}

fn is_known(name: &str) -> bool {
    matches!(
        name,
        "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
            | "error"
            | "ping"
    )
}

fn index_of(event: &Value) -> Result<usize, Malformed> {
    event
        .get("index")
        .and_then(Value::as_u64)
        .map(|i| i as usize)
        .ok_or_else(|| Malformed("event without a numeric index".into()))
}

fn take_str(object: &mut Map<String, Value>, key: &str) -> String {
    match object.get_mut(key).map(Value::take) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn append(block: &mut Map<String, Value>, key: &str, text: &str) {
    match block.get_mut(key) {
        Some(Value::String(s)) => s.push_str(text),
        _ => {
            block.insert(key.into(), Value::String(text.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;
    use serde_json::json;

    /// Parses and accumulates a whole SSE stream, in the given chunks.
    pub fn accumulate(chunks: &[&[u8]]) -> Result<Accumulator, Malformed> {
        let mut parser = SseParser::new();
        let mut acc = Accumulator::new();
        let mut events = Vec::new();
        for c in chunks {
            parser.feed(c, &mut events).unwrap();
        }
        events.extend(parser.finish());
        for e in events {
            acc.apply(e.name.as_deref(), &e.data)?;
        }
        Ok(acc)
    }

    const TOOL_STREAM: &str = include_str!("../tests/fixtures/tool_use.sse");

    #[test]
    fn tool_use_stream_accumulates_like_the_sdk() {
        let acc = accumulate(&[TOOL_STREAM.as_bytes()]).unwrap();
        assert!(acc.is_complete());
        let m = acc.into_message().unwrap();
        assert_eq!(
            m["content"][0]["text"],
            "I'll check the current weather in Paris for you."
        );
        assert_eq!(m["content"][1]["input"], json!({"location": "Paris"}));
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["usage"]["output_tokens"], 65);
        assert_eq!(m["usage"]["input_tokens"], 377);
    }

    #[test]
    fn every_chunking_gives_the_same_message() {
        let whole = accumulate(&[TOOL_STREAM.as_bytes()])
            .unwrap()
            .into_message();
        let bytes: Vec<&[u8]> = TOOL_STREAM.as_bytes().chunks(1).collect();
        assert_eq!(accumulate(&bytes).unwrap().into_message(), whole);
        for size in [2, 3, 7, 64, 1000] {
            let chunks: Vec<&[u8]> = TOOL_STREAM.as_bytes().chunks(size).collect();
            assert_eq!(accumulate(&chunks).unwrap().into_message(), whole, "{size}");
        }
    }

    #[test]
    fn thinking_signature_citations_and_unknown_blocks() {
        let mut acc = Accumulator::new();
        let events = [
            r#"{"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":3,"output_tokens":1},"extra":{"k":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"b"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"SIG"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ignored"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":"","citations":null}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"x"}}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"fallback","payload":[1,2]}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null,"stop_details":null},"usage":{"output_tokens":9,"input_tokens":null}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        for e in events {
            acc.apply(None, e).unwrap();
        }
        assert_eq!(
            acc.into_message().unwrap(),
            json!({"id":"m","content":[
                {"type":"thinking","thinking":"ab","signature":"SIG"},
                {"type":"text","text":"","citations":[{"type":"char_location","cited_text":"x"}]},
                {"type":"fallback","payload":[1,2]}],
              "usage":{"input_tokens":3,"output_tokens":9},"extra":{"k":1},
              "stop_reason":"end_turn","stop_sequence":null})
        );
    }

    #[test]
    fn protocol_violations_are_malformed() {
        let mut acc = Accumulator::new();
        assert!(
            acc.apply(Some("content_block_start"), r#"{"index":0}"#)
                .is_err()
        );
        let mut acc = Accumulator::new();
        acc.apply(Some("message_start"), r#"{"message":{"content":[]}}"#)
            .unwrap();
        assert!(
            acc.apply(Some("content_block_delta"), r#"{"index":4,"delta":{}}"#)
                .is_err()
        );
        assert!(
            acc.apply(
                Some("content_block_start"),
                r#"{"index":1,"content_block":{}}"#
            )
            .is_err()
        );
        assert!(acc.apply(Some("message_delta"), "{not json").is_err());
        assert_eq!(
            acc.apply(Some("future_event"), "{not json").unwrap(),
            Update::Nothing
        );
        assert_eq!(acc.apply(None, "[DONE]").unwrap(), Update::Nothing);
    }

    #[test]
    fn truncated_tool_input_stays_empty_and_incomplete() {
        let acc = accumulate(&[include_bytes!("../tests/fixtures/truncated_tool.sse")]).unwrap();
        assert!(acc.is_complete());
        assert!(!acc.block_is_complete(1));
        let m = acc.into_message().unwrap();
        assert_eq!(m["content"][1]["input"], json!({}));
        assert_eq!(m["stop_reason"], "max_tokens");
    }

    #[test]
    fn error_event() {
        let mut acc = Accumulator::new();
        let u = acc
            .apply(
                Some("error"),
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            )
            .unwrap();
        match u {
            Update::Error(e) => assert_eq!(e.error_type.as_deref(), Some("overloaded_error")),
            other => panic!("{other:?}"),
        }
    }
}
