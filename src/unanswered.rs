//! What a 2xx body may turn out to be instead of an answer: nothing, a compressed
//! body no one asked for, or an error envelope. Shared by the whole-JSON path
//! (`response.rs`) and the stream driver (`stream.rs`).

use std::io::Write;

use crate::error::{ApiError, AttemptError, ExitKind, Failure, sanitize};
use crate::output::Writer;

/// An error envelope that came inside a 2xx body or as the only data of a stream:
/// retried (while nothing reached stdout) when its type says the matching status
/// would be, unless `x-should-retry` says otherwise; its exit code is that status's.
pub fn envelope_error<W: Write>(
    api: ApiError,
    should_retry: Option<&str>,
    writer: &Writer<W>,
) -> AttemptError {
    let retryable = match should_retry {
        Some("true") => true,
        Some("false") => false,
        _ => api.retryable(),
    };
    let failure = api.into_failure();
    if retryable && !writer.wrote_anything() {
        AttemptError::Retry(failure)
    } else {
        AttemptError::Fatal(failure.into())
    }
}

/// Nothing, or only white space: no API response is that.
pub fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// An empty 2xx body, streamed or not. Exit 5, as a dropped connection: to cs-msg a
/// body that ends before its first byte is what a relay whose upstream died looks
/// like (the status was sent, then nothing), and a stream that ends without
/// `message_stop` is exit 5 too; it is not retried, like any response that arrived.
pub fn empty_body(status: u16) -> Failure {
    Failure::new(
        ExitKind::Network,
        format!("empty response body (HTTP {status})"),
    )
}

/// The compression a body's first bytes announce: gzip (`1f 8b`) or zstd
/// (`28 b5 2f fd`). Brotli and raw deflate have no magic number.
pub fn compression_magic(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else {
        None
    }
}

/// Says that a body is compressed though cs-msg asked for no encoding: by its
/// `Content-Encoding` header (`encoding`), or, with `magic`, by its first bytes.
pub fn compressed(encoding: &str, magic: Option<&str>) -> String {
    let encoding = sanitize(encoding);
    let first = encoding
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let what = match first.as_str() {
        "gzip" | "x-gzip" => "gzip-compressed".to_owned(),
        "br" => "brotli-compressed".to_owned(),
        "deflate" => "deflate-compressed".to_owned(),
        "zstd" => "zstd-compressed".to_owned(),
        "compress" | "x-compress" => "compress-compressed".to_owned(),
        _ => "encoded".to_owned(),
    };
    let how = match magic {
        Some(m) => format!("it starts with {m}'s magic bytes"),
        None => format!("Content-Encoding: {encoding}"),
    };
    format!(
        "the body is {what} ({how}) though none was asked for; a proxy in between may be misconfigured"
    )
}
