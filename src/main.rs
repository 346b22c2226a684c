//! cs-msg: one message to the claudestore Messages API from the shell.
//! `main` parses, runs, and maps the outcome to an exit code; nothing else.

mod batch;
mod cli;
mod client;
mod config;
mod conversation;
mod generate;
mod input;
#[allow(dead_code)] // wired in by the tool loop
mod mcp;
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
    let matches = match cli::Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return usage_error(e),
    };
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

/// `--help` and `--version` print as clap renders them; a usage error becomes one line
/// like every other error (clap's first line, and its tip if it has one), exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind::*;
    if matches!(
        e.kind(),
        DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Keep what helps fix the command: clap's tip and the possible values.
    let extra: String = lines
        .filter_map(|l| {
            l.strip_prefix("tip: ")
                .or_else(|| l.strip_prefix('[')?.strip_suffix(']'))
        })
        .map(|t| format!(" ({t})"))
        .collect();
    output::error(&one_line(&format!("{first}{extra}; see cs-msg --help")));
    ExitCode::from(ExitKind::Usage.code())
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
