//! The request body sent to `POST /v1/messages`.

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::error::usage;
use crate::generation::{Explicit, Field, Generation};

/// The API's body size limit (docs/PROTOCOL.md, Limits); a larger body is refused unsent.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// Where the body starts from, and what the command line explicitly said.
pub struct Sources<'a> {
    /// A `--request` body: flags override its fields only when given explicitly.
    pub base: Option<Map<String, Value>>,
    /// The fields typed on the command line.
    pub explicit: &'a Explicit,
    /// Turns before this one (`--messages`, `--conversation`).
    pub prior: Vec<Value>,
    /// `Some(s)` sets `stream` to `s`; `None` keeps the base body's choice.
    pub stream: Option<bool>,
}

/// Builds the body from the generation settings and this turn's user blocks (empty:
/// no new turn). Without a base, fields come in a fixed order so `--dry-run` output is
/// stable and diffable.
pub fn build(generation: &Generation, user_blocks: Vec<Value>, sources: Sources) -> Value {
    let from_base = sources.base.is_some();
    let mut body = sources.base.unwrap_or_default();
    let explicit = sources.explicit;
    // A field is set when there is no base body, when its flag was typed, or when the
    // base lacks a field the API requires.
    let mut put = |key: &str, value: Option<Value>, field: Option<Field>, required: bool| {
        let Some(value) = value else { return };
        let typed = field.is_some_and(|f| explicit.contains(f));
        if !from_base || typed || (required && !body.contains_key(key)) {
            body.insert(key.to_owned(), value);
        }
    };
    let g = generation;
    put("model", Some(json!(g.model)), Some(Field::Model), true);
    put(
        "max_tokens",
        Some(json!(g.max_tokens)),
        Some(Field::MaxTokens),
        true,
    );
    put("system", g.system.clone(), Some(Field::System), false);
    put("messages", Some(json!([])), None, true);
    put(
        "temperature",
        g.temperature.map(|t| json!(t)),
        Some(Field::Temperature),
        false,
    );
    put("top_p", g.top_p.map(|p| json!(p)), Some(Field::TopP), false);
    put("top_k", g.top_k.map(|k| json!(k)), Some(Field::TopK), false);
    put(
        "stop_sequences",
        (!g.stop.is_empty()).then(|| json!(g.stop)),
        Some(Field::Stop),
        false,
    );
    put("metadata", g.metadata.clone(), Some(Field::Metadata), false);
    put(
        "tools",
        g.tools.as_ref().map(|t| json!(t)),
        Some(Field::Tools),
        false,
    );
    put(
        "tool_choice",
        g.tool_choice.clone(),
        Some(Field::ToolChoice),
        false,
    );
    put("thinking", g.thinking.clone(), Some(Field::Thinking), false);
    if let Some(effort) = g.effort
        && (!from_base || explicit.contains(Field::Effort))
    {
        let config = body
            .entry("output_config")
            .or_insert_with(|| Value::Object(Map::new()));
        if !config.is_object() {
            *config = Value::Object(Map::new());
        }
        if let Some(config) = config.as_object_mut() {
            config.insert("effort".into(), json!(effort));
        }
    }

    let mut messages = sources.prior;
    if let Some(Value::Array(base_messages)) = body.get_mut("messages").map(Value::take) {
        messages.splice(0..0, base_messages);
    }
    if !user_blocks.is_empty() {
        messages.push(json!({"role": "user", "content": user_blocks}));
    }
    // Replacing the value keeps the key where `put` or the base body placed it.
    body.insert("messages".into(), Value::Array(messages));

    match sources.stream {
        Some(true) => {
            body.insert("stream".into(), json!(true));
        }
        Some(false) => {
            body.shift_remove("stream");
        }
        None => {}
    }
    Value::Object(body)
}

/// Whether the body asks for a stream.
pub fn is_streaming(body: &Value) -> bool {
    body.get("stream") == Some(&Value::Bool(true))
}

