//! The request body sent to `POST /v1/messages`.

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::config::Generation;
use crate::error::usage;

/// The API's body size limit (API.md §1.1); larger requests are refused before sending.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// Builds the body from the assembled user turn and the generation settings.
/// Fields are in a fixed order so `--dry-run` output is stable and diffable.
pub fn build(generation: &Generation, user_blocks: Vec<Value>, stream: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(generation.model));
    body.insert("max_tokens".into(), json!(generation.max_tokens));
    if let Some(system) = &generation.system {
        body.insert("system".into(), json!(system));
    }
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": user_blocks}]),
    );
    if let Some(t) = generation.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = generation.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(k) = generation.top_k {
        body.insert("top_k".into(), json!(k));
    }
    if !generation.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(generation.stop));
    }
    if let Some(id) = &generation.metadata_user_id {
        body.insert("metadata".into(), json!({"user_id": id}));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Value::Object(body)
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

    #[test]
    fn minimal_body_has_fixed_field_order() {
        let g = Generation {
            model: "m".into(),
            max_tokens: 5,
            ..Default::default()
        };
        let body = build(&g, vec![json!({"type":"text","text":"hi"})], true);
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
            system: Some("sys".into()),
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(3),
            stop: vec!["END".into()],
            metadata_user_id: Some("u1".into()),
        };
        let body = build(&g, vec![], false);
        assert_eq!(
            body,
            json!({"model":"m","max_tokens":5,"system":"sys","messages":[{"role":"user","content":[]}],
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
