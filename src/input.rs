//! The user turn: files, piped stdin and the prompt, typed by content and turned into
//! content blocks (docs/PROTOCOL.md, Content blocks).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Result;
use base64::Engine;
use serde_json::{Value, json};

use crate::config::InputSpec;
use crate::error::usage;
use crate::files::{self, MAX_INPUT_BYTES, io_reason};

/// The API rejects images whose base64 payload exceeds 5 MB.
pub const MAX_IMAGE_BASE64_BYTES: usize = 5 * 1024 * 1024;

/// What the bytes of an input are, judged by their content (magic bytes), not a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image(&'static str),
    Pdf,
    Text,
    Binary,
}

pub fn sniff(bytes: &[u8]) -> Kind {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Kind::Image("image/png")
    } else if bytes.starts_with(b"\xFF\xD8\xFF") {
        Kind::Image("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Kind::Image("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Kind::Image("image/webp")
    } else if bytes.starts_with(b"%PDF-") {
        Kind::Pdf
    } else if std::str::from_utf8(bytes).is_ok() {
        Kind::Text
    } else {
        Kind::Binary
    }
}

/// Turns one input into a content block. `label` is how errors name it ("stdin",
/// "file notes.md"); `frame` is the path text files are labelled with, if any.
pub fn to_block(bytes: Vec<u8>, label: &str, frame: Option<&str>) -> Result<Option<Value>> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match sniff(&bytes) {
        Kind::Image(media_type) => {
            let data = b64(&bytes);
            if data.len() > MAX_IMAGE_BASE64_BYTES {
                return Err(usage(format!(
                    "{label}: image is {} encoded; the API accepts at most 5 MiB per image",
                    human_size(data.len())
                )));
            }
            Ok(Some(json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}
            })))
        }
        Kind::Pdf => Ok(Some(json!({
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": b64(&bytes)}
        }))),
        Kind::Text => {
            // sniff() checked the bytes are UTF-8.
            let text = String::from_utf8(bytes).unwrap_or_default();
            // The API rejects text blocks that are empty or only white space.
            if text.trim().is_empty() {
                return Ok(None);
            }
            let text = match frame {
                Some(path) => frame_file(path, &text),
                None => text,
            };
            Ok(Some(json!({"type": "text", "text": text})))
        }
        Kind::Binary => {
            let looks_like_text = !bytes.iter().take(8192).any(|&b| b == 0);
            let valid = std::str::from_utf8(&bytes)
                .err()
                .map(|e| e.valid_up_to())
                .unwrap_or(0);
            Err(usage(if looks_like_text {
                format!("{label}: not valid UTF-8 (byte {valid}); convert it to UTF-8 first")
            } else {
                format!("{label}: binary, not an image or PDF")
            }))
        }
    }
}

/// The framing of an attached text file, so the model can tell files apart.
/// Documented in the README; change both together.
pub fn frame_file(path: &str, text: &str) -> String {
    let path = path.replace('&', "&amp;").replace('"', "&quot;");
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    format!("<file path=\"{path}\">\n{text}{newline}</file>")
}

