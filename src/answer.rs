//! What is checked once an answer is in, the same way for a single call, a batch
//! line and (later) each turn of a tool loop: an incomplete stop reason (a warning,
//! or exit 6 with `--strict`), the `--schema` object, and the usage line.

use anyhow::Result;
use serde_json::Value;

use crate::error::{ExitKind, Failure};
use crate::tools::Schema;

/// Why an answer that arrived whole is still incomplete, in words; `None` when its
/// stop reason says it is complete. `max_tokens` is the request's limit.
pub fn incomplete(message: &Value, max_tokens: Option<u64>) -> Option<String> {
    let stop = message.get("stop_reason").and_then(Value::as_str)?;
    Some(match stop {
        "max_tokens" => match max_tokens {
            Some(n) => {
                format!("the answer was cut off at the max_tokens limit ({n}); raise --max-tokens")
            }
            None => "the answer was cut off at the max_tokens limit; raise --max-tokens".into(),
        },
        "refusal" => "the model refused to answer (stop_reason refusal)".into(),
        "pause_turn" => {
            "the model paused a long-running turn (stop_reason pause_turn); send it back to continue"
                .into()
        }
        "model_context_window_exceeded" => {
            "the model's context window is full; the answer is incomplete".into()
        }
        _ => return None,
    })
}

/// What the caller does with a finished answer.
#[derive(Clone, Copy)]
pub struct Checks<'a> {
    pub strict: bool,
    pub schema: Option<&'a Schema>,
}

/// The checked answer: the message, and with `--schema` the validated object.
pub struct Checked {
    pub message: Value,
    pub object: Option<Value>,
    /// An incomplete stop without `--strict`: warned about, not failed.
    pub warning: Option<String>,
}

/// Applies the checks: exit 6 for an incomplete stop under `--strict`, or a `--schema`
/// object that does not validate.
pub fn check(message: Value, body: &Value, checks: Checks) -> Result<Checked> {
    let max_tokens = body.get("max_tokens").and_then(Value::as_u64);
    let warning = incomplete(&message, max_tokens);
    if let Some(problem) = &warning
        && checks.strict
    {
        return Err(Failure::new(ExitKind::Unusable, format!("{problem} (--strict)")).into());
    }
    let object = match checks.schema {
        Some(schema) => Some(schema.extract(&message)?),
        None => None,
    };
    Ok(Checked {
        message,
        object,
        warning,
    })
}

/// `tokens: input 12, output 5, cache read 0` for `--usage`.
pub fn usage_line(usage: Option<&Value>) -> String {
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

    #[test]
    fn incomplete_stops_are_named_once_for_every_caller() {
        let m = |stop: &str| json!({"stop_reason": stop});
        assert_eq!(
            incomplete(&m("max_tokens"), Some(5)).as_deref(),
            Some("the answer was cut off at the max_tokens limit (5); raise --max-tokens")
        );
        assert!(incomplete(&m("end_turn"), None).is_none());
        assert!(incomplete(&m("tool_use"), None).is_none());
        let e = check(
            m("refusal"),
            &json!({}),
            Checks {
                strict: true,
                schema: None,
            },
        );
        assert_eq!(
            e.err().map(|e| e.to_string()).as_deref(),
            Some("the model refused to answer (stop_reason refusal) (--strict)")
        );
    }
}
