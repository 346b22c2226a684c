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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048),
                                   points in prop::collection::vec(any::<usize>(), 0..16)) {
        let events = parse(&split_at_points(&bytes, &points));
        let _ = accumulate(&events);
    }

    #[test]
    fn arbitrary_events_never_panic(
        names in prop::collection::vec(prop_oneof![
            Just("message_start"), Just("content_block_start"), Just("content_block_delta"),
            Just("content_block_stop"), Just("message_delta"), Just("message_stop"),
            Just("error"), Just("ping")], 1..20),
        data in prop::collection::vec(json_value(), 20),
        index in prop::collection::vec(0u64..3, 20),
    ) {
        let mut acc = Accumulator::new();
        for (i, name) in names.iter().enumerate() {
            let mut d = data[i].clone();
            if let Value::Object(m) = &mut d {
                m.insert("index".into(), json!(index[i]));
            }
            let _ = acc.apply(Some(name), &d.to_string());
        }
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
