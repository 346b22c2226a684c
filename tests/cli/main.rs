//! Integration tests: the real binary against mockito servers on 127.0.0.1.
//! One test binary (faster to link); one module per capability.

mod common;

mod batch;
mod cache;
mod errors;
mod generated;
mod hostile;
mod outputs;
mod readme;
mod reliability;
mod requests;
mod streams;
mod surface;