fn human_size(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

/// The PROMPT words, when they make a block: a blank prompt adds none. When there is
/// one it is the user turn's last block (the unique tail `--cache` never marks).
pub fn prompt(spec: &InputSpec) -> Option<&str> {
    spec.prompt.as_deref().filter(|p| !p.trim().is_empty())
}

/// Assembles the user turn: every `-f` in order, then piped stdin, then the prompt.
/// Returns no blocks when there is nothing to send; the caller decides if that is an error.
pub fn user_blocks(spec: &InputSpec, stdin_hint_after: Duration) -> Result<Vec<Value>> {
    let mut blocks = Vec::new();
    let mut stdin_used = false;
    for path in &spec.files {
        if path.as_os_str() == "-" {
            if stdin_used {
                return Err(usage("-f - given twice: stdin can be read only once"));
            }
            stdin_used = true;
            let bytes = read_stdin(None)?;
            blocks.extend(to_block(bytes, "stdin (-f -)", Some("stdin"))?);
        } else {
            let bytes = read_file(path)?;
            let name = path.display().to_string();
            match to_block(bytes, &format!("file {name}"), Some(&name))? {
                Some(block) => blocks.push(block),
                None => crate::output::warn(&format!("file {name} is empty; not sent")),
            }
        }
    }
    if spec.read_stdin && !stdin_used {
        // Hint only when something else was given: then stdin is likely unintended.
        let hint = (spec.prompt.is_some() || !spec.files.is_empty()).then_some(stdin_hint_after);
        let bytes = read_stdin(hint)?;
        blocks.extend(to_block(bytes, "stdin", None)?);
    }
    if let Some(prompt) = prompt(spec) {
        blocks.push(json!({"type": "text", "text": prompt}));
    }
    Ok(blocks)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    files::read_bytes(path, MAX_INPUT_BYTES, &format!("file {}", path.display()))
}

/// Reads all of stdin. With a hint delay, a stdin that has produced nothing after it
/// gets one line on stderr, so a forgotten open stdin never hangs silently.
fn read_stdin(hint_after: Option<Duration>) -> Result<Vec<u8>> {
    let fail = |e: std::io::Error| usage(format!("stdin: {}", io_reason(&e)));
    let Some(delay) = hint_after else {
        return files::read_limited(std::io::stdin().lock(), MAX_INPUT_BYTES, "stdin");
    };
    let got_bytes = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let seen = Arc::clone(&got_bytes);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let result = loop {
            match stdin.read(&mut chunk) {
                Ok(0) => break Ok(buf),
                Ok(n) => {
                    seen.store(true, Ordering::Relaxed);
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() as u64 > MAX_INPUT_BYTES {
                        break Ok(buf); // refused below, before more is read
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send(result);
    });
    let result = match rx.recv_timeout(delay) {
        Ok(r) => r,
        Err(_) => {
            if !got_bytes.load(Ordering::Relaxed) {
                crate::output::hint("waiting for stdin; use --no-stdin or </dev/null");
            }
            rx.recv()
                .map_err(|_| usage("stdin: reader thread failed"))?
        }
    };
    let buf = result.map_err(fail)?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(usage(format!(
            "stdin: larger than {} (the most one input may hold)",
            files::human_size(MAX_INPUT_BYTES)
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Kind::Image("image/png"));
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0"), Kind::Image("image/jpeg"));
        assert_eq!(sniff(b"GIF89a..."), Kind::Image("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Kind::Image("image/webp"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Kind::Pdf);
        assert_eq!(sniff("héllo".as_bytes()), Kind::Text);
        assert_eq!(sniff(b"\xff\xfe\x00\x01"), Kind::Binary);
    }

    #[test]
    fn frames_text_files_with_their_path() {
        assert_eq!(
            frame_file("a \"b\".txt", "x\n"),
            "<file path=\"a &quot;b&quot;.txt\">\nx\n</file>"
        );
        assert_eq!(frame_file("a", "x"), "<file path=\"a\">\nx\n</file>");
    }

    #[test]
    fn blocks_and_errors() {
        let b = to_block(b"hi".to_vec(), "stdin", None).unwrap().unwrap();
        assert_eq!(b, json!({"type":"text","text":"hi"}));
        assert!(to_block(b" \n".to_vec(), "stdin", None).unwrap().is_none());
        let e = to_block(b"\x00\x01\x02\xff".to_vec(), "file x.bin", Some("x.bin")).unwrap_err();
        assert_eq!(e.to_string(), "file x.bin: binary, not an image or PDF");
        let e = to_block(b"caf\xe9 ok".to_vec(), "stdin", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stdin: not valid UTF-8 (byte 3); convert it to UTF-8 first"
        );
        let png = to_block(b"\x89PNG\r\n\x1a\nxx".to_vec(), "f", Some("f"))
            .unwrap()
            .unwrap();
        assert_eq!(png["source"]["media_type"], "image/png");
        assert_eq!(png["source"]["data"], "iVBORw0KGgp4eA==");
    }
}
