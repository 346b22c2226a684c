//! A loopback stand-in for the Messages API, for `benches/batch.sh`: every
//! `POST /v1/messages` is answered after a fixed delay with a small JSON message that
//! echoes the last text of the request. It is the tests' scripted server
//! (`tests/cli/server.rs`: one thread per connection, keep-alive) with one handler.
//! It prints its base URL on the first line of stdout, and stops by itself once no
//! request has come for `--idle-exit` seconds (and after `--max-secs` at most).
//!
//!     cargo run --release -p cs-msg-bench --bin batch_mock -- --delay-ms 100

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// The tests' server; this mock uses a part of its builders.
#[allow(dead_code)]
#[path = "../../tests/cli/server.rs"]
mod server;

use server::{Response, Server};

struct Settings {
    delay: Duration,
    idle_exit: Duration,
    max: Duration,
}

fn main() {
    let mut settings = Settings {
        delay: Duration::from_millis(100),
        idle_exit: Duration::from_secs(10),
        max: Duration::from_secs(600),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: f64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage());
        match flag.as_str() {
            "--delay-ms" => settings.delay = Duration::from_secs_f64(value / 1000.0),
            "--idle-exit" => settings.idle_exit = Duration::from_secs_f64(value),
            "--max-secs" => settings.max = Duration::from_secs_f64(value),
            _ => usage(),
        }
    }
    let delay = settings.delay;
    let server = Server::new(move |req| {
        Response::json(200, answer(&req.body, req.index as u64).to_string())
            .header("request-id", format!("req_mock_{}", req.index))
            .delay(delay)
    });
    println!("{}", server.url());
    let _ = std::io::stdout().flush();

    // Stops by itself: when idle for too long, or after the hard limit. Idle counts
    // from the last request's arrival (its answer is `delay` later).
    let started = Instant::now();
    let (mut seen, mut last) = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let count = server.request_count();
        if count != seen {
            (seen, last) = (count, Instant::now());
        }
        if last.elapsed() > settings.idle_exit || started.elapsed() > settings.max {
            std::process::exit(0);
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: batch_mock [--delay-ms MS] [--idle-exit SECS] [--max-secs SECS]");
    std::process::exit(2);
}

/// A message whose text is "echo: " and the last text block of the request.
fn answer(body: &[u8], n: u64) -> Value {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| match &m["content"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(blocks) => blocks
                .iter()
                .rev()
                .find_map(|b| b["text"].as_str().map(str::to_owned)),
            _ => None,
        })
        .unwrap_or_default();
    json!({
        "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": "mock",
        "content": [{"type": "text", "text": format!("echo: {text}")}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 1, "output_tokens": 1}
    })
}
