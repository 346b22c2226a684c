//! cs-msg: one message to the claudestore Messages API from the shell.
//! `main` parses, runs, and maps the outcome to an exit code; nothing else.

mod batch;
mod cli;
mod client;
mod config;
mod conversation;
mod generate;
mod input;
mod models;
mod output;
#[cfg(test)]
mod proptests;
mod request;
mod run;
mod spinner;
mod stream;
mod tools;

// The pure modules live in the library (src/lib.rs) so benches can reach them.
use cs_msg::{error, message, sse};

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::error::{ExitKind, Failure, one_line};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        output::error(&one_line(&format!("internal error: {info}")));
    }));
    // Parsed first: `--version`, `--help` and usage errors exit here without paying
    // for the Ctrl-C handler's thread.
    let matches = cli::Cli::command().get_matches();
    // Which arguments the user typed (not environment or defaults): only these
    // override the fields of a --request body.
    let explicit = matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Ctrl-C: what already reached stdout stays; the rest of the answer is dropped.
    // Exiting from the handler thread skips destructors, so no partial file is written.
    let _ = ctrlc::set_handler(|| {
        conversation::remove_pending_files();
        batch::interrupted();
        output::interrupted();
        std::process::exit(i32::from(ExitKind::Interrupted.code()));
    });
    match run::run(cli, explicit) {
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
