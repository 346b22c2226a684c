//! A loopback stand-in for the Messages API, for `benches/batch.sh`: every
//! `POST /v1/messages` is answered after a fixed delay with a small JSON message that
//! echoes the last text of the request. std only, one thread per connection,
//! keep-alive. It prints its base URL on the first line of stdout, and stops by itself
//! once no request has come for `--idle-exit` seconds (and after `--max-secs` at most).
//!
//!     cargo run --release --example batch_mock -- --delay-ms 100

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    println!("http://{addr}");
    let _ = std::io::stdout().flush();

    let delay = settings.delay;
    // Stops by itself: when idle for too long, or after the hard limit.
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let watch = Arc::clone(&last);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let idle = started.elapsed().as_millis() as u64 - watch.load(Ordering::Relaxed);
            if Duration::from_millis(idle) > settings.idle_exit || started.elapsed() > settings.max
            {
                std::process::exit(0);
            }
        }
    });
    let counter = Arc::new(AtomicU64::new(0));
    for stream in listener.incoming().flatten() {
        let (last, counter) = (Arc::clone(&last), Arc::clone(&counter));
        std::thread::spawn(move || {
            let _ = serve(stream, started, &last, &counter, delay);
        });
    }
}

fn usage() -> ! {
    eprintln!("usage: batch_mock [--delay-ms MS] [--idle-exit SECS] [--max-secs SECS]");
    std::process::exit(2);
}

fn serve(
    stream: TcpStream,
    started: Instant,
    last: &AtomicU64,
    counter: &AtomicU64,
    delay: Duration,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(()); // the client closed the connection
            }
            if first && line.trim().is_empty() {
                continue;
            }
            first = false;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let n = counter.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(delay);
        let answer = answer(&body, n).to_string();
        write!(
            writer,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nrequest-id: req_mock_{n}\r\n\r\n{answer}",
            answer.len()
        )?;
        writer.flush()?;
        last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
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
