//! `--generate KIND`: shell completions and the man page, from the clap definitions.
//! The outputs are committed under completions/ and man/ and a test keeps them in sync.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::aot::{Shell, generate};

use crate::cli::{Cli, EXAMPLES_MAN, GenKind};

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

/// The man page: clap_mangen's sections, then our own EXAMPLES, ENVIRONMENT and
/// EXIT STATUS instead of the free-form help epilogue.
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
    out.write_all(EXAMPLES_MAN.as_bytes())?;
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
.SH ENVIRONMENT
.TP
\fBCS_MSG_API_KEY\fR
The API key. It is never taken from an argument, nor from \fBANTHROPIC_API_KEY\fR.
.TP
\fBCS_MSG_API_KEY_FILE\fR
A file holding the key, like \fB\-\-api\-key\-file\fR.
.TP
\fBCS_MSG_MODEL\fR, \fBCS_MSG_BASE_URL\fR, \fBCS_MSG_MAX_TOKENS\fR, \fBCS_MSG_MAX_RETRIES\fR
Defaults for the flags of the same name.
.TP
\fBHTTPS_PROXY\fR, \fBALL_PROXY\fR, \fBNO_PROXY\fR
Proxies.
.TP
\fBSSL_CERT_FILE\fR, \fBSSL_CERT_DIR\fR
Extra CA certificates; the system store is trusted.
.TP
\fBNO_COLOR\fR, \fBFORCE_COLOR\fR
Colour on stderr, which is otherwise used only on a terminal.
.SH "EXIT STATUS"
.TP
\fB0\fR
Success, also when stdout is closed early.
.TP
\fB1\fR
The API returned an error, an error event arrived mid\-stream, or the response was malformed.
.TP
\fB2\fR
Usage or input error: bad flag, unreadable or invalid file, nothing to send, insecure URL.
.TP
\fB3\fR
Authentication: no key, HTTP 401 or 403.
.TP
\fB4\fR
Rate limited or overloaded, still after retries.
.TP
\fB5\fR
Network: connect, DNS or TLS failure, timeout, dropped connection, stream cut short.
.TP
\fB6\fR
Unusable answer: \fB\-\-strict\fR and an incomplete stop reason, or \fB\-\-schema\fR output that does not validate.
.TP
\fB130\fR
Interrupted (Ctrl\-C).
"#;
