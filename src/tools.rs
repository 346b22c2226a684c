//! Tool definitions (`--tools`, `--tool-choice`) and structured output (`--schema`):
//! a tool built from a JSON Schema, forced, and its input validated locally.

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use crate::error::{ExitKind, Failure, usage};
use crate::files::{parse_json, read_json};

/// The name of the tool `--schema` forces.
pub const SCHEMA_TOOL: &str = "structured_output";
/// Key under which a non-object schema is wrapped (tool inputs must be objects).
const WRAPPED: &str = "value";

/// Reads and checks `--tools PATH`: an array of tool definitions.
pub fn read_tools(path: &Path) -> Result<Vec<Value>> {
    let what = format!("--tools {}", path.display());
    check_tools(read_json(path, "--tools")?, &what)
}

pub fn check_tools(value: Value, what: &str) -> Result<Vec<Value>> {
    let bad = |path: String, expected: &str| usage(format!("{what}: {path}: {expected}"));
    let Value::Array(tools) = value else {
        return Err(bad("$".into(), "expected an array of tool definitions"));
    };
    for (i, tool) in tools.iter().enumerate() {
        let Some(tool) = tool.as_object() else {
            return Err(bad(format!("$[{i}]"), "expected an object"));
        };
        let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty()
            || name.len() > 128
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad(
                format!("$[{i}].name"),
                "must be 1 to 128 characters of letters, digits, '_' or '-'",
            ));
        }
        // Server tools (`"type": "web_search_20250305"`, …) have no input_schema.
        let custom = matches!(tool.get("type"), None | Some(Value::Null))
            || tool.get("type").and_then(Value::as_str) == Some("custom");
        if custom && tool.get("input_schema").and_then(|s| s.get("type")) != Some(&json!("object"))
        {
            return Err(bad(
                format!("$[{i}].input_schema.type"),
                "must be \"object\"",
            ));
        }
    }
    Ok(tools)
}

/// `--tool-choice auto|any|none|NAME`.
pub fn tool_choice(choice: &str) -> Value {
    match choice {
        "auto" | "any" | "none" => json!({"type": choice}),
        name => json!({"type": "tool", "name": name}),
    }
}

/// A JSON Schema for `--schema`, and whether it had to be wrapped in an object.
#[derive(Debug, Clone)]
pub struct Schema {
    pub schema: Value,
    wrapped: bool,
    validator: std::sync::Arc<jsonschema::Validator>,
}

impl Schema {
    /// `--schema PATH|JSON`: inline JSON when it starts with `{`, else a file.
    pub fn load(arg: &str) -> Result<Schema> {
        let schema = if arg.trim_start().starts_with('{') {
            parse_json(arg.as_bytes(), "--schema")?
        } else {
            read_json(Path::new(arg), "--schema")?
        };
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| usage(format!("--schema {arg}: not a valid JSON Schema: {e}")))?;
        let wrapped = schema.get("type") != Some(&json!("object"));
        Ok(Schema {
            schema,
            wrapped,
            validator: std::sync::Arc::new(validator),
        })
    }

    /// The tool the model is forced to call; its input is the structured answer.
    pub fn tool(&self) -> Value {
        let input_schema = if self.wrapped {
            json!({"type": "object", "properties": {WRAPPED: self.schema}, "required": [WRAPPED]})
        } else {
            self.schema.clone()
        };
        json!({
            "name": SCHEMA_TOOL,
            "description": "Record the answer. Call this tool exactly once with the complete answer as its input.",
            "input_schema": input_schema,
        })
    }

    pub fn choice() -> Value {
        json!({"type": "tool", "name": SCHEMA_TOOL})
    }

    /// Finds the forced tool call in the message and validates its input. Exit 6 when
    /// there is none or it does not match the schema.
    pub fn extract(&self, message: &Value) -> Result<Value> {
        let call = message
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|b| {
                b.get("type").and_then(Value::as_str) == Some("tool_use")
                    && b.get("name").and_then(Value::as_str) == Some(SCHEMA_TOOL)
            });
        let stop = message
            .get("stop_reason")
            .and_then(Value::as_str)
            .unwrap_or("none");
        let Some(mut input) = call.and_then(|c| c.get("input")).cloned() else {
            return Err(Failure::new(
                ExitKind::Unusable,
                format!("the model returned no structured output (stop_reason {stop})"),
            )
            .into());
        };
        if self.wrapped {
            input = input
                .get_mut(WRAPPED)
                .map(Value::take)
                .unwrap_or(Value::Null);
        }
        if let Some(error) = self.validator.iter_errors(&input).next() {
            let path = error.instance_path().to_string();
            let at = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            return Err(Failure::new(
                ExitKind::Unusable,
                format!("structured output does not match --schema at {at}: {error}"),
            )
            .into());
        }
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_checked_with_json_paths() {
        let ok = json!([
            {"name": "get_weather", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"}
        ]);
        assert_eq!(check_tools(ok, "t").unwrap().len(), 2);
        let e = check_tools(
            json!([{"name": "bad name", "input_schema": {"type": "object"}}]),
            "t",
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "t: $[0].name: must be 1 to 128 characters of letters, digits, '_' or '-'"
        );
        let e = check_tools(
            json!([{"name": "f", "input_schema": {"type": "array"}}]),
            "t",
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "t: $[0].input_schema.type: must be \"object\""
        );
        assert!(check_tools(json!({}), "t").is_err());
    }

    #[test]
    fn tool_choice_forms() {
        assert_eq!(tool_choice("any"), json!({"type": "any"}));
        assert_eq!(tool_choice("f"), json!({"type": "tool", "name": "f"}));
    }

    fn message_with(input: Value) -> Value {
        json!({"content": [{"type": "tool_use", "id": "t", "name": SCHEMA_TOOL, "input": input}], "stop_reason": "tool_use"})
    }

    #[test]
    fn schema_validation() {
        let s = Schema::load(
            r#"{"type":"object","properties":{"born":{"type":"integer"}},"required":["born"]}"#,
        )
        .unwrap();
        assert_eq!(s.tool()["input_schema"]["required"], json!(["born"]));
        assert_eq!(
            s.extract(&message_with(json!({"born": 1815}))).unwrap(),
            json!({"born": 1815})
        );
        let e = s
            .extract(&message_with(json!({"born": "1815"})))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "structured output does not match --schema at /born: \"1815\" is not of type \"integer\""
        );
        let e = s
            .extract(&json!({"content": [], "stop_reason": "max_tokens"}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the model returned no structured output (stop_reason max_tokens)"
        );
    }

    #[test]
    fn non_object_schemas_are_wrapped_and_unwrapped() {
        let s = Schema::load(r#"{"type":"array","items":{"type":"string"}}"#).unwrap();
        assert_eq!(
            s.tool()["input_schema"]["properties"]["value"]["type"],
            "array"
        );
        assert_eq!(
            s.extract(&message_with(json!({"value": ["a"]}))).unwrap(),
            json!(["a"])
        );
    }

    #[test]
    fn invalid_schemas_are_usage_errors() {
        assert!(Schema::load(r#"{"type": 5}"#).is_err());
        assert!(Schema::load("{not json").is_err());
    }
}
