//! Prompt caching (README "Prompt caching"): `cache_control` breakpoints on the stable
//! prefix of a request body. Pure functions over the body's JSON; the callers say which
//! blocks of the new user turn are stable ([`Marks`]).
//!
//! The API caches the prefix up to each breakpoint, in its order: tools, system,
//! messages. A later breakpoint covers everything before it, so the earlier ones only
//! pay when a later part changes (another `-f` file after the same system prompt).

use serde_json::{Value, json};

/// The API accepts at most this many breakpoints in one request.
pub const MAX_BREAKPOINTS: usize = 4;

/// How long a cache entry lives: `--cache-ttl`, `CS_MSG_CACHE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ttl {
    #[default]
    FiveMinutes,
    OneHour,
}

impl Ttl {
    pub fn parse(s: &str) -> Option<Ttl> {
        match s {
            "5m" => Some(Ttl::FiveMinutes),
            "1h" => Some(Ttl::OneHour),
            _ => None,
        }
    }

    /// The `cache_control` object; 5 minutes is the API's default, so it is not sent.
    fn control(self) -> Value {
        match self {
            Ttl::FiveMinutes => json!({"type": "ephemeral"}),
            Ttl::OneHour => json!({"type": "ephemeral", "ttl": "1h"}),
        }
    }
}

/// What the caller knows of the body's last message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks {
    /// The last message is this call's new user turn. Its first `stable` blocks (tool
    /// results, `-f` files, stdin) are sent again by the next call; the blocks after
    /// them (the PROMPT words) are the unique tail and never carry a breakpoint.
    NewTurn { stable: usize },
    /// There is no new turn: every message is history (`--messages` alone, a tool
    /// loop's next request), and the end of the last one is the end of the prefix.
    History,
}

/// Where one breakpoint goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spot {
    /// The tool definition at this index.
    Tool(usize),
    /// The system block at this index (0 for a string system, made a block).
    System(usize),
    /// Message, block (0 for a string content, made a block).
    Message(usize, usize),
}

/// Adds breakpoints to `body`: on the last tool definition, the end of the system
/// prompt, the last block of the turns before the new one, and the last stable block
/// of the new turn. A body that carries any `cache_control` already (a `--request`
/// body, a history that has its own) is left as it is: the caller placed its own.
/// Returns whether the breakpoints are cs-msg's (and so a tool loop may move them).
pub fn place(body: &mut Value, ttl: Ttl, marks: Marks) -> bool {
    if count(body) > 0 {
        return false;
    }
    let mut spots = Vec::new();
    if let Some(last) = body.get("tools").and_then(Value::as_array).map(Vec::len)
        && last > 0
    {
        spots.push(Spot::Tool(last - 1));
    }
    if let Some(block) = body
        .get("system")
        .and_then(|s| last_eligible(s, usize::MAX))
    {
        spots.push(Spot::System(block));
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let (prior, new_turn) = match marks {
        Marks::NewTurn { stable } if messages > 0 => {
            (messages.checked_sub(2), Some((messages - 1, stable)))
        }
        Marks::NewTurn { .. } => (None, None),
        Marks::History => (messages.checked_sub(1), None),
    };
    if let Some(m) = prior
        && let Some(b) = message_block(body, m, usize::MAX)
    {
        spots.push(Spot::Message(m, b));
    }
    if let Some((m, stable)) = new_turn
        && let Some(b) = message_block(body, m, stable)
    {
        spots.push(Spot::Message(m, b));
    }
    apply(body, &spots, ttl, 0);
    true
}

/// `place` when `--cache` is on; returns the lifetime a tool loop moves the message
/// breakpoint with (None: caching is off, or the body's breakpoints are not cs-msg's).
pub fn apply_to(body: &mut Value, cache: Option<Ttl>, marks: Marks) -> Option<Ttl> {
    let ttl = cache?;
    place(body, ttl, marks).then_some(ttl)
}

/// The tool loop's next request: the breakpoints on messages move to the end of the
/// history (the last tool-result turn), so this request reads what the previous one
/// wrote and writes what the next one reads. Those on tools and system stay.
pub fn advance(body: &mut Value, ttl: Ttl) {
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    for message in messages.iter_mut() {
        if let Some(blocks) = message.get_mut("content").and_then(Value::as_array_mut) {
            for block in blocks {
                if let Some(block) = block.as_object_mut() {
                    block.shift_remove("cache_control");
                }
            }
        }
    }
    let Some(last) = messages.len().checked_sub(1) else {
        return;
    };
    let existing = count(body);
    if let Some(b) = message_block(body, last, usize::MAX) {
        apply(body, &[Spot::Message(last, b)], ttl, existing);
    }
}

/// The breakpoints a body carries: at the top level (automatic caching), on tool
/// definitions, system blocks, message blocks and the blocks inside tool results.
pub fn count(body: &Value) -> usize {
    fn blocks<'a>(v: &'a Value, key: &str) -> std::slice::Iter<'a, Value> {
        v.get(key)
            .and_then(Value::as_array)
            .map_or([].iter(), |a| a.iter())
    }
    let marked = |v: &Value| usize::from(v.get("cache_control").is_some());
    let mut n = marked(body);
    n += blocks(body, "tools").map(marked).sum::<usize>();
    n += blocks(body, "system").map(marked).sum::<usize>();
    for message in blocks(body, "messages") {
        for block in blocks(message, "content") {
            n += marked(block);
            n += blocks(block, "content").map(marked).sum::<usize>();
        }
    }
    n
}