/// What `POST /v1/messages/count_tokens` accepts of a body (docs/PROTOCOL.md, Counting tokens).
pub fn count_tokens_body(body: &Value) -> Value {
    const ACCEPTED: &[&str] = &[
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "cache_control",
        "context_management",
        "mcp_servers",
    ];
    let mut out = Map::new();
    if let Some(fields) = body.as_object() {
        for (k, v) in fields {
            if ACCEPTED.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Serializes the body and enforces the size limit.
pub fn to_bytes(body: &Value) -> Result<Vec<u8>> {
    let bytes = serde_json::to_vec(body)?;
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(usage(format!(
            "request is {:.1} MiB; the API accepts at most 32 MiB (attachments are base64-encoded, +33%)",
            bytes.len() as f64 / (1024.0 * 1024.0)
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_FLAGS: Explicit = Explicit::none();

    fn plain(stream: bool) -> Sources<'static> {
        Sources {
            base: None,
            explicit: &NO_FLAGS,
            prior: vec![],
            stream: Some(stream),
        }
    }

    #[test]
    fn base_body_keeps_its_fields_unless_flags_are_explicit() {
        let g = Generation {
            model: "env-model".into(),
            max_tokens: 10,
            temperature: Some(0.3),
            effort: Some("low"),
            ..Default::default()
        };
        let base = json!({"model": "file-model", "messages": [{"role": "user", "content": "a"}],
                          "temperature": 0.9, "output_config": {"format": {"type": "x"}}, "stream": true});
        let only_temperature = Explicit::from_args(|id| id == "temperature");
        let body = build(
            &g,
            vec![json!({"type": "text", "text": "b"})],
            Sources {
                base: base.as_object().cloned(),
                explicit: &only_temperature,
                prior: vec![],
                stream: None,
            },
        );
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"model":"file-model","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"}]}],"temperature":0.3,"output_config":{"format":{"type":"x"}},"stream":true,"max_tokens":10}"#
        );
    }

    #[test]
    fn prior_turns_come_first_and_effort_lands_in_output_config() {
        let g = Generation {
            model: "m".into(),
            max_tokens: 5,
            effort: Some("high"),
            thinking: Some(json!({"type": "adaptive"})),
            ..Default::default()
        };
        let body = build(
            &g,
            vec![json!({"type": "text", "text": "again"})],
            Sources {
                prior: vec![
                    json!({"role": "user", "content": "q"}),
                    json!({"role": "assistant", "content": "a"}),
                ],
                ..plain(false)
            },
        );
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"},{"role":"user","content":[{"type":"text","text":"again"}]}],"thinking":{"type":"adaptive"},"output_config":{"effort":"high"}}"#
        );
    }

    #[test]
    fn count_tokens_body_drops_generation_fields() {
        let body = json!({"model": "m", "max_tokens": 5, "messages": [], "stream": true, "temperature": 1, "system": "s"});
        assert_eq!(
            count_tokens_body(&body),
            json!({"model": "m", "messages": [], "system": "s"})
        );
    }

    #[test]
    fn minimal_body_has_fixed_field_order() {
        let g = Generation {
            model: "m".into(),
            max_tokens: 5,
            ..Default::default()
        };
        let body = build(&g, vec![json!({"type":"text","text":"hi"})], plain(true));
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true}"#
        );
    }

    #[test]
    fn optional_fields() {
        let g = Generation {
            model: "m".into(),
            max_tokens: 5,
            system: Some(json!("sys")),
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(3),
            stop: vec!["END".into()],
            metadata: Some(Generation::user_id("u1")),
            ..Default::default()
        };
        let body = build(&g, vec![], plain(false));
        assert_eq!(
            body,
            json!({"model":"m","max_tokens":5,"system":"sys","messages":[],
                   "temperature":0.5,"top_p":0.9,"top_k":3,"stop_sequences":["END"],"metadata":{"user_id":"u1"}})
        );
    }

    #[test]
    fn oversized_requests_are_refused() {
        let big = "x".repeat(MAX_REQUEST_BYTES);
        let e = to_bytes(&json!({ "a": big })).unwrap_err();
        assert!(e.to_string().starts_with("request is 32.0 MiB"));
    }
}
