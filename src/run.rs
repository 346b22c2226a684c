//! One invocation, start to finish: config → user turn → request → call → output.

use std::collections::HashSet;
use std::io::{IsTerminal, Read, Write};

use anyhow::Result;
use serde_json::{Map, Value, json};
use ureq::Body;
use ureq::http::Response;

use crate::cli::Cli;
use crate::client::{self, AttemptError, CallInfo, Client};
use crate::config::{Config, OutputMode, Task};
use crate::error::{ExitKind, Failure, snippet, usage};
use crate::output::{self, Writer};
use crate::spinner::{self, Spinner};
use crate::{conversation, generate, input, models, request, stream};

/// Non-streamed answers are read whole; this bounds a runaway body.
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

pub fn run(cli: Cli, explicit: HashSet<String>) -> Result<()> {
    // Special modes first: no stdin, key or network involved.
    if let Some(kind) = cli.generate {
        return generate::print(kind);
    }
    // Before the config: reading it may already warn (a shared key file).
    output::set_quiet(cli.quiet);
    let json_flag = cli.json;
    let batch = crate::batch::Spec::from_cli(&cli)?;
    let config = Config::from_cli(cli, explicit, std::io::stdin().is_terminal(), |k| {
        std::env::var(k).ok()
    })?;
    if let Some(spec) = batch {
        return crate::batch::run(config, spec);
    }

    if config.task == Task::ListModels {
        let client = client(&config)?;
        return models::print(&models::fetch_all(&client)?, json_flag);
    }

    // A --request body first: `--request -` takes stdin before the user turn could.
    let base = match &config.request_file {
        Some(path) => Some(read_request_body(path)?),
        None => None,
    };
    let prior = match (&config.messages_file, &config.conversation) {
        (Some(path), _) => conversation::read_messages(path, "--messages")?,
        (None, Some(path)) if path.exists() => conversation::read_messages(path, "--conversation")?,
        _ => Vec::new(),
    };
    let blocks = input::user_blocks(&config.input, config.stdin_hint_after)?;
    // A conversation needs a new turn; --messages or --request may stand alone.
    let has_history = !prior.is_empty() && config.conversation.is_none();
    if blocks.is_empty() && base.is_none() && !has_history {
        return Err(usage(
            "nothing to send: give a PROMPT, pipe text to stdin, or attach a file with -f",
        ));
    }
    let user_turn = json!({"role": "user", "content": blocks.clone()});
    let explicit_flag = |id: &str| config.explicit.contains(id);
    let stream_explicit = ["stream", "no_stream", "events"]
        .iter()
        .any(|id| config.explicit.contains(*id));
    let body = request::build(
        &config.generation,
        blocks,
        request::Sources {
            stream: (base.is_none() || stream_explicit).then_some(config.stream),
            base,
            explicit: &explicit_flag,
            prior: prior.clone(),
        },
    );

    if config.task == Task::CountTokens {
        return count_tokens(&config, &body, json_flag);
    }
    let bytes = request::to_bytes(&body)?;
    if config.dry_run {
        return print_line(&bytes);
    }

    let client = client(&config)?;
    let mut writer = Writer::stdout(config.output, config.show_thinking);
    if config.verbose {
        output::info(&format!(
            "model {}",
            body.get("model").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    let started = std::time::Instant::now();
    let streaming = request::is_streaming(&body);
    let mut spinner = spinner::wanted(config.output, streaming, config.verbose).then(|| {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("the model");
        Spinner::start(format!("waiting for {model}…"))
    });
    let message = client.post("/v1/messages", &bytes, streaming, |response, info| {
        receive(response, info, streaming, &config, &mut writer, &mut || {
            if let Some(s) = spinner.as_mut() {
                s.stop();
            }
        })
    })?;
    drop(spinner); // erased before any warning below
    if config.verbose {
        output::info(&format!("done in {} ms", started.elapsed().as_millis()));
    }
    report(&config, &message)?;
    if let Some(schema) = &config.schema {
        let object = schema.extract(&message)?;
        print_line(serde_json::to_string(&object)?.as_bytes())?;
    }
    if let Some(path) = &config.conversation {
        // The API refuses empty text blocks in input, so an empty reply (a refusal,
        // say) would poison every later turn: keep it out of the file.
        let reply = conversation::reply_content(&message);
        if reply.is_empty() {
            output::warn(&format!(
                "the reply was empty; {} was left unchanged",
                path.display()
            ));
        } else {
            let mut history = prior;
            history.push(user_turn);
            history.push(json!({"role": "assistant", "content": reply}));
            conversation::save(path, &history)?;
        }
    }
    Ok(())
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

/// `--request PATH|-`: a JSON object whose `messages`, if any, are well-formed.
fn read_request_body(path: &std::path::Path) -> Result<Map<String, Value>> {
    let what = format!("--request {}", path.display());
    let Value::Object(mut body) = conversation::read_json(path, "--request")? else {
        return Err(usage(format!("{what}: $: expected a JSON object")));
    };
    if let Some(messages) = body.get_mut("messages").map(Value::take) {
        let checked = conversation::check_messages(messages, &format!("{what}: messages"))?;
        body.insert("messages".into(), Value::Array(checked));
    }
    Ok(body)
}

/// `--count-tokens`: the number, or (`--json`) the raw response.
fn count_tokens(config: &Config, body: &Value, json_flag: bool) -> Result<()> {
    let body = request::count_tokens_body(body);
    let bytes = request::to_bytes(&body)?;
    if config.dry_run {
        return print_line(&bytes);
    }
    let response = client(config)?.post("/v1/messages/count_tokens", &bytes, false, |r, _| {
        let mut raw = Vec::new();
        r.into_body()
            .into_reader()
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut raw)
            .map_err(|e| AttemptError::Fatal(e.into()))?;
        Ok(raw)
    })?;
    let parsed: Option<Value> = serde_json::from_slice(&response).ok();
    let count = parsed
        .as_ref()
        .and_then(|v| v.get("input_tokens"))
        .and_then(Value::as_u64);
    match (count, parsed) {
        (Some(_), Some(v)) if json_flag => print_line(serde_json::to_string(&v)?.as_bytes()),
        (Some(n), _) => print_line(n.to_string().as_bytes()),
        _ => Err(Failure::new(
            ExitKind::Api,
            format!(
                "malformed response: expected {{\"input_tokens\": N}}: {}",
                snippet(&response)
            ),
        )
        .into()),
    }
}

/// Handles a 2xx response: an event stream, or a whole message (also when a gateway
/// answers a streaming request with plain JSON).
pub(crate) fn receive<W: Write>(
    response: Response<Body>,
    info: &CallInfo,
    streaming: bool,
    config: &Config,
    writer: &mut Writer<W>,
    first_bytes: &mut dyn FnMut(),
) -> Result<Value, AttemptError> {
    let is_json = client::header(response.headers(), "content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    let request_id = info.request_id.as_deref();
    let read_error = |e: std::io::Error| {
        client::transport_failure(ureq::Error::from(e), &info.net.base_url, &info.net)
            .with_request_id(request_id)
    };
    if streaming && !is_json {
        // A text or --events writer prints the answer as it comes; after the stream
        // only the stop reason and usage are read, unless -c saves the whole reply.
        // (The writer's mode, not config.output: batch collects through a JSON writer.)
        let keep_text = config.conversation.is_some()
            || matches!(writer.mode(), OutputMode::Json | OutputMode::Schema);
        return stream::consume(
            response.into_body().into_reader(),
            writer,
            request_id,
            read_error,
            first_bytes,
            keep_text,
        );
    }
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| AttemptError::Retry(read_error(e)))?;
    first_bytes();
    let message: Value = serde_json::from_slice(&bytes)
        .ok()
        .filter(|m: &Value| m.get("content").is_some_and(Value::is_array))
        .ok_or_else(|| {
            Failure::new(
                ExitKind::Api,
                format!(
                    "malformed response: expected a message object: {}",
                    snippet(&bytes)
                ),
            )
            .with_request_id(request_id)
        })?;
    if matches!(config.output, OutputMode::Json | OutputMode::Schema) {
        writer.thinking_of(&message); // text mode prints thinking in its place
    }
    if config.output == OutputMode::Events {
        // Not a stream after all: the message is the only event there is.
        writer.event_line(&serde_json::to_string(&message)?)?;
    } else {
        writer.message(&message)?;
    }
    writer.finish()?;
    Ok(message)
}

/// After the answer: token usage and warnings about incomplete stops (DESIGN.md §4).
fn report(config: &Config, message: &Value) -> Result<()> {
    if config.usage {
        output::info(&usage_line(message.get("usage")));
    }
    let stop = message.get("stop_reason").and_then(Value::as_str);
    let problem = match stop {
        Some("max_tokens") => format!(
            "the answer was cut off at the max_tokens limit ({}); raise --max-tokens",
            config.generation.max_tokens
        ),
        Some("refusal") => "the model refused to answer (stop_reason refusal)".to_owned(),
        Some("pause_turn") => {
            "the model paused a long-running turn (stop_reason pause_turn); send it back to continue"
                .to_owned()
        }
        Some("model_context_window_exceeded") => {
            "the model's context window is full; the answer is incomplete".to_owned()
        }
        _ => return Ok(()),
    };
    if config.strict {
        return Err(Failure::new(ExitKind::Unusable, format!("{problem} (--strict)")).into());
    }
    output::warn(&problem);
    Ok(())
}

fn usage_line(usage: Option<&Value>) -> String {
    let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
    let mut parts = Vec::new();
    for (key, label) in [
        ("input_tokens", "input"),
        ("output_tokens", "output"),
        ("cache_read_input_tokens", "cache read"),
        ("cache_creation_input_tokens", "cache write"),
    ] {
        if let Some(n) = count(key) {
            parts.push(format!("{label} {n}"));
        }
    }
    if parts.is_empty() {
        "tokens: usage not reported".to_owned()
    } else {
        format!("tokens: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_line_lists_present_counts() {
        let u = json!({"input_tokens": 12, "output_tokens": 5, "cache_read_input_tokens": 0});
        assert_eq!(
            usage_line(Some(&u)),
            "tokens: input 12, output 5, cache read 0"
        );
        assert_eq!(usage_line(None), "tokens: usage not reported");
    }
}
