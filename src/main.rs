//! cs-msg: one message to the claudestore Messages API from the shell.
//! `main` parses, runs, and maps the outcome to an exit code; nothing else.
//! docs/ARCHITECTURE.md is the map of the modules.

mod answer;
mod batch;
mod cache;
mod call;
mod cli;
mod client;
mod config;
mod conversation;
mod executor;
mod files;
mod generate;
mod generation;
mod help;
mod input;
mod interrupt;
mod mcp;
mod models;
mod output;
mod request;
mod response;
mod run;
mod spinner;
mod stream;
mod tool_loop;
mod tool_result;
mod tools;
mod unanswered;

// The pure modules live in the library (src/lib.rs) so benches can reach them.
use cs_msg::{error, message, sse};

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::error::{ExitKind, Failure, one_line};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        output::error(&one_line(&format!("internal error: {info}")));
    }));
    // Parsed first: `--version`, `--help` and usage errors exit here without paying
    // for the signal thread.
    let (cli, explicit) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    interrupt::install();
    // Before the config: reading it may already warn (a shared key file).
    output::set_quiet(cli.quiet);
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let outcome =
        config::Config::from_cli(cli, explicit, stdin_is_terminal, |k| std::env::var(k).ok())
            .and_then(run::run);
    interrupt::wait_if_signalled();
    match outcome {
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
    let failure = err.chain().find_map(|c| c.downcast_ref::<Failure>());
    if let Some(hint) = failure.and_then(|f| f.hint.as_deref()) {
        output::hint(hint);
    }
    let kind = failure.map_or(ExitKind::Api, |f| f.kind);
    ExitCode::from(kind.code())
}
