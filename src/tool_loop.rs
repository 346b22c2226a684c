//! The executed tool loop (README "Tools that run"): send; while the answer stops with
//! `tool_use` and every called tool is bound, run that turn's calls (in parallel,
//! results in block order), send the results, go on, at most `--max-turns` requests.
//! Every request goes through the one call path (`call.rs`), on one client, so the
//! turns of a loop share its connection pool, retries and fallbacks.
//!
//! The loop is stateless: what it returns (the new turns) is what `-c` saves.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::cache::{self, Ttl};
use crate::call;
use crate::client::Client;
use crate::conversation;
use crate::error::{ExitKind, Failure};
use crate::executor::{self, Executor, Limits, ToolRun};
use crate::mcp::McpServer;
use crate::output::{self, OutputMode, Writer};
use crate::tool_result::{ToolCall, tool_calls};

/// What `--exec`, `--mcp`, `--max-turns` and `--tool-timeout` set up.
#[derive(Clone)]
pub struct ToolLoop {
    pub executors: Vec<Executor>,
    /// `--mcp` servers (started once per process, shared by batch workers) and
    /// which server answers which tool name.
    pub mcp: Arc<Vec<McpServer>>,
    pub mcp_tools: Vec<(String, usize)>,
    /// The most requests one loop sends.
    pub max_turns: u32,
    pub limits: Limits,
}

impl std::fmt::Debug for ToolLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolLoop")
            .field("executors", &self.executors)
            .field("mcp_tools", &self.mcp_tools)
            .field("max_turns", &self.max_turns)
            .finish_non_exhaustive()
    }
}

impl ToolLoop {
    pub fn new(executors: Vec<Executor>, max_turns: u32, limits: Limits) -> ToolLoop {
        ToolLoop {
            executors,
            mcp: Arc::new(Vec::new()),
            mcp_tools: Vec::new(),
            max_turns,
            limits,
        }
    }

    fn mcp_server(&self, name: &str) -> Option<&McpServer> {
        let (_, index) = self.mcp_tools.iter().find(|(n, _)| n == name)?;
        self.mcp.get(*index)
    }

    fn is_bound(&self, name: &str) -> bool {
        executor::find(&self.executors, name).is_some() || self.mcp_server(name).is_some()
    }

    /// The calls of one turn, in parallel; results in block order.
    fn run_turn(&self, calls: &[ToolCall<'_>]) -> Vec<ToolRun> {
        if self.mcp_tools.is_empty() {
            return executor::run_turn(calls, &self.executors, &self.limits);
        }
        std::thread::scope(|scope| {
            let running: Vec<_> = calls
                .iter()
                .map(|call| {
                    scope.spawn(move || match self.mcp_server(call.name) {
                        Some(server) => mcp_run(server, call, self.limits.timeout),
                        None => executor::run_turn(
                            std::slice::from_ref(call),
                            &self.executors,
                            &self.limits,
                        )
                        .remove(0),
                    })
                })
                .collect();
            running
                .into_iter()
                .zip(calls)
                .map(|(handle, call)| {
                    handle.join().unwrap_or_else(|_| ToolRun {
                        tool_use_id: call.id.to_owned(),
                        name: call.name.to_owned(),
                        content: crate::tool_result::text_content(
                            "internal error running the tool",
                        ),
                        is_error: true,
                        duration: Duration::ZERO,
                        status: "failed".into(),
                        bytes: 0,
                    })
                })
                .collect()
        })
    }
}

/// One `tools/call`, described like a command's run.
fn mcp_run(server: &McpServer, call: &ToolCall<'_>, timeout: Duration) -> ToolRun {
    let started = Instant::now();
    let result = server.call(call.name, call.input, timeout);
    let bytes = result.content.iter().map(|b| b.to_string().len()).sum();
    ToolRun {
        tool_use_id: call.id.to_owned(),
        name: call.name.to_owned(),
        status: format!(
            "MCP {} {}",
            server.name(),
            if result.is_error { "error" } else { "ok" }
        ),
        content: result.content,
        is_error: result.is_error,
        duration: started.elapsed(),
        bytes,
    }
}

/// How a loop ended.
pub struct Exchange {
    /// The last answer.
    pub message: Value,
    /// The turns the loop added after the request's own messages: assistant turns
    /// and tool-result user turns, the last assistant turn included.
    pub turns: Vec<Value>,
    /// Requests sent.
    pub requests: u32,
    /// Token usage summed over every request.
    pub usage: Value,
    /// The calls left unanswered: the turn limit was reached, or a tool has no
    /// executor. Empty when the loop ended with a normal answer.
    pub pending: Vec<Value>,
    /// Why calls are pending, for the exit-7 message.
    pub pending_reason: String,
}

impl Exchange {
    /// Exit 7 when calls are pending (after `-c` was saved).
    pub fn pending_failure(&self) -> Option<Failure> {
        if self.pending.is_empty() {
            return None;
        }
        Some(Failure::new(
            ExitKind::ToolsPending,
            self.pending_reason.clone(),
        ))
    }
}

/// How one answer is asked for, beyond the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The final message must hold its text (see `response::receive`); a loop always
    /// keeps it, since each turn is sent back.
    pub keep_text: bool,
    /// `-v`: one stderr line per tool call.
    pub verbose: bool,
    /// `--cache`, when the breakpoints are cs-msg's: each turn moves the one on the
    /// history to its end, so turn N reads what turn N−1 wrote.
    pub cache: Option<Ttl>,
}