/// Whether a 400 says the endpoint does not accept `cache_control`, as relays in front
/// of other clouds answer ("Extra inputs are not permitted").
pub fn is_rejection(status: Option<u16>, message: &str) -> bool {
    status == Some(400)
        && (message.contains("cache_control") || message.contains("Extra inputs are not permitted"))
}

/// The hint shown after such a rejection.
pub const REJECTION_HINT: &str =
    "hint: this endpoint does not accept prompt caching (cache_control); run again without --cache";

/// The block of message `m` that carries its breakpoint, among its first `limit`.
fn message_block(body: &Value, m: usize, limit: usize) -> Option<usize> {
    last_eligible(body.get("messages")?.get(m)?.get("content")?, limit)
}

/// The last block among the first `limit` of a content (a string or an array of
/// blocks) that may carry a breakpoint: never a thinking block, nor an empty text.
fn last_eligible(content: &Value, limit: usize) -> Option<usize> {
    match content {
        Value::String(s) => (limit > 0 && !s.trim().is_empty()).then_some(0),
        Value::Array(blocks) => blocks.iter().take(limit).rposition(eligible),
        _ => None,
    }
}

fn eligible(block: &Value) -> bool {
    let Some(block) = block.as_object() else {
        return false;
    };
    match block.get("type").and_then(Value::as_str) {
        Some("thinking" | "redacted_thinking") | None => false,
        Some("text") => block
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.trim().is_empty()),
        Some(_) => true,
    }
}

/// Marks the spots, the latest first when the limit leaves room for only some: a
/// breakpoint caches everything before it, so a later one is worth more.
fn apply(body: &mut Value, spots: &[Spot], ttl: Ttl, existing: usize) {
    let room = MAX_BREAKPOINTS.saturating_sub(existing);
    let skip = spots.len().saturating_sub(room);
    for spot in &spots[skip..] {
        let target = match *spot {
            Spot::Tool(i) => body.get_mut("tools").and_then(|t| t.get_mut(i)),
            Spot::System(b) => body.get_mut("system").and_then(|s| block_mut(s, b)),
            Spot::Message(m, b) => body
                .get_mut("messages")
                .and_then(|ms| ms.get_mut(m))
                .and_then(|msg| msg.get_mut("content"))
                .and_then(|c| block_mut(c, b)),
        };
        if let Some(Value::Object(target)) = target {
            target.insert("cache_control".into(), ttl.control());
        }
    }
}

