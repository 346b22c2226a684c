//! The one scripted HTTP/1.1 server for tests that need more than mockito: per-request
//! delays, bodies sent in chunks with pauses between them, connections cut mid-body,
//! stalls, endless bodies, sockets held open after the body, keep-alive, handlers that
//! wait, and a record of every request
//! and of every accepted connection.
//!
//! ```ignore
//! let server = Server::script([
//!     Response::sse(events(&[("message_start", "{...}"), ("message_stop", "{...}")])),
//!     Response::json(200, r#"{"type":"message",...}"#).delay(Duration::from_millis(50)),
//! ]);
//! // ... run cs-msg with --base-url server.url() ...
//! assert_eq!(server.requests()[1].json()["messages"][2]["role"], "user");
//! assert_eq!(server.connections(), 1, "both turns on one connection");
//! ```
//!
//! Or choose each response from the request: `Server::new(|req| ...)`.
//!
//! Bounded: it listens on 127.0.0.1 only; every wait (a delay, a pause, a stall, a held
//! socket) ends as soon as the server is dropped, dropping it shuts every connection
//! down and joins every thread, and a silent client is dropped after [`IDLE`]. A handler
//! that panics, or a script that runs out, answers 500 and fails the test when the
//! server is dropped.
//!
//! `benches/tools/batch_mock.rs` (the batch benchmark's mock) compiles this file too, so
//! it uses std and serde_json only.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connection waits for the client's next bytes before giving up on it: a
/// backstop only (dropping the server ends every wait at once).
pub const IDLE: Duration = Duration::from_secs(60);

/// The largest request body read (a test that sends more is broken).
const MAX_BODY: usize = 256 * 1024 * 1024;

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent: `/v1/messages`, or `host:443` for a CONNECT.
    pub path: String,
    pub version: String,
    /// In the order sent, names as sent.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes (de-chunked if the client sent it chunked).
    pub body: Vec<u8>,
    /// When the whole request had been read.
    pub at: Instant,
    /// Arrival order over the whole server, from 0.
    pub index: usize,
    /// Which accepted connection it came on, from 0 (see [`Server::connections`]).
    pub connection: usize,
    stop: Arc<Stop>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `METHOD PATH VERSION`, as on the wire.
    pub fn request_line(&self) -> String {
        format!("{} {} {}", self.method, self.path, self.version)
    }

    /// The body as text (panics if it is not UTF-8: a test expectation).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("request body is UTF-8")
    }

    /// The body as JSON (panics if it is not JSON: a test expectation).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// For a handler that must wait on something before it answers (another request,
    /// say): sleeps `d`, or less if the server is dropped. Returns false if it was.
    pub fn sleep(&self, d: Duration) -> bool {
        self.stop.sleep(d)
    }
}

/// How the end of a response body is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `content-length` (the sum of the parts, unless a header says otherwise).
    Length,
    /// `transfer-encoding: chunked`, one HTTP chunk per part.
    Chunked,
    /// Neither: `connection: close`, and the body ends when the server closes.
    Close,
}

#[derive(Clone, Debug)]
enum Part {
    Bytes(Vec<u8>),
    Pause(Duration),
}

/// What the server sends for one request. Built with chained calls:
/// `Response::new(200).header("content-type", "text/plain").chunk("a").pause(d).chunk("b")`.
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    parts: Vec<Part>,
    framing: Framing,
    delay: Duration,
    hang_up: bool,
    cut_after: Option<usize>,
    hold: Duration,
    close: bool,
    endless: Option<Vec<u8>>,
}

