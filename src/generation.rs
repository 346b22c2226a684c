//! The request fields a call sets (model, limits, sampling, tools, thinking), the
//! rules each must follow, and which of them the user typed explicitly.
//!
//! Flags and batch lines both end up here: the flags through `config/`, a line's
//! overrides through `batch/line.rs`. Both run the same rules ([`rules`]) and the same
//! cross-field checks ([`Generation::validate`]), so a value refused in one form is
//! refused in the other with the same message.

use serde_json::{Value, json};

/// A request field that flags set and a batch line or `--request` body may also set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Model,
    MaxTokens,
    System,
    Temperature,
    TopP,
    TopK,
    Stop,
    Metadata,
    Tools,
    ToolChoice,
    Thinking,
    Effort,
    Stream,
}

impl Field {
    pub const ALL: [Field; 13] = [
        Field::Model,
        Field::MaxTokens,
        Field::System,
        Field::Temperature,
        Field::TopP,
        Field::TopK,
        Field::Stop,
        Field::Metadata,
        Field::Tools,
        Field::ToolChoice,
        Field::Thinking,
        Field::Effort,
        Field::Stream,
    ];

    /// The clap argument ids whose explicit use sets this field. Checked against the
    /// command's arguments by a test, so renaming a flag cannot silently drop one.
    pub fn arg_ids(self) -> &'static [&'static str] {
        match self {
            Field::Model => &["model"],
            Field::MaxTokens => &["max_tokens"],
            Field::System => &["system", "system_file"],
            Field::Temperature => &["temperature"],
            Field::TopP => &["top_p"],
            Field::TopK => &["top_k"],
            Field::Stop => &["stop"],
            Field::Metadata => &["metadata_user_id"],
            Field::Tools => &["tools", "schema"],
            Field::ToolChoice => &["tool_choice", "schema"],
            Field::Thinking => &["thinking"],
            Field::Effort => &["effort"],
            Field::Stream => &["stream", "no_stream", "events"],
        }
    }
}

/// Which fields were given on the command line (not by the environment or defaults):
/// only those override the fields of a `--request` body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explicit(Vec<Field>);

impl Explicit {
    /// `typed(id)`: whether the argument with that clap id came from the command line.
    pub fn from_args(typed: impl Fn(&str) -> bool) -> Explicit {
        Explicit(
            Field::ALL
                .into_iter()
                .filter(|f| f.arg_ids().iter().any(|id| typed(id)))
                .collect(),
        )
    }

    pub const fn none() -> Explicit {
        Explicit(Vec::new())
    }

    pub fn contains(&self, field: Field) -> bool {
        self.0.contains(&field)
    }
}

/// Sampling and request fields, as given and checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generation {
    pub model: String,
    pub max_tokens: u32,
    /// A string, or an array of text blocks (a batch line may give either).
    pub system: Option<Value>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub stop: Vec<String>,
    /// The whole `metadata` object (`--metadata-user-id` sets `user_id`).
    pub metadata: Option<Value>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub thinking: Option<Value>,
    pub effort: Option<&'static str>,
}

/// One rule per field; each returns the message that follows the culprit's name.
pub mod rules {
    use serde_json::{Value, json};

    pub const MIN_THINKING_BUDGET: u64 = 1024;

    pub fn model(m: &str) -> Result<String, String> {
        if m.trim().is_empty() {
            return Err("must be a non-empty model id".into());
        }
        Ok(m.to_owned())
    }

    pub fn max_tokens(n: u64) -> Result<u32, String> {
        match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("must be a whole number from 1 to {}", u32::MAX)),
        }
    }

    pub fn top_k(n: u64) -> Result<u32, String> {
        max_tokens(n)
    }

    /// temperature and top_p.
    pub fn unit_interval(v: f64) -> Result<f64, String> {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not between 0.0 and 1.0"))
        }
    }

    pub fn thinking_budget(n: u64) -> Result<Value, String> {
        if n < MIN_THINKING_BUDGET {
            return Err(format!(
                "a thinking budget must be at least {MIN_THINKING_BUDGET} tokens, not {n}"
            ));
        }
        Ok(json!({"type": "enabled", "budget_tokens": n}))
    }

    pub fn adaptive() -> Value {
        json!({"type": "adaptive"})
    }

    /// A `thinking` object as the API takes it.
    pub fn thinking(v: &Value) -> Result<Value, String> {
        match v.get("type").and_then(Value::as_str) {
            Some("adaptive") => Ok(adaptive()),
            Some("disabled") => Ok(json!({"type": "disabled"})),
            Some("enabled") => match v.get("budget_tokens").and_then(Value::as_u64) {
                Some(n) => thinking_budget(n),
                None => Err("\"enabled\" needs a whole-number \"budget_tokens\"".into()),
            },
            _ => Err("must be an object with type adaptive, enabled or disabled".into()),
        }
    }

    pub fn tool_choice(v: &Value) -> Result<Value, String> {
        match v.get("type").and_then(Value::as_str) {
            Some("auto" | "any" | "none") => Ok(v.clone()),
            Some("tool") if v.get("name").is_some_and(Value::is_string) => Ok(v.clone()),
            Some("tool") => Err("type \"tool\" needs a string \"name\"".into()),
            _ => Err("must be an object with type auto, any, none or tool".into()),
        }
    }

    pub fn system(v: &Value) -> Result<Value, String> {
        let ok = match v {
            Value::String(_) => true,
            Value::Array(blocks) => blocks
                .iter()
                .all(|b| b.get("type").and_then(Value::as_str) == Some("text")),
            _ => false,
        };
        if ok {
            Ok(v.clone())
        } else {
            Err("must be a string or an array of text blocks".into())
        }
    }

    pub fn stop(v: &Value) -> Result<Vec<String>, String> {
        v.as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| "must be an array of strings".into())
    }

    pub fn metadata(v: &Value) -> Result<Value, String> {
        if v.is_object() {
            Ok(v.clone())
        } else {
            Err("must be an object".into())
        }
    }
}

