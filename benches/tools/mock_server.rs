//! A mock Messages API for the benchmarks (benches/run.sh): loopback only, one
//! connection at a time, and bounded: it exits by itself after `--max-requests`
//! requests or `--max-seconds` seconds, whichever comes first.
//!
//!     cargo run --release -p cs-msg-bench --bin mock_server -- [--port P] [--max-requests N] [--max-seconds S] [--log PATH]
//!
//! The first line on stdout is the base URL to use (`http://127.0.0.1:PORT`). What a
//! request gets is chosen by `key=value` segments in front of `/v1/messages`, so one
//! server serves every benchmark: `--base-url http://127.0.0.1:PORT/deltas=20000/size=8`.
//!
//! | segment | meaning | default |
//! |---|---|---|
//! | `deltas=N` | number of text deltas (streamed) or of text pieces (one-shot) | 20 |
//! | `size=B` | bytes of text per delta | 8 |
//! | `pause=MS` | streamed: pause after `content_block_start`, before the first delta | 0 |
//! | `delay=MS` | one-shot: wait before answering | 0 |
//!
//! A request whose JSON body has `"stream": true` gets an event stream (chunked, one
//! chunk per event, written at full speed through a 64 KiB buffer); any other request
//! gets the whole message as JSON. The wire bytes of each stream shape are built once.
//!
//! With `--log PATH`, every stream that pauses appends one line to PATH: the wall-clock
//! time (ns since the Unix epoch) just before its first delta was written, for
//! `bench_probe first-byte --server-log PATH`.
//!
//! Why not the tests' scripted server (`tests/cli/server.rs`, which `batch_mock` uses):
//! this one is the other end of a throughput measurement. It writes a 20,000-delta
//! stream pre-framed in 64 KiB writes and keeps no record of requests, where the tests'
//! server writes each part with its own write and records every request; and it stamps
//! the moment of the first delta's write for the probe.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

fn main() {
    let mut port = 0u16;
    let mut max_requests = 1000u64;
    let mut max_seconds = 600u64;
    let mut verbose = false;
    let mut log: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--log" {
            log = Some(args.next().unwrap_or_else(|| usage(&arg)).into());
            continue;
        }
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| usage(&arg))
        };
        match arg.as_str() {
            "--port" => port = u16::try_from(value()).unwrap_or_else(|_| usage("--port")),
            "--max-requests" => max_requests = value(),
            "--max-seconds" => max_seconds = value(),
            "-v" | "--verbose" => verbose = true,
            _ => usage(&arg),
        }
    }
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock_server: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("bound address");
    println!("http://{addr}");
    let _ = std::io::stdout().flush();

    // The time limit holds even while a client hangs mid-request.
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max_seconds));
        eprintln!("mock_server: time limit of {max_seconds} s reached, exiting");
        std::process::exit(0);
    });

    let mut streams: HashMap<(usize, usize), Stream> = HashMap::new();
    let mut served = 0u64;
    while served < max_requests {
        let Ok((conn, _)) = listener.accept() else {
            continue;
        };
        served += 1;
        let started = Instant::now();
        match serve(conn, &mut streams, log.as_deref()) {
            Ok(what) if verbose => eprintln!("mock_server: {what} in {:?}", started.elapsed()),
            Ok(_) => {}
            Err(e) => eprintln!("mock_server: request {served}: {e}"),
        }
    }
    if verbose {
        eprintln!("mock_server: served {served} requests, exiting");
    }
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "mock_server: bad argument {arg:?}\nusage: mock_server [--port P] [--max-requests N] [--max-seconds S] [--log PATH] [-v]"
    );
    std::process::exit(2);
}

/// The parameters of one request, from its path.
struct Params {
    deltas: usize,
    size: usize,
    pause: Duration,
    delay: Duration,
}

fn params(path: &str) -> Option<Params> {
    let prefix = path.strip_suffix("/v1/messages")?;
    let mut p = Params {
        deltas: 20,
        size: 8,
        pause: Duration::ZERO,
        delay: Duration::ZERO,
    };
    for segment in prefix.split('/').filter(|s| !s.is_empty()) {
        let (key, value) = segment.split_once('=')?;
        let n: u64 = value.parse().ok()?;
        match key {
            "deltas" => p.deltas = usize::try_from(n).ok()?,
            "size" => p.size = usize::try_from(n).ok()?.max(1),
            "pause" => p.pause = Duration::from_millis(n),
            "delay" => p.delay = Duration::from_millis(n),
            _ => return None,
        }
    }
    Some(p)
}

