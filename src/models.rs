//! `--list-models`: every page of `GET /v1/models`.

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use crate::client::{self, Client};
use crate::error::{ExitKind, Failure, sanitize, snippet};

/// Pages are requested at the API's maximum size; this bounds a server that never
/// says it is done.
const MAX_PAGES: usize = 10_000;
/// One page of model descriptions is small; this bounds a runaway body.
const MAX_PAGE_BYTES: u64 = 64 * 1024 * 1024;

/// Fetches all pages and returns the models, in the server's order.
pub fn fetch_all(client: &Client) -> Result<Vec<Value>> {
    let mut models = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let path = match &after {
            Some(id) => format!("/v1/models?limit=1000&after_id={}", encode(id)),
            None => "/v1/models?limit=1000".to_owned(),
        };
        let page = client.get(&path, |response, info| {
            let bytes = client::read_capped(response, MAX_PAGE_BYTES, info)?;
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(|p| p.get("data").is_some_and(Value::is_array))
                .ok_or_else(|| {
                    Failure::malformed(format!("expected a page of models: {}", snippet(&bytes)))
                        .into()
                })
        })?;
        let data = page
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let has_more = page
            .get("has_more")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let last = page
            .get("last_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        models.extend(data);
        match (has_more, last) {
            (true, Some(last)) if after.as_deref() != Some(last.as_str()) => after = Some(last),
            (true, _) => {
                return Err(Failure::new(
                    ExitKind::Api,
                    "malformed response: has_more without a new last_id",
                )
                .into());
            }
            (false, _) => return Ok(models),
        }
    }
    Err(Failure::new(
        ExitKind::Api,
        "malformed response: too many pages of models",
    )
    .into())
}

/// One id a line, or (`--json`) the models as one JSON array.
pub fn print(models: &[Value], json: bool) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer(&mut out, models)?;
        out.write_all(b"\n")?;
    } else {
        for m in models {
            if let Some(id) = m.get("id").and_then(Value::as_str) {
                // One id a line, whatever the server put in it: no escape sequences,
                // no line breaks, bounded.
                writeln!(out, "{}", sanitize(id))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Percent-encodes a query value (model ids are plain, but the server decides).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_query_values() {
        assert_eq!(super::encode("claude-sonnet-4.6"), "claude-sonnet-4.6");
        assert_eq!(super::encode("a b&c"), "a%20b%26c");
    }
}
