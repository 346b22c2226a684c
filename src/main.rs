//! cs-msg: one message to the claudestore Messages API from the shell.
//! `main` parses, runs, and maps the outcome to an exit code; nothing else.

mod cli;
mod client;
mod config;
mod error;
mod input;
mod message;
mod output;
#[cfg(test)]
mod proptests;
mod request;
mod run;
mod sse;
mod stream;

use std::process::ExitCode;

use clap::Parser;

use crate::error::{ExitKind, Failure, one_line};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        output::error(&one_line(&format!("internal error: {info}")));
    }));
    // Ctrl-C: what already reached stdout stays; the rest of the answer is dropped.
    // Exiting from the handler thread skips destructors, so no partial file is written.
    let _ = ctrlc::set_handler(|| {
        output::error("interrupted");
        std::process::exit(i32::from(ExitKind::Interrupted.code()));
    });
    let cli = cli::Cli::parse();
    match run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit_for(&err),
    }
}

/// Prints the error as one line and picks the exit code. A closed stdout is not an
/// error: the reader has what it wanted (`cs-msg … | head -1`).
fn exit_for(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return ExitCode::SUCCESS;
        }
    }
    output::error(&one_line(&format!("{err:#}")));
    let kind = err
        .chain()
        .find_map(|c| c.downcast_ref::<Failure>())
        .map_or(ExitKind::Api, |f| f.kind);
    ExitCode::from(kind.code())
}
