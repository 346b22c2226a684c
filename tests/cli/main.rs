//! Integration tests: the real binary against mock servers on 127.0.0.1 (mockito, and
//! `server.rs` for what mockito cannot do).
//! One test binary (faster to link); one module per capability.

mod common;
mod server;

mod architecture;
mod batch;
mod cache;
mod errors;
mod generated;
mod hostile;
mod mcp;
mod outputs;
mod readme;
mod relay;
mod reliability;
mod requests;
mod signals_and_inputs;
mod streams;
mod surface;
mod tools;
