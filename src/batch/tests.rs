use super::line::{self, Line};
use super::*;
use crate::cli::Cli;
use crate::generation::Explicit;
use clap::Parser;
use serde_json::json;

fn config(args: &[&str]) -> Result<Config, String> {
    let mut argv = vec!["cs-msg", "--batch", "in.jsonl", "--no-stream"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    Config::from_cli(cli, Explicit::default(), true, |_| None).map_err(|e| e.to_string())
}

fn template(args: &[&str]) -> Template {
    Template {
        config: config(args).unwrap(),
        files: vec![json!({"type":"text","text":"FILE"})],
        prior: Vec::new(),
        tools: None,
    }
}

fn body(text: &str, t: &Template) -> Result<Value, String> {
    Line::from_value(line::parse(text.as_bytes())?)?.request_body(t)
}

#[test]
fn lines_parse_as_strings_or_objects() {
    assert_eq!(line::parse(b"\"hi\"\r\n"), Ok(json!("hi")));
    assert_eq!(
        line::parse(b"[1]\n"),
        Err("expected a JSON string (the prompt) or an object, found an array".into())
    );
    assert_eq!(
        line::parse(b"{\"a\":}\n"),
        Err("invalid JSON: expected value at column 6".into())
    );
    assert!(line::parse(b"\"caf\xe9\"").unwrap_err().contains("UTF-8"));
    assert_eq!(line::id(&json!({"id": 3})), Ok(json!(3)));
    assert_eq!(line::id(&json!("prompt")), Ok(Value::Null));
    assert!(line::id(&json!({"id": true})).is_err());
}

#[test]
fn a_line_overrides_the_flags() {
    let t = template(&["-m", "m1", "-s", "sys", "-t", "0.5"]);
    assert_eq!(
        body("\"hi\"", &t).unwrap(),
        json!({"model":"m1","max_tokens":4096,"system":"sys",
               "messages":[{"role":"user","content":[{"type":"text","text":"FILE"},{"type":"text","text":"hi"}]}],
               "temperature":0.5})
    );
    let b = body(
        r#"{"prompt":"x","model":"m2","system":[{"type":"text","text":"s"}],"temperature":null,"top_k":5}"#,
        &t,
    )
    .unwrap();
    assert_eq!(b["model"], "m2");
    assert_eq!(b["system"], json!([{"type":"text","text":"s"}]));
    assert_eq!(b.get("temperature"), None);
    assert_eq!(b["top_k"], 5);
}

#[test]
fn bad_lines_say_what_is_wrong() {
    let t = template(&[]);
    for (line, error) in [
        (r#"{"prompt":" \n"}"#, "empty prompt"),
        (
            r#"{"prompt":5}"#,
            "\"prompt\" must be a string, not a number",
        ),
        (
            r#"{"id":1}"#,
            "nothing to send: the line has no \"prompt\" and no \"messages\"",
        ),
        (
            r#"{"messages":[]}"#,
            "nothing to send: the line has no \"prompt\" and no \"messages\"",
        ),
        (
            r#"{"messages":{}}"#,
            "messages: $: expected an array of messages",
        ),
        (
            r#"{"messages":[{"role":"bot","content":"x"}]}"#,
            "messages: $[0].role: expected \"user\" or \"assistant\"",
        ),
        (
            r#"{"prompt":"x","max_tokens":-1}"#,
            "\"max_tokens\": must be a whole number from 1 to 4294967295",
        ),
        (
            r#"{"prompt":"x","model":null}"#,
            "\"model\": must be a non-empty model id",
        ),
        (
            r#"{"prompt":"x","top_p":1.5}"#,
            "\"top_p\": 1.5 is not between 0.0 and 1.0",
        ),
        (
            r#"{"prompt":"x","stop_sequences":[1]}"#,
            "\"stop_sequences\": must be an array of strings",
        ),
        (
            r#"{"prompt":"x","metadata":"u"}"#,
            "\"metadata\": must be an object",
        ),
        (
            r#"{"prompt":"x","promt":"y"}"#,
            "unknown field `promt`, expected one of `id`, `prompt`, `messages`, `system`, `model`, `max_tokens`, `temperature`, `top_p`, `top_k`, `stop_sequences`, `metadata`, `tools`, `tool_choice`, `thinking`",
        ),
    ] {
        assert_eq!(body(line, &t), Err(error.to_owned()), "{line}");
    }
}

/// Every field a line may override: the same bad value is refused as a flag and as
/// a line field, with the same rule message. (`system`, `stop_sequences` and
/// `metadata` take any string as flags, so they have no flag form to refuse.)
#[test]
fn flags_and_lines_refuse_the_same_values_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools.json");
    std::fs::write(
        &tools,
        r#"[{"name":"get_time","input_schema":{"type":"object"}}]"#,
    )
    .unwrap();
    let bad_tools = dir.path().join("bad.json");
    std::fs::write(
        &bad_tools,
        r#"[{"name":"","input_schema":{"type":"object"}}]"#,
    )
    .unwrap();
    let tools = tools.to_str().unwrap();
    let bad_tools = bad_tools.to_str().unwrap();
    // (what, flags both forms get, the flag form, the line form, the rule's message)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            "model",
            &[],
            &["-m", " "],
            r#"{"model":" "}"#,
            "must be a non-empty model id",
        ),
        (
            "max_tokens",
            &[],
            &["--max-tokens", "0"],
            r#"{"max_tokens":0}"#,
            "must be a whole number from 1 to 4294967295",
        ),
        (
            "top_k",
            &[],
            &["--top-k", "0"],
            r#"{"top_k":0}"#,
            "must be a whole number from 1 to 4294967295",
        ),
        (
            "temperature",
            &[],
            &["-t", "1.5"],
            r#"{"temperature":1.5}"#,
            "1.5 is not between 0.0 and 1.0",
        ),
        (
            "top_p",
            &[],
            &["--top-p", "2"],
            r#"{"top_p":2}"#,
            "2 is not between 0.0 and 1.0",
        ),
        (
            "thinking",
            &[],
            &["--thinking", "100"],
            r#"{"thinking":{"type":"enabled","budget_tokens":100}}"#,
            "a thinking budget must be at least 1024 tokens, not 100",
        ),
        (
            "thinking vs max_tokens",
            &[],
            &["--thinking", "5000", "--max-tokens", "5000"],
            r#"{"thinking":{"type":"enabled","budget_tokens":5000},"max_tokens":5000}"#,
            "--thinking 5000: the budget must be below --max-tokens (5000)",
        ),
        (
            "thinking vs temperature",
            &[],
            &["--thinking", "adaptive", "-t", "0.5"],
            r#"{"thinking":{"type":"adaptive"},"temperature":0.5}"#,
            "--thinking cannot be combined with --temperature",
        ),
        (
            "thinking vs top_k",
            &[],
            &["--thinking", "adaptive", "--top-k", "3"],
            r#"{"thinking":{"type":"adaptive"},"top_k":3}"#,
            "--thinking cannot be combined with --top-k",
        ),
        (
            "tool_choice",
            &["--tools", tools],
            &["--tool-choice", "nope"],
            r#"{"tool_choice":{"type":"tool","name":"nope"}}"#,
            "--tool-choice nope: no tool of that name in --tools",
        ),
        (
            "tools",
            &[],
            &["--tools", bad_tools],
            r#"{"tools":[{"name":"","input_schema":{"type":"object"}}]}"#,
            "$[0].name: must be 1 to 128 characters of letters, digits, '_' or '-'",
        ),
    ];
    for (field, common, flags, line, message) in cases {
        let args: Vec<&str> = common.iter().chain(flags.iter()).copied().collect();
        let flag_error = config(&args).err().unwrap_or_default();
        assert!(
            flag_error.contains(message),
            "{field} as a flag: {flag_error}"
        );
        let t = template(common);
        let mut fields: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        fields.insert("prompt".into(), json!("q"));
        let line_error = body(&Value::Object(fields).to_string(), &t).unwrap_err();
        assert!(
            line_error.contains(message),
            "{field} in a line: {line_error}"
        );
    }
}

