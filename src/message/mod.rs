//! Stream events → the final message, as the SDKs accumulate it (docs/PROTOCOL.md, Accumulation):
//! blocks addressed by index, tool input JSON joined and parsed at `content_block_stop`,
//! `message_delta` fields overwriting, never adding. Pure: no I/O here.
//!
//! What the accumulator holds is bounded: every event it keeps is charged its
//! [`weight`] against [`MAX_MESSAGE_BYTES`], and an answer beyond that is refused as
//! malformed (exit 1), so no stream can grow memory without limit.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The most an answer may weigh in memory (see [`weight`]): far above any real answer
/// (128k output tokens are well under 2 MiB of text), low enough that a hostile
/// stream cannot exhaust memory.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// A first `message_start` without an id is kept this long, to recognise a repeat.
const MAX_KEPT_START: usize = 16 * 1024;

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
    /// An `error` event (before `message_stop`; after it, nothing counts).
    Error(ApiError),
}

/// The stream broke the protocol; exit 1 ("malformed response").
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed(pub String);

#[derive(Debug)]
pub struct Accumulator {
    message: Option<Value>,
    /// Per block: the joined `partial_json` of tool blocks, parsed at their stop.
    json_buffers: Vec<Option<String>>,
    stopped: Vec<bool>,
    complete: bool,
    /// Text and thinking deltas are reported but not kept (see [`Self::without_text`]).
    drop_text: bool,
    /// A `message_delta` set a stop reason: a `[DONE]` after it completes the answer.
    stop_reason_seen: bool,
    /// The first `message_start`'s id, or (without one) its data when short: a
    /// repeat of it is ignored.
    start_id: Option<String>,
    start_data: Option<String>,
    /// The weight of what is held, and the most it may reach.
    held: usize,
    cap: usize,
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            message: None,
            json_buffers: Vec::new(),
            stopped: Vec::new(),
            complete: false,
            drop_text: false,
            stop_reason_seen: false,
            start_id: None,
            start_data: None,
            held: 0,
            cap: MAX_MESSAGE_BYTES,
        }
    }
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The same accumulator with another limit than [`MAX_MESSAGE_BYTES`] (tests).
    pub fn with_cap(self, cap: usize) -> Self {
        Accumulator { cap, ..self }
    }

    /// The weight (see [`weight`]) of everything held: the message, tool input
    /// buffers, bookkeeping. Never above the cap.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Charges `cost` against the cap, or refuses the event.
    fn hold(&mut self, cost: usize) -> Result<(), Malformed> {
        if !self.fits(cost) {
            return Err(Malformed(format!(
                "the answer is larger than {}",
                describe_size(self.cap)
            )));
        }
        self.held += cost;
        Ok(())
    }

    fn fits(&self, cost: usize) -> bool {
        self.held.saturating_add(cost) <= self.cap
    }

    /// For a caller that prints text and thinking as they arrive and needs neither
    /// afterwards: their deltas still come out as updates, but the message's blocks
    /// keep the text and thinking they started with, so memory does not grow with
    /// the answer. Everything else (tool input, stop reason, usage) is kept.
    pub fn without_text() -> Self {
        Accumulator {
            drop_text: true,
            ..Self::default()
        }
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
        if matches!(name, None | Some("content_block_delta"))
            && let Some(update) = self.apply_delta_fast(name.is_none(), data)
        {
            return Ok(update);
        }
        self.apply_value(name, data)
    }

    /// The fast path for the bulk of a stream: a text, thinking or tool-input delta to
    /// a block of the matching type, parsed straight into borrowed fields instead of a
    /// `Value` tree. It handles an event only when the general path would give the
    /// same result; `None` for everything else (any other shape, a protocol
    /// violation, a duplicate key, an escape the borrowed parse cannot take) sends
    /// the event down [`Self::apply_value`], which decides as it always has.
    fn apply_delta_fast(&mut self, untyped: bool, data: &str) -> Option<Update> {
        if self.complete {
            return None;
        }
        let delta = fast::parse_delta(data, untyped)?;
        let index = usize::try_from(delta.index).ok()?;
        // Over the cap, the general path refuses the event with the same numbers.
        let cost = match delta.kind {
            fast::Kind::Text | fast::Kind::Thinking if self.drop_text => 0,
            _ => delta.text.len(),
        };
        if !self.fits(cost) {
            return None;
        }
        let block = self
            .message
            .as_mut()?
            .as_object_mut()?
            .get_mut("content")?
            .as_array_mut()?
            .get_mut(index)?
            .as_object_mut()?;
        let block_type = block.get("type").and_then(Value::as_str);
        match delta.kind {
            fast::Kind::Text if block_type == Some("text") => {
                let text = delta.text.into_owned();
                if !self.drop_text {
                    append(block, "text", &text);
                }
                self.held += cost;
                Some(Update::TextDelta(index, text))
            }
            fast::Kind::Thinking if block_type == Some("thinking") => {
                let text = delta.text.into_owned();
                if !self.drop_text {
                    append(block, "thinking", &text);
                }
                self.held += cost;
                Some(Update::ThinkingDelta(index, text))
            }
            fast::Kind::InputJson if block.contains_key("input") => {
                self.json_buffers
                    .get_mut(index)?
                    .get_or_insert_with(String::new)
                    .push_str(&delta.text);
                self.held += cost;
                Some(Update::Nothing)
            }
            _ => None,
        }
    }

    /// The general path: the event as a `Value`.
    fn apply_value(&mut self, name: Option<&str>, data: &str) -> Result<Update, Malformed> {
        // After message_stop the answer is final: a trailing error event, a second
        // message_start or garbage from a relay cannot undo it.
        if self.complete {
            return Ok(Update::Nothing);
        }
        // An OpenAI-style end (`data: [DONE]`, `event: done`). After a stop reason
        // the answer is complete; before one it says nothing (the stream must still
        // reach its end, or it is truncated).
        if data.trim() == "[DONE]" || name == Some("done") {
            if self.message.is_some() && self.stop_reason_seen {
                self.complete = true;
                return Ok(Update::MessageStop);
            }
            return Ok(Update::Nothing);
        }
        // A named event that is not ours is skipped unread.
        if name.is_some_and(|n| !is_known(n)) {
            return Ok(Update::Nothing);
        }
        // Parsing builds a `Value`, which may take many times the text: refuse data
        // that would outweigh the cap before building it.
        let event_weight = weight(data);
        if event_weight > self.cap {
            return Err(Malformed(format!(
                "an event larger than {} in memory",
                describe_size(self.cap)
            )));
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
            return self.message_start(event, data, event_weight);
        }
        if self.message.is_none() {
            return Err(Malformed(format!("{name} before message_start")));
        }
        match name {
            "content_block_start" => {
                self.hold(event_weight)?;
                self.block_start(event)
            }
            "content_block_delta" => self.block_delta(&mut event, event_weight),
            "content_block_stop" => self.block_stop(&event),
            "message_delta" => {
                self.hold(event_weight)?;
                self.message_delta(&mut event)
            }
            "message_stop" => {
                self.complete = true;
                Ok(Update::MessageStop)
            }
            _ => Ok(Update::Nothing), // ping
        }
    }

    /// The first `message_start` starts the answer. A repeat of it (same id, or the
    /// same bytes when there is no id) is ignored, as some relays send one twice;
    /// any other is a second answer spliced into the stream, never merged.
    fn message_start(
        &mut self,
        mut event: Value,
        data: &str,
        event_weight: usize,
    ) -> Result<Update, Malformed> {
        let id = event
            .get("message")
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        if self.message.is_some() {
            let repeat = match (&id, &self.start_id) {
                (Some(new), Some(first)) => new == first,
                (None, None) => self.start_data.as_deref() == Some(data),
                _ => false,
            };
            if repeat {
                return Ok(Update::Nothing);
            }
            return Err(Malformed(match (id, &self.start_id) {
                (Some(new), Some(first)) => format!(
                    "a second message_start ({}) in the stream of {}",
                    crate::error::sanitize(&new),
                    crate::error::sanitize(first)
                ),
                _ => "a second message_start in one stream".into(),
            }));
        }
        let message = event
            .get_mut("message")
            .map(Value::take)
            .filter(Value::is_object)
            .ok_or_else(|| Malformed("message_start without a message object".into()))?;
        let kept = if id.is_none() && data.len() <= MAX_KEPT_START {
            data.len()
        } else {
            0
        };
        self.hold(event_weight + kept)?;
        self.message = Some(message);
        // Content must be an array from the start. Blocks already in it (a gateway
        // echoing a prefill) arrived whole: their bookkeeping starts as complete.
        let blocks = self.content()?.len();
        self.json_buffers = vec![None; blocks];
        self.stopped = vec![true; blocks];
        if id.is_none() && kept > 0 {
            self.start_data = Some(data.to_owned());
        }
        self.start_id = id;
        Ok(Update::MessageStart)
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

    fn block_delta(&mut self, event: &mut Value, event_weight: usize) -> Result<Update, Malformed> {
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
        let keep_text = !self.drop_text;
        // What the delta adds to the message, charged before anything changes.
        let (block_type, has_input) = {
            let block = self
                .content()?
                .get(index)
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    Malformed(format!("content_block_delta for unknown index {index}"))
                })?;
            (
                block
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                block.contains_key("input"),
            )
        };
        let len = |key: &str| delta.get(key).and_then(Value::as_str).map_or(0, str::len);
        let cost = match (delta_type.as_str(), block_type.as_str()) {
            ("text_delta", "text") if keep_text => len("text"),
            ("thinking_delta", "thinking") if keep_text => len("thinking"),
            ("signature_delta", "thinking") => len("signature"),
            ("citations_delta", "text") => event_weight,
            ("input_json_delta", _) if has_input => len("partial_json"),
            _ => 0,
        };
        self.hold(cost)?;
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
                if keep_text {
                    append(block, "text", &text);
                }
                Update::TextDelta(index, text)
            }
            ("thinking_delta", "thinking") => {
                let text = take_str(delta, "thinking");
                if keep_text {
                    append(block, "thinking", &text);
                }
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
                let buffer = self.json_buffers.get_mut(index).ok_or_else(|| {
                    Malformed(format!("content_block_delta for unknown index {index}"))
                })?;
                buffer.get_or_insert_with(String::new).push_str(&part);
                Update::Nothing
            }
            _ => Update::Nothing,
        };
        Ok(update)
    }

    fn block_stop(&mut self, event: &Value) -> Result<Update, Malformed> {
        let index = index_of(event)?;
        let unknown = || Malformed(format!("content_block_stop for unknown index {index}"));
        let json = self.json_buffers.get_mut(index).ok_or_else(unknown)?.take();
        if index >= self.stopped.len() {
            return Err(unknown());
        }
        if let Some(json) = json
            && !json.trim().is_empty()
        {
            // The text is already charged; its parse adds the nodes.
            self.hold(weight(&json) - json.len())?;
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
        if let Some(stopped) = self.stopped.get_mut(index) {
            *stopped = true;
        }
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
                if key == "stop_reason" {
                    self.stop_reason_seen = value.is_string();
                }
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
mod budget;
mod fast;

use budget::describe_size;
pub use budget::weight;

#[cfg(test)]
mod tests;
