//! `tool_result` blocks: the ones a script gives with `--tool-result ID=TEXT|@FILE|-` and
//! `--tool-error ID=TEXT|@FILE|-` (the client-driven round trip), and the ones the
//! executor builds (src/executor/). Also the check that the given results answer the
//! last assistant turn of the history exactly, before anything is sent.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use crate::error::usage;
use crate::files::io_reason;

/// The most a result read from a file or stdin may hold. A request body may be at most
/// 32 MB, so a larger result could never be sent anyway.
pub const MAX_RESULT_BYTES: u64 = 32 * 1024 * 1024;

/// The text sent for a result with no output: the API rejects text blocks that are
/// empty or only white space, and a `tool_result` still has to answer its call.
pub const NO_OUTPUT: &str = "(no output)";

/// A result's content: one text block, [`NO_OUTPUT`] when there is nothing to say.
pub fn text_content(text: &str) -> Vec<Value> {
    let text = if text.trim().is_empty() {
        NO_OUTPUT
    } else {
        text
    };
    vec![json!({"type": "text", "text": text})]
}

/// A `tool_result` block; `is_error` is sent only when true, as the API's own default
/// is false.
pub fn result_block(tool_use_id: &str, content: Vec<Value>, is_error: bool) -> Value {
    let mut block = json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
    if is_error {
        block["is_error"] = Value::Bool(true);
    }
    block
}

/// One `tool_use` block of an assistant message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolCall<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub input: &'a Value,
}

static NO_INPUT: Value = Value::Null;

/// The `tool_use` blocks of a message (`{"content": [...]}`), in block order. Blocks
/// without a string id and name cannot be answered and are left out.
pub fn tool_calls(message: &Value) -> Vec<ToolCall<'_>> {
    let blocks = message.get("content").and_then(Value::as_array);
    blocks
        .into_iter()
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .filter_map(|b| {
            Some(ToolCall {
                id: b.get("id")?.as_str()?,
                name: b.get("name")?.as_str()?,
                input: b.get("input").unwrap_or(&NO_INPUT),
            })
        })
        .collect()
}

/// Which flag gave a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `--tool-result`
    Result,
    /// `--tool-error`: the result is sent with `is_error: true`.
    Error,
}

impl Flag {
    pub fn name(self) -> &'static str {
        match self {
            Flag::Result => "--tool-result",
            Flag::Error => "--tool-error",
        }
    }
}

/// One given result, its text already read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    pub id: String,
    pub text: String,
    pub flag: Flag,
}

impl ToolResult {
    pub fn block(&self) -> Value {
        result_block(&self.id, text_content(&self.text), self.flag == Flag::Error)
    }
}

/// Whether any of the arguments reads stdin (`ID=-`): then stdin is not the user's input.
pub fn uses_stdin(args: &[(Flag, &str)]) -> bool {
    args.iter()
        .any(|(_, arg)| arg.split_once('=').is_some_and(|(_, v)| v == "-"))
}

/// Parses and reads the `--tool-result`/`--tool-error` arguments, in the order given on
/// the command line; `-` reads the process's stdin.
pub fn read_results(args: &[(Flag, &str)]) -> Result<Vec<ToolResult>> {
    read_results_from(args, &mut std::io::stdin().lock())
}

/// [`read_results`] with the stdin to read for `-`.
pub fn read_results_from(args: &[(Flag, &str)], stdin: &mut dyn Read) -> Result<Vec<ToolResult>> {
    let mut results: Vec<ToolResult> = Vec::new();
    let mut stdin_read_by: Option<String> = None;
    for &(flag, arg) in args {
        let what = format!("{} {arg}", flag.name());
        let Some((id, value)) = arg.split_once('=') else {
            return Err(usage(format!("{what}: expected ID=TEXT, ID=@FILE or ID=-")));
        };
        if id.is_empty() {
            return Err(usage(format!(
                "{what}: empty ID; expected ID=TEXT, ID=@FILE or ID=-"
            )));
        }
        if let Some(earlier) = results.iter().find(|r| r.id == id) {
            return Err(usage(format!(
                "{what}: {id} already has a result ({} {id}=…)",
                earlier.flag.name()
            )));
        }
        let text = if value == "-" {
            if let Some(first) = &stdin_read_by {
                return Err(usage(format!(
                    "{what}: stdin can be read only once (already read for {first})"
                )));
            }
            stdin_read_by = Some(what.clone());
            read_limited(stdin, &format!("{what}: stdin"))?
        } else if let Some(path) = value.strip_prefix('@') {
            if path.is_empty() {
                return Err(usage(format!("{what}: expected a file name after @")));
            }
            read_file(Path::new(path), &what)?
        } else {
            value.to_owned()
        };
        results.push(ToolResult {
            id: id.to_owned(),
            text,
            flag,
        });
    }
    Ok(results)
}

