//! Micro-benchmarks of the pure core: the SSE parser alone, and parser + accumulator,
//! on a generated ~10 MB stream read in 64 KiB chunks (as src/stream.rs reads).
//! `cargo bench --bench parse`; throughput is reported in MiB/s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cs_msg::message::{Accumulator, Update};
use cs_msg::sse::SseParser;

/// A text answer shaped like the API's: message_start, one text block of many short
/// deltas (1 to 24 bytes, some with escapes and multi-byte characters), a ping now
/// and then, and the closing events. About `target` bytes.
fn stream(target: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(target + 4096);
    out.extend_from_slice(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4.6\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    let words = [
        "the",
        " stream",
        " of",
        " tokens",
        ",",
        " quoted \\\"text\\\"",
        "\\n",
        " caf\u{e9}",
        " \u{1f600}",
        " and",
        " a tab\\t",
        " longer-than-usual-token",
    ];
    let mut i = 0usize;
    while out.len() < target {
        let text = words[i % words.len()];
        out.extend_from_slice(
            format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
            )
            .as_bytes(),
        );
        if i % 500 == 499 {
            out.extend_from_slice(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
        }
        i += 1;
    }
    out.extend_from_slice(
        format!(
            "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{i}}}}}\n\n\
event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        )
        .as_bytes(),
    );
    out
}

const CHUNK: usize = 64 * 1024;

fn parse_only(bytes: &[u8]) -> usize {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut count = 0;
    for chunk in bytes.chunks(CHUNK) {
        parser.feed(chunk, &mut events).expect("short lines");
        count += events.len();
        events.clear();
    }
    count + usize::from(parser.finish().is_some())
}

fn parse_and_accumulate(bytes: &[u8]) -> usize {
    let mut parser = SseParser::new();
    let mut acc = Accumulator::new();
    let mut events = Vec::new();
    let mut text = 0;
    for chunk in bytes.chunks(CHUNK) {
        parser.feed(chunk, &mut events).expect("short lines");
        for event in events.drain(..) {
            if let Update::TextDelta(_, t) = acc
                .apply(event.name.as_deref(), &event.data)
                .expect("well-formed")
            {
                text += t.len();
            }
        }
    }
    assert!(acc.is_complete());
    text
}

fn benches(c: &mut Criterion) {
    let bytes = stream(10 * 1024 * 1024);
    let mut group = c.benchmark_group("stream_10MiB");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(10);
    group.bench_function("sse_parse", |b| b.iter(|| parse_only(black_box(&bytes))));
    group.bench_function("sse_parse+accumulate", |b| {
        b.iter(|| parse_and_accumulate(black_box(&bytes)))
    });
    group.finish();
}

criterion_group! {
    name = parse;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(5));
    targets = benches
}
criterion_main!(parse);
