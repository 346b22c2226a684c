//! One input line: parsed as JSON, its `id`, and its overrides of the flags, checked
//! by the same rules as the flags (`generation.rs`) and built into a request body by
//! the same builder (`request.rs`).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cache::{self, Marks, Ttl};
use crate::generation::{self, Explicit, Generation, rules};
use crate::{conversation, request, tools};

use super::Template;

/// A line as JSON: a string or an object.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not valid UTF-8 (byte {}); convert the input to UTF-8 first",
            e.valid_up_to()
        )
    })?;
    let value: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("invalid JSON: {}", strip_line_number(&e.to_string())))?;
    match value {
        Value::String(_) | Value::Object(_) => Ok(value),
        other => Err(format!(
            "expected a JSON string (the prompt) or an object, found {}",
            json_type(&other)
        )),
    }
}

/// serde_json says "at line 1 column 7"; within one input line, the column is enough.
fn strip_line_number(message: &str) -> String {
    message.replace(" at line 1 column ", " at column ")
}

/// The line's `id`: a string or a number, or null when it has none.
pub fn id(line: &Value) -> Result<Value, String> {
    match line.get("id") {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(id @ (Value::String(_) | Value::Number(_))) => Ok(id.clone()),
        Some(other) => Err(format!(
            "\"id\" must be a string or a number, not {}",
            json_type(other)
        )),
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field a line may give: absent (the flags decide), `null` (removes what the flags
/// set), or a value.
#[derive(Debug, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Keep,
    Remove,
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(|v| v.map_or(Patch::Remove, Patch::Set))
    }
}

/// An object line: `id`, the user turn, and the request fields that override the
/// command line for this line. Values stay JSON here so that each is checked by the
/// rule its flag uses, with the same message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// Read by the reader ([`id`]), so that even a line refused here keeps its id.
    #[serde(default, rename = "id")]
    _id: serde::de::IgnoredAny,
    #[serde(default)]
    pub prompt: Patch<Value>,
    #[serde(default)]
    pub messages: Patch<Value>,
    #[serde(default)]
    pub system: Patch<Value>,
    #[serde(default)]
    pub model: Patch<Value>,
    #[serde(default)]
    pub max_tokens: Patch<Value>,
    #[serde(default)]
    pub temperature: Patch<Value>,
    #[serde(default)]
    pub top_p: Patch<Value>,
    #[serde(default)]
    pub top_k: Patch<Value>,
    #[serde(default)]
    pub stop_sequences: Patch<Value>,
    #[serde(default)]
    pub metadata: Patch<Value>,
    #[serde(default)]
    pub tools: Patch<Value>,
    #[serde(default)]
    pub tool_choice: Patch<Value>,
    #[serde(default)]
    pub thinking: Patch<Value>,
}

impl Line {
    pub fn from_value(value: Value) -> Result<Line, String> {
        match value {
            Value::String(prompt) => Ok(Line {
                prompt: Patch::Set(Value::String(prompt)),
                ..Line::default()
            }),
            Value::Object(_) => serde_json::from_value(value).map_err(|e| e.to_string()),
            other => Err(format!(
                "expected a string or an object, not {}",
                json_type(&other)
            )),
        }
    }