/// What else a call carries that the cross-field rules depend on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// `--schema` built the tools and forced the choice.
    pub schema: bool,
    /// Tools may come from elsewhere: a `--request` body, or `--mcp` servers (listed
    /// only once they are started).
    pub more_tools: bool,
}

impl Generation {
    /// The rules that involve more than one field (docs/PROTOCOL.md, thinking).
    pub fn validate(&self, cx: Context) -> Result<(), String> {
        if let Some(Value::Object(choice)) = &self.tool_choice
            && let Some(name) = choice.get("name").and_then(Value::as_str)
            && !cx.more_tools
            && let Some(tools) = &self.tools
            && !tools
                .iter()
                .any(|t| t.get("name").and_then(Value::as_str) == Some(name))
        {
            return Err(format!(
                "--tool-choice {name}: no tool of that name in --tools"
            ));
        }
        if self.tool_choice.is_some() && self.tools.is_none() && !cx.more_tools {
            return Err("--tool-choice needs --tools".into());
        }
        let thinking_type = self
            .thinking
            .as_ref()
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str);
        if !matches!(thinking_type, Some("adaptive" | "enabled")) {
            return Ok(());
        }
        if let Some(n) = self
            .thinking
            .as_ref()
            .and_then(|t| t.get("budget_tokens"))
            .and_then(Value::as_u64)
            && n >= u64::from(self.max_tokens)
        {
            return Err(format!(
                "--thinking {n}: the budget must be below --max-tokens ({})",
                self.max_tokens
            ));
        }
        let forced = self
            .tool_choice
            .as_ref()
            .and_then(|c| c.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "any" || t == "tool");
        if forced {
            let culprit = if cx.schema {
                "--schema"
            } else {
                "--tool-choice any/NAME"
            };
            return Err(format!(
                "--thinking cannot be combined with {culprit}: the API allows only auto or none tool choice while thinking"
            ));
        }
        if self.temperature.is_some_and(|t| t != 1.0) {
            return Err(
                "--thinking cannot be combined with --temperature (the API requires the default while thinking)"
                    .into(),
            );
        }
        if self.top_k.is_some() {
            return Err("--thinking cannot be combined with --top-k".into());
        }
        if self.top_p.is_some_and(|p| p < 0.95) {
            return Err("--thinking allows --top-p only between 0.95 and 1.0".into());
        }
        Ok(())
    }

    /// `--metadata-user-id ID` as the API's object.
    pub fn user_id(id: &str) -> Value {
        json!({ "user_id": id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_fields_come_from_typed_ids() {
        let e = Explicit::from_args(|id| id == "system_file" || id == "events");
        assert!(e.contains(Field::System));
        assert!(e.contains(Field::Stream));
        assert!(!e.contains(Field::Model));
    }

    #[test]
    fn rules_refuse_out_of_range_values() {
        assert_eq!(
            rules::max_tokens(0).unwrap_err(),
            "must be a whole number from 1 to 4294967295"
        );
        assert!(rules::top_k(0).is_err());
        assert_eq!(rules::max_tokens(5), Ok(5));
        assert!(rules::unit_interval(1.5).is_err());
        assert!(rules::thinking(&json!({"type": "enabled", "budget_tokens": 10})).is_err());
        assert!(rules::thinking(&json!({"type": "enabled"})).is_err());
        assert!(rules::tool_choice(&json!({"type": "tool"})).is_err());
        assert!(rules::system(&json!([{"type": "image"}])).is_err());
    }

    #[test]
    fn thinking_budget_must_be_below_max_tokens() {
        let g = Generation {
            max_tokens: 2000,
            thinking: Some(json!({"type": "enabled", "budget_tokens": 2000})),
            ..Generation::default()
        };
        assert_eq!(
            g.validate(Context::default()).unwrap_err(),
            "--thinking 2000: the budget must be below --max-tokens (2000)"
        );
        let g = Generation {
            max_tokens: 2000,
            thinking: Some(json!({"type": "disabled"})),
            temperature: Some(0.2),
            ..Generation::default()
        };
        assert!(g.validate(Context::default()).is_ok());
    }
}
