//! `--generate KIND`: shell completions and the man page, from the clap definitions.
//! The outputs are committed under completions/ and man/ and a test keeps them in sync.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::aot::{Shell, generate};

use crate::cli::{Cli, GenKind};
use crate::help;

pub fn print(kind: GenKind) -> Result<()> {
    // The plain package version: a commit hash would make the committed files drift.
    let mut cmd = Cli::command().version(env!("CARGO_PKG_VERSION"));
    let mut out = std::io::stdout().lock();
    let shell = match kind {
        GenKind::Bash => Shell::Bash,
        GenKind::Zsh => Shell::Zsh,
        GenKind::Fish => Shell::Fish,
        GenKind::Powershell => Shell::PowerShell,
        GenKind::Elvish => Shell::Elvish,
        GenKind::Man => return man(cmd, &mut out),
    };
    generate(shell, &mut cmd, "cs-msg", &mut out);
    out.flush()?;
    Ok(())
}

/// The man page: clap_mangen's sections, then our own prose sections, then ENVIRONMENT,
/// EXIT STATUS and EXAMPLES from src/help.rs instead of the free-form help epilogue.
fn man(cmd: clap::Command, out: &mut dyn Write) -> Result<()> {
    // Every option gets its help text here, even those -h leaves out.
    let cmd = cmd
        .after_help(None::<&str>)
        .after_long_help(None::<&str>)
        .mut_args(|a| a.hide_short_help(false));
    let man = clap_mangen::Man::new(cmd)
        .title("CS-MSG")
        .manual("User Commands");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    out.write_all(EXTRA_SECTIONS.as_bytes())?;
    out.write_all(help::man_environment().as_bytes())?;
    out.write_all(help::man_exit_status().as_bytes())?;
    out.write_all(help::man_examples().as_bytes())?;
    man.render_version_section(out)?;
    out.flush()?;
    Ok(())
}

const EXTRA_SECTIONS: &str = r#".SH "PROMPT ASSEMBLY"
The user turn is assembled in this order, one content block each: every
\fB\-f\fR file in the order given, then piped stdin (unless stdin is a terminal or
\fB\-\-no\-stdin\fR is given), then the PROMPT words joined with single spaces.
Files and stdin are typed by content: PNG, JPEG, GIF and WebP become images, PDF a
document, UTF\-8 text a text block framed as \fB<file path="PATH">\fR ... \fB</file>\fR;
anything else is refused.
.SH "STDOUT AND STDERR"
stdout carries data only: the answer text as it streams (text mode), the message
object as one JSON line (\fB\-\-json\fR), every event as one JSON line
(\fB\-\-events\fR), or the validated object (\fB\-\-schema\fR). Diagnostics go to
stderr, coloured only on a terminal (\fBNO_COLOR\fR, \fBFORCE_COLOR\fR).
"#;
