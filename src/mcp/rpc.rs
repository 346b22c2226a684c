//! JSON-RPC 2.0 as the MCP stdio transport carries it: one JSON message per line, UTF-8,
//! no embedded newlines (serde_json's compact form never writes one).

use serde_json::{Value, json};

/// "Method not found", JSON-RPC's reserved code.
pub const METHOD_NOT_FOUND: i64 = -32601;

/// The error member of a JSON-RPC error response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

/// What the server sent, as the client must treat it.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// The answer to one of our requests (we only ever use numeric ids).
    Response {
        id: u64,
        outcome: Result<Value, RpcError>,
    },
    /// The server asks something of the client (ping, roots/list, sampling, ...).
    Request { id: Value, method: String },
    /// A notification (progress, logging, list_changed): nothing to do.
    Notification,
    /// Not a JSON-RPC message we can use (an id we never sent, no method, ...).
    Other,
}

pub fn request(id: u64, method: &str, params: Value) -> Vec<u8> {
    line(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

pub fn notification(method: &str, params: Option<Value>) -> Vec<u8> {
    let mut message = json!({"jsonrpc": "2.0", "method": method});
    if let Some(params) = params {
        message["params"] = params;
    }
    line(message)
}

/// Our answer to a request from the server. cs-msg declares no client capabilities
/// (no roots, sampling or elicitation), so everything but `ping` is "method not found":
/// the server gets an answer at once and its tool can fail instead of waiting forever.
pub fn answer(id: &Value, method: &str) -> Vec<u8> {
    if method == "ping" {
        return line(json!({"jsonrpc": "2.0", "id": id, "result": {}}));
    }
    line(json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": METHOD_NOT_FOUND,
            "message": format!("cs-msg does not offer {method}"),
        },
    }))
}

pub fn classify(message: Value) -> Incoming {
    let Value::Object(mut message) = message else {
        return Incoming::Other;
    };
    if let Some(method) = message.get("method").and_then(Value::as_str) {
        let method = method.to_owned();
        return match message.remove("id") {
            Some(id @ (Value::Number(_) | Value::String(_))) => Incoming::Request { id, method },
            Some(_) => Incoming::Other,
            None => Incoming::Notification,
        };
    }
    let Some(id) = message.get("id").and_then(Value::as_u64) else {
        return Incoming::Other;
    };
    if let Some(error) = message.get("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = match error.get("message").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None => "error without a message".to_owned(),
        };
        return Incoming::Response {
            id,
            outcome: Err(RpcError { code, message }),
        };
    }
    match message.remove("result") {
        Some(result) => Incoming::Response {
            id,
            outcome: Ok(result),
        },
        None => Incoming::Other,
    }
}

fn line(message: Value) -> Vec<u8> {
    let mut bytes = message.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_each() {
        assert_eq!(
            request(3, "tools/list", json!({"cursor": "a\nb"})),
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{\"cursor\":\"a\\nb\"}}\n"
        );
        assert_eq!(
            notification("notifications/initialized", None),
            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
        );
    }

    #[test]
    fn server_requests_get_an_answer() {
        assert_eq!(
            answer(&json!(7), "ping"),
            b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n"
        );
        assert_eq!(
            answer(&json!("s1"), "sampling/createMessage"),
            b"{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"error\":{\"code\":-32601,\"message\":\"cs-msg does not offer sampling/createMessage\"}}\n"
        );
    }

    #[test]
    fn classifies_what_servers_send() {
        assert_eq!(
            classify(json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": []}})),
            Incoming::Response {
                id: 2,
                outcome: Ok(json!({"tools": []}))
            }
        );
        assert_eq!(
            classify(
                json!({"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "bad"}})
            ),
            Incoming::Response {
                id: 2,
                outcome: Err(RpcError {
                    code: -32602,
                    message: "bad".into()
                })
            }
        );
        assert_eq!(
            classify(json!({"jsonrpc": "2.0", "id": "x", "method": "roots/list"})),
            Incoming::Request {
                id: json!("x"),
                method: "roots/list".into()
            }
        );
        assert_eq!(
            classify(json!({"jsonrpc": "2.0", "method": "notifications/progress"})),
            Incoming::Notification
        );
        for other in [
            json!([1]),
            json!({"id": "not ours", "result": {}}),
            json!({"id": 1}),
            json!({"id": null, "method": "x"}),
        ] {
            assert_eq!(classify(other), Incoming::Other);
        }
    }
}