    /// The flags' generation settings with this line's overrides, checked.
    pub fn generation(&self, template: &Generation, schema: bool) -> Result<Generation, String> {
        let mut g = template.clone();
        fn named(key: &str) -> impl Fn(String) -> String + '_ {
            move |m| format!("\"{key}\": {m}")
        }
        let number = |v: &Value| v.as_f64().ok_or_else(|| "must be a number".to_owned());
        let whole = |v: &Value| {
            v.as_u64()
                .ok_or_else(|| format!("must be a whole number from 1 to {}", u32::MAX))
        };
        match &self.model {
            Patch::Keep => {}
            Patch::Set(Value::String(m)) => g.model = rules::model(m).map_err(named("model"))?,
            _ => return Err(named("model")("must be a non-empty model id".into())),
        }
        match &self.max_tokens {
            Patch::Keep => {}
            Patch::Set(v) => {
                g.max_tokens = whole(v)
                    .and_then(rules::max_tokens)
                    .map_err(named("max_tokens"))?
            }
            Patch::Remove => {
                return Err(named("max_tokens")(
                    "is required; it cannot be removed".into(),
                ));
            }
        }
        patch(&self.system, &mut g.system, |v| {
            rules::system(v).map_err(named("system"))
        })?;
        patch(&self.temperature, &mut g.temperature, |v| {
            number(v)
                .and_then(rules::unit_interval)
                .map_err(named("temperature"))
        })?;
        patch(&self.top_p, &mut g.top_p, |v| {
            number(v)
                .and_then(rules::unit_interval)
                .map_err(named("top_p"))
        })?;
        patch(&self.top_k, &mut g.top_k, |v| {
            whole(v).and_then(rules::top_k).map_err(named("top_k"))
        })?;
        let mut stop = Some(std::mem::take(&mut g.stop));
        patch(&self.stop_sequences, &mut stop, |v| {
            rules::stop(v).map_err(named("stop_sequences"))
        })?;
        g.stop = stop.unwrap_or_default();
        patch(&self.metadata, &mut g.metadata, |v| {
            rules::metadata(v).map_err(named("metadata"))
        })?;
        for (key, given) in [("tools", &self.tools), ("tool_choice", &self.tool_choice)] {
            if schema && *given != Patch::Keep {
                return Err(format!("\"{key}\" cannot be set per line with --schema"));
            }
        }
        patch(&self.tools, &mut g.tools, |v| {
            // The same checks as --tools, with the JSON path inside the field.
            tools::check_tools(v.clone(), "\"tools\"").map_err(|e| e.to_string())
        })?;
        patch(&self.tool_choice, &mut g.tool_choice, |v| {
            rules::tool_choice(v).map_err(named("tool_choice"))
        })?;
        patch(&self.thinking, &mut g.thinking, |v| {
            rules::thinking(v).map_err(named("thinking"))
        })?;
        g.validate(generation::Context {
            schema,
            more_tools: false,
        })?;
        Ok(g)
    }

    /// The request body for this line: the command line's request, with the line's
    /// user turn and its overrides. (Its size is checked when it is sent.)
    pub fn request_body(&self, template: &Template) -> Result<Value, String> {
        let prompt = match &self.prompt {
            Patch::Keep | Patch::Remove => None,
            Patch::Set(Value::String(p)) => Some(p.as_str()),
            Patch::Set(other) => {
                return Err(format!(
                    "\"prompt\" must be a string, not {}",
                    json_type(other)
                ));
            }
        };
        if prompt.is_some_and(|p| p.trim().is_empty()) {
            return Err("empty prompt".into());
        }
        let history = match &self.messages {
            Patch::Keep | Patch::Remove => Vec::new(),
            Patch::Set(messages) => conversation::check_messages(messages.clone(), "messages")
                .map_err(|e| e.to_string())?,
        };
        if prompt.is_none() && history.is_empty() {
            return Err("nothing to send: the line has no \"prompt\" and no \"messages\"".into());
        }
        let config = &template.config;
        let generation = self.generation(&config.generation, config.schema.is_some())?;
        let mut turn = Vec::new();
        if let Some(prompt) = prompt {
            turn.extend(template.files.iter().cloned());
            turn.push(json!({"type": "text", "text": prompt}));
        }
        let mut prior = template.prior.clone();
        prior.extend(history);
        Ok(request::build(
            &generation,
            turn,
            request::Sources {
                base: None,
                explicit: &Explicit::none(),
                prior,
                stream: Some(config.stream),
            },
        ))
    }
}

impl Line {
    /// [`Line::request_body`] with `--cache`'s breakpoints: the `-f` files are the
    /// stable part of the line's turn, its prompt the tail. Also returns the lifetime a
    /// tool loop moves the breakpoints with (see `cache::apply_to`).
    pub fn request(&self, template: &Template) -> Result<(Value, Option<Ttl>), String> {
        let mut body = self.request_body(template)?;
        let marks = match self.prompt {
            Patch::Set(_) => Marks::NewTurn {
                stable: template.files.len(),
            },
            Patch::Keep | Patch::Remove => Marks::History,
        };
        let ttl = cache::apply_to(&mut body, template.config.cache, marks);
        Ok((body, ttl))
    }
}

/// Applies one optional field's patch through its rule.
fn patch<T>(
    given: &Patch<Value>,
    field: &mut Option<T>,
    rule: impl Fn(&Value) -> Result<T, String>,
) -> Result<(), String> {
    match given {
        Patch::Keep => {}
        Patch::Remove => *field = None,
        Patch::Set(v) => *field = Some(rule(v)?),
    }
    Ok(())
}
