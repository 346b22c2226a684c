//! Server-sent events: bytes in, events out. Pure and chunk-boundary safe: the same
//! bytes give the same events however they are split (docs/PROTOCOL.md, Streaming).

/// One dispatched event. `name` is the `event:` field, if the server sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub name: Option<String>,
    pub data: String,
}

/// A single line longer than this is refused rather than buffered without bound.
pub const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug)]
pub struct LineTooLong;

#[derive(Debug, Default)]
pub struct SseParser {
    /// The current, unterminated line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    name: Option<String>,
    /// Joined `data:` lines; `None` until the first one.
    data: Option<Vec<u8>>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; complete events are pushed onto `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) {
            let terminator = chunk[end];
            if self.line.is_empty() {
                self.process_line(&chunk[..end], out);
            } else {
                self.line.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
                self.line = line;
                self.line.clear();
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
        if self.line.len() + chunk.len() > MAX_LINE_BYTES {
            return Err(LineTooLong);
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    /// End of input: an unterminated last line is taken as a line, and pending fields
    /// are dispatched (the SDKs would drop them; a lenient reader loses nothing).
    pub fn finish(mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut out);
        }
        self.process_line(b"", &mut out);
        out.pop()
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    name: self.name.take(),
                    data: String::from_utf8(data)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                });
            }
            self.name = None;
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => self.name = Some(String::from_utf8_lossy(value).into_owned()),
            b"data" => match &mut self.data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(value);
                }
                None => self.data = Some(value.to_vec()),
            },
            _ => {} // id, retry and unknown fields are not used by the Messages stream
        }
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
        let big = vec![b'x'; MAX_LINE_BYTES / 2 + 1];
        p.feed(&big, &mut out).unwrap();
        assert!(p.feed(&big, &mut out).is_err());
    }
}
