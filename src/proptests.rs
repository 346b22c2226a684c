//! Property tests for the pure stream stages: no input makes them panic, and how the
//! bytes are split into network reads never changes the result.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::message::Accumulator;
use crate::sse::{SseEvent, SseParser};

fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    for c in chunks {
        if parser.feed(c, &mut out).is_err() {
            return out;
        }
    }
    out.extend(parser.finish());
    out
}

/// Cuts `bytes` at the given (sorted, deduplicated) points.
fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in cuts {
        parts.push(&bytes[start..cut]);
        start = cut;
    }
    parts.push(&bytes[start..]);
    parts
}

/// A valid stream: a text block of the given deltas and a tool block whose input JSON
/// is split into the given fragments. Line endings vary with `crlf`.
fn stream(deltas: &[String], input: &Value, fragments: usize, crlf: bool) -> Vec<u8> {
    let mut events = vec![
        json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    ];
    for d in deltas {
        events.push(
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":d}}),
        );
    }
    events.push(json!({"type":"content_block_stop","index":0}));
    events.push(json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}));
    let text = input.to_string();
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(fragments.max(1)).max(1);
    for piece in chars.chunks(size) {
        let piece: String = piece.iter().collect();
        events.push(json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":piece}}));
    }
    events.push(json!({"type":"content_block_stop","index":1}));
    events.push(json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}));
    events.push(json!({"type":"message_stop"}));
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut out = String::new();
    for e in events {
        let name = e["type"].as_str().unwrap_or_default().to_owned();
        out += &format!("event: {name}{nl}data: {e}{nl}{nl}");
        out += &format!(": ping comment{nl}event: ping{nl}data: {{\"type\": \"ping\"}}{nl}{nl}");
    }
    out.into_bytes()
}

fn accumulate(events: &[SseEvent]) -> Option<Value> {
    let mut acc = Accumulator::new();
    for e in events {
        acc.apply(e.name.as_deref(), &e.data).ok()?;
    }
    acc.is_complete().then(|| acc.into_message()).flatten()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"\\\\]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A content block of a known or unknown type, with or without its usual fields.
fn block() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("text"),
            Just("thinking"),
            Just("tool_use"),
            Just("server_tool_use"),
            Just("fallback")
        ],
        any::<bool>(),
        json_value(),
    )
        .prop_map(|(kind, complete, extra)| {
            let mut b = json!({"type": kind, "extra": extra});
            if complete {
                b["text"] = json!("");
                b["thinking"] = json!("");
                b["input"] = json!({});
                b["citations"] = json!(null);
            }
            b
        })
}

/// One event: a name and a payload of roughly the right shape, index in 0..4.
fn event() -> impl Strategy<Value = (&'static str, Value)> {
    let delta_type = prop_oneof![
        Just("text_delta"),
        Just("thinking_delta"),
        Just("input_json_delta"),
        Just("signature_delta"),
        Just("citations_delta"),
        Just("future_delta"),
    ];
    prop_oneof![
        (0u64..4, block()).prop_map(|(i, b)| (
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": b})
        )),
        (0u64..4, delta_type, json_value(), ".{0,6}").prop_map(|(i, t, v, text)| (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i, "delta": {
                "type": t, "text": text, "thinking": text, "partial_json": text,
                "signature": text, "citation": v}})
        )),
        (0u64..4).prop_map(|i| (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i})
        )),
        (json_value(), json_value()).prop_map(|(d, u)| (
            "message_delta",
            json!({"type": "message_delta", "delta": d, "usage": u})
        )),
        json_value().prop_map(|v| (
            "message_start",
            json!({"type": "message_start", "message": v})
        )),
        Just(("message_stop", json!({"type": "message_stop"}))),
        Just(("ping", json!({"type": "ping"}))),
        json_value().prop_map(|v| ("error", json!({"type": "error", "error": v}))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048),
                                   points in prop::collection::vec(any::<usize>(), 0..16)) {
        let events = parse(&split_at_points(&bytes, &points));
        let _ = accumulate(&events);
    }

    /// Well-formed JSON in every event, plausible shapes, wrong in any way: blocks of
    /// any type already in `message_start`, deltas of any type to any index, stops
    /// for blocks that never started. The accumulator may refuse; it must not panic.
    #[test]
    fn arbitrary_event_sequences_never_panic(
        start_blocks in prop::collection::vec(block(), 0..3),
        events in prop::collection::vec(event(), 0..24),
    ) {
        let mut acc = Accumulator::new();
        let start = json!({"type": "message_start", "message": {"id": "m", "content": start_blocks}});
        prop_assert!(acc.apply(Some("message_start"), &start.to_string()).is_ok());
        for (name, data) in &events {
            let _ = acc.apply(Some(name), &data.to_string());
            let _ = acc.apply(None, &data.to_string());
        }
        prop_assert!(acc.message().is_some_and(Value::is_object));
    }

    #[test]
    fn every_chunking_gives_the_same_message(
        deltas in prop::collection::vec("(.|\n|\r|\u{2028}){0,8}", 0..12),
        input in json_value(),
        fragments in 1usize..8,
        crlf in any::<bool>(),
        points in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        let input = json!({"arg": input});
        let bytes = stream(&deltas, &input, fragments, crlf);
        let whole = parse(&[&bytes]);
        let message = accumulate(&whole).expect("a valid stream accumulates");
        prop_assert_eq!(&message["content"][0]["text"], &json!(deltas.concat()));
        prop_assert_eq!(&message["content"][1]["input"], &input);
        let split = parse(&split_at_points(&bytes, &points));
        prop_assert_eq!(&split, &whole);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(accumulate(&parse(&bytewise)), Some(message));
    }
}
