//! Property tests for the pure stream stages: no input makes them panic, how the
//! bytes are split into network reads never changes the result, and no input makes
//! them hold more than their caps.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::message::Accumulator;
use crate::sse::{SseEvent, SseParser, TooLarge};

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

/// Bytes that look like a stream, often: field lines, blank lines, comments, every
/// terminator, JSON events, and raw bytes in between.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"event: content_block_delta".to_vec()),
        Just(b": comment".to_vec()),
        Just(b"id: 1".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"[DONE]".to_vec()),
        Just(
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[]}}\n\n"
                .to_vec()
        ),
        Just(
            b"data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
                .to_vec()
        ),
        (event(), any::<bool>()).prop_map(|((name, data), named)| {
            let mut e = String::new();
            if named {
                e += &format!("event: {name}\n");
            }
            e += &format!("data: {data}\n\n");
            e.into_bytes()
        }),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

/// Feeds `chunks` to a parser with `cap`, checking after each chunk that it holds
/// no more than the cap. Returns the events and the error that ended the stream.
fn parse_capped(chunks: &[&[u8]], cap: usize) -> (Vec<SseEvent>, Option<TooLarge>) {
    let mut parser = SseParser::with_cap(cap);
    let mut out = Vec::new();
    for c in chunks {
        let result = parser.feed(c, &mut out);
        assert!(
            parser.buffered_bytes() <= cap,
            "{} > {cap}",
            parser.buffered_bytes()
        );
        if let Err(e) = result {
            return (out, Some(e));
        }
    }
    out.extend(parser.finish());
    (out, None)
}

/// What a message holds, counted the way [`crate::message::weight`] bounds it:
/// string bytes (keys too) and a few bytes per value.
fn footprint(v: &Value) -> usize {
    8 + match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(footprint).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() + footprint(v)).sum(),
        _ => 0,
    }
}

/// Applies `events` to an accumulator with `cap`, checking after every event that
/// what it holds stays within the cap and that its count covers the message.
fn accumulate_capped(
    events: &[(Option<String>, String)],
    cap: usize,
    keep_text: bool,
) -> Accumulator {
    let acc = if keep_text {
        Accumulator::new()
    } else {
        Accumulator::without_text()
    };
    let mut acc = acc.with_cap(cap);
    for (name, data) in events {
        let _ = acc.apply(name.as_deref(), data);
        assert!(acc.held_bytes() <= cap, "{} > {cap}", acc.held_bytes());
        let held = acc.message().map_or(0, footprint);
        assert!(
            held <= acc.held_bytes(),
            "message {held} > count {}",
            acc.held_bytes()
        );
    }
    acc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the bytes, the parser never holds more than its cap, and where the
    /// bytes are cut into reads changes neither the events nor the error.
    #[test]
    fn the_parser_holds_no_more_than_its_cap(
        bytes in stream_bytes(),
        cap in 1usize..400,
        points in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let whole = parse_capped(&[&bytes], cap);
        // An event's text is at most its bytes, each invalid byte decoded as U+FFFD
        // (three bytes).
        for e in &whole.0 {
            prop_assert!(e.data.len() <= 3 * cap);
        }
        prop_assert_eq!(&parse_capped(&split_at_points(&bytes, &points), cap), &whole);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&parse_capped(&bytewise, cap), &whole);
        // With room enough, the cap changes nothing.
        let roomy = parse_capped(&[&bytes], bytes.len().max(1));
        prop_assert_eq!(roomy, (parse(&[&bytes]), None));
    }

    /// Parser and accumulator together: arbitrary bytes never make either hold more
    /// than its cap, with text kept (--json, -c) or dropped (text mode).
    #[test]
    fn the_pipeline_holds_no_more_than_its_caps(
        bytes in stream_bytes(),
        event_cap in 16usize..600,
        message_cap in 0usize..3000,
        keep_text in any::<bool>(),
    ) {
        let (events, _) = parse_capped(&[&bytes], event_cap);
        let events: Vec<_> = events.into_iter().map(|e| (e.name, e.data)).collect();
        accumulate_capped(&events, message_cap, keep_text);
    }

    /// A valid stream of many events with a cap: every event is charged, so the
    /// count covers the message; and a cap above the stream's weight refuses nothing.
    #[test]
    fn the_accumulator_holds_no_more_than_its_cap(
        deltas in prop::collection::vec("(.|\n){0,30}", 0..30),
        input in json_value(),
        fragments in 1usize..8,
        cap in 0usize..6000,
        keep_text in any::<bool>(),
    ) {
        let bytes = stream(&deltas, &json!({"arg": input}), fragments, false);
        let events: Vec<_> = parse(&[&bytes]).into_iter().map(|e| (e.name, e.data)).collect();
        accumulate_capped(&events, cap, keep_text);
        let total: usize = events.iter().map(|(_, d)| crate::message::weight(d)).sum();
        let acc = accumulate_capped(&events, total, keep_text);
        prop_assert!(acc.is_complete());
    }
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
