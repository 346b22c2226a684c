//! The one call path: a request body sent to `POST /v1/messages`, retried as the
//! client decides, received into the message. A single call, every batch line and
//! every tool-loop turn go through [`send`]; what is checked afterwards is
//! `answer.rs`.

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use crate::client::Client;
use crate::output::Writer;
use crate::{request, response};

/// Sends `body` and returns the answer, printed through `writer` as it arrives.
/// `keep_text`: the message returned must hold its text (see `response::receive`).
/// `first_bytes` runs when the answer begins (a spinner stops, a waiting batch goes on).
pub fn send<W: Write>(
    client: &Client,
    body: &Value,
    writer: &mut Writer<W>,
    keep_text: bool,
    first_bytes: &mut dyn FnMut(),
) -> Result<Value> {
    let bytes = request::to_bytes(body)?;
    let streaming = request::is_streaming(body);
    client.post("/v1/messages", &bytes, streaming, |resp, info| {
        response::receive(resp, info, streaming, keep_text, writer, first_bytes)
    })
}