#[test]
fn summary_exit_codes() {
    let stats = Stats {
        ok: 90,
        failed: 3,
        skipped: 7,
        kinds_seen: vec![ExitKind::Usage, ExitKind::Network],
        ..Stats::default()
    };
    let spec = BatchSpec {
        input: "in.jsonl".into(),
        jobs: 4,
        results: Some("o.jsonl".into()),
    };
    let e = finish(&stats, &spec, false, false).unwrap_err();
    let f = e.downcast_ref::<Failure>().unwrap();
    assert_eq!(f.kind, ExitKind::Network);
    assert_eq!(
        f.message,
        "97 ok, 3 failed (7 answered by an earlier run in o.jsonl)"
    );
    assert_eq!(f.hint, None);
    // With usage, the summary adds the tokens; a refused cache_control adds the hint.
    let mut stats = stats;
    stats.tokens = sink::Tokens::of(Some(&json!({"input_tokens": 5, "output_tokens": 2})));
    let e = finish(&stats, &spec, false, true).unwrap_err();
    let f = e.downcast_ref::<Failure>().unwrap();
    assert_eq!(
        f.message,
        "97 ok, 3 failed (7 answered by an earlier run in o.jsonl); tokens: input 5, output 2"
    );
    assert_eq!(f.hint.as_deref(), Some(crate::cache::REJECTION_HINT));
}

#[test]
fn cached_lines_mark_the_files_and_the_history_never_the_prompt() {
    let request = |text: &str, t: &Template| {
        Line::from_value(line::parse(text.as_bytes()).unwrap())
            .unwrap()
            .request(t)
            .unwrap()
    };
    let cc = json!({"type": "ephemeral"});
    let t = template(&["--cache", "-s", "sys"]);
    let (b, ttl) = request("\"hi\"", &t);
    assert_eq!(ttl, Some(crate::cache::Ttl::FiveMinutes));
    assert_eq!(
        b,
        json!({"model":"claude-sonnet-4.6","max_tokens":4096,
               "system":[{"type":"text","text":"sys","cache_control":cc}],
               "messages":[{"role":"user","content":[{"type":"text","text":"FILE","cache_control":cc},{"type":"text","text":"hi"}]}]})
    );
    // A line's own history: its last turn is marked, and the prompt is not.
    let (b, _) = request(
        r#"{"prompt":"p","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#,
        &t,
    );
    assert_eq!(
        b["messages"][1]["content"],
        json!([{"type":"text","text":"a","cache_control":cc}])
    );
    assert_eq!(
        b["messages"][2]["content"][1],
        json!({"type":"text","text":"p"})
    );
    // Messages alone: the end of the history.
    let (b, _) = request(r#"{"messages":[{"role":"user","content":"q"}]}"#, &t);
    assert_eq!(
        b["messages"][0]["content"],
        json!([{"type":"text","text":"q","cache_control":cc}])
    );
    // A line that carries its own breakpoints is left as it is, and not moved.
    let own = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral","ttl":"1h"}}]}]}"#;
    let (b, ttl) = request(own, &t);
    assert_eq!(ttl, None);
    assert_eq!(b["system"], json!("sys"));
    // No --cache: nothing.
    let (b, ttl) = request("\"hi\"", &template(&["-s", "sys"]));
    assert_eq!((b["system"].clone(), ttl), (json!("sys"), None));
}
