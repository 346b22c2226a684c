//! Server-sent events: bytes in, events out. Pure and chunk-boundary safe: the same
//! bytes give the same events however they are split (docs/PROTOCOL.md, Streaming).

/// One dispatched event. `name` is the `event:` field, if the server sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub name: Option<String>,
    pub data: String,
}

/// The most one event may take on the wire: every line of it as sent (`event:`,
/// `data:`, `id:`, any field; comments excepted), the unterminated line in progress
/// included. An endless run of short `data:` lines without a blank line counts like
/// one giant line. What the parser holds is never more. (The Go SDK's line limit is
/// the same 32 MiB.)
pub const MAX_EVENT_BYTES: usize = 32 * 1024 * 1024;

/// The stream broke [`MAX_EVENT_BYTES`] (or the parser's own cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLarge {
    /// One line, on its own.
    Line,
    /// The lines of one event together.
    Event,
}

/// A line buffer that grew past this is given back rather than kept for reuse.
const KEEP_LINE_CAPACITY: usize = 64 * 1024;

#[derive(Debug)]
pub struct SseParser {
    /// The current, unterminated line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    /// The `event:` field, as bytes until dispatch (its lossy decoding may be longer).
    name: Option<Vec<u8>>,
    /// Joined `data:` lines; `None` until the first one.
    data: Option<Vec<u8>>,
    /// The bytes of the event's lines so far (all but comments), as sent: what the
    /// cap counts. At least what `name` and `data` hold.
    event_bytes: usize,
    cap: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            name: None,
            data: None,
            event_bytes: 0,
            cap: MAX_EVENT_BYTES,
        }
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser with another limit than [`MAX_EVENT_BYTES`] (tests).
    pub fn with_cap(cap: usize) -> Self {
        SseParser {
            cap,
            ..Self::default()
        }
    }

    /// The bytes held for the event being read: never more than the cap.
    pub fn buffered_bytes(&self) -> usize {
        self.line.len() + self.pending()
    }

    /// The fields of the event being read.
    fn pending(&self) -> usize {
        self.name.as_ref().map_or(0, Vec::len) + self.data.as_ref().map_or(0, Vec::len)
    }

    /// Feeds a chunk; complete events are pushed onto `out`. After an error the
    /// parser is in an unspecified (but safe) state: the stream is to be abandoned.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), TooLarge> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) {
            let terminator = chunk[end];
            if self.line.is_empty() {
                self.process_line(&chunk[..end], out)?;
            } else {
                self.check(self.line.len() + end)?;
                self.line.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out)?;
                if line.capacity() <= KEEP_LINE_CAPACITY {
                    self.line = line;
                    self.line.clear();
                }
            }
            chunk = &chunk[end + 1..];
            if terminator == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.check(self.line.len() + chunk.len())?;
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    /// The one rule of the cap: the event's lines so far and the current line (of
    /// `line` bytes, whatever its field) fit in it. Counting whole lines as sent,
    /// prefix and all, makes the outcome the same however the bytes are split into
    /// chunks: a line's tail only ever adds to it.
    fn check(&self, line: usize) -> Result<(), TooLarge> {
        if self.event_bytes + line <= self.cap {
            Ok(())
        } else if self.event_bytes == 0 {
            Err(TooLarge::Line)
        } else {
            Err(TooLarge::Event)
        }
    }

    /// End of input: an unterminated last line is taken as a line, and pending fields
    /// are dispatched (the SDKs would drop them; a lenient reader loses nothing).
    pub fn finish(mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            // The line was already counted against the cap when it was buffered.
            let _ = self.process_line(&line, &mut out);
        }
        let _ = self.process_line(b"", &mut out);
        out.pop()
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), TooLarge> {
        self.check(line.len())?;
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    name: self
                        .name
                        .take()
                        .map(|n| String::from_utf8_lossy(&n).into_owned()),
                    data: String::from_utf8(data)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                });
            }
            self.name = None;
            self.event_bytes = 0;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment
        }
        self.event_bytes += line.len();
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            // What is stored is never more than the line: `event_bytes` bounds it.
            b"event" => self.name = Some(value.to_vec()),
            b"data" => match &mut self.data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(value);
                }
                None => self.data = Some(value.to_vec()),
            },
            _ => {} // id, retry and unknown fields are not used by the Messages stream
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out.extend(p.finish());
        out
    }

    fn ev(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            name: name.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    /// Splits `bytes` at pseudo-random points (a small LCG: no dependency needed).
    fn random_split(bytes: &[u8], seed: u64) -> Vec<&[u8]> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut parts = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = 1 + (state >> 33) as usize % 17;
            let n = n.min(rest.len());
            parts.push(&rest[..n]);
            rest = &rest[n..];
        }
        parts
    }

    const STREAM: &[u8] = b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n: comment\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\ndata: {\"type\":\"no_name\"}\n\n\
event: content_block_delta\rdata: {\"t\":\"h\xc3\xa9llo \xe2\x80\xa8 \xf0\x9f\x98\x80\"}\r\revent: multi\ndata: line1\ndata:line2\nid: 7\nretry: 10\nfoo\n\n\
event: message_stop\ndata: [DONE]\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            ev(Some("message_start"), "{\"a\":1}"),
            ev(Some("ping"), "{\"type\": \"ping\"}"),
            ev(None, "{\"type\":\"no_name\"}"),
            ev(Some("content_block_delta"), "{\"t\":\"héllo \u{2028} 😀\"}"),
            ev(Some("multi"), "line1\nline2"),
            ev(Some("message_stop"), "[DONE]"),
        ]
    }

    #[test]
    fn whole_stream() {
        assert_eq!(parse_chunks(&[STREAM]), expected());
    }

    #[test]
    fn every_chunking_gives_the_same_events() {
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), expected(), "1-byte chunks");
        for split in 1..STREAM.len() {
            let (a, b) = STREAM.split_at(split);
            assert_eq!(parse_chunks(&[a, b]), expected(), "split at {split}");
        }
        for seed in 0..200 {
            assert_eq!(
                parse_chunks(&random_split(STREAM, seed)),
                expected(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn crlf_split_between_chunks_is_one_terminator() {
        // "\r" then "\n" in the next chunk must not produce an extra blank line, which
        // would dispatch the event early (here: before its data line).
        let events = parse_chunks(&[b"event: x\r", b"\ndata: 1\r", b"\n\r", b"\n"]);
        assert_eq!(events, vec![ev(Some("x"), "1")]);
    }

    #[test]
    fn eof_dispatches_pending_fields() {
        assert_eq!(
            parse_chunks(&[b"event: message_stop\ndata: {}"]),
            vec![ev(Some("message_stop"), "{}")]
        );
        assert_eq!(parse_chunks(&[b"event: only_a_name\n"]), vec![]);
        assert_eq!(parse_chunks(&[b""]), vec![]);
    }

    #[test]
    fn blank_lines_alone_dispatch_nothing() {
        assert_eq!(parse_chunks(&[b"\n\n\r\n\r\r"]), vec![]);
    }

    #[test]
    fn gigantic_lines_are_refused() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let big = vec![b'x'; MAX_EVENT_BYTES / 2 + 1];
        p.feed(&big, &mut out).unwrap();
        assert_eq!(p.feed(&big, &mut out), Err(TooLarge::Line));
        // A whole giant line in one chunk, terminated: refused all the same.
        let mut p = SseParser::with_cap(10);
        assert_eq!(p.feed(b"data: 0123456789\n", &mut out), Err(TooLarge::Line));
        let mut p = SseParser::with_cap(10);
        p.feed(b"data: 01", &mut out).unwrap();
        assert_eq!(p.feed(b"23456789\n", &mut out), Err(TooLarge::Line));
        assert!(out.is_empty());
    }

    #[test]
    fn every_line_of_an_event_counts() {
        // Short data lines without a blank line: refused once they add up.
        let mut p = SseParser::with_cap(100);
        let mut out = Vec::new();
        let mut result = Ok(());
        for _ in 0..200 {
            result = p.feed(b"data: x\n", &mut out);
            assert!(p.buffered_bytes() <= 100);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(TooLarge::Event));
        // Empty data lines (five bytes as sent), a name, any field count too.
        let mut p = SseParser::with_cap(10);
        p.feed(b"data:\ndata:\n", &mut out).unwrap();
        assert_eq!(p.feed(b"data:\n", &mut out), Err(TooLarge::Event));
        let mut p = SseParser::with_cap(12);
        p.feed(b"data:012345\n", &mut out).unwrap();
        assert_eq!(p.buffered_bytes(), 6);
        assert_eq!(p.feed(b"event:x\n", &mut out), Err(TooLarge::Event));
        let mut p = SseParser::with_cap(10);
        p.feed(b"id: 1\nid: 1\n", &mut out).unwrap();
        assert_eq!(p.feed(b"id: 1\n", &mut out), Err(TooLarge::Event));
        // The unterminated line adds to the event's lines.
        let mut p = SseParser::with_cap(12);
        p.feed(b"data:0\ndata:", &mut out).unwrap();
        p.feed(b"0", &mut out).unwrap();
        assert_eq!(p.feed(b"1", &mut out), Err(TooLarge::Event));
        // Events that each fit go through, however many: the count starts afresh.
        let mut p = SseParser::with_cap(22);
        for _ in 0..100 {
            p.feed(b"event: e\ndata: 0\ndata: 1\n\n", &mut out).unwrap();
        }
        assert_eq!(out.len(), 100);
        assert_eq!(out[0], ev(Some("e"), "0\n1"));
        // Comments hold nothing and count for nothing, but must fit on their own.
        let mut p = SseParser::with_cap(10);
        for _ in 0..100 {
            p.feed(b": comment\n", &mut out).unwrap();
        }
        assert_eq!(p.buffered_bytes(), 0);
        assert_eq!(p.feed(b": a long comment\n", &mut out), Err(TooLarge::Line));
    }
}
