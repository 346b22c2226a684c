//! What reaches stdout (data only) and stderr (diagnostics).
//!
//! stdout goes through one `BufWriter`; the stream driver flushes it whenever it has
//! consumed every byte received so far, so no token waits in a buffer while the
//! program blocks on the network, and bursts of deltas cost one write.

use std::io::{self, BufWriter, IsTerminal, Stdout, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

/// Where the answer goes and in which shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    #[default]
    Text,
    Json,
    Events,
    /// `--schema`: nothing while the answer streams; the validated object at the end.
    Schema,
    /// Nothing is printed while the answer arrives; the caller uses the message it
    /// returns (a batch line, a tool-loop turn under `--json`).
    Collect,
}

impl OutputMode {
    /// Whether the whole message, text included, is needed after the stream.
    pub fn needs_whole_message(self) -> bool {
        matches!(
            self,
            OutputMode::Json | OutputMode::Schema | OutputMode::Collect
        )
    }
}

/// stderr is a terminal; `CS_MSG_TEST_TERMINAL=stderr` pretends so in tests.
pub fn stderr_is_terminal() -> bool {
    std::env::var("CS_MSG_TEST_TERMINAL").is_ok_and(|v| v == "stderr")
        || std::io::stderr().is_terminal()
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: warnings are dropped (errors never are).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Colour on stderr: only on a terminal, never with `NO_COLOR`, always with
/// `FORCE_COLOR` (https://no-color.org, https://force-color.org; NO_COLOR wins).
pub fn stderr_color() -> bool {
    static COLOR: OnceLock<bool> = OnceLock::new();
    *COLOR.get_or_init(|| {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
        !set("NO_COLOR") && (set("FORCE_COLOR") || stderr_is_terminal())
    })
}

const RED_BOLD: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[33m";
const DIM_ITALIC: &str = "\x1b[2;3m";
const RESET: &str = "\x1b[0m";

fn paint(style: &str, text: &str) -> String {
    if stderr_color() {
        format!("{style}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

/// One diagnostic line on stderr. Errors writing to stderr are ignored: there is
/// nowhere left to report them.
fn diagnostic(line: &str) {
    let _ = writeln!(io::stderr().lock(), "cs-msg: {line}");
}

/// A signal: end any open style so the terminal is left as it was, then say why.
pub fn interrupted(why: &str) {
    if stderr_color() {
        let _ = io::stderr().write_all(RESET.as_bytes());
    }
    error(why);
}

pub fn error(message: &str) {
    let _ = writeln!(
        io::stderr().lock(),
        "{} {message}",
        paint(RED_BOLD, "cs-msg:")
    );
}

pub fn warn(message: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        diagnostic(&format!("{} {message}", paint(YELLOW, "warning:")));
    }
}

/// A notice of something cs-msg did on its own (another model answers): a line
/// without the `warning:` label, silenced by -q like the warnings.
pub fn note(message: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        diagnostic(message);
    }
}

/// A hint that something waits on the user; never silenced, even by -q.
pub fn hint(message: &str) {
    diagnostic(message);
}

/// `-v` lines.
pub fn info(message: &str) {
    diagnostic(message);
}

/// The answer's writer, for every output mode.
pub struct Writer<W: Write = BufWriter<Stdout>> {
    out: W,
    mode: OutputMode,
    show_thinking: bool,
    /// Something reached stdout: from then on a stream must not be retried.
    wrote: bool,
    /// The last byte of answer text written was a newline (or nothing was written).
    at_line_start: bool,
    /// Thinking text is being written to stderr (a style may be open).
    thinking_open: bool,
    /// The thinking text written so far ends with a newline.
    thinking_at_line_start: bool,
    /// Text mode prints each `tool_use` block as a JSON line; not while a tool loop
    /// runs the calls itself (it prints only the pending ones).
    tool_calls: bool,
}

impl Writer {
    pub fn stdout(mode: OutputMode, show_thinking: bool) -> Self {
        Writer::new(
            BufWriter::with_capacity(64 * 1024, io::stdout()),
            mode,
            show_thinking,
        )
    }
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, mode: OutputMode, show_thinking: bool) -> Self {
        Writer {
            out,
            mode,
            show_thinking,
            wrote: false,
            at_line_start: true,
            thinking_open: false,
            thinking_at_line_start: true,
            tool_calls: true,
        }
    }

    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    pub fn wrote_anything(&self) -> bool {
        self.wrote
    }

    /// `--events`: one event's data as one JSON line. Multi-line data is
    /// re-serialized compactly; data that is not JSON at all (a relay's `OK`, raw
    /// bytes) is written as a JSON string, so every line parses as JSON and none can
    /// carry raw control characters to a terminal.
    pub fn event_line(&mut self, data: &str) -> io::Result<()> {
        if data.contains(['\n', '\r']) {
            match serde_json::from_str::<Value>(data) {
                Ok(v) => serde_json::to_writer(&mut self.out, &v)?,
                Err(_) => serde_json::to_writer(&mut self.out, data)?,
            }
        } else if serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok() {
            self.out.write_all(data.as_bytes())?;
        } else {
            serde_json::to_writer(&mut self.out, data)?;
        }
        self.out.write_all(b"\n")?;
        self.wrote = true;
        Ok(())
    }

    /// Answer text, exactly as received.
    pub fn text(&mut self, text: &str) -> io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.close_thinking();
        self.out.write_all(text.as_bytes())?;
        self.at_line_start = text.ends_with('\n');
        self.wrote = true;
        Ok(())
    }

    pub fn print_tool_calls(&mut self, print: bool) {
        self.tool_calls = print;
    }

    /// A tool call, as one JSON line of its own (unless a tool loop answers it).
    pub fn tool_use(&mut self, block: &Value) -> io::Result<()> {
        if !self.tool_calls {
            return Ok(());
        }
        self.pending_tool_use(block)
    }

    /// A tool call nobody will answer in this run, as one JSON line of its own.
    pub fn pending_tool_use(&mut self, block: &Value) -> io::Result<()> {
        self.close_thinking();
        if !self.at_line_start {
            self.out.write_all(b"\n")?;
        }
        let line = json!({
            "type": "tool_use",
            "id": block.get("id"),
            "name": block.get("name"),
            "input": block.get("input"),
        });
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        self.at_line_start = true;
        self.wrote = true;
        Ok(())
    }

    /// Thinking text goes to stderr, and only with `--show-thinking`.
    pub fn thinking(&mut self, text: &str) {
        if !self.show_thinking || text.is_empty() {
            return;
        }
        // Keep stdout and stderr in order on a shared terminal.
        let _ = self.out.flush();
        let mut err = io::stderr().lock();
        if !self.thinking_open && stderr_color() {
            // Set apart from the answer on a terminal: dim italics until it closes.
            let _ = err.write_all(DIM_ITALIC.as_bytes());
        }
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        self.thinking_open = true;
        self.thinking_at_line_start = text.ends_with('\n');
    }

    pub fn close_thinking(&mut self) {
        if self.thinking_open {
            let mut err = io::stderr().lock();
            if stderr_color() {
                let _ = err.write_all(RESET.as_bytes());
            }
            if !self.thinking_at_line_start {
                let _ = err.write_all(b"\n");
            }
            let _ = err.flush();
            self.thinking_open = false;
        }
    }

    /// A whole message: `--json` prints it as one line; text mode prints its blocks
    /// as the stream would have.
    pub fn message(&mut self, message: &Value) -> io::Result<()> {
        match self.mode {
            OutputMode::Json => {
                serde_json::to_writer(&mut self.out, message)?;
                self.out.write_all(b"\n")?;
                self.wrote = true;
            }
            OutputMode::Text => {
                let blocks = message.get("content").and_then(Value::as_array);
                for block in blocks.into_iter().flatten() {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            self.text(block.get("text").and_then(Value::as_str).unwrap_or(""))?
                        }
                        Some("tool_use") => self.tool_use(block)?,
                        Some("thinking") => {
                            self.thinking(
                                block.get("thinking").and_then(Value::as_str).unwrap_or(""),
                            );
                            self.close_thinking();
                        }
                        _ => {}
                    }
                }
            }
            OutputMode::Events | OutputMode::Schema | OutputMode::Collect => {}
        }
        Ok(())
    }

    /// The thinking blocks of a whole message, to stderr (with `--show-thinking`).
    pub fn thinking_of(&mut self, message: &Value) {
        let blocks = message.get("content").and_then(Value::as_array);
        for block in blocks.into_iter().flatten() {
            if block.get("type").and_then(Value::as_str) == Some("thinking") {
                self.thinking(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
                self.close_thinking();
            }
        }
    }

    /// Ends text output with a newline if the answer did not, then flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        self.close_thinking();
        if self.mode == OutputMode::Text && !self.at_line_start {
            self.out.write_all(b"\n")?;
            self.at_line_start = true;
        }
        self.out.flush()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_writer() -> Writer<Vec<u8>> {
        Writer::new(Vec::new(), OutputMode::Text, false)
    }

    #[test]
    fn text_gets_one_final_newline() {
        let mut w = text_writer();
        w.text("Hel").unwrap();
        w.text("lo").unwrap();
        w.finish().unwrap();
        assert_eq!(w.into_inner(), b"Hello\n");
        let mut w = text_writer();
        w.text("Hello\n").unwrap();
        w.finish().unwrap();
        assert_eq!(w.into_inner(), b"Hello\n");
        let mut w = text_writer();
        w.finish().unwrap();
        assert_eq!(w.into_inner(), b"");
    }

    #[test]
    fn tool_calls_start_on_their_own_line() {
        let mut w = text_writer();
        w.text("Checking.").unwrap();
        w.tool_use(&json!({"type":"tool_use","id":"t1","name":"f","input":{"a":1},"caller":{}}))
            .unwrap();
        w.finish().unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            "Checking.\n{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{\"a\":1}}\n"
        );
    }

    #[test]
    fn event_lines_stay_single_lines() {
        let mut w = Writer::new(Vec::new(), OutputMode::Events, false);
        w.event_line("{\"type\": \"ping\"}").unwrap();
        w.event_line("{\"a\":\n1}").unwrap();
        // Not JSON: a JSON string, escapes and all.
        w.event_line("OK \u{1b}[31m").unwrap();
        w.event_line("two\nlines").unwrap();
        w.event_line("").unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            "{\"type\": \"ping\"}\n{\"a\":1}\n\"OK \\u001b[31m\"\n\"two\\nlines\"\n\"\"\n"
        );
    }
}
