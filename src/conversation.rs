//! Prior turns: `--messages` files, `-c/--conversation` files (read, then written back
//! atomically), and `--request` bodies. All are JSON; errors name the flag, the file
//! and where in it the problem is (line/column, or a JSON path).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Result;
use serde_json::Value;

use crate::config::io_reason;
use crate::error::usage;

/// Parses JSON text; a syntax error names its line and column.
pub fn parse_json(text: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(text).map_err(|e| {
        let full = e.to_string();
        let reason = full
            .rfind(" at line ")
            .map_or(full.as_str(), |i| &full[..i]);
        usage(format!(
            "{what}: invalid JSON at line {}, column {}: {reason}",
            e.line(),
            e.column()
        ))
    })
}

/// Reads a JSON file (`-` = stdin).
pub fn read_json(path: &Path, flag: &str) -> Result<Value> {
    let what = format!("{flag} {}", path.display());
    let bytes = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .map_err(|e| usage(format!("{what}: {}", io_reason(&e))))?;
        buf
    } else {
        std::fs::read(path).map_err(|e| usage(format!("{what}: {}", io_reason(&e))))?
    };
    parse_json(&bytes, &what)
}

/// Checks a messages array: objects with a `user`/`assistant` role and content that is
/// a string or an array of typed blocks. Returns the messages.
pub fn check_messages(value: Value, what: &str) -> Result<Vec<Value>> {
    let bad = |path: String, expected: &str| usage(format!("{what}: {path}: expected {expected}"));
    let Value::Array(messages) = value else {
        return Err(bad("$".into(), "an array of messages"));
    };
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(bad(format!("$[{i}]"), "an object with role and content"));
        };
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => return Err(bad(format!("$[{i}].role"), "\"user\" or \"assistant\"")),
        }
        match m.get("content") {
            Some(Value::String(_)) => {}
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    if !b.get("type").is_some_and(Value::is_string) {
                        return Err(bad(
                            format!("$[{i}].content[{j}].type"),
                            "a content block with a string type",
                        ));
                    }
                }
            }
            _ => {
                return Err(bad(
                    format!("$[{i}].content"),
                    "a string or an array of content blocks",
                ));
            }
        }
    }
    Ok(messages)
}

pub fn read_messages(path: &Path, flag: &str) -> Result<Vec<Value>> {
    let value = read_json(path, flag)?;
    check_messages(value, &format!("{flag} {}", path.display()))
}

/// The reply's content blocks as they can be sent back: verbatim (thinking and tool
/// blocks must be), less text blocks with nothing but white space.
pub fn reply_content(message: &Value) -> Vec<Value> {
    let blocks = message.get("content").and_then(Value::as_array);
    blocks
        .into_iter()
        .flatten()
        .filter(|b| {
            b.get("type").and_then(Value::as_str) != Some("text")
                || b.get("text")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.trim().is_empty())
        })
        .cloned()
        .collect()
}

/// Temporary files being written: removed by the Ctrl-C handler, which exits
/// without running destructors.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub fn remove_pending_files() {
    if let Ok(pending) = PENDING.lock() {
        for path in pending.iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes the messages to `path` atomically: a temporary file in the same directory,
/// synced, then renamed over the target. On any failure the target is untouched.
pub fn save(path: &Path, messages: &[Value]) -> Result<()> {
    let fail = |e: std::io::Error| {
        usage(format!(
            "--conversation {}: could not save: {}",
            path.display(),
            io_reason(&e)
        ))
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".cs-msg-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    let tmp_path = tmp.path().to_path_buf();
    if let Ok(mut pending) = PENDING.lock() {
        pending.push(tmp_path.clone());
    }
    let result = (|| {
        let mut text = serde_json::to_vec_pretty(messages)?;
        text.push(b'\n');
        tmp.write_all(&text).map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        // Keep the permissions the user gave the file.
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = tmp.as_file().set_permissions(meta.permissions());
        }
        tmp.persist(path).map_err(|e| fail(e.error))?;
        Ok(())
    })();
    if let Ok(mut pending) = PENDING.lock() {
        pending.retain(|p| p != &tmp_path);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = parse_json(b"[\n  {\"role\": \"user\",\n  }\n]", "--messages m.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--messages m.json: invalid JSON at line 3, column 3: trailing comma"
        );
    }

    #[test]
    fn shape_errors_name_the_json_path() {
        let cases = [
            (json!({"role": "user"}), "$: expected an array of messages"),
            (
                json!(["hi"]),
                "$[0]: expected an object with role and content",
            ),
            (
                json!([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]),
                "$[1].role: expected \"user\" or \"assistant\"",
            ),
            (
                json!([{"role": "user", "content": 5}]),
                "$[0].content: expected a string or an array of content blocks",
            ),
            (
                json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}]),
                "$[0].content[1].type: expected a content block with a string type",
            ),
        ];
        for (value, expected) in cases {
            let e = check_messages(value, "--messages m.json").unwrap_err();
            assert_eq!(e.to_string(), format!("--messages m.json: {expected}"));
        }
        assert_eq!(
            check_messages(json!([{"role": "user", "content": "a"}]), "x")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn empty_text_blocks_are_not_sent_back() {
        let m = json!({"content": [
            {"type": "thinking", "thinking": "", "signature": "s"},
            {"type": "text", "text": " \n"},
            {"type": "text", "text": "ok", "citations": null}
        ]});
        assert_eq!(
            reply_content(&m),
            vec![
                json!({"type": "thinking", "thinking": "", "signature": "s"}),
                json!({"type": "text", "text": "ok", "citations": null})
            ]
        );
        assert!(reply_content(&json!({"content": [{"type": "text", "text": ""}]})).is_empty());
    }

    #[test]
    fn save_replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.json");
        std::fs::write(&path, "old").unwrap();
        save(&path, &[json!({"role": "user", "content": "hi"})]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[\n  {\n    \"role\": \"user\",\n    \"content\": \"hi\"\n  }\n]\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