/// The answer to `body`, the same way for a single call and a batch line: one request
/// without `tools`, the whole loop with them.
pub fn answer<W: Write>(
    client: &Client,
    tools: Option<&ToolLoop>,
    body: Value,
    writer: &mut Writer<W>,
    options: Options,
    first_bytes: &mut dyn FnMut(),
) -> Result<Exchange> {
    match tools {
        Some(tools) => run(client, tools, body, writer, options, first_bytes),
        None => {
            let message = call::send(client, &body, writer, options.keep_text, first_bytes)?;
            let reply = conversation::reply_content(&message);
            let turns = match reply.is_empty() {
                true => Vec::new(),
                false => vec![json!({"role": "assistant", "content": reply})],
            };
            let mut usage = Map::new();
            add_usage(&mut usage, message.get("usage"));
            Ok(done(message, turns, 1, usage, Vec::new(), String::new()))
        }
    }
}

/// Runs the loop from `body` (a complete request). `writer` prints each turn as its
/// mode says (text: every turn's text, turns separated by a newline; `--events`:
/// every event, plus one `cs_msg_tool_result` line per result); bound calls are not
/// printed, pending ones are, as `tool_use` lines.
fn run<W: Write>(
    client: &Client,
    tools: &ToolLoop,
    mut body: Value,
    writer: &mut Writer<W>,
    options: Options,
    first_bytes: &mut dyn FnMut(),
) -> Result<Exchange> {
    let verbose = options.verbose;
    writer.print_tool_calls(false);
    let mut turns: Vec<Value> = Vec::new();
    let mut usage = Map::new();
    let mut requests = 0;
    loop {
        let message = call::send(client, &body, writer, true, first_bytes)?;
        requests += 1;
        add_usage(&mut usage, message.get("usage"));
        let reply = conversation::reply_content(&message);
        let stopped_for_tools =
            message.get("stop_reason").and_then(Value::as_str) == Some("tool_use");
        let calls = tool_calls(&message);
        if !stopped_for_tools || calls.is_empty() {
            if !reply.is_empty() {
                turns.push(json!({"role": "assistant", "content": reply}));
            }
            return Ok(done(
                message,
                turns,
                requests,
                usage,
                Vec::new(),
                String::new(),
            ));
        }
        turns.push(json!({"role": "assistant", "content": reply}));
        let unbound: Vec<&str> = calls
            .iter()
            .filter(|c| !tools.is_bound(c.name))
            .map(|c| c.name)
            .collect();
        if !unbound.is_empty() || requests >= tools.max_turns {
            let reason = if unbound.is_empty() {
                format!(
                    "the tool loop reached --max-turns {} with tool calls pending",
                    tools.max_turns
                )
            } else {
                format!(
                    "the model called {} with no executor (--exec); the calls are pending",
                    unbound.join(", ")
                )
            };
            let pending: Vec<Value> = calls.iter().map(tool_use_block).collect();
            print_pending(writer, &pending)?;
            return Ok(done(message, turns, requests, usage, pending, reason));
        }
        let started = Instant::now();
        let runs = tools.run_turn(&calls);
        let mut results = Vec::with_capacity(runs.len());
        for run in &runs {
            if verbose {
                output::info(&format!("tool {}", run.summary()));
            }
            if writer.mode() == OutputMode::Events {
                writer.event_line(&result_event(run).to_string())?;
            }
            results.push(run.block());
        }
        if verbose && runs.len() > 1 {
            output::info(&format!(
                "{} tool calls in {:.2} s",
                runs.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        writer.flush()?;
        let user_turn = json!({"role": "user", "content": results});
        if let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) {
            messages.push(turns[turns.len() - 1].clone());
            messages.push(user_turn.clone());
        }
        turns.push(user_turn);
        if let Some(ttl) = options.cache {
            cache::advance(&mut body, ttl);
        }
    }
}

fn done(
    message: Value,
    turns: Vec<Value>,
    requests: u32,
    usage: Map<String, Value>,
    pending: Vec<Value>,
    pending_reason: String,
) -> Exchange {
    Exchange {
        message,
        turns,
        requests,
        usage: Value::Object(usage),
        pending,
        pending_reason,
    }
}

fn tool_use_block(call: &ToolCall<'_>) -> Value {
    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
}

/// Text mode shows the calls nobody answered, as a single call shows any call.
fn print_pending<W: Write>(writer: &mut Writer<W>, pending: &[Value]) -> std::io::Result<()> {
    if writer.mode() == OutputMode::Text {
        for block in pending {
            writer.pending_tool_use(block)?;
        }
        writer.finish()?;
    }
    Ok(())
}

/// The `--events` line for one tool result: not an API event (those never have this
/// type), so a script can tell them apart and rebuild the whole exchange.
pub fn result_event(run: &ToolRun) -> Value {
    json!({
        "type": "cs_msg_tool_result",
        "tool_use_id": run.tool_use_id,
        "name": run.name,
        "is_error": run.is_error,
        "content": run.content,
    })
}

/// Sums every numeric usage field (input, output, cache read and write tokens).
fn add_usage(sum: &mut Map<String, Value>, usage: Option<&Value>) {
    let Some(Value::Object(usage)) = usage else {
        return;
    };
    for (key, value) in usage {
        if let Some(n) = value.as_u64() {
            let total = sum.get(key).and_then(Value::as_u64).unwrap_or(0) + n;
            sum.insert(key.clone(), json!(total));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_summed_over_turns() {
        let mut sum = Map::new();
        add_usage(
            &mut sum,
            Some(&json!({"input_tokens": 3, "output_tokens": 1})),
        );
        add_usage(
            &mut sum,
            Some(
                &json!({"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 4, "service_tier": "standard"}),
            ),
        );
        assert_eq!(
            Value::Object(sum),
            json!({"input_tokens": 8, "output_tokens": 3, "cache_read_input_tokens": 4})
        );
    }
}
