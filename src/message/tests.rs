use super::budget::NODE_BYTES;
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

const TOOL_STREAM: &str = include_str!("../../tests/fixtures/tool_use.sse");

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
    let acc = accumulate(&[include_bytes!("../../tests/fixtures/truncated_tool.sse")]).unwrap();
    assert!(acc.is_complete());
    assert!(!acc.block_is_complete(1));
    let m = acc.into_message().unwrap();
    assert_eq!(m["content"][1]["input"], json!({}));
    assert_eq!(m["stop_reason"], "max_tokens");
}

#[test]
fn blocks_present_at_message_start_are_addressable() {
    // A gateway may echo a prefill in message_start; deltas to it must not panic.
    let mut acc = Accumulator::new();
    acc.apply(
        Some("message_start"),
        r#"{"message":{"content":[{"type":"tool_use","id":"t","name":"n","input":{}}]}}"#,
    )
    .unwrap();
    acc.apply(
        Some("content_block_delta"),
        r#"{"index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
    )
    .unwrap();
    acc.apply(Some("content_block_stop"), r#"{"index":0}"#)
        .unwrap();
    assert_eq!(acc.block(0).unwrap()["input"], json!({"a": 1}));
    assert!(
        acc.apply(Some("content_block_stop"), r#"{"index":5}"#)
            .is_err()
    );
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

const START: &str =
    r#"{"type":"message_start","message":{"id":"msg_a","content":[],"usage":{"output_tokens":1}}}"#;
const TEXT_START: &str =
    r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
const HI: &str =
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#;
const STOP_DELTA: &str = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}"#;

fn started() -> Accumulator {
    let mut acc = Accumulator::new();
    for e in [START, TEXT_START, HI] {
        acc.apply(None, e).unwrap();
    }
    acc
}

#[test]
fn a_repeated_message_start_is_ignored_another_is_refused() {
    let mut acc = started();
    assert_eq!(acc.apply(Some("message_start"), START), Ok(Update::Nothing));
    // Same id, other details (a relay re-sending its own start): still the same answer.
    let same_id = r#"{"type":"message_start","message":{"id":"msg_a","content":[],"model":"x"}}"#;
    assert_eq!(acc.apply(None, same_id), Ok(Update::Nothing));
    acc.apply(None, HI).unwrap();
    assert_eq!(acc.block(0).unwrap()["text"], "hihi");
    let other = r#"{"type":"message_start","message":{"id":"msg_b","content":[]}}"#;
    assert_eq!(
        acc.apply(None, other),
        Err(Malformed(
            "a second message_start (msg_b) in the stream of msg_a".into()
        ))
    );
    // Without ids: only the very same bytes are a repeat.
    let no_id = r#"{"type":"message_start","message":{"content":[]}}"#;
    let mut acc = Accumulator::new();
    acc.apply(None, no_id).unwrap();
    assert_eq!(acc.apply(None, no_id), Ok(Update::Nothing));
    assert_eq!(
        acc.apply(
            None,
            r#"{"type":"message_start","message":{"content":[],"x":1}}"#
        ),
        Err(Malformed("a second message_start in one stream".into()))
    );
    assert!(
        acc.apply(None, START).is_err(),
        "an id where there was none"
    );
}

#[test]
fn done_after_a_stop_reason_completes_the_answer() {
    for (name, data) in [
        (None, "[DONE]"),
        (Some("done"), "[DONE]"),
        (Some("done"), "{}"),
    ] {
        let mut acc = started();
        // Before a stop reason: nothing (the stream must still end properly).
        assert_eq!(acc.apply(name, data), Ok(Update::Nothing));
        assert!(!acc.is_complete());
        acc.apply(None, STOP_DELTA).unwrap();
        assert_eq!(
            acc.apply(name, data),
            Ok(Update::MessageStop),
            "{name:?} {data}"
        );
        assert!(acc.is_complete());
        assert_eq!(acc.message().unwrap()["stop_reason"], "end_turn");
    }
    // A stop reason later reset to null does not count.
    let mut acc = started();
    acc.apply(None, STOP_DELTA).unwrap();
    acc.apply(
        None,
        r#"{"type":"message_delta","delta":{"stop_reason":null}}"#,
    )
    .unwrap();
    assert_eq!(acc.apply(None, "[DONE]"), Ok(Update::Nothing));
}

#[test]
fn nothing_after_message_stop_counts() {
    let mut acc = started();
    acc.apply(None, STOP_DELTA).unwrap();
    acc.apply(None, r#"{"type":"message_stop"}"#).unwrap();
    let before = acc.message().cloned();
    for (name, data) in [
        (
            Some("error"),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"late"}}"#,
        ),
        (
            None,
            r#"{"type":"error","error":{"type":"api_error","message":"late"}}"#,
        ),
        (
            None,
            r#"{"type":"message_start","message":{"id":"msg_b","content":[]}}"#,
        ),
        (Some("message_delta"), "{not json"),
        (None, HI),
        (None, "[DONE]"),
    ] {
        assert_eq!(acc.apply(name, data), Ok(Update::Nothing), "{data}");
    }
    assert_eq!(acc.message().cloned(), before);
}

#[test]
fn the_answer_is_bounded() {
    // Text mode keeps no text: endless deltas cost nothing.
    let mut acc = Accumulator::without_text().with_cap(2000);
    for e in [START, TEXT_START] {
        acc.apply(None, e).unwrap();
    }
    let held = acc.held_bytes();
    for _ in 0..10_000 {
        acc.apply(None, HI).unwrap();
    }
    assert_eq!(acc.held_bytes(), held);
    // Kept text, tool input and blocks are charged, and refused past the cap.
    let mut acc = Accumulator::new().with_cap(2000);
    for e in [START, TEXT_START] {
        acc.apply(None, e).unwrap();
    }
    let refused = (0..1000).find_map(|_| acc.apply(None, HI).err());
    assert_eq!(
        refused,
        Some(Malformed("the answer is larger than 2000 bytes".into()))
    );
    assert!(acc.held_bytes() <= 2000);
    let mut acc = Accumulator::without_text().with_cap(3000);
    acc.apply(None, START).unwrap();
    let refused = (0..1000).find_map(|i| {
        let block = format!(
            r#"{{"type":"content_block_start","index":{i},"content_block":{{"type":"text","text":""}}}}"#
        );
        acc.apply(None, &block).err()
    });
    assert!(refused.is_some());
    // A tool input of tiny values is charged for its parse too.
    let mut acc = Accumulator::without_text().with_cap(4000);
    acc.apply(None, START).unwrap();
    acc.apply(None, r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#).unwrap();
    let json = format!("[{}1]", "1,".repeat(200));
    let delta = json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":json}});
    acc.apply(None, &delta.to_string()).unwrap();
    assert_eq!(
        acc.apply(None, r#"{"type":"content_block_stop","index":0}"#),
        Err(Malformed("the answer is larger than 4000 bytes".into()))
    );
    // An event that would outweigh the cap once parsed is refused unparsed.
    let mut acc = Accumulator::new().with_cap(4000);
    let ping = format!(r#"{{"type":"ping","x":[{}1]}}"#, "1,".repeat(200));
    assert_eq!(
        acc.apply(None, &ping),
        Err(Malformed(
            "an event larger than 4000 bytes in memory".into()
        ))
    );
    assert_eq!(Accumulator::new().cap, MAX_MESSAGE_BYTES);
    assert_eq!(describe_size(MAX_MESSAGE_BYTES), "32 MiB");
}

#[test]
fn weight_counts_values_outside_strings() {
    assert_eq!(weight("1"), 1 + NODE_BYTES);
    assert_eq!(weight("[1,2]"), 5 + 3 * NODE_BYTES);
    assert_eq!(weight(r#"{"a":"x,[{:\"]"}"#), 16 + 3 * NODE_BYTES);
}

/// Applies `events` twice, once through `apply` (fast path where it applies) and
/// once through the `Value` path alone, and checks every result, the final
/// message and the tool-input buffers agree.
fn assert_paths_agree(events: &[(Option<&str>, &str)]) {
    let mut fast = Accumulator::new();
    let mut slow = Accumulator::new();
    for (i, (name, data)) in events.iter().enumerate() {
        let f = fast.apply(*name, data);
        let s = slow.apply_value(*name, data);
        assert_eq!(f, s, "event {i}: {name:?} {data}");
    }
    assert_eq!(fast.message, slow.message);
    assert_eq!(fast.json_buffers, slow.json_buffers);
    assert_eq!(fast.stopped, slow.stopped);
    assert_eq!(fast.complete, slow.complete);
    assert_eq!(fast.held, slow.held);
}

fn fixture_events(bytes: &[u8]) -> Vec<(Option<String>, String)> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    parser.feed(bytes, &mut events).unwrap();
    events.extend(parser.finish());
    events.into_iter().map(|e| (e.name, e.data)).collect()
}

/// Every recorded stream in tests/fixtures.
const STREAM_FIXTURES: [&[u8]; 5] = [
    include_bytes!("../../tests/fixtures/text.sse"),
    include_bytes!("../../tests/fixtures/thinking.sse"),
    include_bytes!("../../tests/fixtures/tool.sse"),
    include_bytes!("../../tests/fixtures/tool_use.sse"),
    include_bytes!("../../tests/fixtures/truncated_tool.sse"),
];

#[test]
fn fast_path_matches_the_value_path_on_every_fixture() {
    for bytes in STREAM_FIXTURES {
        let events = fixture_events(bytes);
        let named: Vec<_> = events
            .iter()
            .map(|(n, d)| (n.as_deref(), d.as_str()))
            .collect();
        assert_paths_agree(&named);
        // The same stream from a gateway that sends no `event:` lines.
        let unnamed: Vec<_> = events.iter().map(|(_, d)| (None, d.as_str())).collect();
        assert_paths_agree(&unnamed);
    }
}

#[test]
fn fast_path_takes_plain_deltas_and_nothing_odd() {
    use fast::{Kind, parse_delta};
    let d = parse_delta(
        r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"a\"b\n\u00e9"}}"#,
        true,
    )
    .unwrap();
    assert_eq!(
        (d.index, d.kind, d.text.as_ref()),
        (3, Kind::Text, "a\"b\n\u{e9}")
    );
    let d = parse_delta(
        r#" {"delta":{"partial_json":"{\"a\"","type":"input_json_delta"},"index":1} "#,
        false,
    )
    .unwrap();
    assert_eq!(
        (d.index, d.kind, d.text.as_ref()),
        (1, Kind::InputJson, "{\"a\"")
    );
    for odd in [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":"y"}}"#,
        r#"{"type":"content_block_delta","index":0,"index":0,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":0.0,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":"0","delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":["text_delta","x"]}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"s"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}} x"#,
        r#"{"type":"message_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"index":0,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"[0,{"type":"text_delta","text":"x"}]"#,
        "[DONE]",
    ] {
        assert!(parse_delta(odd, true).is_none(), "{odd}");
    }
}

#[test]
fn fast_path_matches_the_value_path_on_odd_events() {
    let start =
        r#"{"type":"message_start","message":{"id":"m","content":[],"usage":{"output_tokens":1}}}"#;
    let blocks = [
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"pre"}}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":""}}"#,
        r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
        r#"{"type":"content_block_start","index":3,"content_block":{"type":"text","text":5}}"#,
    ];
    let odd = [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\"b\\n\u00e9 \ud83d\ude00"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"text":"before type","type":"text_delta","extra":[1,{"k":null}],"extra":2}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","t\u0065xt":"escaped key"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":"last wins"}}"#,
        r#"{"type":"content_block_delta","index":0,"index":1,"delta":{"type":"thinking_delta","thinking":"dup index"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":7}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"text":"no type"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":9,"text":"numeric type"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"to thinking"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"think"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"to text"}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
        r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"onto a number"}}"#,
        r#"{"type":"content_block_delta","index":1e0,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":18446744073709551616,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":9,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":"text_delta"}"#,
        r#"{"type":"content_block_delta","index":0,"delta":["text_delta","x"]}"#,
        r#"[0,{"type":"text_delta","text":"x"}]"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}} trailing"#,
        "  {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ws\"}}\n ",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"bad \ud800 surrogate"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"unterminated"#,
        r#"{"type":"message_stop","index":0,"delta":{"type":"text_delta","text":"named delta, typed stop"}}"#,
        r#"{"type":"content_block_delta","type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"dup type"}}"#,
        r#"{"type":"content_block_delta","type":"ping","index":0,"delta":{"type":"text_delta","text":"dup type"}}"#,
        "[DONE]",
        "",
    ];
    let mut events: Vec<(Option<&str>, &str)> = Vec::new();
    // Deltas before message_start are malformed on both paths.
    events.push((Some("content_block_delta"), odd[0]));
    events.push((None, odd[0]));
    events.push((Some("message_start"), start));
    for b in blocks {
        events.push((Some("content_block_start"), b));
    }
    for d in odd {
        events.push((Some("content_block_delta"), d));
        events.push((None, d));
    }
    events.push((Some("message_stop"), r#"{"type":"message_stop"}"#));
    // After message_stop, deltas change nothing.
    events.push((Some("content_block_delta"), odd[0]));
    events.push((None, odd[0]));
    assert_paths_agree(&events);
}

#[test]
fn without_text_reports_the_same_and_keeps_the_rest() {
    for bytes in STREAM_FIXTURES {
        let mut full = Accumulator::new();
        let mut lean = Accumulator::without_text();
        for (name, data) in fixture_events(bytes) {
            assert_eq!(
                full.apply(name.as_deref(), &data),
                lean.apply(name.as_deref(), &data)
            );
        }
        assert_eq!(full.is_complete(), lean.is_complete());
        // The full message with text and thinking emptied is the lean one (every
        // fixture starts its blocks with empty text).
        let mut expected = full.into_message().unwrap();
        for block in expected["content"].as_array_mut().unwrap() {
            for key in ["text", "thinking"] {
                if block.get(key).is_some_and(Value::is_string) {
                    block[key] = json!("");
                }
            }
        }
        assert_eq!(lean.into_message().unwrap(), expected);
    }
}
