//! `--output` as a resume log: which indices an earlier run answered, with error
//! lines and a torn last line (from a crash) dropped so they are asked again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::error::usage;
use crate::files::{self, io_reason};

/// Opens `--output` for appending, and returns the lines it already answered
/// (index → id). Error lines and a torn last line (from a crash) are dropped from the
/// file first, so those lines are asked again and every index ends up with one line.
pub fn prepare_output(path: &Path) -> Result<(File, HashMap<u64, Value>)> {
    let fail = |e: io::Error| usage(format!("--output {}: {}", path.display(), io_reason(&e)));
    let mut answered = HashMap::new();
    let existing = match File::open(path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(e)),
    };
    if let Some(file) = existing {
        if file.metadata().map_err(fail)?.is_dir() {
            return Err(usage(format!(
                "--output {}: is a directory, not a file",
                path.display()
            )));
        }
        let scan = scan_output(BufReader::new(file), path, &mut answered)?;
        if scan.dropped > 0 {
            rewrite_answered(path)?;
        } else if let Some(len) = scan.torn_at {
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(len))
                .map_err(fail)?;
        }
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    Ok((file, answered))
}

#[derive(Debug)]
struct Scan {
    /// Lines to drop: error lines, blank lines.
    dropped: u64,
    /// Where a torn last line starts.
    torn_at: Option<u64>,
}

/// Reads an `--output` file: which indices were answered, and whether anything is to
/// be dropped. A line that is not a batch result means this is not our file.
fn scan_output(
    mut reader: impl BufRead,
    path: &Path,
    answered: &mut HashMap<u64, Value>,
) -> Result<Scan> {
    let mut scan = Scan {
        dropped: 0,
        torn_at: None,
    };
    let mut buf = Vec::new();
    let mut offset = 0u64;
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| usage(format!("--output {}: {}", path.display(), io_reason(&e))))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if !buf.ends_with(b"\n") {
            // Cut short by a crash: that line is asked again.
            scan.torn_at = Some(offset);
            break;
        }
        offset += n as u64;
        match result_line(&buf) {
            Some(ResultLine::Answered(index, id)) => {
                if answered.insert(index, id).is_some() {
                    return Err(usage(format!(
                        "--output {}: line {line_no} repeats index {index}; this file was not written by one cs-msg batch, refusing to append to it",
                        path.display()
                    )));
                }
            }
            Some(ResultLine::Failed) => scan.dropped += 1,
            None if buf.iter().all(u8::is_ascii_whitespace) => scan.dropped += 1,
            None => {
                return Err(usage(format!(
                    "--output {}: line {line_no} is not a cs-msg batch result; refusing to append to this file",
                    path.display()
                )));
            }
        }
    }
    Ok(scan)
}

enum ResultLine {
    Answered(u64, Value),
    Failed,
}

/// A line this program wrote: an object with an `index`, and an `error` when it failed.
fn result_line(bytes: &[u8]) -> Option<ResultLine> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let index = v.get("index")?.as_u64()?;
    if v.get("error").is_some() {
        Some(ResultLine::Failed)
    } else {
        Some(ResultLine::Answered(
            index,
            v.get("id").cloned().unwrap_or(Value::Null),
        ))
    }
}

/// Rewrites `path` with only its answered lines, atomically (`files::atomic_write`).
fn rewrite_answered(path: &Path) -> Result<()> {
    let mut reader = BufReader::new(files::open(path, &format!("--output {}", path.display()))?);
    files::atomic_write(path, &format!("--output {}", path.display()), |out| {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 || !buf.ends_with(b"\n") {
                return Ok(());
            }
            if let Some(ResultLine::Answered(..)) = result_line(&buf) {
                out.write_all(&buf)?;
            }
        }
    })
}

pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scanning_an_output_file() {
        let text = concat!(
            "{\"id\":\"a\",\"index\":0,\"message\":{}}\n",
            "{\"id\":null,\"index\":1,\"error\":{}}\n",
            "\n",
            "{\"id\":null,\"index\":2,\"object\":{}}\n",
            "{\"id\":\"d\",\"ind",
        );
        let mut answered = HashMap::new();
        let scan = scan_output(text.as_bytes(), Path::new("o"), &mut answered).unwrap();
        assert_eq!(answered.len(), 2);
        assert_eq!(answered[&0], json!("a"));
        assert_eq!(answered[&2], Value::Null);
        assert_eq!(scan.dropped, 2);
        assert_eq!(scan.torn_at, Some(text.rfind('{').unwrap() as u64));
        let e = scan_output(
            &b"{\"index\":0}\nhello\n"[..],
            Path::new("o"),
            &mut HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--output o: line 2 is not a cs-msg batch result; refusing to append to this file"
        );
        let e = scan_output(
            &b"{\"index\":0,\"message\":{}}\n{\"index\":0,\"message\":{}}\n"[..],
            Path::new("o"),
            &mut HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--output o: line 2 repeats index 0; this file was not written by one cs-msg batch, refusing to append to it"
        );
    }
}
