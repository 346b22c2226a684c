//! One invocation: the mode decided by the configuration, dispatched in one `match`.

use std::io::Write;

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::answer::{self, Checks};
use crate::cache::{self, Marks, Ttl};
use crate::client::{self, Client};
use crate::config::{Config, Mode};
use crate::error::{Failure, snippet, usage};
use crate::mcp;
use crate::output::{self, OutputMode, Writer};
use crate::spinner::{self, Spinner};
use crate::tool_loop::{self, ToolLoop};
use crate::tool_result::{self, ToolResult};
use crate::{batch, conversation, files, generate, input, models, request};

pub fn run(mut config: Config) -> Result<()> {
    let tools = match config.mode {
        Mode::Message | Mode::CountTokens | Mode::Batch(_) => tools(&mut config)?,
        Mode::Generate(_) | Mode::ListModels => None,
    };
    match config.mode.clone() {
        Mode::Generate(kind) => generate::print(kind),
        Mode::ListModels => {
            let models = models::fetch_all(&client(&config)?)?;
            models::print(&models, config.output_mode == OutputMode::Json)
        }
        Mode::CountTokens => message_body(&config)
            .and_then(|(body, _)| count_tokens(&config, &body))
            .map_err(|e| cache_hint(e, &config)),
        Mode::Message => message(&config, tools.as_ref()).map_err(|e| cache_hint(e, &config)),
        Mode::Batch(spec) => batch::run(config, &spec, tools),
    }
}

/// An endpoint that refuses `cache_control` gets its error shown as it is, and a hint
/// to drop `--cache` (only when `--cache` sent it).
fn cache_hint(e: anyhow::Error, config: &Config) -> anyhow::Error {
    if config.cache.is_none() {
        return e;
    }
    match e.downcast::<Failure>() {
        Ok(f)
            if f.api
                .as_ref()
                .is_some_and(|api| cache::is_rejection(api.status, &api.message)) =>
        {
            f.with_hint(cache::REJECTION_HINT).into()
        }
        Ok(f) => f.into(),
        Err(e) => e,
    }
}

/// The tools this run executes itself: `--exec` commands, and `--mcp` servers,
/// started here (once per process; a batch shares them), their tools offered with
/// the `--tools` ones. The servers stop when the loop is dropped, or on a signal.
/// `None`: no tool loop; a `tool_use` stop is a normal answer.
fn tools(config: &mut Config) -> Result<Option<ToolLoop>> {
    let tool_loop = config
        .executors
        .take()
        .map(|e| ToolLoop::new(e, config.max_turns, config.tool_limits));
    if tool_loop.is_some() {
        // A signal kills the running tools' process groups before cs-msg dies.
        crate::interrupt::on_signal(crate::executor::kill_running);
    }
    if config.mcp.commands.is_empty() {
        return Ok(tool_loop);
    }
    let spec = config.mcp.clone();
    crate::interrupt::on_signal(mcp::kill_all);
    let servers = mcp::start_all(
        &spec.commands,
        config.verbose,
        config.network.connect_timeout,
    )?;
    let listed = servers
        .iter()
        .map(|s| Ok((s.name(), s.tools()?)))
        .collect::<Result<Vec<_>>>()?;
    let tools = config.generation.tools.get_or_insert_with(Vec::new);
    let defined: Vec<&str> = tools
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    let offered = mcp::select(&listed, &defined, spec.only.as_deref())?;
    let mut bound = Vec::new();
    for tool in offered {
        if let Some(name) = tool.definition.get("name").and_then(Value::as_str) {
            bound.push((name.to_owned(), tool.server));
        }
        tools.push(tool.definition);
    }
    if config.verbose {
        output::info(&format!("{} MCP tools offered", bound.len()));
    }
    // Now that every tool is known, the choice of one must name one of them.
    if let Some(name) = config
        .generation
        .tool_choice
        .as_ref()
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        && !tools
            .iter()
            .any(|t| t.get("name").and_then(Value::as_str) == Some(name))
    {
        return Err(usage(format!(
            "--tool-choice {name}: no tool of that name in --tools or the --mcp servers"
        )));
    }
    let mut tool_loop = tool_loop
        .unwrap_or_else(|| ToolLoop::new(Vec::new(), config.max_turns, config.tool_limits));
    tool_loop.mcp = std::sync::Arc::new(servers);
    tool_loop.mcp_tools = bound;
    Ok(Some(tool_loop))
}