fn read_file(path: &Path, what: &str) -> Result<String> {
    let fail = |e: std::io::Error| usage(format!("{what}: {}", io_reason(&e)));
    let meta = std::fs::metadata(path).map_err(fail)?;
    if meta.is_dir() {
        return Err(usage(format!("{what}: is a directory, not a file")));
    }
    let mut file = File::open(path).map_err(fail)?;
    read_limited(&mut file, what)
}

/// Reads at most [`MAX_RESULT_BYTES`] of UTF-8 text; more, or other bytes, is an error.
fn read_limited(reader: &mut dyn Read, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_RESULT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("{what}: {}", io_reason(&e))))?;
    if bytes.len() as u64 > MAX_RESULT_BYTES {
        return Err(usage(format!(
            "{what}: larger than {} MiB, the most a tool result may be",
            MAX_RESULT_BYTES / (1024 * 1024)
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        usage(format!(
            "{what}: not valid UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Checks that the results answer the last assistant turn of `history` exactly: the
/// history ends with that turn, every id is one of its `tool_use` ids, and each of its
/// `tool_use` blocks has a result. `source` names the history in messages ("chat.json").
pub fn check_against_history(
    history: &[Value],
    results: &[ToolResult],
    source: &str,
) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let flags = flags_of(results.iter());
    let last = history
        .last()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
    let Some(last) = last else {
        return Err(usage(format!(
            "{flags}: {source} does not end with an assistant turn"
        )));
    };
    let calls = tool_calls(last);
    if calls.is_empty() {
        return Err(usage(format!(
            "{flags}: the last assistant turn of {source} called no tool"
        )));
    }
    let unknown: Vec<&ToolResult> = results
        .iter()
        .filter(|r| !calls.iter().any(|c| c.id == r.id))
        .collect();
    if !unknown.is_empty() {
        let ids: Vec<&str> = unknown.iter().map(|r| r.id.as_str()).collect();
        return Err(usage(format!(
            "{}: no tool_use {} in the last assistant turn of {source}",
            flags_of(unknown.iter().copied()),
            ids.join(", ")
        )));
    }
    let missing: Vec<String> = calls
        .iter()
        .filter(|c| !results.iter().any(|r| r.id == c.id))
        .map(|c| format!("{} ({})", c.id, c.name))
        .collect();
    if !missing.is_empty() {
        let each = if missing.len() == 1 { "it" } else { "each" };
        return Err(usage(format!(
            "{flags}: the last assistant turn of {source} also called {}; give --tool-result or --tool-error for {each}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The flag or flags the results came from, to name in a message.
fn flags_of<'a>(mut results: impl Iterator<Item = &'a ToolResult>) -> &'static str {
    let Some(first) = results.next() else {
        return Flag::Result.name();
    };
    if results.all(|r| r.flag == first.flag) {
        first.flag.name()
    } else {
        "--tool-result/--tool-error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(args: &[(Flag, &str)], stdin: &str) -> Result<Vec<ToolResult>> {
        read_results_from(args, &mut stdin.as_bytes())
    }

    fn result(id: &str, text: &str, flag: Flag) -> ToolResult {
        ToolResult {
            id: id.into(),
            text: text.into(),
            flag,
        }
    }

    #[test]
    fn blocks_have_the_api_shape() {
        assert_eq!(
            result("toolu_1", "18 C", Flag::Result).block(),
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18 C"}]})
        );
        assert_eq!(
            result("toolu_2", " \n", Flag::Error).block(),
            json!({"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "(no output)"}], "is_error": true})
        );
    }

    #[test]
    fn literal_file_and_stdin_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.json");
        std::fs::write(&file, "{\"temp\": 18}\n").unwrap();
        let at_file = format!("b=@{}", file.display());
        let got = read(
            &[
                (Flag::Error, "c=-"),
                (Flag::Result, "a=x=1 @not-a-file"),
                (Flag::Result, &at_file),
                (Flag::Result, "d="),
            ],
            "from stdin",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                result("c", "from stdin", Flag::Error),
                result("a", "x=1 @not-a-file", Flag::Result),
                result("b", "{\"temp\": 18}\n", Flag::Result),
                result("d", "", Flag::Result),
            ]
        );
        assert!(uses_stdin(&[(Flag::Result, "a=x"), (Flag::Error, "c=-")]));
        assert!(!uses_stdin(&[(Flag::Result, "a=x-")]));
    }

    #[test]
    fn argument_errors_name_the_flag() {
        let cases: [(&[(Flag, &str)], &str); 6] = [
            (
                &[(Flag::Result, "toolu_1")],
                "--tool-result toolu_1: expected ID=TEXT, ID=@FILE or ID=-",
            ),
            (
                &[(Flag::Error, "=boom")],
                "--tool-error =boom: empty ID; expected ID=TEXT, ID=@FILE or ID=-",
            ),
            (
                &[(Flag::Result, "a=-"), (Flag::Error, "b=-")],
                "--tool-error b=-: stdin can be read only once (already read for --tool-result a=-)",
            ),
            (
                &[(Flag::Result, "a=1"), (Flag::Error, "a=2")],
                "--tool-error a=2: a already has a result (--tool-result a=…)",
            ),
            (
                &[(Flag::Result, "a=@")],
                "--tool-result a=@: expected a file name after @",
            ),
            (
                &[(Flag::Result, "a=@/no/such/w.json")],
                "--tool-result a=@/no/such/w.json: no such file",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(read(args, "").unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn files_and_stdin_must_be_utf8_text() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bin");
        std::fs::write(&file, b"caf\xe9").unwrap();
        let arg = format!("a=@{}", file.display());
        assert_eq!(
            read(&[(Flag::Result, &arg)], "").unwrap_err().to_string(),
            format!("--tool-result {arg}: not valid UTF-8 (byte 3)")
        );
        let arg = format!("a=@{}", dir.path().display());
        assert_eq!(
            read(&[(Flag::Result, &arg)], "").unwrap_err().to_string(),
            format!("--tool-result {arg}: is a directory, not a file")
        );
        let e = read_results_from(&[(Flag::Error, "a=-")], &mut &b"\xff"[..]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--tool-error a=-: stdin: not valid UTF-8 (byte 0)"
        );
    }

    #[test]
    fn size_is_limited() {
        let mut huge = std::io::repeat(b'x').take(MAX_RESULT_BYTES + 1);
        let e = read_results_from(&[(Flag::Result, "a=-")], &mut huge).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--tool-result a=-: stdin: larger than 32 MiB, the most a tool result may be"
        );
    }

    fn history() -> Vec<Value> {
        vec![
            json!({"role": "user", "content": "Weather and time in Paris?"}),
            json!({"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
            ]}),
        ]
    }

    #[test]
    fn tool_calls_in_block_order() {
        let h = history();
        let calls = tool_calls(&h[1]);
        assert_eq!(
            calls,
            vec![
                ToolCall {
                    id: "toolu_1",
                    name: "get_weather",
                    input: &json!({"city": "Paris"})
                },
                ToolCall {
                    id: "toolu_2",
                    name: "get_time",
                    input: &json!({})
                },
            ]
        );
        assert!(tool_calls(&h[0]).is_empty());
    }

    #[test]
    fn results_must_answer_the_last_assistant_turn_exactly() {
        let h = history();
        let ok = [
            result("toolu_2", "12:00", Flag::Result),
            result("toolu_1", "no", Flag::Error),
        ];
        check_against_history(&h, &ok, "chat.json").unwrap();
        check_against_history(&h[..1], &[], "chat.json").unwrap();

        let check = |history: &[Value], results: &[ToolResult]| {
            check_against_history(history, results, "chat.json")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            check(
                &h,
                &[
                    result("toolu_1", "x", Flag::Result),
                    result("toolu_2", "x", Flag::Result),
                    result("toolu_9", "x", Flag::Result)
                ]
            ),
            "--tool-result: no tool_use toolu_9 in the last assistant turn of chat.json"
        );
        assert_eq!(
            check(
                &h,
                &[
                    result("toolu_8", "x", Flag::Error),
                    result("toolu_9", "x", Flag::Result)
                ]
            ),
            "--tool-result/--tool-error: no tool_use toolu_8, toolu_9 in the last assistant turn of chat.json"
        );
        assert_eq!(
            check(&h, &[result("toolu_1", "x", Flag::Result)]),
            "--tool-result: the last assistant turn of chat.json also called toolu_2 (get_time); give --tool-result or --tool-error for it"
        );
        let mut three = h.clone();
        three[1]["content"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "tool_use", "id": "toolu_3", "name": "f", "input": {}}));
        assert_eq!(
            check(&three, &[result("toolu_2", "x", Flag::Error)]),
            "--tool-error: the last assistant turn of chat.json also called toolu_1 (get_weather), toolu_3 (f); give --tool-result or --tool-error for each"
        );
        assert_eq!(
            check(&h[..1], &[result("toolu_1", "x", Flag::Result)]),
            "--tool-result: chat.json does not end with an assistant turn"
        );
        assert_eq!(
            check(&[], &[result("toolu_1", "x", Flag::Result)]),
            "--tool-result: chat.json does not end with an assistant turn"
        );
        let plain = [json!({"role": "assistant", "content": "Hello"})];
        assert_eq!(
            check(&plain, &[result("toolu_1", "x", Flag::Result)]),
            "--tool-result: the last assistant turn of chat.json called no tool"
        );
    }
}