/// Reads one request, answers it, closes the connection. Returns what was served.
fn serve(
    mut conn: TcpStream,
    streams: &mut HashMap<(usize, usize), Stream>,
    log: Option<&std::path::Path>,
) -> std::io::Result<String> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_nodelay(true)?;
    let (path, body) = read_request(&mut conn)?;
    let Some(p) = params(&path) else {
        conn.write_all(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 64\r\nconnection: close\r\n\r\n{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"\"}}",
        )?;
        return Ok(format!("404 for {path}"));
    };
    let streaming = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("stream").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    if !streaming {
        std::thread::sleep(p.delay);
        let message = one_shot(p.deltas, p.size);
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_mock\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            message.len()
        );
        let mut out = BufWriter::with_capacity(64 * 1024, &mut conn);
        out.write_all(head.as_bytes())?;
        out.write_all(message.as_bytes())?;
        out.flush()?;
        return Ok(format!("one-shot of {} bytes", message.len()));
    }
    let stream = streams
        .entry((p.deltas, p.size))
        .or_insert_with(|| Stream::new(p.deltas, p.size));
    conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nrequest-id: req_mock\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    )?;
    conn.write_all(&stream.head)?;
    std::thread::sleep(p.pause);
    let first_delta_at = SystemTime::now();
    // The body is already chunk-framed; writing it in 64 KiB pieces is what a buffered
    // server does.
    for piece in stream.rest.chunks(64 * 1024) {
        conn.write_all(piece)?;
    }
    if let Some(path) = log.filter(|_| !p.pause.is_zero()) {
        let ns = first_delta_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{ns}")?;
    }
    Ok(format!(
        "stream of {} deltas, {} bytes",
        p.deltas,
        stream.head.len() + stream.rest.len()
    ))
}

/// Returns the request path and body. Answers `Expect: 100-continue` (curl sends it
/// for larger bodies).
fn read_request(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed mid-request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let mut length = 0usize;
    let mut expect_continue = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("expect") {
                expect_continue = value.eq_ignore_ascii_case("100-continue");
            }
        }
    }
    if length > 64 * 1024 * 1024 {
        return Err(std::io::Error::other("request body too large"));
    }
    let mut body = buf[header_end..].to_vec();
    if expect_continue && body.len() < length {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    while body.len() < length {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed mid-body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((path, body))
}

/// The text of delta `i`: `size` bytes of letters, with a space, and now and then a
/// newline (escaped in JSON, as real answers have) so parsers cannot skip unescaping.
fn delta_text(i: usize, size: usize) -> String {
    let mut text: String = (0..size)
        .map(|j| char::from(b'a' + ((i * 7 + j) % 26) as u8))
        .collect();
    if size > 1 {
        let last = if i % 50 == 49 { "\n" } else { " " };
        text.replace_range(size - 1.., last);
    }
    text
}

fn one_shot(deltas: usize, size: usize) -> String {
    let text: String = (0..deltas).map(|i| delta_text(i, size)).collect();
    serde_json::json!({
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": "mock",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": deltas}
    })
    .to_string()
}

/// A streamed answer, chunk-framed: `head` goes out before the pause, `rest` after.
struct Stream {
    head: Vec<u8>,
    rest: Vec<u8>,
}

impl Stream {
    fn new(deltas: usize, size: usize) -> Stream {
        let mut head = Vec::new();
        event(
            &mut head,
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_mock","type":"message","role":"assistant","model":"mock","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}"#,
        );
        event(
            &mut head,
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        );
        event(&mut head, "ping", r#"{"type":"ping"}"#);
        let mut rest = Vec::with_capacity(deltas * (size + 120));
        for i in 0..deltas {
            let text = serde_json::to_string(&delta_text(i, size)).expect("a string serializes");
            event(
                &mut rest,
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}}"#
                ),
            );
        }
        event(
            &mut rest,
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        );
        event(
            &mut rest,
            "message_delta",
            &format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{deltas}}}}}"#
            ),
        );
        event(&mut rest, "message_stop", r#"{"type":"message_stop"}"#);
        rest.extend_from_slice(b"0\r\n\r\n");
        Stream { head, rest }
    }
}

/// Appends one SSE event as one HTTP chunk.
fn event(out: &mut Vec<u8>, name: &str, data: &str) {
    let payload = format!("event: {name}\ndata: {data}\n\n");
    out.extend_from_slice(format!("{:x}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload.as_bytes());
    out.extend_from_slice(b"\r\n");
}
