//! Prior turns: `--messages` files and `-c/--conversation` files (read, then written
//! back atomically). Errors name the flag, the file and where in it the problem is
//! (line/column, or a JSON path).

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::error::usage;
use crate::files::{self, read_json};

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

/// What a `-c` file held when it was read (`None`: it did not exist), so that a save
/// can tell whether another run changed it meanwhile.
#[derive(Debug, Default)]
pub struct Snapshot(Option<Vec<u8>>);

/// Reads a `-c` file, if it exists, with the snapshot its save checks against.
pub fn read_conversation(path: &Path) -> Result<(Vec<Value>, Snapshot)> {
    let what = format!("--conversation {}", path.display());
    let bytes = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), Snapshot(None)));
        }
        _ => files::read_bytes(path, files::MAX_INPUT_BYTES, &what)?,
    };
    let messages = check_messages(files::parse_json(&bytes, &what)?, &what)?;
    Ok((messages, Snapshot(Some(bytes))))
}

fn current(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
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

/// Writes the conversation to `path` atomically (`files::atomic_write`): on any
/// failure, or a signal meanwhile, the file is untouched. Two runs on one file would
/// lose a turn silently (each saves its own history), so a file that changed since
/// it was read is not overwritten: exit 2, naming it.
pub fn save(path: &Path, messages: &[Value], read: &Snapshot) -> Result<()> {
    if current(path) != read.0 {
        return Err(usage(format!(
            "--conversation {}: the file changed while this answer was coming (another cs-msg on the same file?); this turn was not saved",
            path.display()
        )));
    }
    files::atomic_write(path, &format!("--conversation {}", path.display()), |out| {
        serde_json::to_writer_pretty(&mut *out, messages)?;
        out.write_all(b"\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        std::fs::write(&path, "[]").unwrap();
        let (_, read) = read_conversation(&path).unwrap();
        save(&path, &[json!({"role": "user", "content": "hi"})], &read).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[\n  {\n    \"role\": \"user\",\n    \"content\": \"hi\"\n  }\n]\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn a_file_changed_since_it_was_read_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.json");
        let (_, read) = read_conversation(&path).unwrap();
        std::fs::write(&path, "[\"other run\"]").unwrap();
        let e = save(&path, &[], &read).unwrap_err();
        assert!(e.to_string().ends_with("the file changed while this answer was coming (another cs-msg on the same file?); this turn was not saved"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[\"other run\"]");
    }
}
