//! MCP shapes to Messages API shapes: tool definitions, and `tools/call` results to the
//! content of a `tool_result` block.

use serde_json::{Value, json};

use super::ToolCallResult;

/// The image types the API accepts in a `tool_result` (other types become a line of text).
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// An MCP tool (`name`, `description`?, `inputSchema`) as an API tool definition, or
/// `None` when it has no name. A tool without a schema takes any object.
pub fn definition(tool: &Value) -> Option<Value> {
    let name = tool.get("name").and_then(Value::as_str)?;
    let mut out = json!({"name": name});
    if let Some(description) = tool.get("description").and_then(Value::as_str) {
        out["description"] = json!(description);
    }
    out["input_schema"] = match tool.get("inputSchema") {
        Some(schema @ Value::Object(_)) => schema.clone(),
        _ => json!({"type": "object"}),
    };
    Some(out)
}

/// A `tools/call` result: `content` blocks mapped one by one, `isError` kept.
pub fn tool_result(result: &Value) -> ToolCallResult {
    let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
    let mut content: Vec<Value> = match result.get("content") {
        Some(Value::Array(blocks)) => blocks.iter().filter_map(block).collect(),
        _ => Vec::new(),
    };
    // Servers should repeat structured content as text; when one does not, the model
    // still gets the data.
    if content.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        content.push(text(structured.to_string()));
    }
    if content.is_empty() {
        // The API refuses empty text blocks, and an empty content list tells the model
        // nothing.
        let placeholder = if is_error {
            "(the tool failed without a message)"
        } else {
            "(the tool returned no content)"
        };
        content.push(text(placeholder.to_owned()));
    }
    ToolCallResult { content, is_error }
}

/// One MCP content block as an API block; `None` for an empty text (the API refuses it).
fn block(item: &Value) -> Option<Value> {
    let field = |name: &str| item.get(name).and_then(Value::as_str);
    let kind = field("type").unwrap_or("");
    Some(match kind {
        "text" => match field("text") {
            Some("") | None => return None,
            Some(t) => text(t.to_owned()),
        },
        "image" => match (field("mimeType"), field("data")) {
            (Some(media_type), Some(data)) if IMAGE_TYPES.contains(&media_type) => json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }),
            (media_type, _) => text(format!(
                "[an image of type {} was left out: the API takes JPEG, PNG, GIF and WebP only]",
                media_type.unwrap_or("unknown")
            )),
        },
        "audio" => text(format!(
            "[audio of type {} was left out: the API takes no audio]",
            field("mimeType").unwrap_or("unknown")
        )),
        "resource" => {
            let resource = item.get("resource").unwrap_or(&Value::Null);
            let get = |name: &str| resource.get(name).and_then(Value::as_str);
            let uri = get("uri").unwrap_or("(no uri)");
            match get("text") {
                Some(t) if !t.is_empty() => text(t.to_owned()),
                Some(_) => text(format!("[resource {uri}: empty]")),
                None => text(format!(
                    "[resource {uri} ({}): binary content left out]",
                    get("mimeType").unwrap_or("unknown type")
                )),
            }
        }
        "resource_link" => {
            let uri = field("uri").unwrap_or("(no uri)");
            let mut line = format!("[resource link: {uri}");
            if let Some(name) = field("name") {
                line.push_str(&format!(" ({name})"));
            }
            if let Some(description) = field("description") {
                line.push_str(&format!(": {description}"));
            }
            line.push(']');
            text(line)
        }
        other => text(format!("[content of type '{other}' was left out]")),
    })
}

fn text(text: String) -> Value {
    json!({"type": "text", "text": text})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_rename_the_schema_and_keep_only_what_the_api_knows() {
        let tool = json!({
            "name": "echo",
            "title": "Echo Tool",
            "description": "Echoes",
            "inputSchema": {"type": "object", "properties": {"m": {"type": "string"}}},
            "annotations": {"readOnlyHint": true},
        });
        assert_eq!(
            definition(&tool),
            Some(json!({
                "name": "echo",
                "description": "Echoes",
                "input_schema": {"type": "object", "properties": {"m": {"type": "string"}}},
            }))
        );
        assert_eq!(
            definition(&json!({"name": "bare"})),
            Some(json!({"name": "bare", "input_schema": {"type": "object"}}))
        );
        assert_eq!(definition(&json!({"description": "no name"})), None);
    }

    #[test]
    fn every_content_type_becomes_a_block_the_api_takes() {
        let result = json!({"content": [
            {"type": "text", "text": "hi"},
            {"type": "text", "text": ""},
            {"type": "image", "mimeType": "image/png", "data": "AAAA"},
            {"type": "image", "mimeType": "image/svg+xml", "data": "PHN2Zz4="},
            {"type": "audio", "mimeType": "audio/wav", "data": "UklG"},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "body"}},
            {"type": "resource", "resource": {"uri": "file:///b", "mimeType": "application/gzip", "blob": "H4sI"}},
            {"type": "resource_link", "uri": "demo://r/1", "name": "R1", "description": "first"},
            {"type": "hologram"},
        ]});
        let mapped = tool_result(&result);
        assert!(!mapped.is_error);
        assert_eq!(
            mapped.content,
            vec![
                json!({"type": "text", "text": "hi"}),
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}),
                json!({"type": "text", "text": "[an image of type image/svg+xml was left out: the API takes JPEG, PNG, GIF and WebP only]"}),
                json!({"type": "text", "text": "[audio of type audio/wav was left out: the API takes no audio]"}),
                json!({"type": "text", "text": "body"}),
                json!({"type": "text", "text": "[resource file:///b (application/gzip): binary content left out]"}),
                json!({"type": "text", "text": "[resource link: demo://r/1 (R1): first]"}),
                json!({"type": "text", "text": "[content of type 'hologram' was left out]"}),
            ]
        );
    }

    #[test]
    fn empty_results_get_a_placeholder_and_structured_content_is_kept() {
        assert_eq!(
            tool_result(&json!({"content": []})).content,
            vec![json!({"type": "text", "text": "(the tool returned no content)"})]
        );
        let failed =
            tool_result(&json!({"content": [{"type": "text", "text": ""}], "isError": true}));
        assert!(failed.is_error);
        assert_eq!(
            failed.content,
            vec![json!({"type": "text", "text": "(the tool failed without a message)"})]
        );
        assert_eq!(
            tool_result(&json!({"content": [], "structuredContent": {"n": 1}})).content,
            vec![json!({"type": "text", "text": "{\"n\":1}"})]
        );
    }
}