impl Response {
    /// `status` with no headers and an empty body, framed by `content-length`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            parts: Vec::new(),
            framing: Framing::Length,
            delay: Duration::ZERO,
            hang_up: false,
            cut_after: None,
            hold: Duration::ZERO,
            close: false,
            endless: None,
        }
    }

    /// `status` with a JSON body (sent as is) and `content-type: application/json`.
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("content-type", "application/json")
            .body(body.into())
    }

    /// 200 with an event stream, chunked, one HTTP chunk per event (split after each
    /// blank line), as the API sends it. Build `stream` with [`events`].
    pub fn sse(stream: impl AsRef<str>) -> Response {
        let mut r = Response::new(200)
            .header("content-type", "text/event-stream")
            .chunked();
        for event in stream.as_ref().split_inclusive("\n\n") {
            r = r.chunk(event);
        }
        r
    }

    /// Read the request, then close the connection without answering (after
    /// [`delay`](Self::delay), if one is set).
    pub fn hang_up() -> Response {
        Response {
            hang_up: true,
            ..Response::new(0)
        }
    }

    /// Adds a header (after the framing header the server writes itself; a
    /// `content-length` set here replaces the computed one).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The whole body, as one part.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Response {
        self.parts = vec![Part::Bytes(bytes.into())];
        self
    }

    /// Appends a part to the body: written with one `write`, one HTTP chunk when chunked.
    pub fn chunk(mut self, bytes: impl Into<Vec<u8>>) -> Response {
        self.parts.push(Part::Bytes(bytes.into()));
        self
    }

    /// Appends a pause: the server falls silent for `d` at this point of the body
    /// (a stall, when it is longer than the client's patience).
    pub fn pause(mut self, d: Duration) -> Response {
        self.parts.push(Part::Pause(d));
        self
    }

    /// A pause of `d` between every two parts (a slow, steady stream).
    pub fn pace(mut self, d: Duration) -> Response {
        let mut paced = Vec::with_capacity(self.parts.len() * 2);
        for part in self.parts {
            if matches!(part, Part::Bytes(_)) && !paced.is_empty() {
                paced.push(Part::Pause(d));
            }
            paced.push(part);
        }
        self.parts = paced;
        self
    }

    /// `transfer-encoding: chunked`.
    pub fn chunked(mut self) -> Response {
        self.framing = Framing::Chunked;
        self
    }

    /// No length and no chunks: the body ends when the server closes the connection.
    pub fn close_delimited(mut self) -> Response {
        self.framing = Framing::Close;
        self
    }

    /// Waits `d` after reading the request, before the status line.
    pub fn delay(mut self, d: Duration) -> Response {
        self.delay = d;
        self
    }

    /// Sends only the first `n` bytes of the body (the framing still announces all of
    /// it), then closes: a connection lost mid-body.
    pub fn cut_after(mut self, n: usize) -> Response {
        self.cut_after = Some(n);
        self
    }

    /// After the whole response, keeps the socket open for `d` (reading nothing more),
    /// then closes it: the client must finish from the framing, not from the close.
    pub fn hold(mut self, d: Duration) -> Response {
        self.hold = d;
        self
    }

    /// After the parts, writes `bytes` again and again (one HTTP chunk each when
    /// chunked; best with [`close_delimited`](Self::close_delimited)) until the client
    /// hangs up or the server is dropped: a body that never ends.
    pub fn endless(mut self, bytes: impl Into<Vec<u8>>) -> Response {
        self.endless = Some(bytes.into());
        self
    }

    /// Sends `connection: close` and closes after the response (no keep-alive).
    pub fn close(mut self) -> Response {
        self.close = true;
        self
    }

    fn body_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len(),
                Part::Pause(_) => 0,
            })
            .sum()
    }
}

/// An event stream from `(event, data)` pairs: `event: E\ndata: D\n\n` each.
pub fn events(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(event, data)| format!("event: {event}\ndata: {data}\n\n"))
        .collect()
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A server on `127.0.0.1`, one thread per connection; dropping it stops everything.
pub struct Server {
    url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    handler: Box<Handler>,
    requests: Mutex<Vec<Request>>,
    connections: AtomicUsize,
    stop: Arc<Stop>,
    /// A handle on every open connection's socket (by connection number), to shut it
    /// down on drop.
    open: Mutex<HashMap<usize, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// What went wrong inside the server (a handler's panic, a script run out).
    problems: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the server was dropped, and the wake-up of every wait when it is.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn is_stopped(&self) -> bool {
        *lock(&self.stop.stopped)
    }