fn client(config: &Config) -> Result<Client> {
    Ok(Client::new(
        &config.network,
        config.require_key()?.clone(),
        config.verbose,
    ))
}

fn print_line(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// What a message call sends, and the history a `-c` file gets back: the prior turns
/// and this user turn.
struct History {
    prior: Vec<Value>,
    user_turn: Value,
    /// The `-c` file as it was read.
    snapshot: conversation::Snapshot,
    /// `--cache`, when cs-msg placed the breakpoints (and a tool loop moves them).
    cache: Option<Ttl>,
}

/// The request body from the flags, the files and stdin.
fn message_body(config: &Config) -> Result<(Value, History)> {
    // A --request body first: `--request -` takes stdin before the user turn could.
    let base = match &config.request_file {
        Some(path) => Some(read_request_body(path)?),
        None => None,
    };
    let (prior, snapshot) = match (&config.messages_file, &config.conversation) {
        (Some(path), _) => (
            conversation::read_messages(path, "--messages")?,
            Default::default(),
        ),
        (None, Some(path)) => conversation::read_conversation(path)?,
        _ => Default::default(),
    };
    let mut blocks = input::user_blocks(&config.input, config.stdin_hint_after)?;
    let has_prompt = input::prompt(&config.input).is_some();
    if !config.tool_results.is_empty() {
        // The results answer the history's last turn, so they come first in this one.
        let source = match (&config.messages_file, &config.conversation) {
            (Some(p), _) | (None, Some(p)) => p.display().to_string(),
            (None, None) => "the history".into(),
        };
        tool_result::check_against_history(&prior, &config.tool_results, &source)?;
        let results = config.tool_results.iter().map(ToolResult::block);
        blocks.splice(0..0, results);
    }
    // A conversation needs a new turn; --messages or --request may stand alone.
    let has_history = !prior.is_empty() && config.conversation.is_none();
    if blocks.is_empty() && base.is_none() && !has_history {
        return Err(usage(
            "nothing to send: give a PROMPT, pipe text to stdin, or attach a file with -f",
        ));
    }
    let user_turn = json!({"role": "user", "content": blocks.clone()});
    let marks = match blocks.len() {
        0 => Marks::History,
        n => Marks::NewTurn {
            stable: n - usize::from(has_prompt),
        },
    };
    let mut body = request::build(
        &config.generation,
        blocks,
        request::Sources {
            stream: (base.is_none() || config.explicit.contains(crate::generation::Field::Stream))
                .then_some(config.stream),
            base,
            explicit: &config.explicit,
            prior: prior.clone(),
        },
    );
    let cache = cache::apply_to(&mut body, config.cache, marks);
    Ok((
        body,
        History {
            prior,
            user_turn,
            snapshot,
            cache,
        },
    ))
}

/// A message call: send, print, check, save.
fn message(config: &Config, tools: Option<&ToolLoop>) -> Result<()> {
    let (body, history) = message_body(config)?;
    if config.dry_run {
        return print_line(&request::to_bytes(&body)?);
    }
    if let Some(path) = &config.conversation {
        // Before the answer is paid for, not after.
        files::check_writable(path, &format!("--conversation {}", path.display()))?;
    }
    let client = client(config)?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("the model")
        .to_owned();
    if config.verbose {
        output::info(&format!("model {model}"));
    }
    let started = std::time::Instant::now();
    let streaming = request::is_streaming(&body);
    let mut spinner = spinner::wanted(config.output_mode, streaming, config.verbose)
        .then(|| Spinner::start(format!("waiting for {model}…")));
    let mut stop_spinner = || {
        if let Some(s) = spinner.as_mut() {
            s.stop();
        }
    };
    // In a loop, --json prints only the final message: the turns are collected.
    let collect_json = tools.is_some() && config.output_mode == OutputMode::Json;
    let mode = match collect_json {
        true => OutputMode::Collect,
        false => config.output_mode,
    };
    let mut writer = Writer::stdout(mode, config.show_thinking);
    let options = tool_loop::Options {
        keep_text: config.conversation.is_some(),
        verbose: config.verbose,
        cache: history.cache,
    };
    let exchange = tool_loop::answer(
        &client,
        tools,
        body.clone(),
        &mut writer,
        options,
        &mut stop_spinner,
    )?;
    if collect_json {
        let mut writer = Writer::stdout(OutputMode::Json, false);
        writer.message(&exchange.message)?;
        writer.finish()?;
    }
    drop(spinner); // erased before any warning below
    if config.verbose {
        let turns = match exchange.requests {
            1 => String::new(),
            n => format!(" ({n} requests)"),
        };
        output::info(&format!(
            "done in {} ms{turns}",
            started.elapsed().as_millis()
        ));
    }
    if config.show_usage {
        output::info(&answer::usage_line(Some(&exchange.usage)));
    }
    if let Some(failure) = exchange.pending_failure() {
        // The history then ends with the pending calls, ready for --tool-result.
        if let Some(path) = &config.conversation {
            save_conversation(path, history, &exchange.turns)?;
        }
        return Err(failure.into());
    }
    let message = exchange.message;
    let checked = answer::check(
        message,
        &body,
        Checks {
            strict: config.strict,
            schema: config.schema.as_ref(),
        },
    )?;
    if let Some(warning) = &checked.warning {
        output::warn(warning);
    }
    if let Some(object) = &checked.object {
        print_line(serde_json::to_string(object)?.as_bytes())?;
    }
    if let Some(path) = &config.conversation {
        save_conversation(path, history, &exchange.turns)?;
    }
    Ok(())
}

/// `-c`: the history, this user turn, and every turn the answer added. The API
/// refuses empty text blocks in input, so an empty reply (a refusal, say) would
/// poison every later turn: then the file is left as it was.
fn save_conversation(path: &std::path::Path, history: History, added: &[Value]) -> Result<()> {
    if added.is_empty() {
        output::warn(&format!(
            "the reply was empty; {} was left unchanged",
            path.display()
        ));
        return Ok(());
    }
    let mut turns = history.prior;
    turns.push(history.user_turn);
    turns.extend_from_slice(added);
    conversation::save(path, &turns, &history.snapshot)
}

/// `--request PATH|-`: a JSON object whose `messages`, if any, are well-formed.
fn read_request_body(path: &std::path::Path) -> Result<Map<String, Value>> {
    let what = format!("--request {}", path.display());
    let Value::Object(mut body) = files::read_json(path, "--request")? else {
        return Err(usage(format!("{what}: $: expected a JSON object")));
    };
    if let Some(messages) = body.get_mut("messages").map(Value::take) {
        let checked = conversation::check_messages(messages, &format!("{what}: messages"))?;
        body.insert("messages".into(), Value::Array(checked));
    }
    Ok(body)
}

/// `--count-tokens`: the number, or (`--json`) the raw response.
fn count_tokens(config: &Config, body: &Value) -> Result<()> {
    let body = request::count_tokens_body(body);
    let bytes = request::to_bytes(&body)?;
    if config.dry_run {
        return print_line(&bytes);
    }
    let response =
        client(config)?.post("/v1/messages/count_tokens", &bytes, false, |r, info| {
            client::read_capped(r, crate::response::MAX_RESPONSE_BYTES, info)
        })?;
    let parsed: Option<Value> = serde_json::from_slice(&response).ok();
    let count = parsed
        .as_ref()
        .and_then(|v| v.get("input_tokens"))
        .and_then(Value::as_u64);
    match (count, parsed) {
        (Some(_), Some(v)) if config.output_mode == OutputMode::Json => {
            print_line(serde_json::to_string(&v)?.as_bytes())
        }
        (Some(n), _) => print_line(n.to_string().as_bytes()),
        _ => Err(Failure::malformed(format!(
            "expected {{\"input_tokens\": N}}: {}",
            snippet(&response)
        ))
        .into()),
    }
}