/// Block `b` of a content; a string content becomes a one-block text array first, so
/// it can carry the breakpoint.
fn block_mut(content: &mut Value, b: usize) -> Option<&mut Value> {
    if let Value::String(text) = content {
        *content = json!([{"type": "text", "text": std::mem::take(text)}]);
    }
    content.get_mut(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE: &str = r#"{"type":"ephemeral"}"#;

    fn cc() -> Value {
        json!({"type": "ephemeral"})
    }

    fn text(t: &str) -> Value {
        json!({"type": "text", "text": t})
    }

    fn marked(mut v: Value) -> Value {
        v["cache_control"] = cc();
        v
    }

    fn placed(mut body: Value, marks: Marks) -> Value {
        assert!(place(&mut body, Ttl::FiveMinutes, marks));
        assert!(count(&body) <= MAX_BREAKPOINTS);
        body
    }

    #[test]
    fn ttl_values() {
        assert_eq!(Ttl::parse("5m"), Some(Ttl::FiveMinutes));
        assert_eq!(Ttl::parse("1h"), Some(Ttl::OneHour));
        assert_eq!(Ttl::parse("1H"), None);
        assert_eq!(Ttl::parse(""), None);
        assert_eq!(Ttl::FiveMinutes.control().to_string(), FIVE);
        assert_eq!(
            Ttl::OneHour.control().to_string(),
            r#"{"type":"ephemeral","ttl":"1h"}"#
        );
    }

    #[test]
    fn a_prompt_alone_gets_no_breakpoint() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [text("hi")]}]});
        assert_eq!(placed(body.clone(), Marks::NewTurn { stable: 0 }), body);
    }

    #[test]
    fn every_part_of_the_prefix_gets_one_in_api_order() {
        let body = json!({
            "system": "be brief",
            "messages": [
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": [text("a1")]},
                {"role": "user", "content": [text("<file>"), text("<stdin>"), text("the prompt")]},
            ],
            "tools": [{"name": "a"}, {"name": "b"}],
        });
        let got = placed(body, Marks::NewTurn { stable: 2 });
        assert_eq!(
            got,
            json!({
                "system": [marked(text("be brief"))],
                "messages": [
                    {"role": "user", "content": "q1"},
                    {"role": "assistant", "content": [marked(text("a1"))]},
                    {"role": "user", "content": [text("<file>"), marked(text("<stdin>")), text("the prompt")]},
                ],
                "tools": [{"name": "a"}, marked(json!({"name": "b"}))],
            })
        );
        assert_eq!(count(&got), 4);
    }

    #[test]
    fn system_arrays_keep_their_blocks_and_mark_the_last_text() {
        let body = json!({"system": [text("one"), text("two"), text("  ")],
                          "messages": [{"role": "user", "content": [text("p")]}]});
        let got = placed(body, Marks::NewTurn { stable: 0 });
        assert_eq!(
            got["system"],
            json!([text("one"), marked(text("two")), text("  ")])
        );
        // An empty system string, or one of blanks only, carries nothing.
        for system in [json!(""), json!(" \n"), json!([]), json!([text("")])] {
            let body = json!({"system": system.clone(), "messages": []});
            assert_eq!(placed(body.clone(), Marks::History), body, "{system}");
        }
    }

    #[test]
    fn files_without_a_prompt_mark_the_last_file() {
        let body = json!({"messages": [{"role": "user", "content": [text("f1"), text("f2")]}]});
        let got = placed(body, Marks::NewTurn { stable: 2 });
        assert_eq!(
            got["messages"][0]["content"],
            json!([text("f1"), marked(text("f2"))])
        );
    }

    #[test]
    fn string_content_becomes_a_block_to_carry_a_mark() {
        let body = json!({"messages": [{"role": "user", "content": "old"},
                                       {"role": "assistant", "content": "reply"},
                                       {"role": "user", "content": [text("p")]}]});
        let got = placed(body, Marks::NewTurn { stable: 0 });
        assert_eq!(got["messages"][0]["content"], json!("old"));
        assert_eq!(
            got["messages"][1]["content"],
            json!([marked(text("reply"))])
        );
        assert_eq!(got["messages"][2]["content"], json!([text("p")]));
    }

    #[test]
    fn history_alone_marks_the_end_of_the_last_message() {
        let body = json!({"messages": [{"role": "user", "content": "q"},
                                       {"role": "assistant", "content": "a"},
                                       {"role": "user", "content": "q2"}]});
        let got = placed(body, Marks::History);
        assert_eq!(got["messages"][1]["content"], json!("a"));
        assert_eq!(got["messages"][2]["content"], json!([marked(text("q2"))]));
        assert_eq!(count(&got), 1);
    }

    #[test]
    fn thinking_and_empty_text_are_passed_over_within_the_same_message() {
        let thinking = json!({"type": "thinking", "thinking": "hm", "signature": "s"});
        let redacted = json!({"type": "redacted_thinking", "data": "x"});
        let tool_use = json!({"type": "tool_use", "id": "t", "name": "n", "input": {}});
        let body = json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [thinking.clone(), tool_use.clone(), text(""), redacted.clone()]},
            {"role": "user", "content": [text("p")]},
        ]});
        let got = placed(body, Marks::NewTurn { stable: 0 });
        assert_eq!(
            got["messages"][1]["content"],
            json!([
                thinking.clone(),
                marked(tool_use),
                text(""),
                redacted.clone()
            ])
        );
        // Nothing eligible: no breakpoint there, and none moved to another message.
        let body = json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [thinking, redacted]},
            {"role": "user", "content": [text("p")]},
        ]});
        assert_eq!(placed(body.clone(), Marks::NewTurn { stable: 0 }), body);
    }

    #[test]
    fn the_prompt_is_never_marked_even_when_the_stable_blocks_are_not_eligible() {
        let body = json!({"messages": [{"role": "user", "content": [text(" "), text("p")]}]});
        assert_eq!(placed(body.clone(), Marks::NewTurn { stable: 1 }), body);
        // A stable count beyond the blocks marks the last one.
        let body = json!({"messages": [{"role": "user", "content": [text("f")]}]});
        let got = placed(body, Marks::NewTurn { stable: 5 });
        assert_eq!(got["messages"][0]["content"], json!([marked(text("f"))]));
        // A new turn on an empty body marks nothing.
        let body = json!({"messages": []});
        assert_eq!(placed(body.clone(), Marks::NewTurn { stable: 1 }), body);
    }

    #[test]
    fn tool_results_first_in_the_turn_are_stable() {
        let result = json!({"type": "tool_result", "tool_use_id": "t", "content": "42"});
        let body =
            json!({"messages": [{"role": "user", "content": [result.clone(), text("go on")]}]});
        let got = placed(body, Marks::NewTurn { stable: 1 });
        assert_eq!(
            got["messages"][0]["content"],
            json!([marked(result), text("go on")])
        );
    }

    #[test]
    fn a_body_with_any_breakpoint_is_left_alone() {
        for body in [
            json!({"cache_control": cc(), "messages": [{"role": "user", "content": "x"}]}),
            json!({"tools": [marked(json!({"name": "a"}))], "system": "s", "messages": []}),
            json!({"system": [marked(text("s"))], "messages": []}),
            json!({"messages": [{"role": "user", "content": [marked(text("x")), text("y")]}]}),
            json!({"messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [marked(text("r"))]}, text("y")]}]}),
        ] {
            let mut got = body.clone();
            assert!(!place(&mut got, Ttl::OneHour, Marks::NewTurn { stable: 1 }));
            assert_eq!(got, body);
            assert_eq!(apply_to(&mut got, Some(Ttl::OneHour), Marks::History), None);
            assert_eq!(got, body);
        }
        // A property named cache_control inside a schema or a tool input is not a mark.
        let body = json!({"tools": [{"name": "a", "input_schema": {"properties": {"cache_control": {}}}}],
                          "messages": [{"role": "assistant", "content": [
                              {"type": "tool_use", "id": "t", "name": "a", "input": {"cache_control": 1}}]}]});
        assert_eq!(count(&body), 0);
    }

    #[test]
    fn one_hour_sends_its_ttl_and_off_sends_nothing() {
        let body = json!({"system": "s", "messages": [{"role": "user", "content": [text("p")]}]});
        let mut got = body.clone();
        assert_eq!(
            apply_to(&mut got, Some(Ttl::OneHour), Marks::NewTurn { stable: 0 }),
            Some(Ttl::OneHour)
        );
        assert_eq!(
            got["system"],
            json!([{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
        );
        let mut off = body.clone();
        assert_eq!(apply_to(&mut off, None, Marks::NewTurn { stable: 0 }), None);
        assert_eq!(off, body);
    }

    #[test]
    fn the_tool_loop_moves_the_message_mark_to_the_end_of_the_history() {
        let call = json!({"type": "tool_use", "id": "t1", "name": "n", "input": {}});
        let result = json!({"type": "tool_result", "tool_use_id": "t1", "content": "r"});
        let mut body = placed(
            json!({"tools": [{"name": "n"}], "system": "s", "messages": [
                {"role": "user", "content": "earlier"},
                {"role": "assistant", "content": "reply"},
                {"role": "user", "content": [text("file"), text("prompt")]}]}),
            Marks::NewTurn { stable: 1 },
        );
        assert_eq!(count(&body), 4);
        let messages = body["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": [call.clone()]}));
        messages.push(json!({"role": "user", "content": [result.clone()]}));
        advance(&mut body, Ttl::FiveMinutes);
        assert_eq!(
            body,
            json!({"tools": [marked(json!({"name": "n"}))], "system": [marked(text("s"))], "messages": [
                {"role": "user", "content": "earlier"},
                {"role": "assistant", "content": [text("reply")]},
                {"role": "user", "content": [text("file"), text("prompt")]},
                {"role": "assistant", "content": [call.clone()]},
                {"role": "user", "content": [marked(result.clone())]}]})
        );
        // The next turn moves it again.
        let messages = body["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": [call]}));
        messages.push(json!({"role": "user", "content": [result.clone(), result.clone()]}));
        advance(&mut body, Ttl::FiveMinutes);
        assert_eq!(count(&body), 3);
        assert_eq!(body["messages"][4]["content"], json!([result.clone()]));
        assert_eq!(
            body["messages"][6]["content"],
            json!([result.clone(), marked(result)])
        );
    }

    #[test]
    fn never_more_than_four_and_the_latest_win() {
        let mut body =
            json!({"tools": [{"name": "a"}], "messages": [{"role": "user", "content": "x"}]});
        let spots = [
            Spot::Tool(0),
            Spot::Message(0, 0),
            Spot::Message(0, 0),
            Spot::Tool(0),
        ];
        apply(&mut body, &spots[..2], Ttl::FiveMinutes, 3);
        assert_eq!(body["tools"][0].get("cache_control"), None);
        assert_eq!(body["messages"][0]["content"], json!([marked(text("x"))]));
        let mut full = body.clone();
        apply(&mut full, &spots, Ttl::FiveMinutes, 4);
        assert_eq!(full, body);
        // advance counts what tools and system already carry.
        let mut body = json!({"tools": [marked(json!({"name": "a"})), marked(json!({"name": "b"}))],
                              "system": [marked(text("s")), marked(text("t"))],
                              "messages": [{"role": "user", "content": "x"}]});
        let before = body.clone();
        advance(&mut body, Ttl::FiveMinutes);
        assert_eq!(body, before);
    }

    #[test]
    fn rejections_are_recognised() {
        assert!(is_rejection(
            Some(400),
            "tools.0.cache_control: Extra inputs are not permitted"
        ));
        assert!(is_rejection(Some(400), "Extra inputs are not permitted"));
        assert!(is_rejection(Some(400), "cache_control is not supported"));
        assert!(!is_rejection(Some(400), "max_tokens: too large"));
        assert!(!is_rejection(Some(500), "cache_control"));
        assert!(!is_rejection(None, "cache_control"));
    }
}
