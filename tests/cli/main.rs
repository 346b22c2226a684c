//! Integration tests: the real binary against mockito servers on 127.0.0.1.
//! One test binary (faster to link); one module per capability.

mod common;

mod architecture;
mod batch;
mod cache;
mod errors;
mod generated;
mod hostile;
mod mcp;
mod outputs;
mod readme;
mod reliability;
mod requests;
mod signals_and_inputs;
mod streams;
mod surface;
mod tools;