    fn sleep(&self, d: Duration) -> bool {
        self.stop.sleep(d)
    }
}

impl Stop {
    /// Sleeps `d`, or less if the server stops. Returns false if it stopped.
    fn sleep(&self, d: Duration) -> bool {
        let guard = lock(&self.stopped);
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        !*guard
    }
}

impl Server {
    /// Answers each request with `handler(&request)`. The request is recorded first.
    pub fn new(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            requests: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            stop: Arc::default(),
            open: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || accept(&listener, &s));
        Server {
            url: format!("http://{addr}"),
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Answers request `n` (in arrival order, from 0) with `responses[n]`; a request
    /// beyond the script gets a 500 and fails the test when the server is dropped.
    pub fn script(responses: impl IntoIterator<Item = Response>) -> Server {
        let script: Vec<Response> = responses.into_iter().collect();
        Server::new(move |req| match script.get(req.index) {
            Some(r) => r.clone(),
            None => panic!(
                "the script has {} responses; request {} came: {}",
                script.len(),
                req.index + 1,
                req.request_line()
            ),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests came so far (without copying them).
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        *lock(&self.shared.stop.stopped) = true;
        self.shared.stop.wake.notify_all();
        // Wakes the blocking accept; if even that fails, leave the thread behind rather
        // than hang the test.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).is_ok();
        if let Some(acceptor) = self.acceptor.take()
            && woke
        {
            let _ = acceptor.join();
        }
        for (_, s) in lock(&self.shared.open).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
        let problems = lock(&self.shared.problems).clone();
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("test server: {}", problems.join("; "));
        }
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.is_stopped() {
            return;
        }
        let Ok(stream) = stream else { continue };
        let n = shared.connections.fetch_add(1, Ordering::SeqCst);
        if let Ok(handle) = stream.try_clone() {
            lock(&shared.open).insert(n, handle);
        }
        let s = Arc::clone(shared);
        let worker = std::thread::spawn(move || {
            let _ = serve(&s, &stream, n);
            // Closes the socket whatever ended the exchange; a client that closed first
            // sees nothing of it.
            let _ = stream.shutdown(Shutdown::Both);
            lock(&s.open).remove(&n);
        });
        lock(&shared.workers).push(worker);
    }
}

/// Serves requests on one connection until either side closes it.
fn serve(shared: &Shared, stream: &TcpStream, connection: usize) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream.try_clone()?;
    loop {
        let Some(mut request) = read_request(&mut reader, &mut writer, connection, &shared.stop)?
        else {
            return Ok(());
        };
        if shared.is_stopped() {
            return Ok(());
        }
        {
            let mut requests = lock(&shared.requests);
            request.index = requests.len();
            requests.push(request.clone());
        }
        let response = match catch_unwind(AssertUnwindSafe(|| (shared.handler)(&request))) {
            Ok(r) => r,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic".to_owned());
                lock(&shared.problems).push(format!(
                    "request {} ({}): {why}",
                    request.index,
                    request.request_line()
                ));
                Response::json(500, r#"{"type":"error","error":{"type":"api_error","message":"test server: see the test's failure"}}"#)
                    .close()
            }
        };
        if !respond(shared, &mut writer, &response)? {
            return Ok(());
        }
    }
}

/// Reads one request; `None` when the client closed the connection between requests.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    connection: usize,
    stop: &Arc<Stop>,
) -> io::Result<Option<Request>> {
    let mut line = String::new();
    // Blank lines before a request line are allowed (HTTP/1.1 robustness).
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut words = line.split_whitespace();
    let (method, path, version) = match (words.next(), words.next(), words.next()) {
        (Some(m), Some(p), Some(v)) => (m.to_owned(), p.to_owned(), v.to_owned()),
        _ => return Err(io::Error::other(format!("bad request line {line:?}"))),
    };
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::other(
                "connection closed inside the request head",
            ));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let value = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if value("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body =
        if value("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            read_chunked(reader)?
        } else {
            let length: usize = match value("content-length") {
                Some(v) => v
                    .parse()
                    .map_err(|_| io::Error::other(format!("bad content-length {v:?}")))?,
                None => 0,
            };
            if length > MAX_BODY {
                return Err(io::Error::other("request body too large"));
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            body
        };
    Ok(Some(Request {
        method,
        path,
        version,
        headers,
        body,
        at: Instant::now(),
        index: 0,
        connection,
        stop: Arc::clone(stop),
    }))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(io::Error::other("request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?; // the CRLF after the data
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes `r`; returns whether the connection stays open for another request.
fn respond(shared: &Shared, w: &mut TcpStream, r: &Response) -> io::Result<bool> {
    if !shared.sleep(r.delay) || r.hang_up {
        return Ok(false);
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    let has = |name: &str| r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    match r.framing {
        Framing::Length if !has("content-length") => {
            head += &format!("content-length: {}\r\n", r.body_len());
        }
        Framing::Length => {}
        Framing::Chunked => head += "transfer-encoding: chunked\r\n",
        Framing::Close => head += "connection: close\r\n",
    }
    if r.close && r.framing != Framing::Close {
        head += "connection: close\r\n";
    }
    for (k, v) in &r.headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    w.write_all(head.as_bytes())?;
    let mut budget = r.cut_after.unwrap_or(usize::MAX);
    for part in &r.parts {
        match part {
            Part::Pause(d) => {
                if !shared.sleep(*d) {
                    return Ok(false);
                }
            }
            Part::Bytes(_) if budget == 0 => return Ok(false), // cut here
            Part::Bytes(bytes) => {
                let send = &bytes[..bytes.len().min(budget)];
                budget -= send.len();
                if !write_part(w, r.framing, bytes, send)? {
                    return Ok(false); // cut mid-body
                }
            }
        }
    }
    if r.cut_after.is_some() {
        return Ok(false);
    }
    if let Some(bytes) = &r.endless
        && !bytes.is_empty()
    {
        // Ends with a write error once the client hangs up (or the drop shuts the
        // socket down), or at the next round once the server stops.
        while !shared.is_stopped() {
            write_part(w, r.framing, bytes, bytes)?;
        }
        return Ok(false);
    }
    if r.framing == Framing::Chunked {
        w.write_all(b"0\r\n\r\n")?;
    }
    w.flush()?;
    if !r.hold.is_zero() {
        shared.sleep(r.hold);
        return Ok(false);
    }
    Ok(!r.close && r.framing != Framing::Close)
}

/// Writes `send`, the whole or a first part of the body part `bytes`, framed; returns
/// whether it was the whole.
fn write_part(w: &mut TcpStream, framing: Framing, bytes: &[u8], send: &[u8]) -> io::Result<bool> {
    if framing == Framing::Chunked {
        if bytes.is_empty() {
            return Ok(true); // an empty chunk would end the body
        }
        w.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())?;
        w.write_all(send)?;
        if send.len() == bytes.len() {
            w.write_all(b"\r\n")?;
        }
    } else {
        w.write_all(send)?;
    }
    Ok(send.len() == bytes.len())
}

// ---- The server's own tests, over raw sockets (exact bytes on the wire) ----

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `raw` on a new connection and reads until the server closes it.
    fn exchange(server: &Server, raw: &str) -> String {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    const POST: &str =
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Case: Kept\r\ncontent-length: 5\r\n\r\nhello";

    #[test]
    fn a_script_answers_in_order_on_one_kept_alive_connection() {
        let server = Server::script([
            Response::json(200, "{\"n\":1}"),
            Response::new(429)
                .header("retry-after", "1")
                .body("two")
                .close(),
        ]);
        let out = exchange(&server, &format!("{POST}{POST}"));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-type: application/json\r\n\r\n{\"n\":1}\
             HTTP/1.1 429 Too Many Requests\r\ncontent-length: 3\r\nconnection: close\r\nretry-after: 1\r\n\r\ntwo"
        );
        assert_eq!(server.connections(), 1);
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        let r = &requests[1];
        assert_eq!(r.request_line(), "POST /v1/messages HTTP/1.1");
        assert_eq!((r.index, r.connection), (1, 0));
        assert_eq!(r.header("x-case"), Some("Kept"));
        assert_eq!(r.headers[1], ("X-Case".to_owned(), "Kept".to_owned()));
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn chunks_pauses_and_a_chunked_request_body() {
        let server = Server::new(|req| {
            Response::sse(events(&[("a", "1"), ("b", req.text())]))
                .pace(Duration::from_millis(20))
                .close()
        });
        let started = Instant::now();
        let out = exchange(
            &server,
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=y\r\nllo\r\n0\r\n\r\n",
        );
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\ncontent-type: text/event-stream\r\n\r\n\
             12\r\nevent: a\ndata: 1\n\n\r\n16\r\nevent: b\ndata: hello\n\n\r\n0\r\n\r\n"
        );
        assert_eq!(server.requests()[0].body, b"hello");
    }

    #[test]
    fn cuts_hang_ups_and_close_delimited_bodies() {
        let server = Server::script([
            Response::new(200).body("0123456789").cut_after(4),
            Response::new(200).chunked().chunk("abcdef").cut_after(2),
            Response::hang_up().delay(Duration::from_millis(10)),
            Response::new(200)
                .close_delimited()
                .chunk("to the ")
                .chunk("end"),
        ]);
        assert_eq!(
            exchange(&server, POST),
            "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123"
        );
        assert_eq!(
            exchange(&server, POST),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nab"
        );
        assert_eq!(exchange(&server, POST), "");
        assert_eq!(
            exchange(&server, POST),
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nto the end"
        );
        assert_eq!(server.connections(), 4);
    }

    #[test]
    fn a_held_socket_stays_open_after_the_body_until_the_server_is_dropped() {
        let server = Server::new(|_| Response::json(200, "{}").hold(Duration::from_secs(600)));
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(POST.as_bytes()).unwrap();
        let expected =
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}";
        let mut got = vec![0; expected.len()];
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected);
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let err = s.read(&mut [0; 1]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{err}"
        );
        // Dropping ends the 600 s hold at once (the test would time out otherwise).
        drop(server);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(s.read(&mut [0; 1]).unwrap(), 0);
    }

    #[test]
    fn an_endless_body_repeats_until_the_client_hangs_up() {
        let server = Server::script([Response::new(200)
            .close_delimited()
            .chunk("head;")
            .endless("ab")]);
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(POST.as_bytes()).unwrap();
        let expected = format!(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhead;{}",
            "ab".repeat(100_000)
        );
        let mut got = vec![0; expected.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected);
        // The writer ends with the connection: the drop joins it.
        drop(s);
        drop(server);
    }

    #[test]
    fn a_handler_may_wait_and_the_drop_ends_its_wait() {
        let server = Server::new(|req| {
            let answer = if req.sleep(Duration::from_secs(600)) {
                "slept"
            } else {
                "woken"
            };
            Response::new(200).body(answer)
        });
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(POST.as_bytes()).unwrap();
        while server.request_count() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Dropping ends the 600 s wait at once; the answer then goes unsent.
        drop(server);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(out, "");
    }

    #[test]
    fn a_script_that_runs_out_fails_the_test() {
        let server = Server::script([]);
        assert!(exchange(&server, POST).starts_with("HTTP/1.1 500 "));
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(server)));
        let message = dropped.unwrap_err().downcast::<String>().unwrap();
        assert_eq!(
            *message,
            "test server: request 0 (POST /v1/messages HTTP/1.1): the script has 0 responses; request 1 came: POST /v1/messages HTTP/1.1"
        );
    }
}
