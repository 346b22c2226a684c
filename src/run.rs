//! One invocation, start to finish: config → user turn → request → call → output.

use std::io::{IsTerminal, Read, Write};

use anyhow::Result;
use serde_json::Value;
use ureq::Body;
use ureq::http::Response;

use crate::cli::Cli;
use crate::client::{self, AttemptError, CallInfo, Client};
use crate::config::{Config, OutputMode};
use crate::error::{ExitKind, Failure, snippet, usage};
use crate::output::{self, Writer};
use crate::{input, request, stream};

/// Non-streamed answers are read whole; this bounds a runaway body.
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

pub fn run(cli: Cli) -> Result<()> {
    // Before the config: reading it may already warn (a shared key file).
    output::set_quiet(cli.quiet);
    let config = Config::from_cli(cli, std::io::stdin().is_terminal(), |k| {
        std::env::var(k).ok()
    })?;

    let blocks = input::user_blocks(&config.input, config.stdin_hint_after)?;
    if blocks.is_empty() {
        return Err(usage(
            "nothing to send: give a PROMPT, pipe text to stdin, or attach a file with -f",
        ));
    }
    let body = request::build(&config.generation, blocks, config.stream);
    let bytes = request::to_bytes(&body)?;

    if config.dry_run {
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
        out.flush()?;
        return Ok(());
    }

    let client = Client::new(
        &config.network,
        config.require_key()?.clone(),
        config.verbose,
    );
    let mut writer = Writer::stdout(config.output, config.show_thinking);
    if config.verbose {
        output::info(&format!("model {}", config.generation.model));
    }
    let started = std::time::Instant::now();
    let message = client.post("/v1/messages", &bytes, config.stream, |response, info| {
        receive(response, info, &config, &mut writer)
    })?;
    if config.verbose {
        output::info(&format!("done in {} ms", started.elapsed().as_millis()));
    }
    report(&config, &message)
}

/// Handles a 2xx response: an event stream, or a whole message (also when a gateway
/// answers a streaming request with plain JSON).
fn receive(
    response: Response<Body>,
    info: &CallInfo,
    config: &Config,
    writer: &mut Writer,
) -> Result<Value, AttemptError> {
    let is_json = client::header(response.headers(), "content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    let net = &config.network;
    let read_error = |e: std::io::Error| {
        let mut failure = client::transport_failure(ureq::Error::from(e), &net.base_url, net);
        if let Some(id) = &info.request_id {
            failure.message = format!("{} (request-id {id})", failure.message);
        }
        failure
    };
    if config.stream && !is_json {
        return stream::consume(response.into_body().into_reader(), writer, read_error);
    }
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| AttemptError::Retry(read_error(e)))?;
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
        })?;
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
