//! A mock Messages API for the benchmarks that leave loopback or plain HTTP behind
//! (benches/tls.sh, benches/rtt.sh, benches/scale.sh, benches/toolloop.sh): keep-alive,
//! one thread per connection, optionally TLS (rustls), listening on any address (so it
//! can sit in a network namespace behind a veth pair), counting the connections it
//! accepts. Bounded: it exits once no request has come for `--idle-exit` seconds, and
//! after `--max-secs` at most.
//!
//!     cargo run --release -p cs-msg-bench --bin net_mock -- [--listen ADDR:PORT]
//!         [--delay-ms MS] [--tls CERT.pem KEY.pem] [--tool-turns N] [--text-bytes B]
//!         [--idle-exit SECS] [--max-secs SECS]
//!
//! The first line on stdout is the base URL (`http://ADDR:PORT`, or `https://` with
//! `--tls`). Every `POST /v1/messages` is answered after `--delay-ms` (the server's
//! time): with an event stream (chunked, the whole stream and its terminating chunk in
//! one write, as a server that has the answer at once sends it) when the body says
//! `"stream": true`, otherwise with the message as JSON (content-length).
//!
//! `--tool-turns N`: a request whose conversation holds fewer than N user turns with a
//! `tool_result` block is answered with a `tool_use` of the tool `noop` (input `{}`);
//! the next one with text. One `--exec` loop thus takes N + 1 requests.
//!
//! `GET /stats` answers `connections C\nhandshakes H\nresumed S\nrequests R\n`: the
//! connections that carried at least one `POST` (so the stats requests themselves do
//! not count), their TLS handshakes (0 without `--tls`) and how many of those resumed
//! an earlier session, and the `POST`s answered. `GET /reset` sets them to zero.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Settings {
    listen: SocketAddr,
    delay: Duration,
    tls: Option<(PathBuf, PathBuf)>,
    tool_turns: usize,
    text_bytes: usize,
    idle_exit: Duration,
    max: Duration,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    handshakes: AtomicU64,
    resumed: AtomicU64,
    requests: AtomicU64,
}

fn main() {
    let settings = parse_args();
    let listener = TcpListener::bind(settings.listen).unwrap_or_else(|e| {
        eprintln!("net_mock: cannot listen on {}: {e}", settings.listen);
        std::process::exit(1);
    });
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&format!("no local address: {e}")));
    let tls = settings
        .tls
        .as_ref()
        .map(|(cert, key)| tls_config(cert, key));
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("{scheme}://{addr}");
    let _ = std::io::stdout().flush();

    let counters = Arc::new(Counters::default());
    let last = Arc::new(Mutex::new(Instant::now()));
    {
        let (last, idle, max) = (Arc::clone(&last), settings.idle_exit, settings.max);
        std::thread::spawn(move || {
            let started = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let idle_for = last
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .elapsed();
                if idle_for > idle || started.elapsed() > max {
                    std::process::exit(0);
                }
            }
        });
    }
    let answer = Arc::new(Answer {
        delay: settings.delay,
        tool_turns: settings.tool_turns,
        text: "x".repeat(settings.text_bytes.max(1)),
    });
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let (counters, last, answer, tls) = (
            Arc::clone(&counters),
            Arc::clone(&last),
            Arc::clone(&answer),
            tls.clone(),
        );
        // Small stacks: at -j 64 the mock has 64 of these threads.
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = conn.set_nodelay(true);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
                let result = match tls {
                    None => serve(conn, None, &counters, &last, &answer),
                    Some(config) => match rustls::ServerConnection::new(config) {
                        Ok(session) => {
                            let mut stream = rustls::StreamOwned::new(session, conn);
                            // The handshake first, to learn whether it resumed a session.
                            while stream.conn.is_handshaking() {
                                if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                                    return eprintln!("net_mock: TLS handshake: {e}");
                                }
                            }
                            let resumed = stream.conn.handshake_kind()
                                == Some(rustls::HandshakeKind::Resumed);
                            serve(stream, Some(resumed), &counters, &last, &answer)
                        }
                        Err(e) => Err(std::io::Error::other(e)),
                    },
                };
                if let Err(e) = result
                    && e.kind() != std::io::ErrorKind::UnexpectedEof
                    && e.kind() != std::io::ErrorKind::ConnectionReset
                {
                    eprintln!("net_mock: {e}");
                }
            });
        if let Err(e) = spawned {
            eprintln!("net_mock: cannot start a connection thread: {e}");
        }
    }
}

fn parse_args() -> Settings {
    let mut s = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        delay: Duration::ZERO,
        tls: None,
        tool_turns: 0,
        text_bytes: 16,
        idle_exit: Duration::from_secs(20),
        max: Duration::from_secs(900),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let number = |v: String| v.parse::<f64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--listen" => s.listen = value().parse().unwrap_or_else(|_| usage()),
            "--delay-ms" => s.delay = Duration::from_secs_f64(number(value()) / 1000.0),
            "--tls" => {
                let cert = PathBuf::from(value());
                s.tls = Some((cert, PathBuf::from(value())));
            }
            "--tool-turns" => s.tool_turns = number(value()) as usize,
            "--text-bytes" => s.text_bytes = number(value()) as usize,
            "--idle-exit" => s.idle_exit = Duration::from_secs_f64(number(value())),
            "--max-secs" => s.max = Duration::from_secs_f64(number(value())),
            _ => usage(),
        }
    }
    s
}

