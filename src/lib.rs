//! The pure core of cs-msg: SSE parsing, stream accumulation and the error types they
//! use. It is a library only so that `benches/` can measure it; the program is
//! `src/main.rs`, which uses these modules from here. Nothing here does I/O.

pub mod error;
pub mod message;
pub mod sse;

#[cfg(test)]
mod proptests;