fn usage() -> ! {
    eprintln!(
        "usage: net_mock [--listen ADDR:PORT] [--delay-ms MS] [--tls CERT.pem KEY.pem] \
         [--tool-turns N] [--text-bytes B] [--idle-exit SECS] [--max-secs SECS]"
    );
    std::process::exit(2);
}

fn fail(message: &str) -> ! {
    eprintln!("net_mock: {message}");
    std::process::exit(1);
}

fn tls_config(cert: &PathBuf, key: &PathBuf) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .unwrap_or_else(|e| fail(&format!("{}: {e:?}", cert.display())));
    let key = PrivateKeyDer::from_pem_file(key)
        .unwrap_or_else(|e| fail(&format!("{}: {e:?}", key.display())));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .unwrap_or_else(|e| fail(&format!("TLS configuration: {e}")));
    Arc::new(config)
}

struct Answer {
    delay: Duration,
    tool_turns: usize,
    text: String,
}

/// Serves requests on one connection until the client closes it. `tls`: whether its
/// handshake resumed a session, on a TLS connection.
fn serve(
    stream: impl Read + Write,
    tls: Option<bool>,
    counters: &Counters,
    last: &Mutex<Instant>,
    answer: &Answer,
) -> std::io::Result<()> {
    let mut conn = BufReader::with_capacity(16 * 1024, stream);
    let mut counted = false;
    let mut head = String::new();
    loop {
        // The request line and headers.
        let mut method_path = None;
        let mut length = 0usize;
        let mut close = false;
        loop {
            head.clear();
            if conn.read_line(&mut head)? == 0 {
                return Ok(());
            }
            let line = head.trim_end();
            if method_path.is_none() {
                if line.is_empty() {
                    continue;
                }
                let mut words = line.split(' ');
                let method = words.next().unwrap_or("").to_owned();
                let path = words.next().unwrap_or("").to_owned();
                method_path = Some((method, path));
                continue;
            }
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim(), value.trim());
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                } else if name.eq_ignore_ascii_case("expect") {
                    conn.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                    conn.get_mut().flush()?;
                }
            }
        }
        let (method, path) = method_path.unwrap_or_default();
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body)?;
        *last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();

        let response = match (method.as_str(), path.as_str()) {
            ("GET", "/stats") => {
                let text = format!(
                    "connections {}\nhandshakes {}\nresumed {}\nrequests {}\n",
                    counters.connections.load(Ordering::SeqCst),
                    counters.handshakes.load(Ordering::SeqCst),
                    counters.resumed.load(Ordering::SeqCst),
                    counters.requests.load(Ordering::SeqCst)
                );
                with_length("200 OK", "text/plain", text.as_bytes())
            }
            ("GET", "/reset") => {
                counters.connections.store(0, Ordering::SeqCst);
                counters.handshakes.store(0, Ordering::SeqCst);
                counters.resumed.store(0, Ordering::SeqCst);
                counters.requests.store(0, Ordering::SeqCst);
                with_length("200 OK", "text/plain", b"reset\n")
            }
            ("POST", p) if p.ends_with("/v1/messages") => {
                if !counted {
                    counted = true;
                    counters.connections.fetch_add(1, Ordering::SeqCst);
                    if let Some(resumed) = tls {
                        counters.handshakes.fetch_add(1, Ordering::SeqCst);
                        counters
                            .resumed
                            .fetch_add(u64::from(resumed), Ordering::SeqCst);
                    }
                }
                let n = counters.requests.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(answer.delay);
                answer.respond(&body, n)
            }
            _ => with_length(
                "404 Not Found",
                "application/json",
                br#"{"type":"error","error":{"type":"not_found_error","message":"no such path"}}"#,
            ),
        };
        conn.get_mut().write_all(&response)?;
        conn.get_mut().flush()?;
        if close {
            return Ok(());
        }
    }
}

fn with_length(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nrequest-id: req_mock\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl Answer {
    /// The whole HTTP response to one `POST /v1/messages`.
    fn respond(&self, body: &[u8], n: u64) -> Vec<u8> {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let streaming = request["stream"].as_bool().unwrap_or(false);
        let results = request["messages"].as_array().map_or(0, |turns| {
            turns
                .iter()
                .filter(|t| {
                    t["role"] == "user"
                        && t["content"]
                            .as_array()
                            .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
                })
                .count()
        });
        let id = format!("msg_{n}");
        let usage = json!({"input_tokens": 1, "output_tokens": 1});
        let tool = results < self.tool_turns;
        let (block, stop) = if tool {
            let call = format!("toolu_{n}");
            (
                json!({"type": "tool_use", "id": call, "name": "noop", "input": {}}),
                "tool_use",
            )
        } else {
            (json!({"type": "text", "text": self.text}), "end_turn")
        };
        if !streaming {
            let message = json!({
                "id": id, "type": "message", "role": "assistant", "model": "mock",
                "content": [block], "stop_reason": stop, "stop_sequence": null,
                "usage": usage,
            });
            return with_length("200 OK", "application/json", message.to_string().as_bytes());
        }
        let (start, delta) = if tool {
            (
                json!({"type": "tool_use", "id": block["id"], "name": "noop", "input": {}}),
                json!({"type": "input_json_delta", "partial_json": "{}"}),
            )
        } else {
            (
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": self.text}),
            )
        };
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": id, "type": "message", "role": "assistant", "model": "mock",
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 1, "output_tokens": 0}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": start}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": delta}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": null},
                    "usage": {"output_tokens": 1}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nrequest-id: req_mock\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for (name, data) in events {
            let event = format!("event: {name}\ndata: {data}\n\n");
            out.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
            out.extend_from_slice(event.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }
}
